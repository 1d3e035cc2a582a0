"""NewFilesSensor: poke mode, deferral to NewFilesTrigger, skip when nothing is new, trigger events."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred
from datasource.conftest import png_bytes

from lightly_airflow.datasource import known as known_module
from lightly_airflow.datasource import list_table
from lightly_airflow.sensors import NewFilesCheckError, NewFilesSensor
from lightly_airflow.triggers import NewFilesTrigger


@pytest.fixture
def datasource(tmp_path, monkeypatch):
    """A local datasource with one known file; the datapool 'knows' whatever ``state['known']`` holds."""
    root = tmp_path / "ds"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "known.png").write_bytes(png_bytes(1))
    state = {"known": list_table(str(root))}
    monkeypatch.setattr(known_module, "known_files", lambda uri, creds: state["known"])
    return root, state


def sensor(root, **kwargs) -> NewFilesSensor:
    return NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(root), datapool_uri=str(root.parent / "pool"),
                          poke_interval=1, **kwargs)


def test_template_fields_and_deferrable_default() -> None:
    s = NewFilesSensor(task_id="t", datasource_uri="s3://b/p", datapool_uri="s3://b/pool")
    for name in ("datasource_uri", "datapool_uri", "datasource_conn_id", "datapool_conn_id", "lightly_conn_id",
                 "lightly_uri", "relevant_filenames_file", "process_all"):
        assert name in s.template_fields
    assert s.deferrable is True  # [lightly] default_deferrable falls back to True


def test_poke_is_done_only_with_new_files(datasource) -> None:
    root, state = datasource
    s = sensor(root, deferrable=False)
    first = s.poke({})
    assert first.is_done is False and first.xcom_value["new"] == 0 and first.xcom_value["listed"] == 1
    (root / "sub" / "added.PNG").write_bytes(png_bytes(2))
    second = s.poke({})
    assert second.is_done is True
    assert second.xcom_value == {"datasource_uri": str(root), "listed": 2, "new": 1, "known": 1, "process_all": False}


def test_replaced_file_is_new_unless_policy_key(datasource) -> None:
    root, _ = datasource
    (root / "sub" / "known.png").write_bytes(png_bytes(3))
    assert sensor(root, deferrable=False).poke({}).is_done is True
    assert sensor(root, deferrable=False, policy="key").poke({}).is_done is False


def test_poke_mode_execute_returns_the_counts(datasource) -> None:
    root, _ = datasource
    (root / "b.png").write_bytes(png_bytes(2))
    assert sensor(root, deferrable=False).execute({})["new"] == 1


def test_no_wait_skips_the_run_when_nothing_is_new(datasource) -> None:
    root, _ = datasource
    with pytest.raises(AirflowSkipException, match="No new files"):
        sensor(root, wait=False).execute({})
    assert sensor(root, wait=False, process_all="True").execute({})["new"] == 1  # templated string


def test_defers_to_the_trigger_when_nothing_is_new(datasource) -> None:
    root, _ = datasource
    s = sensor(root, deferrable=True, relevant_filenames_file=None, extensions=["png"], timeout=600)
    with pytest.raises(TaskDeferred) as info:
        s.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, NewFilesTrigger)
    assert trigger.serialize()[1]["query"]["datasource_uri"] == str(root) and trigger.query.extensions == ("png",)
    assert info.value.method_name == "execute_complete"
    assert info.value.timeout.total_seconds() == 600


def test_deferrable_returns_at_once_when_files_are_new(datasource) -> None:
    root, _ = datasource
    (root / "b.png").write_bytes(png_bytes(2))
    assert sensor(root, deferrable=True).execute({})["new"] == 1


def test_execute_complete(datasource) -> None:
    root, _ = datasource
    s = sensor(root)
    payload = {"datasource_uri": str(root), "listed": 3, "new": 2, "known": 1, "process_all": False}
    assert s.execute_complete({}, {"status": "success", **payload}) == payload
    with pytest.raises(NewFilesCheckError, match="FileNotFoundError: gone"):
        s.execute_complete({}, {"status": "error", "message": "FileNotFoundError: gone"})


def test_bad_arguments_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        NewFilesSensor(task_id="t", datasource_uri="/a", datapool_uri="/b", policy="newest")
    s = NewFilesSensor(task_id="t", datasource_uri="/a", datapool_uri="/b", process_all="maybe")
    with pytest.raises(ValueError, match="process_all='maybe' is not a boolean"):
        s._trigger()


def test_timeout_event_skips_with_soft_fail_and_fails_without(datasource) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    root, _ = datasource
    payload = {"status": "timeout", "datasource_uri": str(root), "listed": 1, "new": 0, "known": 1, "process_all": False}
    with pytest.raises(AirflowSkipException, match="no new files"):
        sensor(root, timeout=5, soft_fail=True).execute_complete({}, payload)
    with pytest.raises(AirflowSensorTimeout, match="no new files"):
        sensor(root, timeout=5).execute_complete({}, payload)


def test_deferral_carries_the_deadline_to_the_trigger(datasource) -> None:
    import time

    root, _ = datasource
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor(root, deferrable=True, timeout=30).execute({})
    assert before + 30 <= info.value.trigger.end_at <= time.time() + 30


def test_a_bad_selection_config_fails_before_waiting(datasource) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    root, _ = datasource
    bad = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "WEIGHTS"}}]}
    with pytest.raises(AirflowFailException, match=r"(?s)Parameter 'selection_config'.*strategies\[0\]"):
        sensor(root, deferrable=True, selection_config=bad, worker_config={}).execute({})
    with pytest.raises(AirflowFailException, match=r"Parameter 'datasource_uri'.*does not exist"):
        NewFilesSensor(task_id="w", datasource_uri=str(root / "missing"), datapool_uri=str(root)).execute({})


def test_worker_config_process_all_is_honoured_by_the_sensor_and_its_trigger(datasource) -> None:
    """Lightly users ask for process_all in worker_config: the sensor must not wait (or skip) then."""
    root, _ = datasource  # the only file is known to the datapool: nothing is new
    worker = {"datasource": {"process_all": True}, "enable_training": False}
    assert sensor(root, deferrable=False).poke({}).is_done is False
    poked = sensor(root, deferrable=False, worker_config=worker).poke({})
    assert poked.is_done is True and poked.xcom_value["process_all"] is True and poked.xcom_value["new"] == 1
    assert sensor(root, wait=False, worker_config=worker).execute({})["new"] == 1  # no skip
    query = sensor(root, worker_config=worker)._trigger().query
    assert query.process_all is True


def test_sensor_and_list_task_build_the_same_query(datasource) -> None:
    from lightly_airflow.operators.list_files import ListNewFilesOperator

    root, _ = datasource
    worker = {"datasource": {"process_all": True}, "relevant_filenames_file": "relevant.txt"}
    args = {"datasource_uri": str(root), "datapool_uri": str(root.parent / "pool"), "lightly_uri": "None",
            "datasource_conn_id": "ds", "datapool_conn_id": "", "lightly_conn_id": None, "process_all": "False",
            "worker_config": worker}
    from_sensor = NewFilesSensor(task_id="w", **args).query()
    from_list = ListNewFilesOperator(task_id="l", **args).query()
    assert from_sensor == from_list
    narrowed = {**args, "extensions": ["png"], "policy": "key", "live_photo_videos": True}
    assert NewFilesSensor(task_id="w", **narrowed).query() == ListNewFilesOperator(task_id="l", **narrowed).query()
    assert ListNewFilesOperator(task_id="l", **narrowed).query().live_photo_videos is True
    assert from_list.live_photo_videos is False
    # The DAG's form renders it as text ("{{ params.live_photo_videos }}" without native rendering).
    rendered = {**args, "live_photo_videos": "True"}
    assert NewFilesSensor(task_id="w", **rendered).query() == ListNewFilesOperator(task_id="l", **rendered).query()
    assert ListNewFilesOperator(task_id="l", **rendered).query().live_photo_videos is True
    with pytest.raises(ValueError, match="live_photo_videos='maybe' is not a boolean"):
        NewFilesSensor(task_id="w", **{**args, "live_photo_videos": "maybe"}).query()
    assert (from_list.process_all, from_list.relevant_filenames_file, from_list.lightly_uri, from_list.datapool_conn_id) == (
        True, "relevant.txt", None, None)


def test_a_datapool_that_cannot_be_imported_is_an_error_not_every_file_new(tmp_path, monkeypatch) -> None:
    """Before, an ImportError made known_files() return None: every file was "new" and got reprocessed."""
    import sys

    from lightly_airflow.datasource.known import known_files

    monkeypatch.setitem(sys.modules, "lightly_airflow.datapool", None)  # the import fails
    with pytest.raises(ImportError):
        known_files(str(tmp_path / "pool"))


def test_a_missing_or_wrong_connection_fails_the_sensor_at_once(datasource, monkeypatch) -> None:
    """Retrying cannot create a connection: fail (no retry) with the conn_id and the fix; 'None' is unset."""
    import json

    from airflow.sdk.exceptions import AirflowFailException

    root, _ = datasource
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    with pytest.raises(AirflowFailException, match=r"'no_such_conn' is not defined.*AIRFLOW_CONN_NO_SUCH_CONN"):
        sensor(root, wait=False, datasource_conn_id="no_such_conn").execute({})
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_CONN", json.dumps({"conn_type": "sftp", "host": "h"}))
    with pytest.raises(AirflowFailException, match=r"'sftp_conn' has type 'sftp'"):
        sensor(root, wait=False, datasource_conn_id="sftp_conn").execute({})
    (root / "new.png").write_bytes(png_bytes(2))
    assert sensor(root, wait=False, datasource_conn_id="None", datapool_conn_id="None").execute({})["new"] == 1


def test_rescheduled_pokes_reuse_the_local_hashes_of_the_poke_before(datasource, tmp_path, monkeypatch) -> None:
    """In reschedule mode each poke runs in a new process: it starts with the content hashes the poke before kept
    (a file in this user's temporary folder) instead of reading every file of the datasource again."""
    import tempfile

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lightly_airflow.datasource import listing

    root, _state = datasource
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert sensor(root, deferrable=False, mode="reschedule").poke({}).is_done is False
    [cache] = (tmp_path / "tmp").glob("lightly-airflow-hashes-*/*.parquet")
    hashes = pq.read_table(cache)
    assert hashes.num_rows == 1
    # A new process (an empty in-process cache) that takes the file's hash from there, not from its bytes: a forged
    # hash there makes the known file look changed, so new.
    pq.write_table(hashes.set_column(hashes.schema.get_field_index("etag"), "etag",
                                     pc.if_else(True, "sha256:forged", hashes["etag"])), cache)
    monkeypatch.setattr(listing, "_HASHES", listing._HashCache())
    assert sensor(root, deferrable=False, mode="reschedule").poke({}).is_done is True
    monkeypatch.setattr(listing, "_HASHES", listing._HashCache())
    assert sensor(root, deferrable=False).poke({}).is_done is False  # poke mode: one process, its own cache


def _deferred(root, pool, **kwargs):
    """A sensor over an empty datasource that defers (nothing is new), and its trigger."""
    s = NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(root), datapool_uri=str(pool),
                       poke_interval=1, timeout=60, deferrable=True, **kwargs)
    with pytest.raises(TaskDeferred) as info:
        s.execute({})
    return s, info.value.trigger


