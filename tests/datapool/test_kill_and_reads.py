"""A select task killed mid-commit leaves the pool as it was; reads never abort the process at exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.storage import StorageCredentials

from .conftest import commit_run, run_rows

# Runs the real commit in a child process and SIGKILLs the child while delta-rs is writing the data files
# (after the first batch was handed over, before the log entry): an Airflow worker dying mid-task.
KILLED_COMMIT = textwrap.dedent(
    """
    import json, os, signal, sys
    import pyarrow as pa, pyarrow.parquet as pq
    from lightly_airflow.datapool import Datapool, pool as pool_module
    from lightly_airflow.storage import StorageCredentials

    uri, creds, rows_path, run_id, read_version = sys.argv[1:6]
    real_write = pool_module._write_deltalake

    def dying_write(table, data, **kwargs):
        data = data.read_all()  # (the commit streams its rows: datapool.rows.write_batches)
        batches = data.to_batches(max_chunksize=max(1, data.num_rows // 4))
        def stream():
            yield batches[0]
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(table, pa.RecordBatchReader.from_batches(data.schema, stream()), **kwargs)

    pool_module._write_deltalake = dying_write
    pool = Datapool(uri, StorageCredentials.from_dict(json.loads(creds)))
    pool.commit(pq.read_table(rows_path), run_id=run_id, dag_id="curate", tag=None, config={}, counts={},
                embedding_model="digits-pixels", embedding_dim=64,
                read_version=None if read_version == "none" else int(read_version))
    print("commit returned")  # never reached
    """
)


def _without_commit_time(table: pa.Table) -> pa.Table:
    return table.drop_columns([C.COMMITTED_AT]).sort_by(C.KEY)


@pytest.fixture(params=["local", "s3_bucket"])
def location(request, tmp_path) -> tuple[str, StorageCredentials | None]:
    if request.param == "local":
        return str(tmp_path / "pool"), None
    bucket = request.getfixturevalue(request.param)
    return bucket.uri + "/pool", bucket.credentials


def test_killed_then_retried_commit_equals_an_uninterrupted_run(location, tmp_path, digits) -> None:
    uri, creds = location
    runs = [("run-1", run_rows(digits, range(0, 40), picks=[3, 1])), ("run-2", run_rows(digits, range(40, 80), picks=[0]))]
    reference = Datapool(tmp_path / "reference")
    for run_id, rows in runs:
        commit_run(reference, rows, run_id)

    pool = Datapool(uri, creds)
    for run_id, rows in runs:
        before = pool.version()
        snapshot = pool.read() if before is not None else None
        rows_path = tmp_path / f"{run_id}.parquet"
        pq.write_table(rows, rows_path)
        child = subprocess.run(
            [sys.executable, "-c", KILLED_COMMIT, uri, json.dumps((creds or StorageCredentials()).to_dict()),
             str(rows_path), run_id, "none" if before is None else str(before)],
            capture_output=True, text=True, timeout=120,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert "commit returned" not in child.stdout
        # The pool is unchanged: no version with the run's rows, the run is not committed.
        assert pool.committed_version(run_id) is None
        if snapshot is not None:
            assert pool.version() == before and pool.read().equals(snapshot)
        # Airflow retries the task: it reads the pool again and commits exactly once.
        result = commit_run(pool, rows, run_id)
        assert not result.already_committed
        assert commit_run(pool, rows, run_id).already_committed

    assert _without_commit_time(pool.read()).equals(_without_commit_time(reference.read()))
    assert [(h["run_id"], h["tag"], h["rows"]) for h in pool.history() if h["run_id"]] == [
        (h["run_id"], h["tag"], h["rows"]) for h in reference.history() if h["run_id"]
    ]
    assert pool.selected([C.KEY]).equals(reference.selected([C.KEY]))


SAFE_READS = textwrap.dedent(
    """
    import json, sys
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.storage import StorageCredentials
    pool = Datapool(sys.argv[1], StorageCredentials.from_dict(json.loads(sys.argv[2])))
    for _ in range(2):
        n = (pool.read().num_rows, pool.read(version=1).num_rows, pool.selected().num_rows,
             pool.known_files().num_rows, len(pool.history()), len(pool.tags()),
             pool.embeddings_for(pool.known_files()).num_rows)
    print(json.dumps(n))
    """
)


@pytest.mark.parametrize("store", ["local", "s3_bucket"])
def test_reads_in_a_subprocess_exit_cleanly(store, request, tmp_path, digits) -> None:
    if store == "local":
        uri, creds = str(tmp_path / "pool"), StorageCredentials()
    else:
        bucket = request.getfixturevalue(store)
        uri, creds = bucket.uri + "/pool", bucket.credentials
    pool = Datapool(uri, creds)
    commit_run(pool, run_rows(digits, range(0, 300), picks=list(range(0, 300, 7))), "r1")
    commit_run(pool, run_rows(digits, range(300, 600), picks=[5, 6]), "r2")
    for _ in range(3):
        child = subprocess.run(
            [sys.executable, "-c", SAFE_READS, uri, json.dumps(creds.to_dict())],
            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
        assert child.returncode == 0, child.stderr[-2000:]
        assert json.loads(child.stdout.strip().splitlines()[-1]) == [600, 300, 45, 600, 3, 3, 600]


def test_gcs_pool_reads(gcs_bucket, tmp_path, digits) -> None:
    """fake-gcs-server lacks the upload call delta-rs writes with, so the pool is copied there and read."""
    from lightly_airflow.storage import filesystem

    local = Datapool(tmp_path / "pool")
    commit_run(local, run_rows(digits, range(0, 30), picks=[2, 9]), "r1")
    commit_run(local, run_rows(digits, range(30, 50), picks=[4]), "r2")
    fs, path = filesystem(gcs_bucket.uri + "/pool", gcs_bucket.credentials)
    for file in sorted((tmp_path / "pool").rglob("*")):
        if file.is_file():
            fs.pipe(f"{path}/{file.relative_to(tmp_path / 'pool').as_posix()}", file.read_bytes())
    remote = Datapool(gcs_bucket.uri + "/pool", gcs_bucket.credentials)
    assert remote.exists() and remote.version() == 2
    assert remote.read().sort_by(C.KEY).equals(local.read().sort_by(C.KEY))
    assert remote.read(run_id="r1").num_rows == 30
    assert remote.selected([C.KEY]).equals(local.selected([C.KEY]))
    assert [t["name"] for t in remote.tags()] == ["initial-tag", "r1", "r2"]
