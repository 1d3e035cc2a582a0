"""A ``LIGHTLY_*_CONFIG`` variable that names a bucket's file (``s3://…/selection.yaml``): never read when the DAG
file is parsed (that was a network call on every parse, every ``min_file_process_interval``), but once per run by
its first task, which checks it, fails in seconds with the variable, the URI and the fix, and hands the file's
content to the tasks after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "lightly_datapool.py"
CONFIGS = ("selection_config", "worker_config", "lightly_config")

#: Any network connection, or name lookup, while the DAG file is parsed fails the parse.
NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise OSError("network I/O while the DAG file is parsed")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
"""


def _parse_without_network(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Parse the DAG file in a fresh interpreter that has no network; print what the test checks."""
    code = NO_NETWORK + (
        "import json, runpy\n"
        f"module = runpy.run_path({str(DAG_FILE)!r})\n"
        "dag = module['dag']\n"
        "print(json.dumps({\n"
        "    'defaults': {k: dag.params[k] for k in " + repr(CONFIGS) + "},\n"
        "    'descriptions': {k: dag.params.get_param(k).description for k in " + repr(CONFIGS) + "},\n"
        "    'list': {k: getattr(dag.get_task('list_new_files'), k) for k in " + repr(CONFIGS) + "},\n"
        "    'select': {k: getattr(dag.get_task('select_and_commit'), k) for k in " + repr(CONFIGS) + "},\n"
        "    'sensor': dag.get_task('wait_for_new_files').selection_config,\n"
        "    'watcher': module['watcher'].serialize()[1] if module.get('watcher') is not None else None,\n"
        "}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_a_bucket_config_is_not_read_when_the_dag_file_is_parsed(tmp_path) -> None:
    (tmp_path / "lightly.yml").write_text("loader:\n  batch_size: 16\n")  # (a local file: still read at parse)
    env = {"LIGHTLY_SELECTION_CONFIG": "s3://configs-bucket/lightly/selection.yaml",
           "LIGHTLY_WORKER_CONFIG": "gs://configs-bucket/lightly/worker.json",
           "LIGHTLY_LIGHTLY_CONFIG": str(tmp_path / "lightly.yml")}
    proc = _parse_without_network(env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["defaults"] == {"selection_config": {"$uri": "s3://configs-bucket/lightly/selection.yaml"},
                                "worker_config": {"$uri": "gs://configs-bucket/lightly/worker.json"},
                                "lightly_config": {"loader": {"batch_size": 16}}}
    assert "the file s3://configs-bucket/lightly/selection.yaml (LIGHTLY_SELECTION_CONFIG), read and checked by the " \
           "first task of each run" in seen["descriptions"]["selection_config"]
    assert "$uri" not in seen["descriptions"]["lightly_config"]
    # The first task renders the params (and replaces a bucket's with the file's content); the tasks after it
    # read what the first task checked; a config that is not a bucket's stays the param.
    assert seen["sensor"] == "{{ params.selection_config }}"
    for task in ("list", "select"):
        assert seen[task] == {
            "selection_config": "{{ ti.xcom_pull(task_ids='wait_for_new_files', key='selection_config') }}",
            "worker_config": "{{ ti.xcom_pull(task_ids='wait_for_new_files', key='worker_config') }}",
            "lightly_config": "{{ params.lightly_config }}",
        }, task

    # Event-driven: the watcher's query cannot hold a bucket worker config's keys (not read at parse); the watcher
    # gets the file's URI and reads it in the triggerer (tests/triggers/test_new_files_event_worker_config.py).
    proc = _parse_without_network({**env, "LIGHTLY_SCHEDULE": "new-files"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    watcher = json.loads(proc.stdout.strip().splitlines()[-1])["watcher"]
    assert watcher["query"]["relevant_filenames_file"] is None and watcher["query"]["process_all"] is False
    assert watcher["worker_config_uri"] == "gs://configs-bucket/lightly/worker.json"
    assert watcher["worker_config_variable"] == "LIGHTLY_WORKER_CONFIG"
    # A local worker config is read at parse: its keys are in the watcher's query, nothing is left to read.
    (tmp_path / "worker.yml").write_text("relevant_filenames_file: relevant.txt\ndatasource:\n  process_all: true\n")
    proc = _parse_without_network({**env, "LIGHTLY_WORKER_CONFIG": str(tmp_path / "worker.yml"),
                                   "LIGHTLY_SCHEDULE": "new-files"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    watcher = json.loads(proc.stdout.strip().splitlines()[-1])["watcher"]
    assert watcher["query"]["relevant_filenames_file"] == "relevant.txt" and watcher["query"]["process_all"] is True
    assert watcher["worker_config_uri"] is None

    # A bucket URI with a secret in it would show in the trigger form: refused at parse, without reading it.
    proc = _parse_without_network({"LIGHTLY_WORKER_CONFIG": "s3://b/w.json?X-Amz-Signature=abc123"})
    assert proc.returncode != 0
    assert "LIGHTLY_WORKER_CONFIG='s3://b/w.json?***'" in proc.stderr and "abc123" not in proc.stderr


def _put(bucket, key: str, body: str) -> str:
    s3 = boto3.client("s3", endpoint_url=bucket.credentials.endpoint_url, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    s3.put_object(Bucket=bucket.name, Key=key, Body=body.encode())
    return f"{bucket.uri}/{key}"


def _ambient_s3(monkeypatch, bucket) -> None:
    """The environment's credentials reach the moto bucket (as a worker's role or keys would)."""
    for name, value in {"AWS_ENDPOINT_URL": bucket.credentials.endpoint_url, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)


def _module(monkeypatch, env: dict[str, str]) -> dict:
    import runpy

    for name in ("LIGHTLY_SELECTION_CONFIG", "LIGHTLY_WORKER_CONFIG", "LIGHTLY_LIGHTLY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DAG_FILE))


class _TI:
    def __init__(self, pushed: dict | None = None) -> None:
        self.pushed: dict = dict(pushed or {})

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids, key):
        assert task_ids == "wait_for_new_files"
        return self.pushed.get(key)


def test_the_first_task_reads_checks_and_hands_on_the_bucket_config(s3_bucket, monkeypatch) -> None:
    _ambient_s3(monkeypatch, s3_bucket)
    uri = _put(s3_bucket, "configs/selection.yaml",
               "n_samples: 3\nstrategies:\n  - input: {type: EMBEDDINGS}\n    strategy: {type: DIVERSITY}\n")
    module = _module(monkeypatch, {"LIGHTLY_SELECTION_CONFIG": uri})
    dag = module["dag"]
    task = dag.get_task("wait_for_new_files")
    content = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}

    # The default: the file's content, for this task and (XCom) the tasks after it.
    ti = _TI()
    context = {"params": {"selection_config": {"$uri": uri}, "execution_mode": "local"}, "task": task, "ti": ti,
               "dag": dag}
    module["_first_task_checks"](context)
    assert task.selection_config == content and ti.pushed == {"selection_config": content}

    # A run's own config (its conf, the trigger form) replaces the file: nothing is read, it is handed on.
    own = {"n_samples": 9, "strategies": content["strategies"]}
    ti = _TI()
    module["_first_task_checks"]({**context, "params": {"selection_config": own}, "ti": ti})
    assert task.selection_config == own and ti.pushed == {"selection_config": own}

    # A try that resumes after waiting keeps what it read before (the file is not read again).
    boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1").delete_object(
        Bucket=s3_bucket.name, Key="configs/selection.yaml")
    task.selection_config = "{{ params.selection_config }}"
    ti = _TI({"selection_config": content})
    module["_first_task_checks"]({**context, "ti": ti})
    assert task.selection_config == content and ti.pushed == {"selection_config": content}
    # A new try reads it again: now it is gone, and the task fails naming the variable, the URI and the fix.
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as info:
        module["_first_task_checks"]({**context, "ti": _TI()})
    assert f"LIGHTLY_SELECTION_CONFIG={uri!r}: does not exist" in str(info.value)
    assert "or unset LIGHTLY_SELECTION_CONFIG to use the default" in str(info.value)

    # Only the deployment's file is read this way, not one a run names.
    with pytest.raises(AirflowFailException, match=r"only this deployment's LIGHTLY_SELECTION_CONFIG"):
        module["_first_task_checks"]({**context, "ti": _TI(),
                                       "params": {"selection_config": {"$uri": "s3://other/x.yaml"}}})


def test_the_event_driven_watcher_applies_the_bucket_worker_config_where_it_runs(s3_bucket, tmp_path,
                                                                                 monkeypatch) -> None:
    """``LIGHTLY_SCHEDULE=new-files`` with ``LIGHTLY_WORKER_CONFIG=s3://…``: the DAG's watcher reads the file in the
    triggerer (here: this process), so its ``relevant_filenames_file`` decides what is announced; a file it
    excludes starts no run."""
    import asyncio
    import importlib

    from datasource.conftest import png_bytes

    _ambient_s3(monkeypatch, s3_bucket)
    source = tmp_path / "images"
    (source / ".lightly").mkdir(parents=True)
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        (source / name).write_bytes(png_bytes(i + 1))
    (source / ".lightly" / "relevant.txt").write_text("a.png\nc.png\n")
    worker = _put(s3_bucket, "configs/worker.yaml", "relevant_filenames_file: relevant.txt\n")
    module = _module(monkeypatch, {"LIGHTLY_SCHEDULE": "new-files", "LIGHTLY_DATASOURCE_URI": source.as_uri(),
                                   "LIGHTLY_DATAPOOL_URI": (tmp_path / "pool").as_uri(),
                                   "LIGHTLY_WORKER_CONFIG": worker, "LIGHTLY_POKE_INTERVAL_S": "0.1"})
    classpath, kwargs = module["watcher"].serialize()  # (as the triggerer builds it from the trigger table)
    mod, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(mod), name)(**json.loads(json.dumps(kwargs)))
    assert trigger.serialize() == (classpath, kwargs) and kwargs["worker_config_uri"] == worker

    async def first_event() -> dict:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    payload = asyncio.run(asyncio.wait_for(first_event(), 60))
    assert payload["new"] == 2 and payload["listed"] == 2  # a.png and c.png: b.png is not a relevant file


@pytest.mark.slow
def test_a_scheduled_run_selects_with_the_bucket_configs(airflow_db, s3_bucket, tmp_path, monkeypatch) -> None:
    """No conf (a scheduled run): the selection config (YAML) and the worker config (JSON: a relevant-filenames
    file) in a bucket decide what is processed and how much is selected."""
    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.demo import Batch, add_batch

    _ambient_s3(monkeypatch, s3_bucket)
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    keys = sorted(add_batch(source, Batch("cam", (0, 12), ())))
    (source / ".lightly").mkdir(exist_ok=True)
    (source / ".lightly" / "relevant.txt").write_text("\n".join(keys[:8]) + "\n")
    selection = _put(s3_bucket, "configs/selection.yaml",
                     "n_samples: 3\nstrategies:\n  - input: {type: EMBEDDINGS}\n    strategy: {type: DIVERSITY}\n")
    worker = _put(s3_bucket, "configs/worker.json", '{"relevant_filenames_file": "relevant.txt"}')
    dag = _module(monkeypatch, {"LIGHTLY_DATASOURCE_URI": source.as_uri(), "LIGHTLY_DATAPOOL_URI": pool_dir.as_uri(),
                                "LIGHTLY_SELECTION_CONFIG": selection, "LIGHTLY_WORKER_CONFIG": worker})["dag"]
    assert dag.params["selection_config"] == {"$uri": selection}

    run = dag.test(logical_date=datetime(2027, 4, 1, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    table = Datapool(pool_dir.as_uri()).read(run_id=run.run_id)
    assert sorted(table.column(C.KEY).to_pylist()) == keys[:8]  # the bucket worker config's relevant files
    assert sum(table.column(C.SELECTED).to_pylist()) == 3       # the bucket selection config's n_samples


@pytest.mark.slow
def test_a_missing_or_bad_bucket_config_fails_the_first_task_in_seconds(
    airflow_db, s3_bucket, tmp_path, monkeypatch, capfd
) -> None:
    from lightly_airflow.demo import Batch, add_batch

    _ambient_s3(monkeypatch, s3_bucket)
    source = tmp_path / "images"
    add_batch(source, Batch("cam", (0, 4), ()))
    missing = f"{s3_bucket.uri}/configs/missing.yaml"
    bad = _put(s3_bucket, "configs/lightly.yaml", "loader:\n  batch_size: big\n")
    for n, (env, words) in enumerate([
        ({"LIGHTLY_WORKER_CONFIG": missing},
         [f"LIGHTLY_WORKER_CONFIG={missing!r}: does not exist", "Fix: correct the path or URI",
          "or unset LIGHTLY_WORKER_CONFIG to use the default"]),
        ({"LIGHTLY_LIGHTLY_CONFIG": bad},
         [f"LIGHTLY_LIGHTLY_CONFIG={bad!r}", "loader.batch_size", "Fix: correct the listed keys"]),
    ]):
        dag = _module(monkeypatch, {"LIGHTLY_DATASOURCE_URI": source.as_uri(),
                                    "LIGHTLY_DATAPOOL_URI": (tmp_path / "pool").as_uri(), **env})["dag"]
        started = time.monotonic()
        run = dag.test(logical_date=datetime(2027, 5, 1 + n, tzinfo=UTC))
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert time.monotonic() - started < 60
        assert states["wait_for_new_files"] == "failed", states
        assert states["list_new_files"] == "upstream_failed"
        logged = "".join(capfd.readouterr())
        assert "AirflowFailException: The default of the param" in logged
        for word in words:
            assert word in logged, (word, logged[-3000:])
