"""NewFilesEventTrigger (event-driven runs): exact serialisation, each set of new files announced once (also
across a restarted triggerer, through the watched asset's state store), again when it changes or after it was
processed, failed checks retried, and the example DAG's ``LIGHTLY_SCHEDULE=new-files``."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from datasource.conftest import png_bytes

from lightly_airflow.datasource import NewFilesQuery, list_table
from lightly_airflow.datasource.check import files_digest
from lightly_airflow.triggers import NewFilesEventTrigger
from lightly_airflow.triggers.new_files_event import STATE_KEY

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "lightly_datapool.py"


class AssetStore:
    """The interface of the accessor the triggerer gives a watcher (``asset_state_store``: ``aget``/``aset``),
    keeping the values in memory as the metadata database keeps them between triggers."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


class BlockingAssetStore:
    """Airflow 3.3.0/3.3.1's accessor: ``get``/``set`` only (blocking)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


@pytest.fixture(autouse=True)
def _save_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The announced set is saved right after its event here (5 s later in a triggerer: ``SAVE_AFTER_S``)."""
    monkeypatch.setattr(NewFilesEventTrigger, "SAVE_AFTER_S", 0.0)


def _logged(capsys: Any) -> str:
    """What the trigger logged since the last call (Airflow's structlog logger writes to the console)."""
    out = capsys.readouterr()
    return str(out.out + out.err)


def _roundtrip(trigger: NewFilesEventTrigger) -> NewFilesEventTrigger:
    classpath, kwargs = trigger.serialize()
    kwargs = json.loads(json.dumps(kwargs))  # the trigger table stores plain JSON
    module, _, name = classpath.rpartition(".")
    out: NewFilesEventTrigger = getattr(importlib.import_module(module), name)(**kwargs)
    return out


def _trigger(root: Path, pool: Path, store: Any | None, poke: float = 0.05, isolate: bool = False) -> NewFilesEventTrigger:
    trigger = _roundtrip(NewFilesEventTrigger(query=NewFilesQuery(datasource_uri=str(root), datapool_uri=str(pool)),
                                              poke_interval=poke, isolate=isolate))
    trigger.asset_state_store = store  # (what the triggerer does for a watcher before run())
    return trigger


class Watch:
    """Runs a trigger in the background and keeps its events' payloads, as the triggerer does."""

    def __init__(self, trigger: NewFilesEventTrigger) -> None:
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._collect(trigger))

    async def _collect(self, trigger: NewFilesEventTrigger) -> None:
        async for event in trigger.run():
            self.events.append(event.payload)

    async def until(self, count: int, timeout: float = 20.0) -> None:
        async def wait() -> None:
            while len(self.events) < count:
                if self.task.done():
                    self.task.result()  # (raises the trigger's error)
                    raise AssertionError("the trigger stopped")
                await asyncio.sleep(0.01)
        await asyncio.wait_for(wait(), timeout)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def test_serialize_is_exactly_the_arguments() -> None:
    query = NewFilesQuery(datasource_uri="s3://bucket/images", datapool_uri="s3://bucket/pool",
                          datasource_conn_id="aws_data", live_photo_videos=True)
    trigger = NewFilesEventTrigger(query=query, poke_interval=120, isolate=False)
    assert trigger.serialize() == (
        "lightly_airflow.triggers.new_files_event.NewFilesEventTrigger",
        {"query": query.to_dict(), "poke_interval": 120.0, "isolate": False, "worker_config_uri": None,
         "worker_config_variable": "LIGHTLY_WORKER_CONFIG"},
    )
    assert _roundtrip(trigger).serialize() == trigger.serialize()


