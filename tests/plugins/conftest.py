"""A real datapool for the UI plugin tests: digits as samples, two committed runs, reports written by the report
module, a dry run that only wrote a report, and a FastAPI client with the app mounted at ``/lightly``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.pipeline import reports_dir
from lightly_airflow.report import write_report

DAG_ID = "lightly_datapool"
RUN_1 = "scheduled__2026-01-01T00:00:00+00:00"  # committed, with a report
RUN_2 = "manual__2026-01-02T10:00:00+00:00"  # committed with tag "batch-2", no report
RUN_DRY = "manual__2026-01-03T00:00:00+00:00"  # dry run: a report, no commit
RUN_REVIEW = "manual__2026-01-04T00:00:00+00:00"  # a proposal awaiting review: a report and proposal.json, no commit
EVIL_KEY = 'weird/<script>alert("x")</script>.png'
EVIL_NOTE = '<img src=x onerror=alert(1)>"&'  # a metadata value that looks like HTML


@dataclass(frozen=True)
class PoolFixture:
    uri: str
    path: Path
    picks_1: list[str]  # keys run 1 selected, in pick order
    picks_2: list[str]
    n_1: int
    n_2: int
    source: Path | None = None


def _rows(x: np.ndarray, y: np.ndarray, idx: list[int], picks: list[int], run: int) -> pa.Table:
    keys = [f"digits/{y[i]}/{i:05d}.png" for i in idx]
    if run == 1:
        keys[picks[0]] = EVIL_KEY  # an HTML-looking key on a selected sample: pages must escape it
    rank = {p: r for r, p in enumerate(picks)}
    n = len(idx)
    return pa.table({
        C.KEY: keys,
        C.SIZE: pa.array([64 + i for i in idx], pa.int64()),
        C.ETAG: [hashlib.md5(x[i].tobytes()).hexdigest() for i in idx],
        C.MTIME: pa.array([datetime(2026, 1, run, tzinfo=UTC)] * n, pa.timestamp("ns", tz="UTC")),
        C.CONTENT_HASH: [hashlib.sha256(x[i].tobytes()).hexdigest() for i in idx],
        C.STATUS: [C.STATUS_CORRUPT if j == 3 else C.STATUS_OK for j in range(n)],
        C.STATUS_REASON: ["cannot decode" if j == 3 else None for j in range(n)],
        C.DUPLICATE_OF: pa.nulls(n, pa.string()),
        C.EMBEDDING: pa.array([None if j == 3 else x[i].tolist() for j, i in enumerate(idx)], pa.list_(pa.float32(), 64)),
        C.lightly_metadata_column("luminance"): pa.array([float(x[i].mean()) for i in idx]),
        "metadata.note": [EVIL_NOTE if j % 2 else f"digit {y[i]}" for j, i in enumerate(idx)],
        C.SELECTED: [j in rank for j in range(n)],
        C.PICK_RANK: pa.array([rank.get(j) for j in range(n)], pa.int64()),
    })


def _commit(pool: Datapool, rows: pa.Table, run_id: str, tag: str | None, source: str | None = None) -> None:
    from lightly_airflow.report.layout import add_layout

    pool.commit(
        add_layout(rows, pool.uri), run_id=run_id, dag_id=DAG_ID, tag=tag,
        config={"strategies": [{"input": {"type": "EMBEDDINGS"}}]},
        counts={"processed": rows.num_rows, "selected": int(sum(rows.column(C.SELECTED).to_pylist()))},
        embedding_model="digits-pixels", embedding_dim=64, read_version=pool.version(), datasource_uri=source,
    )


def _images(rows: pa.Table, images: np.ndarray, idx: list[int], source: Path, pool_uri: str) -> pa.Table:
    """Write the run's digits as PNG files into the datasource and their thumbnails next to the pool; the rows
    with each file's etag as the listing records it (``sha256:`` of the content: the sample page compares it)."""
    from PIL import Image

    from lightly_airflow.datapool import sample_id
    from lightly_airflow.thumbnails import ThumbnailWriter, thumbnails_uri

    thumbs = ThumbnailWriter(thumbnails_uri(pool_uri))
    etags = []
    for key, i in zip(rows.column(C.KEY).to_pylist(), idx, strict=True):
        img = Image.fromarray((images[i] * 15).astype(np.uint8)).resize((64, 64), Image.Resampling.NEAREST).convert("RGB")
        path = source / key
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, format="PNG")
        etags.append("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())
        thumbs.add(sample_id(key, etags[-1]), img)
    thumbs.close()
    return rows.set_column(rows.schema.get_field_index(C.ETAG), C.ETAG, pa.array(etags, pa.string()))


def _report(rows: pa.Table, uri: str, run_id: str) -> None:
    selected = int(sum(rows.column(C.SELECTED).to_pylist()))
    write_report(
        rows, out_uri=reports_dir(uri, run_id), summary={"run_id": run_id, "processed": rows.num_rows, "selected": selected},
        config={"n_samples": selected, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]},
    )


@pytest.fixture(scope="session")
def pool_fixture(tmp_path_factory: pytest.TempPathFactory) -> PoolFixture:
    digits = load_digits()
    x = digits.data.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = digits.target
    path = tmp_path_factory.mktemp("ui") / "pool"
    source = path.parent / "images"
    uri = f"file://{path}"
    pool = Datapool(uri)
    picks_1 = [5, 0, 17, 30, 2, 9, 44, 21]  # indices into run 1's rows, in pick order
    rows_1 = _rows(x, y, list(range(60)), picks_1, run=1)
    rows_1 = _images(rows_1, digits.images, list(range(60)), source, uri)
    _commit(pool, rows_1, RUN_1, None, source=f"file://{source}")
    _report(rows_1, uri, RUN_1)
    picks_2 = [1, 4, 8]
    rows_2 = _rows(x, y, list(range(60, 100)), picks_2, run=2)
    _commit(pool, rows_2, RUN_2, "batch-2")
    rows_dry = _rows(x, y, list(range(100, 130)), [0, 1], run=3)
    _report(rows_dry, uri, RUN_DRY)
    rows_review = _rows(x, y, list(range(130, 150)), [3], run=4)
    _report(rows_review, uri, RUN_REVIEW)
    from lightly_airflow.review import PROPOSAL_FILE, proposal_record

    (Path(reports_dir(str(path), RUN_REVIEW)) / PROPOSAL_FILE).write_bytes(
        proposal_record(RUN_REVIEW, 2, rows_review.column(C.KEY).to_pylist()[3:4], {"selected": 1}))
    keys_1, keys_2 = rows_1.column(C.KEY).to_pylist(), rows_2.column(C.KEY).to_pylist()
    return PoolFixture(uri, path, [keys_1[p] for p in picks_1], [keys_2[p] for p in picks_2], 60, 40, source)


@pytest.fixture
def configured(pool_fixture: PoolFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PoolFixture:
    """``LIGHTLY_DATAPOOLS`` names the pool ``main`` and a pool nobody committed to yet (``empty``)."""
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps({
        "main": {"uri": pool_fixture.uri},
        "empty": {"uri": str(tmp_path / "no-pool-yet")},
    }))
    return pool_fixture


@pytest.fixture
def client(configured: PoolFixture) -> Iterator:
    """The plugin app mounted at ``/lightly`` as Airflow mounts it, with Airflow's auth checks overridden."""
    from ui_client import ui_client

    with ui_client() as c:  # (``configured`` set LIGHTLY_DATAPOOLS)
        yield c
