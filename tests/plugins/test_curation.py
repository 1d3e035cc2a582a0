"""The curation pages on a real datapool: grid, filters, sample page, thumbnails, images, map, tags, compare, export.

Airflow's auth checks are overridden here (``client``); ``test_auth.py`` keeps them real for every route.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np
import pyarrow.compute as pc
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool, sample_id
from lightly_airflow.plugins import html as H
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.media import MediaError, safe_key
from lightly_airflow.plugins.query import Scope, View, parse_scope, points_in_polygon

from .conftest import EVIL_KEY, EVIL_NOTE, RUN_1, RUN_2, PoolFixture
from .test_app import links

LUM = C.lightly_metadata_column("luminance")


def _all(pool: PoolFixture):
    return Datapool(pool.uri).read()


def _ids(client, url: str) -> list[str]:
    return [i["sample_id"] for i in client.get(url).json()["items"]]


# ------------------------------------------------------------------------------------------------ grid
def test_grid_counts_sorts_and_pages_every_sample(client, configured):
    rows = _all(configured)
    r = client.get("/lightly/api/pools/main/samples?sort=metadata.lightly.luminance&order=desc&limit=7")
    body = r.json()
    assert r.status_code == 200 and body["total"] == rows.num_rows == 100
    lum = rows.column(LUM).to_numpy()
    order = np.argsort(-lum, kind="stable")
    want = [rows.column(C.SAMPLE_ID)[int(i)].as_py() for i in order[:7]]
    assert [i["sample_id"] for i in body["items"]] == want
    assert [i["value"] for i in body["items"]] == sorted(lum, reverse=True)[:7]
    page2 = _ids(client, "/lightly/api/pools/main/samples?sort=metadata.lightly.luminance&order=desc&limit=7&offset=7")
    assert page2 == [rows.column(C.SAMPLE_ID)[int(i)].as_py() for i in order[7:14]]


def test_tag_grid_is_in_pick_order_with_thumbnails(client, configured):
    html = client.get(f"/lightly/pools/main/samples?tag={RUN_2.replace(':', '-').replace('+', '-')}")
    assert html.status_code == 404  # a run's id is not its tag name
    r = client.get("/lightly/pools/main/samples?tag=batch-2")
    assert r.status_code == 200
    page = links(r.text)
    thumbs = [s for s in page.imgs if "/thumbnails/" in s]
    assert len(thumbs) == len(configured.picks_2) == 3
    keys = [i["key"] for i in client.get("/lightly/api/pools/main/samples?tag=batch-2").json()["items"]]
    assert keys == configured.picks_2  # default sort of a tag: pick rank


def test_filters_ranges_categories_tag_and_run_combine(client, configured):
    rows = _all(configured)
    lum = rows.column(LUM).to_numpy()
    lo, hi = float(np.quantile(lum, 0.25)), float(np.quantile(lum, 0.8))
    want = {
        s for s, v, st in zip(rows.column(C.SAMPLE_ID).to_pylist(), lum, rows.column(C.STATUS).to_pylist())
        if lo <= v <= hi and st == "ok"
    }
    url = f"/lightly/api/pools/main/samples?lo.{LUM}={lo!r}&hi.{LUM}={hi!r}&in.status=ok&limit=1000"
    body = client.get(url).json()
    assert body["total"] == len(want) and {i["sample_id"] for i in body["items"]} == want
    run1 = client.get(f"/lightly/api/pools/main/samples?run={quote(RUN_1)}&in.selected=true").json()
    assert run1["total"] == len(configured.picks_1)
    # A bad column or value is a 400 that names it, never SQL.
    bad = client.get('/lightly/api/pools/main/samples?lo.key"%3B drop=1')
    assert bad.status_code == 400 and "Cannot filter" in bad.json()["detail"]
    assert client.get(f"/lightly/api/pools/main/samples?lo.{LUM}=abc").status_code == 400
    assert client.get("/lightly/api/pools/main/samples?sort=embedding").status_code == 400
    # More values than an SQL IN list may take (a long one crashes DataFusion, so the server's process): a 400.
    many = client.get("/lightly/api/pools/main/samples?" + "&".join(f"in.status=s{i}" for i in range(1001)))
    assert many.status_code == 400 and "by 1001 values: at most 1000" in many.json()["detail"]
    ok = client.get("/lightly/api/pools/main/samples?" + "&".join(f"in.status=s{i}" for i in range(999))
                    + "&in.status=ok").json()
    assert ok["total"] == rows.column(C.STATUS).to_pylist().count("ok") > len(want)


def test_time_travel_shows_the_pool_as_it_was(client, configured):
    v1 = client.get("/lightly/api/pools/main/samples?version=1").json()
    assert v1["version"] == 1 and v1["total"] == configured.n_1
    assert client.get("/lightly/api/pools/main/samples?version=1&tag=batch-2").status_code == 404
    assert client.get("/lightly/api/pools/main/samples?version=99").status_code == 400


def test_facets_give_ranges_and_categories(client, configured):
    facets = client.get("/lightly/api/pools/main/facets").json()["facets"]
    assert facets[LUM]["kind"] == "number"
    assert dict(facets["status"]["values"]) == {"ok": 98, "corrupt": 2}
    assert "metadata.note" in facets and C.KEY not in facets and C.EMBEDDING not in facets



def test_numeric_facets_carry_a_histogram_the_filter_panel_draws(client, configured):
    from lightly_airflow.plugins.query import HISTOGRAM_BINS

    facets = client.get("/lightly/api/pools/main/facets").json()["facets"]
    lum = _all(configured).column(LUM).to_numpy(zero_copy_only=False)
    lum = lum[~np.isnan(lum)]
    want, _ = np.histogram(lum, bins=HISTOGRAM_BINS, range=(lum.min(), lum.max()))  # (the last bin holds the max)
    assert facets[LUM]["bins"] == want.tolist() and sum(facets[LUM]["bins"]) == len(lum)
    assert all(len(f["bins"]) == HISTOGRAM_BINS for f in facets.values() if f["kind"] == "number" and "bins" in f)
    # The panel draws it: a bar per bin with its range and count; bars outside the chosen range are faded
    cut = float(np.median(lum))
    page = client.get(f"/lightly/pools/main/samples?lo.{LUM}={cut!r}").text
    svg = page[page.index(f'title="{LUM}"'):][:6000]
    svg = svg[svg.index('<svg class="hist"'):svg.index("</svg>")]
    assert svg.count("<rect") == HISTOGRAM_BINS and f": {max(want):,}</title>" in svg
    edges = np.linspace(lum.min(), lum.max(), HISTOGRAM_BINS + 1)
    assert svg.count('class="out"') == int((edges[1:] < cut).sum())


# ------------------------------------------------------------------------------------------------ escaping
def test_html_in_keys_and_metadata_is_escaped_everywhere(client, configured):
    rows = _all(configured)
    evil = rows.filter(pc.equal(rows.column(C.KEY), EVIL_KEY)).to_pylist()[0]
    pages = [
        client.get("/lightly/pools/main/samples?limit=100").text,
        client.get(f"/lightly/pools/main/samples/{evil[C.SAMPLE_ID]}").text,
        client.get("/lightly/pools/main/samples?in.metadata.note=" + EVIL_NOTE).text,
        client.get("/lightly/pools/main/map?color=metadata.note").text,
        client.get("/lightly/pools/main/compare?tag=initial-tag&tag=batch-2&column=metadata.note").text,
    ]
    for text in pages:
        assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in pages[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[2]


# ------------------------------------------------------------------------------------------------ sample
def test_sample_page_shows_every_column_its_tags_and_why(client, configured):
    rows = _all(configured)
    first_pick = rows.filter(pc.equal(rows.column(C.KEY), configured.picks_1[1])).to_pylist()[0]
    r = client.get(f"/lightly/pools/main/samples/{first_pick[C.SAMPLE_ID]}")
    assert r.status_code == 200
    for column in (LUM, C.ETAG, C.CONTENT_HASH, C.STATUS, C.RUN_ID, "metadata.note", C.LAYOUT_X):
        assert f'<td class="name">{H.breakable(column)}</td>' in r.text, column
    assert "Pick <b>2</b> (pick rank 1)" in r.text
    assert "initial-tag" in r.text and "64 dimensions, norm 1.0000" in r.text
    assert "changed after this sample was processed" not in r.text and "could not be checked" not in r.text
    page = links(r.text)
    assert any(s.endswith(f"/samples/{first_pick[C.SAMPLE_ID]}/image?version=2") for s in page.imgs)
    # "picked just before/after" link to its neighbours in pick order
    before = rows.filter(pc.equal(rows.column(C.KEY), configured.picks_1[0])).column(C.SAMPLE_ID)[0].as_py()
    assert any(before in h for h in page.hrefs)
    api = client.get(f"/lightly/api/pools/main/samples/{first_pick[C.SAMPLE_ID]}").json()
    assert api["rows"][0][C.PICK_RANK] == 1 and api["neighbours"]["before"][C.KEY] == configured.picks_1[0]


def test_corrupt_sample_says_why(client, configured):
    rows = _all(configured)
    bad = rows.filter(pc.equal(rows.column(C.STATUS), "corrupt")).to_pylist()[0]
    r = client.get(f"/lightly/pools/main/samples/{bad[C.SAMPLE_ID]}")
    assert "Status <b>corrupt</b>: cannot decode" in r.text and "Not a candidate" in r.text


@pytest.mark.parametrize("sid", ["0" * 32, "xyz", "..%2F..%2Fetc", "0" * 31])
def test_unknown_or_malformed_sample_ids_are_404(client, sid):
    assert client.get(f"/lightly/pools/main/samples/{sid}").status_code == 404
    assert client.get(f"/lightly/pools/main/thumbnails/{sid}").status_code in (404, 200)


# ------------------------------------------------------------------------------------------------ pictures
def test_thumbnails_and_full_images_are_served_from_pool_and_datasource(client, configured):
    rows = _all(configured)
    row = rows.filter(pc.equal(rows.column(C.RUN_ID), RUN_1)).to_pylist()[0]
    thumb = client.get(f"/lightly/pools/main/thumbnails/{row[C.SAMPLE_ID]}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 64)
    image = client.get(f"/lightly/pools/main/samples/{row[C.SAMPLE_ID]}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == (configured.source / row[C.KEY]).read_bytes()
    # Run 2 wrote no thumbnails and recorded no datasource: a placeholder, and a 404 that says why.
    row2 = rows.filter(pc.equal(rows.column(C.RUN_ID), RUN_2)).to_pylist()[0]
    missing = client.get(f"/lightly/pools/main/thumbnails/{row2[C.SAMPLE_ID]}")
    assert missing.headers["x-lightly-thumbnail"] == "missing" and missing.headers["content-type"] == "image/svg+xml"
    nosrc = client.get(f"/lightly/pools/main/samples/{row2[C.SAMPLE_ID]}/image")
    assert nosrc.status_code == 404 and "recorded no datasource" in nosrc.text


@pytest.mark.parametrize("key", ["../secret.png", "/etc/passwd", "a/../../b.png", "a//b.png", "a\\..\\b", ""])
def test_keys_that_leave_the_datasource_are_refused(key):
    with pytest.raises(MediaError):
        safe_key(key)


# ------------------------------------------------------------------------------------------------ map
def test_map_payload_counts_every_point_and_samples_at_most_the_limit(configured):
    view = View(PoolSpec("main", configured.uri))
    full = view.map(Scope(), color="selected")
    assert full["total"] == 98 and full["shown"] == 98  # the two corrupt rows have no embedding, no position
    assert sum(full["density"]) == 98 and len(full["density"]) == full["bins"] ** 2
    assert {k for k, _ in full["legend"]} == {"selected", "not selected"}
    few = view.map(Scope(), color=LUM, max_points=20)
    assert 1 <= few["shown"] <= 20 and few["total"] == 98 and few["legend_kind"] == "number"
    assert set(few["points"]["id"]) <= set(full["points"]["id"])
    again = view.map(Scope(), color=LUM, max_points=20)
    assert again["points"]["id"] == few["points"]["id"]  # deterministic
    tag = view.map(Scope(tag="batch-2"), color="tag:batch-2")
    assert tag["total"] == 3


def test_map_points_carry_their_key_and_colour_value_for_the_hover_caption(configured):
    """The hover caption shows a point's key (its file name) and the value the map is coloured by, not the first
    characters of its sample id: the payload sends both per point (the script sets them as text)."""
    rows = {r[C.SAMPLE_ID]: r for r in _all(configured).to_pylist()}
    view = View(PoolSpec("main", configured.uri))
    for color in (LUM, "metadata.note", "selected"):
        got = view.map(Scope(), color=color)
        points = got["points"]
        # (a category's value is its legend entry's name, unless the legend lumps some into "other")
        values = points.get("value") or [got["legend"][c][0] for c in points["c"]]
        assert len(points["key"]) == len(values) == len(points["id"]) == got["shown"] > 0
        for sid, key, value, code in zip(points["id"], points["key"], values, points["c"], strict=True):
            row = rows[sid]
            assert key == row[C.KEY]
            if color == LUM:
                assert value == pytest.approx(row[LUM], rel=1e-5)
            elif color == "selected":
                assert value == ("selected" if row[C.SELECTED] else "not selected") == got["legend"][code][0]
            else:
                assert value == row["metadata.note"]  # (EVIL_NOTE among them: the script sets it as text)
        assert ("value" in points) == (got["legend_kind"] == "number" or got["legend"][-1][0] == "other")
    many = view.map(Scope(), color=C.KEY)  # more than 11 values: the lumped ones are sent per point
    assert many["legend"][-1][0] == "other" and many["points"]["value"] == many["points"]["key"]


def test_map_page_loads_its_script_and_payload(client):
    r = client.get("/lightly/pools/main/map?color=run")
    assert r.status_code == 200 and '<script src="/lightly/static/map.js" defer></script>' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    js = client.get("/lightly/static/map.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/lightly/static/..%2Fapp.py").status_code == 404
    api = client.get("/lightly/api/pools/main/map?color=run").json()
    assert {k for k, _ in api["legend"]} == {RUN_1, RUN_2}


def test_points_in_polygon():
    x, y = np.array([0.2, 2.0, 0.9, 0.5]), np.array([0.2, 0.5, 0.9, -0.5])
    tri = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    assert points_in_polygon(x, y, tri).tolist() == [True, False, False, False]
    square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    assert points_in_polygon(x, y, square).tolist() == [True, False, True, False]


# ------------------------------------------------------------------------------------------------ tags
@pytest.fixture
def writable(configured: PoolFixture, tmp_path: Path, monkeypatch) -> PoolFixture:
    """A copy of the pool that tests may commit tags to."""
    path = tmp_path / "pool"
    shutil.copytree(configured.path, path)
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps({"main": {"uri": f"file://{path}"}}))
    return PoolFixture(f"file://{path}", path, configured.picks_1, configured.picks_2, 60, 40, configured.source)


def test_a_filter_becomes_a_tag_in_a_new_version(client, writable):
    pool = Datapool(writable.uri)
    before = pool.version()
    rows = pool.read()
    lum = rows.column(LUM).to_numpy()
    cut = float(np.median(lum))
    want = {s for s, v in zip(rows.column(C.SAMPLE_ID).to_pylist(), lum) if v >= cut}
    r = client.post("/lightly/pools/main/tags", data={"name": "bright-half", f"lo.{LUM}": repr(cut)})
    assert r.status_code == 303 and r.headers["location"] == "/lightly/pools/main/samples?tag=bright-half"
    assert pool.version() == before + 1
    last = pool.history()[-1]
    assert last["operation"] == "tag" and last["tag"] == "bright-half" and last["selected"] == len(want)
    assert last["config"]["source"]["scope"]["filters"]["lo"] == {LUM: cut}
    got = client.get("/lightly/api/pools/main/samples?tag=bright-half&limit=1000").json()
    assert {i["sample_id"] for i in got["items"]} == want
    # Nothing else changed, and the version before the tag still reads as it was.
    after = pool.read().sort_by(C.SAMPLE_ID)
    earlier = pool.read(version=before).sort_by(C.SAMPLE_ID)
    assert after.drop_columns([C.TAGS]).equals(earlier.drop_columns([C.TAGS]))
    assert all("bright-half" not in t for t in earlier.column(C.TAGS).to_pylist())
    assert client.get(f"/lightly/api/pools/main/samples?tag=bright-half&version={before}").status_code == 404
    # Runs still see every selection: initial-tag is unchanged.
    assert pool.selected([C.KEY]).num_rows == len(writable.picks_1) + len(writable.picks_2)
    # The tag shows on the pool page and in the sample's tags.
    assert "bright-half" in client.get("/lightly/pools/main/samples").text


def test_the_checked_samples_of_a_grid_page_become_a_tag(client, writable):
    pool = Datapool(writable.uri)
    before = pool.version()
    query = f"sort={LUM}&order=desc&in.status=ok"
    page = client.get(f"/lightly/pools/main/samples?{query}&limit=10").text
    boxes = re.findall(r'<input type="checkbox" name="sample" value="([0-9a-f]{32})" form="tagform"', page)
    assert len(boxes) == 10 and 'id="tagform"' in page and 'name="only" value="checked"' in page
    chosen = [boxes[1], boxes[4], boxes[7]]
    form = {"name": "three-picked", "in.status": "ok", "only": "checked", "sample": chosen}
    r = client.post("/lightly/pools/main/tags", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/lightly/pools/main/samples?tag=three-picked"
    assert pool.version() == before + 1
    last = pool.history()[-1]
    assert last["tag"] == "three-picked" and last["selected"] == 3
    assert last["config"]["source"]["from"] == "checked samples"
    assert sorted(last["config"]["source"]["samples"]) == sorted(chosen)
    assert set(_ids(client, "/lightly/api/pools/main/samples?tag=three-picked")) == set(chosen)
    # Without "only=checked" the same form tags every sample of the scope (the boxes are ignored)
    r = client.post("/lightly/pools/main/tags", data={**form, "name": "all-ok", "only": ""})
    assert r.status_code == 303 and pool.history()[-1]["selected"] == len(_ids(
        client, "/lightly/api/pools/main/samples?in.status=ok&limit=1000"))
    # None checked, or a box of a sample outside the scope (a corrupt one, here): refused, naming it; nothing tagged
    assert client.post("/lightly/pools/main/tags", data={**form, "name": "none", "sample": []}).status_code == 400
    corrupt = _ids(client, "/lightly/api/pools/main/samples?in.status=corrupt")[0]
    r = client.post("/lightly/pools/main/tags", data={**form, "name": "outside", "sample": [chosen[0], corrupt]})
    assert r.status_code == 400 and corrupt in r.text and "Nothing was tagged" in r.text
    assert client.post("/lightly/pools/main/tags", data={**form, "name": "junk", "sample": ["../x"]}).status_code == 400
    # The JSON API takes the same list
    r = client.post("/lightly/api/pools/main/tags", json={"name": "api-two", "samples": chosen[:2]})
    assert r.status_code == 200 and r.json()["count"] == 2
    assert {e["tag"] for e in pool.history()} >= {"three-picked", "all-ok", "api-two"}
    assert not {"none", "outside", "junk"} & {e["tag"] for e in pool.history()}


def test_tag_names_are_checked(client, writable):
    assert client.post("/lightly/pools/main/tags", data={"name": "batch-2", "in.status": "ok"}).status_code == 409
    assert client.post("/lightly/pools/main/tags", data={"name": "bad name!", "in.status": "ok"}).status_code == 400
    assert client.post("/lightly/pools/main/tags", data={"name": "initial-tag"}).status_code == 400
    assert client.post("/lightly/pools/main/tags", data={"name": "empty", f"lo.{LUM}": "99"}).status_code == 400
    assert Datapool(writable.uri).history()[-1]["operation"] != "tag"


def test_a_lightly_tag_name_with_a_space_works_through_every_page(client, writable):
    """Lightly's tag names may hold a space, ; = and @: the redirect, the grid, the tag page, the sample page's
    tags, the pool page's links and an export all take it (quoted in URLs, escaped in HTML)."""
    name = "round 2;cam=front@v1"
    r = client.post("/lightly/pools/main/tags", data={"name": name, "in.status": "ok"})
    assert r.status_code == 303 and r.headers["location"] == f"/lightly/pools/main/samples?{urlencode({'tag': name})}"
    n = Datapool(writable.uri).history()[-1]["selected"]
    grid = client.get(r.headers["location"])
    assert grid.status_code == 200 and f"<b>{n}</b> samples match" in grid.text
    assert client.get("/lightly/api/pools/main/samples", params={"tag": name, "limit": 1000}).json()["total"] == n
    overview = client.get("/lightly/pools/main").text
    links = set(re.findall(r'href="([^"]*round[^"]*)"', overview))
    assert links and all(" " not in h and ";" not in h for h in links), links
    for href in links:
        assert client.get(html.unescape(href)).status_code == 200, href
    tag_page = client.get(f"/lightly/pools/main/tags/{quote(name, safe='')}")
    assert tag_page.status_code == 200 and html.escape(name) in tag_page.text
    export = client.get("/lightly/pools/main/export", params={"tag": name, "format": "list"})
    assert export.status_code == 200 and len(export.text.splitlines()) == n


