"""The whole version (no tag, no run) shows each sample's latest row; what it calls selected is ``initial-tag``.

A later run that processes a sample an earlier run selected again (``process_all`` over the same files: same
content, same etag) writes a newer row with ``selected = false``. ``initial-tag`` keeps the sample (a newer row of
the same content leaves the selection standing, docs/datapool.md); the map coloured by selected/not, the grid's
``selected`` flag and filter said "not selected" of it (its latest row's own column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.query import Scope, View, parse_scope
from plugins.conftest import _commit, _rows

FIRST, SECOND = "scheduled__2026-03-01T00:00:00+00:00", "scheduled__2026-03-02T00:00:00+00:00"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[View, set[str]]:
    """Run 1 selects 4 of 20 digits; run 2 is a ``process_all`` run over the same 20 files (same etags) that
    selects 2 others. ``initial-tag``: the 6 keys (as ``Datapool.read`` gives it)."""
    x, y = load_digits(return_X_y=True)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    path: Path = tmp_path_factory.mktemp("whole") / "pool"
    dp = Datapool(f"file://{path}")
    for run_id, run, picks in ((FIRST, 2, [0, 1, 2, 4]), (SECOND, 3, [5, 6])):  # (the same 20 files each time)
        _commit(dp, _rows(x, y, list(range(20)), picks, run=run), run_id, None)
    initial = set(dp.read(tag=C.INITIAL_TAG, columns=[C.KEY]).column(C.KEY).to_pylist())
    assert len(initial) == 6  # (the pool's own rule: run 1's 4 picks stand, run 2's 2 join them)
    return View(PoolSpec("main", f"file://{path}")), initial


def test_map_colours_initial_tag_as_selected(pool: tuple[View, set[str]]) -> None:
    view, initial = pool
    got = view.map(Scope(), color="selected")
    assert got["total"] == 19  # (each sample once; the corrupt 4th row has no map position)
    selected = {k for k, c in zip(got["points"]["key"], got["points"]["c"], strict=True)
                if got["groups"][c] == 2}
    assert selected == initial  # before: only run 2's 2 picks (run 1's 4 were "not selected")
    assert dict(map(tuple, got["legend"])) == {"not selected": 13, "selected": 6}


def test_grid_flag_and_filter_match_initial_tag(pool: tuple[View, set[str]]) -> None:
    view, initial = pool
    page = view.grid(Scope(), sort=None, descending=False, offset=0, limit=100)
    assert page["total"] == 20
    assert {i[C.KEY] for i in page["items"] if i[C.SELECTED]} == initial  # before: 2 of them
    chosen = view.grid(parse_scope([("in.selected", "true")]), sort=None, descending=False, offset=0, limit=100)
    assert chosen["total"] == len(initial) == view.count(parse_scope([("in.selected", "true")]))  # before: 2
    assert {i[C.KEY] for i in chosen["items"]} == initial
    assert view.count(parse_scope([("in.selected", "false")])) == 20 - len(initial)  # before: 18


def test_a_run_scope_still_shows_its_own_rows(pool: tuple[View, set[str]]) -> None:
    """A run's rows are the exact rows it wrote: run 2 selected 2 (run 1's picks are "selected by earlier runs")."""
    view, _ = pool
    got = view.grid(Scope(run=SECOND), sort=None, descending=False, offset=0, limit=100)
    assert sum(1 for i in got["items"] if i[C.SELECTED]) == 2
    assert view.count(parse_scope([("run", SECOND), ("in.selected", "true")])) == 2


def test_sample_page_says_an_earlier_pick_stands(pool: tuple[View, set[str]]) -> None:
    """Run 1's pick that run 2 processed again: its page said "Not picked by its run" (its latest row's)."""
    from lightly_airflow.plugins.pages import sample_page

    view, initial = pool
    first = view.sql(f"SELECT {C.SAMPLE_ID}, {C.KEY} FROM pool WHERE commit_version = {view.run_version(FIRST)} "
                     f"AND {C.PICK_RANK} = 0").to_pylist()[0]
    assert first[C.KEY] in initial
    rows = view.sample(first[C.SAMPLE_ID])
    assert [(r[C.RUN_ID], r[C.SELECTED]) for r in rows] == [(SECOND, False), (FIRST, True)]
    html = sample_page("", "main", view, first[C.SAMPLE_ID], rows, {}, "/static")
    assert "<b>Selected</b> (in <code>initial-tag</code>)" in html and "Not picked by its run" not in html
    other = next(r for r in view.grid(Scope(), sort=None, descending=False, offset=0, limit=100)["items"]
                 if r[C.KEY] not in initial and r["status"] == C.STATUS_OK)
    rows = view.sample(other[C.SAMPLE_ID])
    assert "Not picked by its run" in sample_page("", "main", view, other[C.SAMPLE_ID], rows, {}, "/static")


def test_a_replaced_file_s_former_pick_is_not_selected(tmp_path: Path) -> None:
    """Run 2 finds run 1's first pick replaced (another etag): the whole version shows both versions of the file
    (two samples); ``initial-tag`` holds neither of them, only run 1's other pick. The former pick's row said
    "selected" (its own column; no sample there has two rows)."""
    x, y = load_digits(return_X_y=True)
    dp = Datapool(f"file://{tmp_path / 'pool'}")
    _commit(dp, _rows(x.astype(np.float32), y, list(range(10)), [0, 1], run=2), FIRST, None)
    again = _rows(x.astype(np.float32), y, [0], [], run=3)
    _commit(dp, again.set_column(again.schema.get_field_index(C.ETAG), C.ETAG, pa.array(["replaced"])), SECOND, None)
    initial = set(dp.read(tag=C.INITIAL_TAG, columns=[C.KEY]).column(C.KEY).to_pylist())
    view = View(PoolSpec("main", dp.uri))
    page = view.grid(Scope(), sort=None, descending=False, offset=0, limit=100)
    assert page["total"] == 11 and len(initial) == 1
    assert {i[C.KEY] for i in page["items"] if i[C.SELECTED]} == initial  # before: both of run 1's picks
    assert view.count(parse_scope([("in.selected", "true")])) == 1  # before: 2
