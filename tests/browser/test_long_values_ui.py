"""A sample's tables keep their column names on one line whatever the length of a value beside them (a key of
330 characters squeezed ``commit_version`` into ``commit_`` / ``version``). Drawn from ``html.page`` and
``html.table`` alone: no server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from colour_vision import chromium

from lightly_airflow.plugins import html as H

pytestmark = pytest.mark.slow

KEY = "very-long-folder-name-" * 6 + "/" + "sub-" * 20 + "/" + "an-extremely-long-file-name-" * 5 + "end.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_column_names_stay_on_one_line_beside_a_long_value(browser: Any) -> None:
    rows = [(H.breakable(n), H.e(v)) for n, v in [("commit_version", "2"), ("content_hash", "ab" * 32), ("key", KEY),
                                                   ("status_reason", "same content as 'x.png'")]]
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    try:
        page.set_content(H.page("Sample", '<h2>Sample</h2>' + H.table(["Column", "Value"], rows, names=True)))
        lines = page.eval_on_selector_all("td.name", """els => els.map(e => { const r = document.createRange();
            r.selectNodeContents(e); return new Set([...r.getClientRects()].filter(b => b.width > 0)
            .map(b => Math.round(b.top))).size; })""")  # the lines its text is on (not its row's height)
    finally:
        page.close()
    assert lines == [1, 1, 1, 1], lines
