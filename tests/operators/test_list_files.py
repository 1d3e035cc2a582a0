"""ListNewFilesOperator: a connection problem fails the first task at once (no retry), naming the fix."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lightly_airflow.operators.list_files import ListNewFilesOperator


def test_an_undefined_connection_fails_without_retry(tmp_path, monkeypatch) -> None:
    (tmp_path / "ds").mkdir()
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    op = ListNewFilesOperator(task_id="list_new_files", datasource_uri=str(tmp_path / "ds"),
                              datapool_uri=str(tmp_path / "pool"), datasource_conn_id="no_such_conn")
    with pytest.raises(AirflowFailException, match=r"'no_such_conn' is not defined.*AIRFLOW_CONN_NO_SUCH_CONN"):
        op.execute({"run_id": "manual__1"})
