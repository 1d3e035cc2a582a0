"""A run's figures reach the deployment's metrics backend: the example DAG under ``dag.test`` with Airflow's
OpenTelemetry metrics on, exported over OTLP/HTTP to a receiver on 127.0.0.1 that decodes what arrives."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_lightly_datapool_run import _run  # the example DAG under dag.test, every Param at its default

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.pipeline import RunSummary
from lightly_airflow.run_metrics import METRICS, list_metrics, run_metrics


class Receiver:
    """An OTLP/HTTP metrics endpoint: every data point received, as (name, attributes, value)."""

    def __init__(self) -> None:
        self.points: list[tuple[str, dict[str, str], float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
                    ExportMetricsServiceRequest,
                )

                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        for metric in sm.metrics:
                            kind = metric.WhichOneof("data")
                            if kind not in ("gauge", "sum"):  # (Airflow's own task duration histograms)
                                continue
                            for p in getattr(metric, kind).data_points:
                                attrs = {a.key: a.value.string_value for a in p.attributes}
                                value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                                receiver.points.append((metric.name, attrs, float(value)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def latest(self, prefix: str = "airflow.lightly.") -> dict[str, tuple[dict[str, str], float]]:
        return {name: (attrs, value) for name, attrs, value in self.points if name.startswith(prefix)}


@pytest.fixture
def otel_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """Airflow's task-side metrics (what the task runner sets up from ``[metrics]``) sent to a :class:`Receiver`;
    afterwards no metrics, as before."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability.metrics import stats_utils
    from opentelemetry import metrics

    receiver = Receiver()
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_PORT", str(receiver.port))
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_INTERVAL_MILLISECONDS", "600000")  # (exported when flushed)
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    try:
        yield receiver
    finally:
        import atexit

        from airflow.sdk._shared.observability.metrics import otel_logger

        provider = metrics.get_meter_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()
        atexit.unregister(otel_logger.flush_otel_metrics)  # (its flush at exit would find the exporter shut down)
        stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
        receiver.server.shutdown()


def test_gauges_of_a_committed_run_a_dry_run_and_a_proposal() -> None:
    committed = RunSummary(run_id="r", tag="t", version=4, processed=30, selected=7, corrupt=2, duplicate=1,
                           pool_selected_before=20, problems=3, warnings=["BALANCE missed"], metrics={"seconds": 0.25})
    values = run_metrics(committed.to_dict())
    assert set(values) <= set(METRICS)
    assert values["lightly.run.committed"] == 1.0 and values["lightly.datapool.version"] == 4.0
    assert values["lightly.datapool.selected"] == 27.0 and values["lightly.run.selected"] == 7.0
    assert (values["lightly.run.corrupt"], values["lightly.run.duplicate"], values["lightly.run.problems"]) == (2, 1, 3)
    assert values["lightly.run.goals_missed"] == 1.0 and values["lightly.selection.seconds"] == 0.25
    dry = RunSummary(run_id="r", tag="t", version=4, dry_run=True, selected=7)
    proposal = RunSummary(run_id="r", tag="t", version=4, selected=7, review={"state": "awaiting review"})
    discarded = RunSummary(run_id="r", tag="t", version=4, review={"state": "discarded in review"})
    approved = RunSummary(run_id="r", tag="t", version=5, review={"state": "committed after review"})
    for s in (dry, proposal, discarded):
        v = run_metrics(s.to_dict())
        assert not s.committed and v["lightly.run.committed"] == 0.0
        assert "lightly.datapool.version" not in v and "lightly.datapool.selected" not in v
        assert "lightly.selection.seconds" not in v  # (none recorded)
    assert approved.committed and run_metrics(approved.to_dict())["lightly.datapool.version"] == 5.0
    assert RunSummary(run_id="r", tag=None, version=None).to_dict()["committed"] is False
    listed = list_metrics({"seen": 12, "new": 40, "new_files": 9, "skipped": 1, "unsupported": 2, "gone": 0})
    assert listed == {"lightly.list.seen": 12, "lightly.list.new_files": 9, "lightly.list.new_samples": 40,
                      "lightly.list.skipped": 1, "lightly.list.unsupported": 2, "lightly.list.gone": 0}
    with pytest.raises(KeyError, match="not in run_metrics.METRICS"):
        from lightly_airflow import run_metrics as module

        module._check({"lightly.run.unknown": 1.0})


def test_every_metric_is_in_the_docs_with_its_meaning() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text()
    for name, meaning in METRICS.items():
        assert f"| `airflow.{name}` | {meaning} |" in text, name


@pytest.mark.slow
def test_a_runs_figures_reach_the_metrics_backend(airflow_db, dagbag, tmp_path, otel_metrics: Receiver) -> None:
    from opentelemetry import metrics

    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    keys = add_batch(source, Batch("first", (0, 24), ("astronaut", "coffee")))
    (source / "broken.png").write_bytes(b"not a png at all")
    pool_uri = f"file://{pool_dir}"
    config = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    run, states = _run(dag, {"datasource_uri": f"file://{source}", "datapool_uri": pool_uri,
                             "selection_config": config}, datetime(2026, 4, 1, tzinfo=UTC))
    assert str(run.state) == "success", states
    metrics.get_meter_provider().force_flush()

    got = otel_metrics.latest()
    tags = {"dag_id": "lightly_datapool", "datapool": pool_uri}
    assert {attrs["dag_id"] for attrs, _ in got.values()} == {"lightly_datapool"}
    assert all(attrs == tags for attrs, _ in got.values()), got
    summary = run.get_task_instance("select_and_commit").xcom_pull(task_ids="select_and_commit")
    counts = run.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files", key="counts")
    expected = {f"airflow.{name}": value for name, value in {**list_metrics(counts), **run_metrics(summary)}.items()}
    assert {name: value for name, (_, value) in got.items()} == pytest.approx(expected)
    # ... and those are the run's real figures
    pool = Datapool(pool_uri)
    assert got["airflow.lightly.list.new_files"][1] == len(keys) + 1
    assert got["airflow.lightly.run.processed"][1] == pool.read().num_rows == len(keys) + 1
    assert got["airflow.lightly.run.selected"][1] == 6 and got["airflow.lightly.datapool.selected"][1] == 6
    from lightly_airflow.storage import read_parquet

    assert got["airflow.lightly.run.corrupt"][1] == 1
    assert got["airflow.lightly.run.problems"][1] == read_parquet(summary["problems_uri"]).num_rows >= 1
    assert got["airflow.lightly.run.committed"][1] == 1 and got["airflow.lightly.datapool.version"][1] == pool.version()
    assert got["airflow.lightly.selection.seconds"][1] > 0