def test_files_digest_is_the_set_of_files_whatever_their_order_or_chunks() -> None:
    schema = pa.schema([("key", pa.string()), ("size", pa.int64()), ("etag", pa.string())])
    t = pa.table({"key": ["b.png", "a.png", "c/d.png"], "size": [1, 2, 3], "etag": ["x", "y", "z"]}, schema=schema)
    d = files_digest(t)
    assert len(d) == 64 and files_digest(t.slice(0, 0)) == ""
    assert files_digest(t.take([2, 0, 1])) == d
    assert files_digest(pa.concat_tables([t.slice(0, 1), t.slice(1, 0), t.slice(1, 2)])) == d
    for column, values in (("etag", ["x", "y", "Z"]), ("size", [1, 2, 4]), ("key", ["b.png", "a.png", "c/e.png"])):
        changed = t.set_column(t.schema.get_field_index(column), column, pa.array(values, schema.field(column).type))
        assert files_digest(changed) != d, column
    assert files_digest(t.slice(0, 2)) != d


def test_a_set_of_new_files_is_announced_once_again_when_it_changes_and_after_it_was_processed(
        tmp_path: Path, capsys) -> None:
    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes(1))
    (root / "b.png").write_bytes(png_bytes(2))
    store = AssetStore()

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(_trigger(root, pool, store))
        await watch.until(1)
        first = watch.events[0]
        assert first["status"] == "new_files" and first["new"] == 2 and first["known"] == 0
        assert first["digest"] == files_digest(list_table(str(root)))
        await asyncio.sleep(0.02)  # (saved after the event)
        assert store.values[STATE_KEY]["digest"] == first["digest"]
        capsys.readouterr()
        await asyncio.sleep(0.6)  # many checks: the same two files, their run has not processed them yet
        assert len(watch.events) == 1
        assert "2 new files in" in (logged := _logged(capsys)) and "announced already" in logged
        (root / "c.png").write_bytes(png_bytes(3))  # a file arrives while the run works: another set
        await watch.until(2)
        assert watch.events[1]["new"] == 3 and watch.events[1]["digest"] != first["digest"]
        await watch.stop()

        # The triggerer restarts: the new instance reads what was announced from the asset's state store.
        again = Watch(_trigger(root, pool, store))
        await asyncio.sleep(0.6)
        assert again.events == []
        # The files were processed (here: gone from the datasource, so nothing is new): the digest is cleared,
        # and the same files arriving again are announced again.
        moved = tmp_path / "moved"
        shutil.move(str(root), str(moved))
        root.mkdir()
        await asyncio.sleep(0.3)
        assert store.values[STATE_KEY]["digest"] == ""
        for f in moved.iterdir():
            shutil.copy(f, root / f.name)
        await again.until(1)
        await again.stop()
        return watch.events + again.events

    events = asyncio.run(scenario())
    assert [e["new"] for e in events] == [2, 3, 3]
    assert events[2]["digest"] == events[1]["digest"]


def test_blocking_store_and_no_store(tmp_path: Path, capsys) -> None:
    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes(1))
    blocking = BlockingAssetStore()

    async def scenario(store: Any) -> int:
        watch = Watch(_trigger(root, pool, store))
        await watch.until(1)
        await asyncio.sleep(0.4)
        await watch.stop()
        return len(watch.events)

    assert asyncio.run(scenario(blocking)) == 1
    assert blocking.values[STATE_KEY]["digest"] == files_digest(list_table(str(root)))
    assert "no asset state store" not in _logged(capsys)
    assert asyncio.run(scenario(None)) == 1  # announced once, remembered by the trigger itself
    assert _logged(capsys).count("no asset state store") == 1


def test_a_failing_check_is_logged_and_retried(tmp_path: Path, capsys) -> None:
    root, pool = tmp_path / "not yet", tmp_path / "pool"

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(_trigger(root, pool, AssetStore()))
        await asyncio.sleep(0.4)
        assert watch.events == [] and not watch.task.done()
        logged = _logged(capsys)
        assert "not yet failed (2 in a row)" in logged and "does not exist" in logged
        root.mkdir()
        (root / "a.png").write_bytes(png_bytes(1))
        await watch.until(1)
        await watch.stop()
        return watch.events

    assert asyncio.run(scenario())[0]["new"] == 1


