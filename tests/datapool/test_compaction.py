"""A pool grown run by run keeps reading fast: its small data files are merged, every version reads as before."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.check import check_pool
from lightly_airflow.datapool.compaction import (
    COMPACT_OPERATION,
    CompactionOptions,
    CompactionResult,
    compact,
    compact_if_due,
    small_files,
)

from .conftest import commit_run, run_rows
from .counting_proxy import counting_proxy

#: 12 small runs: 24 data files (one per partition per run).
RUNS = 12
DUE = CompactionOptions(min_small_files=20)


def grow(pool: Datapool, digits, runs: int = RUNS, start: int = 0) -> None:
    for r in range(start, start + runs):
        idx = range(r * 10, r * 10 + 10)
        commit_run(pool, run_rows(digits, idx, picks=[3, 7, 1]), f"run-{r}")


def views(pool: Datapool, version: int) -> dict[str, pa.Table]:
    snap = pool.snapshot(version)
    return {
        "rows": snap.read().sort_by([(C.KEY, "ascending"), ("commit_version", "ascending")]),
        "selected": snap.selected(),
        "known": snap.known_files().sort_by(C.KEY),
        "tag": snap.read(tag="run-3") if version >= 4 else pa.table({}),
    }


def live_files(pool: Datapool) -> int:
    return len(pool.snapshot().table.file_uris())


def compact_while(pool: Datapool, meanwhile) -> CompactionResult:
    """``compact_if_due`` with ``meanwhile()`` run between its read of the pool and its write."""
    opened = pool._open

    def open_then(version=None):
        table = opened(version)
        pool._open = opened  # type: ignore[method-assign]
        meanwhile()
        return table

    pool._open = open_then  # type: ignore[method-assign]
    try:
        return compact_if_due(pool, DUE)
    finally:
        pool._open = opened  # type: ignore[method-assign]


def test_small_runs_are_merged_in_one_version_and_every_version_reads_as_before(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits)
    assert live_files(pool) == 2 * RUNS
    before = {v: views(pool, v) for v in (1, 4, RUNS)}
    tags_before = pool.tags()

    result = compact(pool, DUE)

    assert result.version == RUNS + 1 and result.files_removed == 2 * RUNS and result.files_added == 2
    assert live_files(pool) == 2  # one file per partition
    entry = pool.history()[-1]
    assert (entry["version"], entry["operation"], entry["run_id"], entry["tag"]) == (RUNS + 1, COMPACT_OPERATION, None, None)
    assert (entry["rows"], entry["selected"], entry["counts"]) == (None, None, {"files_merged": 2 * RUNS,
                                                                                "rows_moved": 10 * RUNS})
    for version, tables in before.items():  # time travel: each earlier version still reads its own files
        assert views(pool, version) == tables
    latest = views(pool, RUNS + 1)
    for name in ("rows", "selected", "known"):
        assert latest[name] == before[RUNS][name]
    assert latest["selected"].column(C.KEY).to_pylist() == before[RUNS]["selected"].column(C.KEY).to_pylist()
    tags = pool.tags()
    assert [t for t in tags if t["name"] != C.INITIAL_TAG] == [t for t in tags_before if t["name"] != C.INITIAL_TAG]
    assert tags[0]["count"] == tags_before[0]["count"] == 3 * RUNS
    assert [f for f in check_pool(pool.uri) if f.level == "error"] == []
    # Next runs commit on top of the compacted version; nothing is due again until small files gather.
    grow(pool, digits, runs=2, start=RUNS)
    assert pool.snapshot().selected().num_rows == 3 * (RUNS + 2)
    assert compact(pool, DUE).version is None


def test_nothing_happens_below_the_threshold_or_when_off(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, runs=5)
    assert small_files(pool.snapshot().table, DUE) == 10
    assert compact(pool, DUE).reason == "10 small files, fewer than 20"
    assert compact(pool, CompactionOptions(mode="off", min_small_files=2)).version is None
    assert pool.version() == 5
    assert compact(pool, DUE, force=True).version == 6
    with pytest.raises(ValueError, match="mode"):
        CompactionOptions(mode="on")  # type: ignore[arg-type]


def test_a_large_file_between_small_ones_stays_as_it_is(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, runs=5)
    commit_run(pool, run_rows(digits, range(len(digits[0])), picks=[0, 5]), "run-big")  # version 6: a large file
    grow(pool, digits, runs=4, start=6)
    options = CompactionOptions(min_small_files=2, target_file_bytes=2**17)
    table = pool.snapshot().table
    big = [p for p, size in zip(table.get_add_actions(flatten=True).column("path").to_pylist(),
                                table.get_add_actions(flatten=True).column("size_bytes").to_pylist())
           if size >= options.target_file_bytes // 2]
    assert len(big) == 1 and big[0].startswith("selected=false")
    before = views(pool, 10)

    result = compact(pool, options)

    assert result.version == 11 and result.files_removed == 19  # 9 + 10 small files, the big one kept
    files = pool.snapshot().table.get_add_actions(flatten=True).column("path").to_pylist()
    assert big[0] in files and len(files) == 3
    assert views(pool, 11) == before
    assert views(pool, 10) == before


def test_a_run_committing_during_a_compaction_lands_and_the_compaction_waits(tmp_path, digits, caplog) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits)
    result = compact_while(pool, lambda: commit_run(pool, run_rows(digits, range(500, 510), picks=[0]), "run-late"))
    assert result.version is None and result.reason.startswith("skipped"), result
    assert "Compaction of" in caplog.text and "the next run compacts instead" in caplog.text
    assert [(e["version"], e["run_id"]) for e in pool.history()[-2:]] == [(RUNS, f"run-{RUNS - 1}"), (RUNS + 1, "run-late")]
    assert pool.snapshot().selected().num_rows == 3 * RUNS + 1
    assert live_files(pool) == 2 * RUNS + 2
    assert compact_if_due(pool, DUE).version == RUNS + 2  # the next call does it
    assert pool.snapshot().selected().num_rows == 3 * RUNS + 1 and live_files(pool) == 2


def test_a_compaction_that_conflicts_is_skipped_and_the_pool_is_intact(tmp_path, digits, caplog) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits)
    other = []  # another compaction removes the same files first
    result = compact_while(pool, lambda: other.append(compact(Datapool(pool.uri), DUE)))
    assert other[0].version == RUNS + 1
    assert result.version is None and result.reason.startswith("skipped"), result
    assert "Compaction of" in caplog.text and "skipped" in caplog.text
    # Every row once (delta-rs' own OPTIMIZE lands both and the pool reads each row twice).
    assert pool.version() == RUNS + 1 and live_files(pool) == 2
    assert len(list((tmp_path / "pool").rglob("*.parquet"))) == 2 * RUNS + 2  # the loser's copies removed
    assert pool.snapshot().read().num_rows == 10 * RUNS
    assert pool.snapshot().selected().num_rows == 3 * RUNS
    assert [f for f in check_pool(pool.uri) if f.level == "error"] == []


def test_reading_a_compacted_pool_on_s3_opens_one_file_per_partition(s3_bucket, digits) -> None:
    pool = Datapool(f"{s3_bucket.uri}/pool", s3_bucket.credentials)
    grow(pool, digits)
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        counted = Datapool(f"{s3_bucket.uri}/pool", creds)
        snap = counted.snapshot()
        requests.reset()
        selected, known = snap.selected(), snap.known_files().sort_by(C.KEY)
        before = requests.reset()
        compact(counted, DUE)
        during = requests.reset()
        snap = counted.snapshot()
        requests.reset()
        assert (snap.selected(), snap.known_files().sort_by(C.KEY)) == (selected, known)
        after = requests.reset()
    # Before: each of the 24 small files is fetched; after: the two merged ones.
    assert before["GET"] >= 2 * RUNS, before
    assert after["GET"] <= before["GET"] / 4, (before, after)
    # The compaction fetches each small file once, whole (no footer reads first, no rescan by the write).
    assert during["GET"] <= 2 * RUNS and during["HEAD"] <= 2, during



def test_compaction_on_azure(azure_container, digits) -> None:
    """(GCS: fake-gcs-server lacks the upload call delta-rs commits with, docs/datapool.md.)"""
    bucket = azure_container
    pool = Datapool(f"{bucket.uri}/pool", bucket.credentials)
    grow(pool, digits, runs=4)
    before = views(pool, 4)
    result = compact(pool, CompactionOptions(min_small_files=8))
    assert (result.version, result.files_removed, result.files_added) == (5, 8, 2)
    assert views(pool, 5) == before and views(pool, 4) == before and live_files(pool) == 2


def test_a_hand_made_tag_that_a_compaction_beats_is_made_again_and_every_row_stays_once(
        tmp_path, digits, monkeypatch, caplog) -> None:
    from lightly_airflow.datapool import ConcurrentCommitError, DatapoolError, tagging

    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits)
    rows = pool.snapshot().read(columns=[C.SAMPLE_ID, "commit_version"]).slice(0, 3)
    opened = tagging._table
    landed = []

    def open_then_compaction_lands(p):
        table = opened(p)
        if not landed:  # the first try's read is beaten by a compaction
            landed.append(compact(Datapool(pool.uri), DUE).version)
        return table

    monkeypatch.setattr(tagging, "_table", open_then_compaction_lands)
    caplog.set_level("INFO", logger=tagging.__name__)
    made = tagging.create_tag(pool, "hand", rows)
    assert landed == [RUNS + 1] and made == {"tag": "hand", "version": RUNS + 2, "count": 3}
    assert "tagging again (attempt 2 of 3)" in caplog.text
    assert pool.snapshot().read(tag="hand").num_rows == 3 and pool.snapshot().read().num_rows == 10 * RUNS
    with pytest.raises(DatapoolError, match="Tag 'hand' does not exist"):  # the compaction's version: not yet
        pool.snapshot(RUNS + 1).read(tag="hand")

    def open_then_a_run_lands(p):  # every try beaten: refused, nothing tagged
        table = opened(p)
        n = pool.version()
        commit_run(pool, run_rows(digits, range(1000 + n * 10, 1010 + n * 10), picks=[0]), f"late-{n}")
        return table

    monkeypatch.setattr(tagging, "_table", open_then_a_run_lands)
    with pytest.raises(ConcurrentCommitError, match="Tag 'hand-2' was not made: .* 3 times"):
        tagging.create_tag(pool, "hand-2", rows)
    assert pool.version() == RUNS + 5 and "hand-2" not in {t["name"] for t in pool.tags()}


def test_rows_of_runs_before_a_new_column_are_merged_with_nulls_and_keep_their_statistics(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, runs=6)
    for r in range(6, RUNS):  # later runs bring a metadata field the earlier ones lack (the schema grows)
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[3, 7, 1], extra_metadata="weather"),
                   f"run-{r}")
    before = views(pool, RUNS)

    assert compact(pool, DUE).version == RUNS + 1

    assert live_files(pool) == 2 and views(pool, RUNS + 1) == before and views(pool, RUNS) == before
    weather = pool.snapshot().read().sort_by("commit_version").column(C.metadata_column("weather")).to_pylist()
    assert weather[:60] == [None] * 60 and None not in weather[60:]
    # The merged files' log entries carry statistics as delta-rs writes them, so reads still skip files.
    actions = pool.snapshot().table.get_add_actions(flatten=True)
    assert actions.column("num_records").to_pylist() in ([3 * RUNS, 7 * RUNS], [7 * RUNS, 3 * RUNS])
    keys = sorted(before["rows"].column(C.KEY).to_pylist())
    assert sorted(actions.column(f"min.{C.KEY}").to_pylist())[0] == keys[0]


def test_a_table_with_deletion_vectors_is_left_to_its_engine(tmp_path, digits) -> None:
    import json

    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, runs=3)
    # What a Spark writer leaves after enabling deletion vectors: the data files alone no longer hold the rows.
    protocol = {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"],
                "writerFeatures": ["deletionVectors"]}
    (tmp_path / "pool" / "_delta_log" / f"{4:020d}.json").write_text(
        json.dumps({"protocol": protocol}) + "\n" + json.dumps({"commitInfo": {"operation": "UPGRADE PROTOCOL"}}) + "\n")
    result = compact(pool, CompactionOptions(min_small_files=2), force=True)
    assert result.version is None and "deletionVectors" in result.reason and live_files(pool) == 6


def test_a_small_file_whose_columns_do_not_fit_the_pool_is_not_merged(tmp_path, digits, caplog) -> None:
    import pyarrow.parquet as pq

    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, runs=3)
    # A file rewritten by hand with a column of another type (same rows, so its log entry still matches).
    path = sorted((tmp_path / "pool" / "selected=false").glob("*.parquet"))[0]
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index(C.SIZE), C.SIZE,
                                    table.column(C.SIZE).cast(pa.string())), path)
    on_disk = sorted(p.name for p in (tmp_path / "pool").rglob("*.parquet"))

    result = compact_if_due(pool, CompactionOptions(min_small_files=2))

    assert result.version is None and "columns do not convert to the pool's schema" in result.reason, result
    assert pool.version() == 3 and live_files(pool) == 6
    assert sorted(p.name for p in (tmp_path / "pool").rglob("*.parquet")) == on_disk  # nothing copied in


def test_a_small_file_with_other_rows_than_its_log_entry_is_named_and_nothing_merged(tmp_path, digits) -> None:
    """The files are decoded on a few threads after being read: a bad one still names itself and stops the merge."""
    import pyarrow.parquet as pq

    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, runs=4)
    path = sorted((tmp_path / "pool" / "selected=false").glob("*.parquet"))[1]
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 2), path)  # rewritten by hand, two rows short

    result = compact_if_due(pool, CompactionOptions(min_small_files=2))

    assert result.version is None, result
    assert f"{path.name} holds {table.num_rows - 2} rows, its log entry says {table.num_rows}" in result.reason
    assert pool.version() == 4 and live_files(pool) == 8


def test_embeddings_are_stored_in_plain_pages_and_the_statistics_stay(tmp_path, digits) -> None:
    """Committed and compacted files: the embeddings' floats in plain pages (no dictionary to overflow), the
    top-level scalar columns with dictionaries, and the log's statistics that Delta's data skipping reads."""
    import json

    import pyarrow.parquet as pq

    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits)

    def encodings() -> list[dict[str, tuple[str, ...]]]:
        out = []
        for uri in pool.snapshot().table.file_uris():
            meta = pq.ParquetFile(uri.removeprefix("file://")).metadata.row_group(0)
            out.append({meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)})
        return out

    def logged_stats() -> list[dict]:
        snap = pool.snapshot()
        log = tmp_path / "pool" / "_delta_log" / f"{snap.version:020d}.json"
        return [json.loads(a["add"]["stats"]) for a in map(json.loads, log.read_text().splitlines()) if "add" in a]

    for when in ("committed", "compacted"):
        if when == "compacted":
            assert compact(pool, DUE).version is not None
        files = encodings()
        assert files, when
        for enc in files:
            assert "RLE_DICTIONARY" not in enc[f"{C.EMBEDDING}.list.element"], when
            assert "RLE_DICTIONARY" in enc[C.KEY], when
        for stats in logged_stats():
            assert stats["numRecords"] > 0 and C.KEY in stats["minValues"] and C.KEY in stats["maxValues"], when
