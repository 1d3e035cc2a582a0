"""Box colours and the map's selected/not colouring in Debian's Chromium, as a reader sees them: the sample page's
box labels are 4.5:1 on their halo over any picture (WCAG 1.4.3), its task colours stay apart for deuteranopia and
protanopia and the page names which colour is which task; the map coloured by selected/not draws the report's
colours (report/plots.py GROUP_COLOURS: not selected grey, earlier selected blue, selected vermillion; a lighter
blue on the dark theme) whatever the groups' sizes, the selected on top. No api-server: pages.py's markup and map.js, the map's JSON
answered by Playwright (seconds)."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from colour_vision import VISIONS, blend, chromium, contrast, distance, rgb
from PIL import Image

from browser.test_chart_contrast_ui import _canvas_colours, _open_map
from lightly_airflow import columns as C
from lightly_airflow.plugins import html as H
from lightly_airflow.plugins.pages import _boxes_svg, page_colours, task_legend
from lightly_airflow.report.plots import GROUP_COLOURS

TASKS = ["cars", "dogs", "faces", "people", "signs", "trees"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _objects() -> list[dict[str, Any]]:
    """Two objects of each of six tasks on a 600x400 picture, the first of each selected."""
    return [{C.KEY: f"img.png#{t}{j}", C.OBJECT_TASK: t, C.OBJECT_CATEGORY: t[:-1], C.OBJECT_INDEX: 2 * i + j,
             C.OBJECT_SELECTED: j == 0, C.OBJECT_BBOX: [10 + 95 * i, 60 + 170 * j, 80, 100]}
            for i, t in enumerate(TASKS) for j in range(2)]


def _sample_figure(ground: tuple[int, int, int]) -> str:
    """The sample page's figure (a picture of one colour, its boxes) and its objects' task legend."""
    buf = io.BytesIO()
    Image.new("RGB", (600, 400), ground).save(buf, format="PNG")
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    predicted = [{"bbox": [20, 330, 60, 40], "category": "cat", "score": 0.9}]
    colours = page_colours((), _objects(), predicted)
    return (f'<div class="figure"><img src="{src}" alt="picture">{_boxes_svg(600, 400, predicted, _objects(), None, colours)}'
            f'</div><p class="muted">{task_legend((o[C.OBJECT_TASK] for o in _objects()), colours)}</p>')


@pytest.mark.parametrize("ground", [(0, 0, 0), (255, 255, 255), (128, 128, 128)])
def test_box_labels_are_4_5_to_1_on_their_halo_over_any_picture(browser: Any, ground: tuple[int, int, int]) -> None:
    """Before: the labels' halo was 80 % white (a grey #ccc over a black picture): the orange #f97316 was 2.8:1 on
    white and 1.8:1 there; the predicted boxes' labels had no halo at all (1.3:1 for the orange over white)."""
    page = browser.new_page(viewport={"width": 900, "height": 800})
    try:
        page.set_content(H.page("Sample", _sample_figure(ground)))
        labels = page.evaluate("""[...document.querySelectorAll('.figure svg text')].map(t => { const s =
            getComputedStyle(t); return [t.textContent, s.fill, s.stroke, s.strokeOpacity, s.paintOrder]; })""")
    finally:
        page.close()
    assert len(labels) == 13
    low = []
    for text, fill, stroke, opacity, order in labels:
        halo = blend(rgb(stroke), ground, float(opacity)) if stroke != "none" and order.startswith("stroke") else ground
        if contrast(rgb(fill), halo) < 4.5:
            low.append((text, fill, round(contrast(rgb(fill), halo), 2)))
    assert not low, f"labels under 4.5:1 on their halo over {ground}: {low}"


