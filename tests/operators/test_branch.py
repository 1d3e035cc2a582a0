"""ExecutionModeBranchOperator: an unknown mode fails at once, without the DAG's retries."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lightly_airflow.operators.branch import ExecutionModeBranchOperator


def _branch(mode: str) -> ExecutionModeBranchOperator:
    return ExecutionModeBranchOperator(task_id="choose_execution_mode", execution_mode=mode, local_task_id="embed_local",
                                       kubernetes_task_id="embed_kubernetes", retries=2)


def test_the_mode_chooses_the_embed_task_and_another_mode_fails_without_retry() -> None:
    assert _branch("local").choose_branch({}) == "embed_local"
    assert _branch(" Kubernetes ").choose_branch({}) == "embed_kubernetes"
    # (a custom DAG without the example's enum, or a mode rendered from an XCom: a retry renders the same mode)
    with pytest.raises(AirflowFailException, match=r"Parameter 'execution_mode': got 'gpu'\. Fix: use one of"):
        _branch("gpu").choose_branch({})