def test_the_check_in_a_child_process_gives_the_same_digest(tmp_path: Path) -> None:
    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes(1))
    (root / "sub").mkdir()
    (root / "sub" / "b.png").write_bytes(png_bytes(2))

    async def scenario() -> dict[str, Any]:
        watch = Watch(_trigger(root, pool, AssetStore(), poke=5.0, isolate=True))
        await watch.until(1, timeout=60)
        await watch.stop()
        return watch.events[0]

    event = asyncio.run(scenario())
    assert event["new"] == 2 and event["digest"] == files_digest(list_table(str(root)))


def _dag_in_a_fresh_interpreter(env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, runpy\n"
        "from airflow.serialization.serialized_objects import DagSerialization\n"
        f"dag = runpy.run_path({str(DAG_FILE)!r})['dag']\n"
        "sensor = dag.get_task('wait_for_new_files')\n"
        "out = {'timetable': type(dag.timetable).__name__, 'wait': sensor.wait, 'watchers': []}\n"
        "condition = getattr(dag.timetable, 'asset_condition', None)\n"
        "for a in (condition.objects if condition is not None else []):\n"
        "    out['asset'] = [a.name, a.uri]\n"
        "    out['watchers'] = [[w.name, *w.trigger.serialize()] for w in a.watchers]\n"
        "out['serialized'] = 'NewFilesEventTrigger' in json.dumps(DagSerialization.to_dict(dag))\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_example_dag_runs_when_new_files_land_with_lightly_schedule_new_files(tmp_path: Path) -> None:
    env = {"LIGHTLY_SCHEDULE": "new-files", "LIGHTLY_DATASOURCE_URI": "s3://bucket/images",
           "LIGHTLY_DATAPOOL_URI": "s3://bucket/pool", "LIGHTLY_DATASOURCE_CONN_ID": "aws_data",
           "LIGHTLY_POKE_INTERVAL_S": "120", "LIGHTLY_LIVE_PHOTO_VIDEOS": "true"}
    out = _dag_in_a_fresh_interpreter(env)
    assert out["timetable"] == "AssetTriggeredTimetable"
    assert out["asset"] == ["lightly-datasource", "s3://bucket/images"]
    query = NewFilesQuery(datasource_uri="s3://bucket/images", datapool_uri="s3://bucket/pool",
                          datasource_conn_id="aws_data", live_photo_videos=True)
    assert out["watchers"] == [["lightly-new-files", "lightly_airflow.triggers.new_files_event.NewFilesEventTrigger",
                                {"query": query.to_dict(), "poke_interval": 120.0, "isolate": True,
                                 "worker_config_uri": None, "worker_config_variable": "LIGHTLY_WORKER_CONFIG"}]]
    assert out["wait"] is False  # a run the event started skips at once when nothing is left to process
    assert out["serialized"] is True  # (the DAG processor stores the watcher's trigger)
    daily = _dag_in_a_fresh_interpreter({"LIGHTLY_SCHEDULE": ""})
    assert daily["timetable"] == "CronTriggerTimetable" and daily["wait"] is True and daily["watchers"] == []
    assert _dag_in_a_fresh_interpreter({"LIGHTLY_SCHEDULE": "none"})["timetable"] == "NullTimetable"


@pytest.mark.parametrize("by_file", [True, False])
def test_the_remainder_of_an_announced_set_is_not_announced_again(tmp_path: Path, monkeypatch, by_file: bool) -> None:
    """A run processes part of a set announced while it worked (files that arrived after its listing remain):
    seen in a real Airflow as one more run that found nothing to do. File by file the remainder is known as
    announced; above ``MAX_HASHED_FILES`` the set is compared by its digest and the remainder fires again."""
    from lightly_airflow.datasource import check as check_module

    if not by_file:
        monkeypatch.setattr(check_module, "MAX_HASHED_FILES", 1)
    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    for i in (1, 2):
        (root / f"{i}.png").write_bytes(png_bytes(i))
    store = AssetStore()

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(_trigger(root, pool, store))
        await watch.until(1)
        (root / "3.png").write_bytes(png_bytes(3))  # arrives while run 1 works: announced with 1 and 2
        await watch.until(2)
        for i in (1, 2):  # run 1 processed the files it listed (here: they leave the datasource)
            (root / f"{i}.png").unlink()
        await asyncio.sleep(0.6)
        remainder_fired = len(watch.events) == 3
        (root / "4.png").write_bytes(png_bytes(4))
        await watch.until(4 if remainder_fired else 3)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert [e["new"] for e in events] == ([2, 3, 2] if by_file else [2, 3, 1, 2])
    if by_file:
        assert [e["unannounced"] for e in events] == [2, 1, 1]
        assert store.values[STATE_KEY]["files"]  # (the set, file by file)
    else:
        assert store.values[STATE_KEY]["files"] == ""


def test_a_triggerer_stopped_between_the_event_and_its_save_announces_the_set_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The set was saved as announced before its event: a triggerer stopped before Airflow stored the event (its
    runner hands events over once a second) had saved a set it never announced, and the next triggerer took the
    files for announced: no run until another file landed. Now the set is saved after the event (``SAVE_AFTER_S``),
    and a triggerer stopped in between leaves it unsaved: announced again, once."""
    monkeypatch.setattr(NewFilesEventTrigger, "SAVE_AFTER_S", 0.3)
    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    for i in (1, 2):
        (root / f"{i}.png").write_bytes(png_bytes(i))
    store = AssetStore()

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        events: Any = _trigger(root, pool, store).run()  # (an async generator)
        first = await events.__anext__()  # the triggerer's runner took the event...
        await events.aclose()  # ...and the triggerer stopped before it was stored: nothing after the yield runs
        assert STATE_KEY not in store.values
        successor = Watch(_trigger(root, pool, store))
        await successor.until(1, timeout=10)  # announced again
        await asyncio.sleep(0.6)  # (its set saved after SAVE_AFTER_S; the later checks announce nothing)
        assert store.values[STATE_KEY]["digest"] == first.payload["digest"]
        await successor.stop()
        restarted = Watch(_trigger(root, pool, store))  # stopped after the save: nothing to announce again
        await asyncio.sleep(0.6)
        await restarted.stop()
        return first.payload, successor.events, restarted.events

    first, again, after = asyncio.run(scenario())
    assert first["new"] == 2 and [e["digest"] for e in again] == [first["digest"]] and after == []


def test_in_airflows_trigger_runner_the_set_is_saved_after_its_event_left_the_runner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's own ``TriggerRunner.run_trigger`` (the triggerer's runner; its supervisor stores the queued events
    within a second): the runner queues the event and goes on with the watcher, which saves the set only
    ``SAVE_AFTER_S`` later (it was saved while the event sat in the runner's queue)."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    monkeypatch.setenv("AIRFLOW_DISABLE_GREENBACK_PORTAL", "true")
    monkeypatch.setattr(NewFilesEventTrigger, "SAVE_AFTER_S", 0.5)
    root, pool = tmp_path / "ds", tmp_path / "pool"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes(1))
    store = AssetStore()

    async def scenario() -> tuple[bool, bool, int]:
        runner = TriggerRunner()  # type: ignore[no-untyped-call]
        runner.triggers[1] = {"task": None, "name": "lightly-new-files", "events": 0,  # type: ignore[typeddict-item]
                              "is_watcher": True}
        task = asyncio.create_task(runner.run_trigger(1, _trigger(root, pool, store, poke=30.0)))
        await asyncio.wait_for(_until(lambda: bool(runner.events)), 20)
        saved_while_queued = STATE_KEY in store.values
        await asyncio.sleep(1.0)
        saved_after = store.values.get(STATE_KEY, {}).get("digest") == files_digest(list_table(str(root)))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return saved_while_queued, saved_after, len(runner.events)

    assert asyncio.run(scenario()) == (False, True, 1)


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)
