"""Each commit records how many samples ``initial-tag`` holds after it (``initial_tag_count`` in its ``lightly``
metadata), so ``tags()`` (the UI's pool page) reads it instead of counting every data file (1.56 s at 1,201
uncompacted versions). The count must stay exact through every writer that changes the set or rewrites its rows:
a run that replaces, keeps and adds picks, tombstones, a compaction, a hand-made tag, a pool made anew; a version
whose writer recorded none (a pool written before, another engine) is counted by the scan, never given an older
version's count."""

from __future__ import annotations

import logging
import shutil

import pyarrow as pa
import pyarrow.compute as pc
from long_pool import build_long_pool, commit_tiny_run, strip_initial_tag_counts

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool, snapshot
from lightly_airflow.datapool.compaction import compact
from lightly_airflow.datapool.tagging import create_tag

from .conftest import commit_run, run_rows


def _exact(pool: Datapool) -> int:
    """The count the latest version's commit recorded, checked against the scan and the set itself."""
    snap = pool.snapshot()
    recorded = snap.recorded_initial_tag_count()
    assert recorded is not None, f"version {snap.version} recorded no count: {snap.entry(snap.version)}"
    assert recorded == snapshot._count_selected(snap.table) == snap.selected([C.KEY]).num_rows
    return recorded


def test_a_run_records_the_count_of_the_picks_it_replaced_kept_and_added(tmp_path, digits) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    commit_run(pool, run_rows(digits, range(0, 10), picks=[0, 1, 2, 3]), "r1")
    assert pool.snapshot(0).recorded_initial_tag_count() == 0 and _exact(pool) == 4  # (the pool made empty, then r1)
    # r2: 0 and 1 overwritten and not selected (they leave), 3 overwritten and selected again (it stays, once),
    # 10 new and selected (it joins), 11 new and not selected
    commit_run(pool, pa.concat_tables([run_rows(digits, [0, 1, 3], picks=[2], etag_suffix="v2"),
                                       run_rows(digits, [10, 11], picks=[0])]), "r2")
    assert _exact(pool) == 3
    commit_run(pool, run_rows(digits, [2, 10, 11]), "r3")  # the same content again, not selected: the picks stand
    assert _exact(pool) == 3
    commit_run(pool, run_rows(digits, [1]), "r4")  # sample 1 back to its first content, not selected: still out
    assert _exact(pool) == 3
    # The select task's way: the attempt read the selected set on its snapshot; its commit counts from it.
    snap = pool.snapshot()
    assert snap.selected().num_rows == 3
    pool.commit(run_rows(digits, [2, 12, 13], picks=[1, 2], etag_suffix="v3"), run_id="r5", dag_id="curate",
                tag=None, config={}, counts={}, embedding_model="digits-pixels", embedding_dim=64, snapshot=snap)
    assert _exact(pool) == 4  # 2 replaced (out), 12 and 13 picked (in)


def test_a_run_of_more_keys_than_an_in_list_holds_reads_the_set_and_records_it_exactly(tmp_path) -> None:
    """Committed without its attempt's ``selected()``: more than ``IN_LIST_MAX`` keys read ``initial-tag`` once
    instead of every row of those keys."""
    from lightly_airflow.datapool.reading import IN_LIST_MAX

    pool = build_long_pool(str(tmp_path / "pool"), 3)
    n = IN_LIST_MAX + 5
    keys = ["r0/0.jpg", "r1/0.jpg", *(f"big/{i}.jpg" for i in range(n - 2))]
    picked = [i % 7 == 0 for i in range(n)]
    rows = pa.table({
        C.KEY: keys, C.ETAG: ["e0-0", "changed", *(f"b{i}" for i in range(n - 2))], C.STATUS: ["ok"] * n,
        C.EMBEDDING: pa.array([[0.5] * 4] * n, pa.list_(pa.float32(), 4)), C.SELECTED: picked,
        C.PICK_RANK: pa.array([i if p else None for i, p in enumerate(picked)], pa.int64()),
    })
    pool.commit(rows, run_id="manual__big", dag_id="hourly", tag="big", config={}, counts={}, embedding_model="m",
                embedding_dim=4, read_version=pool.version())
    # r0/0.jpg picked again (it stays, once), r1/0.jpg replaced and not picked (it leaves), 1 in 7 new keys join
    assert _exact(pool) == 3 - 1 + sum(picked[2:])


def test_tombstones_end_the_picks_they_supersede_in_the_recorded_count(tmp_path) -> None:
    """A replaced video's frames that the new version no longer has get tombstone rows (``video.supersede``):
    status missing, ``superseded: …``, the former etag, not selected. The pool here had no ``status_reason``
    before (the first tombstones add the column)."""
    pool = build_long_pool(str(tmp_path / "pool"), 4)
    assert _exact(pool) == 4
    tombstones = pa.table({
        C.KEY: ["r1/0.jpg", "r2/1.jpg"], C.ETAG: ["e1-0", "e2-1"], C.STATUS: [C.STATUS_MISSING] * 2,
        C.STATUS_REASON: ["superseded: v.mp4 replaced"] * 2,
        C.EMBEDDING: pa.nulls(2, pa.list_(pa.float32(), 4)), C.SELECTED: [False, False],
        C.PICK_RANK: pa.nulls(2, pa.int64()),
    })
    pool.commit(tombstones, run_id="manual__tomb", dag_id="hourly", tag="tomb", config={}, counts={},
                embedding_model="m", embedding_dim=4, read_version=pool.version())
    assert _exact(pool) == 3  # r1/0.jpg was a pick: out; r2/1.jpg never was
    commit_tiny_run(pool, 4)
    assert _exact(pool) == 4


