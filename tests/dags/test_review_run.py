"""End to end: with ``LIGHTLY_REVIEW=true`` the example DAG proposes, waits in Airflow's Human-in-the-loop task for a
reviewer, and commits exactly the reviewed picks (dag.test on SQLite, answered through a real api-server's HITL API
by a SimpleAuthManager user)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from api_server import api_server
from test_lightly_datapool_run import BASE_CONF, _run, asset_events  # the example DAG runner

from lightly_airflow import columns as C
from lightly_airflow.demo import Batch, add_batch

DAGS = Path(__file__).resolve().parents[2] / "dags"
DIVERSE = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _call(method: str, url: str, token: str | None = None, payload: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=None if payload is None else json.dumps(payload).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _answer(base: str, option: str, seen: dict, stop: threading.Event, fill=None) -> None:
    """As a reviewer: wait for the run's Human-in-the-loop request, keep what it shows, answer ``option`` (with
    the form's fields ``fill(request)``)."""
    # Every call is retried until it succeeds or the run ends: a reviewer thread that died on one refused or failed
    # call (a PATCH racing the task's deferral, a slow api-server) left dag.test() waiting forever for an answer
    # (seen twice in full-suite runs); the errors are kept for the test's failure message.
    token = None
    while not stop.is_set():
        try:
            if token is None:
                token = _call("POST", f"{base}/auth/token",
                              payload={"username": "reviewer", "password": "reviewer-pw"})["access_token"]
            pending = _call("GET", f"{base}/api/v2/dags/lightly_datapool/dagRuns/~/hitlDetails?"
                            "response_received=false", token)["hitl_details"]
            if pending:
                detail = pending[0]
                ti = detail["task_instance"]
                _call("PATCH", f"{base}/api/v2/dags/lightly_datapool/dagRuns/{quote(ti['dag_run_id'], safe='')}/"
                      f"taskInstances/{ti['task_id']}/-1/hitlDetails", token,
                      {"chosen_options": [option], "params_input": fill(detail) if fill else {}})
                seen.update(detail)
                return
        except (OSError, ValueError, KeyError) as exc:  # (urllib's HTTPError/URLError are OSErrors)
            seen.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        time.sleep(1)


@pytest.fixture(scope="module")
def reviewer_api(airflow_db):
    """A real api-server on the DB the runs use, with the SimpleAuthManager user ``reviewer``."""
    with api_server(Path(airflow_db), user="reviewer", password="reviewer-pw", role="admin", datapools={}) as base:
        yield base


def _reviewed_run(dag, conf: dict, base: str, option: str, when: datetime, fill=None) -> tuple:
    """One dag.test run while a reviewer answers ``option``; returns the run and what the reviewer saw."""
    seen: dict = {}
    stop = threading.Event()
    reviewer = threading.Thread(target=_answer, args=(base, option, seen, stop, fill), daemon=True)
    reviewer.start()
    try:
        run, states = _run(dag, conf, when)
    finally:
        stop.set()
        reviewer.join(timeout=30)
    assert str(run.state) == "success", (states, seen.get("errors"))
    assert states["review_selection"] == "success" and states["commit_reviewed"] == "success", states
    assert seen["options"] == ["Commit", "Discard"]
    assert f"/lightly/runs/lightly_datapool/{quote(run.run_id, safe='')}" in seen["body"]  # the report's link
    return run, seen


