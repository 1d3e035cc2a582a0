"""A run's figures reach the deployment's metrics backend: the example DAG under ``dag.test`` with Airflow's
OpenTelemetry metrics on, exported over OTLP/HTTP to a receiver on 127.0.0.1 that decodes what arrives, and with
Airflow's plain StatsD logger on, sending UDP lines to a socket on 127.0.0.1 (tags dropped: the legacy names)."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_lightly_datapool_run import _run  # the example DAG under dag.test, every Param at its default

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.pipeline import RunSummary
from lightly_airflow.run_metrics import METRICS, embed_metrics, legacy_name, list_metrics, run_metrics


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


def _initialize_as_the_task_runner_does() -> None:
    """Airflow's task-side metrics from ``[metrics]``, exactly as its task runner's ``main()`` sets them up."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability.metrics import stats_utils

    stats.initialize(factory=stats_utils.get_stats_factory(),
                     export_legacy_names=conf.getboolean("metrics", "legacy_names_on"))


class StatsdReceiver:
    """A StatsD daemon's socket: the UDP datagrams Airflow's StatsD logger sends, as lines."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def lines(self, prefix: str = "airflow.lightly.") -> list[str]:
        """Every line received so far (waits until nothing came for 0.5 s), in order."""
        out: list[str] = []
        self.sock.settimeout(0.5)
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return [line for line in out if line.startswith(prefix)]
            out.extend(data.decode().splitlines())


@pytest.fixture
def statsd_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdReceiver]:
    """Airflow's task-side metrics with plain StatsD on (no Datadog, no InfluxDB tags), sent to a
    :class:`StatsdReceiver`; afterwards no metrics, as before."""
    pytest.importorskip("statsd", reason="Airflow's StatsD logger needs the statsd package (apache-airflow[statsd])")
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk._shared.observability.metrics.statsd_logger import SafeStatsdLogger

    receiver = StatsdReceiver()
    for name, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(receiver.port),
                        "OTEL_ON": "False", "STATSD_DATADOG_ENABLED": "False",
                        "STATSD_INFLUXDB_ENABLED": "False"}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{name}", value)
    monkeypatch.delenv("AIRFLOW__METRICS__LEGACY_NAMES_ON", raising=False)  # (Airflow's default: True)
    _initialize_as_the_task_runner_does()
    assert isinstance(stats._get_backend(), SafeStatsdLogger)  # (not the no-op logger of a missing statsd)
    try:
        yield receiver
    finally:
        stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
        receiver.sock.close()


@pytest.fixture
def otel_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """Airflow's task-side metrics (what the task runner sets up from ``[metrics]``) sent to a :class:`Receiver`;
    afterwards no metrics, as before."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from opentelemetry import metrics

    receiver = Receiver()
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_PORT", str(receiver.port))
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_INTERVAL_MILLISECONDS", "600000")  # (exported when flushed)
    _initialize_as_the_task_runner_does()
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
                           pool_selected_before=20, problems=3, warnings=["BALANCE missed"], goals_missed=3,
                           metrics={"seconds": 0.25})
    values = run_metrics(committed.to_dict())
    assert set(values) <= set(METRICS)
    assert values["lightly.run.committed"] == 1.0 and values["lightly.datapool.version"] == 4.0
    assert values["lightly.datapool.selected"] == 27.0 and values["lightly.run.selected"] == 7.0
    assert (values["lightly.run.corrupt"], values["lightly.run.duplicate"], values["lightly.run.problems"]) == (2, 1, 3)
    # the report's count of missed goals (its warnings among them), not the number of warnings
    assert values["lightly.run.goals_missed"] == 3.0 and values["lightly.selection.seconds"] == 0.25
    unreported = RunSummary(run_id="r", tag="t", version=4, warnings=["BALANCE missed"])  # (no report written now)
    assert "lightly.run.goals_missed" not in run_metrics(unreported.to_dict())
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


