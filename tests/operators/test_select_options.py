"""The select task's compaction option is checked when the DAG is parsed, not after a run's embedding."""

from __future__ import annotations

import pytest

from lightly_airflow.datapool.compaction import CompactionOptions
from lightly_airflow.operators.select import SelectAndCommitOperator


def _op(**kwargs):
    return SelectAndCommitOperator(task_id="select_and_commit", manifests=[], selection_config={},
                                   datapool_uri="file:///tmp/pool", **kwargs)


def test_compaction_options_are_read_at_parse_time() -> None:
    assert _op().compaction == CompactionOptions()
    assert _op(compaction={"mode": "off"}).compaction.mode == "off"
    tuned = CompactionOptions(min_small_files=10, target_file_bytes=2**26)
    assert _op(compaction=tuned).compaction is tuned
    with pytest.raises(ValueError, match="select_and_commit: compaction .* mode must be 'auto' or 'off'"):
        _op(compaction={"mode": "on"})
    with pytest.raises(ValueError, match="select_and_commit: compaction .*min_smal"):
        _op(compaction={"min_smal_files": 3})


def test_review_options_are_checked_at_parse_time() -> None:
    assert _op(review="propose").review == "propose"
    assert _op(review="decide", review_task_id="review_selection").review_task_id == "review_selection"
    with pytest.raises(ValueError, match="review must be 'propose', 'decide' or None"):
        _op(review="approve")
    with pytest.raises(ValueError, match="give both or neither"):
        _op(review="decide")
    with pytest.raises(ValueError, match="give both or neither"):
        _op(review_task_id="review_selection")
    from lightly_airflow.operators.review import ReviewSelectionOperator

    assert ReviewSelectionOperator(task_id="review_selection").options == ["Commit", "Discard"]
    with pytest.raises(ValueError, match="options is fixed"):
        ReviewSelectionOperator(task_id="review_selection", options=["Yes", "No"])
    from datetime import timedelta

    timed = ReviewSelectionOperator(task_id="review_selection", discard_after=timedelta(hours=72))
    assert timed.response_timeout == timedelta(hours=72) and timed.defaults == ["Discard"]  # (never Commit)
    with pytest.raises(ValueError, match="discard_after sets the timeout"):
        ReviewSelectionOperator(task_id="review_selection", defaults="Commit")
    with pytest.raises(ValueError, match="discard_after must be positive"):
        ReviewSelectionOperator(task_id="review_selection", discard_after=timedelta(0))
    from lightly_airflow.review import review_body

    body = review_body({"selected": 3, "candidates": 9, "version": 2, "warnings": ["BALANCE missed"]}, "/r",
                       timedelta(hours=72))
    assert "- Warning: BALANCE missed" in body and "within 3 days the proposal is discarded" in body


def test_a_review_that_cannot_be_committed_fails_the_task_without_retries(tmp_path) -> None:
    """A decision without an answer, or picks that are no longer the reviewed ones, fail at once: selecting again
    on a retry gives the same answer (AirflowFailException, not a retried error)."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    diverse = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    op = SelectAndCommitOperator(task_id="commit_reviewed", manifests=[], selection_config=diverse, review="decide",
                                 review_task_id="review_selection", datapool_uri=f"file://{tmp_path / 'pool'}")
    answers = {"review_selection": None}
    context = {"ti": SimpleNamespace(xcom_pull=lambda task_ids: answers[task_ids]), "run_id": "manual__r1",
               "dag": SimpleNamespace(dag_id="lightly_datapool"), "dag_run": None}
    with pytest.raises(AirflowFailException, match="review_selection left no answer"):
        op.execute(context)
    answers["review_selection"] = {"chosen_options": ["Commit"], "responded_by_user": {"id": "1", "name": "alice"}}
    with pytest.raises(AirflowFailException, match="has no proposal to commit"):
        op.execute(context)  # (the real pipeline: no proposal was recorded for this run)
