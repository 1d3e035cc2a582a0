"""The select task writes the selected video frames' PNGs and objects' crops under the run's ``.lightly/`` after its
commit: with the credentials the list task and the shard tasks read ``.lightly/`` with. It resolved them without the
run's ``lightly_uri``, hence with the datasource's connection even for a ``.lightly/`` on another cloud, which that
connection refuses: the run failed after its commit, on every retry, without its frames or crops."""

from __future__ import annotations

import json

import pytest

from lightly_airflow.operators.list_files import ListNewFilesOperator
from lightly_airflow.operators.select import SelectAndCommitOperator
from lightly_airflow.operators.stages import ComputeMetadataOperator

LIGHTLY_URI = "gs://other-cloud/lightly"


def test_the_select_task_reaches_lightly_on_another_store_as_the_list_task_does(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DATASOURCE", json.dumps(
        {"conn_type": "aws", "login": "AKIDTEST", "password": "test-secret", "extra": {"region_name": "eu-west-1"}}))
    common = {"datapool_uri": str(tmp_path / "pool"), "datasource_conn_id": "aws_datasource",
              "lightly_uri": LIGHTLY_URI}
    listing = ListNewFilesOperator(task_id="list_new_files", datasource_uri="s3://data/images", **common)
    shard = ComputeMetadataOperator(task_id="compute_metadata", manifest_uri="x", **common)
    select = SelectAndCommitOperator(task_id="select_and_commit", manifests=[], selection_config={}, **common)
    assert listing.lightly_credentials is None and shard.lightly_credentials is None  # the environment's
    assert select.lightly_credentials is None
    # (what the select task wrote frames and crops with before: the datasource's S3 connection, refused for gs://)
    with pytest.raises(ValueError, match=r"is on Google Cloud Storage .* but connection 'aws_datasource' is for S3"):
        listing.datasource_credentials.check_uri(LIGHTLY_URI)  # type: ignore[union-attr]
    # .lightly/ on the datasource's store (or inside the datasource): the datasource's connection, for all three
    same = {**common, "lightly_uri": "s3://data/lightly"}
    select = SelectAndCommitOperator(task_id="select_and_commit", manifests=[], selection_config={}, **same)
    assert select.lightly_credentials is not None and select.lightly_credentials.conn_id == "aws_datasource"


def test_the_example_dag_gives_the_select_tasks_the_runs_lightly_uri() -> None:
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).dags["lightly_datapool"]
    for task_id in ("select_and_commit", "commit_reviewed"):
        if task_id in dag.task_dict:
            assert dag.get_task(task_id).lightly_uri == "{{ params.lightly_uri }}"
            assert dag.get_task(task_id).lightly_uri == dag.get_task("list_new_files").lightly_uri