def test_legacy_names_are_written_as_airflow_writes_its_name_variables() -> None:
    from airflow.sdk._shared.observability.metrics.validators import stat_name_default_handler, stat_name_otel_handler
    from airflow.sdk.observability.stats import normalize_name_for_stats

    def airflow_part(value: str) -> str:  # a pool name / dag_id in Airflow's legacy names (stats.py, pool.py)
        return normalize_name_for_stats(value, log_warning=False).replace(".", "__")

    for dag_id, pool in (("lightly_datapool", "s3://bucket/pools/cars"), ("team.cars", "file:///data/pool v2.0"),
                         ("d", "az://container/päth/with%20odd,chars=1")):
        name = legacy_name("lightly.run.selected", dag_id, pool)
        assert name == f"lightly.run.selected.{airflow_part(dag_id)}.{airflow_part(pool)}"
        assert name.count(".") == 4  # (the name's levels stay: a dot in a value is "__")
        assert stat_name_default_handler(name) == name  # what Airflow's StatsD logger checks
        assert stat_name_otel_handler("airflow", name) == f"airflow.{name}"  # ... and its OpenTelemetry logger
    assert legacy_name("lightly.run.selected", "lightly_datapool", "s3://bucket/pools/cars") == \
        "lightly.run.selected.lightly_datapool.s3___bucket_pools_cars"
    # Long URIs (and DAG ids) are cut to a name Airflow accepts, keeping their ends and apart by a hash
    long = [f"s3://bucket/{'x' * 300}/{end}" for end in ("cars", "bikes")] + [f"gs://other/{'x' * 300}/cars"]
    names = {legacy_name(metric, dag, uri) for metric in METRICS for dag in ("d", "d" * 250) for uri in long}
    assert len(names) == len(METRICS) * 2 * len(long)
    for name in names:
        assert len(name) <= 200 and stat_name_default_handler(name) == name
        assert stat_name_otel_handler("airflow", name)
    assert legacy_name("lightly.run.selected", "d", long[0]).endswith("_cars")


def test_the_embedding_gauges_add_up_the_shards() -> None:
    def shard(total: int, embedded: int, reused: int, corrupt: int, missing: int, seconds: float,
              device: str = "cpu") -> dict[str, object]:  # what embed_shard returns (the keys read)
        return {"total": total, "embedded": embedded, "reused": reused, "corrupt": corrupt, "missing": missing,
                "seconds": seconds, "device": device, "images_per_s": 1.0, "output_uri": "file:///x"}

    shards = [shard(10, 8, 0, 1, 1, 2.0), None, shard(20, 12, 8, 0, 0, 4.0), shard(5, 0, 5, 0, 0, 0.5),
              shard(7, 7, 0, 0, 0, 0.1, device="none")]  # a skipped task's None; a custom embeddings CSV's shard
    values = embed_metrics(shards)
    assert set(values) <= set(METRICS)
    assert values == {"lightly.embed.shards": 4, "lightly.embed.samples": 42, "lightly.embed.embedded": 27,
                      "lightly.embed.reused": 13, "lightly.embed.corrupt": 1, "lightly.embed.missing": 1,
                      "lightly.embed.seconds": pytest.approx(6.6),
                      # the model's shards that embedded any: 20 samples in 6 s (not the reused shard's, the CSV's)
                      "lightly.embed.samples_per_second": pytest.approx(20 / 6)}
    everything_reused = embed_metrics([shard(5, 0, 5, 0, 0, 0.5)])
    assert everything_reused["lightly.embed.reused"] == 5 and "lightly.embed.samples_per_second" not in everything_reused
    assert embed_metrics([]) == {} and embed_metrics([None, None]) == {}


