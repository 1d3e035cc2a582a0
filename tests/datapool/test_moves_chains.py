"""Moves as a demanding user makes them, on real Delta tables: a file moved twice across runs (``a -> b``, then
``b -> c``), moved back (``a -> b``, then ``b -> a``), a moved pick beside the committing run's own picks in
``initial-tag``'s order, and the commit's count of the selected samples its moves handed over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.datapool.moves import MOVED_FROM, MOVED_PREFIX, move_notes
from lightly_airflow.datasource.diff import new_files

from .test_moves import commit, first_two_versions, keys, latest_row, rows_of


def moved(digits: Any, new: str, old: str, digit: int, picks: dict[str, int] | None = None) -> pa.Table:
    """A run's rows: ``new`` with ``old``'s content (``digit``), a duplicate of it as the run marks it, and the
    run's own new files ``picks`` (key -> digit, picked in that order)."""
    return rows_of(digits, {new: digit, **(picks or {})}, picks=list(picks or {}), duplicate_of={new: old})


def test_a_file_moved_twice_keeps_its_selection_tags_and_order(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)  # r1 picked a/x.png (rank 0) and c.png; "hand" tags a/x.png
    assert commit(pool, moved(digits, "b/x.png", "a/x.png", 0), "r2", [("b/x.png", "a/x.png")]).moved == 1
    done = commit(pool, moved(digits, "c/x.png", "b/x.png", 0), "r3", [("c/x.png", "b/x.png")])
    assert (done.moved, done.moves) == (1, {"moved": 1, "moved_selected": 1})
    assert sorted(keys(pool.selected([C.KEY]))) == ["c.png", "c/x.png"]
    assert sorted(keys(pool.read(tag="r1"))) == ["c.png", "c/x.png"]
    assert [r.key for r in export_records(pool, "r1")] == ["c/x.png", "c.png"]  # r1's pick order
    assert keys(pool.read(tag="hand")) == ["a/y.png", "c/x.png"]
    last = latest_row(pool, "c/x.png")
    assert (last[MOVED_FROM], last[C.PICK_RANK], set(last[C.TAGS])) == ("b/x.png", 0, {"r1", "initial-tag", "hand"})
    for key, to in (("a/x.png", "b/x.png"), ("b/x.png", "c/x.png")):  # each former key ended, naming its successor
        assert latest_row(pool, key)[C.STATUS_REASON].startswith(f"{MOVED_PREFIX}{to!r}")
    assert keys(pool.read(version=3, tag="hand")) == ["a/y.png", "b/x.png"]  # (time travel: the middle key)


def test_a_file_moved_back_is_new_again_and_takes_its_sample_back(tmp_path: Path, digits: Any) -> None:
    """``a/x.png`` moved to ``b/x.png``, then back: the pool knew ``a/x.png`` by its tombstone's etag (the same
    bytes), so the listing called the file there unchanged and never processed it: ``a/x.png`` stayed "missing"
    and the gone ``b/x.png`` kept the selection, for good."""
    pool = first_two_versions(tmp_path, digits)
    back = moved(digits, "a/x.png", "b/x.png", 0)
    commit(pool, moved(digits, "b/x.png", "a/x.png", 0), "r2", [("b/x.png", "a/x.png")])
    listing = pa.table({C.KEY: ["a/x.png", "a/y.png", "c.png"], C.SIZE: pa.array([1, 1, 1], pa.int64()),
                        C.ETAG: [latest_row(pool, k)[C.ETAG] for k in ("a/x.png", "a/y.png", "c.png")],
                        C.MTIME: pa.array([0, 0, 0], pa.timestamp("us", tz="UTC"))})
    assert "a/x.png" not in keys(pool.known_files())
    assert keys(new_files(listing, pool.known_files())) == ["a/x.png"]  # (b/x.png is the gone one now)
    assert commit(pool, back, "r3", [("a/x.png", "b/x.png")]).moved == 1
    again = latest_row(pool, "a/x.png")
    assert (again[C.STATUS], again[C.SELECTED], again[MOVED_FROM]) == ("ok", True, "b/x.png")
    assert sorted(keys(pool.selected([C.KEY]))) == ["a/x.png", "c.png"]
    assert sorted(keys(pool.read(tag="r1"))) == ["a/x.png", "c.png"] and sorted(keys(pool.read(tag="hand"))) == ["a/x.png", "a/y.png"]
    assert latest_row(pool, "b/x.png")[C.STATUS_REASON].startswith(f"{MOVED_PREFIX}'a/x.png'")
    assert "a/x.png" in keys(pool.known_files()) and "b/x.png" not in keys(pool.known_files())


def test_a_moved_pick_comes_before_the_runs_own_picks_in_initial_tag(tmp_path: Path, digits: Any) -> None:
    """A moved pick keeps its rank in the run that picked it (a run tag keeps its order), but sits in the version
    of the run that moved it: ``initial-tag`` (the export's order: version, then rank) put r1's second pick after
    r2's first, and where the ranks tied the engine chose (it varied between pools of the same runs). It was
    picked earlier: it comes first in its version, then the run's own picks in their order."""
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, rows_of(digits, {"a/x.png": 0, "c.png": 2}, picks=["c.png", "a/x.png"]), "r1")
    commit(pool, moved(digits, "b/x.png", "a/x.png", 0, picks={"q.png": 3, "r.png": 4}), "r2",
           [("b/x.png", "a/x.png")])
    expected = ["c.png", "b/x.png", "q.png", "r.png"]
    assert keys(pool.selected([C.KEY])) == expected
    assert [(r.key, r.pick_rank) for r in export_records(pool, "initial-tag")] == list(zip(expected, [0, 1, 0, 1]))
    assert [r.key for r in export_records(pool, "r1")] == ["c.png", "b/x.png"]
    assert [r.key for r in export_records(pool, "r2")] == ["q.png", "r.png"]


def test_the_commit_counts_the_selected_samples_its_moves_handed_over(tmp_path: Path, digits: Any) -> None:
    """The report read how many selected samples moved from the listing (every moved pair's, taken over or not):
    the commit knows each one."""
    pool = first_two_versions(tmp_path, digits)  # a/x.png selected, a/y.png not
    rows = rows_of(digits, {"b/x.png": 0, "b/y.png": 1}, duplicate_of={"b/x.png": "a/x.png", "b/y.png": "a/y.png"})
    done = commit(pool, rows, "r2", [("b/x.png", "a/x.png"), ("b/y.png", "a/y.png")])
    assert done.moves == {"moved": 2, "moved_selected": 1}
    assert {k: pool.history()[-1]["counts"].get(k) for k in done.moves} == done.moves
    assert move_notes(done.moves) == ["2 moved or renamed file(s) took over their former key's sample (its selection "
                                      "and tags, 1 of their samples selected (the new keys hold the selection now)); the "
                                      "former keys' rows are ended (datapool.moves)"]
