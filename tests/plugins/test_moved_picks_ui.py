"""A moved file's pick in the UI (``plugins.query.View``, ``pages.sample_page``): the row a move wrote has the gone
key's rank in the version of the run that moved it (``datapool.moves``). Its page said "Pick 1 of run r2" (the
mover) with r2's own picks as its neighbours, and the ``initial-tag`` grid sorted by rank alone interleaved every
run's picks (each run's first pick first) where the pool's own order goes by version, moved picks first."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from datapool.test_moves import commit, first_two_versions, rows_of
from datapool.test_moves_chains import moved
from sklearn.datasets import load_digits
from ui_client import ui_client

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



def _three_runs(tmp_path: Path, digits: Any) -> Datapool:
    """v1: r1 picks a.png, b.png, c.png (ranks 0-2) of four; v2: r2 moves b.png to m/b.png and u.png (not picked) to
    m/u.png, and picks q.png, r.png (0, 1); v3: r3 moves c.png to m/c.png and picks s.png (0)."""
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, rows_of(digits, {"a.png": 0, "b.png": 1, "c.png": 2, "u.png": 6}, picks=["a.png", "b.png", "c.png"]),
           "r1")
    moves = moved(digits, "m/b.png", "b.png", 1, picks={"q.png": 3, "r.png": 4})
    unpicked = rows_of(digits, {"m/u.png": 6}, duplicate_of={"m/u.png": "u.png"})  # (moved too: never picked)
    commit(pool, pa.concat_tables([moves, unpicked]), "r2", [("m/b.png", "b.png"), ("m/u.png", "u.png")])
    commit(pool, moved(digits, "m/c.png", "c.png", 2, picks={"s.png": 5}), "r3", [("m/c.png", "c.png")])
    return pool


def _cards(html: str) -> list[tuple[str, str]]:
    """(key, state line) of each card of a grid page."""
    return [(html_lib.unescape(k), html_lib.unescape(state)) for k, state in
            re.findall(r'<div class="cap">(?:<input[^>]*>)?<a href="[^"]*" title="([^"]*)">.*?</a><br>([^<]*)', html)]


def test_a_runs_grid_in_pick_order_gives_each_pick_one_rank_in_the_pools_order(
        tmp_path: Path, digits: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """r2's rows in pick order were q.png "pick 1", r.png "pick 2", then m/b.png "pick 2" (r2's move carried it in
    with r1's rank 1): two picks of one rank, the moved pick after r2's own where the pool has it first."""
    pool = _three_runs(tmp_path, digits)
    expected = [r.key for r in export_records(pool, "initial-tag")]
    assert expected == ["a.png", "m/b.png", "q.png", "r.png", "m/c.png", "s.png"]
    view = View(PoolSpec("p", pool.uri))
    with ui_client(monkeypatch, {"p": {"uri": pool.uri}}) as client:
        for run, own in (("r2", ["q.png", "r.png"]), ("r3", ["s.png"])):
            grid = view.grid(Scope(run=run, version=view.version), sort=None, descending=False, offset=0, limit=10)
            picked = [i[C.KEY] for i in grid["items"] if i[C.PICK_RANK] is not None]
            assert picked == [k for k in expected if k in picked]  # the pool's order: the moved pick first
            page = client.get("/lightly/pools/p/samples", params={"run": run, "sort": C.PICK_RANK})
            assert page.status_code == 200, page.text
            states = dict(_cards(page.text))
            ranks = [s.split(" · ")[0] for k, s in states.items() if k in own]
            assert ranks == [f"pick {n + 1}" for n in range(len(own))], states  # the run's own, one rank each
            moved_in = [s for k, s in states.items() if k in picked and k not in own]
            assert len(moved_in) == 1 and moved_in[0].startswith("moved in: an earlier run's pick "), states
            assert [k for k in states if k in picked] == picked  # the page in that order
            assert list(states)[:len(picked)] == picked  # the picks first (a moved file never picked: after them)
            desc = view.grid(Scope(run=run, version=view.version), sort=None, descending=True, offset=0, limit=10)
            assert [i[C.KEY] for i in desc["items"]][:len(picked)] == picked[::-1]
        # r1's tag keeps r1's ranks, the moved picks among them, each once
        page = client.get("/lightly/pools/p/samples", params={"tag": "r1"})
        assert [(k, s.split(" · ")[0]) for k, s in _cards(page.text)] == [
            ("a.png", "pick 1"), ("m/b.png", "pick 2"), ("m/c.png", "pick 3")]


def test_a_picks_neighbour_moved_by_a_later_run_is_linked_by_its_current_key(
        tmp_path: Path, digits: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """m/b.png (r1's pick 2, moved by r2) linked its next pick as c.png, which r3 moved to m/c.png: a page of the
    gone file. a.png's page likewise linked b.png."""
    pool = _three_runs(tmp_path, digits)
    view = View(PoolSpec("p", pool.uri))
    near = view.neighbours_in_pick_order(_row(view, "m/b.png"))
    assert {s: n[C.KEY] for s, n in near.items()} == {"before": "a.png", "after": "m/c.png"}
    assert near["after"][C.SAMPLE_ID] == _row(view, "m/c.png")[C.SAMPLE_ID]
    assert {s: n[C.KEY] for s, n in view.neighbours_in_pick_order(_row(view, "a.png")).items()} == {"after": "m/b.png"}
    # at version 2 (before r3 moved c.png) its neighbour is still c.png (time travel)
    old = View(PoolSpec("p", pool.uri), version=2)
    assert {s: n[C.KEY] for s, n in old.neighbours_in_pick_order(_row(old, "m/b.png")).items()} == {
        "before": "a.png", "after": "c.png"}
    with ui_client(monkeypatch, {"p": {"uri": pool.uri}}) as client:
        page = client.get(f"/lightly/pools/p/samples/{_row(view, 'm/b.png')[C.SAMPLE_ID]}")
        assert page.status_code == 200, page.text
        sid = _row(view, "m/c.png")[C.SAMPLE_ID]
        assert f'next pick: <a href="/lightly/pools/p/samples/{sid}?version=3">m/c.png</a>' in page.text
        assert ">c.png</a>" not in page.text
