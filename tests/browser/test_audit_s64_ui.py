"""A sample's page at 400 px (a phone), light and dark: its "Versions of this sample" table, whose run ids wrap
and still left it 22 px wider than the page, scrolls on its own (no sideways scrolling of the whole page).
Screenshots, narrow (400 px) and wide (1360 px), of the pages the session-64 audit changed: ``s64-home``,
``s64-sample``, ``s64-empty-grid``, ``s64-no-objects``."""

from __future__ import annotations

import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import Curation, _shot
from .test_narrow_ui import _overflow

pytestmark = pytest.mark.slow


def test_a_samples_page_fits_400_px(page, curation: Curation):
    demo = Datapool(curation.pool_uri).read(columns=[C.SAMPLE_ID, C.PICK_RANK]).to_pylist()
    picked = next(r for r in demo if r[C.PICK_RANK] == 0)
    base = f"{curation.base}/lightly"
    pages = [("s64-sample", f"{base}/pools/demo/samples/{picked[C.SAMPLE_ID]}"), ("s64-home", f"{base}/"),
             ("s64-empty-grid", f"{base}/pools/demo/samples?lo.{C.SIZE}=1e15"),
             ("s64-no-objects", f"{base}/pools/demo/samples?show=objects")]
    try:
        for width in (400, 1360):
            page.set_viewport_size({"width": width, "height": 900})
            for name, url in pages:
                page.goto(url)
                page.wait_for_load_state("networkidle")
                assert _overflow(page) <= 0, (name, width, _overflow(page))
                _shot(page, curation, f"{name}-{width}", full=True)
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})
