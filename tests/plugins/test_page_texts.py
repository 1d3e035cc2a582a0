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
    assert "Objective at its pick" in html and "<td>selection.<wbr>object_<wbr>distance</td>" in html


def test_a_grid_card_numbers_picks_as_the_sample_page_does(client, object_pool):
    html = client.get("/lightly/pools/objects/samples", params={"run": OBJECT_RUNS[0], "sort": "pick_rank"}).text
    caps = [_text(c) for c in re.findall(r'<div class="cap">(.*?)</div>', html)]
    assert "pick 1 · ok" in caps[0] and "pick 0" not in " ".join(caps), caps[:3]
    first = re.search(r'<a class="thumb" href="([^"]+)"', html).group(1)
    assert "Pick 1 (pick rank 0)" in _text(client.get(unescape(first)).text)


def test_an_object_page_whose_image_is_gone_shows_no_picture(client, object_pool):
    rows = Datapool(object_pool.uri).read()
    obj = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).to_pylist()[0]
    path = object_pool.source / obj[C.PARENT_KEY]
    original = path.read_bytes()
    path.unlink()
    try:
        html = client.get(f"/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}").text
    finally:
        path.write_bytes(original)
    note = _text(re.search(r'<div class="box err content-gone">(.*?)</div>', html).group(1))
    assert note.endswith("so neither its crop nor its image can be shown."), note
    assert "<img" not in html


def test_a_table_of_facts_has_no_blank_header_row():
    assert "<thead>" not in H.table(["", ""], [("task", "shapes")])
    assert "<thead><tr><th>Column</th>" in H.table(["Column", "Value"], [("a", "1")])
    assert H.breakable("scores.a_b<x>") == "scores.<wbr>a_<wbr>b&lt;x&gt;"
