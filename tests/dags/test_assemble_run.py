"""The select task's assembly of a run's shards (``pipeline.assemble_run``): shards read on threads, joined in
manifest order, the first failing shard's error raised."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightly_airflow import columns as C
from lightly_airflow import pipeline, staging, storage
from lightly_airflow.datasource import NewFilesQuery
from lightly_airflow.metadata import compute_metadata_shard


@pytest.fixture
def run(tmp_path: Path) -> list[str]:
    """A listed run of 6 shards of 8 files, with metadata and embeddings staged (the files are random bytes:
    the metadata stage finds them corrupt, which the assembly reports like any status)."""
    src, pool = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(48):
        (src / f"img{i:03d}.png").write_bytes(rng.bytes(40))
    listed = pipeline.list_new(NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool)), run_id="r1",
                               min_shard_size=8)
    for m in listed.manifests:
        compute_metadata_shard(m)
        t = pq.read_table(m)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(rng.random(t.num_rows * 4, dtype=np.float32)), 4)
        out = pa.table({C.KEY: t.column(C.KEY), C.EMBEDDING: emb, C.STATUS: ["ok"] * t.num_rows})
        path = Path(staging.sibling_uri(m, staging.EMBEDDINGS))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(out.replace_schema_metadata({"shard": m}), path)
    return list(listed.manifests)


def test_shards_on_threads_equal_one_after_another(run, monkeypatch):
    assert len(run) == 6
    results = {}
    for threads in (1, 4):
        monkeypatch.setattr(storage, "IO_THREADS", threads)
        results[threads] = pipeline.assemble_run(run)
    (rows1, meta1, errors1), (rows4, meta4, errors4) = results[1], results[4]
    assert rows4.equals(rows1) and rows1.num_rows == 48
    assert meta4 == meta1 and meta1["shard"] == run[-1]  # (a later shard's metadata wins, in manifest order)
    assert len(errors4) == len(errors1)
    # manifest order, each shard's rows by key
    per_shard = [sorted(pq.read_table(m).column(C.KEY).to_pylist()) for m in run]
    assert rows4.column(C.KEY).to_pylist() == [k for keys in per_shard for k in keys]


def test_the_first_failing_shard_is_named(run, monkeypatch):
    monkeypatch.setattr(storage, "IO_THREADS", 4)
    for i in (4, 2):
        Path(staging.sibling_uri(run[i], staging.EMBEDDINGS)).unlink()
    with pytest.raises(FileNotFoundError, match="embeddings task of this shard did not finish") as err:
        pipeline.assemble_run(run)
    assert staging.sibling_uri(run[2], staging.EMBEDDINGS) in str(err.value)
