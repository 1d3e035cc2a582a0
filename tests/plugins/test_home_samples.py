"""The home page's "Samples" of a pool: its latest version's distinct samples, each once however many runs processed
it (it summed the runs' processed counts: a sample processed again counted once a run), and where counting them
would read too many data files the summed figure, labelled "processed"."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
from long_pool import build_long_pool
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins import data as D

RUNS = 3  # (tests/long_pool.py: two samples a run)


def _again(pool: Datapool) -> None:
    """A run that processes run 0's two samples again (the same files: a ``process_all`` run), picking none."""
    rows = pa.table({
        C.KEY: [f"r0/{i}.jpg" for i in range(2)], C.ETAG: [f"e0-{i}" for i in range(2)], C.STATUS: ["ok"] * 2,
        C.EMBEDDING: pa.array([[0.1, 0.2, 0.3, 0.0]] * 2, pa.list_(pa.float32(), 4)),
        C.SELECTED: [False, False], C.PICK_RANK: pa.array([None, None], pa.int64()),
    })
    pool.commit(rows, run_id="manual__again", dag_id="hourly", tag=None, config={}, counts={"processed": 2},
                embedding_model="m", embedding_dim=4, read_version=pool.version())


@pytest.fixture(scope="module")
def reprocessed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("home") / "pool"
    _again(build_long_pool(str(path), RUNS))
    return path


def _samples_cell(page: str) -> str:
    row = re.search(r'<tr><td><a href="[^"]*/pools/p">p</a></td>(.*?)</tr>', page, re.S)
    assert row, page
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)[2]


def test_a_sample_processed_again_counts_once(reprocessed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ui_client(monkeypatch, {"p": {"uri": str(reprocessed)}}) as c:
        page = c.get("/lightly/").text
        grid = c.get("/lightly/api/pools/p/samples?limit=1").json()
    assert _samples_cell(page) == "6"  # (summed: 8, run 0's two samples twice)
    assert grid["total"] == 6  # (as the grid counts them)


def test_a_pool_of_many_files_shows_its_runs_counts_labelled(reprocessed: Path, monkeypatch) -> None:
    monkeypatch.setattr(D, "EXACT_SAMPLES_FILES", 1)
    D._samples_cache.clear()
    with ui_client(monkeypatch, {"p": {"uri": str(reprocessed)}}) as c:
        cell = _samples_cell(c.get("/lightly/").text)
    assert re.fullmatch(r'<span title="[^"]*processed again counts once a run">8 processed</span>', cell), cell


def test_a_pool_missing_a_data_file_keeps_its_line(reprocessed: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    """A data file deleted outside lightly-airflow fails the count: the line shows the runs' counts (logged), not
    "cannot read" for the whole pool (its history reads no data file)."""
    import shutil

    copy = tmp_path / "pool"
    shutil.copytree(reprocessed, copy)
    next(copy.rglob("*.parquet")).unlink()
    with ui_client(monkeypatch, {"p": {"uri": str(copy)}}) as c:
        cell = _samples_cell(c.get("/lightly/").text)
    assert cell.endswith("8 processed</span>"), cell
    assert "cannot count the samples of version 4" in caplog.text
