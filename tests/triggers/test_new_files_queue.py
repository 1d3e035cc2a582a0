"""``LIGHTLY_NEW_FILES_QUEUE``: the example DAG's watcher polls an SQS queue that receives the datasource bucket's
S3 event notifications (Airflow's ``SqsSensorTrigger``) instead of listing the bucket every interval.

On moto (S3 and SQS in one server): the bucket notifies the queue of objects created under its images prefix;
the watcher the DAG builds, run as the triggerer runs it with the datasource's Airflow connection, yields one
event with those notifications and deletes them; the run started by it says so (``RunOrigin``).
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from datasource.conftest import png_bytes

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "lightly_datapool.py"


def _dag_watchers(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import json, runpy\n"
        "from airflow.serialization.serialized_objects import DagSerialization\n"
        f"dag = runpy.run_path({str(DAG_FILE)!r})['dag']\n"
        "condition = dag.timetable.asset_condition\n"
        "watchers = [[w.name, *w.trigger.serialize()] for a in condition.objects for w in a.watchers]\n"
        "print(json.dumps({'watchers': watchers, 'sensor_waits': dag.get_task('wait_for_new_files').wait,\n"
        "                  'serialized': 'S3NotificationsTrigger' in json.dumps(DagSerialization.to_dict(dag))}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})


QUEUE = "https://sqs.eu-central-1.amazonaws.com/123456789012/lightly-new-files"


def test_the_dag_watches_the_queue_with_the_datasources_connection() -> None:
    proc = _dag_watchers({"LIGHTLY_SCHEDULE": "new-files", "LIGHTLY_NEW_FILES_QUEUE": QUEUE,
                          "LIGHTLY_DATASOURCE_URI": "s3://bucket/images", "LIGHTLY_DATASOURCE_CONN_ID": "aws_data",
                          "LIGHTLY_POKE_INTERVAL_S": "120"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    [[name, classpath, kwargs]] = out["watchers"]
    assert (name, classpath) == ("lightly-new-files", "lightly_airflow.triggers.s3_notifications.S3NotificationsTrigger")
    assert {k: kwargs[k] for k in ("datasource_uri", "sqs_queue", "aws_conn_id", "waiter_delay", "wait_time_seconds",
                                   "num_batches", "delete_message_on_reception")} == {
        "datasource_uri": "s3://bucket/images", "sqs_queue": QUEUE, "aws_conn_id": "aws_data", "waiter_delay": 120,
        "wait_time_seconds": 20, "num_batches": 1, "delete_message_on_reception": True}
    assert out["sensor_waits"] is False and out["serialized"] is True


@pytest.mark.parametrize("env, words", [
    ({"LIGHTLY_NEW_FILES_QUEUE": QUEUE}, "start runs only with LIGHTLY_SCHEDULE=new-files"),
    ({"LIGHTLY_SCHEDULE": "new-files", "LIGHTLY_NEW_FILES_QUEUE": "arn:aws:sqs:eu-central-1:123456789012:q"},
     "LIGHTLY_NEW_FILES_QUEUE='arn:aws:sqs"),
    ({"LIGHTLY_SCHEDULE": "new-files", "LIGHTLY_NEW_FILES_QUEUE": QUEUE, "LIGHTLY_DATASOURCE_URI": "gs://b/images"},
     "LIGHTLY_DATASOURCE_URI='gs://b/images' is not in S3"),
])
def test_a_queue_that_cannot_work_stops_the_dag_from_loading_naming_the_variable(env: dict[str, str], words: str) -> None:
    proc = _dag_watchers({"LIGHTLY_SCHEDULE": "", **env})
    assert proc.returncode != 0 and words in proc.stderr


class Moto:
    """A bucket and an SQS queue on moto's server (``s3_endpoint``), and an Airflow connection ``conn_id`` to them."""

    def __init__(self, s3_endpoint: str, name: str, monkeypatch: pytest.MonkeyPatch, conn_id: str) -> None:
        import boto3

        kw: dict[str, Any] = {"endpoint_url": s3_endpoint, "aws_access_key_id": "test",
                              "aws_secret_access_key": "test", "region_name": "us-east-1"}
        self.s3, self.sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
        self.bucket = f"{name}-{os.getpid()}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.queue = self.sqs.create_queue(QueueName=f"{name}-{os.getpid()}")["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        conn = {"conn_type": "aws", "login": "test", "password": "test",
                "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    def notify(self, events: list[str]) -> None:
        """The bucket sends these events of every key to the queue (S3 sends its test event then)."""
        self.s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": self.arn, "Events": events}]})

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def queue_is_empty(self) -> bool:
        return "Messages" not in self.sqs.receive_message(QueueUrl=self.queue, WaitTimeSeconds=1)


def first_event(trigger: Any, timeout: float = 60) -> dict[str, Any]:
    """The payload of the trigger's first event (as the triggerer runs it)."""

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(first(), timeout))