@pytest.mark.slow
def test_reviewed_runs_wait_for_the_reviewer_and_commit_what_was_reviewed_or_nothing(reviewer_api, tmp_path,
                                                                                    monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from lightly_airflow import staging
    from lightly_airflow.datapool import Datapool

    monkeypatch.setenv("LIGHTLY_REVIEW", "true")
    monkeypatch.setenv("LIGHTLY_REVIEWERS", "reviewer")  # (the api-server's user: Airflow lets only it answer)
    dag = DagBag(dag_folder=str(DAGS)).dags["lightly_datapool"]
    assert dag.task_dict["review_selection"].assigned_users == [{"id": "reviewer", "name": "reviewer"}]
    assert dag.task_dict["select_and_commit"].downstream_task_ids == {"review_selection"}
    assert dag.task_dict["review_selection"].downstream_task_ids == {"commit_reviewed"}
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    conf = {**BASE_CONF, "datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}",
            "selection_config": DIVERSE}
    pool = Datapool(f"file://{pool_dir}")

    # Run 1, committed: exactly the proposal's picks, in order; the commit records the reviewer
    add_batch(source, Batch("a", (0, 40), ("coffee",)))  # 40 digits, 3 photos
    run1, seen = _reviewed_run(dag, conf, reviewer_api, "Commit", datetime(2026, 4, 1, tzinfo=UTC))
    assert "**5** samples selected of 43 candidates (43 files processed in this run, 0 selected before), on an " \
           "empty datapool" in seen["body"], seen["body"]
    reports = pool_dir / "_reports" / staging.run_slug(run1.run_id)
    proposal = json.loads((reports / "proposal.json").read_text())
    rows = pool.read(run_id=run1.run_id, columns=[C.KEY, C.SELECTED, C.PICK_RANK])
    picked = rows.filter(rows.column(C.SELECTED)).sort_by(C.PICK_RANK).column(C.KEY).to_pylist()
    assert picked == proposal["picks"] and len(picked) == 5
    entry = pool.history()[-1]
    assert entry["review"]["by"] == "reviewer" and entry["review"]["state"] == "committed after review"
    assert "<b>Review:</b> approved by reviewer" in (reports / "index.html").read_text()
    # (the event is on the asset of the pool this run committed to: its own, not the deployment's lightly-datapool)
    assert [(n, e["version"], e["selected"]) for n, e in asset_events(run1.run_id)] == [(f"file://{pool_dir}", entry["version"], 5)]

    # Run 2, discarded: nothing committed, no event, the staging files gone
    add_batch(source, Batch("b", (40, 70), ()))
    run2, seen = _reviewed_run(dag, conf, reviewer_api, "Discard", datetime(2026, 4, 2, tzinfo=UTC))
    assert f"5 selected before), on datapool version {entry['version']}" in seen["body"], seen["body"]
    assert pool.version() == entry["version"]
    assert "<b>Review:</b> discarded by reviewer" in (
        pool_dir / "_reports" / staging.run_slug(run2.run_id) / "index.html").read_text()
    assert asset_events(run2.run_id) == []
    assert not Path(staging.run_dir(str(pool_dir), run2.run_id)).exists()

    # Run 3, committed leaving out two of the proposal's picks (the form's leave_out, one key per line): those are
    # committed as not selected, the others as proposed with their ranks; the commit and the report say so
    add_batch(source, Batch("c", (70, 100), ()))
    asked: dict = {}

    def leave_out(detail: dict) -> dict:  # (in the reviewer's thread: no asserts, a failed one would leave it waiting)
        run_id = detail["task_instance"]["dag_run_id"]
        picks = json.loads((pool_dir / "_reports" / staging.run_slug(run_id) / "proposal.json").read_text())["picks"]
        asked["picks"] = picks
        return {"leave_out": [picks[1], f" {picks[3]} ", ""]}  # (as the form sends its lines)

    run3, seen = _reviewed_run(dag, conf, reviewer_api, "Commit", datetime(2026, 4, 3, tzinfo=UTC), fill=leave_out)
    picks = asked["picks"]
    assert "leave_out" in seen["body"] and len(picks) == 5
    assert seen["params"]["leave_out"]["value"] == []  # the form's one field, empty by default
    rows = pool.read(run_id=run3.run_id, columns=[C.KEY, C.SELECTED, C.PICK_RANK, C.RUN_ID])
    rows = rows.filter(pc.equal(rows.column(C.RUN_ID), run3.run_id))  # (the snapshot holds every run's rows)
    chosen = rows.filter(rows.column(C.SELECTED)).sort_by(C.PICK_RANK)
    assert chosen.column(C.KEY).to_pylist() == [picks[0], picks[2], picks[4]]
    assert chosen.column(C.PICK_RANK).to_pylist() == [0, 2, 4]
    left = rows.filter(pc.is_in(rows.column(C.KEY), value_set=pa.array([picks[1], picks[3]])))
    assert left.column(C.SELECTED).to_pylist() == [False, False] and left.column(C.PICK_RANK).null_count == 2
    entry = pool.history()[-1]
    assert entry["review"]["dropped"] == [picks[1], picks[3]] and entry["selected"] == 3
    assert entry["counts"]["left_out_in_review"] == 2
    assert f"leaving out 2 picks: {picks[1]}, {picks[3]}" in (
        pool_dir / "_reports" / staging.run_slug(run3.run_id) / "index.html").read_text()
    assert [(n, e["selected"]) for n, e in asset_events(run3.run_id)] == [(f"file://{pool_dir}", 3)]
