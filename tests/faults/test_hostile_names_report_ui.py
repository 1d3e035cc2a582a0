"""Hostile file names through the run report and the UI (issue 14, fault suite): every page escapes them, a
newline shows as ``\\n`` instead of breaking a line, and every sample link of the UI leads to the sample of
exactly that file, whose image is exactly that file's bytes. (``test_export_injection.py`` covers the exports.)"""

from __future__ import annotations

import html
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datapool.conftest import DIM, MODEL, run_rows
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.report import write_report
from lightly_airflow.report.html import visible_key
from lightly_airflow.staging import reports_dir, run_slug

from .hostile import HOSTILE_KEYS

RUN = "manual__hostile"


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])
        if tag == "script" and not dict(attrs).get("src"):
            self.scripts += 1


def _anchors(page: str) -> _Anchors:
    parser = _Anchors()
    parser.feed(page)
    return parser


@pytest.fixture
def hostile_pool(tmp_path: Path, digits) -> tuple[str, Path, dict[str, bytes]]:
    """A datasource whose files have the hostile names (each a distinct PNG) and a pool that selected them all."""
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    files: dict[str, bytes] = {}
    for i, key in enumerate(HOSTILE_KEYS):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(buf, format="PNG")
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(buf.getvalue())
        files[key] = buf.getvalue()
    rows = run_rows(digits, range(len(HOSTILE_KEYS)), picks=list(range(len(HOSTILE_KEYS) - 1)))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(HOSTILE_KEYS, pa.string()))
    rows = rows.set_column(rows.schema.get_field_index(C.STATUS), C.STATUS,
                           pa.array([C.STATUS_OK] * (len(HOSTILE_KEYS) - 1) + [C.STATUS_CORRUPT]))
    uri = f"file://{pool_dir}"
    pool = Datapool(uri)
    pool.commit(rows, run_id=RUN, dag_id="curate", tag="hostile", config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=None, datasource_uri=f"file://{source}")
    summary = {"run_id": RUN, "processed": rows.num_rows, "selected": rows.num_rows, "listing": {
        "skipped": 2, "skipped_examples": [[HOSTILE_KEYS[1], "a symlink out of the datasource"],
                                           [HOSTILE_KEYS[9], "a symlink out of the datasource"]]}}
    write_report(pool.read(), out_uri=reports_dir(uri, RUN), summary=summary,
                 config={"n_samples": 15, "strategies": [{"input": {"type": "EMBEDDINGS"},
                                                          "strategy": {"type": "DIVERSITY"}}]})
    return uri, pool_dir, files


def _escaped(key: str) -> str:
    return html.escape(visible_key(key))


def test_the_report_escapes_every_hostile_name(hostile_pool) -> None:
    _uri, pool_dir, _files = hostile_pool
    page = (pool_dir / "_reports" / run_slug(RUN) / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page and _anchors(page).scripts == 0
    for key in HOSTILE_KEYS:
        assert _escaped(key) in page, key  # in the selected table, each on one line with its escapes visible
    assert "a\\nfile:/etc/passwd.png" in page and "b\\r\\nc.png" in page and "a\\tb.png" in page
    assert "\nfile:/etc/passwd" not in page
    # The report links no file by a name taken from the data (its links are its own files and the UI's pages).
    assert not any(key in h or _escaped(key) in h for h in _anchors(page).hrefs for key in HOSTILE_KEYS)


def test_the_ui_escapes_hostile_names_and_its_links_open_exactly_that_file(hostile_pool, monkeypatch) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lightly_airflow.plugins import app as plugin_app

    uri, _pool_dir, files = hostile_pool
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps({"main": {"uri": uri}}))
    sub = plugin_app.create_app()
    for dep in (plugin_app.AUTHENTICATED, plugin_app.CAN_READ_RUNS, plugin_app.CAN_TAG, plugin_app.CURRENT_USER):
        sub.dependency_overrides[dep] = lambda: None
    root = FastAPI()
    root.mount("/lightly", sub)
    rows = Datapool(uri).read(columns=[C.KEY, C.SAMPLE_ID])
    by_sid = dict(zip(rows.column(C.SAMPLE_ID).to_pylist(), rows.column(C.KEY).to_pylist()))
    with TestClient(root, follow_redirects=False) as client:
        tag_page = client.get("/lightly/pools/main/tags/hostile")
        grid = client.get("/lightly/pools/main/samples", params={"limit": 100})
        report = client.get(f"/lightly/pools/main/reports/{run_slug(RUN)}/index.html")
        for page in (tag_page, grid, report):
            assert page.status_code == 200, page.url
            assert "<script>alert(1)</script>" not in page.text and '"double\' single' not in page.text
        sample_links = sorted({h.split("?")[0] for h in _anchors(grid.text).hrefs
                               if "/samples/" in h and h.split("?")[0].rsplit("/", 1)[-1] in by_sid})
        assert len(sample_links) == len(HOSTILE_KEYS)  # one link per file, none lost or merged
        for link in sample_links:
            key = by_sid[link.rsplit("/", 1)[-1]]
            sample = client.get(link)
            assert sample.status_code == 200 and html.escape(key) in sample.text, key
            image = client.get(f"{link}/image")
            assert image.status_code == 200 and image.content == files[key], key  # exactly that file's bytes
        api = client.get("/lightly/api/pools/main/tags/hostile", params={"limit": 100}).json()
        assert sorted(s["key"] for s in api["samples"]) == sorted(HOSTILE_KEYS[:-1])  # the exact keys, as JSON
