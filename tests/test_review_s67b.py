"""The review form after a refused Commit (the select task cleared to propose again: the reviewer asked again read
nothing of the refusal), keys holding commas in the review's ``leave_out``, and the form's text for sequence runs.
Real images, real runs, real Delta commits, the proposal records the runs write."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from review_runs import DIVERSE, commit_refused
from review_runs import record as _record
from review_runs import select as _select

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.review import (
    COMMIT,
    DROP_LABEL,
    Review,
    ReviewError,
    recorded_review,
    review_body,
)

URL = "http://airflow/lightly/run"


def _refused_then_proposed_again(tmp_path: Path) -> tuple[Path, list[str], dict, dict]:
    """A proposal, another run's commit that changes its picks, alice's Commit refused, and the select task
    proposing again: the pool, the run's manifests, the refused record and the new one."""
    from faults.runs import prepare

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("base", (20, 28), ()))
    _select(pool, "manual__base", prepare(source, pool, "manual__base", DIVERSE))  # (version 0)
    mine, _alice = commit_refused(source, pool, (0, 16))
    refused = _record(pool, "manual__mine")
    assert recorded_review(refused)["state"] == "approved, not committed"
    _select(pool, "manual__mine", mine, Review("propose"))  # (the fix: the select task cleared, with its downstream)
    return pool, mine, refused, _record(pool, "manual__mine")


def test_the_form_after_a_refused_commit_says_who_when_why_and_what_changed(tmp_path: Path) -> None:
    pool, _mine, refused, new = _refused_then_proposed_again(tmp_path)
    # The new proposal read the version the other run committed; its picks differ from the refused ones.
    assert new["version"] != refused["version"] and new["picks"] != refused["picks"]
    proposed = Review("propose").proposing_after(refused, new["version"], new["picks"])
    body = review_body({**new["summary"], "review": proposed.to_dict()}, URL)
    then, now = set(refused["picks"]), set(new["picks"])
    first = body.split("\n\n")[0]
    assert first.startswith("**Asked again: the Commit of this run's previous proposal (approved by alice at ")
    assert (f"was not committed: the datapool changed after the proposal (version {refused['version']} was read for "
            f"the review, now version {new['version']})") in first
    assert "Nothing was committed" not in first and "clear the run's select task" not in first  # (done already)
    assert (f"This proposal was made on datapool version {new['version']} (the refused one on datapool version "
            f"{refused['version']}): {len(now - then)} of its picks were not in the refused proposal, and "
            f"{len(then - now)} of the refused proposal's {len(then)} picks are not in this one.") in body
    # The review's line (the report, the UI's "Awaiting review") says it too; a Commit of the new one commits it.
    assert proposed.text().startswith("awaiting review: ") and "previous proposal (approved by alice" in proposed.text()
    # A proposal with nothing refused before it (the first, or one after a plain retry) is unchanged.
    assert Review("propose").proposing_after(None, 3, ["a"]) == Review("propose")
    awaiting = {**refused, "decision": None, "summary": {**refused["summary"], "review": Review("propose").to_dict()}}
    assert Review("propose").proposing_after(awaiting, 3, ["a"]) == Review("propose")


def test_a_proposal_made_again_carries_the_refusal_and_a_retry_keeps_what_changed(tmp_path: Path) -> None:
    pool, _mine, refused, new = _refused_then_proposed_again(tmp_path)
    first = Review("propose").proposing_after(refused, new["version"], new["picks"])
    recorded = {**new, "summary": {**new["summary"], "review": first.to_dict()}}  # (as the new proposal records it)
    retried = Review("propose").proposing_after(recorded, new["version"], new["picks"])  # (the propose task retried)
    assert retried == first
    other = list(reversed(new["picks"]))  # (proposed again, before anyone answered, on other picks)
    again = Review("propose").proposing_after(recorded, new["version"], other)
    assert again.earlier is not None and again.earlier["by"] == "alice" and "new_picks" not in again.earlier
    assert "Asked again: the Commit of this run's previous proposal" in review_body(
        {**new["summary"], "review": again.to_dict()}, URL)


def test_the_select_task_proposing_again_records_the_refusal_for_the_form_and_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (needs pipeline._end_uncommitted to call Review.proposing_after: /tmp/h9-pipeline-earlier-refusal.diff)
    from lightly_airflow import staging

    pool, mine, refused, new = _refused_then_proposed_again(tmp_path)
    review = new["summary"]["review"]
    assert review["state"] == "awaiting review" and review["earlier"]["by"] == "alice"
    assert review["earlier"]["version"] == refused["version"] and review["earlier"]["now_version"] == new["version"]
    body = _form(monkeypatch, new["summary"], pool, "manual__mine")  # (the select task's XCom is this summary)
    assert body.startswith("**Asked again: the Commit of this run's previous proposal (approved by alice at ")
    assert "Asked again: a Commit of this proposal" not in body  # (the new proposal: nobody answered it yet)
    page = (Path(staging.reports_dir(str(pool), "manual__mine")) / "index.html").read_text()
    assert "previous proposal (approved by alice" in page
    bob = Review("decide", approved=True, by="bob", at=datetime.now(UTC).isoformat())
    decided = _select(pool, "manual__mine", mine, bob)  # the new proposal reviewed and committed
    assert decided.committed and "earlier" not in decided.review


