"""NewFilesEventTrigger with ``worker_config_uri`` (the example DAG's ``LIGHTLY_WORKER_CONFIG=s3://…`` with
``LIGHTLY_SCHEDULE=new-files``): the worker config is read where the trigger runs, never where it is made; its
``relevant_filenames_file``, ``datasource.process_all`` and ``input_expiration`` decide what is announced; it is read
again only when the file changes (its ETag, a local file's stat); one that cannot be read or has a problem is
logged with the variable, the URI and the fix, and the watcher keeps watching with the last config read (none yet:
the query without its keys, which the log says)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from datasource.conftest import png_bytes

import lightly_airflow.config
from lightly_airflow.datasource import NewFilesQuery
from lightly_airflow.triggers import NewFilesEventTrigger

from .test_new_files_event_trigger import AssetStore, Watch, _logged, _roundtrip, _save_at_once  # noqa: F401

VARIABLE = "LIGHTLY_WORKER_CONFIG"


def _watch(root: Path, pool: Path, worker_config_uri: str | None, store: Any, poke: float = 0.05) -> Watch:
    trigger = _roundtrip(NewFilesEventTrigger(query=NewFilesQuery(datasource_uri=str(root), datapool_uri=str(pool)),
                                              poke_interval=poke, isolate=False, worker_config_uri=worker_config_uri))
    trigger.asset_state_store = store
    return Watch(trigger)


def _datasource(tmp_path: Path, names: list[str], relevant: list[str]) -> tuple[Path, Path]:
    root, pool = tmp_path / "ds", tmp_path / "pool"
    (root / ".lightly").mkdir(parents=True)
    for i, name in enumerate(names):
        (root / name).write_bytes(png_bytes(i + 1))
    (root / ".lightly" / "relevant.txt").write_text("\n".join(relevant) + "\n")
    return root, pool


def _count_reads(monkeypatch) -> list[str]:
    """The values the trigger reads with ``load_config`` (each a read of the file)."""
    reads: list[str] = []
    real = lightly_airflow.config.load_config

    def counting(value: str, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        reads.append(value)
        return real(value, name, *args, **kwargs)

    monkeypatch.setattr(lightly_airflow.config, "load_config", counting)
    return reads


async def _until_logged(capsys: Any, *texts: str, timeout: float = 30.0) -> str:
    """What the trigger logged until each of ``texts`` appeared (its checks run at their own pace)."""
    seen = ""

    async def wait() -> None:
        nonlocal seen
        while True:
            seen += _logged(capsys)
            if all(t in seen for t in texts):
                return
            await asyncio.sleep(0.02)

    with contextlib.suppress(TimeoutError):  # (the assertions after it say what is missing)
        await asyncio.wait_for(wait(), timeout)
    return seen


def test_serialize_is_exactly_the_arguments_with_a_worker_config_uri() -> None:
    query = NewFilesQuery(datasource_uri="s3://bucket/images", datapool_uri="s3://bucket/pool")
    trigger = NewFilesEventTrigger(query=query, poke_interval=60, isolate=True,
                                   worker_config_uri="s3://configs/lightly/worker.yaml",
                                   worker_config_variable="MY_WORKER_CONFIG")
    assert trigger.serialize() == (
        "lightly_airflow.triggers.new_files_event.NewFilesEventTrigger",
        {"query": query.to_dict(), "poke_interval": 60.0, "isolate": True,
         "worker_config_uri": "s3://configs/lightly/worker.yaml", "worker_config_variable": "MY_WORKER_CONFIG"},
    )
    assert _roundtrip(trigger).serialize() == trigger.serialize()
    # An older version's stored arguments (no worker config) still build the trigger.
    assert NewFilesEventTrigger(query=query.to_dict(), poke_interval=60.0, isolate=True).serialize()[1] == {
        "query": query.to_dict(), "poke_interval": 60.0, "isolate": True, "worker_config_uri": None,
        "worker_config_variable": VARIABLE}


@pytest.mark.parametrize("worker", [
    None, {}, {"relevant_filenames_file": "relevant.txt"}, {"datasource": {"process_all": True}},
    {"datasource": {"input_expiration": {"min_days_to_expiration": 3, "handling_strategy": "ABORT"}}},
    {"relevant_filenames_file": ".lightly/r.txt", "datasource": {
        "process_all": True, "input_expiration": {"min_days_to_expiration": 1.5, "handling_strategy": "SKIP"}}},
])
def test_with_worker_config_is_what_build_does(worker: dict[str, Any] | None) -> None:
    base = {"datasource_uri": "s3://b/images", "datapool_uri": "s3://b/pool", "datasource_conn_id": "aws",
            "live_photo_videos": True}
    built = NewFilesQuery.build(**base, worker_config=worker)
    assert NewFilesQuery.build(**base).with_worker_config(worker) == built
    assert NewFilesQuery.build(**base, process_all=True).with_worker_config(worker).process_all is True
    named = NewFilesQuery.build(**base, relevant_filenames_file="relevant.txt")
    if worker and worker.get("relevant_filenames_file") not in (None, "relevant.txt"):
        with pytest.raises(ValueError, match="give it in one place"):
            named.with_worker_config(worker)
    else:
        assert named.with_worker_config(worker).relevant_filenames_file == "relevant.txt"


def test_a_local_worker_config_is_applied_read_again_when_it_changes_and_a_broken_one_is_logged(
        tmp_path: Path, capsys, monkeypatch) -> None:
    root, pool = _datasource(tmp_path, ["a.png", "b.png"], ["a.png"])
    config = tmp_path / "worker.yaml"
    config.write_text("relevant_filenames_file: relevant.txt\n")
    reads = _count_reads(monkeypatch)

    async def scenario() -> list[dict[str, Any]]:
        watch = _watch(root, pool, str(config), AssetStore())
        await watch.until(1)
        assert watch.events[0]["new"] == 1  # a.png only: the config's relevant_filenames_file applies
        logged = _logged(capsys)
        assert f"worker config {VARIABLE}={str(config)!r} read: the new-file checks apply " \
               "relevant_filenames_file='relevant.txt', process_all=False, input_expiration=none" in logged
        await asyncio.sleep(0.5)  # many checks, the file unchanged: not read again
        assert len(reads) == 1 and len(watch.events) == 1

        # Edited (no restart, the trigger's arguments unchanged): read again at the next check.
        config.write_text("datasource:\n  process_all: true\n  input_expiration:\n"
                          "    min_days_to_expiration: 2\n    handling_strategy: SKIP\n")
        await watch.until(2)
        assert watch.events[1]["new"] == 2 and watch.events[1]["process_all"] is True
        assert "read again (the file changed): the new-file checks apply relevant_filenames_file=None, " \
               "process_all=True, input_expiration=2 days, SKIP" in _logged(capsys)
        assert len(reads) == 2

        # Broken: logged at each check with the variable, the path, the problem and the fix; the watcher goes on
        # with the config it read last (process_all: the new file is announced with the two others).
        config.write_text("datasource:\n  process_all: maybe\n")
        logged = await _until_logged(capsys, "(2 checks in a row)")
        assert f"{VARIABLE}={str(config)!r}" in logged and "datasource.process_all" in logged
        assert "Fix: correct the listed keys" in logged and f"or unset {VARIABLE} to use the default" in logged
        assert "(2 checks in a row)" in logged and "the checks go on with the worker config read at" in logged
        assert not watch.task.done()
        (root / "c.png").write_bytes(png_bytes(3))
        await watch.until(3)
        assert watch.events[2]["new"] == 3

        config.write_text("relevant_filenames_file: relevant.txt\n")  # repaired: applies again
        logged = await _until_logged(capsys, "can be used again")
        assert f"the worker config {VARIABLE}={str(config)!r} can be used again" in logged
        assert "relevant_filenames_file='relevant.txt', process_all=False" in logged
        await watch.stop()
        return watch.events

    assert [e["new"] for e in asyncio.run(scenario())] == [1, 2, 3]


def test_a_worker_config_never_read_is_logged_and_the_watcher_goes_on_without_its_keys(
        tmp_path: Path, capsys) -> None:
    root, pool = _datasource(tmp_path, ["a.png", "b.png"], ["a.png"])
    missing = tmp_path / "nope" / "worker.json"

    async def scenario() -> list[dict[str, Any]]:
        watch = _watch(root, pool, str(missing), AssetStore())
        await watch.until(1)  # not stopped, and no event for the error: the files without the config's keys
        await asyncio.sleep(0.2)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert [e["new"] for e in events] == [2] and events[0]["status"] == "new_files"
    logged = _logged(capsys)
    assert f"{VARIABLE}={str(missing)!r}: does not exist" in logged and "Fix: correct the path or URI" in logged
    assert "the checks go on WITHOUT its relevant_filenames_file, datasource.process_all and " \
           "datasource.input_expiration (none of it was read yet)" in logged


def _s3(bucket: Any) -> Any:
    return boto3.client("s3", endpoint_url=bucket.credentials.endpoint_url, aws_access_key_id="test",
                        aws_secret_access_key="test", region_name="us-east-1")


def test_a_bucket_worker_config_is_read_in_the_triggerer_and_again_when_its_etag_changes(
        s3_bucket, tmp_path: Path, monkeypatch, capsys) -> None:
    # The triggerer's environment credentials reach the bucket (as its role or keys would).
    for name, value in {"AWS_ENDPOINT_URL": s3_bucket.credentials.endpoint_url, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    root, pool = _datasource(tmp_path, ["a.png", "b.png"], ["a.png", "c.png", "e.png"])
    uri = f"{s3_bucket.uri}/configs/worker.yaml"
    s3 = _s3(s3_bucket)
    reads = _count_reads(monkeypatch)

    async def scenario() -> list[dict[str, Any]]:
        # Not there yet: logged with the variable, the URI and the fix; the watcher watches without its keys.
        watch = _watch(root, pool, uri, AssetStore())
        await watch.until(1)
        assert watch.events[0]["new"] == 2
        logged = _logged(capsys)
        assert f"{VARIABLE}={uri!r}: does not exist" in logged and "the checks go on WITHOUT" in logged

        s3.put_object(Bucket=s3_bucket.name, Key="configs/worker.yaml", Body=b"relevant_filenames_file: relevant.txt\n")
        logged = await _until_logged(capsys, "can be used again")
        assert f"the worker config {VARIABLE}={uri!r} can be used again" in logged
        assert "relevant_filenames_file='relevant.txt'" in logged
        n = len(reads)
        (root / "d.png").write_bytes(png_bytes(4))  # not among the relevant files: no event
        (root / "c.png").write_bytes(png_bytes(3))  # relevant: a.png and c.png
        await watch.until(2)
        await asyncio.sleep(0.4)
        assert [e["new"] for e in watch.events] == [2, 2]
        assert len(reads) == n  # the ETag did not change: read once, then one HEAD per check

        # Replaced (a new ETag): read again; another relevant-filenames file lets b.png through (not d.png).
        (root / ".lightly" / "relevant2.txt").write_text("a.png\nb.png\nc.png\ne.png\n")
        s3.put_object(Bucket=s3_bucket.name, Key="configs/worker.yaml",
                      Body=b"relevant_filenames_file: relevant2.txt\ndatasource: {process_all: true}\n")
        await watch.until(3)
        assert watch.events[2]["new"] == 3 and watch.events[2]["process_all"] is True
        assert len(reads) == n + 1 and "read again (the file changed)" in await _until_logged(capsys, "read again")

        # Deleted: logged at each check; the watcher goes on with the config it read last.
        s3.delete_object(Bucket=s3_bucket.name, Key="configs/worker.yaml")
        logged = await _until_logged(capsys, "(2 checks in a row)")
        assert f"{VARIABLE}={uri!r}: does not exist" in logged
        assert "the checks go on with the worker config read at" in logged
        assert len(watch.events) == 3  # (without the config's keys d.png would be announced now)
        (root / "e.png").write_bytes(png_bytes(5))  # relevant to the last config read: a, b, c and e
        await watch.until(4)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    # d.png is never among the files the configs' relevant_filenames_file let through
    assert [e["new"] for e in events] == [2, 2, 3, 4]
    assert json.dumps(events)  # (the payloads are JSON, as the asset event stores them)
