"""kill -9 at each step of select-and-commit, then the retry, with the datapool on local disk and on the S3
emulator: no sample lost or duplicated, one version, the same selection, the report and the commit receipt
there, the staging files gone (issue 14, fault suite). The select task runs the real ``select_and_commit`` in a
child process that SIGKILLs itself at one step; the parent retries as Airflow would."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pyarrow.compute as pc
import pytest
from test_lightly_datapool_run import SELECTION, _run

from lightly_airflow import columns as C
from lightly_airflow.demo import Batch, add_batch

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    import pyarrow as pa
    from lightly_airflow import pipeline
    from lightly_airflow.datapool import Datapool, pool as pool_module
    from lightly_airflow.storage import StorageCredentials

    pool_uri, run_id, manifests, selection, step = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
    creds = StorageCredentials.from_dict(json.loads(sys.argv[6])) if sys.argv[6] != "null" else None
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    real_commit = Datapool.commit
    if step == "before-commit":
        Datapool.commit = die
    elif step == "mid-write":
        real_write = pool_module._write_deltalake
        def dying_write(table, data, **kwargs):
            data = data.read_all()  # (the commit streams its rows: datapool.rows.write_batches)
            batches = data.to_batches(max_chunksize=max(1, data.num_rows // 4))
            def stream():
                yield batches[0]
                die()
            real_write(table, pa.RecordBatchReader.from_batches(data.schema, stream()), **kwargs)
        pool_module._write_deltalake = dying_write
    elif step == "after-commit":
        def commit_then_die(self, *a, **k):
            real_commit(self, *a, **k)
            die()
        Datapool.commit = commit_then_die
    elif step == "after-report":
        pipeline.remove_staging = die
    pipeline.select_and_commit(datapool_uri=pool_uri, run_id=run_id, dag_id="lightly_datapool",
                               manifests=manifests, selection_config=selection, datapool_credentials=creds)
    print("finished")
    """
)
STEPS = ["before-commit", "mid-write", "after-commit", "after-report"]


@pytest.mark.slow
def test_kill_at_each_step_then_retry(airflow_db, dagbag, tmp_path, monkeypatch, s3_bucket) -> None:
    """Every step, with the datapool on local disk and on the S3 emulator (moto): one preparation, eight kills."""
    from lightly_airflow import pipeline, staging
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.receipts import read_receipt
    from lightly_airflow.storage import filesystem

    source, base = tmp_path / "images", tmp_path / "base"
    keys = add_batch(source, Batch("only", (500, 540), ()))
    # A run whose select task has not run yet: manifests and staging files ready, nothing committed.
    with monkeypatch.context() as m:
        m.setattr(pipeline, "select_and_commit",
                  lambda **kw: pipeline.RunSummary(run_id=kw["run_id"], tag=None, version=None, dry_run=True))
        run, states = _run(dagbag.dags["lightly_datapool"], {
            "datasource_uri": f"file://{source}", "datapool_uri": f"file://{base}", "selection_config": SELECTION,
        }, datetime(2026, 8, 1, tzinfo=UTC))
    assert str(run.state) == "success", states
    manifests = run.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files")
    assert manifests and not Datapool(f"file://{base}").exists()

    picked: dict[str, list[str]] = {}
    for store in ("local", "s3"):
        for step in [None, *STEPS] if store == "local" else STEPS:  # one uninterrupted reference run
            if store == "local":
                where = tmp_path / f"pool-{step}"
                shutil.copytree(base, where)
                pool_uri, creds = f"file://{where}", None
            else:  # the same staging files in a fresh prefix of the bucket
                pool_uri, creds = f"{s3_bucket.uri}/pool-{step}", s3_bucket.credentials
                fs, root = filesystem(pool_uri, creds)
                fs.put(f"{base}/", root, recursive=True)
            fs, root = filesystem(pool_uri, creds)
            moved = [m.replace(f"file://{base}", pool_uri) for m in manifests]
            if step is not None:
                child = subprocess.run(
                    [sys.executable, "-c", CHILD, pool_uri, run.run_id, json.dumps(moved), json.dumps(SELECTION), step,
                     json.dumps(None if creds is None else creds.to_dict())],
                    capture_output=True, text=True, timeout=300,
                )
                assert child.returncode == -signal.SIGKILL, (store, step, child.stderr[-3000:])
                assert "finished" not in child.stdout
            # Airflow retries the task.
            summary = pipeline.select_and_commit(datapool_uri=pool_uri, run_id=run.run_id, dag_id="lightly_datapool",
                                                 manifests=moved, selection_config=SELECTION, datapool_credentials=creds)
            pool = Datapool(pool_uri, creds)
            label = f"{store}/{step}"
            fs.invalidate_cache()
            assert pool.version() == 1, label  # exactly one commit
            rows = pool.read()
            mine = rows.filter(pc.equal(rows.column(C.RUN_ID), run.run_id))
            assert sorted(mine.column(C.KEY).to_pylist()) == sorted(keys), label  # nothing lost, nothing twice
            picked[label] = sorted(pool.selected([C.KEY]).column(C.KEY).to_pylist())
            assert summary.version == 1 and summary.report_uri, label
            assert fs.exists(f"{root}/_reports/{staging.run_slug(run.run_id)}/index.html"), label
            assert not fs.exists(f"{root}/_staging/{staging.run_slug(run.run_id)}"), label
            assert read_receipt(pool_uri, run.run_id, creds)["version"] == 1, label
    # Every interrupted run selected what the uninterrupted one did, on both stores.
    assert len(picked) == 9 and all(p == picked["local/None"] for p in picked.values())
    assert len(picked["local/None"]) == 12
