"""Objects in Chromium: an image's sample page draws its objects over the image and lists their crops, an
object's page shows its crop and links its image, the grid shows images (default) or objects with filters.
Screenshots of each step, light and dark."""

from __future__ import annotations

import re

import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import Curation, _loaded_images, _shot, _wait

pytestmark = pytest.mark.slow


def _pool_rows(curation: Curation):
    rows = Datapool(curation.objects.uri).read()
    return rows.filter(pc.is_null(rows.column(C.PARENT_KEY))), rows.filter(pc.is_valid(rows.column(C.PARENT_KEY)))


def test_image_page_draws_objects_and_lists_crops(page, curation):
    images, objects = _pool_rows(curation)
    # The first pick of the first object-level run: an image whose objects are all selected.
    page.goto(curation.base + "/lightly/pools/objects/samples?tag=initial-tag&sort=pick_rank")
    page.click(".card a.thumb >> nth=0")
    page.wait_for_load_state("networkidle")
    key = page.locator("p > code").first.inner_text()
    mine = objects.filter(pc.equal(objects.column(C.PARENT_KEY), key)).to_pylist()
    mine = [o for o in mine if o[C.OBJECT_SELECTED]]
    assert mine, key
    assert f"Objects ({len(mine)}, {len(mine)} selected)" in page.inner_text("body")
    # The boxes are drawn where the objects are: each rect's on-screen box over the image, scaled.
    img = page.locator(".figure img").bounding_box()
    assert _loaded_images(page, ".figure img")[0] > 0
    natural = page.evaluate("document.querySelector('.figure img').naturalWidth")
    scale = img["width"] / natural
    rects = page.locator(".figure svg rect.obj")
    assert rects.count() == len(mine)
    by_box = {tuple(o[C.OBJECT_BBOX]): o for o in mine}
    for i in range(rects.count()):
        r = rects.nth(i).bounding_box()
        x, y = (r["x"] - img["x"]) / scale, (r["y"] - img["y"]) / scale
        near = min(by_box, key=lambda b: abs(b[0] - x) + abs(b[1] - y))
        assert abs(near[0] - x) < 2.5 and abs(near[1] - y) < 2.5 and abs(near[2] - r["width"] / scale) < 3
    labels = page.locator(".figure svg text").all_text_contents()
    assert all(t.startswith("✓ #") for t in labels) and len(labels) == len(mine)
    # The crops: one card per object, each thumbnail loaded (made by the run's object pass).
    page.eval_on_selector_all(".grid.objects img", "els => els.forEach(e => { e.loading = 'eager'; })")
    _wait(page, "[...document.querySelectorAll('.grid.objects img')].every(e => e.complete)")
    widths = _loaded_images(page, ".grid.objects img")
    assert len(widths) == len(mine) and all(w > 0 for w in widths)
    assert page.locator(".grid.objects .card.obj.sel").count() == len(mine)
    _shot(page, curation, "objects-sample", full=True)
    # A click on a box opens the object's page: its crop, its image linked.
    page.locator(".figure svg rect.obj").first.click()
    page.wait_for_url(re.compile(r".*/samples/[0-9a-f]{32}.*"))
    body = page.inner_text("body")
    assert "Object of image" in body and key in body and "Selected: its run picked its image" in body
    assert _loaded_images(page, ".figure.crop img")[0] > 0
    _shot(page, curation, "objects-object", full=True)
    object_url = page.url
    # "Find similar objects": the objects' grid ordered by the crops' embeddings, this object first at 0.
    page.click("a:has-text('Find similar objects')")
    page.wait_for_load_state("networkidle")
    assert "objects match" in page.inner_text("body") and "Ordered by similarity to" in page.inner_text("body")
    assert "distance 0" in page.inner_text(".card .cap >> nth=0")
    _shot(page, curation, "objects-similar")
    page.goto(object_url)
    page.click(f"a:has-text('{key}')")
    page.wait_for_load_state("networkidle")
    assert "Why it was picked" in page.inner_text("body")


def test_grid_shows_images_by_default_and_objects_on_request(page, curation):
    images, objects = _pool_rows(curation)
    page.goto(curation.base + "/lightly/pools/objects/samples")
    page.wait_for_load_state("networkidle")
    assert f"{images.num_rows} samples match" in page.inner_text("body")
    assert page.locator(".card").count() == images.num_rows
    page.select_option("select[name=show]", "objects")
    page.click("button:has-text('Apply')")
    page.wait_for_load_state("networkidle")
    assert f"{objects.num_rows} objects match" in page.inner_text("body")
    page.eval_on_selector_all(".card img", "els => els.forEach(e => { e.loading = 'eager'; })")
    _wait(page, "[...document.querySelectorAll('.card img')].every(e => e.complete)")
    widths = _loaded_images(page, ".card img")
    assert len(widths) == objects.num_rows and all(w > 0 for w in widths)
    selected = int(pc.sum(objects.column(C.OBJECT_SELECTED)).as_py())
    assert page.locator(".card.obj.sel").count() == selected
    _shot(page, curation, "objects-grid", full=True)
    # Filter the objects by category: the count is the pool's.
    cats = objects.column(C.OBJECT_CATEGORY).to_pylist()
    common = max(set(cats), key=cats.count)
    page.click("summary:has-text('object_category')")
    page.check(f"input[name='in.object_category'][value='{common}']")
    page.click("button:has-text('Apply')")
    page.wait_for_load_state("networkidle")
    assert f"{cats.count(common)} objects match" in page.inner_text("body")
    assert all(common in c for c in page.locator(".card .cap").all_inner_texts())
    _shot(page, curation, "objects-filter")
    # Back to images: images only again.
    page.select_option("select[name=show]", "images")
    page.click("a:has-text('clear')")
    page.wait_for_load_state("networkidle")
    assert f"{images.num_rows} samples match" in page.inner_text("body")
