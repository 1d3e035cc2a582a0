"""Ask a person to commit or discard a run's proposed selection: Airflow's Human-in-the-loop task, with the proposal's
counts and report link as what the reviewer reads (:mod:`lightly_airflow.review`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

from lightly_airflow.links import ReportLink
from lightly_airflow.links.report import report_url
from lightly_airflow.review import (
    COMMIT,
    COMMITTED_AFTER_REVIEW,
    DISCARD,
    DISCARDED_IN_REVIEW,
    DROP_LABEL,
    DROP_PARAM,
    PROPOSAL_FILE,
    parse_proposal,
    review_body,
)


class ReviewSelectionOperator(HITLOperator):
    """Wait (no worker slot held) until a reviewer answers **Commit** or **Discard** in Airflow's Required Actions
    for the selection a ``SelectAndCommitOperator(review="propose")`` task proposed; its result is the answer
    that ``SelectAndCommitOperator(review="decide")`` reads. The form's field ``leave_out``
    (:data:`~lightly_airflow.review.DROP_PARAM`) takes the keys of picks to commit as not selected; the task's own
    ``params`` (e.g. a reviewer's note) are further fields of the form, their answers in the result's
    ``params_input``.

    :param propose_task_id: the proposing task (its result, the run summary, gives the counts shown).
    :param discard_after: a proposal nobody answers within this time is discarded (Airflow's scheduler answers
        :data:`~lightly_airflow.review.DISCARD` for the reviewer; never Commit); default: wait until someone
        answers (with ``max_active_runs=1`` the DAG's next runs wait too).
    :param datapool_uri: the datapool (templated): the task reads the run's proposal record there, so that a
        reviewer asked again after a Commit of this proposal was refused (a left-out key that is no pick, part of a
        sequence, a pool changed meanwhile) reads why; default: the form says only what the proposing task returned.
    :param datapool_conn_id: connection for the datapool's store (templated; None: ambient credentials).
    :param kwargs: :class:`HITLOperator`'s (``notifiers``, ``assigned_users``, ``params`` …); the options, the
        defaults and the response timeout are set here. ``params``: form fields of your own, kept beside
        ``leave_out`` (a field of that name is refused); the DAG's params, which Airflow hands every task, are no
        form fields.
    """

    template_fields: Collection[str] = (*HITLOperator.template_fields, "datapool_uri", "datapool_conn_id")
    operator_extra_links = (ReportLink(),)
    ui_color = "#f6e3a1"

    def __init__(self, *, propose_task_id: str = "select_and_commit", discard_after: timedelta | None = None,
                 datapool_uri: str | None = None, datapool_conn_id: str | None = None, **kwargs: Any) -> None:
        for fixed in ("options", "multiple", "body", "defaults", "response_timeout"):
            if fixed in kwargs:
                raise ValueError(f"{kwargs.get('task_id')}: {fixed} is fixed for a selection review"
                                 + (" (discard_after sets the timeout)" if fixed in ("defaults", "response_timeout") else ""))
        if discard_after is not None and discard_after <= timedelta(0):
            raise ValueError(f"{kwargs.get('task_id')}: discard_after must be positive, not {discard_after}.")
        kwargs.setdefault("subject", "Commit the selection of {{ dag.dag_id }} run {{ run_id }} to the datapool?")
        own = _own_params(kwargs.pop("params", None), kwargs.get("task_id"))
        leave_out = Param([], type="array", items={"type": "string"}, title=DROP_LABEL,
                          description="Keys of proposed picks to commit as not selected (one per line, as the "
                                      "report shows them); empty: commit every pick. Ignored on Discard.")
        super().__init__(options=[COMMIT, DISCARD], multiple=False, response_timeout=discard_after,
                         defaults=DISCARD if discard_after is not None else None,
                         params={**own, DROP_PARAM: leave_out}, **kwargs)
        self.propose_task_id = propose_task_id
        self.discard_after = discard_after
        self.datapool_uri = datapool_uri
        self.datapool_conn_id = datapool_conn_id

    def execute(self, context: Any) -> Any:
        summary = context["ti"].xcom_pull(task_ids=self.propose_task_id) or {}
        recorded = summary.get("review") or {}
        if recorded.get("state") in (COMMITTED_AFTER_REVIEW, DISCARDED_IN_REVIEW):
            # (the run's tasks were cleared after the decision: the select task answered with it, and the deciding
            # task ends the run as decided whatever the answer, so nobody is asked again; a cleared run waited for
            # an answer that changed nothing, and with max_active_runs=1 the DAG's next runs waited with it)
            self.log.info("This run was reviewed before (%s): not asking again.", recorded.get("text"))
            return {"chosen_options": [COMMIT if recorded["state"] == COMMITTED_AFTER_REVIEW else DISCARD],
                    "params_input": {DROP_PARAM: list(recorded.get("dropped") or [])},
                    "responded_by_user": {"id": recorded.get("by"), "name": recorded.get("by")} if recorded.get("by")
                    else None, "responded_at": recorded.get("at")}
        self.body = review_body(summary, report_url(context["dag"].dag_id, context["run_id"]), self.discard_after,
                                self._proposal(context["run_id"]))
        return super().execute(context)

    def _proposal(self, run_id: str) -> dict[str, Any] | None:
        """The run's proposal record (:data:`~lightly_airflow.review.PROPOSAL_FILE`), or ``None`` without
        ``datapool_uri`` or when it cannot be read (logged: the reviewer is asked all the same)."""
        uri = str(self.datapool_uri or "").strip()
        if not uri or uri == "None":
            return None
        from lightly_airflow.hooks.storage import credentials_for
        from lightly_airflow.staging import reports_dir
        from lightly_airflow.storage import filesystem, join_uri

        where = join_uri(reports_dir(uri, run_id), PROPOSAL_FILE)
        try:
            fs, path = filesystem(where, credentials_for(self.datapool_conn_id))
            return parse_proposal(fs.cat_file(path), where)
        except Exception as exc:  # noqa: BLE001 - the form without the record's word is still the form
            self.log.warning("Could not read the proposal record %s (%s): the form does not say whether a Commit of "
                             "it was refused.", where, exc)
            return None


def _own_params(given: Any, task_id: Any) -> dict[str, Any]:
    """The task's own params (form fields) out of what Airflow hands the operator: the DAG's params, which every
    task receives (source ``dag``), are left out; a field named :data:`~lightly_airflow.review.DROP_PARAM` is
    refused (it is the review's own)."""
    if not given:
        return {}
    params = given if isinstance(given, ParamsDict) else ParamsDict(given)
    own = {key: params.get_param(key) for key in params if getattr(params.get_param(key), "source", None) != "dag"}
    if DROP_PARAM in own:
        raise ValueError(f"{task_id}: params {DROP_PARAM!r} is the review form's own field (the picks to leave out); "
                         "give your field another name")
    return own