def event_keys(payload: dict[str, Any]) -> list[str]:
    """The object keys of the S3 notifications in an SQS event (URL-encoded, as S3 sends them), sorted."""
    return sorted(r["s3"]["object"]["key"] for m in payload["message_batch"]
                  for r in json.loads(m["Body"]).get("Records", []))


@pytest.mark.slow
def test_the_buckets_notifications_become_one_event_and_the_run_says_so(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow.sdk.api.datamodels._generated import DagRunType
    from operators.test_run_origin import _dag_run, _event

    from lightly_airflow.operators.base import run_origin

    moto = Moto(s3_endpoint, "notify", monkeypatch, "aws_data")
    moto.put("images/cam/before.png", png_bytes(8))
    # The whole bucket's creations and removals: the watcher itself keeps what the runs list (under images/,
    # not .lightly/, a listed extension, created), and deletes the rest from the queue unannounced.
    moto.notify(["s3:ObjectCreated:*", "s3:ObjectRemoved:*"])
    moto.put("images/.lightly/frames/x-001-mp4.png", png_bytes(9))
    moto.put("images-lightly/.lightly/frames/x.png", png_bytes(9))
    moto.put("images/readme.txt", b"cameras of the fleet")
    moto.s3.delete_object(Bucket=moto.bucket, Key="images/cam/before.png")
    for i in range(3):
        moto.put(f"images/cam/{i:03d}.png", png_bytes(i))

    for name, value in {"LIGHTLY_SCHEDULE": "new-files", "LIGHTLY_NEW_FILES_QUEUE": moto.queue,
                        "LIGHTLY_DATASOURCE_URI": f"s3://{moto.bucket}/images", "LIGHTLY_DATASOURCE_CONN_ID": "aws_data",
                        "LIGHTLY_DATAPOOL_URI": f"file://{tmp_path / 'pool'}", "LIGHTLY_POKE_INTERVAL_S": "1"}.items():
        monkeypatch.setenv(name, value)
    dag = runpy.run_path(str(DAG_FILE))["dag"]
    [asset] = dag.timetable.asset_condition.objects
    payload = first_event(asset.watchers[0].trigger)
    assert event_keys(payload) == [f"images%2Fcam%2F{i:03d}.png" for i in range(3)]  # (S3 URL-encodes keys)
    assert moto.queue_is_empty()  # every message read is deleted
    # the others (S3's test event, a removal, .lightly/ frames, another prefix, a .txt): counted in the log
    assert "SQS messages announce no file the runs list" in capsys.readouterr().out
    stored = json.loads(json.dumps({"from_trigger": True, "payload": payload}, default=str))  # (the event's extra)
    origin = run_origin({"dag_run": _dag_run(DagRunType.ASSET_TRIGGERED, [_event(stored)])})
    assert origin is not None and origin.events[0].notified == 3
    assert origin.text().startswith(f"3 S3 notifications of new files (of {len(payload['message_batch'])} SQS messages)")
    assert origin.short() == "S3 notices: 3"
    one = {"from_trigger": True, "payload": {**payload, "message_batch": payload["message_batch"][-1:]}}
    single = run_origin({"dag_run": _dag_run(DagRunType.ASSET_TRIGGERED, [_event(one)])})
    assert single is not None and single.text().startswith("1 S3 notification of new files (of 1 SQS message) at")


@pytest.mark.slow
def test_a_full_batch_of_messages_that_announce_nothing_is_read_past_at_once(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """12 notifications of files no run lists, then 2 images: the first receive (10 messages) keeps nothing, and
    the trigger reads on at once instead of sleeping its ``waiter_delay`` (here 10 minutes): one event with the
    2 images within seconds, every message deleted."""
    from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

    moto = Moto(s3_endpoint, "busy", monkeypatch, "aws_busy")
    moto.notify(["s3:ObjectCreated:*"])
    for i in range(12):
        moto.put(f"images/notes/{i:02d}.txt", b"not an image")
    for i in range(2):
        moto.put(f"images/cam/{i}.png", png_bytes(i))
    trigger = S3NotificationsTrigger(datasource_uri=f"s3://{moto.bucket}/images", sqs_queue=moto.queue,
                                     aws_conn_id="aws_busy", max_messages=10, num_batches=1, wait_time_seconds=1,
                                     waiter_delay=600)
    payload = first_event(trigger)
    assert event_keys(payload) == ["images%2Fcam%2F0.png", "images%2Fcam%2F1.png"]
    assert moto.queue_is_empty()


# ------------------------------------------------------------------------------ the runs' query and worker config
def test_serialize_is_exactly_the_arguments_with_a_query_and_a_worker_config_uri() -> None:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

    query = NewFilesQuery(datasource_uri="s3://bucket/images", datapool_uri="s3://bucket/pool",
                          datasource_conn_id="aws_data", relevant_filenames_file="relevant.txt")
    args: dict[str, Any] = {"datasource_uri": "s3://bucket/images", "query": query.to_dict(),
                            "worker_config_uri": "s3://configs/worker.yaml",
                            "worker_config_variable": "MY_WORKER_CONFIG"}
    trigger = S3NotificationsTrigger(**args, sqs_queue=QUEUE, aws_conn_id="aws_data", waiter_delay=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "lightly_airflow.triggers.s3_notifications.S3NotificationsTrigger"
    assert {k: kwargs[k] for k in args} == args and kwargs["sqs_queue"] == QUEUE
    assert S3NotificationsTrigger(**kwargs).serialize() == (classpath, kwargs)
    # An older version's stored arguments (no query) still build the trigger.
    old = S3NotificationsTrigger(datasource_uri="s3://bucket/images", sqs_queue=QUEUE).serialize()[1]
    assert (old["query"], old["worker_config_uri"], old["worker_config_variable"]) == (None, None,
                                                                                       "LIGHTLY_WORKER_CONFIG")
    with pytest.raises(ValueError, match="query.datasource_uri 's3://bucket/images' is not datasource_uri"):
        S3NotificationsTrigger(datasource_uri="s3://bucket/other", query=query, sqs_queue=QUEUE)
    with pytest.raises(ValueError, match="worker_config_uri needs the runs' query"):
        S3NotificationsTrigger(datasource_uri="s3://bucket/images", worker_config_uri="s3://c/w.yaml", sqs_queue=QUEUE)

def test_the_triggerer_imports_and_builds_the_queue_trigger_without_the_datasource_code() -> None:
    """The triggerer imports a trigger's module and builds it in the event loop every deferred task and watcher
    shares: the queue trigger's module imported numpy, pyarrow and the listing code there (``lightly_airflow.
    datasource``, ~1.3 s on a 2-core machine, on top of Airflow's own SQS trigger). They are now imported in a
    thread when the trigger starts (``run``), and a poke finds them there."""
    code = (
        "import asyncio, sys, threading, airflow.triggers.base\n"
        "from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger\n"
        "before = set(sys.modules)\n"
        "from airflow._shared.module_loading import import_string\n"
        "cls = import_string('lightly_airflow.triggers.s3_notifications.S3NotificationsTrigger')\n"
        "query = {'datasource_uri': 's3://bucket/images', 'datapool_uri': 's3://bucket/pool'}\n"
        f"t = cls(datasource_uri='s3://bucket/images', query=query, sqs_queue={QUEUE!r}, waiter_delay=5)\n"
        "assert cls(**t.serialize()[1]).serialize() == t.serialize()\n"
        "heavy = ('pyarrow', 'deltalake', 'pandas', 'numpy', 'lightly_airflow.datasource', 'lightly_airflow.hooks')\n"
        "print('built:', sorted(m for m in set(sys.modules) - before if m.startswith(heavy)))\n"
        "loop_thread, imported_in = threading.get_ident(), []\n"
        "class Finder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lightly_airflow.datasource':\n"
        "            imported_in.append(threading.get_ident())\n"
        "sys.meta_path.insert(0, Finder())\n"
        "async def stop(self):\n"
        "    raise RuntimeError('stop')\n"
        "    yield\n"
        "SqsSensorTrigger.run = stop  # (Airflow's loop that polls the queue: not without a queue)\n"
        "async def start():\n"
        "    async for _ in t.run():\n"
        "        pass\n"
        "try:\n"
        "    asyncio.run(start())\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print('started:', bool(imported_in) and loop_thread not in imported_in, 'lightly_airflow.datasource.notifications' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith(("built:", "started:"))]
    assert lines[0] == "built: []", out.stdout[-3000:]
    assert lines[1] == "started: True True", out.stdout[-3000:]  # imported when the trigger starts, in a thread, not in the loop



def test_the_dag_gives_the_queue_watcher_its_query_and_bucket_worker_config() -> None:
    proc = _dag_watchers({"LIGHTLY_SCHEDULE": "new-files", "LIGHTLY_NEW_FILES_QUEUE": QUEUE,
                          "LIGHTLY_DATASOURCE_URI": "s3://bucket/images", "LIGHTLY_DATASOURCE_CONN_ID": "aws_data",
                          "LIGHTLY_WORKER_CONFIG": "s3://configs/lightly/worker.yaml"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [[_, _, kwargs]] = json.loads(proc.stdout.strip().splitlines()[-1])["watchers"]
    assert kwargs["worker_config_uri"] == "s3://configs/lightly/worker.yaml"
    assert kwargs["worker_config_variable"] == "LIGHTLY_WORKER_CONFIG"
    assert kwargs["query"]["datasource_uri"] == "s3://bucket/images"
    assert kwargs["query"]["datasource_conn_id"] == "aws_data"


def test_the_listing_filter_keeps_what_the_relevant_filenames_file_keeps(tmp_path: Path) -> None:
    """Without a relevant-filenames file nor input_expiration SKIP nothing is left out (no read at all); with one,
    the notified keys it does not name; ABORT leaves the expiring files to the run (it fails naming them)."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import _listing_filter

    (tmp_path / "ds" / ".lightly").mkdir(parents=True)
    (tmp_path / "ds" / ".lightly" / "relevant.txt").write_text("cam/a.png\nkeep/*\n")
    base = NewFilesQuery(datasource_uri=(tmp_path / "ds").as_uri(), datapool_uri=(tmp_path / "pool").as_uri())
    assert _listing_filter(base.to_dict()) is None
    abort = base.with_worker_config({"datasource": {"input_expiration": {"min_days_to_expiration": 3,
                                                                         "handling_strategy": "ABORT"}}})
    assert _listing_filter(abort.to_dict()) is None
    relevant = base.with_worker_config({"relevant_filenames_file": "relevant.txt"})
    keep = _listing_filter(relevant.to_dict())
    assert keep is not None and keep(["cam/a.png", "cam/b.png", "keep/x/c.png"]) == ["cam/a.png", "keep/x/c.png"]
    missing = base.with_worker_config({"relevant_filenames_file": "nope.txt"})
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        _listing_filter(missing.to_dict())


@pytest.mark.slow
def test_the_queue_watcher_applies_the_bucket_worker_config_read_again_when_its_etag_changes(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The example DAG's queue watcher with ``LIGHTLY_WORKER_CONFIG=s3://…``: the config is read in the triggerer;
    a notification of a file its ``relevant_filenames_file`` leaves out starts no run (deleted, counted in the log);
    a replaced config (a new ETag) applies from the next poke; a deleted one is logged and the last one read kept;
    with ``input_expiration`` SKIP, a file the bucket's lifecycle deletes within the window starts no run either."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger, _listing_filter

    moto = Moto(s3_endpoint, "relevant", monkeypatch, "aws_rel")
    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)  # (the triggerer's own credentials read the worker config)
    moto.put("images/.lightly/relevant.txt", b"cam/a.png\n")
    moto.put("images/.lightly/relevant2.txt", b"cam/e.png\n")
    config = f"s3://{moto.bucket}/configs/worker.yaml"
    moto.put("configs/worker.yaml", b"relevant_filenames_file: relevant.txt\n")
    moto.notify(["s3:ObjectCreated:*"])
    query = NewFilesQuery(datasource_uri=f"s3://{moto.bucket}/images", datapool_uri=(tmp_path / "pool").as_uri(),
                          datasource_conn_id="aws_rel")
    trigger = S3NotificationsTrigger(**S3NotificationsTrigger(
        datasource_uri=query.datasource_uri, query=query, worker_config_uri=config, sqs_queue=moto.queue,
        aws_conn_id="aws_rel", max_messages=10, num_batches=1, wait_time_seconds=1, waiter_delay=1).serialize()[1])

    moto.put("images/cam/d.png", png_bytes(1))
    moto.put("images/cam/a.png", png_bytes(2))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fa.png"]
    assert moto.queue_is_empty()
    logged = capsys.readouterr().out
    assert f"worker config LIGHTLY_WORKER_CONFIG={config!r} read: the new-file checks apply " \
           "relevant_filenames_file='relevant.txt', input_expiration=none" in logged
    assert "(1 of them announce only files the runs leave out by the worker config" in logged

    moto.put("configs/worker.yaml", b"relevant_filenames_file: relevant2.txt\n")  # replaced: a new ETag
    moto.put("images/cam/f.png", png_bytes(3))
    moto.put("images/cam/e.png", png_bytes(4))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fe.png"]
    assert "read again (the file changed)" in capsys.readouterr().out

    moto.s3.delete_object(Bucket=moto.bucket, Key="configs/worker.yaml")  # unreadable: the last config read applies
    moto.put("images/cam/g.png", png_bytes(5))
    moto.put("images/cam/e.png", png_bytes(6))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fe.png"]
    logged = capsys.readouterr().out
    assert f"LIGHTLY_WORKER_CONFIG={config!r}: does not exist" in logged
    assert "the checks go on with the worker config read at" in logged

    # input_expiration SKIP: the bucket deletes tmp/ after a day, the config wants 3 days: tmp/ files are left out.
    moto.s3.put_bucket_lifecycle_configuration(Bucket=moto.bucket, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "images/tmp/"}, "Expiration": {"Days": 1}}]})
    expiring = query.with_worker_config({"datasource": {"input_expiration": {"min_days_to_expiration": 3,
                                                                             "handling_strategy": "SKIP"}}})
    keep = _listing_filter(expiring.to_dict())
    assert keep is not None and keep(["tmp/a.png", "cam/b.png"]) == ["cam/b.png"]
    short = _listing_filter(query.with_worker_config({"datasource": {"input_expiration": {
        "min_days_to_expiration": 0.5, "handling_strategy": "SKIP"}}}).to_dict())
    assert short is not None and short(["tmp/a.png"]) == ["tmp/a.png"]


@pytest.mark.slow
def test_a_relevant_filenames_file_that_cannot_be_read_keeps_the_notifications_and_says_so(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing dropped unseen: the file is missing, so the notification is kept (its run's first task fails naming
    the file) and the trigger logs why."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

    moto = Moto(s3_endpoint, "norel", monkeypatch, "aws_norel")
    moto.notify(["s3:ObjectCreated:*"])
    query = NewFilesQuery(datasource_uri=f"s3://{moto.bucket}/images", datapool_uri=(tmp_path / "pool").as_uri(),
                          datasource_conn_id="aws_norel", relevant_filenames_file="relevant.txt")
    trigger = S3NotificationsTrigger(datasource_uri=query.datasource_uri, query=query, sqs_queue=moto.queue,
                                     aws_conn_id="aws_norel", max_messages=10, num_batches=1, wait_time_seconds=1,
                                     waiter_delay=1)
    moto.put("images/cam/a.png", png_bytes(1))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fa.png"]
    logged = capsys.readouterr().out
    assert "relevant_filenames_file / input_expiration cannot be applied" in logged
    assert "relevant_filenames_file 'relevant.txt' not found" in logged and "these notifications are kept" in logged


# ------------------------------------------------------- what the key filter reads, kept between pokes; eventTime, size
@pytest.mark.slow
def test_the_relevant_filenames_file_is_read_again_only_when_it_changes_and_the_last_one_read_outlives_a_failure(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The file is read in the first poke with notifications of files, not again while its identity (ETag, size)
    is the same; an edited file is read again at the next poke (logged: it replaces the one read); a file that
    cannot be read any more leaves the last one read applied, with a warning (none read yet: see the test above)."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

    moto = Moto(s3_endpoint, "relcache", monkeypatch, "aws_relcache")
    moto.put("images/.lightly/relevant.txt", b"cam/a.png\n")
    moto.notify(["s3:ObjectCreated:*"])
    query = NewFilesQuery(datasource_uri=f"s3://{moto.bucket}/images", datapool_uri=(tmp_path / "pool").as_uri(),
                          datasource_conn_id="aws_relcache", relevant_filenames_file="relevant.txt")
    trigger = S3NotificationsTrigger(datasource_uri=query.datasource_uri, query=query, sqs_queue=moto.queue,
                                     aws_conn_id="aws_relcache", max_messages=10, num_batches=1, wait_time_seconds=1,
                                     waiter_delay=1)
    read = "relevant_filenames_file 'relevant.txt' read for the S3 notifications"
    capsys.readouterr()
    for _ in range(2):  # the same file: read once
        moto.put("images/cam/b.png", png_bytes(1))
        moto.put("images/cam/a.png", png_bytes(2))
        assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fa.png"]
    logged = capsys.readouterr().out
    assert logged.count(read) == 1 and "read again (" not in logged

    moto.put("images/.lightly/relevant.txt", b"cam/b.png\n")  # edited: a new ETag, read again at the next poke
    moto.put("images/cam/a.png", png_bytes(3))
    moto.put("images/cam/b.png", png_bytes(4))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fb.png"]
    logged = capsys.readouterr().out
    assert "relevant_filenames_file 'relevant.txt' read again (the file changed): it replaces the one read at" in logged

    moto.s3.delete_object(Bucket=moto.bucket, Key="images/.lightly/relevant.txt")  # gone: the last one read applies
    moto.put("images/cam/a.png", png_bytes(5))
    moto.put("images/cam/b.png", png_bytes(6))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fb.png"]
    assert moto.queue_is_empty()
    logged = capsys.readouterr().out
    assert "relevant_filenames_file 'relevant.txt' cannot be read again (relevant_filenames_file 'relevant.txt' " \
           "not found" in logged
    assert "the S3 notifications are filtered with the one read at" in logged
    assert "cannot be applied to the S3 notifications" not in logged


def test_the_lifecycle_rules_are_read_again_at_most_every_refresh_interval_and_kept_when_unreadable(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The lifecycle has no identity to ask for: the rules read are used for ``LIFECYCLE_REFRESH_MINUTES``, then
    read again (a change logged); rules that cannot be read again leave the last ones read applied, with a
    warning, until the next interval; none read yet: the error, as before (the notifications are then kept)."""
    import datetime as dt
    import logging

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import LIFECYCLE_REFRESH_MINUTES, ListingCache, _listing_filter

    moto = Moto(s3_endpoint, "lifecache", monkeypatch, "aws_lifecache")
    moto.s3.put_bucket_lifecycle_configuration(Bucket=moto.bucket, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "images/tmp/"}, "Expiration": {"Days": 1}}]})
    query = NewFilesQuery(datasource_uri=f"s3://{moto.bucket}/images", datapool_uri=(tmp_path / "pool").as_uri(),
                          datasource_conn_id="aws_lifecache").with_worker_config(
        {"datasource": {"input_expiration": {"min_days_to_expiration": 3, "handling_strategy": "SKIP"}}}).to_dict()
    cache, t0, refresh = ListingCache(), dt.datetime.now(dt.UTC), dt.timedelta(minutes=LIFECYCLE_REFRESH_MINUTES)
    keys = ["tmp/a.png", "cam/b.png"]
    caplog.set_level(logging.INFO, logger="lightly_airflow.triggers.s3_notifications")

    def kept(at: dt.datetime) -> list[str]:
        keep = _listing_filter(query, at, cache=cache)
        assert keep is not None
        return keep(keys)

    assert kept(t0) == ["cam/b.png"]
    assert "the lifecycle rules of s3://" in caplog.text and "read for the S3 notifications: 1 rules" in caplog.text
    moto.s3.delete_bucket_lifecycle(Bucket=moto.bucket)  # tmp/ is kept from now on: applies after the interval
    assert kept(t0 + refresh - dt.timedelta(seconds=1)) == ["cam/b.png"]
    assert "changed since" not in caplog.text
    assert kept(t0 + refresh) == keys
    assert "changed since" in caplog.text and "the new ones replace them: 0 rules" in caplog.text

    moto.s3.put_bucket_lifecycle_configuration(Bucket=moto.bucket, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "images/tmp/"}, "Expiration": {"Days": 1}}]})
    assert kept(t0 + 2 * refresh) == ["cam/b.png"]
    moto.s3.delete_bucket(Bucket=moto.bucket)  # the rules cannot be read: the last ones read apply
    caplog.clear()
    assert kept(t0 + 3 * refresh) == ["cam/b.png"]
    assert "cannot be read again" in caplog.text and "the S3 notifications are filtered with the ones read at" \
        in caplog.text
    caplog.clear()
    assert kept(t0 + 3 * refresh + dt.timedelta(minutes=1)) == ["cam/b.png"]  # (not tried again before the interval)
    assert "cannot be read again" not in caplog.text
    with pytest.raises(FileNotFoundError, match="bucket does not exist"):  # none read yet: raised, the notifications kept (as before)
        _listing_filter(query, t0, cache=ListingCache())