def test_plain_statsd_gets_a_series_per_dag_and_datapool(statsd_metrics: StatsdReceiver,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG

    from lightly_airflow.operators.base import LightlyBaseOperator

    sent = {}
    for dag_id, pool, selected in (("cars", "s3://bucket/pools/cars", 6.0), ("cars", "s3://bucket/pools/bikes", 9.0),
                                   ("team.bikes", "s3://bucket/pools/bikes", 2.5)):
        with DAG(dag_id, schedule=None):
            op = LightlyBaseOperator(task_id="select_and_commit", datapool_uri=pool)
        op.send_metrics({"lightly.run.selected": selected, "lightly.run.committed": 1.0})
        sent[dag_id, pool] = selected
    assert statsd_metrics.lines() == [
        "airflow.lightly.run.selected.cars.s3___bucket_pools_cars:6.0|g", "airflow.lightly.run.selected:6.0|g",
        "airflow.lightly.run.committed.cars.s3___bucket_pools_cars:1.0|g", "airflow.lightly.run.committed:1.0|g",
        "airflow.lightly.run.selected.cars.s3___bucket_pools_bikes:9.0|g", "airflow.lightly.run.selected:9.0|g",
        "airflow.lightly.run.committed.cars.s3___bucket_pools_bikes:1.0|g", "airflow.lightly.run.committed:1.0|g",
        "airflow.lightly.run.selected.team__bikes.s3___bucket_pools_bikes:2.5|g", "airflow.lightly.run.selected:2.5|g",
        "airflow.lightly.run.committed.team__bikes.s3___bucket_pools_bikes:1.0|g",
        "airflow.lightly.run.committed:1.0|g",
    ]
    # [metrics] legacy_names_on = False (as for Airflow's own metrics): only the tagged names
    monkeypatch.setenv("AIRFLOW__METRICS__LEGACY_NAMES_ON", "False")
    op.send_metrics({"lightly.run.selected": 4.0})
    assert statsd_metrics.lines() == ["airflow.lightly.run.selected:4.0|g"]


def test_every_metric_is_in_the_docs_with_its_meaning() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text()
    for name, meaning in METRICS.items():
        assert f"| `airflow.{name}` | {meaning} |" in text, name


def _example_run(dagbag: Any, source: Any, pool_uri: str, when: datetime) -> tuple[Any, dict[str, float], list[str]]:
    """The example DAG's run of 24 images and a broken file into ``pool_uri``: the run, the gauges its tasks
    computed (from their XComs: list counts, run summary, each embed shard's counts) and its new keys."""
    keys = add_batch(source, Batch("first", (0, 24), ("astronaut", "coffee")))
    (source / "broken.png").write_bytes(b"not a png at all")
    config = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    run, states = _run(dagbag.dags["lightly_datapool"], {"datasource_uri": f"file://{source}", "datapool_uri": pool_uri,
                                                         "selection_config": config}, when)
    assert str(run.state) == "success", states
    summary = run.get_task_instance("select_and_commit").xcom_pull(task_ids="select_and_commit")
    counts = run.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files", key="counts")
    shards = run.get_task_instance("select_and_commit").xcom_pull(task_ids=["embed_local", "embed_kubernetes"])
    return run, {**list_metrics(counts), **run_metrics(summary), **embed_metrics(shards)}, keys


@pytest.mark.slow
def test_a_runs_figures_reach_the_metrics_backend(airflow_db, dagbag, tmp_path, otel_metrics: Receiver) -> None:
    from opentelemetry import metrics

    from lightly_airflow.datapool import Datapool

    pool_uri = f"file://{tmp_path / 'pool'}"
    run, expected, keys = _example_run(dagbag, tmp_path / "images", pool_uri, datetime(2026, 4, 1, tzinfo=UTC))
    metrics.get_meter_provider().force_flush()

    received = otel_metrics.latest()
    # The tagged names, as before (tags dag_id and datapool); the legacy names too (legacy_names_on's default)
    got = {name: point for name, point in received.items() if name.removeprefix("airflow.") in METRICS}
    tags = {"dag_id": "lightly_datapool", "datapool": pool_uri}
    assert {attrs["dag_id"] for attrs, _ in got.values()} == {"lightly_datapool"}
    assert all(attrs == tags for attrs, _ in got.values()), got
    assert {name: value for name, (_, value) in got.items()} == pytest.approx(
        {f"airflow.{name}": value for name, value in expected.items()})
    legacy = {name: point for name, point in received.items() if name not in got}
    assert {name: value for name, (_, value) in legacy.items()} == pytest.approx(
        {f"airflow.{legacy_name(name, 'lightly_datapool', pool_uri)}": value for name, value in expected.items()})
    assert all(attrs == {} for attrs, _ in legacy.values())
    # ... and those are the run's real figures
    pool = Datapool(pool_uri)
    assert got["airflow.lightly.list.new_files"][1] == len(keys) + 1
    assert got["airflow.lightly.run.processed"][1] == pool.read().num_rows == len(keys) + 1
    assert got["airflow.lightly.run.selected"][1] == 6 and got["airflow.lightly.datapool.selected"][1] == 6
    summary = run.get_task_instance("select_and_commit").xcom_pull(task_ids="select_and_commit")
    from lightly_airflow.storage import read_parquet

    assert got["airflow.lightly.run.corrupt"][1] == 1
    assert got["airflow.lightly.run.problems"][1] == read_parquet(summary["problems_uri"]).num_rows >= 1
    assert got["airflow.lightly.run.committed"][1] == 1 and got["airflow.lightly.datapool.version"][1] == pool.version()
    assert got["airflow.lightly.selection.seconds"][1] > 0
    # the embedding: one shard of the 24 images and the broken file, which it could not decode
    assert got["airflow.lightly.embed.shards"][1] == 1 and got["airflow.lightly.embed.samples"][1] == len(keys) + 1
    assert got["airflow.lightly.embed.embedded"][1] == len(keys) and got["airflow.lightly.embed.corrupt"][1] == 1
    assert got["airflow.lightly.embed.reused"][1] == 0 and got["airflow.lightly.embed.missing"][1] == 0
    assert got["airflow.lightly.embed.samples_per_second"][1] == pytest.approx(
        len(keys) / got["airflow.lightly.embed.seconds"][1])


@pytest.mark.slow
def test_two_datapools_keep_their_own_statsd_series(airflow_db, dagbag, tmp_path,
                                                     statsd_metrics: StatsdReceiver) -> None:
    """Plain StatsD drops the tags: two datapools' runs of one DAG send the same tagged names, and each its own
    legacy names (``<name>.<dag_id>.<datapool>``) with its own figures."""
    sent = {}
    for i, pool in enumerate(("cars", "bikes")):
        pool_uri = f"file://{tmp_path / pool / 'pool'}"
        _, expected, _ = _example_run(dagbag, tmp_path / pool / "images", pool_uri, datetime(2026, 5, 1 + i, tzinfo=UTC))
        sent[pool_uri] = (statsd_metrics.lines(), expected)
    names = {}
    for pool_uri, (lines, expected) in sent.items():
        # exactly the gauges the run's tasks computed, each as '<prefix>.<legacy name>:<value>|g' then tagged
        assert lines == [line for name, value in expected.items()
                         for line in (f"airflow.{legacy_name(name, 'lightly_datapool', pool_uri)}:{value}|g",
                                      f"airflow.{name}:{value}|g")]
        assert all(f".lightly_datapool.file____{pool_uri[len('file:///'):].replace('/', '_')}:" in line
                   for line in lines[::2])
        names[pool_uri] = [line.split(":")[0] for line in lines]
    cars, bikes = names.values()
    assert set(cars[1::2]) == set(bikes[1::2]) and set(cars[::2]).isdisjoint(bikes[::2])


#: A DAG of the list task's core with 8 files a shard, the shard stages mapped over the shards, and the select.
MAPPED_DAG = """
from airflow.sdk import DAG, task

from lightly_airflow.datasource.query import NewFilesQuery
from lightly_airflow.operators.embed import EmbedShardOperator
from lightly_airflow.operators.select import SelectAndCommitOperator
from lightly_airflow.operators.stages import ComputeMetadataOperator, LoadPredictionsOperator
from lightly_airflow.pipeline import list_new

with DAG("lightly_mapped_embed", schedule=None, render_template_as_native_obj=True):
    @task
    def list_shards(run_id=None):
        return list_new(NewFilesQuery(datasource_uri={source!r}, datapool_uri={pool!r}), run_id=run_id,
                        min_shard_size=8).manifests

    manifests = list_shards()
    embed = EmbedShardOperator.partial(task_id="embed", datapool_uri={pool!r}).expand(manifest_uri=manifests)
    select = SelectAndCommitOperator(task_id="select", datapool_uri={pool!r}, manifests=manifests, selection_config={{
        "n_samples": 4, "strategies": [{{"input": {{"type": "EMBEDDINGS"}}, "strategy": {{"type": "DIVERSITY"}}}}]}})
    metadata = ComputeMetadataOperator.partial(task_id="metadata", datapool_uri={pool!r}).expand(manifest_uri=manifests)
    predictions = LoadPredictionsOperator.partial(task_id="predictions", datapool_uri={pool!r}).expand(
        manifest_uri=manifests)
    [embed, metadata, predictions] >> select
"""


@pytest.mark.slow
def test_mapped_shards_add_up_to_the_runs_embedding_gauges(airflow_db, tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                            statsd_metrics: StatsdReceiver) -> None:
    """Three shards embedded by three mapped tasks: one set of ``lightly.embed.*`` gauges, their sums."""
    from airflow.dag_processing.dagbag import DagBag

    source, pool_uri = tmp_path / "images", f"file://{tmp_path / 'pool'}"
    keys = add_batch(source, Batch("first", (0, 24), ()))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "mapped.py").write_text(MAPPED_DAG.format(source=f"file://{source}", pool=pool_uri))
    from airflow import settings

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))  # (dag.test syncs the DAG folder's bundle)
    dag = DagBag(dag_folder=str(dags)).dags["lightly_mapped_embed"]
    run = dag.test(logical_date=datetime(2026, 6, 1, tzinfo=UTC))
    assert str(run.state) == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    shards = run.get_task_instance("select").xcom_pull(task_ids=["embed"])
    assert len(shards) == 3 and sum(s["total"] for s in shards) == len(keys)
    expected = embed_metrics(shards)
    embed_lines = [line for line in statsd_metrics.lines() if line.startswith("airflow.lightly.embed.")]
    assert embed_lines == [line for name, value in expected.items()
                           for line in (f"airflow.{legacy_name(name, 'lightly_mapped_embed', pool_uri)}:{value}|g",
                                        f"airflow.{name}:{value}|g")]
    assert expected["lightly.embed.shards"] == 3 and expected["lightly.embed.samples"] == len(keys)
    assert expected["lightly.embed.embedded"] == len(keys)
    assert expected["lightly.embed.seconds"] == pytest.approx(sum(s["seconds"] for s in shards))


