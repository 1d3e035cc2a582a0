"""The UI on a datapool with object rows (made by the pipeline's stages, tests/object_pool.py): objects show as
crops within their image and on their own pages; every images view keeps showing images only."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from html import unescape

import numpy as np
import pyarrow.compute as pc
import pytest
from object_pool import OBJECT_RUNS, ObjectPool, build_object_pool
from PIL import Image
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.objects.demo_data import TASK
from lightly_airflow.plugins import html as H


@pytest.fixture(scope="module")
def object_pool(tmp_path_factory: pytest.TempPathFactory) -> ObjectPool:
    return build_object_pool(tmp_path_factory.mktemp("objects-ui"))


@pytest.fixture
def oclient(object_pool: ObjectPool, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    with ui_client(monkeypatch, {"objects": {"uri": object_pool.uri}}) as c:
        yield c


def _rows(pool: ObjectPool):
    return Datapool(pool.uri).read()


def _images(rows):
    return rows.filter(pc.is_null(rows.column(C.PARENT_KEY)))


def _objects(rows):
    return rows.filter(pc.is_valid(rows.column(C.PARENT_KEY)))


def test_the_pool_holds_objects_linked_to_images(object_pool):
    rows = _rows(object_pool)
    images, objects = _images(rows), _objects(rows)
    assert images.num_rows == len(object_pool.predictions) == 18
    assert objects.num_rows == sum(len(p) for p in object_pool.predictions.values()) > 0


def test_images_views_show_images_only(oclient, object_pool):
    rows = _rows(object_pool)
    images = _images(rows)
    n = images.num_rows
    got = oclient.get("/lightly/api/pools/objects/samples?limit=1000").json()
    assert got["total"] == n and len(got["items"]) == n
    assert {i["key"] for i in got["items"]} == set(images.column(C.KEY).to_pylist())
    assert f"<b>{n}</b> samples match" in oclient.get("/lightly/pools/objects/samples").text
    # A run's rows, a tag, a filter on a metric both kinds of rows have: images only.
    run1 = oclient.get("/lightly/api/pools/objects/samples", params={"run": OBJECT_RUNS[0], "limit": 1000}).json()
    assert run1["total"] == 12
    sel = oclient.get("/lightly/api/pools/objects/samples?tag=initial-tag&limit=1000").json()
    assert sel["total"] == int(pc.sum(images.column(C.SELECTED)).as_py())
    lum = C.lightly_metadata_column("luminance")
    cut = float(np.median(rows.column(lum).to_numpy(zero_copy_only=False)))
    bright = oclient.get(f"/lightly/api/pools/objects/samples?lo.{lum}={cut}&limit=1000").json()
    assert bright["total"] == sum(1 for v in images.column(lum).to_pylist() if v >= cut)
    # Facets describe the images: no object columns, counts of images.
    facets = oclient.get("/lightly/api/pools/objects/facets").json()["facets"]
    assert not [c for c in facets if c.startswith("object_")]
    assert dict(facets[C.STATUS]["values"]) == {"ok": n}
    # The map, the compare page, the exports and a tag from a filter: images only.
    payload = oclient.get("/lightly/api/pools/objects/map").json()
    assert payload["total"] == n and all(len(i) == 32 for i in payload["points"]["id"])
    tags = [e["tag"] for e in Datapool(object_pool.uri).history() if e.get("run_id")]
    cmp = oclient.get(f"/lightly/api/pools/objects/compare?tag={tags[0]}&tag={tags[1]}&column={lum}").json()
    assert cmp["sizes"] == [5, 5] and [sum(s) for s in cmp["series"]] == [5, 5]
    text = oclient.get("/lightly/pools/objects/export?format=csv").text
    keys = [r["key"] for r in csv.DictReader(io.StringIO(text))]
    assert sorted(keys) == sorted(images.column(C.KEY).to_pylist())
    coco = oclient.get("/lightly/pools/objects/export?format=coco").json()
    assert len(coco["images"]) == n


def test_a_tag_from_a_filter_tags_images_only_and_objects_refuse_tags(oclient, object_pool, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "pool"
    shutil.copytree(object_pool.path, copy)
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps({"objects": {"uri": f"file://{copy}"}}))  # read per request
    r = oclient.post("/lightly/pools/objects/tags", data={"name": "all-ok", "in.status": "ok"})
    assert r.status_code == 303
    last = Datapool(f"file://{copy}").history()[-1]
    assert last["tag"] == "all-ok" and last["selected"] == 18
    r = oclient.post("/lightly/pools/objects/tags", data={"name": "crops", "show": "objects"})
    assert r.status_code == 400 and "Tags are on images" in r.text
    assert oclient.get("/lightly/pools/objects/export?format=csv&show=objects").status_code == 400


def test_objects_grid_filters_and_tag_scope(oclient, object_pool):
    rows = _rows(object_pool)
    objects = _objects(rows)
    got = oclient.get("/lightly/api/pools/objects/samples?show=objects&limit=1000").json()
    assert got["total"] == objects.num_rows
    assert {i["key"] for i in got["items"]} == set(objects.column(C.KEY).to_pylist())
    assert all(i[C.PARENT_KEY] and i[C.OBJECT_TASK] == TASK for i in got["items"])
    cats = objects.column(C.OBJECT_CATEGORY).to_pylist()
    common = max(set(cats), key=cats.count)
    by_cat = oclient.get(f"/lightly/api/pools/objects/samples?show=objects&in.object_category={common}").json()
    assert by_cat["total"] == cats.count(common)
    scores = objects.column(C.OBJECT_SCORE).to_numpy()
    high = oclient.get("/lightly/api/pools/objects/samples?show=objects&lo.object_score=0.75").json()
    assert high["total"] == int((scores >= 0.75).sum())
    # The objects of a tag's images: the objects whose image the run selected.
    tagged = oclient.get("/lightly/api/pools/objects/samples?show=objects&tag=initial-tag&limit=1000").json()
    assert tagged["total"] == int(pc.sum(objects.column(C.OBJECT_SELECTED)).as_py()) > 0
    facets = oclient.get("/lightly/api/pools/objects/facets?show=objects").json()["facets"]
    assert dict(facets[C.OBJECT_CATEGORY]["values"]) == {c: cats.count(c) for c in set(cats)}
    assert facets[C.OBJECT_SCORE]["min"] == pytest.approx(scores.min())
    html = oclient.get("/lightly/pools/objects/samples?show=objects").text
    assert f"<b>{objects.num_rows}</b> objects match" in html
    assert html.count('class="card obj sel"') == sum(1 for i in got["items"][:60] if i[C.OBJECT_SELECTED])
    assert 'name="show"' in html and "Save these samples as a tag" not in html and 'name="sample"' not in html
    # An object opened from the objects grid steps to the next object of that grid (by score, highest first)
    by_score = oclient.get("/lightly/api/pools/objects/samples?show=objects&sort=object_score&order=desc").json()
    first = by_score["items"][0][C.SAMPLE_ID]
    page = oclient.get("/lightly/pools/objects/samples?show=objects&sort=object_score&order=desc").text
    opened = next(h for h in re.findall(r'href="([^"]+)"', page) if f"/samples/{first}?" in h)
    obj = oclient.get(unescape(opened)).text
    assert "<h1>Object</h1>" in obj and f"<b>1</b> of {objects.num_rows} objects" in obj
    nxt = re.findall(r'<a href="([^"]+)" rel="next">', obj)
    assert len(nxt) == 1 and f"/samples/{by_score['items'][1][C.SAMPLE_ID]}?" in nxt[0] and "show=objects" in nxt[0]
    # Crop thumbnails were made by the object pass: served, not the placeholder.
    sid = got["items"][0][C.SAMPLE_ID]
    thumb = oclient.get(f"/lightly/pools/objects/thumbnails/{sid}")
    assert thumb.status_code == 200 and "X-Lightly-Thumbnail" not in thumb.headers
    x, y, w, h = objects.filter(pc.equal(objects.column(C.SAMPLE_ID), sid)).column(C.OBJECT_CROP_BOX)[0].as_py()
    assert Image.open(io.BytesIO(thumb.content)).size == (w, h)  # crops are small: never enlarged


def _picked_image_with_objects(rows):
    images, objects = _images(rows), _objects(rows)
    parents = set(objects.column(C.PARENT_KEY).to_pylist())
    picked = [r for r in images.to_pylist() if r[C.SELECTED] and r[C.KEY] in parents]
    return picked[0], [o for o in objects.to_pylist() if o[C.PARENT_KEY] == picked[0][C.KEY]
                       and o[C.RUN_ID] == picked[0][C.RUN_ID]]


def test_sample_page_draws_its_objects_and_lists_their_crops(oclient, object_pool):
    image, objs = _picked_image_with_objects(_rows(object_pool))
    html = oclient.get(f"/lightly/pools/objects/samples/{image[C.SAMPLE_ID]}").text
    assert f"Objects ({len(objs)}, {len(objs)} selected)" in html
    svg = html[html.index("<svg"):html.index("</svg>")]
    for o in objs:  # one linked, labelled box per object, at its predicted box
        x, y, w, h = o[C.OBJECT_BBOX]
        assert f'/lightly/pools/objects/samples/{o[C.SAMPLE_ID]}' in svg
        assert f'x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"' in svg
        assert f"{o[C.OBJECT_CATEGORY]} · {o[C.OBJECT_SCORE]:.2f}" in svg
    assert svg.count('class="obj chosen"') == len(objs) and "✓" in svg
    # No second box per object from the prediction files.
    assert svg.count("<rect") == len(objs)
    crops = html[html.index('id="objects"'):]
    assert crops.count('class="card obj sel"') == len(objs)
    assert "sharpness" in crops and f"crop {objs[0][C.lightly_metadata_column('width')]}×" in crops
    api = oclient.get(f"/lightly/api/pools/objects/samples/{image[C.SAMPLE_ID]}").json()
    assert sorted(o[C.KEY] for o in api["objects"]) == sorted(o[C.KEY] for o in objs)


def test_an_unpicked_image_shows_unselected_objects(oclient, object_pool):
    rows = _rows(object_pool)
    objects = _objects(rows)
    unpicked = objects.filter(pc.invert(objects.column(C.OBJECT_SELECTED))).to_pylist()[0]
    image = next(r for r in _images(rows).to_pylist() if r[C.KEY] == unpicked[C.PARENT_KEY])
    html = oclient.get(f"/lightly/pools/objects/samples/{image[C.SAMPLE_ID]}").text
    assert ", 0 selected)" in html and 'class="obj chosen"' not in html and "stroke-dasharray" in html


def test_object_page_shows_its_crop_and_links_its_image(oclient, object_pool):
    image, objs = _picked_image_with_objects(_rows(object_pool))
    obj = objs[0]
    html = oclient.get(f"/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}").text
    assert f'/lightly/pools/objects/samples/{image[C.SAMPLE_ID]}' in html
    assert f"pick {image[C.PICK_RANK] + 1})" in html and "Object of image" in html
    # Why: its image's per-pick values of the object-level objective.
    assert "Its image&#x27;s objective at that pick" in html or "Its image's objective at that pick" in html
    # (the name with line-break opportunities between its parts, for the narrow side column: html.breakable)
    distance = f"{image['selection.object_distance']:.6g}"
    assert f'<td class="name">selection.<wbr>object_<wbr>distance</td><td>{distance}</td>' in html
    assert H.breakable(C.lightly_metadata_column("sharpness")) in html
    png = oclient.get(f"/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}/image")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    x, y, w, h = obj[C.OBJECT_CROP_BOX]
    with Image.open(object_pool.source / image[C.KEY]) as img:
        want = np.asarray(img.convert("RGB").crop((x, y, x + w, y + h)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB")), want)
    api = oclient.get(f"/lightly/api/pools/objects/samples/{obj[C.SAMPLE_ID]}").json()
    assert api["parent"][C.SAMPLE_ID] == image[C.SAMPLE_ID]


def test_show_must_be_images_or_objects(oclient):
    r = oclient.get("/lightly/api/pools/objects/samples?show=crops")
    assert r.status_code == 400 and "show must be" in r.json()["detail"]



@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_an_object_of_a_truncated_image_gets_a_clear_error_not_a_500(tmp_path, monkeypatch, fmt):
    """A PNG or JPEG is sent to the browser undecoded (read_image reads its header only), so an object's crop was
    the first decode of its image: a truncated file raised outside any try and the crop's URL answered 500. It is
    the same clear "cannot be decoded" page as the image's own now, naming the file."""
    pool = build_object_pool(tmp_path)
    obj = _objects(_rows(pool)).to_pylist()[0]
    path = pool.source / obj[C.PARENT_KEY]
    out = io.BytesIO()
    with Image.open(path) as img:
        img.convert("RGB").save(out, format=fmt)
    path.write_bytes(out.getvalue()[: len(out.getvalue()) // 2])
    with ui_client(monkeypatch, {"objects": {"uri": pool.uri}}) as c:
        r = c.get(f"/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}/image")
        assert r.status_code == 404, r.status_code
        assert "cannot be decoded" in r.text and obj[C.PARENT_KEY] in r.text and "truncated" in r.text
        assert c.get(f"/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}").status_code == 200


def test_similar_objects_are_objects_ordered_by_their_crops_embeddings(oclient, object_pool):
    """An object's page links to the objects ordered by the distance of their crops' embeddings to its own; the
    images are not compared with objects (their embeddings are of whole images)."""
    from urllib.parse import unquote

    from .test_app import links

    objects = _objects(_rows(object_pool))
    objects = objects.filter(pc.is_valid(objects.column(C.EMBEDDING)))
    x = np.asarray(objects.column(C.EMBEDDING).to_pylist(), dtype=np.float64)
    ids = objects.column(C.SAMPLE_ID).to_pylist()
    d = np.sqrt(((x - x[0]) ** 2).sum(axis=1))
    page = oclient.get(f"/lightly/pools/objects/samples/{ids[0]}").text
    assert "Find similar objects" in page
    href = unquote(next(h for h in links(page).hrefs if "similar" in h).replace("&amp;", "&"))
    assert "show=objects" in href
    api = href.replace("/lightly/pools/", "/lightly/api/pools/") + "&limit=1000"
    got = oclient.get(api).json()
    assert got["total"] == len(ids) and all(i[C.PARENT_KEY] for i in got["items"])
    assert [i["sample_id"] for i in got["items"]][0] == ids[0]
    assert np.allclose([i["value"] for i in got["items"]], np.sort(d), atol=1e-4)
