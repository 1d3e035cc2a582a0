"""The "Curation report" extra link: a URL of the plugin's run route, built from the task instance key alone."""

from __future__ import annotations

from urllib.parse import quote

from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.sdk import BaseOperator, BaseOperatorLink
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lightly_airflow.links import ReportLink
from lightly_airflow.links.report import report_url

RUN = "manual__2026-01-02T10:00:00+00:00"


class _Op(BaseOperator):
    operator_extra_links = (ReportLink(),)


def test_link_points_at_the_run_route(monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    link = ReportLink()
    assert isinstance(link, BaseOperatorLink) and link.name == "Curation report"
    key = TaskInstanceKey(dag_id="lightly_datapool", task_id="select_and_commit", run_id=RUN, try_number=1, map_index=-1)
    url = link.get_link(_Op(task_id="select_and_commit"), ti_key=key)
    assert url == f"/lightly/runs/lightly_datapool/{quote(RUN, safe='')}"
    assert "+" not in url and ":" not in url


def test_link_uses_the_api_base_url(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/team/")
    assert report_url("d", "r") == "https://airflow.example.com/team/lightly/runs/d/r"
    assert report_url("d", "r", base_url="") == "/lightly/runs/d/r"


def test_the_plugin_routes_the_link_to_the_same_run(monkeypatch):
    """The encoded run id arrives at the plugin's run route decoded, exactly as the UI's tab would send it."""
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", "{}")
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    from lightly_airflow.plugins import app as plugin_app

    sub = plugin_app.create_app()
    sub.dependency_overrides[plugin_app.AUTHENTICATED] = lambda: None
    sub.dependency_overrides[plugin_app.CAN_READ_RUNS] = lambda: None
    root = FastAPI()
    root.mount("/lightly", sub)
    client = TestClient(root)
    data = client.get(report_url("lightly_datapool", RUN, base_url="").replace("/runs/", "/api/runs/", 1)).json()
    assert data["dag_id"] == "lightly_datapool" and data["run_id"] == RUN


def test_the_link_survives_dag_serialization_as_an_xcom_link():
    """The API server never runs get_link: the worker pushes the URL to XCom and the UI reads that key."""
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("lightly_link_test", schedule=None) as dag:
        _Op(task_id="select_and_commit")
    task = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task("select_and_commit")
    (link,) = task.operator_extra_links
    assert link.name == "Curation report" and link.xcom_key == ReportLink().xcom_key == "_link_ReportLink"
