"""The grid's edges a user meets (session 62's audit in a browser): a page past the last one (a bookmark, a grid
a filter made shorter) says where the last page is instead of "no sample matches" under a count of 100, and its
"previous" goes there; one match is "1 sample matches"; a key longer than a card can show is cut in its middle
(its start and its file name kept, the whole key in the link's title), not drawn over twenty lines that make the
whole row as tall; and a failure the routes do not expect answers the plugin's error page naming it, not
Starlette's bare "Internal Server Error"."""

from __future__ import annotations

import re
import shutil
from html import unescape
from pathlib import Path

import pytest

from lightly_airflow.plugins.pages import CARD_KEY, card_key

from .conftest import PoolFixture


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


def test_a_page_past_the_last_says_where_the_last_page_is(client, configured: PoolFixture):
    total = configured.n_1 + configured.n_2  # 100: pages of 60 start at 0 and 60
    html = client.get("/lightly/pools/main/samples?sort=key&offset=600").text
    text = _text(html)
    assert f"{total} samples match (none shown)" in text
    assert "No sample matches" not in text
    assert f"This page is past the last sample: {total} match, the last page shows 61–{total}." in text
    last = re.search(r'<a href="([^"]*)">Go to the last page</a>', html)
    prev = re.search(r'<a href="([^"]*)" rel="prev">', html)
    assert last and prev and "offset=60" in unescape(last.group(1)) and "offset=60" in unescape(prev.group(1))
    assert "sort=key" in unescape(prev.group(1))  # (the grid's order kept)
    # that page is the last one: its cards, no "next"
    page = client.get(unescape(last.group(1)))
    assert page.text.count('class="card') == total - 60 and 'rel="next"' not in page.text


def test_a_filter_that_matches_nothing_still_says_so(client):
    text = _text(client.get("/lightly/pools/main/samples?lo.size=100000").text)
    assert "0 samples match (none shown)" in text and "No sample matches." in text and "past the last" not in text


def test_one_match_is_one_sample(client, configured: PoolFixture):
    text = _text(client.get("/lightly/pools/main/samples?tag=batch-2&lo.pick_rank=0&hi.pick_rank=0").text)
    assert "1 sample matches (1–1 shown)" in text and configured.picks_2[0] in text


def test_a_long_key_is_cut_in_its_middle_on_its_card():
    short = "batch-1/photos/cat.jpg"
    long = "camera-front-left-2026-03-01/" * 5 + "very-long-" * 10 + "frame-000123.jpg"
    assert card_key(short) == short and card_key(None) == ""
    cut = card_key(long)
    assert len(cut) == CARD_KEY and cut.startswith("camera-front-left-20…") and cut.endswith("very-long-frame-000123.jpg")


def test_a_card_shows_the_cut_key_and_titles_the_whole_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from ui_client import ui_client

    pool_uri = _one_image_pool(tmp_path, key := "camera-front-left-2026-03-01/" * 5 + "very-long-" * 10 + "x.png")
    with ui_client(monkeypatch, {"p": {"uri": pool_uri}}) as c:
        html = c.get("/lightly/pools/p/samples").text
    link = re.search(r'<div class="cap">.*?<a href="[^"]*" title="([^"]*)">([^<]*)</a>', html)
    assert link, html[-3000:]
    assert unescape(link.group(1)) == key and unescape(link.group(2)) == card_key(key) != key


def _one_image_pool(tmp_path: Path, key: str) -> str:
    """A datapool of one selected sample under ``key``, committed as a run commits (``Datapool.commit``)."""
    from datetime import UTC, datetime

    import pyarrow as pa

    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.report.layout import add_layout

    pool = Datapool(f"file://{tmp_path / 'pool'}")
    rows = pa.table({
        C.KEY: [key], C.SIZE: pa.array([10], pa.int64()), C.ETAG: ["sha256:00"],
        C.MTIME: pa.array([datetime(2026, 1, 1, tzinfo=UTC)], pa.timestamp("ns", tz="UTC")),
        C.CONTENT_HASH: ["00"], C.STATUS: [C.STATUS_OK], C.STATUS_REASON: pa.nulls(1, pa.string()),
        C.DUPLICATE_OF: pa.nulls(1, pa.string()), C.EMBEDDING: pa.array([[1.0, 0.0]], pa.list_(pa.float32(), 2)),
        C.SELECTED: [True], C.PICK_RANK: pa.array([0], pa.int64()),
    })
    pool.commit(add_layout(rows, pool.uri), run_id="r1", dag_id="d", tag=None, config={}, counts={"processed": 1},
                embedding_model="m", embedding_dim=2, read_version=pool.version())
    return pool.uri


