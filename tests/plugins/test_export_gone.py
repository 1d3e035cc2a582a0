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