def test_task_colours_stay_apart_and_the_page_says_which_is_which(browser: Any) -> None:
    """Before: blue #2563eb and purple #9333ea were 5.3 apart (CIE76) for deuteranopia, and the page listed the
    tasks without saying which colour is which."""
    page = browser.new_page(viewport={"width": 900, "height": 800})
    try:
        page.set_content(H.page("Sample", _sample_figure((255, 255, 255))))
        boxes = page.evaluate("""[...document.querySelectorAll('.figure svg rect.obj')].map(r =>
            [r.querySelector('title').textContent, getComputedStyle(r).stroke])""")
        legend = page.evaluate("""[...document.querySelectorAll('p .task')].map(e =>
            [e.textContent, getComputedStyle(e.querySelector('.sw')).backgroundColor])""")
    finally:
        page.close()
    by_task = {title.split(": ")[1].split(" · ")[0]: rgb(stroke) for title, stroke in boxes}
    assert {task: rgb(c) for task, c in legend} == by_task and list(by_task) == TASKS
    for name, vision in VISIONS.items():
        close = [(a, b, round(distance(by_task[a], by_task[b], vision), 1))
                 for a, b in itertools.combinations(TASKS, 2) if distance(by_task[a], by_task[b], vision) < 20]
        assert not close, f"{name}: {close}"



def _selected_map() -> dict[str, Any]:
    """A run's map by selected/not as ``View.map`` sends it: 60 not selected, 12 selected by earlier runs, 6 selected
    in this run, each of those drawn over a not-selected point at the same place (sent before it)."""
    groups = [2] * 6 + [1] * 12 + [0] * 60
    xs = [i % 12 for i in range(78)]
    ys = [i // 12 for i in range(78)]
    xs[18:24], ys[18:24] = xs[:6], ys[:6]  # (the first 6 not-selected points lie where the selected ones are)
    return {"total": 78, "shown": 78, "bounds": [-1, 12, -1, 7], "bins": 8, "density": [], "color": "selected",
            "legend_kind": "category", "groups": [0, 1, 2],
            "legend": [["not selected", 60], ["selected by earlier runs", 12], ["selected in this run", 6]],
            "points": {"id": [f"{i:08x}" for i in range(78)], "x": xs, "y": ys, "c": groups,
                       "key": [f"k{i}" for i in range(78)]}}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_map_by_selected_draws_the_report_s_colours_selected_on_top(browser: Any, scheme: str) -> None:
    """Before: the legend's order (by size) chose the colour, so "not selected" was blue (#0072b2 light, #56b4e9
    dark), the report's colour of "selected by earlier runs", and a selected point sent before a not-selected one
    at its place was hidden under it."""
    data = _selected_map()
    page = _open_map(browser, scheme, data)
    try:
        swatches = page.evaluate("""[...document.querySelectorAll('#legend .pill')].map(e =>
            [e.textContent, getComputedStyle(e.querySelector('.sw')).backgroundColor])""")
        drawn = _canvas_colours(page)
        ground = rgb(page.evaluate("getComputedStyle(document.getElementById('map')).backgroundColor"))
        centre = page.evaluate("""() => { const c = document.getElementById('map'), r = c.getBoundingClientRect(),
            d = window.devicePixelRatio || 1, x = Math.round((0 + 1) / 13 * r.width * d),
            y = Math.round((1 - (0 + 1) / 8) * r.height * d);
            return [...c.getContext('2d').getImageData(x, y, 1, 1).data].slice(0, 3).join(','); }""")
    finally:
        page.close()
    grey, blue, vermillion = (rgb(c) for c in GROUP_COLOURS)
    names = [t for t, _ in swatches]
    colours = [rgb(c) for _, c in swatches]
    assert names == ["not selected (60)", "selected by earlier runs (12)", "selected in this run (6)"]
    assert colours[0] == grey and colours[2] == vermillion
    # (the dark theme's blue is a lighter blue: the report's was 3.1:1 on the dark ground)
    assert colours[1] == blue if scheme == "light" else colours[1][2] > max(colours[1][:2])
    assert set(colours) <= drawn
    assert tuple(float(v) for v in centre.split(",")) == vermillion, "the selected point is drawn on top"
    low = [(c, round(contrast(c, ground), 2)) for c in colours if contrast(c, ground) < 3]
    assert not low, f"under 3:1 on {ground}: {low}"
    for name, vision in VISIONS.items():
        assert min(distance(a, b, vision) for a, b in itertools.combinations(colours, 2)) > 30, name
