"""The UI's charts in Debian's Chromium, light and dark: the map's points and legend (static/map.js) and the filter
histograms (pages.histogram_svg with html.CSS) keep 3:1 against their ground (WCAG 1.4.11), and the map's categories
stay apart for deuteranopia and protanopia. No api-server: the page is html.page around map.js's elements, its JSON
answered by Playwright (seconds, where the session's api-server takes minutes)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from colour_vision import VISIONS, blend, chromium, contrast, distance, rgb

from lightly_airflow.plugins import html as H
from lightly_airflow.plugins.pages import histogram_svg

STATIC = Path(H.__file__).parent / "static"
# the elements map.js reads (pages.map_page's, less the forms around them)
MAP_BODY = ('<div id="mapdata" data-api="/api/map" data-thumb="/t/" data-sample="/s/" data-suffix=""></div>'
            '<p id="mapstatus"></p><canvas id="map" aria-label="embedding map"></canvas>'
            '<div id="legend" class="legend"></div><div id="hover"></div><input id="polygon">'
            '<button id="savesel" disabled>save</button><span id="selinfo"></span>')


def _map(kind: str) -> dict[str, Any]:
    """12 legend entries (11 values and "other"), 24 points each, in a ring; numbers: every 5th point has none."""
    n, names = 12 * 24, [f"value {i}" for i in range(11)] + ["other"]
    codes = [i % 12 for i in range(n)]
    xs = [(i % 12) + 0.3 * (i // 12 % 5) for i in range(n)]
    ys = [(i // 60) * 1.0 for i in range(n)]
    legend: list[Any] = [[name, 24] for name in names]
    if kind == "number":
        codes, legend = [-1 if i % 5 == 0 else i * 255 // n for i in range(n)], [0.0, 1.0]
    return {"total": n, "shown": n, "bounds": [-1, 14, -1, 6], "bins": 8, "density": [], "color": "c",
            "legend_kind": kind, "legend": legend,
            "points": {"id": [f"{i:08x}" for i in range(n)], "x": xs, "y": ys, "c": codes,
                       "key": [f"k{i}" for i in range(n)]}}


def _open_map(browser: Any, scheme: str, data: dict[str, Any]) -> Any:
    page_html = H.page("Map", MAP_BODY, scripts=["/static/map.js"], static="/static")

    def answer(route: Any) -> None:
        url = route.request.url
        if url.endswith("/api/map"):
            route.fulfill(body=json.dumps(data), content_type="application/json")
        elif "/static/" in url:
            route.fulfill(body=(STATIC / url.rsplit("/", 1)[1]).read_text(), content_type="text/javascript")
        else:
            route.fulfill(body=page_html, content_type="text/html")

    page = browser.new_page(viewport={"width": 1000, "height": 900}, color_scheme=scheme)
    page.route("**/*", answer)
    page.goto("http://lightly.test/map")
    page.wait_for_selector("#legend > *", timeout=10_000)
    return page


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _canvas_colours(page: Any) -> set[tuple[float, ...]]:
    """The opaque colours the map's canvas holds (the points' centres)."""
    got = page.evaluate("""() => { const c = document.getElementById('map'), d = c.getContext('2d')
        .getImageData(0, 0, c.width, c.height).data, out = new Set();
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] === 255) out.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
        return [...out]; }""")
    return {tuple(float(v) for v in c.split(",")) for c in got}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_map_s_categories_keep_3_to_1_and_stay_apart_for_colour_blind_readers(browser: Any, scheme: str) -> None:
    """Before: one palette for both grounds, 7 of its 12 colours under 3:1 on one of them (#f97316 2.7:1 on the light
    map, #4b5563 2.1:1 on the dark one), and its blue #2563eb and violet #7c3aed 1.7 apart for deuteranopia."""
    page = _open_map(browser, scheme, _map("category"))
    try:
        ground = rgb(page.evaluate("getComputedStyle(document.getElementById('map')).backgroundColor"))
        swatches = [rgb(c) for c in page.evaluate(
            "[...document.querySelectorAll('#legend .sw')].map(e => getComputedStyle(e).backgroundColor)")]
        drawn = _canvas_colours(page)
    finally:
        page.close()
    assert len(swatches) == 12
    assert set(swatches) <= drawn, "the legend's colours are the points' colours"
    low = [(s, round(contrast(s, ground), 2)) for s in swatches if contrast(s, ground) < 3]
    assert not low, f"under 3:1 on {ground}: {low}"
    for name, vision in VISIONS.items():
        close = [(a, b) for a, b in itertools.combinations(swatches, 2) if distance(a, b, vision) < 15]
        assert not close, f"{name}: {close}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_map_s_number_ramp_keeps_3_to_1_and_its_legend_shows_the_colours(browser: Any, scheme: str) -> None:
    """The ramp's yellow end was 1.2:1 on the light map and its purple end 1.5:1 on the dark one, the points without
    a value #9ca3af (2.5:1 light); the legend said "low … → high …" without a colour."""
    page = _open_map(browser, scheme, _map("number"))
    try:
        ground = rgb(page.evaluate("getComputedStyle(document.getElementById('map')).backgroundColor"))
        ramp = page.evaluate("(document.querySelector('#legend .sw.ramp') || {}).style?.background || ''")
        labels = page.evaluate("[...document.querySelectorAll('#legend .pill')].map(e => e.textContent)")
        none = page.evaluate("[...document.querySelectorAll('#legend .pill')].filter(e => e.textContent === 'no value')"
                             ".map(e => getComputedStyle(e.querySelector('.sw')).backgroundColor)")
        drawn = _canvas_colours(page)
    finally:
        page.close()
    stops = [rgb(c) for c in ramp.split("rgb")[1:]]
    assert len(stops) >= 2 and labels[0] == "low 0.000 → high 1.000", (ramp, labels)
    assert none and rgb(none[0]) in drawn, labels
    low = [(c, round(contrast(c, ground), 2)) for c in [*stops, rgb(none[0]), *drawn] if contrast(c, ground) < 3]
    assert not low, f"under 3:1 on {ground}: {low}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_histogram_bars_outside_the_range_keep_3_to_1(browser: Any, scheme: str) -> None:
    """Bars outside the chosen range were faded to 25 %: 1.4:1 on the light page, 1.6:1 on the dark one."""
    facet = {"bins": [4, 9, 16, 25, 36, 49, 36, 25, 16, 9, 4, 1], "min": 0.0, "max": 12.0}
    page = browser.new_page(color_scheme=scheme)
    try:
        page.set_content(H.page("Histogram", f'<div class="side">{histogram_svg(facet, 3.0, 8.0)}</div>'))
        ground = rgb(page.evaluate("getComputedStyle(document.body).backgroundColor"))
        style = page.evaluate("""() => { const s = getComputedStyle(document.querySelector('svg.hist rect.out'));
            return [s.fill, s.opacity, s.fillOpacity, s.stroke, s.strokeWidth]; }""")
    finally:
        page.close()
    fill, opacity, fill_opacity, stroke, width = style
    seen = [contrast(blend(rgb(fill), ground, float(opacity) * float(fill_opacity)), ground)]
    if stroke != "none" and float(width.removesuffix("px")) >= 1:
        seen.append(contrast(blend(rgb(stroke), ground, float(opacity)), ground))
    assert max(seen) >= 3, (style, seen)