def test_another_sites_form_cannot_make_a_tag(client, writable):
    r = client.post("/lightly/pools/main/tags", data={"name": "csrf", "in.status": "ok"},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert "csrf" not in {e["tag"] for e in Datapool(writable.uri).history()}


def test_a_map_selection_becomes_a_tag_of_every_sample_inside(client, writable):
    view = View(PoolSpec("main", writable.uri))
    rows = view.sql('SELECT sample_id, "layout.x" AS x, "layout.y" AS y FROM pool WHERE "layout.x" IS NOT NULL')
    x, y = rows.column("x").to_numpy(), rows.column("y").to_numpy()
    poly = [[float(x.min()) - 1, float(np.median(y))], [float(x.max()) + 1, float(np.median(y))],
            [float(x.max()) + 1, float(y.max()) + 1], [float(x.min()) - 1, float(y.max()) + 1]]
    want = {s for s, yy in zip(rows.column("sample_id").to_pylist(), y) if yy > np.median(y)}
    r = client.post("/lightly/api/pools/main/tags", json={"name": "upper-half", "polygon": poly})
    assert r.status_code == 200 and r.json()["count"] == len(want)
    got = client.get("/lightly/api/pools/main/samples?tag=upper-half&limit=1000").json()
    assert {i["sample_id"] for i in got["items"]} == want
    assert Datapool(writable.uri).history()[-1]["config"]["source"]["from"] == "map selection"


# ------------------------------------------------------------------------------------------------ compare, export
def test_compare_counts_overlap_and_distributions(client, configured):
    body = client.get(f"/lightly/api/pools/main/compare?tag=initial-tag&tag=batch-2&column={LUM}").json()
    assert body["sizes"] == [11, 3] and body["overlap"] == [[11, 3], [3, 3]] and body["all"] == 3
    assert [sum(s) for s in body["series"]] == [11, 3] and len(body["bins"]) == 21
    page = client.get(f"/lightly/pools/main/compare?tag=initial-tag&tag=batch-2&column={LUM}").text
    assert "1st and 99th percentile" in page and "clipped" in page
    status = client.get("/lightly/api/pools/main/compare?tag=initial-tag&tag=batch-2&column=status").json()
    assert status["bins"] == ["ok"] and status["series"] == [[11], [3]]


def test_exports_of_a_filter_in_four_formats(client, configured):
    src = f"file://{configured.source}"
    q = f"run={quote(RUN_1)}&in.selected=true"
    listing = client.get(f"/lightly/pools/main/export?format=list&{q}")
    assert listing.status_code == 200 and "attachment" in listing.headers["content-disposition"]
    want = [f"{src}/{quote(k)}" for k in configured.picks_1]  # pick order; keys percent-encoded
    assert listing.text.splitlines() == want and "%3Cscript%3E" in listing.text
    table = list(csv.DictReader(io.StringIO(client.get(f"/lightly/pools/main/export?format=csv&{q}").text)))
    assert [r["key"] for r in table] == configured.picks_1 and [r["uri"] for r in table] == want
    assert table[0][LUM] and table[0]["metadata.note"] and table[0]["tag"]  # every metadata column, too
    ls = client.get(f"/lightly/pools/main/export?format=label-studio&{q}").json()
    assert ls[0]["data"]["image"] == want[0] and ls[0]["meta"]["pick_rank"] == 0
    coco = client.get(f"/lightly/pools/main/export?format=coco&{q}").json()
    assert [i["file_name"] for i in coco["images"]] == configured.picks_1 and coco["annotations"] == []
    assert client.get("/lightly/pools/main/export?format=xml").status_code == 400


def test_coco_export_carries_predicted_boxes(client, configured, tmp_path):
    """Boxes in the datasource's .lightly/predictions become COCO pre-annotations and are drawn on the page."""
    lightly = configured.source / ".lightly" / "predictions"
    (lightly / "det").mkdir(parents=True, exist_ok=True)
    (lightly / "tasks.json").write_text(json.dumps(["det"]))
    (lightly / "det" / "schema.json").write_text(json.dumps(
        {"task_type": "object-detection", "categories": [{"id": 0, "name": "digit"}]}))
    key = configured.picks_1[1]
    stem = key.rsplit(".", 1)[0]
    (lightly / "det" / f"{stem}.json").parent.mkdir(parents=True, exist_ok=True)
    (lightly / "det" / f"{stem}.json").write_text(json.dumps(
        {"file_name": key, "predictions": [{"category_id": 0, "bbox": [4, 8, 20, 30], "score": 0.9}]}))
    try:
        coco = client.get(f"/lightly/pools/main/export?format=coco&run={quote(RUN_1)}&in.selected=true").json()
        assert coco["categories"] == [{"id": 0, "name": "digit"}]
        (ann,) = coco["annotations"]
        assert ann["bbox"] == [4, 8, 20, 30] and ann["score"] == 0.9
        assert coco["images"][ann["image_id"] - 1]["file_name"] == key
        sid = sample_id(key, _all(configured).filter(pc.equal(_all(configured).column(C.KEY), key)).column(C.ETAG)[0].as_py())
        page = client.get(f"/lightly/pools/main/samples/{sid}").text
        assert '<rect x="4.0" y="8.0" width="20.0" height="30.0"' in page and 'viewBox="0 0 64 64"' in page
    finally:
        shutil.rmtree(configured.source / ".lightly")


def test_parse_scope_ignores_empty_fields():
    s = parse_scope([("version", ""), ("tag", "t"), ("lo.a", ""), ("hi.a", "3"), ("in.b", "x"), ("in.b", "y")])
    assert s.version is None and s.tag == "t" and s.filters.hi == {"a": 3.0} and s.filters.values == {"b": ["x", "y"]}
    assert s.filters.lo == {}


# ------------------------------------------------------------------------------------------------ similar samples
def test_similar_samples_are_ordered_by_the_distance_of_their_embeddings(client, configured):
    """``sort=similar:<sample id>``: the scope ordered by the Euclidean distance of each sample's embedding to that
    sample's (checked against numpy), the sample itself first at 0, rows without an embedding last; paged, and
    narrowed by tags and filters like any sort; the sample page links to it."""
    rows = _all(configured)
    ok = rows.filter(pc.is_valid(rows.column(C.EMBEDDING)))
    x = np.asarray(ok.column(C.EMBEDDING).to_pylist(), dtype=np.float64)
    ids = ok.column(C.SAMPLE_ID).to_pylist()
    q = 17
    d = np.sqrt(((x - x[q]) ** 2).sum(axis=1))
    want = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (round(d[i], 5), ids[i]))]
    body = client.get(f"/lightly/api/pools/main/samples?sort=similar:{ids[q]}&limit=10").json()
    assert body["total"] == rows.num_rows and body["similar_key"] == ok.column(C.KEY)[q].as_py()
    assert [i["sample_id"] for i in body["items"]] == want[:10] and body["items"][0]["value"] == 0.0
    got = np.array([i["value"] for i in body["items"]])
    assert np.allclose(got, np.sort(d)[:10], atol=1e-4)
    assert _ids(client, f"/lightly/api/pools/main/samples?sort=similar:{ids[q]}&limit=10&offset=10") == want[10:20]
    last = client.get(f"/lightly/api/pools/main/samples?sort=similar:{ids[q]}&limit=1000").json()["items"]
    assert all(i["value"] is None for i in last[len(ids):]) and len(last) == rows.num_rows  # (corrupt: no embedding)
    # Narrowed: the tag's samples only, in the same order.
    tagged = set(_ids(client, "/lightly/api/pools/main/samples?tag=batch-2&limit=1000"))
    in_tag = _ids(client, f"/lightly/api/pools/main/samples?tag=batch-2&sort=similar:{ids[q]}&limit=1000")
    assert in_tag == [s for s in want if s in tagged]
    # A sample without an embedding, an unknown one, or SQL in the id: a 400 that says why, never SQL.
    corrupt = rows.filter(pc.is_null(rows.column(C.EMBEDDING))).column(C.SAMPLE_ID)[0].as_py()
    for bad in (corrupt, "0" * 32, "x' OR 1=1 --"):
        r = client.get(f"/lightly/api/pools/main/samples?sort=similar:{quote(bad)}")
        assert r.status_code == 400 and "has no embedding" in r.json()["detail"]
    # The sample page links to the grid ordered by similarity to it; that grid says so and shows it first.
    page = client.get(f"/lightly/pools/main/samples/{ids[q]}").text
    href = next(h for h in links(page).hrefs if "similar" in h)
    assert "Find similar samples" in page
    grid = client.get(href).text
    assert "Ordered by similarity to" in grid and "nearest first" in grid
    assert grid.index(f"/thumbnails/{ids[q]}") < grid.index(f"/thumbnails/{want[1]}")
    among_selected = next(h for h in links(page).hrefs if "similar" in h and "initial-tag" in h)
    chosen = set(_ids(client, "/lightly/api/pools/main/samples?tag=initial-tag&limit=1000"))
    got = _ids(client, among_selected.replace("/lightly/pools/", "/lightly/api/pools/") + "&limit=1000")
    assert got == [s for s in want if s in chosen] and chosen


