"""Task code that must not import pandas (pyarrow 26 does on ``pa.array`` of numpy, ``to_numpy``, ``Table.join``,
``pa.scalar``: 0.1-0.6 s of a fresh task process each time).

Each probe is a fresh interpreter (an import made by another test of this process would hide one the code makes);
it reads its input from Arrow IPC files written here (``pq.read_table`` loads pyarrow.dataset, hence pandas).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from lightly_airflow.predictions import scorers as S

READ = """
import json, sys
import numpy as np, pyarrow as pa
def read(path):
    with pa.ipc.open_file(path) as f:
        return f.read_all()
"""


def _write(path: Path, table: pa.Table) -> str:
    with pa.ipc.new_file(path, table.schema) as f:
        f.write_table(table)
    return str(path)


def _probe(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", READ + code, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_finalize_prediction_scores_does_not_import_pandas(tmp_path: Path) -> None:
    """The select task's assembly of the prediction shards (``to_numpy`` and ``pa.array`` of numpy before)."""
    totals = [3.0, None, 7.0, 1.0, None, 5.0]
    col = pa.chunked_array([pa.array(totals[:2], pa.float64()), pa.array(totals[2:], pa.float64())])
    path = _write(tmp_path / "p.arrow", pa.table({"key": [f"k{i}" for i in range(6)], "scores.cars.object_frequency": col}))
    got = _probe("""
from lightly_airflow.predictions import finalize_prediction_scores
out = finalize_prediction_scores(read(sys.argv[1]))
print(json.dumps({"pandas": "pandas" in sys.modules, "scores": out["scores.cars.object_frequency"].to_pylist()}))
""", path)
    rescaled = S.rescale_object_frequency(np.array([np.nan if t is None else t for t in totals]))
    assert got["scores"] == [None if t is None else float(r) for t, r in zip(totals, rescaled, strict=True)]
    assert not got["pandas"]


def test_match_reuse_does_not_import_pandas(tmp_path: Path) -> None:
    """The embed task's reuse of known embeddings (``Table.join``, ``to_numpy``, ``pa.array`` of numpy before)."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((6, 4)).astype(np.float32)
    manifest = pa.table({"key": ["a", "b", "c", "d"], "etag": ["1", "2", "3", "4"]})
    # b's etag changed; c twice (the last row wins); d's embedding is null; x is not in the manifest
    reuse = pa.table({"key": ["a", "b", "c", "c", "d", "x"], "etag": ["1", "9", "3", "3", "4", "5"],
                      "embedding": pa.array([*vectors[:4].tolist(), None, vectors[5].tolist()], pa.list_(pa.float32()))})
    got = _probe("""
from lightly_airflow.embedding.runner import match_reuse
rows, vectors = match_reuse(read(sys.argv[1]), read(sys.argv[2]), model_id="m", dim=4)
print(json.dumps({"pandas": "pandas" in sys.modules, "rows": rows.tolist(), "vectors": vectors.tolist()}))
""", _write(tmp_path / "m.arrow", manifest), _write(tmp_path / "r.arrow", reuse))
    assert got["rows"] == [0, 2]
    assert got["vectors"] == [vectors[0].tolist(), vectors[3].tolist()]
    assert not got["pandas"]


def test_embeddings_from_csv_does_not_import_pandas(tmp_path: Path) -> None:
    """The embed task's custom-embeddings path (``to_numpy`` and ``pa.array`` before)."""
    rng = np.random.default_rng(1)
    matrix = rng.uniform(0.5, 2.0, (3, 2))
    (tmp_path / "e.csv").write_text("filenames,embedding_0,embedding_1,labels\n" + "".join(
        f"img{i}.jpg,{float(a)!r},{float(b)!r},0\n" for i, (a, b) in enumerate(matrix)))
    manifest = pa.table({"key": ["img0.jpg", "zz.jpg", "img2.jpg"], "etag": ["e", "e", "e"]})
    got = _probe("""
from lightly_airflow.embedding.custom import embeddings_from_csv
out = embeddings_from_csv(read(sys.argv[1]), sys.argv[2], normalize=False)
print(json.dumps({"pandas": "pandas" in sys.modules, "embedding": out["embedding"].to_pylist(),
                  "status": out["status"].to_pylist()}))
""", _write(tmp_path / "m.arrow", manifest), str(tmp_path / "e.csv"))
    f32 = matrix.astype(np.float32).tolist()
    assert got["embedding"] == [f32[0], None, f32[2]]
    assert got["status"][1] != got["status"][0] == got["status"][2]
    assert not got["pandas"]
