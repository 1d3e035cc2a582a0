"""What session 62's audit of the pages in Chromium found, light and dark: the filter panel's "Apply" button is
readable in dark mode (its text on the accent colour, 2.5:1 before) and the native controls (check boxes, selects,
scroll bars) are drawn dark there too; a keyboard user skips the filter panel (two inputs per numeric column) with
the page's first Tab; the map says why its data did not load (the server's reason, not "HTTP 400"); and in a
narrow window (400 px) the count of samples is in the first screen, not under 3,000 px of filters. Screenshots
``audit-skip``, ``audit-map-error``, ``audit-narrow-grid``."""

from __future__ import annotations

import pytest

from .conftest import Curation, _shot, _wait

pytestmark = pytest.mark.slow

CONTRAST = """(sel) => {
  const el = document.querySelector(sel), s = getComputedStyle(el);
  const lum = c => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => x / 255)
    .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const a = lum(s.color), b = lum(s.backgroundColor);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_controls_are_readable_and_drawn_in_the_theme(page, curation: Curation):
    page.goto(f"{curation.base}/lightly/pools/demo/samples")
    assert page.evaluate(CONTRAST, "button.primary") >= 4.5  # WCAG AA for text
    assert page.evaluate("() => getComputedStyle(document.documentElement).colorScheme") == page.theme


def test_the_first_tab_skips_the_filter_panel(page, curation: Curation):
    page.goto(f"{curation.base}/lightly/pools/demo/samples")
    page.keyboard.press("Tab")
    skip = page.evaluate("""() => { const a = document.activeElement, r = a.getBoundingClientRect();
        return [a.className, a.textContent, r.left >= 0 && r.top >= 0 && r.width > 0]; }""")
    assert skip == ["skip", "Skip the filters to the samples", True]
    _shot(page, curation, "audit-skip")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # the first control after the panel: the grid's order
    assert page.evaluate("() => document.activeElement.name") == "sort"


def test_the_map_says_why_it_did_not_load(page, curation: Curation):
    page.goto(f"{curation.base}/lightly/pools/demo/map?color=no-such-column")
    _wait(page, "!document.getElementById('mapstatus').textContent.startsWith('Loading')")
    status = page.inner_text("#mapstatus")
    assert status.startswith("Could not load the map: Cannot colour by 'no-such-column'") and "(HTTP 400)" in status
    _shot(page, curation, "audit-map-error")


def test_a_narrow_window_shows_the_count_in_its_first_screen(page, curation: Curation):
    page.set_viewport_size({"width": 400, "height": 900})
    try:
        page.goto(f"{curation.base}/lightly/pools/demo/samples")
        top = page.evaluate("() => document.querySelector('#results p').getBoundingClientRect().top")
        assert 0 < top < 900, top
        _shot(page, curation, "audit-narrow-grid")
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})