@pytest.mark.slow
def test_the_watcher_reads_cached_lifecycle_rules_again_before_it_leaves_a_file_out(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Rules taken from the cache never drop a file on their own: a rule removed a minute after the watcher read
    the rules (well within ``LIFECYCLE_REFRESH_MINUTES``) no longer leaves ``tmp/`` files out, because a poke that
    would leave a file out reads the rules again first; while the rule stands, ``tmp/`` files still start no run."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

    moto = Moto(s3_endpoint, "lifepoke", monkeypatch, "aws_lifepoke")
    rules = {"Rules": [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "images/tmp/"},
                        "Expiration": {"Days": 1}}]}
    moto.s3.put_bucket_lifecycle_configuration(Bucket=moto.bucket, LifecycleConfiguration=rules)
    moto.notify(["s3:ObjectCreated:*"])
    query = NewFilesQuery(datasource_uri=f"s3://{moto.bucket}/images", datapool_uri=(tmp_path / "pool").as_uri(),
                          datasource_conn_id="aws_lifepoke").with_worker_config(
        {"datasource": {"input_expiration": {"min_days_to_expiration": 3, "handling_strategy": "SKIP"}}})
    trigger = S3NotificationsTrigger(datasource_uri=query.datasource_uri, query=query, sqs_queue=moto.queue,
                                     aws_conn_id="aws_lifepoke", max_messages=10, num_batches=1, wait_time_seconds=1,
                                     waiter_delay=1)
    moto.put("images/tmp/a.png", png_bytes(1))
    moto.put("images/cam/b.png", png_bytes(2))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fb.png"]  # (the rules read: tmp/ expires in the window)
    assert trigger._listing.lifecycle is not None
    moto.put("images/tmp/c.png", png_bytes(3))
    moto.put("images/cam/d.png", png_bytes(4))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Fd.png"]  # (cached rules, confirmed: the rule stands)
    moto.s3.delete_bucket_lifecycle(Bucket=moto.bucket)
    moto.put("images/tmp/e.png", png_bytes(5))
    moto.put("images/cam/f.png", png_bytes(6))
    assert event_keys(first_event(trigger)) == ["images%2Fcam%2Ff.png", "images%2Ftmp%2Fe.png"]
    assert moto.queue_is_empty()


