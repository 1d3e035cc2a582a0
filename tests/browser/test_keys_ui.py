"""The ← and → keys (``static/keys.js``) step to the previous and next sample, but not while the sample page's
video player has the focus: they seek there, and before they left the page for the next sample. The page is
served from a stand-in origin (Playwright's routing) with the plugin's own script: no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from colour_vision import chromium

from lightly_airflow.plugins import html as H

pytestmark = pytest.mark.slow

ORIGIN = "http://ui.test"
KEYS_JS = Path(__file__).parents[2] / "lightly_airflow" / "plugins" / "static" / "keys.js"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _serve(route: Any) -> None:
    if route.request.url.endswith("/keys.js"):
        route.fulfill(body=KEYS_JS.read_text(), content_type="text/javascript")
    else:
        body = ('<video controls muted width="320" height="180"></video> '
                f'<a href="{ORIGIN}/next" rel="next">next →</a>')
        route.fulfill(body=H.page("Sample", body, scripts=[f"{ORIGIN}/keys.js"]), content_type="text/html")


def test_arrow_keys_step_but_not_from_a_focused_video(browser: Any) -> None:
    page = browser.new_page()
    try:
        page.route(f"{ORIGIN}/**", _serve)
        page.goto(f"{ORIGIN}/sample")
        page.focus("video")
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
        assert page.url == f"{ORIGIN}/sample"  # the player keeps its keys
        page.evaluate("() => document.activeElement.blur()")
        with page.expect_navigation():
            page.keyboard.press("ArrowRight")
        assert page.url == f"{ORIGIN}/next"
    finally:
        page.close()