def test_a_compaction_and_a_hand_made_tag_carry_the_count(tmp_path) -> None:
    pool = build_long_pool(str(tmp_path / "pool"), 6)
    done = compact(pool, force=True)
    assert done.version == 7 and pool.history()[-1]["operation"] == "compact" and _exact(pool) == 6
    rows = pool.snapshot().select([C.KEY, C.SAMPLE_ID, "commit_version"], "", values_in=(C.KEY, ["r1/0.jpg", "r2/1.jpg"]))
    made = create_tag(pool, "by-hand", rows, made_by="tester")
    assert made["version"] == 8 and pool.history()[-1]["operation"] == "tag" and _exact(pool) == 6
    commit_tiny_run(pool, 6)
    assert _exact(pool) == 7


def test_a_pool_made_anew_at_the_same_place_is_counted_as_itself(tmp_path) -> None:
    path = tmp_path / "pool"
    build_long_pool(str(path), 5)
    assert _exact(Datapool(str(path))) == 5
    shutil.rmtree(path)  # (this process's history of the old pool is cached)
    pool = build_long_pool(str(path), 3)
    commit_run_replacing = pa.table({
        C.KEY: ["r0/0.jpg"], C.ETAG: ["other"], C.STATUS: ["ok"],
        C.EMBEDDING: pa.array([[0.5] * 4], pa.list_(pa.float32(), 4)), C.SELECTED: [False],
        C.PICK_RANK: pa.nulls(1, pa.int64()),
    })
    pool.commit(commit_run_replacing, run_id="manual__replace", dag_id="hourly", tag="replace", config={}, counts={},
                embedding_model="m", embedding_dim=4, read_version=pool.version())
    assert _exact(pool) == 2
    assert {t["name"]: t["count"] for t in pool.tags()}[C.INITIAL_TAG] == 2


def test_a_pool_written_before_counts_were_recorded_is_scanned_until_its_next_commit(tmp_path, caplog) -> None:
    pool = build_long_pool(str(tmp_path / "pool"), 4)
    strip_initial_tag_counts(tmp_path / "pool")
    old = Datapool(str(tmp_path / "pool"))
    old_uri = old.uri
    snapshot._history_cache.pop(old_uri, None)  # (as a new process reads it)
    assert old.snapshot().recorded_initial_tag_count() is None
    with caplog.at_level(logging.INFO, logger="lightly_airflow.datapool.snapshot"):
        assert {t["name"]: t["count"] for t in old.tags()}[C.INITIAL_TAG] == 4
        assert {t["name"]: t["count"] for t in old.tags()}[C.INITIAL_TAG] == 4
    assert snapshot.initial_tag_scans[old_uri] == 2  # both counted by the scan, logged once:
    assert [r.message for r in caplog.records if "records no initial-tag count" in r.message] == [
        f"{old_uri}: version 4 records no initial-tag count (written before counts were recorded, or by another "
        "writer): counting it by a scan of every data file; the next run's commit records it."]
    commit_tiny_run(pool, 4)  # (its count before: the scan, once; then recorded)
    assert _exact(pool) == 5
    scans = snapshot.initial_tag_scans[old_uri]
    assert {t["name"]: t["count"] for t in pool.tags()}[C.INITIAL_TAG] == 5 and snapshot.initial_tag_scans[old_uri] == scans


def test_a_version_another_writer_made_is_scanned_not_given_the_count_before_it(tmp_path) -> None:
    """Another engine appends a selected row (no ``lightly`` metadata): the latest recorded count is an older
    version's and must not be read for this one."""
    from deltalake import write_deltalake

    pool = build_long_pool(str(tmp_path / "pool"), 3)
    snap = pool.snapshot()
    row = snap.select(None, "WHERE selected").slice(0, 1)
    row = row.set_column(row.schema.get_field_index(C.KEY), C.KEY, pa.array(["outside.jpg"]))
    row = row.set_column(row.schema.get_field_index("commit_version"), "commit_version", pa.array([4], pa.int64()))
    write_deltalake(pool.uri, row.cast(pa.schema(snap.table.schema().to_arrow())), mode="append",
                    partition_by=[C.SELECTED])
    latest = pool.snapshot()
    assert latest.version == 4 and latest.recorded_initial_tag_count() is None
    before = snapshot.initial_tag_scans.get(pool.uri, 0)
    assert {t["name"]: t["count"] for t in latest.tags()}[C.INITIAL_TAG] == 4 == snapshot._count_selected(latest.table)
    assert snapshot.initial_tag_scans[pool.uri] == before + 1
    assert pool.snapshot(3).recorded_initial_tag_count() == 3  # (the older version keeps its own)
    commit_tiny_run(pool, 3)
    assert _exact(pool) == 5
    assert int(pc.sum(pool.snapshot().select([C.SELECTED], "").column(C.SELECTED)).as_py()) == 5