def test_keys_with_commas_and_spaces_are_left_out_one_per_line(tmp_path: Path) -> None:
    # S3 keys may hold commas and spaces. The Airflow form sends a list (its text box, one key per line); text from
    # another task's form was split on commas too, so "a, b.png" became "a" and "b.png", both refused as no picks.
    from faults.runs import prepare

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 12), ()))
    for png in sorted((source / "a").rglob("*.png")):
        png.rename(png.with_name(f"{png.stem}, take 2 .png"))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    _select(pool, "manual__mine", mine, Review("propose"))
    picks = _record(pool, "manual__mine")["picks"]
    assert all(", take 2 .png" in k for k in picks)

    # Several picks on one line (as the report's review line lists them): refused, the line named, the fix said.
    joined = Review.from_response({"chosen_options": [COMMIT], "params_input": {"leave_out": [f"{picks[0]}, {picks[1]}"]}})
    with pytest.raises(ReviewError, match=re.escape(f"A line holds several picks ('{picks[0]}, {picks[1]}'"
                                                    "): give one key per line")):
        _select(pool, "manual__mine", mine, joined)

    # Every pick pasted on one line: found at once (linear), named in a few hundred characters, not 10,000 keys'.
    line = ", ".join(f"{k}" for k in picks * 1700)
    with pytest.raises(ReviewError, match=r"A line holds several picks \('a/digits/.*… \(\d+ characters\)\)") as info:
        Review("decide", approved=True, dropped=(line,)).keep(picks)
    assert len(str(info.value)) < 1000 and len(line) > 300_000

    text = Review.from_response({"chosen_options": [COMMIT], "responded_by_user": {"name": "alice"},
                                 "params_input": {"leave_out": f"{picks[1]}\n\n {picks[4]}\n"}})
    assert text.dropped == (picks[1], picks[4])
    listed = Review.from_response({"chosen_options": [COMMIT], "params_input": {"leave_out": [picks[1], picks[4]]}})
    assert listed.dropped == text.dropped
    summary = _select(pool, "manual__mine", mine, text)
    assert summary.committed and summary.selected == 4 and summary.review["dropped"] == [picks[1], picks[4]]


def test_the_form_of_a_sequence_run_says_a_sequence_is_left_out_whole(tmp_path: Path) -> None:
    # (a reviewer who left out one frame of a sequence was refused at the commit; the form had not said so, and it
    # named the field "leave_out" where the form shows its label, "Picks to leave out")
    from video.runs import two_videos_proposed

    _, _, _, proposed = two_videos_proposed(tmp_path, DIVERSE)  # (two videos, sequences of 3 frames)
    body = review_body(proposed.to_dict(), URL)
    assert body.startswith("**6** samples selected (2 sequences of 3 frames) of 62 candidates (2 files processed "
                           "(62 samples, video frames included)")
    assert f"in **{DROP_LABEL}** (`leave_out`), then Commit" in body
    assert "A sequence is left out whole or not at all: list every frame of each sequence you leave out" in body
    plain = review_body({**proposed.to_dict(), "metrics": {}}, URL)  # (a run of images)
    assert "sequence" not in plain and f"in **{DROP_LABEL}**" in plain


def _form(monkeypatch: pytest.MonkeyPatch, summary: dict, pool: Path | None, run_id: str) -> str:
    """The review task's form for ``summary`` (the select task's XCom), as its ``execute`` writes it; Airflow's
    Human-in-the-loop request (the API server's) is left out: the body is what it would store."""
    from types import SimpleNamespace

    from airflow.providers.standard.operators.hitl import HITLOperator

    from lightly_airflow.operators.review import ReviewSelectionOperator

    monkeypatch.setattr(HITLOperator, "execute", lambda self, context: self.body)
    op = ReviewSelectionOperator(task_id="review_selection",
                                 datapool_uri=None if pool is None else f"file://{pool}", datapool_conn_id="None")
    ti = SimpleNamespace(xcom_pull=lambda task_ids: summary)
    return op.execute({"ti": ti, "run_id": run_id, "dag": SimpleNamespace(dag_id="lightly_datapool")})


def test_the_form_asked_again_on_the_same_proposal_says_why_the_commit_was_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Commit that cannot be committed as given (a key that is no pick): the fix is "clear the review task and
    # answer again", and the form asked again said nothing of it (the select task's XCom still says awaiting review).
    from faults.runs import prepare

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 10), ()))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    proposal = _select(pool, "manual__mine", mine, Review("propose")).to_dict()  # (the select task's XCom)
    assert not _form(monkeypatch, proposal, pool, "manual__mine").startswith("**Asked again")
    typo = Review("decide", approved=True, by="alice", at=datetime.now(UTC).isoformat(), dropped=("a/nope.png",))
    with pytest.raises(ReviewError, match="not among the proposal's 6 picks"):
        _select(pool, "manual__mine", mine, typo)

    body = _form(monkeypatch, proposal, pool, "manual__mine")
    assert body.startswith("**Asked again: a Commit of this proposal was not committed.** The review: approved by "
                           "alice at ")
    assert ("leaving out 1 pick: a/nope.png; not committed: The reviewer left out 1 key(s) that are not among the "
            "proposal's 6 picks: 'a/nope.png'.") in body.split("\n\n")[0]
    assert "**6** samples selected of 10 candidates" in body
    assert not _form(monkeypatch, proposal, None, "manual__mine").startswith("**Asked again")  # (no datapool_uri)
    # A record that is not this proposal (another run's) says nothing; an unreadable one is logged, the form shown.
    assert not _form(monkeypatch, {**proposal, "run_id": "manual__x"}, pool, "manual__mine").startswith("**Asked")
    assert "samples selected" in _form(monkeypatch, proposal, tmp_path / "nowhere", "manual__mine")
    bob = Review("decide", approved=True, by="bob", at=datetime.now(UTC).isoformat())
    assert _select(pool, "manual__mine", mine, bob).committed  # (answered again: committed)
