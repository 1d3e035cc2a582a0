"""Choose where the embedding runs: in the Airflow worker (``local``) or in GPU pods (``kubernetes``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.bases.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

EXECUTION_MODES = ("local", "kubernetes")


class ExecutionModeBranchOperator(BaseBranchOperator):
    """Follow the task that embeds in the requested execution mode; the other one is skipped.

    :param execution_mode: ``local`` or ``kubernetes`` (templated, usually ``{{ params.execution_mode }}``).
    :param local_task_id: task id of the in-process embed task.
    :param kubernetes_task_id: task id of the pod embed task.
    """

    template_fields: Sequence[str] = ("execution_mode",)

    def __init__(self, *, execution_mode: str, local_task_id: str, kubernetes_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.execution_mode = execution_mode
        self.local_task_id = local_task_id
        self.kubernetes_task_id = kubernetes_task_id

    def choose_branch(self, context: Any) -> str:
        """The embed task of the mode; another mode fails the task without a retry (the DAG's ``retries`` waited a
        minute twice to fail the same way), naming the parameter and the modes."""
        mode = str(self.execution_mode).strip().lower()
        if mode not in EXECUTION_MODES:  # (no retry: the next try renders the same mode)
            raise AirflowFailException(
                f"Parameter 'execution_mode': got {self.execution_mode!r}. Fix: use one of {EXECUTION_MODES}."
            )
        return self.local_task_id if mode == "local" else self.kubernetes_task_id
