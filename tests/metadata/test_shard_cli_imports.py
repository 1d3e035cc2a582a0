"""What a shard task's process imports: only what its shard needs (each mapped shard is a fresh process).

Each probe runs in a fresh interpreter, as ``tests/test_cli_startup.py`` does: an import made by another test of
this process would hide one the command makes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from lightly_airflow import columns as C

from .conftest import encode, make_manifest, noise_image

PROBE = """
import json, sys
from lightly_airflow.cli import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(m for m in sys.modules if m.startswith("lightly_airflow."))]))
"""


def _modules(code: str, *args: str) -> tuple[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, timeout=120)
    last = json.loads(out.stdout.splitlines()[-1])
    return last[0], last[1]


def test_a_metadata_shard_does_not_import_the_datasource_package(tmp_path: Path, bucket: Path) -> None:
    """The datasource package (listing, checks, queries: 0.03 s of CPU) is imported only on a file's read error."""
    for i in range(3):
        (bucket / f"img{i}.png").write_bytes(encode(noise_image(i)))
    manifest = make_manifest(tmp_path, ["img0.png", "img1.png", "img2.png"])
    code, modules = _modules(PROBE, "metadata", "--manifest", manifest)
    assert code == 0
    rows = pq.read_table(str(Path(manifest).parents[1] / "metadata" / "shard-00000.parquet")).to_pylist()
    assert [r[C.STATUS] for r in rows] == [C.STATUS_OK] * 3 and rows[0][C.lightly_metadata_column("width")] == 64
    assert "lightly_airflow.metadata.kernels" in modules  # (the probe sees the shard's own modules)
    assert not [m for m in modules if m.startswith("lightly_airflow.datasource")]


def test_the_kernels_and_parsers_an_embed_shard_uses_do_not_import_the_other_shards() -> None:
    """``embed`` imports ``metadata.kernels`` (frames' pixel sums, via ``video.quality``) and ``predictions.parse``
    (object crops, via ``objects.boxes``): their packages no longer load the metadata and predictions shards."""
    code = ("import json, sys\nimport lightly_airflow.video.frames, lightly_airflow.predictions.parse\n"
            "print(json.dumps([0, sorted(m for m in sys.modules if m.startswith('lightly_airflow.'))]))")
    _, modules = _modules(code)
    assert {"lightly_airflow.metadata.kernels", "lightly_airflow.predictions.parse"} <= set(modules)
    assert not {"lightly_airflow.metadata.shard", "lightly_airflow.metadata.custom",
                "lightly_airflow.predictions.shard"} & set(modules)


def test_the_packages_names_still_load_on_use() -> None:
    import lightly_airflow.metadata as metadata
    import lightly_airflow.predictions as predictions
    from lightly_airflow.metadata.shard import compute_metadata_shard
    from lightly_airflow.predictions.shard import load_predictions_shard

    assert metadata.compute_metadata_shard is compute_metadata_shard
    assert predictions.load_predictions_shard is load_predictions_shard
    assert all(getattr(metadata, n) is not None for n in metadata.__all__)
    assert all(getattr(predictions, n) is not None for n in predictions.__all__)
