"""A new process reads a long-lived pool's history from the segments its runs wrote beside the log."""

from __future__ import annotations

import shutil

import pytest

from lightly_airflow.datapool import Datapool, history_index, snapshot

from .conftest import commit_run, run_rows
from .counting_proxy import counting_proxy


@pytest.fixture(autouse=True)
def every_five(monkeypatch):
    monkeypatch.setattr(history_index, "EVERY", 5)


def grow(pool: Datapool, digits, runs: int, start: int = 0, prefix: str = "run") -> None:
    for r in range(start, start + runs):
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[1]), f"{prefix}-{r}")


def as_new_process() -> None:
    snapshot._history_cache.clear()
    history_index._known_end.clear()


def segment_names(pool_dir) -> list[str]:
    return sorted(p.name for p in (pool_dir / history_index.INDEX_DIR).iterdir())


def test_runs_write_segments_and_a_new_process_reads_only_the_log_after_them(s3_bucket, digits) -> None:
    pool = Datapool(f"{s3_bucket.uri}/pool", s3_bucket.credentials)
    grow(pool, digits, 12)  # versions 1..12 (0 made the pool): segments 0-4 and 5-9
    truth = snapshot.history_of(pool.snapshot().table)
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        as_new_process()
        counted = Datapool(f"{s3_bucket.uri}/pool", creds)
        snap = counted.snapshot()
        snap.table.create_checkpoint()  # loading then reads no entry: what remains is the history's own reads
        snap = counted.snapshot()
        requests.reset()
        history = snap.history()
        with_segments = requests.reset()
        as_new_process()
        plain = Datapool(f"{s3_bucket.uri}/pool", creds).snapshot()
        requests.reset()
        snapshot.history_of(plain.table)
        whole = requests.reset()
    assert history == truth and [e["run_id"] for e in history][-1] == "run-11"
    assert whole["GET log entry"] >= 13, whole
    # Two segments (GET), each checked against its last log entry (4, 9), then the entries 9..12.
    assert with_segments["GET"] == 2 and with_segments["GET log entry"] <= 2 + 4, with_segments


def test_segments_name_their_versions_and_a_young_pool_writes_none(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, 3)
    assert not (tmp_path / "pool" / history_index.INDEX_DIR).exists()
    grow(pool, digits, 9, start=3)
    assert segment_names(tmp_path / "pool") == [f"{0:020d}-{4:020d}.json", f"{5:020d}-{9:020d}.json"]


def test_segments_of_another_pool_at_the_same_place_are_not_used(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, 12)
    for name in ("_delta_log", "selected=true", "selected=false", "_commits"):
        shutil.rmtree(tmp_path / "pool" / name)  # the table made anew; the old segments stay behind
    grow(pool, digits, 12, prefix="new")
    as_new_process()
    history = Datapool(f"file://{tmp_path}/pool").history()
    assert [e["run_id"] for e in history[1:]] == [f"new-{r}" for r in range(12)]


def test_a_damaged_segment_costs_only_its_reads(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, 12)
    (tmp_path / "pool" / history_index.INDEX_DIR / f"{0:020d}-{4:020d}.json").write_text('[{"version": 0, "tim')
    as_new_process()
    history = Datapool(f"file://{tmp_path}/pool").history()
    assert [e["version"] for e in history] == list(range(13))
    assert [e["run_id"] for e in history[1:]] == [f"run-{r}" for r in range(12)]


def test_a_pool_made_anew_replaces_the_segments_it_finds(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, 12)
    for name in ("_delta_log", "selected=true", "selected=false", "_commits"):
        shutil.rmtree(tmp_path / "pool" / name)
    grow(pool, digits, 14, prefix="new")  # the commit of version 14 is due: it finds the old pool's segments
    assert segment_names(tmp_path / "pool") == [f"{0:020d}-{14:020d}.json"]
    as_new_process()
    history = Datapool(f"file://{tmp_path}/pool").history()
    assert [e["run_id"] for e in history[1:]] == [f"new-{r}" for r in range(14)]


def test_a_commit_lists_the_segments_only_when_one_may_be_due(tmp_path, digits, monkeypatch) -> None:
    """A grown pool's commit used to LIST ``_history/`` twice (its history read, then to see whether a segment is
    due); what the process read or wrote tells it when the next one is due."""
    pool = Datapool(f"file://{tmp_path}/pool")
    grow(pool, digits, 12)  # segments 0-4, 5-9
    listings: list[int] = []
    real = history_index._segments
    monkeypatch.setattr(history_index, "_segments", lambda *a: listings.append(1) or real(*a))
    as_new_process()  # a select task: reads the history (segments), commits
    per_commit = []
    for r in range(12, 16):  # versions 13..16; 14 is due
        listings.clear()
        commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[1]), f"run-{r}")
        per_commit.append(len(listings))
    assert per_commit == [1, 2, 0, 0]  # 13: the history read's; 14: due (listed, then checked); 15, 16: none
    assert segment_names(tmp_path / "pool")[-1] == f"{10:020d}-{14:020d}.json"
    grow(pool, digits, 3, start=16)  # versions 17..19: 19 is due
    assert segment_names(tmp_path / "pool")[-1] == f"{15:020d}-{19:020d}.json"
    as_new_process()
    assert [e["run_id"] for e in Datapool(f"file://{tmp_path}/pool").history()[1:]] == [f"run-{r}" for r in range(19)]
