"""NewFilesTrigger: serialisation round trip without secrets, and real checks against local disk and moto."""

from __future__ import annotations

import asyncio
import importlib
import json

import pyarrow as pa
import pytest
from datasource.conftest import png_bytes

from lightly_airflow.datasource import NewFilesQuery, list_table
from lightly_airflow.datasource import known as known_module
from lightly_airflow.triggers import NewFilesTrigger


def _trigger(poke_interval: float = 60.0, end_at: float | None = None, isolate: bool = True, **query: object) -> NewFilesTrigger:
    return NewFilesTrigger(query=NewFilesQuery(**query), poke_interval=poke_interval, end_at=end_at, isolate=isolate)  # type: ignore[arg-type]


def _roundtrip(trigger: NewFilesTrigger) -> NewFilesTrigger:
    classpath, kwargs = trigger.serialize()
    kwargs = json.loads(json.dumps(kwargs))  # what the trigger table stores must be plain JSON
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def test_serialize_round_trip_keeps_every_input_and_no_secret(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SECRET_S3",
        json.dumps({"conn_type": "aws", "login": "AKIA", "password": "super-secret-key", "extra": {"region_name": "eu-west-1"}}),
    )
    query = NewFilesQuery(
        datasource_uri="s3://bucket/images",
        datapool_uri="gs://pool/datapool",
        datasource_conn_id="secret_s3",
        datapool_conn_id="gcp_pool",
        lightly_uri="az://meta/lightly",
        lightly_conn_id="wasb_meta",
        relevant_filenames_file="relevant_filenames.txt",
        extensions=("png", "mp4"),
        policy="key",
        process_all=True,
        min_days_to_expiration=2.5,
        expiration_handling="ABORT",
        live_photo_videos=True,
    )
    trigger = NewFilesTrigger(query=query, poke_interval=12.5)
    # serialize() is exactly the constructor's arguments: the query as it is, the interval and the deadline.
    assert trigger.serialize() == (
        "lightly_airflow.triggers.new_files.NewFilesTrigger",
        {
            "query": {
                "datasource_uri": "s3://bucket/images",
                "datapool_uri": "gs://pool/datapool",
                "lightly_uri": "az://meta/lightly",
                "datasource_conn_id": "secret_s3",
                "datapool_conn_id": "gcp_pool",
                "lightly_conn_id": "wasb_meta",
                "relevant_filenames_file": "relevant_filenames.txt",
                "extensions": ["png", "mp4"],
                "policy": "key",
                "process_all": True,
                "min_days_to_expiration": 2.5,
                "expiration_handling": "ABORT",
                "live_photo_videos": True,
            },
            "poke_interval": 12.5,
            "end_at": None,
            "isolate": True,
        },
    )
    again = _roundtrip(trigger)
    assert again.serialize() == trigger.serialize() and again.query == query
    assert "super-secret-key" not in json.dumps(trigger.serialize()[1])


async def _first_event(trigger: NewFilesTrigger, timeout: float = 20.0):
    return await asyncio.wait_for(trigger.run().__anext__(), timeout)


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown policy 'mtime'"):
        _trigger(datasource_uri="/x", datapool_uri="/y", policy="mtime")
    # Kwargs the triggerer passes back are read in the first check's thread, never in its shared event loop
    # (there, any error but a TypeError from a trigger's constructor escapes Airflow's handling): a bad key is
    # the first event, an error naming it, which the sensor fails with.
    trigger = NewFilesTrigger(query={"datasource_uri": "/x", "datapool_uri": "/y", "proces_all": True})
    event = asyncio.run(_first_event(trigger))
    assert event.payload["status"] == "error" and "Unknown NewFilesQuery keys" in event.payload["message"]
    assert "proces_all" in event.payload["message"]


@pytest.mark.parametrize("classpath", ["lightly_airflow.triggers.new_files.NewFilesTrigger",
                                       "lightly_airflow.triggers.new_files_event.NewFilesEventTrigger"])
