"""A reviewer's Commit that the run refuses (the datapool changed meanwhile so that the picks differ, or the answer
cannot be committed as given) is recorded: the proposal's record, its report and the UI's list say the decision was
taken, why nothing was committed and the fix, not "awaiting review"; a reviewed sequence run's metrics list only the
sequences committed, those left out apart. Real images and videos through the plain functions the DAG's tasks call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.review import PROPOSAL_FILE, Review, ReviewError, recorded_review

DIVERSE = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _select(pool: Path, run_id: str, manifests: list[str], review: Review | None = None, **kwargs):
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                             selection_config=DIVERSE, review=review, **kwargs)


def _folder(pool: Path, run_id: str) -> Path:
    from lightly_airflow import staging

    return Path(staging.reports_dir(str(pool), run_id))


def _waiting(pool: Path) -> list[dict]:
    from lightly_airflow.plugins.data import PoolSpec, proposals_awaiting_review

    return proposals_awaiting_review(PoolSpec("main", f"file://{pool}"), None, set())


def test_a_commit_refused_because_the_pool_changed_is_recorded_with_the_reason_and_the_fix(tmp_path: Path) -> None:
    from faults.runs import prepare

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 40), ()))
    mine = prepare(source, pool, "manual__mine", DIVERSE)
    _select(pool, "manual__mine", mine, Review("propose"))
    assert _waiting(pool)[0]["review"]["state"] == "awaiting review"
    other = prepare(source, pool, "manual__other", DIVERSE)  # another run commits first: the picks differ now
    _select(pool, "manual__other", other)

    with pytest.raises(ReviewError, match="the datapool changed after the proposal") as err:
        _select(pool, "manual__mine", mine, Review("decide", approved=True, by="alice"))
    record = json.loads((_folder(pool, "manual__mine") / PROPOSAL_FILE).read_text())
    review = recorded_review(record)
    assert review["state"] == record["summary"]["review"]["state"] == "approved, not committed"  # was: awaiting review
    assert review["by"] == "alice" and review["refused"] == " ".join(str(err.value).split())
    assert review["text"].startswith("approved by alice; not committed: Run 'manual__mine': the datapool changed")
    assert "clear the run's select task to propose again" in review["text"]
    page = (_folder(pool, "manual__mine") / "index.html").read_text()
    assert "<b>Review:</b> approved by alice; not committed: Run &#x27;manual__mine&#x27;: the datapool changed" in page
    assert "<b>Review:</b> awaiting review" not in page
    [waiting] = _waiting(pool)
    assert waiting["review"]["state"] == "approved, not committed" and waiting["picks"] == 6

    # The fix it names: the select task cleared proposes again on the pool as it is now, and that commits.
    _select(pool, "manual__mine", mine, Review("propose"))
    assert _waiting(pool)[0]["review"]["state"] == "awaiting review"
    decided = _select(pool, "manual__mine", mine, Review("decide", approved=True, by="alice"))
    assert decided.committed and decided.review["state"] == "committed after review"


def test_a_reviewed_sequence_run_lists_only_the_sequences_it_committed(tmp_path: Path) -> None:
    from video.runs import two_videos_proposed

    _, pool, listed, proposed = two_videos_proposed(tmp_path, DIVERSE)
    first, second = proposed.metrics["sequences"]

    def decide(dropped: list[str]):
        return _select(pool, "manual__v", listed.manifests, selected_sequence_length=3,
                       review=Review("decide", approved=True, by="bob", dropped=tuple(dropped)))

    with pytest.raises(ReviewError, match="some frames of 1 selected sequence"):  # (part of a sequence: refused)
        decide(first["frames"][1:])
    review = recorded_review(json.loads((_folder(pool, "manual__v") / PROPOSAL_FILE).read_text()))
    assert review["state"] == "approved, not committed" and "leaving out 2 picks" in review["text"]
    assert "clear the review task and answer again" in review["refused"]

    decided = decide(first["frames"])
    assert decided.selected == 3
    assert [s["frames"] for s in decided.metrics["sequences"]] == [second["frames"]]  # (it listed both)
    assert decided.metrics["sequences"][0]["sequence"] == 1  # (the pool's `sequence` of its frames)
    assert decided.metrics["sequences_selected"] == 1
    assert decided.metrics["sequences_left_out_in_review"] == [
        {"video": first["video"], "frames": first["frames"], "sequence": 0}]
