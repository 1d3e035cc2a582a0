"""A moved file's pick in the UI (``plugins.query.View``, ``pages.sample_page``): the row a move wrote has the gone
key's rank in the version of the run that moved it (``datapool.moves``). Its page said "Pick 1 of run r2" (the
mover) with r2's own picks as its neighbours, and the ``initial-tag`` grid sorted by rank alone interleaved every
run's picks (each run's first pick first) where the pool's own order goes by version, moved picks first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datapool.test_moves import commit, first_two_versions, rows_of
from datapool.test_moves_chains import moved
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.plugins import pages as P
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.query import Scope, View


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    x = data.data.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), data.target


def _row(view: View, key: str) -> dict[str, Any]:
    sid = view.sql(f"SELECT sample_id FROM pool WHERE key = '{key}' ORDER BY commit_version DESC LIMIT 1")
    return view.sample(sid.column(0)[0].as_py())[0]


def test_a_moved_picks_page_names_the_run_that_picked_it_and_its_neighbours(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)  # v1: r1 picks a/x.png (rank 0), c.png (rank 1); v2: "hand"
    # v3: r2 moves c.png to e/c.png and picks q.png (rank 0) of its own
    commit(pool, moved(digits, "e/c.png", "c.png", 2, picks={"q.png": 3}), "r2", [("e/c.png", "c.png")])
    spec = PoolSpec("p", pool.uri)
    view = View(spec)
    row = _row(view, "e/c.png")
    assert (row[C.RUN_ID], row[C.PICK_RANK], row["commit_version"]) == ("r2", 1, 3)  # as the move wrote it
    picked = view.original_pick(row)
    assert picked is not None and (picked[C.KEY], picked[C.RUN_ID], picked[C.PICK_RANK], picked["commit_version"]) \
        == ("c.png", "r1", 1, 1)
    near = view.neighbours_in_pick_order(row)
    assert {s: n[C.KEY] for s, n in near.items()} == {"before": "a/x.png"}  # r1's pick before it, not r2's q.png
    # r2's own pick: no neighbour (the moved e/c.png has r1's rank 1, no pick of r2)
    assert view.neighbours_in_pick_order(_row(view, "q.png")) == {}
    assert view.original_pick(_row(view, "q.png")) is None

    from lightly_airflow.plugins.app import app  # noqa: F401 (the app imports its routes: first)
    from lightly_airflow.plugins.routes import _sample_extra

    extra = _sample_extra(view, spec, row)  # (the page's own: the source is gone, the pick is still told)
    html = P.sample_page("/lightly", "p", view, row[C.SAMPLE_ID], [row], extra, "/static")
    assert "Pick <b>2</b> (pick rank 1) of run <a" in html and ">r1</a>, which selected 2 of 3 samples" in html
    assert "moved from <code>c.png</code> by run r2 (version 3)" in html and ">a/x.png</a>" in html


def test_a_file_moved_twice_is_traced_to_the_run_that_picked_it(tmp_path: Path, digits: Any) -> None:
    pool = first_two_versions(tmp_path, digits)
    commit(pool, moved(digits, "b/x.png", "a/x.png", 0), "r2", [("b/x.png", "a/x.png")])
    commit(pool, moved(digits, "c/x.png", "b/x.png", 0), "r3", [("c/x.png", "b/x.png")])
    view = View(PoolSpec("p", pool.uri))
    picked = view.original_pick(_row(view, "c/x.png"))
    assert picked is not None and (picked[C.KEY], picked[C.RUN_ID], picked["commit_version"]) == ("a/x.png", "r1", 1)


def test_the_initial_tag_grid_in_pick_order_is_the_pools_order(tmp_path: Path, digits: Any) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, rows_of(digits, {"a/x.png": 0, "c.png": 2}, picks=["c.png", "a/x.png"]), "r1")
    commit(pool, moved(digits, "b/x.png", "a/x.png", 0, picks={"q.png": 3, "r.png": 4}), "r2",
           [("b/x.png", "a/x.png")])
    expected = [r.key for r in export_records(pool, "initial-tag")]
    assert expected == ["c.png", "b/x.png", "q.png", "r.png"]
    view = View(PoolSpec("p", pool.uri))
    scope = Scope(tag=C.INITIAL_TAG, version=view.version)
    for descending in (False, True):
        grid = view.grid(scope, sort=None, descending=descending, offset=0, limit=10)
        assert grid["sort"] == C.PICK_RANK
        got = [i[C.KEY] for i in grid["items"]]
        assert got == (expected[::-1] if descending else expected)
    # the UI's download of initial-tag in the same order (it sorted by rank alone: the runs' picks mixed)
    assert view.export_rows(scope, only=[C.KEY]).column(C.KEY).to_pylist() == expected
    # a run's grid keeps its own rank order
    assert [i[C.KEY] for i in view.grid(Scope(tag="r1", version=view.version), sort=None, descending=False,
                                         offset=0, limit=10)["items"]] == ["c.png", "b/x.png"]