def _event(trigger) -> dict:
    import asyncio

    return asyncio.run(asyncio.wait_for(trigger.run().__anext__(), 60)).payload


def test_deferred_and_poking_sensors_find_the_same_new_files(tmp_path) -> None:
    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    s, trigger = _deferred(root, pool)
    (root / "a.png").write_bytes(png_bytes(1))
    deferred = s.resume_execution("execute_complete", {"event": _event(trigger)}, {})
    poked = NewFilesSensor(task_id="w", datasource_uri=str(root), datapool_uri=str(pool), deferrable=False).execute({})
    assert deferred == poked == {"datasource_uri": str(root), "listed": 1, "new": 1, "known": 0, "process_all": False}


def test_a_check_that_fails_while_waiting_fails_the_run_also_with_soft_fail(tmp_path) -> None:
    """soft_fail (the example DAG's: nothing new before the timeout skips the run) skips only a timeout. Before,
    Airflow's resume_execution turned the error event of a deferred sensor (an AirflowException) into a skip: a
    datapool that became unreadable while the run waited ended it as "nothing new", while poking failed it."""
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from lightly_airflow.datapool.errors import DatapoolError

    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    s, trigger = _deferred(root, pool, soft_fail=True)
    (pool / "_delta_log").mkdir(parents=True)
    (pool / "_delta_log" / f"{0:020d}.json").write_text("garbage{")  # damaged while the sensor waits
    event = _event(trigger)
    assert event["status"] == "error"
    with pytest.raises(NewFilesCheckError, match=r"waiting for new files in .* failed: DatapoolError.*damaged"):
        s.resume_execution("execute_complete", {"event": event}, {})
    with pytest.raises(DatapoolError, match="damaged"):  # poking: the same error fails the task
        NewFilesSensor(task_id="w", datasource_uri=str(root), datapool_uri=str(pool), deferrable=False,
                       soft_fail=True, timeout=60).execute({})
    timeout = {"status": "timeout", "datasource_uri": str(root), "listed": 0, "new": 0, "known": 0,
               "process_all": False}
    with pytest.raises(AirflowSkipException):  # a wait that timed out: skipped with soft_fail, failed without
        s.resume_execution("execute_complete", {"event": timeout}, {})
    with pytest.raises(AirflowSensorTimeout):
        _deferred(root, tmp_path / "other-pool")[0].resume_execution("execute_complete", {"event": timeout}, {})


