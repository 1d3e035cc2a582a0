"""Each connection of a task is resolved once per task try (the providers' one cached hook per operator), and a task
without ``lightly_uri`` takes the ``.lightly/`` folder the list task recorded in the run's manifests (session 67)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from datasource.conftest import png_bytes

from lightly_airflow.hooks import storage as storage_hooks
from lightly_airflow.operators.list_files import ListNewFilesOperator
from lightly_airflow.sensors import NewFilesSensor


def _aws(monkeypatch: pytest.MonkeyPatch, conn_id: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "aws", "extra": {"aws_access_key_id": f"key-{conn_id}", "aws_secret_access_key": "secret",
                                      "region_name": "eu-west-1"}}))


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each aws connection was resolved (``S3Hook``'s session: an STS call with a role), counted around
    the real resolution."""
    counts: Counter[str] = Counter()
    real = storage_hooks.aws_credentials

    def counting(conn_id: str, extra: Any) -> Any:
        counts[conn_id] += 1
        return real(conn_id, extra)

    monkeypatch.setattr(storage_hooks, "aws_credentials", counting)
    for conn_id in ("s67_data", "s67_pool"):
        _aws(monkeypatch, conn_id)
    return counts


DIVERSE = {"n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _images(tmp_path: Any) -> Any:
    root = tmp_path / "ds"
    root.mkdir(parents=True)
    for i in (1, 2):
        (root / f"{i}.png").write_bytes(png_bytes(i))
    return root


def test_the_sensor_resolves_each_connection_once_per_try(tmp_path: Any, resolved: Counter[str]) -> None:
    """It resolved the datapool's connection for the tag check, the committed-run skip and the check, and the
    datasource's for the parameter check and the check: 2 and 3 times before one listing."""
    root = _images(tmp_path)
    sensor = NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"),
                            datasource_conn_id="s67_data", datapool_conn_id="s67_pool", tag_name="s67-tag", wait=False)
    for attempt in (1, 2):  # each try runs a copy of the DAG's operator (prepare_for_execution): resolved again
        result = copy.copy(sensor).execute({"run_id": f"manual__s67_{attempt}"})
        assert result["new"] == 2 and result["listed"] == 2
        assert resolved == {"s67_data": attempt, "s67_pool": attempt}


def test_the_list_task_resolves_each_connection_once(tmp_path: Any, resolved: Counter[str]) -> None:
    """It resolved the datapool's connection five times (parameters, tag, committed-run skip, the listing's
    credentials twice) and the datasource's three times."""
    root = _images(tmp_path)
    op = ListNewFilesOperator(task_id="list_new_files", datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"),
                              datasource_conn_id="s67_data", datapool_conn_id="s67_pool", tag_name="s67-tag",
                              selection_config=DIVERSE)
    ti = _TI()
    manifests = op.execute({"run_id": "manual__s67", "ti": ti})
    assert len(manifests) == 1 and ti.pushed["counts"]["new"] == 2
    assert resolved == {"s67_data": 1, "s67_pool": 1}


