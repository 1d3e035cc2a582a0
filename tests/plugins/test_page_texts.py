"""What the sample, object and grid pages say, on a datapool with object rows (tests/object_pool.py): counts of a
run are of its images (not of its rows, which include its objects), an image its run did not pick shows no
"objective at its pick" table of blanks, a grid card's pick is the sample page's (1-based), an object page whose
image is gone shows no picture and says so, and tables of facts have no blank header row."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pyarrow.compute as pc
import pytest
from object_pool import OBJECT_RUNS, ObjectPool, build_object_pool
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins import html as H


@pytest.fixture(scope="module")
def object_pool(tmp_path_factory: pytest.TempPathFactory) -> ObjectPool:
    return build_object_pool(tmp_path_factory.mktemp("page-texts"))


@pytest.fixture
def client(object_pool: ObjectPool, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    with ui_client(monkeypatch, {"objects": {"uri": object_pool.uri}}) as c:
        yield c


def _rows(pool: ObjectPool) -> list[dict]:
    return Datapool(pool.uri).read().to_pylist()


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


def test_a_pick_counts_the_run_s_images_not_its_object_rows(client, object_pool):
    rows = _rows(object_pool)
    run = [r for r in rows if r[C.RUN_ID] == OBJECT_RUNS[0]]
    images = [r for r in run if r[C.PARENT_KEY] is None]
    first = next(r for r in images if r[C.PICK_RANK] == 0)
    assert len(run) > len(images)  # the run committed its objects' rows too
    text = _text(client.get(f"/lightly/pools/objects/samples/{first[C.SAMPLE_ID]}").text)
    picked = sum(1 for r in images if r[C.PICK_RANK] is not None)
    assert f"which selected {picked} of {len(images)} samples." in text, text[:2000]
    assert f"of {len(run)} samples" not in text


def test_an_unpicked_image_has_no_table_of_blank_objective_values(client, object_pool):
    rows = _rows(object_pool)
    unpicked = next(r for r in rows if r[C.PARENT_KEY] is None and r[C.PICK_RANK] is None
                    and r[C.STATUS] == C.STATUS_OK)
    picked = next(r for r in rows if r[C.PARENT_KEY] is None and r[C.PICK_RANK] is not None)
    html = client.get(f"/lightly/pools/objects/samples/{unpicked[C.SAMPLE_ID]}").text
    assert "Not picked by its run" in html and "Objective at its pick" not in html
    assert "recorded no per-pick objective values" not in html
    html = client.get(f"/lightly/pools/objects/samples/{picked[C.SAMPLE_ID]}").text
    assert "Objective at its pick" in html and '<td class="name">selection.<wbr>object_<wbr>distance</td>' in html


def test_a_grid_card_numbers_picks_as_the_sample_page_does(client, object_pool):
    html = client.get("/lightly/pools/objects/samples", params={"run": OBJECT_RUNS[0], "sort": "pick_rank"}).text
    caps = [_text(c) for c in re.findall(r'<div class="cap">(.*?)</div>', html)]
    assert "pick 1 · ok" in caps[0] and "pick 0" not in " ".join(caps), caps[:3]
    first = re.search(r'<a class="thumb" href="([^"]+)"', html).group(1)
    assert "Pick 1 (pick rank 0)" in _text(client.get(unescape(first)).text)


def test_an_object_page_whose_image_is_gone_shows_its_stored_crop(client, object_pool):
    """Its image is gone: the page shows the crop's thumbnail its run stored (a real picture of the object, said to
    be the stored crop, and the note says so); without that thumbnail either, no picture at all."""
    rows = Datapool(object_pool.uri).read()
    obj = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).to_pylist()[0]
    sid = obj[C.SAMPLE_ID]
    path = object_pool.source / obj[C.PARENT_KEY]
    thumb = object_pool.path / "_thumbnails" / f"{sid}.jpg"
    assert thumb.is_file()  # the run stored the crop's thumbnail
    original, stored = path.read_bytes(), thumb.read_bytes()
    path.unlink()
    try:
        html = client.get(f"/lightly/pools/objects/samples/{sid}").text
        shown = client.get(f"/lightly/pools/objects/thumbnails/{sid}")
        assert client.get(f"/lightly/api/pools/objects/samples/{sid}").json()["stored_crop"] is True
        thumb.unlink()
        bare = client.get(f"/lightly/pools/objects/samples/{sid}").text
    finally:
        path.write_bytes(original)
        thumb.write_bytes(stored)
    note = _text(re.search(r'<div class="box err content-gone">(.*?)</div>', html).group(1))
    assert note.endswith("so its image cannot be shown nor its crop cut from it: the crop below is the thumbnail "
                         "its run stored of it."), note
    assert re.findall(r"<img [^>]*>", html) == [f'<img src="/lightly/pools/objects/thumbnails/{sid}" '
                                                f'alt="{obj[C.KEY]}">'], html
    assert "The stored crop: the thumbnail its run made of this object's crop" in html
    assert 'class="layout"' in html  # the picture is there: no "no-picture" layout
    assert shown.status_code == 200 and shown.content == stored and shown.headers["content-type"] == "image/jpeg"
    note = _text(re.search(r'<div class="box err content-gone">(.*?)</div>', bare).group(1))
    assert note.endswith("so neither its crop nor its image can be shown."), note
    assert "<img" not in bare and "stored crop" not in bare and 'class="layout no-picture"' in bare


def test_the_grid_s_sort_select_keeps_its_width_and_names_each_option(client):
    """Long column names made the "Sort by" select as wide as the longest: it is capped (``select.sort``) and each
    option carries its whole name in its title."""
    html = client.get("/lightly/pools/objects/samples", params={"sort": C.KEY}).text
    select = re.search(r'<select name="sort" class="sort" title="key">(.*?)</select>', html).group(1)
    options = re.findall(r'<option value="([^"]*)" title="([^"]*)"[^>]*>([^<]*)</option>', select)
    assert len(options) > 3 and all(v == t == x for v, t, x in options), options
    assert "select.sort{max-width:14rem;text-overflow:ellipsis}" in html


def test_a_table_of_facts_has_no_blank_header_row():
    assert "<thead>" not in H.table(["", ""], [("task", "shapes")])
    assert "<thead><tr><th>Column</th>" in H.table(["Column", "Value"], [("a", "1")])
    assert H.breakable("scores.a_b<x>") == "scores.<wbr>a_<wbr>b&lt;x&gt;"
