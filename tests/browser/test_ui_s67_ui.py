"""The datapool page (Versions & tags) in Debian's Chromium, light and dark: in a 400 px window its tables are blocks
of labelled lines, a tag name on one line (the tag column, squeezed by the run ids beside it, broke
``scheduled-2026-03-01-00:00`` three letters a line, ``initi`` / ``al-`` / ``tag``, and the run ids and links scrolled
out of sight; each version was 170 px tall, its counts a word a line); at 1360 px tables as before. No api-server:
app.py's markup of a real pool (seconds). Screenshots ``s67-pool-400``, ``s67-pool-1360`` in
``$LIGHTLY_SCREENSHOTS`` when set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from colour_vision import chromium

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins import app as A
from lightly_airflow.plugins import data as D
from lightly_airflow.plugins.config import PoolSpec

DAYS = ("2026-03-01", "2026-03-02")


def _commit_day(pool: Datapool, day: str, first: bool) -> None:
    """A scheduled run of ``day``: two samples, one picked, its tag named as a run's default tag is."""
    rows = pa.table(
        {
            C.KEY: [f"{day}/{i}.jpg" for i in range(2)],
            C.ETAG: [f"{day}-{i}" for i in range(2)],
            C.STATUS: ["ok"] * 2,
            C.EMBEDDING: pa.array([[0.1, 0.2, 0.3, 0.4]] * 2, pa.list_(pa.float32(), 4)),
            C.SELECTED: [True, False],
            C.PICK_RANK: pa.array([0, None], pa.int64()),
        }
    )
    pool.commit(
        rows,
        run_id=f"scheduled__{day}T00:00:00+00:00",
        dag_id="lightly_datapool",
        tag=f"scheduled-{day}-00:00",
        config={},
        counts={"processed": 2, "candidates": 2, "selected": 1, "corrupt": 0, "duplicate": 0, "missing": 0},
        embedding_model="m",
        embedding_dim=4,
        read_version=None if first else pool.version(),
    )


@pytest.fixture(scope="module")
def pool_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("s67-pool") / "pool"
    pool = Datapool(str(path))
    for i, day in enumerate(DAYS):
        _commit_day(pool, day, i == 0)
    ov = D.overview(PoolSpec(name="demo", uri=f"file://{path}"), offset=0, limit=50, tag_offset=0, tag_limit=50)
    return A._overview_page("/lightly", ov, {"offset": 0, "before": None}, {"tag_offset": 0, "tags_before": None})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _lines(page: Any, selector: str) -> Any:
    """Each matching element's text and the number of lines the browser drew it on."""
    return page.evaluate(
        """sel => Object.fromEntries([...document.querySelectorAll(sel)].map(el => {
        const r = document.createRange(); r.selectNodeContents(el);
        return [el.textContent, new Set([...r.getClientRects()].map(b => Math.round(b.top))).size]; }))""",
        selector,
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_pool_pages_tables_read_in_a_narrow_window(browser: Any, pool_page: str, scheme: str) -> None:
    shots = os.environ.get("LIGHTLY_SCREENSHOTS")
    for width in (400, 1360):
        page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
        try:
            page.set_content(pool_page)
            # every tag name on one line, in either window
            names = _lines(page, "#tags tbody td:first-child a")
            assert set(names) == {"initial-tag", *(f"scheduled-{d}-00:00" for d in DAYS)}, names
            assert all(n == 1 for n in names.values()), (width, names)
            for section in ("tags", "versions"):  # nothing scrolls out of sight
                wide, room = page.evaluate(
                    f"(s => [s.scrollWidth, s.clientWidth])(document.querySelector('#{section} .hscroll'))"
                )
                assert wide <= room, (width, section, wide, room)
            labels = page.evaluate("""[...document.querySelectorAll('#versions tbody tr')[0].children].map(td =>
                getComputedStyle(td, '::before').content)""")
            heads = page.evaluate("[...document.querySelectorAll('thead')].map(h => getComputedStyle(h).display)")
            if width == 400:
                # a version's number is named (a bare "2" says nothing); the column of links has no name to show
                assert labels == [
                    f'"{h}: "'
                    for h in ("Version", "Committed", "Run", "DAG", "Tag", "Rows", "Selected", "Counts", "Report")
                ] + ["none"], labels
                assert heads == ["none", "none"]
                # initial-tag has no run: no empty "Run:" line
                empty = page.evaluate("""[...document.querySelectorAll('#tags tbody tr')[0].children]
                    .filter(td => !td.textContent).map(td => getComputedStyle(td).display)""")
                assert empty == ["none"], empty
            else:
                assert set(labels) == {"none"} and "none" not in heads
            if shots:
                page.screenshot(path=str(Path(shots) / f"s67-pool-{width}-{scheme}.png"), full_page=True)
        finally:
            page.close()


LONG = C.metadata_column("camera_position_relative_to_the_vehicles_front_bumper_in_millimetres")


@pytest.fixture(scope="module")
def column_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The map's and the compare page's markup of a pool with a long column name (a video pool's
    ``predictions.shapes.category_count.yellow-triangle`` made the "Colour by" and "Distribution of" selects 436 px
    wide: the page scrolled sideways by 55 px in a 400 px window)."""
    from lightly_airflow.plugins import pages as P
    from lightly_airflow.plugins.query import Scope, View

    path = tmp_path_factory.mktemp("s67-columns") / "pool"
    pool = Datapool(str(path))
    rows = pa.table(
        {
            C.KEY: [f"{i}.jpg" for i in range(4)],
            C.ETAG: [f"e{i}" for i in range(4)],
            C.STATUS: ["ok"] * 4,
            C.EMBEDDING: pa.array([[0.1, 0.2, 0.3, float(i)] for i in range(4)], pa.list_(pa.float32(), 4)),
            LONG: pa.array([1.0, 2.0, 3.0, 4.0]),
            C.SELECTED: [True, False, True, False],
            C.PICK_RANK: pa.array([0, None, 1, None], pa.int64()),
        }
    )
    pool.commit(
        rows,
        run_id="manual__1",
        dag_id="d",
        tag="picks",
        config={},
        counts={"processed": 4},
        embedding_model="m",
        embedding_dim=4,
        read_version=None,
    )
    view = View(PoolSpec(name="p", uri=f"file://{path}"))
    return {
        "map": P.map_page("/lightly", "p", view, Scope(version=view.version), "selected", "/static"),
        "compare": P.compare_page("/lightly", "p", view, ["picks"], LONG, None, "/static"),
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_column_selects_fit_a_narrow_window(browser: Any, column_pages: dict[str, str], scheme: str) -> None:
    shots = os.environ.get("LIGHTLY_SCREENSHOTS")
    for name, markup in column_pages.items():
        page = browser.new_page(viewport={"width": 400, "height": 900}, color_scheme=scheme)
        try:
            page.set_content(markup)
            over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert over <= 0, (name, over)
            select = "select[name=color]" if name == "map" else "select[name=column]"
            # each option's whole name in its title (the select cuts it)
            titles = page.eval_on_selector_all(f"{select} option[title]", "os => os.map(o => o.title)")
            assert LONG in titles, titles
            if shots:
                page.screenshot(path=str(Path(shots) / f"s67-{name}-400-{scheme}.png"), full_page=True)
        finally:
            page.close()
