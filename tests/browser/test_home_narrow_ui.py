"""The home page's table of datapools in Debian's Chromium: in a 400 px window each pool is a block of labelled lines
(the table of seven columns was 799 px wide there, its counts and URI scrolled out of sight); at 1360 px a table.
No api-server: app.py's markup of real pools (seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from colour_vision import chromium
from long_pool import build_long_pool

from lightly_airflow.plugins import app as A
from lightly_airflow.plugins.config import PoolSpec


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("home-narrow")
    pools = {}
    for name in ("hundred-versions-pool", "b"):
        build_long_pool(str(root / name), 3)
        pools[name] = PoolSpec(name=name, uri=f"file://{root / name}", conn_id="aws_default" if name == "b" else None)
    return A._index_page("/lightly", pools)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_home_table_fits_a_narrow_window_and_names_each_value(browser: Any, home: str, scheme: str) -> None:
    for width, stacked in ((400, True), (1360, False)):
        page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
        try:
            page.set_content(home)
            wide, room = page.evaluate("(s => [s.scrollWidth, s.clientWidth])(document.querySelector('.hscroll'))")
            assert wide <= room, (width, wide, room)
            labels = page.evaluate("""[...document.querySelectorAll('tbody tr')[0].querySelectorAll('td')].map(td =>
                getComputedStyle(td, '::before').content)""")
            heads = page.evaluate("getComputedStyle(document.querySelector('thead')).display")
            if stacked:
                assert labels[1:] == [f'"{h}: "' for h in ("Latest version", "Committed", "Samples", "Selected", "URI",
                                                             "Connection")], labels
                assert heads == "none"
            else:
                assert set(labels) == {"none"} and heads != "none"
        finally:
            page.close()
