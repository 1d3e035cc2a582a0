"""A narrow window (480 px, a phone or a side panel), light and dark: the datapool page, the grid, a sample's page, a
frame's page and an object's page fit its width (no sideways scrolling of the whole page: long etags and run ids
wrap, the datapool's wide tables scroll on their own), and no number is cut across lines. Screenshots
``narrow-pool``, ``narrow-sample``, ``narrow-frame``, ``narrow-object``."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import Curation, _broken_images, _shot
from .test_video_objects_ui import _cut_inside_words, _tokens_whole

pytestmark = pytest.mark.slow


def _overflow(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")


def _numbers_cut(page) -> list[str]:
    """Table cells holding one number (``0.8117``) that the browser drew on more than one line."""
    return page.evaluate(r"""() => [...document.querySelectorAll('td')]
        .filter(td => /^-?[\d.e+-]+$/.test(td.textContent.trim()) && td.firstChild
                && (() => { const r = document.createRange(); r.selectNodeContents(td);
                            return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size > 1; })())
        .map(td => td.textContent.trim())""")


def test_pages_fit_a_narrow_window(page, curation: Curation):
    demo = Datapool(curation.pool_uri).read(columns=[C.SAMPLE_ID, C.PICK_RANK]).to_pylist()
    picked = next(r for r in demo if r[C.PICK_RANK] == 0)
    video = Datapool(curation.video.uri).read()
    frames = video.filter(pc.is_null(video.column(C.PARENT_KEY)))
    frame = frames.filter(pc.fill_null(frames.column(C.SELECTED), False)).to_pylist()[0]
    obj = video.filter(pc.is_valid(video.column(C.PARENT_KEY))).to_pylist()[0]
    base = f"{curation.base}/lightly/pools"
    pages = [("narrow-pool", f"{base}/demo"), ("narrow-grid", f"{base}/demo/samples"),
             ("narrow-sample", f"{base}/demo/samples/{picked[C.SAMPLE_ID]}"),
             ("narrow-frame", f"{base}/video/samples/{frame[C.SAMPLE_ID]}"),
             ("narrow-object", f"{base}/video/samples/{obj[C.SAMPLE_ID]}"),
             ("narrow-objects-grid", f"{base}/video/samples?show=objects"),
             ("narrow-map", f"{base}/demo/map"), ("narrow-compare", f"{base}/demo/compare")]
    page.set_viewport_size({"width": 480, "height": 900})
    try:
        for name, url in pages:
            page.goto(url)
            page.wait_for_load_state("networkidle")
            assert _overflow(page) <= 0, (name, _overflow(page))
            assert _numbers_cut(page) == [], name
            assert _tokens_whole(page, ".side td code") == [], name
            # column names (``status_reason``, ``commit_version``) wrap after their ``.`` and ``_``, not inside a word
            assert _cut_inside_words(page, "h2 + table td:first-child, .side td:first-child") == [], name
            assert _broken_images(page) == [], name
            _shot(page, curation, name, full=True)
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})
