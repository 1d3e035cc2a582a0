"""Review before commit (``lightly_airflow.review``): a run proposes, a person commits or discards, and only the
reviewed picks are ever committed; real images through the plain functions the DAG's tasks call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.review import COMMIT, DISCARD, PROPOSAL_FILE, Review, ReviewError, review_short

from .runs import prepare

DIVERSE = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
AT = datetime(2026, 12, 5, 17, 30, tzinfo=UTC)


def _select(pool: Path, run_id: str, manifests: list[str], review: Review | None = None):
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                             selection_config=DIVERSE, review=review)


def _committed_picks(pool: Path, run_id: str) -> list[str]:
    from lightly_airflow.datapool import Datapool

    rows = Datapool(f"file://{pool}").read(run_id=run_id, columns=[C.KEY, C.SELECTED, C.PICK_RANK, C.RUN_ID])
    rows = rows.filter(pc.and_(pc.equal(rows.column(C.RUN_ID), run_id), pc.fill_null(rows.column(C.SELECTED), False)))
    return rows.sort_by(C.PICK_RANK).column(C.KEY).to_pylist()


def _versions(pool: Path) -> list[int]:
    """The pool's versions that committed something (a run or a tag; not the table's creation)."""
    from lightly_airflow.datapool import Datapool

    p = Datapool(f"file://{pool}")
    return [e["version"] for e in p.history() if e.get("run_id") or e.get("tag")] if p.exists() else []


def _report(pool: Path, run_id: str) -> str:
    from lightly_airflow import staging

    return (Path(staging.reports_dir(str(pool), run_id)) / "index.html").read_text()


def _proposal(pool: Path, run_id: str) -> dict:
    from lightly_airflow import staging

    return json.loads((Path(staging.reports_dir(str(pool), run_id)) / PROPOSAL_FILE).read_text())


def _staged(pool: Path, run_id: str) -> bool:
    from lightly_airflow import staging

    return Path(staging.run_dir(str(pool), run_id)).exists()


def test_a_proposal_commits_nothing_and_the_approval_commits_exactly_the_reviewed_picks(tmp_path, capsys) -> None:
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 40), ()))
    manifests = prepare(source, pool, "manual__r1", DIVERSE)

    proposed = _select(pool, "manual__r1", manifests, Review("propose"))
    assert proposed.review["state"] == "awaiting review"
    assert proposed.selected == 6
    assert _versions(pool) == []  # nothing committed
    assert _staged(pool, "manual__r1")  # the decision selects again from the staging files
    record = _proposal(pool, "manual__r1")
    assert len(record["picks"]) == 6 and record["version"] is None
    assert "<b>Review:</b> awaiting review" in _report(pool, "manual__r1")

    at = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)  # (the answer after the proposal)
    decided = _select(pool, "manual__r1", manifests, Review("decide", approved=True, by="alice", at=at.isoformat()))
    assert decided.version is not None and not decided.already_committed
    assert _committed_picks(pool, "manual__r1") == record["picks"]  # the reviewed picks, in the reviewed order
    from lightly_airflow.datapool import Datapool

    entry = Datapool(f"file://{pool}").history()[-1]
    assert entry["review"]["by"] == "alice" and entry["review"]["state"] == "committed after review"
    assert review_short(entry["review"]) == "approved by alice"
    assert f"approved by alice at {at:%Y-%m-%d %H:%M} UTC" in _report(pool, "manual__r1")
    assert not _staged(pool, "manual__r1")

    again = _select(pool, "manual__r1", manifests, Review("decide", approved=True, by="alice"))  # a retry
    assert again.already_committed and again.version == decided.version
    assert again.review["by"] == "alice"  # (from the commit's metadata)
    assert _versions(pool) == [decided.version]

    from lightly_airflow.cli import main

    capsys.readouterr()
    assert main(["datapool", "history", f"file://{pool}"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "review" in table[0].split() and "approved by alice" in table[-1]


def test_a_pool_that_changed_the_picks_since_the_review_commits_nothing(tmp_path) -> None:
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 40), ()))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    _select(pool, "manual__mine", mine, Review("propose"))
    reviewed = _proposal(pool, "manual__mine")["picks"]

    # Meanwhile another run commits a selection from the same files: they are selected now, so the reviewed run
    # would pick differently.
    other = prepare(source, pool, "manual__other", DIVERSE)
    committed = _select(pool, "manual__other", other)
    assert set(_committed_picks(pool, "manual__other")) & set(reviewed)

    with pytest.raises(ReviewError) as err:
        _select(pool, "manual__mine", mine, Review("decide", approved=True, by="alice"))
    message = str(err.value)
    assert f"the empty datapool was read for the review, now version {committed.version}" in message
    assert "Nothing was committed" in message
    assert "pick 1 is now" in message or "picks now against 6 reviewed" in message
    assert _versions(pool) == [committed.version]  # the other run's commit only
    assert _staged(pool, "manual__mine")  # kept: clearing the select task proposes again


def test_a_change_of_the_pool_that_keeps_the_picks_does_not_stop_the_commit(tmp_path) -> None:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.tagging import create_tag

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 30), ()))
    first = prepare(source, pool, "manual__first", DIVERSE)
    _select(pool, "manual__first", first)
    add_batch(source, Batch("b", (30, 60), ()))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    _select(pool, "manual__mine", mine, Review("propose"))
    reviewed = _proposal(pool, "manual__mine")["picks"]

    p = Datapool(f"file://{pool}")
    rows = p.read(columns=[C.SAMPLE_ID, "commit_version"]).slice(0, 3)
    create_tag(p, "by-hand", rows, made_by="bob")  # a new version that selects nothing

    decided = _select(pool, "manual__mine", mine, Review("decide", approved=True, by="alice"))
    assert decided.version == _versions(pool)[-1] and len(_versions(pool)) == 3
    assert _committed_picks(pool, "manual__mine") == reviewed


def test_a_discarded_proposal_commits_nothing_and_removes_its_staging_files(tmp_path) -> None:
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 40), ()))
    manifests = prepare(source, pool, "manual__r1", DIVERSE)
    _select(pool, "manual__r1", manifests, Review("propose"))

    discarded = _select(pool, "manual__r1", manifests, Review("decide", approved=False, by="bob"))
    assert discarded.review["state"] == "discarded in review"
    assert _versions(pool) == []
    assert not _staged(pool, "manual__r1")
    assert "<b>Review:</b> discarded by bob: nothing committed" in _report(pool, "manual__r1")
    # A retry of either task answers with the recorded discard; nothing is selected or committed again.
    for review in (Review("propose"), Review("decide", approved=True, by="alice")):
        again = _select(pool, "manual__r1", manifests, review)
        assert again.review["state"] == "discarded in review" and again.review["by"] == "bob"
    assert _versions(pool) == []


def test_an_approval_without_a_proposal_commits_nothing(tmp_path) -> None:
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 20), ()))
    manifests = prepare(source, pool, "manual__r1", DIVERSE)
    with pytest.raises(ReviewError, match="has no proposal to commit"):
        _select(pool, "manual__r1", manifests, Review("decide", approved=True, by="alice"))
    assert _versions(pool) == []


def test_the_reviewers_answer_is_read_from_the_human_in_the_loop_tasks_result() -> None:
    from airflow.providers.standard.triggers.hitl import HITLTriggerEventSuccessPayload

    payload = HITLTriggerEventSuccessPayload(chosen_options=[COMMIT], params_input={}, responded_at=AT,
                                             responded_by_user={"id": "7", "name": "alice"})
    review = Review.from_response(dict(payload), "review_selection")
    assert review == Review("decide", approved=True, by="alice", at="2026-12-05T17:30:00+00:00")
    assert Review.from_response({"chosen_options": [DISCARD], "responded_by_user": {"id": "7"}}).by == "7"
    assert not Review.from_response({"chosen_options": [DISCARD]}).approved
    for bad in (None, {}, {"chosen_options": []}, {"chosen_options": [COMMIT, DISCARD]}, {"chosen_options": ["Yes"]}):
        with pytest.raises(ReviewError, match="review_selection"):
            Review.from_response(bad, "review_selection")
    with pytest.raises(ValueError, match="propose"):
        Review("approve")  # type: ignore[arg-type]
    # A review task's timeout: Airflow's scheduler answers its default (Discard) for nobody
    timed_out = Review.from_response({"chosen_options": [DISCARD], "responded_by_user": None, "responded_at": AT})
    assert timed_out.text() == ("discarded at 2026-12-05 17:30 UTC: nobody answered before the review's timeout; "
                                "nothing committed")


def test_picks_left_out_in_review_are_committed_unselected_and_a_key_not_picked_commits_nothing(tmp_path) -> None:
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 40), ()))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    _select(pool, "manual__mine", mine, Review("propose"))
    reviewed = _proposal(pool, "manual__mine")["picks"]

    # A key that is no pick (a typo): nothing committed, the error names it
    typo = Review("decide", approved=True, by="alice", dropped=(reviewed[0], "a/digits/nope.png"))
    with pytest.raises(ReviewError, match=r"not among the proposal's 6 picks: 'a/digits/nope.png'\. Nothing was "):
        _select(pool, "manual__mine", mine, typo)
    assert _versions(pool) == []

    review = Review.from_response({"chosen_options": [COMMIT], "responded_by_user": {"name": "alice"},
                                   "params_input": {"leave_out": [f" {reviewed[4]}", "", reviewed[1], reviewed[4]]}})
    assert review.dropped == (reviewed[4], reviewed[1])  # stripped, blanks and repeats dropped, in order
    summary = _select(pool, "manual__mine", mine, review)
    assert summary.selected == 4
    assert _committed_picks(pool, "manual__mine") == [reviewed[i] for i in (0, 2, 3, 5)]
    from lightly_airflow.datapool import Datapool

    entry = Datapool(f"file://{pool}").history()[-1]
    assert entry["review"]["dropped"] == [reviewed[4], reviewed[1]] and entry["counts"]["left_out_in_review"] == 2
    assert f"approved by alice, leaving out 2 picks: {reviewed[4]}, {reviewed[1]}" in _report(pool, "manual__mine")
    # One key per line also reads (a form that sends text; a key may hold commas); a Discard leaves nothing out
    assert Review.from_response({"chosen_options": [COMMIT], "params_input": {"leave_out": "x.png\n y.png,z.png\n"}}
                                ).dropped == ("x.png", "y.png,z.png")
    assert Review.from_response({"chosen_options": [DISCARD], "params_input": {"leave_out": ["x.png"]}}).dropped == ()