#: Goals the report can flag (report.goals), each run of 12 digits and 6 photos (metadata "source") missing some.
_DIVERSITY = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}
_MISSED_GOAL_RUNS = {
    # more samples asked than candidates (stopped early), and a WEIGHTS score the photos lack (missing input)
    "stopped early, missing input": ({"n_samples": 30, "strategies": [_DIVERSITY, {
        "input": {"type": "SCORES", "task": "digits", "score": "uncertainty_margin"},
        "strategy": {"type": "WEIGHTS", "strength": 1.0}}]}, ["select 30 samples", "WEIGHTS on scores.digits."]),
    # photos 80 % asked, at most 6 of 16 (38 %) possible: BALANCE off target, and the select step's own warning
    "BALANCE off target, selection warning": ({"n_samples": 16, "strategies": [_DIVERSITY, {
        "input": {"type": "METADATA", "key": "source"},
        "strategy": {"type": "BALANCE", "target": {"digits": 0.2, "photos": 0.8}}}]},
        ["BALANCE on metadata.source", "selection warning"]),
    # 75 % photos achieved of 80 % asked: off target by more than the tolerance, no warning of the select step
    "BALANCE off target only (dry run)": ({"n_samples": 8, "strategies": [_DIVERSITY, {
        "input": {"type": "METADATA", "key": "source"},
        "strategy": {"type": "BALANCE", "target": {"digits": 0.2, "photos": 0.8}}}]}, ["BALANCE on metadata.source"]),
    "every goal met": ({"n_samples": 4, "strategies": [_DIVERSITY]}, []),
}


