"""The review task's form: its own ``leave_out`` field and the fields a DAG author adds with ``params``; the DAG's
params (which Airflow hands every task) are no form fields."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG, Param

from lightly_airflow.operators.review import ReviewSelectionOperator
from lightly_airflow.review import DROP_PARAM


def test_the_authors_own_form_fields_are_kept_beside_leave_out() -> None:
    with DAG("review_form", schedule=None, params={"datasource_uri": Param("file:///x", type="string")}):
        op = ReviewSelectionOperator(task_id="review_selection", params={
            "note": Param("", type="string", title="Why"),
            "ticket": 0,  # (a plain value is a field too)
        })
    assert set(op.params) == {"note", "ticket", DROP_PARAM}  # (not the DAG's datasource_uri)
    assert op.params.get_param("note").schema["title"] == "Why" and op.params["ticket"] == 0
    assert op.params[DROP_PARAM] == []
    assert set(op.serialized_params) == {"note", "ticket", DROP_PARAM}  # (what the Required Actions form shows)


def test_without_own_params_the_form_has_leave_out_only() -> None:
    with DAG("review_plain", schedule=None, params={"n": Param(3, type="integer")}):
        op = ReviewSelectionOperator(task_id="review_selection")
    assert set(op.params) == {DROP_PARAM}
    assert set(ReviewSelectionOperator(task_id="outside_a_dag").params) == {DROP_PARAM}


def test_an_own_field_named_leave_out_is_refused() -> None:
    with pytest.raises(ValueError, match="review_selection: params 'leave_out' is the review form's own field"):
        ReviewSelectionOperator(task_id="review_selection", params={DROP_PARAM: Param("x", type="string")})
    # The DAG's own param of that name is no form field: the review's field is used, no error.
    with DAG("review_clash", schedule=None, params={DROP_PARAM: Param("x", type="string")}):
        op = ReviewSelectionOperator(task_id="review_selection")
    assert set(op.params) == {DROP_PARAM} and op.params[DROP_PARAM] == []


def test_a_run_reviewed_before_is_not_asked_again() -> None:
    # (its tasks cleared after the decision: the select task answers with the recorded decision; the review task
    # waited for an answer that changed nothing, and the DAG's next runs with it)
    from types import SimpleNamespace

    from lightly_airflow.review import Review

    op = ReviewSelectionOperator(task_id="review_selection")
    for decided in (Review("decide", approved=True, by="alice", at="2026-12-05T17:30:00+00:00", dropped=("a.png",)),
                    Review("decide", approved=False), Review("decide", approved=False, by="bob")):
        ti = SimpleNamespace(xcom_pull=lambda task_ids, d=decided: {"selected": 3, "review": d.to_dict()})
        answer = op.execute({"ti": ti})  # (returns at once: no Human-in-the-loop request, no wait)
        assert Review.from_response(answer, "review_selection") == decided
