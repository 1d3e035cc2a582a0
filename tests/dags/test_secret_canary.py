"""A secret canary in a connection and in the environment never shows up in a log, an XCom, a rendered
template field, the commit metadata or the report of a full run (issue 14, fault suite)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from test_lightly_datapool_run import _run

from lightly_airflow.demo import Batch, add_batch

CONN_CANARY = "canary-conn-3f9a1c7e5b2d"
ENV_CANARY = "canary-env-8e41d0b6a27c"


@pytest.mark.slow
def test_secret_canaries_appear_nowhere(airflow_db, dagbag, s3_bucket, tmp_path, monkeypatch, capfd, caplog) -> None:
    import boto3
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from lightly_airflow.datapool import Datapool

    creds = s3_bucket.credentials
    # moto accepts any secret: the canary is the connection's real secret for this run.
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTLY_CANARY", json.dumps({
        "conn_type": "aws", "login": creds.access_key_id, "password": CONN_CANARY,
        "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region},
    }))
    monkeypatch.setenv("LIGHTLY_SECRET_TOKEN", ENV_CANARY)
    caplog.set_level("DEBUG")
    s3 = boto3.client("s3", endpoint_url=creds.endpoint_url, aws_access_key_id=creds.access_key_id,
                      aws_secret_access_key=creds.secret_access_key, region_name=creds.region)
    local = tmp_path / "local"
    for key in add_batch(local, Batch("cam", (400, 430), ())):
        s3.upload_file(str(local / key), s3_bucket.name, f"images/{key}")
    pool_dir = tmp_path / "pool"
    conf = {
        "datasource_uri": f"{s3_bucket.uri}/images", "datasource_conn_id": "lightly_canary",
        "datapool_uri": f"file://{pool_dir}",
        "selection_config": {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]},
        "worker_config": {}, "tag_name": "canary-run",
    }
    run, states = _run(dagbag.dags["lightly_datapool"], conf, datetime(2026, 7, 1, tzinfo=UTC))
    assert str(run.state) == "success", states

    places: dict[str, str] = {}
    out = capfd.readouterr()
    places["task logs (stdout/stderr)"] = out.out + out.err
    places["log records"] = caplog.text
    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        places["xcom"] = json.dumps([[x.task_id, x.key, x.value] for x in xcoms], default=str)
        rendered = session.query(RenderedTaskInstanceFields).filter(
            RenderedTaskInstanceFields.run_id == run.run_id).all()
        places["rendered fields"] = json.dumps([r.rendered_fields for r in rendered], default=str)
    assert xcoms and rendered  # the places searched are not empty
    pool = Datapool(f"file://{pool_dir}")
    places["commit metadata"] = json.dumps(pool.history(), default=str) + "".join(
        p.read_text() for p in (pool_dir / "_delta_log").glob("*.json"))
    reports = [p for p in (pool_dir / "_reports").rglob("*") if p.is_file()]
    assert any(p.name == "index.html" for p in reports)
    places["report"] = "".join(p.read_bytes().decode("latin-1") for p in reports)
    places["every file under the pool"] = "".join(
        p.read_bytes().decode("latin-1") for p in pool_dir.rglob("*") if p.is_file())
    for canary in (CONN_CANARY, ENV_CANARY):
        leaks = [where for where, text in places.items() if canary in text]
        assert not leaks, f"{canary} leaked into {leaks}"
    assert "lightly_canary" in places["rendered fields"]  # the conn id itself is visible, its secret is not
