"""A curator's path through the UI in Chromium: login, nav entry, grid, filter, tag, sample page, map, compare,
export, the run report's missed goals. Screenshots of each step, light and dark."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote, urlencode

import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import DAG_ID, RUNS, USER, _loaded_images, _shot, _wait

pytestmark = pytest.mark.slow


def test_grid_shows_thumbnails_behind_the_login(page, curation):
    page.goto(curation.base + "/lightly/pools/demo/samples")
    page.wait_for_load_state("networkidle")
    pool = Datapool(curation.pool_uri)
    total = pool.read(columns=[C.KEY]).num_rows
    assert f"{total} samples match" in page.inner_text("body")
    page.eval_on_selector_all(".card img", "els => els.forEach(e => { e.loading = 'eager'; })")  # below the fold too
    _wait(page, "[...document.querySelectorAll('.card img')].every(e => e.complete)")
    widths = _loaded_images(page, ".card img")
    assert len(widths) == 60 and all(w > 0 for w in widths)  # every thumbnail arrived and decoded
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (bg == "rgb(17, 24, 39)") == (page.theme == "dark")
    _shot(page, curation, "grid")


def test_nav_entry_under_browse_opens_the_datapools(page, curation):
    page.goto(curation.base + "/")
    page.get_by_role("button", name=re.compile("Browse")).click()
    page.get_by_role("menuitem", name="Datapools").click()
    frame = page.frame_locator("iframe")
    frame.get_by_role("link", name="demo").first.wait_for(timeout=20_000)
    assert "/plugin/lightly-datapools" in page.url
    _shot(page, curation, "nav")


def test_filter_then_save_as_tag(page, curation):
    page.goto(curation.base + "/lightly/pools/demo/samples")
    page.click("summary:has-text('metadata.source')")
    page.check("input[name='in.metadata.source'][value='photos']")
    page.click("button:has-text('Apply')")
    page.wait_for_load_state("networkidle")
    text = page.inner_text("body")
    n = int(re.search(r"(\d+) samples match", text).group(1))
    rows = Datapool(curation.pool_uri).read(columns=[C.KEY, "metadata.source"])
    assert n == sum(1 for s in rows.column("metadata.source").to_pylist() if s == "photos") > 0
    name = f"photos-{page.theme}"
    page.fill("input[name=name]", name)
    page.click("button:has-text('Save these samples as a tag')")
    page.wait_for_url(re.compile(rf".*/samples\?tag={name}$"))
    assert f"{n} samples match" in page.inner_text("body")
    last = Datapool(curation.pool_uri).history()[-1]
    assert last["operation"] == "tag" and last["tag"] == name and last["selected"] == n
    assert last["counts"]["made_by"] == USER
    _shot(page, curation, "filter-tag")


def test_the_sort_select_stays_narrow_with_long_column_names(page, curation):
    """The "Sort by" select was as wide as the longest column name: capped (ellipsis), each option's whole name in
    its title, whichever column is chosen."""
    page.goto(curation.base + "/lightly/pools/demo/samples")
    names = page.eval_on_selector_all("select[name=sort] option", "os => os.map(o => [o.value, o.title, o.text])")
    assert names and all(v == t == x for v, t, x in names), names
    longest = max((v for v, _, _ in names), key=len)
    assert len(longest) > 30, longest  # a long name, as the pool's scores and predictions have
    for sort in (C.KEY, longest):
        page.goto(curation.base + "/lightly/pools/demo/samples?" + urlencode({"sort": sort}))
        box = page.evaluate("""() => {
            const s = document.querySelector('select[name=sort]'), r = s.getBoundingClientRect();
            const rem = parseFloat(getComputedStyle(document.documentElement).fontSize);
            return {width: r.width, max: 14 * rem, title: s.title, grid: document.querySelector('.grid').getBoundingClientRect().top,
                    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth};
        }""")
        assert box["width"] <= box["max"] + 1 and box["title"] == sort and box["overflow"] <= 0, (sort, box)
    page.wait_for_load_state("networkidle")
    _shot(page, curation, "grid-sort-long")


def test_tick_samples_and_save_them_as_a_tag(page, curation):
    """Check boxes on the grid, "Save the checked samples as a tag": exactly those samples, by the logged-in user."""
    page.goto(curation.base + "/lightly/pools/demo/samples?sort=key")
    keys = [page.inner_text(f".card .cap a >> nth={i}") for i in (1, 4, 6)]
    for i in (1, 4, 6):
        page.check(f".card input[name=sample] >> nth={i}")
    name = f"ticked-{page.theme}"
    page.fill("input[name=name]", name)
    page.click("button:has-text('Save the checked samples as a tag')")
    page.wait_for_url(re.compile(rf".*/samples\?tag={name}$"))
    assert "3 samples match" in page.inner_text("body")
    shown = sorted(page.inner_text(f".card .cap a >> nth={i}") for i in range(3))
    assert shown == sorted(keys)
    last = Datapool(curation.pool_uri).history()[-1]
    assert last["tag"] == name and last["selected"] == 3 and last["counts"]["made_by"] == USER


def test_ticks_survive_the_grid_s_pages_and_are_saved_together(page, curation):
    """Samples ticked on two pages of the grid (and after a re-sort) are saved as one tag; "Check this page" and
    "Clear the checks"; another filter keeps its own ticks."""
    grid = curation.base + "/lightly/pools/demo/samples?sort=key&limit=6"
    page.goto(grid)
    first = [page.inner_text(f".card .cap a >> nth={i}") for i in (0, 2)]
    for i in (0, 2):
        page.check(f".card input[name=sample] >> nth={i}")
    assert page.inner_text("#checkcount") == "2 checked"
    with page.expect_navigation():
        page.click("a[rel=next]")
    assert page.locator(".card input[name=sample]:checked").count() == 0
    assert page.inner_text("#checkcount") == "2 checked (2 on other pages)"
    second = page.inner_text(".card .cap a >> nth=5")
    page.check(".card input[name=sample] >> nth=5")
    assert page.inner_text("#checkcount") == "3 checked (2 on other pages)"
    page.goto(curation.base + "/lightly/pools/demo/samples?sort=key&order=desc&limit=6")  # re-sorted: same samples
    assert page.inner_text("#checkcount").startswith("3 checked")
    page.goto(curation.base + "/lightly/pools/demo/samples?in.status=ok&sort=key&limit=6")  # another filter
    assert page.inner_text("#checkcount") == ""
    page.click("#checkpage")
    assert page.locator(".card input[name=sample]:checked").count() == 6
    assert page.inner_text("#checkcount") == "6 checked"
    page.click("#checkclear")
    assert page.locator(".card input[name=sample]:checked").count() == 0 and page.inner_text("#checkcount") == ""
    page.goto(grid)
    assert [page.is_checked(f".card input[name=sample] >> nth={i}") for i in range(3)] == [True, False, True]
    _shot(page, curation, "ticks")
    name = f"paged-{page.theme}"
    page.fill("input[name=name]", name)
    page.click("button:has-text('Save the checked samples as a tag')")
    page.wait_for_url(re.compile(rf".*/samples\?tag={name}$"))
    assert "3 samples match" in page.inner_text("body")
    assert sorted(page.inner_text(f".card .cap a >> nth={i}") for i in range(3)) == sorted([*first, second])
    page.goto(grid)  # saved: the ticks are done with
    assert page.locator(".card input[name=sample]:checked").count() == 0 and page.inner_text("#checkcount") == ""


def test_arrow_keys_step_through_the_grid_a_sample_was_opened_from(page, curation):
    """A sample opened from a sorted, filtered grid: → and ← follow that grid's order; the size slider and the
    histograms are on the grid."""
    grid = curation.base + "/lightly/pools/demo/samples?in.status=ok&sort=metadata.lightly.sharpness&order=desc"
    page.goto(grid)
    order = [page.inner_text(f".card .cap a >> nth={i}") for i in range(4)]
    assert page.locator("svg.hist").count() >= 5 and page.locator("svg.hist rect").count() % 24 == 0
    page.fill("#cellsize", "90")  # smaller cells: more in a row, kept for the next page
    _wait(page, "getComputedStyle(document.documentElement).getPropertyValue('--cell').trim() === '90px'")
    page.click(".card a.thumb >> nth=1")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("p code >> nth=0") == order[1] and "2 of" in page.inner_text(".walk")
    for key, want in (("ArrowRight", order[2]), ("ArrowRight", order[3]), ("ArrowLeft", order[2])):
        with page.expect_navigation():
            page.keyboard.press(key)
        assert page.inner_text("p code >> nth=0") == want
    _shot(page, curation, "step")
    page.click("a:has-text('back to the grid')")
    page.wait_for_load_state("networkidle")
    assert page.input_value("#cellsize") == "90"


def test_sample_page_shows_image_columns_and_why(page, curation):
    page.goto(curation.base + "/lightly/pools/demo/samples?tag=initial-tag&sort=pick_rank")
    page.click(".card a.thumb >> nth=0")
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert "Why it was picked" in body and "Pick 1 (pick rank 0)" in body
    assert "metadata.lightly.sharpness" in body and "initial-tag" in body
    assert _loaded_images(page, ".figure img")[0] > 0  # the full image, from the datasource
    _shot(page, curation, "sample", full=True)


def test_find_similar_from_a_sample_page(page, curation):
    """The sample page's "Find similar samples": the grid ordered by the distance of the embeddings, the sample
    itself first at 0, each card with its distance, the sort box saying what it is sorted by."""
    page.goto(curation.base + "/lightly/pools/demo/samples?tag=initial-tag&sort=pick_rank")
    page.click(".card a.thumb >> nth=2")
    page.wait_for_load_state("networkidle")
    key = page.inner_text("p code >> nth=0")
    page.click("a:has-text('Find similar samples')")
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert f"Ordered by similarity to {key}, nearest first" in body
    first = page.inner_text(".card .cap >> nth=0")
    assert first.startswith(key) and "distance 0" in first
    distances = [float(m) for m in re.findall(r"distance ([0-9.]+)", page.inner_text(".grid"))]
    assert len(distances) == 60 and distances == sorted(distances) and distances[1] > 0
    assert page.eval_on_selector("select[name=sort]", "s => s.options[s.selectedIndex].text") == f"similarity to {key}"
    page.eval_on_selector_all(".card img", "els => els.forEach(e => { e.loading = 'eager'; })")
    _wait(page, "[...document.querySelectorAll('.card img')].every(e => e.complete)")
    assert all(w > 0 for w in _loaded_images(page, ".card img")[:12])
    _shot(page, curation, "similar")


def test_map_hover_click_and_lasso_tag(page, curation):
    page.goto(curation.base + "/lightly/pools/demo/map?color=metadata.source")
    _wait(page, "document.getElementById('mapstatus').textContent.startsWith('Showing')")
    box = page.locator("#map").bounding_box()
    hovered = False
    for gy in range(8, int(box["height"]) - 8, 9):
        for gx in range(8, int(box["width"]) - 8, 9):
            page.mouse.move(box["x"] + gx, box["y"] + gy)
            if page.is_visible("#hover"):
                hovered = True
                break
        if hovered:
            break
    assert hovered, "no point answered the mouse"
    _wait(page, "document.querySelector('#hover img') && document.querySelector('#hover img').naturalWidth > 0")
    # the caption: the point's key (its file name) and its value of the colouring, not a cut sample id
    caption = page.inner_text("#hover")
    keys = {r[C.KEY] for r in Datapool(curation.pool_uri).read(columns=[C.KEY]).to_pylist()}
    key, value = caption.split("\n")[:2]
    assert key in keys and "…" not in caption, caption
    assert re.fullmatch(r"metadata\.source: (digits|photos)", value), caption
    _shot(page, curation, "map-hover")
    # Lasso around the middle of the map.
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    path = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8), (0.21, 0.21)]
    page.mouse.move(x0 + w * path[0][0], y0 + h * path[0][1])
    page.mouse.down()
    for px, py in path[1:]:
        page.mouse.move(x0 + w * px, y0 + h * py, steps=8)
    page.mouse.up()
    assert "drawn points are inside" in page.inner_text("#selinfo")
    _shot(page, curation, "map-lasso")
    name = f"lasso-{page.theme}"
    page.fill("input[name=name]", name)
    page.click("#savesel")
    page.wait_for_url(re.compile(rf".*/samples\?tag={name}$"))
    assert int(re.search(r"(\d+) samples match", page.inner_text("body")).group(1)) > 0
    # Click a point: the sample page opens.
    page.goto(curation.base + "/lightly/pools/demo/map?color=selected")
    _wait(page, "document.getElementById('mapstatus').textContent.startsWith('Showing')")
    _shot(page, curation, "map")
    for gy in range(8, int(box["height"]) - 8, 9):
        for gx in range(8, int(box["width"]) - 8, 9):
            page.mouse.move(box["x"] + gx, box["y"] + gy)
            if page.is_visible("#hover"):
                page.mouse.click(box["x"] + gx, box["y"] + gy)
                page.wait_for_url(re.compile(r".*/samples/[0-9a-f]{32}.*"))
                assert "Why it was picked" in page.inner_text("body")
                return
    raise AssertionError("no point to click")


def test_compare_and_export(page, curation):
    tags = [t["tag"] for t in Datapool(curation.pool_uri).history() if t.get("run_id")]
    q = "&".join(f"tag={quote(t)}" for t in tags[:2])
    page.goto(f"{curation.base}/lightly/pools/demo/compare?{q}&column=metadata.lightly.sharpness")
    body = page.inner_text("body")
    assert "Overlap" in body and "clipped" in body
    _shot(page, curation, "compare", full=True)
    page.goto(f"{curation.base}/lightly/pools/demo/samples?tag={quote(tags[0])}")
    with page.expect_download() as got:
        page.click("a:has-text('CSV')")
    rows = list(csv.DictReader(io.StringIO(got.value.path().read_text())))
    assert len(rows) == 16 and rows[0]["uri"].endswith(rows[0]["key"]) and rows[0]["pick_rank"] == "0"


def test_run_tab_report_flags_missed_goals(page, curation):
    page.goto(f"{curation.base}/lightly/runs/{DAG_ID}/{quote(RUNS[0], safe='')}")
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert "Missed goals" in body and "photos" in body and "scores.digits.uncertainty_margin" in body
    _shot(page, curation, "report", full=True)
    page.click("a:has-text(\"this run's samples\")")
    page.wait_for_load_state("networkidle")
    assert "samples match" in page.inner_text("body") and "scheduled-2026-03-01-00:00" in page.url.replace("%3A", ":")
