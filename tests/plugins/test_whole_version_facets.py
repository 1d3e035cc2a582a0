"""The filter panel's counts of the whole version (no tag, no run) count the rows its grid shows: each sample once,
its latest row, ``selected`` meaning in ``initial-tag`` (test_whole_version_selected.py).

A ``process_all`` run over the same files writes a second row of each sample: the facets counted every row of
every version (``status`` 40 rows of 20 samples, ``run_id`` both runs, ``selected`` false 34 where the grid's
``selected=false`` finds 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.query import HISTOGRAM_BINS, Scope, View, parse_scope
from plugins.conftest import _commit, _rows

FIRST, SECOND = "scheduled__2026-03-01T00:00:00+00:00", "scheduled__2026-03-02T00:00:00+00:00"
LUMINANCE = C.lightly_metadata_column("luminance")


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> View:
    """Run 1 selects 4 of 20 digits; run 2, a ``process_all`` run over the same 20 files (same etags), 2 others
    (``initial-tag``: 6). Each run's 4th row is corrupt."""
    x, y = load_digits(return_X_y=True)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    path: Path = tmp_path_factory.mktemp("facets") / "pool"
    dp = Datapool(f"file://{path}")
    for run_id, run, picks in ((FIRST, 2, [0, 1, 2, 4]), (SECOND, 3, [5, 6])):
        _commit(dp, _rows(x, y, list(range(20)), picks, run=run), run_id, None)
    return View(PoolSpec("main", f"file://{path}"))


def _values(view: View, column: str) -> dict[str, int]:
    return {v: n for v, n in view.facets()[column]["values"]}


def test_category_counts_count_each_sample_once_as_the_grid_shows_it(view: View) -> None:
    assert view.count(Scope()) == 20
    assert _values(view, C.SELECTED) == {"true": 6, "false": 14}  # before: 6 / 34 (every row of both runs)
    assert _values(view, C.STATUS) == {C.STATUS_OK: 19, C.STATUS_CORRUPT: 1}  # before: 38 / 2
    assert _values(view, C.RUN_ID) == {SECOND: 20}  # before: both runs, 20 each
    nulls = 0
    for column, facet in view.facets().items():  # each count is what the grid's filter by that value finds
        if facet["kind"] == "category":
            for value, n in facet["values"]:  # ("(none)", a column's nulls, too: it found no row before)
                assert view.count(parse_scope([(f"in.{column}", value)])) == n, (column, value)
                nulls += value == "(none)"
    assert nulls  # (status_reason's nulls at least)
    # "(none)" with a value: either
    assert view.count(parse_scope([(f"in.{C.STATUS_REASON}", "(none)"), (f"in.{C.STATUS_REASON}", "x")])) == 19


def test_numeric_facets_count_the_same_rows(view: View) -> None:
    luminance = view.facets()[LUMINANCE]
    assert sum(luminance["bins"]) + luminance["nulls"] == 20  # before: 40
    assert len(luminance["bins"]) == HISTOGRAM_BINS


def test_a_run_scope_and_a_pool_without_reprocessed_samples_are_unchanged(view: View, tmp_path: Path) -> None:
    """The facets are the version's (one per version, cached); a pool of one run counts its rows as they are."""
    x, y = load_digits(return_X_y=True)
    dp = Datapool(f"file://{tmp_path / 'one'}")
    _commit(dp, _rows(x, y, list(range(20)), [0, 1, 2, 4], run=2), FIRST, None)
    one = View(PoolSpec("one", f"file://{tmp_path / 'one'}"))
    assert _values(one, C.SELECTED) == {"true": 4, "false": 16}
    assert _values(one, C.STATUS) == {C.STATUS_OK: 19, C.STATUS_CORRUPT: 1}
    assert view.count(parse_scope([("run", FIRST), ("in.selected", "true")])) == 4
