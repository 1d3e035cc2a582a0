"""The UI's exports say which exported files the datasource's latest listing no longer holds (``file_gone``)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lightly_airflow.datapool import Datapool
from lightly_airflow.datasource.gone import GoneFiles, write_gone

from .conftest import RUN_1, PoolFixture, _rows


def test_csv_export_marks_files_gone_and_the_header_counts_them(pool_fixture: PoolFixture, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ui_client import ui_client

    path = tmp_path / "pool"
    shutil.copytree(pool_fixture.path, path)
    pool = Datapool(f"file://{path}")
    gone = pool_fixture.picks_1[1:3]  # two of run 1's selected files, deleted from the datasource since
    digits = load_digits()
    x = digits.data.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    later = _rows(x, digits.target, list(range(130, 140)), [0], run=4)
    write_gone(GoneFiles(keys=gone), pool.uri, "later", None)
    pool.commit(later, run_id="later", dag_id="d", tag="later", config={}, counts={"gone": 2},
                embedding_model="digits-pixels", embedding_dim=64, read_version=pool.version(),
                datasource_uri=f"file://{pool_fixture.source}")
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps({"main": {"uri": pool.uri}}))
    with ui_client() as client:
        got = client.get(f"/lightly/pools/main/export?format=csv&run={quote(RUN_1)}&in.selected=true")
        assert got.status_code == 200 and got.headers["x-lightly-files-gone"] == "2"
        table = list(csv.DictReader(io.StringIO(got.text)))
        assert [r["key"] for r in table] == pool_fixture.picks_1  # still exported
        assert {r["key"] for r in table if r["file_gone"] == "true"} == set(gone)
        assert {r["file_gone"] for r in table if r["key"] not in gone} == {"false"}
        listing = client.get(f"/lightly/pools/main/export?format=list&run={quote(RUN_1)}&in.selected=true")
        assert listing.headers["x-lightly-files-gone"] == "2"
        other = client.get("/lightly/pools/main/export?format=list&tag=batch-2")
        assert other.headers["x-lightly-files-gone"] == "0"


def test_the_grid_says_how_many_images_a_browser_shows_blank_and_how_to_export_copies(
        pool_fixture: PoolFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """iPhone HEIC and TIFF files export as they are: a labelling tool in the browser shows them blank. The CLI's
    export warned (and writes copies with --viewable-copies); the UI's grid, where its export links are, said
    nothing. It counts them in the scope and names the command."""
    import pyarrow as pa
    from ui_client import ui_client

    from lightly_airflow import columns as C

    path = tmp_path / "pool"
    shutil.copytree(pool_fixture.path, path)
    pool = Datapool(f"file://{path}")
    digits = load_digits()
    x = digits.data.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = _rows(x, digits.target, list(range(140, 146)), [0, 1, 2], run=4)
    keys = ["phone/IMG_0001.HEIC", "phone/IMG_0002.heic", "scans/a.TIF", "phone/IMG_0003.jpg", "b.heic.png",
            "scans/c.tiff"]
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    pool.commit(rows, run_id="phone", dag_id="d", tag="phone", config={}, counts={},
                embedding_model="digits-pixels", embedding_dim=64, read_version=pool.version(),
                datasource_uri=f"file://{pool_fixture.source}")
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps({"main": {"uri": pool.uri}}))
    with ui_client() as client:
        page = client.get("/lightly/pools/main/samples?tag=phone").text  # picks: the first three rows
        assert "3 of these are HEIC/TIFF images" in page and "--tag phone --format label-studio --viewable-copies" in page
        everything = client.get("/lightly/pools/main/samples?run=phone").text
        assert "4 of these are HEIC/TIFF images" in everything  # (b.heic.png is a PNG)
        assert "HEIC/TIFF" not in client.get(f"/lightly/pools/main/samples?run={quote(RUN_1)}").text
