"""The select task's assembly of a run's shards (``pipeline.assemble_run``): shards read on threads, joined in
manifest order, the first failing shard's error raised."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from staged_run import make_staged_run

from lightly_airflow import columns as C
from lightly_airflow import pipeline, staging, storage


@pytest.fixture
def run(tmp_path: Path) -> list[str]:
    """A listed run of 6 shards of 8 files, with metadata and embeddings staged."""
    return make_staged_run(tmp_path, shards=6, files=8, dim=4)[1]


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
    # A local datapool: the likely cause is a distributed executor whose workers do not share the folder.
    assert "local folder" in str(err.value) and "shared storage" in str(err.value)