@pytest.mark.parametrize(("tag", "words"), [("initial-tag", "initial-tag"), ("my tag!", "Invalid tag name")])
def test_a_bad_tag_name_fails_the_sensor_before_it_waits(tmp_path, tag: str, words: str) -> None:
    """Before, only the list task checked tag_name: a run whose form named a tag the commit refuses waited for new
    files (hours, deferred) and then failed in the list task. Now the first task fails in seconds, naming it."""
    from airflow.sdk.exceptions import AirflowFailException

    root = tmp_path / "ds"
    root.mkdir()
    s = NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"),
                       deferrable=True, tag_name=tag)
    with pytest.raises(AirflowFailException, match=rf"(?s)Parameter 'tag_name'.*{words}.*Fix"):
        s.execute({"run_id": "manual__1"})
    s.tag_name = "daily-2026.10"
    with pytest.raises(TaskDeferred):  # a good tag: the sensor waits (nothing is new)
        s.execute({"run_id": "manual__1"})


def test_a_native_dag_hands_the_sensor_its_tags_as_text(tmp_path) -> None:
    """The example DAG renders natively: a tag_name "2024.10" reached the check as the float 2024.1 (another tag
    than the one the run commits), and a query tag "1.50" as 1.5, which the sensor then looked up among the pool's
    tags (the list task, rendering text, looks up "1.50"). The sensor renders its text arguments as text, as the
    operators do."""
    from datetime import datetime

    from airflow.sdk import DAG

    al = {"query_tag_name": "{{ params.query_tag }}", "preselected_tag_name": "0.50", "n_samples_meaning": "new"}
    with DAG("native", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True,
             params={"tag_name": "2024.10", "lightly_uri": "1_000", "query_tag": "1.50"}) as dag:
        s = NewFilesSensor(task_id="wait_for_new_files", datasource_uri=str(tmp_path), datapool_uri=str(tmp_path),
                           tag_name="{{ params.tag_name }}", lightly_uri="{{ params.lightly_uri }}", active_learning=al)
    s.render_template_fields({"params": dag.params.dump(), "run_id": "r1", "dag": dag}, jinja_env=dag.get_template_env())
    assert (s.tag_name, s.lightly_uri) == ("2024.10", "1_000")
    assert s.active_learning == {"query_tag_name": "1.50", "preselected_tag_name": "0.50", "n_samples_meaning": "new"}
