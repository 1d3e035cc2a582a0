"""Delta's own VACUUM run by hand on a pool (delta-rs' ``DeltaTable.vacuum``, as Delta's docs show it; Spark's
``VACUUM`` commits the same two versions): no ``_vacuum/`` record, only its ``VACUUM START`` / ``VACUUM END``
versions in the log. The history, the UI and every read of an old version must say which versions it cost and what
to read instead, never delta-rs' "Object at location ... not found" (a 500 in the UI).

The pool: runs 0..2 (versions 1..3), a compaction (4) that removes their files, runs 3 and 4 (5, 6), Delta's VACUUM
with no retention (7, 8: it deletes the 6 files the compaction removed), one more run (9). Versions 1..3 lost files;
0 (the empty pool) and 4..9 read.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from deltalake import DeltaTable

from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool, DatapoolError, snapshot
from lightly_airflow.datapool.compaction import CompactionOptions, compact

from .conftest import VersionOptions, commit_run, run_rows

RAW = re.compile(r"Object at location|Parquet error|External error|os error")


def delta_vacuum(pool: Datapool) -> list[str]:
    """What a user following Delta's docs runs: delta-rs' own VACUUM with no retention."""
    table = DeltaTable(pool._table_uri, storage_options=pool._options)
    return table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)


def build(pool: Datapool, digits) -> None:
    for r in range(5):
        if r == 3:
            assert compact(pool, CompactionOptions(min_small_files=2), force=True).version == 4
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[3, 7]), f"run-{r}")
    assert len(delta_vacuum(pool)) == 6  # versions 7, 8
    commit_run(pool, run_rows(digits, range(100, 110), picks=[2]), "run-after")  # version 9


@pytest.fixture
def pool(tmp_path, digits) -> Datapool:
    made = Datapool(str(tmp_path / "pool"))
    build(made, digits)
    return made


def readable(pool: Datapool, version: int) -> bool:
    try:
        pool.read(version=version)
    except DatapoolError:
        return False
    return True


def test_reading_a_version_delta_vacuum_deleted_names_the_vacuum_and_the_version_to_read(pool) -> None:
    assert [e["operation"] for e in pool.history()[7:9]] == ["VACUUM START", "VACUUM END"]
    assert [v for v in range(10) if not readable(pool, v)] == [1, 2, 3]
    for version in (1, 3):
        with pytest.raises(DatapoolError) as err:
            pool.read(version=version)
        message = str(err.value)
        assert message.startswith(f"Version {version} of {pool.uri} can no longer be read: Delta's own VACUUM "
                                  "(versions 7–8 of the log")
        assert "retention of 0 hours) deleted its data file selected=" in message
        assert "The oldest readable version after it is 4;" in message and not RAW.search(message)
    with pytest.raises(DatapoolError, match="Version 2 of .* Delta's own VACUUM"):
        pool.read(run_id="run-1")  # the snapshot that run committed
    with pytest.raises(DatapoolError, match="Version 3 of .* Delta's own VACUUM"):
        pool.snapshot(3).selected()
    snapshot._history_cache.clear()  # a new process: the pinned read names the vacuum from the log too
    with pytest.raises(DatapoolError, match="Version 1 of .* oldest readable version after it is 4"):
        Datapool(pool.uri).snapshot(1).known_files()
    assert pool.read(version=4).num_rows == 30 and pool.read(version=9).num_rows == 60


def test_the_cli_history_names_the_versions_delta_vacuum_cost_and_show_says_what_to_read(pool, capsys) -> None:
    capsys.readouterr()
    assert main(["datapool", "history", pool.uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("8 "))
    assert "VACUUM END" in lines[at] and lines[at + 1].split()[1] == "vacuum" and lines[at + 2].startswith("9 ")
    assert re.search(r"  Delta VACUUM \(versions 7–8, run outside lightly-airflow\): 6 files, \d+\.\d kB deleted, "
                     r"versions 1–3 may be unreadable \(retention 0 hours\)$", lines[at + 1]), lines[at + 1]
    assert main(["datapool", "history", pool.uri, "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["version"] for e in entries] == list(range(10))
    [vac] = entries[8]["vacuums"]
    assert (vac["by"], vac["versions"], vac["unreadable"], vac["files_deleted"], vac["status"]) == \
        ("Delta VACUUM", [7, 8], [[1, 3]], 6, "completed")
    assert entries[7]["parameters"]["specifiedRetentionMillis"] == "0"

    assert main(["datapool", "show", pool.uri, "--version", "2"]) == 1
    err = capsys.readouterr().err
    assert "Version 2 of" in err and "oldest readable version after it is 4" in err and not RAW.search(err)
    assert main(["datapool", "show", pool.uri, "--version", "5"]) == 0


def test_the_ui_offers_no_version_delta_vacuum_deleted_and_answers_400_not_500(pool, monkeypatch) -> None:
    from ui_client import ui_client

    day = pool.history()[7]["timestamp"].date().isoformat()
    with ui_client(monkeypatch, {"curated": {"uri": pool.uri}}) as client:
        page = client.get("/lightly/pools/curated/samples")
        assert page.status_code == 200
        versions = VersionOptions.of(page.text).versions()
        assert versions == [("9", False, "9 (latest)"), *[(str(v), False, str(v)) for v in range(8, 3, -1)],
                            (None, True, f"3–1: vacuumed by Delta VACUUM at versions 7–8 (files deleted {day})"),
                            ("0", False, "0")]
        offered = {int(v) for v, disabled, _ in versions if v is not None}
        assert offered == {v for v in range(10) if readable(pool, v)}  # exactly the versions that read

        for url in ("/lightly/pools/curated/samples?version=2", "/lightly/pools/curated/map?version=2",
                    "/lightly/pools/curated/compare?version=2&tag=run-0&tag=run-1",
                    "/lightly/pools/curated/export?version=2&tag=run-1&format=csv"):
            answer = client.get(url)
            assert answer.status_code == 400, url
            shown = html.unescape(re.sub(r"<[^>]+>", " ", answer.text))
            assert "Version 2 of 'curated' can no longer be read: Delta's own VACUUM (versions 7–8" in shown, url
            assert "oldest readable version after it is 4" in shown and not RAW.search(shown), url
        for url in ("/lightly/api/pools/curated/samples?version=1", "/lightly/api/pools/curated/facets?version=1",
                    "/lightly/api/pools/curated/compare?version=1&tag=run-0&tag=initial-tag"):
            answer = client.get(url)
            assert answer.status_code == 400, url
            detail = answer.json()["detail"]
            assert detail.startswith("Version 1 of 'curated' can no longer be read: Delta's own VACUUM (versions 7–8")
            assert not RAW.search(detail)
        assert client.get("/lightly/pools/curated/samples?version=5").status_code == 200

        overview = client.get("/lightly/pools/curated")
        assert overview.status_code == 200
        browsed = VersionOptions.of(overview.text).browsed()
        assert browsed == [0, 4, 5, 6, 7, 8, 9]
        assert overview.text.count(f"vacuumed (files deleted {day})") == 3
        text = re.sub(r"<[^>]+>", " ", overview.text.split("<h2>Versions</h2>", 1)[1])
        line = re.search(r"Delta VACUUM \(versions 7–8, run outside lightly-airflow\): 6 files, \d+\.\d kB deleted, "
                         r"versions 1–3 may be unreadable \(retention 0 hours\)", text)
        assert line is not None and text.index(" 9 ") < line.start() < text.index(" 8 ")
        data = client.get("/lightly/api/pools/curated").json()
        assert [h["version"] for h in data["history"] if h["vacuumed"]] == [3, 2, 1]
        assert [(v["by"], v["versions"], v["unreadable"]) for v in data["vacuums"]] == \
            [("Delta VACUUM", [7, 8], [[1, 3]])]


def test_a_file_deleted_by_hand_is_named_and_a_delta_vacuum_that_deleted_nothing_costs_no_version(
    tmp_path, digits,
) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    for r in range(3):
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[1]), f"run-{r}")
    # Delta keeps the week the docs recommend: nothing old enough, nothing deleted, no version committed.
    assert DeltaTable(pool.uri).vacuum(retention_hours=168, dry_run=False, enforce_retention_duration=False) == []
    paths = DeltaTable(pool.uri, version=1).get_add_actions(flatten=True).column("path").to_pylist()
    [name] = [p for p in paths if p.startswith("selected=false/")]
    first = tmp_path / "pool" / name
    first.unlink()  # deleted by hand: the file of run-0 every version reads
    with pytest.raises(DatapoolError) as err:
        pool.read(version=1)
    assert f"Version 1 of {pool.uri} can no longer be read: its data file selected=false/{first.name} was deleted " \
           "outside lightly-airflow (no VACUUM is in the log after it). Read a later version" in str(err.value)
    with pytest.raises(DatapoolError) as err:
        pool.read()
    assert str(err.value).startswith(f"Version 3 of {pool.uri} (the latest) cannot be read: its data file "
                                     f"selected=false/{first.name} is missing. Run `lightly-airflow datapool check")
    assert not RAW.search(str(err.value))
    from lightly_airflow.datapool.reclaim import delta_vacuums

    assert delta_vacuums(pool.history()) == []


def test_sparks_vacuum_reads_the_same(tmp_path, digits, monkeypatch) -> None:
    """Spark's ``VACUUM pool RETAIN 0 HOURS`` deletes the same files and commits the same two versions, with its
    parameters and metrics as strings (``"numFilesToDelete": "6"``)."""
    from ui_client import ui_client

    pool = Datapool(str(tmp_path / "pool"))
    for r in range(5):
        if r == 3:
            compact(pool, CompactionOptions(min_small_files=2), force=True)  # version 4
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[3, 7]), f"run-{r}")
    log_dir = tmp_path / "pool" / "_delta_log"
    removed = [json.loads(line)["remove"]["path"] for line in (log_dir / f"{4:020d}.json").read_text().splitlines()
               if line.startswith('{"remove"')]
    size = sum((tmp_path / "pool" / p).stat().st_size for p in removed)
    for p in removed:
        (tmp_path / "pool" / p).unlink()
    start = int(pool.history()[-1]["timestamp"].timestamp() * 1000) + 1000
    for version, commit in ((7, {"timestamp": start, "operation": "VACUUM START", "operationParameters": {
            "retentionCheckEnabled": "false", "defaultRetentionMillis": "604800000", "specifiedRetentionMillis": "0"},
            "readVersion": 6, "isolationLevel": "SnapshotIsolation", "isBlindAppend": True,
            "operationMetrics": {"numFilesToDelete": str(len(removed)), "sizeOfDataToDelete": str(size)},
            "engineInfo": "Apache-Spark/3.5.1 Delta-Lake/3.2.0"}),
                            (8, {"timestamp": start + 900, "operation": "VACUUM END",
                                 "operationParameters": {"status": "COMPLETED"}, "readVersion": 7,
                                 "isolationLevel": "SnapshotIsolation", "isBlindAppend": True,
                                 "operationMetrics": {"numDeletedFiles": str(len(removed)),
                                                      "numVacuumedDirectories": "3"},
                                 "engineInfo": "Apache-Spark/3.5.1 Delta-Lake/3.2.0"})):
        (log_dir / f"{version:020d}.json").write_text(json.dumps({"commitInfo": commit}) + "\n")
    commit_run(pool, run_rows(digits, range(100, 110), picks=[2]), "run-after")  # version 9
    with pytest.raises(DatapoolError, match="Version 2 of .* Delta's own VACUUM \\(versions 7–8 of the log"):
        pool.read(version=2)
    assert [v for v in range(10) if not readable(pool, v)] == [1, 2, 3]
    with ui_client(monkeypatch, {"curated": {"uri": pool.uri}}) as client:
        data = client.get("/lightly/api/pools/curated").json()
    assert [h["version"] for h in data["history"] if h["vacuumed"]] == [3, 2, 1]
    [vac] = data["vacuums"]
    assert (vac["versions"], vac["unreadable"], vac["files_deleted"], vac["retention_hours"]) == \
        ([7, 8], [[1, 3]], len(removed), 0)


def test_delta_vacuum_on_s3_and_what_the_version_list_reads(s3_bucket, digits) -> None:
    """On S3 delta-rs words a missing object its own way; the time-travel list takes Delta's VACUUM from the history
    the page reads for its tags anyway: no request of the log more."""
    from lightly_airflow.plugins.config import PoolSpec
    from lightly_airflow.plugins.pages import version_options
    from lightly_airflow.plugins.query import QueryError, Scope, View

    from .counting_proxy import counting_proxy

    pool = Datapool(f"{s3_bucket.uri}/pool", s3_bucket.credentials)
    build(pool, digits)
    with pytest.raises(DatapoolError) as err:
        pool.read(version=2)
    assert "Version 2 of s3://" in str(err.value) and "Delta's own VACUUM (versions 7–8" in str(err.value)
    assert not RAW.search(str(err.value))
    spec = PoolSpec("curated", pool.uri)
    with pytest.raises(QueryError, match="Version 3 of 'curated' can no longer be read: Delta's own VACUUM"):
        View(spec, 3, s3_bucket.credentials).grid(Scope(), sort=None, descending=False, offset=0, limit=10)
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        view = View(spec, None, creds)
        view.tags()  # the page's tag list: the history
        requests.reset()
        view.lost()  # what the list read before: the _vacuum/ listing (no record here)
        record = requests.reset()
        options = version_options(view)
        added = requests.reset()
    assert sum(1 for o in options if "disabled" in o) == 1 and "3–1: vacuumed by Delta VACUUM" in "".join(options)
    assert not any("log" in kind for kind in record) and added == {}, (record, added)


def test_the_objects_of_images_in_a_version_delta_vacuum_cost_are_an_error_not_none(tmp_path, digits) -> None:
    """``objects_of_images`` reads ``None`` (no objects) for a pool without object columns: a gone data file must
    not read as that."""
    import pyarrow as pa

    from lightly_airflow import columns as C
    from lightly_airflow.objects.run import objects_of_images

    pool = Datapool(str(tmp_path / "pool"))
    for r in range(4):
        if r == 3:
            compact(pool, CompactionOptions(min_small_files=2), force=True)  # version 4
        rows = run_rows(digits, range(r * 10, r * 10 + 10), picks=[3, 7])
        parents = [None] * 9 + [rows.column(C.KEY)[0].as_py()]  # the last row: an object of the first image
        rows = rows.append_column(C.PARENT_KEY, pa.array(parents, pa.string()))
        commit_run(pool, rows, f"run-{r}")
    delta_vacuum(pool)
    images = [(run_rows(digits, range(10, 20)).column(C.KEY)[0].as_py(), "run-1")]
    assert objects_of_images(pool.snapshot(4), images, [C.KEY]).num_rows == 1
    with pytest.raises(DatapoolError, match="Version 2 of .* Delta's own VACUUM"):
        objects_of_images(pool.snapshot(2), images, [C.KEY])
