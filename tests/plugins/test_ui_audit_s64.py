"""The UI audit of session 64: a duplicate's status box names its original once, a grid that nothing matches
offers no export or tag of nothing, ``show=objects`` of a pool without object rows says why and how to get them,
the home page lists each pool's latest version, its time, samples and selected (from the log: timed on a long
history), and a sample's "Versions" table scrolls on its own in a narrow window."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pyarrow as pa
import pytest
from long_pool import build_long_pool
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import PoolFixture


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


@pytest.fixture(scope="module")
def dupe_pool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two images, the second a duplicate of the first as the metadata stage marks one (its reason names the
    original), no object-level run."""
    uri = str(tmp_path_factory.mktemp("dupe") / "pool")
    reason = "same content as 'cams/a.jpg' already in the datapool"
    rows = pa.table({
        C.KEY: ["cams/a.jpg", "cams/b.jpg"], C.ETAG: ["e1", "e2"], C.STATUS: [C.STATUS_OK, C.STATUS_DUPLICATE],
        C.STATUS_REASON: pa.array([None, reason], pa.string()),
        C.DUPLICATE_OF: pa.array([None, "cams/a.jpg"], pa.string()),
        C.EMBEDDING: pa.array([[0.1, 0.2, 0.3, 0.4], None], pa.list_(pa.float32(), 4)),
        C.SELECTED: [True, False], C.PICK_RANK: pa.array([0, None], pa.int64()),
    })
    Datapool(uri).commit(rows, run_id="manual__dupe", dag_id="d", tag="t", config={}, counts={"processed": 2},
                         embedding_model="m", embedding_dim=4, read_version=None)
    return uri


@pytest.fixture
def dupe_client(dupe_pool: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    with ui_client(monkeypatch, {"dupes": {"uri": dupe_pool}}) as c:
        yield c


def test_a_duplicates_status_names_its_original_once(dupe_client, dupe_pool: str):
    rows = Datapool(dupe_pool).read().to_pylist()
    sid = next(r[C.SAMPLE_ID] for r in rows if r[C.KEY] == "cams/b.jpg")
    html = dupe_client.get(f"/lightly/pools/dupes/samples/{sid}").text
    status = _text(re.search(r'<div class="box err">Status.*?</div>', html).group(0))
    assert status.count("cams/a.jpg") == 1, status
    assert "same content as 'cams/a.jpg'" in status


def test_a_duplicate_without_a_reason_still_names_its_original():
    from lightly_airflow.plugins.pages import duplicate_text

    assert "a.jpg" in duplicate_text("a.jpg", None)
    assert duplicate_text("a.jpg", "same content as 'a.jpg'") == ""
    assert duplicate_text(None, "anything") == ""


def test_objects_of_a_pool_without_object_runs_say_why_and_how(dupe_client):
    html = dupe_client.get("/lightly/pools/dupes/samples?show=objects").text
    text = _text(html)
    assert "no object-level run has committed" in text
    assert "tasks.json" in text and "EMBEDDINGS" in text and "object_level" in text
    assert "No object matches" not in text
    assert "/lightly/pools/dupes/samples" in html  # (the way back to its images)


def test_a_grid_without_matches_offers_no_export_or_tag(client, configured: PoolFixture):
    html = client.get(f"/lightly/pools/main/samples?lo.{C.SIZE}=1000000000").text
    assert "<b>0</b> samples match" in html
    assert "Nothing here to export, map or save as a tag" in _text(html) and "No sample matches." in _text(html)
    assert "/lightly/pools/main/export" not in html
    assert 'id="tagform"' not in html and "map of these" not in html and 'name="sort"' not in html
    # (a grid with matches keeps them)
    full = client.get("/lightly/pools/main/samples").text
    assert "/lightly/pools/main/export" in full and 'id="tagform"' in full


def test_a_samples_versions_table_scrolls_on_its_own(dupe_client, dupe_pool: str):
    sid = Datapool(dupe_pool).read().to_pylist()[0][C.SAMPLE_ID]
    html = dupe_client.get(f"/lightly/pools/dupes/samples/{sid}").text
    assert re.search(r'<h2>Versions of this sample</h2><div class="hscroll"><table', html)


#: versions of the long pool the home page is timed on
LONG = 60


@pytest.fixture(scope="module")
def long_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("home") / "long")
    build_long_pool(uri, LONG)
    return uri


def test_the_home_page_lists_each_pools_latest_version_and_counts(long_uri: str, dupe_pool: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    pools = {"long": {"uri": long_uri}, "dupes": {"uri": dupe_pool}, "empty": {"uri": str(tmp_path / "none")},
             "broken": {"uri": str(tmp_path / "a-file")}}
    (tmp_path / "a-file").write_text("not a datapool")
    with ui_client(monkeypatch, pools) as c:
        t0 = time.perf_counter()
        html = c.get("/lightly/").text
        took = time.perf_counter() - t0
    rows = {m.group(1): _text(m.group(0)) for m in re.finditer(r'<tr><td><a href="[^"]*/pools/(\w+)">.*?</tr>', html)}
    # long: run r commits version r + 1 with 2 rows, 1 selected (its first run makes version 1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", re.search(r'<tr><td><a href="[^"]*/pools/long">.*?</tr>', html).group(0))
    assert _text(cells[1]) == str(LONG), cells
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", _text(cells[2]))
    assert _text(cells[3]) == f"{2 * LONG:,}" and _text(cells[4]) == f"{LONG:,}", cells
    dupes = re.findall(r"<td[^>]*>(.*?)</td>", re.search(r'<tr><td><a href="[^"]*/pools/dupes">.*?</tr>', html).group(0))
    assert [_text(c) for c in (dupes[1], dupes[3], dupes[4])] == ["1", "2", "1"]  # (version 0: the pool made)
    assert "no commit yet" in rows["empty"]
    assert "cannot read" in rows["broken"]
    assert took < 5, took
