"""Session 67's UI audit (TestClient on real datapools):

- a pick's page: its run's name opens the run's picks as they are now (its tag, in pick order: a file moved since
  under its new key); it opened the rows the run committed, where a moved pick shows under its gone key and the
  sample the user came from is missing. Both grids say which they are and link the other.
- the home page counts a pool's distinct samples only up to ``EXACT_SAMPLES_ROWS`` rows (the log's row counts, no
  data file read): the file bound alone let a few large files (a compacted pool) take the count through every row.
"""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datapool.test_moves import commit, first_two_versions
from datapool.test_moves_chains import moved
from sklearn.datasets import load_digits
from ui_client import ui_client

from lightly_airflow.plugins import data as D
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.query import View
from plugins.test_home_samples import _samples_cell, reprocessed  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    x = data.data.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), data.target


def _cards(page: str) -> list[tuple[str, str]]:
    """(key, state line) of each card of a grid page."""
    return [
        (html_lib.unescape(k), html_lib.unescape(state))
        for k, state in re.findall(
            r'<div class="cap">(?:<input[^>]*>)?<a href="[^"]*" title="([^"]*)">.*?</a><br>([^<]*)', page
        )
    ]


def _href(page: str, text: str) -> str:
    found = re.findall(rf'<a href="([^"]*)">{re.escape(text)}</a>', page)
    assert found, text
    return html_lib.unescape(found[0])


def test_a_picks_run_link_opens_the_runs_picks_as_they_are_now(
    tmp_path: Path, digits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = first_two_versions(tmp_path, digits)  # v1: r1 picks a/x.png (rank 0), c.png (rank 1); v2: "hand"
    # v3: r2 moves c.png to e/c.png (r1's pick 2 now under its new key) and picks q.png of its own
    commit(pool, moved(digits, "e/c.png", "c.png", 2, picks={"q.png": 3}), "r2", [("e/c.png", "c.png")])
    sid = View(PoolSpec("p", pool.uri)).sql("SELECT sample_id FROM pool WHERE key = 'e/c.png'").column(0)[0].as_py()
    with ui_client(monkeypatch, {"p": {"uri": pool.uri}}) as client:
        page = client.get(f"/lightly/pools/p/samples/{sid}").text
        picks = client.get(_href(page, "r1")).text
        # the grid the run's name opens holds the sample the user came from, as its pick 2, under its key now
        assert _cards(picks) == [("a/x.png", "pick 1 · ok"), ("e/c.png", "pick 2 · ok")], _cards(picks)
        assert "these are its picks as they are now" in picks
        # the rows r1 committed: the history as it was (the gone key), said so, and a way back to its picks
        rows_href = _href(page, "every sample it processed")
        assert "run=r1" in rows_href
        rows = client.get(rows_href).text
        assert [k for k, _ in _cards(rows)] == ["a/x.png", "c.png", "a/y.png"]
        assert "these are the rows it committed, with the keys they had then" in rows
        assert _href(rows, "tag r1") == _href(page, "Its picks") == _href(page, "r1")
        assert ">r1</a>, which selected 2 of 3 samples.</p>" in page


def test_a_pool_of_more_rows_than_the_bound_shows_its_runs_counts(
    reprocessed: Path,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """8 rows in 4 data files: over a bound of 7 rows the summed count, labelled; at 8 the distinct samples (6)."""
    for bound, cell in ((7, r'<span title="[^"]*processed again counts once a run">8 processed</span>'), (8, "6")):
        monkeypatch.setattr(D, "EXACT_SAMPLES_ROWS", bound, raising=False)
        D._samples_cache.clear()
        with ui_client(monkeypatch, {"p": {"uri": str(reprocessed)}}) as c:
            page = c.get("/lightly/").text
        assert re.fullmatch(cell, _samples_cell(page)), (bound, _samples_cell(page))
        assert f"more than {bound:,} rows or {D.EXACT_SAMPLES_FILES} data files" in page