def test_the_triggerer_imports_and_builds_the_trigger_without_the_datasource_code(classpath: str) -> None:
    """The triggerer imports a trigger's module and builds it in the event loop all triggers share; pyarrow,
    the Delta reader and the listing code (~0.15 s to import) must wait for the first check's thread."""
    import subprocess
    import sys

    code = (
        "import sys, airflow.triggers.base\n"
        "before = set(sys.modules)\n"
        "from airflow._shared.module_loading import import_string\n"
        f"cls = import_string({classpath!r})\n"
        "t = cls(query={'datasource_uri': '/x', 'datapool_uri': '/y'}, poke_interval=5.0)\n"
        "assert t.serialize()[1]['query']['datasource_uri'] == '/x'\n"
        "heavy = ('pyarrow', 'deltalake', 'pandas', 'numpy', 'lightly_airflow.datasource', 'lightly_airflow.hooks')\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_fires_when_a_file_arrives_and_skips_known_ones(tmp_path, monkeypatch) -> None:
    root = tmp_path / "ds"
    (root / "old").mkdir(parents=True)
    (root / "old" / "a.png").write_bytes(png_bytes(1))
    known = list_table(str(root))
    monkeypatch.setattr(known_module, "known_files", lambda uri, creds: known)
    # known_files is patched in this process: the check runs in a thread of it (isolate=False)
    trigger = _roundtrip(_trigger(datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"), poke_interval=0.05,
                                  isolate=False))

    async def scenario():
        waiting = asyncio.create_task(_first_event(trigger))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # only known files so far: the trigger keeps waiting
        (root / "new dir").mkdir()
        (root / "new dir" / "b.png").write_bytes(png_bytes(2))
        return await waiting

    event = asyncio.run(scenario())
    assert event.payload == {
        "status": "success", "datasource_uri": str(root), "listed": 2, "new": 1, "known": 1, "process_all": False,
    }


def test_process_all_fires_on_known_files(tmp_path, monkeypatch) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes(1))
    monkeypatch.setattr(known_module, "known_files", lambda uri, creds: list_table(str(root)))
    event = asyncio.run(_first_event(_trigger(datasource_uri=str(root), datapool_uri="/nowhere", process_all=True,
                                              isolate=False)))
    assert event.payload["status"] == "success" and event.payload["new"] == 1


def test_error_is_reported_as_an_event(tmp_path) -> None:
    trigger = _trigger(datasource_uri=str(tmp_path / "missing"), datapool_uri=str(tmp_path / "pool"))
    event = asyncio.run(_first_event(trigger))
    assert event.payload["status"] == "error"
    assert "FileNotFoundError" in event.payload["message"] and "missing" in event.payload["message"]


