"""The map coloured by selected/not says which group each point is in with the report's groups (``report.data.GROUPS``),
not by the groups' sizes: "not selected" took the palette's first colour (blue) whenever it was the larger group,
where the report draws it grey and the selected vermillion (static/map.js colours the payload's ``groups``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.query import Scope, View
from plugins.conftest import _commit, _rows

FIRST, SECOND = "scheduled__2026-02-01T00:00:00+00:00", "scheduled__2026-02-02T00:00:00+00:00"


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> View:
    """Two runs: the first selects 4 of 30 digits, the second processes two of those 4 again (selecting neither)
    and 18 new ones, of which it selects 3 (each run's 4th row is corrupt: no embedding, no map position)."""
    digits = load_digits()
    x = digits.data.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path: Path = tmp_path_factory.mktemp("map") / "pool"
    pool = Datapool(f"file://{path}")
    _commit(pool, _rows(x, digits.target, list(range(30)), [0, 1, 2, 4], run=2), FIRST, None)
    _commit(pool, _rows(x, digits.target, [0, 1, *range(30, 48)], [2, 4, 5], run=3), SECOND, None)
    return View(PoolSpec("main", f"file://{path}"))


def _groups_of_points(got: dict) -> list[int]:
    return [got["groups"][c] for c in got["points"]["c"]]


def test_selected_and_not_keep_the_report_s_groups_whatever_their_sizes(view: View) -> None:
    got = view.map(Scope(), color="selected")
    # (each sample with a position once; selected: in initial-tag, the first run's two picks the second processed
    # again among them, test_whole_version_selected.py)
    assert got["legend"] == [["not selected", 39], ["selected", 7]]
    assert got["groups"] == [0, 2]  # grey, vermillion: before, "not selected" (the larger) was the first colour
    selected = set(Datapool(view.spec.uri).read(tag=C.INITIAL_TAG, columns=[C.KEY]).column(C.KEY).to_pylist())
    for key, group in zip(got["points"]["key"], _groups_of_points(got), strict=True):
        assert group == (2 if key in selected else 0), key


def test_a_run_s_map_names_what_earlier_runs_selected_as_its_report_does(view: View) -> None:
    """The second run's rows of the two digits the first run selected are "selected by earlier runs" (blue in the
    report and here); before they were "not selected"."""
    got = view.map(Scope(run=SECOND), color="selected")
    assert got["legend"] == [["not selected", 14], ["selected by earlier runs", 2], ["selected in this run", 3]]
    assert got["groups"] == [0, 1, 2]
    earlier = [k for k, g in zip(got["points"]["key"], _groups_of_points(got), strict=True) if g == 1]
    assert sorted(earlier) == sorted(view.sql(f"SELECT {C.KEY} FROM pool WHERE {C.SELECTED} AND "
                                              f"commit_version = {view.run_version(FIRST)} AND pick_rank < 2").column(C.KEY).to_pylist())
    first = view.map(Scope(run=FIRST), color="selected")  # (no run before the first)
    assert first["legend"] == [["not selected", 25], ["selected in this run", 4]] and first["groups"] == [0, 2]