def test_a_similarity_ordering_is_computed_once_for_its_pages_and_steps(client, configured, monkeypatch):
    """Every page of a grid ordered by similarity, and every step of a sample page through it, read every
    embedding of the scope again (~12 s at 1,000,000 x 1280): the ordered rows are now kept in blocks."""
    from lightly_airflow.plugins import query

    monkeypatch.setattr(query, "SIMILAR_BLOCK", 7)  # blocks smaller than a page: pages span blocks
    monkeypatch.setattr(query, "_similar_cache", {})  # (none kept by the tests before)
    distances: list[str] = []  # the queries that compute the distances to every embedding
    real_sql = View.sql

    def counted_sql(self, text):
        if "array_distance" in text:
            distances.append(text)
        return real_sql(self, text)

    monkeypatch.setattr(View, "sql", counted_sql)
    rows = _all(configured)
    ids = rows.filter(pc.is_valid(rows.column(C.EMBEDDING))).column(C.SAMPLE_ID).to_pylist()
    sort = f"sort=similar:{ids[5]}&in.status=ok"
    whole = _ids(client, f"/lightly/api/pools/main/samples?{sort}&limit=1000")  # (1000 rows: every block once)
    read = len(distances)
    assert whole and read == len(whole) // 7 + 1  # (up to the first block that is not full)
    pages = [_ids(client, f"/lightly/api/pools/main/samples?{sort}&limit=10&offset={o}") for o in range(0, 40, 10)]
    assert sum(pages, []) == whole[:40] and len(distances) == read  # from the kept blocks
    for at in (3, 4, 11):  # the sample page's steps through it
        page = client.get(f"/lightly/pools/main/samples/{whole[at]}?{sort}&at={at}").text
        assert _rel(page, "next").split("?")[0].endswith(whole[at + 1])
    assert len(distances) == read
    other = _ids(client, f"/lightly/api/pools/main/samples?sort=similar:{ids[5]}&limit=5")  # another scope
    assert other and len(distances) == read + 1