def test_resolves_connections_inside_the_trigger(s3_bucket, monkeypatch, tmp_path) -> None:
    creds = s3_bucket.credentials
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIGHTLY_S3",
        json.dumps({"conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
                    "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region}}),
    )
    from lightly_airflow.storage import filesystem

    fs, root = filesystem(f"{s3_bucket.uri}/images", creds)
    fs.pipe_file(f"{root}/x/one.png", png_bytes(1))
    fs.pipe_file(f"{root}/x/two.jpg", png_bytes(2))
    fs.pipe_file(f"{root}/.lightly/relevant.txt", b"x/one.png\n")
    monkeypatch.setattr(known_module, "known_files", lambda uri, c: pa.table({"key": [], "etag": []}, schema=pa.schema([("key", pa.string()), ("etag", pa.string())])))
    trigger = _trigger(
        datasource_uri=f"{s3_bucket.uri}/images", datapool_uri=str(tmp_path / "pool"), datasource_conn_id="lightly_s3",
        relevant_filenames_file="relevant.txt",
    )
    event = asyncio.run(_first_event(_roundtrip(trigger)))
    assert event.payload["status"] == "success", event.payload
    assert event.payload["listed"] == 1 and event.payload["new"] == 1


def test_known_files_is_none_before_the_first_run(tmp_path) -> None:
    assert known_module.known_files(str(tmp_path / "no-pool-yet")) is None


def test_reports_timeout_at_its_own_deadline(tmp_path) -> None:
    import time

    root = tmp_path / "empty"
    root.mkdir()
    trigger = _roundtrip(_trigger(datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"),
                                         poke_interval=0.2, end_at=time.time() + 0.6))
    started = time.monotonic()
    event = asyncio.run(_first_event(trigger, 10))
    assert event.payload["status"] == "timeout" and event.payload["new"] == 0
    assert 0.4 <= time.monotonic() - started < 5


def test_each_check_lists_in_a_child_process_not_in_the_triggerer(tmp_path, caplog, capsys) -> None:
    """The listing (S3 XML pages parsed holding the GIL, Arrow tables of every key) runs in a child process;
    its log lines are repeated in the trigger's log."""
    import logging

    root = tmp_path / "ds"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes(1))
    (root / "b.png").write_bytes(png_bytes(2))
    caplog.set_level(logging.INFO)
    event = asyncio.run(_first_event(_trigger(datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"))))
    assert event.payload == {
        "status": "success", "datasource_uri": str(root), "listed": 2, "new": 2, "known": 0, "process_all": False,
    }
    assert not [r for r in caplog.records if r.name == "lightly_airflow.datasource.listing"]  # not listed here
    # The trigger's own log (Airflow's structured logger, on stdout here) repeats the child's lines.
    relayed = [line for line in capsys.readouterr().out.splitlines() if "check: INFO" in line]
    assert any("lightly_airflow.datasource.listing: listing of" in m and "2 kept" in m for m in relayed), relayed


def test_credential_objects_are_checked_in_a_thread_and_said_so(tmp_path, caplog, capsys, monkeypatch) -> None:
    import logging

    from lightly_airflow.datasource import QueryCredentials
    from lightly_airflow.storage import StorageCredentials
    from lightly_airflow.triggers import new_files

    chain = QueryCredentials(datasource=StorageCredentials(google_credentials=object()))
    assert not chain.portable and QueryCredentials(datasource=StorageCredentials(token="{}")).portable
    monkeypatch.setattr(new_files, "resolve_credentials", lambda query: chain)
    root = tmp_path / "ds"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes(1))
    caplog.set_level(logging.INFO)
    event = asyncio.run(_first_event(_trigger(datasource_uri=str(root), datapool_uri=str(tmp_path / "pool"))))
    assert event.payload["status"] == "success" and event.payload["new"] == 1
    assert "objects a child process cannot take: checking in a thread" in capsys.readouterr().out
    assert [r for r in caplog.records if r.name == "lightly_airflow.datasource.listing"]  # listed in this process


def test_checks_in_child_processes_reuse_the_local_hashes_of_the_check_before(tmp_path, monkeypatch) -> None:
    """Each check's child process starts with the content hashes the check before computed (kept in a file of this
    user's temporary folder): a new process per poke read every byte of a local datasource every poke."""
    import logging
    import os
    import time

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lightly_airflow.datasource.check import files_digest
    from lightly_airflow.triggers.new_files import check_in_triggerer

    root = tmp_path / "ds"
    root.mkdir()
    for i in range(3):
        (root / f"img-{i}.png").write_bytes(png_bytes(i))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # (the children's temporary folder)
    (tmp_path / "tmp").mkdir()
    query = NewFilesQuery(datasource_uri=str(root), datapool_uri=str(tmp_path / "pool")).to_dict()
    log = logging.getLogger(__name__)
    first = asyncio.run(check_in_triggerer(query, isolate=True, log=log, digest=True))
    listing = list_table(str(root))
    assert first["new"] == 3 and first["digest"] == files_digest(listing)
    [cache] = (tmp_path / "tmp").glob("lightly-airflow-hashes-*/*.parquet")
    assert (cache.parent.stat().st_mode & 0o777) == 0o700
    unused = cache.parent / "a-folder-no-longer-watched.parquet"  # removed after a week without a check
    unused.write_bytes(b"")
    os.utime(unused, (time.time() - 8 * 86_400,) * 2)
    hashes = pq.read_table(cache)
    assert sorted(hashes["etag"].to_pylist()) == sorted(listing["etag"].to_pylist())
    # The next check takes a file's hash from there instead of reading the file: a (forged) hash shows it.
    forged = pc.if_else(pc.ends_with(hashes["path"], "img-1.png"), "sha256:forged", hashes["etag"])
    pq.write_table(hashes.set_column(hashes.schema.get_field_index("etag"), "etag", forged), cache)
    second = asyncio.run(check_in_triggerer(query, isolate=True, log=log, digest=True))
    expected = listing.set_column(2, "etag", pc.if_else(pc.equal(listing["key"], "img-1.png"), "sha256:forged",
                                                       listing["etag"]))
    assert second["digest"] == files_digest(expected) != first["digest"]
    assert not unused.exists() and cache.exists()