def test_an_unexpected_failure_answers_the_error_page_naming_it(configured: PoolFixture, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    """A data file of the pool that is not Parquet (a truncated upload, a disk error): the grid's query fails in
    delta-rs with an error no route expects."""
    from fastapi.testclient import TestClient
    from ui_client import ui_client

    copy = tmp_path / "broken"
    shutil.copytree(configured.path, copy)
    for data in copy.rglob("*.parquet"):
        if not any(part.startswith("_") for part in data.relative_to(copy).parts):
            data.write_bytes(b"not parquet")
    with ui_client(monkeypatch, {"broken": {"uri": f"file://{copy}"}}) as plain, \
            TestClient(plain.app, raise_server_exceptions=False) as c:  # (the answer, not the exception re-raised)
        page = c.get("/lightly/pools/broken/samples")
        api = c.get("/lightly/api/pools/broken/samples")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    text = _text(page.text)
    assert "Server error" in text and "The server failed to answer /lightly/pools/broken/samples: " in text
    assert "arquet" in text and "reload to try again" in text and "Datapools" in text  # (the way back)
    assert api.status_code == 500 and "The server failed to answer" in api.json()["detail"]


def test_a_refused_tag_links_back_to_the_grid_it_came_from(client):
    """A tag name that is taken: the error page links back to the grid (its filters in the query), not only to the
    list of datapools; a form from another site gets no such link (it is refused, 403)."""
    grid = "/lightly/pools/main/samples?tag=batch-2&lo.size=0"
    refused = client.post("/lightly/pools/main/tags", data={"name": "batch-2", "tag": "batch-2"},
                          headers={"referer": f"http://testserver{grid}"})
    assert refused.status_code == 409
    back = re.search(r'<a href="([^"]*)">← back to the page you came from</a>', refused.text)
    assert back and unescape(back.group(1)) == grid
    elsewhere = client.post("/lightly/pools/main/tags", data={"name": "x1"}, headers={"referer": "http://evil.test/a"})
    assert elsewhere.status_code == 403 and "back to the page" not in elsewhere.text


def test_the_tag_name_box_says_its_rule():
    """The browser's own message for a name the pattern refuses is "Please match the requested format." followed by
    the input's title: the title is the rule."""
    from lightly_airflow.plugins.pages import save_tag_form
    from lightly_airflow.plugins.query import Scope

    form = save_tag_form("/lightly", "p", Scope(version=1), checkable=True)
    title = re.search(r'<input name="name"[^>]* title="([^"]*)"', form)
    assert title and "at most 128 characters" in unescape(title.group(1)) and ". _ : ; = @ + -" in unescape(title.group(1))


def test_the_export_links_are_the_datapool_s_formats(monkeypatch: pytest.MonkeyPatch):
    """The grid links every format ``datapool.export.FORMATS`` has (the UI kept its own list: a format registered
    there, ``register_format``, was exported by the CLI but never linked), by its label or its name."""
    from lightly_airflow.datapool import export
    from lightly_airflow.plugins.pages import export_links
    from lightly_airflow.plugins.query import Scope

    monkeypatch.setitem(export.FORMATS, "yolo", lambda records, tag: "")
    links = unescape(export_links("/root", "demo", Scope(version=3)))
    assert re.findall(r">([^<]+)</a>", links) == ["file list", "CSV", "Label Studio", "COCO", "file names",
                                                   "Labelbox", "yolo"]
    assert "format=yolo" in links and "version=3" in links


def test_a_sample_page_s_breadcrumbs_cut_a_long_key_as_its_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A 330-character key filled three lines of the sample page's breadcrumbs (at 1360 px); the line under the
    title still shows it whole."""
    from ui_client import ui_client

    pool_uri = _one_image_pool(tmp_path, key := "very-long-folder-name-" * 6 + "/" + "sub-" * 20 + "/x.png")
    with ui_client(monkeypatch, {"p": {"uri": pool_uri}}) as c:
        sid = c.get("/lightly/api/pools/p/samples").json()["items"][0]["sample_id"]
        html = c.get(f"/lightly/pools/p/samples/{sid}").text
    crumbs = re.search(r"<nav>(.*?)</nav>", html)
    assert crumbs and _text(crumbs.group(1)).endswith(" / " + card_key(key)) and key not in _text(crumbs.group(1))
    assert f"<code>{key}</code>" in html


def test_a_sample_missing_from_an_older_version_says_the_latest_has_it(client, configured: PoolFixture):
    """A sample run 2 committed, opened at version 1 (a bookmark, a link from a newer grid): the 404 said only "no
    sample at version 1"; it says the latest version has it now. A sample no version has: no such hint."""
    from .conftest import RUN_2

    sid = client.get("/lightly/api/pools/main/samples", params={"run": RUN_2}).json()["items"][0]["sample_id"]
    r = client.get(f"/lightly/pools/main/samples/{sid}?version=1")
    assert r.status_code == 404
    assert "has no sample" in r.text and "the latest version (2) has it" in _text(r.text)
    gone = client.get("/lightly/pools/main/samples/" + "0" * 32 + "?version=1")
    assert gone.status_code == 404 and "latest version" not in gone.text