# ------------------------------------------------------------------------------------------------ stepping
def _rel(page: str, rel: str) -> str | None:
    """The href of the page's ``rel`` link (what the ← / → keys follow), unescaped."""
    found = re.findall(rf'<a href="([^"]+)" rel="{rel}">', page)
    assert len(found) <= 1, found
    return html.unescape(found[0]) if found else None


def test_a_sample_opened_from_a_grid_steps_through_that_grid_in_its_order(client, configured):
    lum = _all(configured).column(LUM).to_numpy()
    query = f"lo.{LUM}={float(np.median(lum))!r}&in.status=ok&sort={LUM}&order=desc"
    want = _ids(client, f"/lightly/api/pools/main/samples?{query}&limit=1000")
    assert 20 < len(want) < 100  # a filtered scope over several grid pages
    grid = client.get(f"/lightly/pools/main/samples?{query}&limit=7&offset=7")
    assert grid.status_code == 200 and "/static/keys.js" in grid.text
    # (the thumbnails' size slider, kept in the browser by static/grid.js)
    assert 'type="range" id="cellsize"' in grid.text and "/static/grid.js" in grid.text
    size_js = client.get("/lightly/static/grid.js")
    assert size_js.status_code == 200 and "cellsize" in size_js.text and "--cell" in size_js.text
    assert _rel(grid.text, "prev").endswith("offset=0") and _rel(grid.text, "next").endswith("offset=14")
    cards = [h for h in links(grid.text).hrefs if "/samples/" in h and "at=" in h]
    assert cards[0].split("?")[0].endswith(want[7]) and "at=7" in cards[0]
    # From the grid's 8th card, forward to the end: every sample of the scope in the grid's order
    seen, url = [], cards[0]
    while url:
        r = client.get(url)
        assert r.status_code == 200 and "/static/keys.js" in r.text
        seen.append(url.split("/samples/")[1].split("?")[0])
        at = 7 + len(seen) - 1
        assert f"<b>{at + 1}</b> of {len(want)} samples" in r.text and "descending" in r.text
        back = [h for h in links(r.text).hrefs if "limit=7" in h and "at=" not in h and "/samples?" in h]
        assert back and (f"offset={at // 7 * 7}" in back[-1] if at >= 7 else "offset" not in back[-1])
        assert (_rel(r.text, "prev") or "").split("?")[0].endswith(want[at - 1])
        url = _rel(r.text, "next")
    assert seen == want[7:]
    # ... and backwards from there to the first, which has no previous one
    back_seen, url = [], _rel(client.get(cards[0]).text, "prev")
    while url:
        r = client.get(url)
        back_seen.append(url.split("/samples/")[1].split("?")[0])
        url = _rel(r.text, "prev")
    assert back_seen == want[6::-1] and "<b>1</b> of" in r.text
    assert _rel(r.text, "next").split("?")[0].endswith(want[1])
    # A position that does not hold the sample (a hand-edited link) says so and links nowhere
    wrong = client.get(f"/lightly/pools/main/samples/{want[3]}?{query}&at=5")
    assert "no longer at position 6" in wrong.text and _rel(wrong.text, "next") is None
    # Opened without a grid (a link from elsewhere): no bar, no keys
    plain = client.get(f"/lightly/pools/main/samples/{want[3]}")
    assert _rel(plain.text, "next") is None and "keys.js" not in plain.text
    js = client.get("/lightly/static/keys.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert 'a[rel="' in js.text and "ArrowRight" in js.text


def test_byte_ranges_of_a_video_answer():
    from lightly_airflow.plugins.media import VIDEO_CHUNK, byte_range, playable_video

    size = 10 * VIDEO_CHUNK
    assert byte_range(None, size) is None and byte_range("", size) is None
    assert byte_range("bytes=0-99", size) == (0, 99)
    assert byte_range("bytes=5-", size) == (5, 5 + VIDEO_CHUNK - 1)  # at most one chunk per answer
    assert byte_range("bytes=-10", size) == (size - 10, size - 1)
    assert byte_range("bytes=0-99, 200-299", size) == (0, 99)  # the first range of several
    assert byte_range("bytes=0-99", 50) == (0, 49)
    for bad in ("bytes=x-1", "items=0-1", "bytes=", "bytes=-", f"bytes={size}-", "bytes=9-3"):
        with pytest.raises(ValueError):
            byte_range(bad, size)
    assert playable_video("a/B.MP4") == "video/mp4" and playable_video("clip.webm") == "video/webm"
    assert playable_video("tape.avi") is None and playable_video("cam.MTS") is None
