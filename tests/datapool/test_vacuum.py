"""Reclaiming space in a long-lived pool (``datapool.reclaim.vacuum``) on real pools the tests grow.

Age is made honestly: a compaction "40 days ago" is the real compaction with its module clock set back (its
remove actions carry that deletion timestamp, as a compaction run then would have written), and old files get
their modification time set back with ``os.utime``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import types
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool, DatapoolError, compaction, history_index, reclaim, snapshot, vacuum
from lightly_airflow.datapool.check import check_pool
from lightly_airflow.datapool.compaction import CompactionOptions, compact
from lightly_airflow.staging import run_dir
from lightly_airflow.storage import filesystem

from .conftest import VersionOptions, commit_run, run_rows

DAY = 86400


def grow(pool: Datapool, digits, runs: int, start: int = 0) -> None:
    for r in range(start, start + runs):
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[3, 7, 1]), f"run-{r}")


def compact_days_ago(pool: Datapool, days: float, monkeypatch) -> int:
    """A real compaction whose remove actions say it ran ``days`` ago."""
    clock = types.SimpleNamespace(time=lambda: time.time() - days * DAY, perf_counter=time.perf_counter)
    monkeypatch.setattr(compaction, "time", clock)
    try:
        result = compact(pool, CompactionOptions(min_small_files=2), force=True)
    finally:
        monkeypatch.setattr(compaction, "time", time)
    assert result.version is not None
    return result.version


def age(path: Path, days: float) -> None:
    old = time.time() - days * DAY
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (old, old))


def views(pool: Datapool, version: int) -> dict[str, pa.Table]:
    snap = pool.snapshot(version)
    return {"rows": snap.read().sort_by([(C.KEY, "ascending"), ("commit_version", "ascending")]),
            "selected": snap.selected(), "known": snap.known_files().sort_by(C.KEY)}


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def old_pool(tmp_path, digits, monkeypatch) -> tuple[Datapool, Path, dict]:
    """12 runs merged 40 days ago (version 13), 3 runs since, merged an hour ago (version 17), one more run;
    an orphan of a killed write 40 days old and one of now; staging folders of a committed run, of a run that
    failed 40 days ago and of a run in flight."""
    root = tmp_path / "pool"
    pool = Datapool(str(root))
    grow(pool, digits, 12)
    assert compact_days_ago(pool, 40, monkeypatch) == 13
    grow(pool, digits, 3, start=12)
    assert compact_days_ago(pool, 1 / 24, monkeypatch) == 17
    grow(pool, digits, 1, start=15)
    some = next((root / "selected=false").glob("*.parquet"))
    shutil.copy(some, root / "selected=false" / "part-killed-old.parquet")
    age(root / "selected=false" / "part-killed-old.parquet", 40)
    shutil.copy(some, root / "selected=true" / "part-killed-now.parquet")
    (root / "notes").mkdir()
    (root / "notes" / "README.txt").write_text("how this pool is fed")  # not a data file: delta-rs FULL deletes it
    age(root / "notes", 40)
    staged = {}
    for run_id, days in (("run-3", 0), ("failed-long-ago", 40), ("in-flight", 0)):
        folder = Path(run_dir(str(root), run_id))
        (folder / "embeddings").mkdir(parents=True)
        (folder / "embeddings" / "shard-00000.parquet").write_bytes(b"x" * 1000)
        age(folder, days)
        staged[run_id] = folder
    receipt = root / "_commits" / f"{staged['run-3'].name}.json"
    age(receipt, 2 / 24)  # the run committed two hours ago
    return pool, root, staged


def test_vacuum_deletes_what_only_old_versions_need_and_every_newer_version_reads_as_before(old_pool) -> None:
    pool, root, staged = old_pool
    before = {v: views(pool, v) for v in range(13, 19)}
    history = pool.history()
    hidden = {d: files_under(root / d) for d in ("_delta_log", "_commits")}
    removed_long_ago = set(DeltaTable(str(root)).vacuum(retention_hours=30 * 24, dry_run=True,
                                                        enforce_retention_duration=False))
    assert len(removed_long_ago) == 24  # Delta's own (lite) plan: the 24 files merged 40 days ago

    dry = vacuum(pool, 30, dry_run=True)
    on_disk = files_under(root)
    assert {f.path for f in dry.files if f.reason == "removed"} == removed_long_ago
    assert [f.path for f in dry.files if f.reason == "unreferenced"] == ["selected=false/part-killed-old.parquet"]
    assert {s.reason for s in dry.staging} == {"committed", "stale"} and len(dry.staging) == 2
    assert dry.unreadable == [[1, 12]] and dry.record is None
    assert [k.split(":")[0] for k in dry.kept] == ["notes/README.txt"]
    assert files_under(root) == on_disk  # a dry run deletes nothing

    done = vacuum(pool, 30)
    assert [f.path for f in done.files] == [f.path for f in dry.files] and done.bytes_deleted == dry.bytes_deleted
    assert done.bytes_deleted > 24 * 5000 and done.staging_bytes == 2000
    left = files_under(root)
    assert not any(f.path in left for f in done.files)
    assert "selected=true/part-killed-now.parquet" in left  # unreferenced, but may be a run committing now
    assert "notes/README.txt" in left
    assert not staged["run-3"].exists() and not staged["failed-long-ago"].exists() and staged["in-flight"].exists()
    assert {d: files_under(root / d) for d in ("_delta_log", "_commits")} == hidden
    assert pool.history() == history  # the vacuum wrote no log version

    for version, expected in before.items():  # every version since the cutoff reads exactly as before
        assert views(pool, version) == expected, version
    for version in (1, 7, 12):
        with pytest.raises(DatapoolError) as err:
            pool.read(version=version)
        message = str(err.value)
        assert f"Version {version} of" in message and "kept 30 days" in message
        assert "oldest readable version after it is 13" in message
        assert time.strftime("%Y-%m-%d", time.gmtime()) in message
    assert pool.read(version=0).num_rows == 0
    record = json.loads(Path(done.record).read_text())
    assert record["status"] == "completed" and record["files_deleted"] == 25 and record["keep_days"] == 30

    assert [f for f in check_pool(str(root)) if f.level == "error"] == []
    again = vacuum(pool, 30)
    assert again.files == [] and again.staging == [] and again.record is None
    assert again.already_gone == 24 and [k.split(":")[0] for k in again.kept] == ["notes/README.txt"]


def test_a_run_that_read_the_pool_before_a_vacuum_commits_and_a_compaction_follows(old_pool, digits) -> None:
    pool, root, _ = old_pool
    read = pool.version()
    vacuum(pool, 30)
    result = commit_run(pool, run_rows(digits, range(500, 510), picks=[0]), "after-vacuum", read_version=read)
    assert result.version == read + 1 and not result.already_committed
    merged = compact(pool, CompactionOptions(min_small_files=2), force=True)
    assert merged.version == read + 2
    assert pool.read().num_rows == 170 and pool.read(tag="after-vacuum").num_rows == 1
    assert [f for f in check_pool(str(root)) if f.level == "error"] == []


def test_a_vacuum_while_the_pool_has_history_segments(tmp_path, digits, monkeypatch) -> None:
    monkeypatch.setattr(history_index, "EVERY", 5)
    root = tmp_path / "pool"
    pool = Datapool(str(root))
    grow(pool, digits, 8)
    compact_days_ago(pool, 40, monkeypatch)  # version 9
    grow(pool, digits, 2, start=8)  # version 11: a segment 0..9 written at version 9's next due run
    segments = files_under(root / "_history")
    assert segments
    history = pool.history()
    vacuum(pool, 7)
    assert files_under(root / "_history") == segments
    snapshot._history_cache.clear()  # a new process: reads the segments, then the log after them
    assert pool.history() == history
    assert commit_run(pool, run_rows(digits, range(900, 905)), "late").version == 12
    with pytest.raises(DatapoolError, match="oldest readable version after it is 9"):
        pool.snapshot(5)


def test_keep_days_below_one_is_refused_with_the_reason(old_pool, capsys) -> None:
    pool, root, _ = old_pool
    on_disk = files_under(root)
    for bad in (0, -3):
        with pytest.raises(DatapoolError, match="unreferenced|referenced by no log entry until then"):
            vacuum(pool, bad)
    with pytest.raises(DatapoolError, match="staging_days must be at least 1"):
        vacuum(pool, 30, staging_days=0)
    assert main(["datapool", "vacuum", str(root), "--keep-days", "0"]) == 1
    assert "committing right now" in capsys.readouterr().err
    assert files_under(root) == on_disk


def test_cli_dry_run_and_json(old_pool, capsys) -> None:
    _, root, _ = old_pool
    assert main(["datapool", "vacuum", str(root), "--keep-days", "30", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete 25 data files" in out and "2 staging folders (2000 bytes)" in out and "1..12" in out
    assert main(["datapool", "vacuum", str(root), "--keep-days", "30", "--staging-days", "90", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files_deleted"] == 25 and [s["reason"] for s in result["staging"]] == ["committed"]
    assert result["unreadable"] == [[1, 12]] and not result["dry_run"]
    assert main(["datapool", "show", str(root), "--version", "5"]) == 1
    assert "Version 5 of" in capsys.readouterr().err
    assert main(["datapool", "show", str(root), "--version", "13"]) == 0


def test_the_ui_names_the_vacuum_instead_of_a_missing_file(old_pool) -> None:
    from lightly_airflow.plugins.config import PoolSpec
    from lightly_airflow.plugins.query import QueryError, View

    pool, root, _ = old_pool
    vacuum(pool, 30)
    spec = PoolSpec("curated", str(root))
    with pytest.raises(QueryError, match="Version 4 of 'curated' can no longer be read.*kept 30 days"):
        View(spec, 4)
    assert View(spec, 13).version == 13


def test_the_ui_offers_no_vacuumed_version_and_says_why(old_pool, digits, monkeypatch) -> None:
    """The time-travel list and the versions table of a vacuumed pool, rendered through the app: versions 1..12
    lost files, so they are one disabled option and "vacuumed" rows without a browse link; the vacuum itself is a
    row above version 18 (the latest when it ran)."""

    from ui_client import ui_client

    pool, root, _ = old_pool
    done = vacuum(pool, 30)
    assert done.unreadable == [[1, 12]]
    commit_run(pool, run_rows(digits, range(500, 510), picks=[1]), "after-vacuum")  # version 19
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps({"curated": {"uri": str(root)}}))

    day = done.cutoff.date() + timedelta(days=30)
    with ui_client() as client:
        page = client.get("/lightly/pools/curated/samples")
        assert page.status_code == 200
        versions = VersionOptions.of(page.text).versions()
        assert versions[:8] == [("19", False, "19 (latest)"), ("18", False, "18"), ("17", False, "17"),
                                ("16", False, "16"), ("15", False, "15"), ("14", False, "14"), ("13", False, "13"),
                                (None, True, f"12–1: vacuumed (files deleted {day})")]
        assert versions[8] == ("0", False, "0") and len(versions) == 9
        assert client.get("/lightly/pools/curated/samples?version=13").status_code == 200
        assert client.get("/lightly/pools/curated/samples?version=5").status_code == 400

        overview = client.get("/lightly/pools/curated")
        assert overview.status_code == 200
        browsed = VersionOptions.of(overview.text).browsed()
        assert browsed == [0, 13, 14, 15, 16, 17, 18, 19]
        assert overview.text.count(f"vacuumed (files deleted {day})") == 12
        text = re.sub(r"<[^>]+>", " ", overview.text.split("<h2>Versions</h2>", 1)[1])
        line = "vacuum: 25 files, 0.2 MB deleted, 2 staging folders (2.0 kB), versions 1–12 unreadable (kept 30 days)"
        assert text.index(" 19 ") < text.index(line) < text.index(" 18 ")
        data = client.get("/lightly/api/pools/curated").json()
        assert [(v["version"], v["files_deleted"], v["unreadable"]) for v in data["vacuums"]] == [(18, 25, [[1, 12]])]
        assert [h["version"] for h in data["history"] if h["vacuumed"]] == list(range(12, 0, -1))


def test_the_history_says_where_each_vacuum_ran_and_what_it_deleted(old_pool, digits, capsys) -> None:
    pool, root, staged = old_pool
    first = vacuum(pool, 30)  # the latest version is 18
    grow(pool, digits, 1, start=16)  # version 19
    age(staged["in-flight"], 40)  # a run that failed for good: the second vacuum removes its folder
    second = vacuum(pool, 30)
    assert second.files_deleted == 0 and len(second.staging) == 1 and second.record is not None
    capsys.readouterr()
    assert main(["datapool", "history", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    ops = [(line.split()[0], line.split()[2]) if not line.startswith(" ") else ("", line.split()[1])
           for line in lines[1:]]
    assert ops[-4:] == [("18", "WRITE"), ("", "vacuum"), ("19", "WRITE"), ("", "vacuum")]
    assert lines[-3].endswith("vacuum: 25 files, 0.2 MB deleted, 2 staging folders (2.0 kB), versions 1–12 "
                              "unreadable (kept 30 days)")
    assert lines[-1].endswith("vacuum: 0 files, 0.0 kB deleted, 1 staging folders (1.0 kB), every version still "
                              "readable (kept 30 days)")
    assert main(["datapool", "history", str(root), "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["version"] for e in entries] == list(range(20))  # still one entry per version
    assert [(e["version"], [v["files_deleted"] for v in e["vacuums"]]) for e in entries if "vacuums" in e] == \
        [(18, [25]), (19, [0])]
    assert first.record is not None
    # The newest record carries every vacuum: a reader needs only it.
    assert [v["started_at"] for v in json.loads(Path(second.record).read_text())["vacuums"]] == \
        [json.loads(Path(first.record).read_text())["started_at"], json.loads(Path(second.record).read_text())["started_at"]]


def test_an_interrupted_vacuum_and_records_older_than_the_summaries_read_in_the_history(old_pool, capsys) -> None:
    pool, root, _ = old_pool
    done = vacuum(pool, 30)
    record = json.loads(Path(done.record).read_text())
    del record["vacuums"]  # as a vacuum before this field wrote it
    Path(done.record).write_text(json.dumps(record))
    killed = {**record, "started_at": "2099-01-01T00:00:00+00:00", "status": "started", "unreadable": [[13, 14]]}
    for key in ("files_deleted", "bytes_deleted", "finished_at"):
        killed.pop(key)
    (root / "_vacuum" / "20990101T000000000000Z-killed.json").write_text(json.dumps(killed))
    capsys.readouterr()
    assert main(["datapool", "history", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "vacuum: 25 files, 0.2 MB deleted" in lines[-2]
    assert lines[-1].endswith("vacuum interrupted (started 2099-01-01T00:00:00): files may be partly deleted, "
                              "versions 13–14 may be unreadable (kept 30 days)")


def test_vacuum_on_s3(s3_bucket, digits, monkeypatch) -> None:
    uri = f"{s3_bucket.uri}/pool"
    pool = Datapool(uri, s3_bucket.credentials)
    grow(pool, digits, 4)
    compact_days_ago(pool, 40, monkeypatch)  # version 5
    grow(pool, digits, 1, start=4)
    latest = views(pool, 6)
    merged = views(pool, 5)
    fs, root = filesystem(uri, s3_bucket.credentials)
    fs.pipe(f"{root}/_staging/{Path(run_dir(uri, 'run-2')).name}/manifest/shard-00000.parquet", b"x" * 100)
    fs.pipe(f"{root}/_staging/in-flight/manifest/shard-00000.parquet", b"x" * 100)
    monkeypatch.setattr(reclaim, "COMMITTED_GRACE", timedelta(0))
    done = vacuum(pool, 30)
    assert [(Path(s.path).name, s.reason, s.bytes) for s in done.staging] == \
        [(Path(run_dir(uri, "run-2")).name, "committed", 100)]
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/_staging/{Path(run_dir(uri, 'run-2')).name}")
    assert fs.exists(f"{root}/_staging/in-flight/manifest/shard-00000.parquet")
    assert done.files_deleted == 8 and {f.reason for f in done.files} == {"removed"} and done.unreadable == [[1, 4]]
    assert not any(fs.exists(f"{root}/{f.path}") for f in done.files)
    assert views(pool, 6) == latest and views(pool, 5) == merged
    with pytest.raises(DatapoolError, match="Version 2 of .* can no longer be read"):
        pool.snapshot(2)
    assert [f for f in check_pool(uri, s3_bucket.credentials) if f.level == "error"] == []


def delta_vacuum(pool: Datapool) -> list[str]:
    """What a user following Delta's docs runs: delta-rs' own VACUUM, which commits two versions of its own."""
    return DeltaTable(pool.uri).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)


def test_a_run_commits_on_top_of_delta_vacuums_own_versions(tmp_path, digits) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    grow(pool, digits, 3)
    compact(pool, CompactionOptions(min_small_files=2), force=True)  # version 4
    read = pool.version()
    assert len(delta_vacuum(pool)) == 6
    assert [e["operation"] for e in pool.history()[-2:]] == ["VACUUM START", "VACUUM END"]
    # Not bare entries: what Delta's VACUUM says it did.
    start, end = pool.history()[-2:]
    assert start["counts"]["numFilesToDelete"] == 6 and start["counts"]["sizeOfDataToDelete"] > 0
    assert end["counts"] == {"numDeletedFiles": 6, "numVacuumedDirectories": 0}

    by_read_version = commit_run(pool, run_rows(digits, range(100, 110), picks=[2]), "run-a", read_version=read)
    assert by_read_version.version == 7
    rows = run_rows(digits, range(200, 210), picks=[4])
    grow_vacuum = compact(pool, CompactionOptions(min_small_files=2), force=True)  # version 8
    assert grow_vacuum.version == 8
    delta_vacuum(pool)  # versions 9, 10
    assert [e["operation"] for e in pool.history()[-2:]] == ["VACUUM START", "VACUUM END"]
    # A run that pinned the pool before (the select task's snapshot): its write loses, then lands on top.
    pinned = pool.snapshot(8)
    by_snapshot = pool.commit(rows, run_id="run-b", dag_id="curate", tag=None, config={}, counts={},
                              embedding_model="digits-pixels", embedding_dim=64, snapshot=pinned)
    assert by_snapshot.version == 11 and not by_snapshot.already_committed
    assert pool.read(tag="run-a").num_rows == 1 and pool.read(tag="run-b").num_rows == 1
    assert pool.read().num_rows == 50
    assert [f for f in check_pool(pool.uri) if f.level == "error"] == []
    snapshot._history_cache.clear()  # a new process; and one pinned between the vacuum versions
    operations = [e["run_id"] or e["operation"] for e in pool.history()]
    assert operations == ["create", "run-0", "run-1", "run-2", "compact", "VACUUM START", "VACUUM END", "run-a",
                          "compact", "VACUUM START", "VACUUM END", "run-b"]
    assert [e["version"] for e in pool.snapshot(9).history()] == list(range(10))
    assert [t["name"] for t in pool.tags()] == [C.INITIAL_TAG, "run-0", "run-1", "run-2", "run-a", "run-b"]


def test_a_run_and_a_delta_vacuum_since_the_read_still_conflict(tmp_path, digits) -> None:
    from lightly_airflow.datapool import ConcurrentCommitError

    pool = Datapool(str(tmp_path / "pool"))
    grow(pool, digits, 3)
    read = pool.version()
    compact(pool, CompactionOptions(min_small_files=2), force=True)
    delta_vacuum(pool)
    with pytest.raises(ConcurrentCommitError, match="'compact', 'VACUUM START', 'VACUUM END'"):
        commit_run(pool, run_rows(digits, range(100, 110)), "late", read_version=read)


def test_a_long_lived_reader_sees_a_vacuum_another_process_made(s3_bucket, digits, monkeypatch) -> None:
    """The UI server has listed _vacuum/ (an earlier vacuum's record); the CLI vacuums again in another process
    (here: its record written by another client); the server's next read of a newly lost version must name it."""
    import boto3

    from lightly_airflow.datapool.reclaim import unreadable_version_error

    uri = f"{s3_bucket.uri}/pool"
    pool = Datapool(uri, s3_bucket.credentials)
    grow(pool, digits, 3)
    s3 = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")

    def put_record(name: str, day: str, unreadable: list[list[int]]) -> None:
        lost = [{"first": a, "last": b, "vacuum": f"2026-12-{day}T18:00:00+00:00", "keep_days": 30,
                 "cutoff": "2026-11-01T18:00:00+00:00"} for a, b in unreadable]
        body = {"started_at": f"2026-12-{day}T18:00:00+00:00", "keep_days": 30, "unreadable": unreadable,
                "lost": lost, "status": "completed"}
        s3.put_object(Bucket=s3_bucket.name, Key=f"pool/_vacuum/{name}.json", Body=json.dumps(body).encode())

    put_record("20261201T180000Z-0000", "01", [[1, 1]])
    with pytest.raises(DatapoolError, match="the vacuum of 2026-12-01"):
        pool.read(version=1)  # this process has now listed _vacuum/
    assert pool.read(version=2).num_rows == 20
    put_record("20261204T180000Z-0001", "04", [[1, 2]])
    error = unreadable_version_error(uri, s3_bucket.credentials, 2)
    assert error is not None and "the vacuum of 2026-12-04 kept 30 days" in str(error)


def test_a_second_vacuum_keeps_naming_what_the_first_made_unreadable(tmp_path, digits, monkeypatch) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    grow(pool, digits, 6)
    assert compact_days_ago(pool, 40, monkeypatch) == 7
    grow(pool, digits, 4, start=6)
    assert compact_days_ago(pool, 35, monkeypatch) == 12
    latest = views(pool, 12)
    first = vacuum(pool, 38)
    assert first.unreadable == [[1, 6]]
    second = vacuum(pool, 30)
    assert second.unreadable == [[7, 11]] and second.already_gone == 12
    assert views(pool, 12) == latest
    with pytest.raises(DatapoolError, match="kept 38 days.*oldest readable version after it is 12"):
        pool.snapshot(3)
    with pytest.raises(DatapoolError, match="kept 30 days.*oldest readable version after it is 12"):
        pool.snapshot(9)
    record = json.loads(Path(second.record).read_text())
    assert [(r["first"], r["last"], r["keep_days"]) for r in record["lost"]] == [(1, 6, 38), (7, 11, 30)]
    assert [(v["keep_days"], v["unreadable"], v["status"]) for v in record["vacuums"]] == \
        [(38, [[1, 6]], "completed"), (30, [[7, 11]], "completed")]


def test_a_damaged_log_is_not_vacuumed(old_pool) -> None:
    pool, root, _ = old_pool
    entry = root / "_delta_log" / f"{14:020d}.json"
    entry.write_text(entry.read_text() + "{not json\n")
    on_disk = files_under(root)
    with pytest.raises(DatapoolError, match=r"log entry 14 is damaged: line 4 is not valid JSON"):
        vacuum(pool, 30)
    assert files_under(root) == on_disk


def test_history_segments_over_delta_vacuums_own_versions(tmp_path, digits, monkeypatch) -> None:
    monkeypatch.setattr(history_index, "EVERY", 5)
    pool = Datapool(str(tmp_path / "pool"))
    grow(pool, digits, 3)
    compact(pool, CompactionOptions(min_small_files=2), force=True)  # version 4
    delta_vacuum(pool)  # versions 5, 6
    grow(pool, digits, 6, start=3)  # versions 7..12: segments 0..7 (holding them) and 8..12
    assert len(files_under(tmp_path / "pool" / "_history")) == 2
    history = pool.history()
    snapshot._history_cache.clear()
    assert pool.history() == history and [e["version"] for e in history] == list(range(13))
    assert [e["operation"] for e in history[5:7]] == ["VACUUM START", "VACUUM END"]