@pytest.mark.slow
def test_the_expiration_check_takes_the_notifications_event_time(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``input_expiration`` SKIP: a notification's ``eventTime`` is its object's creation time, as the listing takes
    a listed file's. Here a 3-day window and a bucket that deletes ``old/`` objects 5 days after their creation: an
    ``old/`` file notified 4 days after its creation (the triggerer was down, the queue kept the message; directly
    or through EventBridge) starts no run; one created now, and a notification that gives no time, do (each such
    file expires later than the window, or may)."""
    import datetime as dt

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

    moto = Moto(s3_endpoint, "expiry", monkeypatch, "aws_expiry")
    moto.s3.put_bucket_lifecycle_configuration(Bucket=moto.bucket, LifecycleConfiguration={"Rules": [
        {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "images/old/"}, "Expiration": {"Days": 5}}]})
    for name in ("stale", "bridged", "timeless"):  # created before the queue was notified of anything
        moto.put(f"images/old/{name}.png", png_bytes(7))
    moto.notify(["s3:ObjectCreated:*"])
    moto.put("images/old/fresh.png", png_bytes(3))
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    record: dict[str, Any] = {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": long_ago,
        "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": moto.bucket},
                                                 "object": {"key": "images/old/stale.png", "size": 268}}}
    bridge = {"version": "0", "detail-type": "Object Created", "source": "aws.s3", "time": long_ago[:19] + "Z",
              "detail": {"bucket": {"name": moto.bucket}, "object": {"key": "images/old/bridged.png", "size": 268}}}
    timeless = {"Records": [{**record, "eventTime": None,
                             "s3": {**record["s3"], "object": {"key": "images/old/timeless.png"}}}]}
    for body in ({"Records": [record]}, bridge, timeless):
        moto.sqs.send_message(QueueUrl=moto.queue, MessageBody=json.dumps(body))
    query = NewFilesQuery(datasource_uri=f"s3://{moto.bucket}/images", datapool_uri=(tmp_path / "pool").as_uri(),
                          datasource_conn_id="aws_expiry").with_worker_config(
        {"datasource": {"input_expiration": {"min_days_to_expiration": 3, "handling_strategy": "SKIP"}}})
    trigger = S3NotificationsTrigger(datasource_uri=query.datasource_uri, query=query, sqs_queue=moto.queue,
                                     aws_conn_id="aws_expiry", max_messages=10, num_batches=1, wait_time_seconds=1,
                                     waiter_delay=1)
    assert event_keys(first_event(trigger)) == ["images%2Fold%2Ffresh.png", "images/old/timeless.png"]
    assert moto.queue_is_empty()


@pytest.mark.slow
def test_the_expiration_check_takes_the_notified_size_for_the_rules_size_conditions(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lifecycle rule with ``ObjectSizeGreaterThan``: the notified ``size`` decides, as a listed file's does. The
    notifications are moto's own (received from its SQS with boto3); the rules are parsed from the configuration
    S3 answers, as ``read_lifecycle`` parses it (moto drops the size conditions of the rules it stores, so they
    cannot come from its bucket): the large ``big/`` file is left out, the small one and a file of a message that
    gives no size are kept."""
    import datetime as dt

    from lightly_airflow.datasource.expiration import s3_lifecycle
    from lightly_airflow.datasource.notifications import new_file_keys, notified_facts
    from lightly_airflow.triggers.s3_notifications import _key_filter_of

    moto = Moto(s3_endpoint, "sizes", monkeypatch, "aws_sizes")
    moto.notify(["s3:ObjectCreated:*"])
    moto.put("images/big/small.png", png_bytes(1))
    moto.put("images/big/large.png", png_bytes(2, size=64))
    bodies = []
    while True:
        answer = moto.sqs.receive_message(QueueUrl=moto.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if "Messages" not in answer:
            break
        bodies += [m["Body"] for m in answer["Messages"]]
    sizeless = json.loads(next(b for b in bodies if "large.png" in b))
    sizeless["Records"][0]["s3"]["object"].pop("size")
    bodies.append(json.dumps(sizeless))
    lifecycle = s3_lifecycle({"Rules": [{"ID": "big", "Status": "Enabled", "Expiration": {"Days": 1},
                                         "Filter": {"And": {"Prefix": "images/big/", "ObjectSizeGreaterThan": 1000}}}]})
    lifecycle.key_prefix = "images/"
    keep = _key_filter_of(None, lifecycle, dt.datetime.now(dt.UTC), 3.0)
    datasource = f"s3://{moto.bucket}/images"
    kept = []
    for body in bodies:
        keys = new_file_keys(body, datasource)
        if keys:
            created, sizes = notified_facts(body, datasource, keys)
            assert all(t is not None for t in created)
            kept.append((keep(keys, created, sizes), sizes))
    assert sorted(kept) == [([], [len(png_bytes(2, size=64))]), (["big/large.png"], [None]),
                            (["big/small.png"], [len(png_bytes(1))])]
