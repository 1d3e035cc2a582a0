"""A file moved in the datasource (``a/x.png`` -> ``b/x.png``, same bytes): the run's commit given the pair lets the
new key take over the gone key's sample (selection, tags, export) and tombstones the gone key; version N keeps
the old key. A copy (old key still listed) stays a duplicate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.datapool.moves import MOVED_FROM, MOVED_PREFIX
from lightly_airflow.datapool.snapshot import _count_selected
from lightly_airflow.datapool.tagging import create_tag

from .conftest import DIM, MODEL, run_rows


def rows_of(digits: Any, keys: dict[str, int], picks: list[str] = (), duplicate_of: dict[str, str] | None = None,
            corrupt: tuple[str, ...] = ()) -> pa.Table:
    """A run's rows: ``keys`` maps each key to its digit (its content); ``picks`` in pick order; ``duplicate_of``:
    keys the run marked exact duplicates of a pool key (as ``mark_duplicates`` does)."""
    names = list(keys)
    rows = run_rows(digits, list(keys.values()), picks=[names.index(k) for k in picks],
                    corrupt=[names.index(k) for k in corrupt])
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(names, pa.string()))
    dups = duplicate_of or {}
    rows = rows.set_column(rows.schema.get_field_index(C.STATUS), C.STATUS,
                           pa.array([C.STATUS_DUPLICATE if k in dups else C.STATUS_CORRUPT if k in corrupt
                                     else C.STATUS_OK for k in names]))
    rows = rows.set_column(rows.schema.get_field_index(C.STATUS_REASON), C.STATUS_REASON,
                           pa.array([f"same content as {dups[k]!r} already in the datapool" if k in dups
                                     else "cannot decode" if k in corrupt else None for k in names], pa.string()))
    return rows.set_column(rows.schema.get_field_index(C.DUPLICATE_OF), C.DUPLICATE_OF,
                           pa.array([dups.get(k) for k in names], pa.string()))


def commit(pool: Datapool, rows: pa.Table, run_id: str, moves: list[tuple[str, str]] | None = None) -> Any:
    return pool.commit(rows, run_id=run_id, dag_id="curate", tag=run_id, config={}, counts={"new": rows.num_rows},
                       embedding_model=MODEL, embedding_dim=DIM, read_version=pool.version(),
                       datasource_uri="/data/src", moves=moves)


def keys(table: pa.Table) -> list[str]:
    return table.column(C.KEY).to_pylist()


def latest_row(pool: Datapool, key: str) -> dict[str, Any]:
    rows = [r for r in pool.read().to_pylist() if r[C.KEY] == key]
    return max(rows, key=lambda r: r["commit_version"])


def first_two_versions(tmp_path: Path, digits: Any) -> Datapool:
    """v1: r1 picks a/x.png and c.png of three files; v2: a hand-made tag on a/x.png and a/y.png."""
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, rows_of(digits, {"a/x.png": 0, "a/y.png": 1, "c.png": 2}, picks=["a/x.png", "c.png"]), "r1")
    rows = pool.read(columns=[C.SAMPLE_ID, "commit_version", C.KEY])
    create_tag(pool, "hand", rows.filter(pc.is_in(rows.column(C.KEY), pa.array(["a/x.png", "a/y.png"]))))
    return pool


def test_moved_file_takes_over_selection_tags_and_export(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)
    before = [r.key for r in export_records(pool, "initial-tag")]
    # r2: b/x.png is a/x.png moved (the run marked it a duplicate of a/x.png), d.png new and picked
    rows = rows_of(digits, {"b/x.png": 0, "d.png": 3}, picks=["d.png"], duplicate_of={"b/x.png": "a/x.png"})
    embedding = rows.column(C.EMBEDDING).to_pylist()
    rows = rows.set_column(rows.schema.get_field_index(C.EMBEDDING), C.EMBEDDING,  # (a duplicate left unembedded)
                           pa.array([None, embedding[1]], rows.schema.field(C.EMBEDDING).type))
    done = commit(pool, rows, "r2", moves=[("b/x.png", "a/x.png")])
    assert (done.version, done.moved, done.already_committed) == (3, 1, False)
    assert pool.history()[-1]["counts"]["moved"] == 1

    # version 3: the live key holds the pick, its tags and the export; the gone key is ended
    assert before == ["a/x.png", "c.png"]
    assert sorted(keys(pool.selected([C.KEY]))) == ["b/x.png", "c.png", "d.png"]
    assert sorted(r.key for r in export_records(pool, "initial-tag")) == ["b/x.png", "c.png", "d.png"]
    assert [r.key for r in export_records(pool, "r1")] == ["b/x.png", "c.png"]  # r1's pick order kept
    assert keys(pool.read(tag="hand")) == ["a/y.png", "b/x.png"]
    assert keys(pool.read(tag="r2")) == ["d.png"]
    counts = {t["name"]: t["count"] for t in pool.tags()}
    assert counts == {"initial-tag": 3, "r1": 2, "hand": 2, "r2": 1}
    assert counts["initial-tag"] == _count_selected(pool.snapshot().table)  # the recorded count is the true one
    new = latest_row(pool, "b/x.png")
    assert (new[C.STATUS], new[C.DUPLICATE_OF], new[C.STATUS_REASON], new[MOVED_FROM]) == ("ok", None, None, "a/x.png")
    assert new[C.SELECTED] and new[C.PICK_RANK] == 0 and set(new[C.TAGS]) == {"r1", "initial-tag", "hand"}
    assert new[C.EMBEDDING] == [r for r in pool.read(version=2).to_pylist() if r[C.KEY] == "a/x.png"][0][C.EMBEDDING]
    old = latest_row(pool, "a/x.png")
    assert (old["commit_version"], old[C.STATUS], old[C.SELECTED]) == (3, "missing", False)
    assert old[C.STATUS_REASON].startswith(f"{MOVED_PREFIX}'b/x.png'") and old[C.ETAG] == new[C.ETAG]

    # version 2 (time travel): the old key, as it was
    assert keys(pool.read(version=2, tag="initial-tag")) == ["a/x.png", "c.png"]
    assert keys(pool.read(version=2, tag="r1")) == ["a/x.png", "c.png"]
    assert keys(pool.read(version=2, tag="hand")) == ["a/x.png", "a/y.png"]
    assert keys(pool.snapshot(2).selected([C.KEY])) == ["a/x.png", "c.png"]

    # a retry of the commit finds it and writes nothing
    again = commit(pool, rows, "r2", moves=[("b/x.png", "a/x.png")])
    assert (again.version, again.already_committed) == (3, True)
    assert pool.version() == 3 and pool.read().num_rows == 3 + 2 + 1


def test_moved_unselected_file_keeps_its_hand_made_tag_and_stays_unselected(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)
    rows = rows_of(digits, {"b/y.png": 1}, duplicate_of={"b/y.png": "a/y.png"})
    assert commit(pool, rows, "r2", moves=[("b/y.png", "a/y.png")]).moved == 1
    new = latest_row(pool, "b/y.png")
    assert (new[C.STATUS], new[C.SELECTED], new[C.PICK_RANK], new[C.TAGS]) == ("ok", False, None, ["hand"])
    assert keys(pool.read(tag="hand")) == ["a/x.png", "b/y.png"]
    assert keys(pool.selected([C.KEY])) == ["a/x.png", "c.png"]
    assert latest_row(pool, "a/y.png")[C.STATUS] == "missing"


def test_a_copy_other_content_a_bad_sample_or_a_new_pick_is_no_move(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)
    commit(pool, rows_of(digits, {"e.png": 4}, corrupt=("e.png",)), "r0")
    # a/x.png still among the run's rows (listed: a copy); b/z.png's content is not c.png's; e.png was corrupt;
    # the run picked b/c.png itself (a run that could not tell it from c.png)
    rows = rows_of(digits, {"a/x.png": 0, "b/x.png": 0, "b/z.png": 5, "b/e.png": 4, "b/c.png": 2},
                   picks=["b/c.png"], duplicate_of={"b/x.png": "a/x.png"})
    done = commit(pool, rows, "r2", moves=[("b/x.png", "a/x.png"), ("b/z.png", "c.png"), ("b/e.png", "e.png"),
                                           ("b/c.png", "c.png")])
    assert done.moved == 0 and "moved" not in pool.history()[-1]["counts"]
    assert latest_row(pool, "b/x.png")[C.STATUS] == "duplicate"
    assert sorted(keys(pool.selected([C.KEY]))) == ["a/x.png", "b/c.png", "c.png"]
    assert keys(pool.read(tag="r2")) == ["b/c.png"]
    assert latest_row(pool, "c.png")[C.STATUS] == "ok" and latest_row(pool, "e.png")[C.STATUS] == "corrupt"
    assert MOVED_FROM not in pool.read().column_names


def test_a_selection_that_a_later_row_of_the_same_content_kept_moves_too(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)
    # r2 processes a/x.png again (process_all: same content, not picked again): its r1 pick stands
    commit(pool, rows_of(digits, {"a/x.png": 0}), "r2")
    rows = rows_of(digits, {"b/x.png": 0}, duplicate_of={"b/x.png": "a/x.png"})
    assert commit(pool, rows, "r3", moves=[("b/x.png", "a/x.png")]).moved == 1
    new = latest_row(pool, "b/x.png")
    assert new[C.SELECTED] and set(new[C.TAGS]) == {"r1", "initial-tag", "hand"}
    assert sorted(keys(pool.selected([C.KEY]))) == ["b/x.png", "c.png"]
    assert keys(pool.read(tag="r1")) == ["c.png", "b/x.png"]


def test_without_moves_the_moved_file_stays_a_duplicate(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)
    rows = rows_of(digits, {"b/x.png": 0}, duplicate_of={"b/x.png": "a/x.png"})
    assert commit(pool, rows, "r2").moved == 0
    assert keys(pool.selected([C.KEY])) == ["a/x.png", "c.png"]
    assert latest_row(pool, "b/x.png")[C.STATUS] == "duplicate"


def test_a_run_tag_on_an_earlier_content_of_the_moved_key_stays(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)
    commit(pool, rows_of(digits, {"a/x.png": 7}, picks=["a/x.png"]), "r2")  # a/x.png overwritten (digit 7), picked
    rows = rows_of(digits, {"b/x.png": 7}, duplicate_of={"b/x.png": "a/x.png"})
    assert commit(pool, rows, "r3", moves=[("b/x.png", "a/x.png")]).moved == 1
    assert keys(pool.read(tag="r1")) == ["a/x.png", "c.png"]  # r1 picked the former content: history, not moved
    assert keys(pool.read(tag="r2")) == ["b/x.png"]
    assert set(latest_row(pool, "b/x.png")[C.TAGS]) == {"r2", "initial-tag"}  # the moved content's tags only
    assert sorted(keys(pool.selected([C.KEY]))) == ["b/x.png", "c.png"]


def test_the_ui_tag_views_show_the_moved_files_new_key_not_both(tmp_path: Path, digits: Any) -> None:
    """The Airflow UI's grid of a run tag or a hand-made tag (``plugins.query.View``, its own tag filter) after a
    move: the key that took the sample over, not the old key beside it (both were shown)."""
    from lightly_airflow.plugins.config import PoolSpec
    from lightly_airflow.plugins.query import Scope, View

    pool = first_two_versions(tmp_path, digits)
    rows = rows_of(digits, {"b/x.png": 0, "d.png": 3}, picks=["d.png"], duplicate_of={"b/x.png": "a/x.png"})
    commit(pool, rows, "r2", moves=[("b/x.png", "a/x.png")])
    view = View(PoolSpec("p", pool.uri))
    for tag, expected in (("r1", ["b/x.png", "c.png"]), ("hand", ["a/y.png", "b/x.png"]),
                          ("initial-tag", ["b/x.png", "c.png", "d.png"])):
        assert sorted(keys(view.sql(f"SELECT key FROM pool {view.where(Scope(tag=tag))}"))) == expected, tag
    old = View(PoolSpec("p", pool.uri), version=2)  # (time travel: the old key in its tags)
    assert sorted(keys(old.sql(f"SELECT key FROM pool {old.where(Scope(tag='r1', version=2))}"))) == ["a/x.png", "c.png"]


def test_a_file_renamed_while_a_new_file_takes_its_name_takes_over_its_sample(tmp_path: Path, digits: Any) -> None:
    """``a/x.png`` renamed to ``b/x.png`` and a new ``a/x.png`` (other content) written before the next run: the
    run processes both, the listing pairs them (``datasource.gone.replaced_keys``), and the commit lets ``b/x.png``
    take over the old sample (its pick, rank and tags) while the new ``a/x.png`` is a new file the run picked
    itself. Before, a pair whose old key was among the run's rows was refused: the old pick ended with the old
    key's replacement, and the run tag ``r1`` and the hand-made tag still named ``a/x.png``, now other content."""
    pool = first_two_versions(tmp_path, digits)
    old_etag = latest_row(pool, "a/x.png")[C.ETAG]
    rows = rows_of(digits, {"b/x.png": 0, "a/x.png": 5}, picks=["a/x.png"], duplicate_of={"b/x.png": "a/x.png"})
    done = commit(pool, rows, "r2", moves=[("b/x.png", "a/x.png")])
    assert (done.version, done.moved, done.moves) == (3, 1, {"moved": 1, "moved_selected": 1, "moved_replaced_selected": 1})
    assert sorted(keys(pool.selected([C.KEY]))) == ["a/x.png", "b/x.png", "c.png"]
    assert [r.key for r in export_records(pool, "r1")] == ["b/x.png", "c.png"]  # r1's pick order kept, live keys
    assert keys(pool.read(tag="hand")) == ["a/y.png", "b/x.png"]
    assert keys(pool.read(tag="r2")) == ["a/x.png"]  # the new file, the run's own pick
    counts = {t["name"]: t["count"] for t in pool.tags()}
    assert counts["initial-tag"] == 3 == _count_selected(pool.snapshot().table)
    moved = latest_row(pool, "b/x.png")
    assert (moved[C.STATUS], moved[C.DUPLICATE_OF], moved[MOVED_FROM], moved[C.ETAG]) == ("ok", None, "a/x.png", old_etag)
    assert moved[C.SELECTED] and moved[C.PICK_RANK] == 0 and set(moved[C.TAGS]) == {"r1", "initial-tag", "hand"}
    # the old key: the run's new file is its only row of version 3 (no tombstone beside it), known by its new etag
    v3 = [r for r in pool.read().to_pylist() if r[C.KEY] == "a/x.png" and r["commit_version"] == 3]
    assert [(r[C.STATUS], r[C.ETAG] != old_etag, r[MOVED_FROM]) for r in v3] == [("ok", True, None)]
    known = {r[C.KEY]: r[C.ETAG] for r in pool.known_files().to_pylist()}
    assert known["a/x.png"] == v3[0][C.ETAG] and known["b/x.png"] == old_etag
    # a copy (the old key in the run with the same content) is still no move
    copy = rows_of(digits, {"a/y.png": 1, "b/y.png": 1}, duplicate_of={"b/y.png": "a/y.png"})
    assert commit(pool, copy, "r3", moves=[("b/y.png", "a/y.png")]).moved == 0


def test_a_commits_moved_count_is_read_from_its_moves() -> None:
    """``CommitResult.moved`` is ``moves["moved"]``, not a second count stored beside it that could say otherwise."""
    from dataclasses import fields

    from lightly_airflow.datapool.pool import CommitResult

    assert "moved" not in {f.name for f in fields(CommitResult)}
    assert CommitResult(3, False, "t", moves={"moved": 2, "moved_selected": 1}).moved == 2
    assert CommitResult(3, True, "t").moved == 0
