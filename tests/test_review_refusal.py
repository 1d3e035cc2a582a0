"""What a reviewed run records when its reviewer's Commit is refused (``Review.refusing``, ``refused_record``,
``recorded_review``): the decision, why nothing was committed and the fix, never "awaiting review"; and a reviewed
sequence run's metrics as the review leaves them (``sequences_as_reviewed``). Real proposals of real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.review import (
    AWAITING_REVIEW,
    NOT_COMMITTED_AFTER_REVIEW,
    PROPOSAL_FILE,
    Review,
    ReviewError,
    mismatch,
    parse_proposal,
    recorded_review,
    refused_record,
    review_short,
    sequences_as_reviewed,
)

DIVERSE = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _proposal(pool: Path, run_id: str) -> tuple[dict, Path]:
    from lightly_airflow import staging

    path = Path(staging.reports_dir(str(pool), run_id)) / PROPOSAL_FILE
    return parse_proposal(path.read_bytes(), str(path)), path


def test_a_refused_commit_reads_approved_not_committed_with_the_reason_and_the_fix(tmp_path: Path) -> None:
    from faults.runs import prepare

    from lightly_airflow.pipeline import select_and_commit

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 12), ()))
    manifests = prepare(source, pool, "manual__r", DIVERSE)
    select_and_commit(datapool_uri=f"file://{pool}", run_id="manual__r", dag_id="t", manifests=manifests,
                      selection_config=DIVERSE, review=Review("propose"))
    proposal, path = _proposal(pool, "manual__r")
    assert recorded_review(proposal)["state"] == AWAITING_REVIEW

    # The refusal the deciding task raises when another run's commit changed the picks (pool version 3 now).
    reason = f"Run 'manual__r': {mismatch(proposal, list(reversed(proposal['picks'])), 3)}"
    approved = Review("decide", approved=True, by="alice", at="2026-12-07T21:00:00+00:00")
    refused = approved.refusing(reason)
    assert approved.state == "committed after review" and refused.state == NOT_COMMITTED_AFTER_REVIEW
    assert refused.text().startswith("approved by alice at 2026-12-07 21:00 UTC; not committed: Run 'manual__r': "
                                     "the datapool changed after the proposal (the empty datapool was read for the "
                                     "review, now version 3)")
    assert refused.text().endswith("Nothing was committed; clear the run's select task to propose again on the pool "
                                   "as it is now.")
    assert refused.to_dict()["refused"] == reason and review_short(refused.to_dict()) == "approved, not committed by alice"

    path.write_bytes(refused_record(proposal, refused))  # (as the deciding task records it)
    again, _ = _proposal(pool, "manual__r")
    assert recorded_review(again) == refused.to_dict() == again["summary"]["review"]
    assert again["picks"] == proposal["picks"]  # (a retry of the deciding task compares with them again)
    assert again["summary"]["selected"] == proposal["summary"]["selected"] == 6
    # A leave-out that cannot be committed as given (a key that is no pick) names its own fix.
    with pytest.raises(ReviewError) as err:
        Review("decide", approved=True, by="bob", dropped=("nope.png",)).keep(proposal["picks"])
    bob = Review("decide", approved=True, by="bob", dropped=("nope.png",)).refusing(str(err.value))
    assert bob.text().startswith("approved by bob, leaving out 1 pick: nope.png; not committed: The reviewer left out")
    assert "clear the review task and answer again" in bob.text()
    with pytest.raises(ValueError, match="only a review that commits can be refused"):
        Review("decide", approved=False, by="bob").refusing(reason)
    with pytest.raises(ValueError, match="records a refused review"):
        refused_record(proposal, approved)


def test_a_reviewed_sequence_runs_metrics_list_only_the_sequences_it_commits(tmp_path: Path) -> None:
    from video.runs import two_videos_proposed

    _, _, _, proposed = two_videos_proposed(tmp_path, DIVERSE)
    metrics, sequences = proposed.metrics, proposed.metrics["sequences"]
    assert len(sequences) == metrics["sequences_selected"] == 2
    first, second = sequences
    kept = Review("decide", approved=True, dropped=tuple(first["frames"])).keep(
        [k for s in sequences for k in s["frames"]], sequences)
    left_out = [k for s in sequences for k in s["frames"] if k not in kept]

    reviewed = sequences_as_reviewed(metrics, sequences, left_out, 100)
    assert reviewed["sequences"] == [{**second, "sequence": 1}]
    assert reviewed["sequences_selected"] == 1
    assert reviewed["sequences_left_out_in_review"] == [{"video": first["video"], "frames": first["frames"],
                                                         "sequence": 0}]
    assert {k: v for k, v in reviewed.items() if not k.startswith("sequences")} == {
        k: v for k, v in metrics.items() if not k.startswith("sequences")}  # (the engine's other figures as they were)
    assert sequences_as_reviewed(metrics, sequences, left_out, 0)["sequences_listed"] == 0  # (a cut is said)
    assert sequences_as_reviewed(metrics, sequences, (), 100) == metrics  # (nothing left out: as selected)
    assert json.loads(json.dumps(reviewed)) == reviewed  # (the summary is the select task's XCom)