def test_credentials_are_resolved_again_after_the_reuse_window(tmp_path: Any, resolved: Counter[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A poking sensor waits for hours: its checks resolve again once the credentials are older than the window
    (an assumed role's keys expire)."""
    root = _images(tmp_path)
    sensor = NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"),
                            datasource_conn_id="s67_data", datapool_conn_id="s67_pool", deferrable=False)
    assert sensor.poke({}).is_done and sensor.poke({}).is_done
    assert resolved == {"s67_data": 1, "s67_pool": 1}
    monkeypatch.setattr(NewFilesSensor, "CREDENTIALS_REUSE_S", -1.0)
    assert sensor.poke({}).is_done
    assert resolved == {"s67_data": 2, "s67_pool": 2}
    with pytest.raises(AirflowSkipException):  # (nothing new with the files known: the same connections)
        NewFilesSensor(task_id="w", datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"), wait=False,
                       extensions=["jpg"]).execute({})


def _manifest(tmp_path: Any, lightly_uri: str | None) -> str:
    """A manifest shard of a run whose list task was given ``lightly_uri`` (written as the list task writes it)."""
    from lightly_airflow.datasource import list_table
    from lightly_airflow.datasource.manifest import write_manifests

    root = _images(tmp_path)
    (shard,) = write_manifests(list_table(str(root)), str(tmp_path / "pool"), "manual__s67", datasource_uri=str(root),
                               lightly_uri=lightly_uri)
    return str(shard)


def test_a_task_without_lightly_uri_takes_the_folder_the_list_task_recorded(tmp_path: Any, resolved: Counter[str],
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A custom DAG gave ``lightly_uri`` (another cloud than the datasource's) to its list task alone: the select
    and shard tasks, which read and write ``.lightly/`` where the manifests say, used the datasource's connection
    for it (an S3 connection for a ``gs://`` folder: refused there, after the commit for the select task)."""
    from lightly_airflow.operators.select import SelectAndCommitOperator
    from lightly_airflow.operators.stages import ComputeMetadataOperator, LoadPredictionsOperator

    shard = _manifest(tmp_path, "gs://s67-other-cloud/lightly")
    common: dict[str, Any] = {"datasource_conn_id": "s67_data", "datapool_uri": str(tmp_path / "pool")}
    ops = [ComputeMetadataOperator(task_id="compute_metadata", manifest_uri=shard, **common),
           LoadPredictionsOperator(task_id="load_predictions", manifest_uri=shard, **common),
           SelectAndCommitOperator(task_id="select_and_commit", manifests=["", shard], selection_config=DIVERSE, **common)]
    for op in ops:
        assert op.datasource_credentials is not None and op.datasource_credentials.store == "s3"
        with caplog.at_level("INFO"):
            assert op.lightly_credentials is None, op.task_id  # the environment's, said in the log
        assert "gs://s67-other-cloud/lightly" in caplog.text and "is not on the store of connection 's67_data'" in caplog.text
        caplog.clear()
    # Its own connection is used when given; a run whose .lightly/ is the datasource's keeps the datasource's
    assert ComputeMetadataOperator(task_id="c", manifest_uri=shard, lightly_conn_id="s67_pool",
                                   **common).lightly_credentials.access_key_id == "key-s67_pool"  # type: ignore[union-attr]
    here = _manifest(tmp_path / "here", None)
    assert ComputeMetadataOperator(task_id="c", manifest_uri=here,
                                   **common).lightly_credentials.access_key_id == "key-s67_data"  # type: ignore[union-attr]


class TaskStateStore:
    """The interface of Airflow 3.3's ``context["task_state_store"]`` (``get``/``set``), kept in memory as the
    metadata database keeps it for every try of a task instance."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = json.loads(json.dumps(value))


class _Try:
    """What the sensor reads of its task instance: the try and the tries it may take (``max_tries``)."""

    def __init__(self, try_number: int, max_tries: int) -> None:
        self.try_number, self.max_tries = try_number, max_tries


def test_a_deferred_wait_counts_its_timeout_from_the_first_try(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's docs: "Retrying does not reset the timeout". A deferred sensor took its whole timeout again at each
    try: a 6 h wait whose check failed once waited up to 12 h (``retries=1``)."""
    import time

    from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

    root = tmp_path / "ds"
    root.mkdir()
    store = TaskStateStore()
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])

    def attempt(try_number: int, max_tries: int = 2, **kwargs: Any) -> TaskDeferred:
        sensor = NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(root),
                                datapool_uri=str(tmp_path / "pool"), timeout=6 * 3600, retries=2, **kwargs)
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({"task_state_store": store, "ti": _Try(try_number, max_tries)})
        return info.value

    start = clock[0]
    first = attempt(1)
    assert first.trigger.end_at == start + 6 * 3600 and first.timeout.total_seconds() == 6 * 3600
    clock[0] += 3600  # the check failed in the triggerer after an hour: the task is retried
    second = attempt(2)
    assert second.trigger.end_at == start + 6 * 3600 and second.timeout.total_seconds() == 5 * 3600
    clock[0] += 5 * 3600 + 1  # a retry after the deadline times out at once (soft_fail: skipped)
    with pytest.raises(AirflowSensorTimeout, match="within 21600"):
        attempt(3)
    with pytest.raises(AirflowSkipException, match="within 21600"):
        attempt(3, soft_fail=True)
    # Cleared: the next try is a first try (Airflow raised max_tries), which waits the whole timeout again
    cleared = attempt(4, max_tries=5)
    assert cleared.trigger.end_at == clock[0] + 6 * 3600


RETRIED_SENSOR_DAG = '''
import datetime as dt, json, os
from airflow.sdk import DAG
from lightly_airflow.sensors import NewFilesSensor


class FailingOnce(NewFilesSensor):
    """Its first try's wait ends as a failed check would (an error event: a retry); it notes each deferral."""

    def defer(self, **kwargs):
        with open(os.environ["S67_NOTES"], "a") as f:
            f.write(json.dumps({"end_at": kwargs["trigger"].end_at}) + "\\\\n")
        super().defer(**kwargs)

    def execute_complete(self, context, event=None):
        if context["ti"].try_number == 1:
            raise RuntimeError("the check failed (a bucket unreachable for a while)")
        return super().execute_complete(context, event)


with DAG("s67_retried_sensor", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    FailingOnce(task_id="wait_for_new_files", datasource_uri=os.environ["S67_DS"], datapool_uri=os.environ["S67_POOL"],
                poke_interval=1, timeout=3, soft_fail=True, retries=1, retry_delay=dt.timedelta(seconds=0))
'''


@pytest.mark.slow
def test_in_airflow_a_retried_deferred_sensor_waits_what_is_left_of_its_timeout(tmp_path: Any) -> None:
    """Airflow 3.3.2's ``dag.test`` (its task state store, shared by the tries of a task instance): the first try
    waits its 3 s and fails (as a failed check does), the retry finds the deadline passed and skips
    (``soft_fail``) without waiting again; it deferred for another 3 s before."""
    import os
    import subprocess
    import sys

    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "s67_retried_sensor.py").write_text(RETRIED_SENSOR_DAG)
    (tmp_path / "ds").mkdir()
    notes = tmp_path / "notes.jsonl"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "S67_NOTES": str(notes), "S67_DS": str(tmp_path / "ds"),
           "S67_POOL": str(tmp_path / "pool")}
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    code = ("from airflow.dag_processing.dagbag import DagBag\n"
            f"run = DagBag(dag_folder={str(tmp_path / 'dags')!r}).dags['s67_retried_sensor'].test()\n"
            "print('STATES', [(t.try_number, str(t.state)) for t in run.get_task_instances()])\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "STATES [(2, 'skipped')]" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "The wait for new files began at try 1" in proc.stdout + proc.stderr
    assert len(notes.read_text().splitlines()) == 1  # the retry did not wait again
