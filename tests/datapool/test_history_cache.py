"""A long-lived pool's history is read from its log once per process; later snapshots read only what is new."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lightly_airflow.datapool import Datapool, snapshot

from .conftest import commit_run, run_rows
from .counting_proxy import counting_proxy

RUNS = 15
ROOT = Path(__file__).resolve().parents[2]


def grow(pool: Datapool, digits, runs: int, start: int = 0) -> None:
    for r in range(start, start + runs):
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[1]), f"run-{r}")


def test_a_later_snapshot_reads_only_the_new_log_entries(s3_bucket, digits) -> None:
    grown = Datapool(f"{s3_bucket.uri}/pool", s3_bucket.credentials)
    grow(grown, digits, RUNS)
    grown.snapshot().table.create_checkpoint()  # as delta-rs does every 100 commits: loading skips the entries
    snapshot._history_cache.clear()  # as a new process: the commits above read the history in this one
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        pool = Datapool(f"{s3_bucket.uri}/pool", creds)
        requests.reset()
        first = pool.history()
        whole = requests.reset()
        grow(pool, digits, 2, start=RUNS)  # the commits read the history too: from memory
        requests.reset()
        Datapool(f"{s3_bucket.uri}/pool", creds).snapshot()
        load = requests.reset()  # loading the log: the checkpoint and the entries after it
        later = Datapool(f"{s3_bucket.uri}/pool", creds).history()
        since = requests.reset()
    assert [e["run_id"] for e in first[1:]] == [f"run-{r}" for r in range(RUNS)]
    assert [e["run_id"] for e in later[1:]] == [f"run-{r}" for r in range(RUNS + 2)]
    assert [e["version"] for e in later] == list(range(RUNS + 3))
    assert later[:RUNS + 1] == first
    # Commit files fetched: the load reads those after the checkpoint; a whole history every one.
    assert whole["GET log entry"] >= RUNS, whole
    assert since["GET log entry"] <= load["GET log entry"] + 2, (since, load)  # the newest entry again, the new one


def test_a_replaced_last_entry_is_read_again(tmp_path, digits) -> None:
    uri = f"file://{tmp_path}/pool"
    pool = Datapool(uri)
    grow(pool, digits, 5)
    assert pool.history()[-1]["run_id"] == "run-4"
    # Another process deletes the last log entry (datapool check's recovery) and commits another run there.
    (tmp_path / "pool" / "_delta_log" / f"{5:020d}.json").unlink()
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from tests.datapool.conftest import commit_run, run_rows;"
        "from sklearn.datasets import load_digits; import numpy as np;"
        "from lightly_airflow.datapool import Datapool;"
        "d = load_digits(); x = d.data.astype(np.float32); x /= np.linalg.norm(x, axis=1, keepdims=True);"
        "commit_run(Datapool(sys.argv[1]), run_rows((x, d.target), range(900, 910), picks=[1]), 'run-other')"
    )
    subprocess.run([sys.executable, "-c", code, uri, str(ROOT)], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    history = Datapool(uri).history()
    assert [e["run_id"] for e in history[-2:]] == ["run-3", "run-other"]
    assert [t["name"] for t in Datapool(uri).tags()][-1] == "run-other"


def test_a_log_cut_back_reads_as_the_version_before(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, 5)
    assert len(pool.history()) == 6
    (tmp_path / "pool" / "_delta_log" / f"{5:020d}.json").unlink()
    assert [e["run_id"] for e in pool.history()][-1] == "run-3"
    grow(pool, digits, 1, start=7)
    assert [e["run_id"] for e in pool.history()][-2:] == ["run-3", "run-7"]


def test_a_pool_made_anew_at_the_same_place_is_read_anew(tmp_path, digits) -> None:
    import shutil

    uri = f"file://{tmp_path}/pool"
    grow(Datapool(uri), digits, 4)
    assert [e["run_id"] for e in Datapool(uri).history()][-1] == "run-3"
    shutil.rmtree(tmp_path / "pool")  # a user wipes a trial pool and starts over
    commit_run(Datapool(uri), run_rows(digits, range(800, 810), picks=[1]), "again-0")
    assert [e["run_id"] for e in Datapool(uri).history()] == [None, "again-0"]  # not the old pool's run-0
    commit_run(Datapool(uri), run_rows(digits, range(810, 820), picks=[1]), "again-1")
    assert [e["run_id"] for e in Datapool(uri).history()] == [None, "again-0", "again-1"]