@pytest.mark.parametrize("case", list(_MISSED_GOAL_RUNS))
def test_goals_missed_gauge_counts_what_the_report_lists(tmp_path, case: str) -> None:
    """A real run (listed, embedded, metadata and predictions staged, selected and committed, or a dry run): the
    ``lightly.run.goals_missed`` gauge the select task sends from its summary is the N of the report's "Missed
    goals (N)", and the rows that box lists, for each kind of missed goal (not the summary's warnings alone)."""
    import re
    from pathlib import Path

    from faults.runs import prepare

    from lightly_airflow.pipeline import select_and_commit

    config, goals = _MISSED_GOAL_RUNS[case]
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("few", (0, 12), ("astronaut", "coffee")))
    manifests = prepare(source, pool, "r1", config)
    summary = select_and_commit(datapool_uri=f"file://{pool}", run_id="r1", dag_id="t", manifests=manifests,
                                selection_config=config, dry_run="dry run" in case)
    gauge = run_metrics(summary.to_dict())["lightly.run.goals_missed"]  # what the select task sends
    page = Path(summary.report_uri.removeprefix("file://")).read_text()
    box = re.search(r'<div class="missed"><h2>Missed goals \((\d+)\)</h2>(.*?)</div>', page, re.S)
    if not goals:
        assert box is None and gauge == 0 and summary.goals_missed == 0
        return
    assert box is not None, page
    listed = re.findall(r"<tr><td>(.*?)</td>", box.group(2), re.S)  # the goal column of each row
    assert gauge == int(box.group(1)) == len(listed) == len(goals) == summary.goals_missed
    for goal, row in zip(goals, listed, strict=True):
        assert row.startswith(goal), (goal, listed)
    assert gauge > len(summary.warnings)  # (the count before: the warnings alone)
