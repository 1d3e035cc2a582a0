"""The facet summary of a pool with many numeric columns (a detection task's category counts): one scan for all
the histograms, not one per column (a UNION ALL of a scan per column grew with the square of the columns:
1,000 columns of a 20,000-image pool took 11 s and 3 GB)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins import query as Q
from lightly_airflow.plugins.config import PoolSpec

N_COLUMNS = 120


def _rows(run: int, n: int, rng: np.random.Generator) -> pa.Table:
    table: dict[str, object] = {
        C.KEY: [f"run{run}/{i:04d}.jpg" for i in range(n)], C.ETAG: [f"e{run}-{i}" for i in range(n)],
        C.STATUS: ["ok"] * n, C.EMBEDDING: pa.array(rng.random((n, 4)).astype(np.float32).tolist(), pa.list_(pa.float32(), 4)),
        C.SELECTED: [i < 3 for i in range(n)], C.PICK_RANK: pa.array([i if i < 3 else None for i in range(n)], pa.int64()),
        C.lightly_metadata_column("brightness"): pa.array([None if i % 7 == 0 else float(v) for i, v in enumerate(rng.random(n))]),
    }
    for j in range(N_COLUMNS):
        table[C.category_count_column("det", f"cat{j:03d}")] = pa.array(rng.integers(0, 3 + j % 5, n), pa.int64())
    return pa.table(table)


def test_histograms_of_many_columns_are_one_scan_and_match_numpy(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    pool = Datapool(str(tmp_path / "pool"))
    parts = []
    for run in range(3):  # (several data files: the scan streams batch by batch)
        rows = _rows(run, 150 + 50 * run, rng)
        pool.commit(rows, run_id=f"run-{run}", dag_id="d", tag=None, config={}, counts={}, embedding_model="m",
                    embedding_dim=4, read_version=pool.version())
        parts.append(rows)
    every = pa.concat_tables(parts, promote_options="permissive")
    scans: list[str] = []
    real_query, real_batches = Q.query, getattr(Q, "query_batches", None)

    def query(table, sql, **kw):  # type: ignore[no-untyped-def]
        scans.append(sql)
        return real_query(table, sql, **kw)

    def query_batches(table, sql):  # type: ignore[no-untyped-def]
        scans.append(sql)
        assert real_batches is not None
        return real_batches(table, sql)

    monkeypatch.setattr(Q, "query", query)
    monkeypatch.setattr(Q, "query_batches", query_batches, raising=False)
    monkeypatch.setattr(Q, "HISTOGRAM_BLOCK_VALUES", 5_000, raising=False)  # (several blocks of batches binned)
    facets = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))._facets(Q.SHOW_IMAGES)

    ranged = [c for c, f in facets.items() if f["kind"] == "number" and f["min"] != f["max"]]
    assert len(ranged) > N_COLUMNS
    # every histogram from one scan: the table read a fixed number of times, whatever the number of columns
    categories = sum(1 for f in facets.values() if f["kind"] == "category")
    assert sum(sql.count("FROM pool") for sql in scans) <= 3 + categories + 2
    checked = [c for c in ranged if c.startswith((C.PREDICTIONS_PREFIX, C.METADATA_PREFIX))]
    assert len(checked) == N_COLUMNS + 1
    for column in checked:
        values = every.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        values = values[~np.isnan(values)]
        want, _ = np.histogram(values, bins=Q.HISTOGRAM_BINS, range=(values.min(), values.max()))
        assert facets[column]["bins"] == want.tolist(), column
        assert facets[column]["nulls"] == every.num_rows - len(values)


def test_category_facets_and_histograms_are_one_scan(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every category column's counts come from the histograms' scan (a GROUP BY per column scanned every data
    file again: 0.3 s a column in a pool of 800 small files), and the histograms' bounds from the Delta log's file
    statistics (a MIN/MAX query first was a scan more): one query for the facets, whatever the columns; values by
    count, ties by value; a column with more than MAX_CATEGORIES values, or none, is left out."""
    n = 60
    pool = Datapool(str(tmp_path / "pool"))
    parts = []
    for run in range(4):  # (one data file a run and partition: the counts add up over files and batches)
        rows = pa.table({
            C.KEY: [f"run{run}/{i:04d}.jpg" for i in range(n)], C.ETAG: [f"e{run}-{i}" for i in range(n)],
            C.STATUS: ["corrupt" if i % 9 == 8 else "ok" for i in range(n)],
            C.EMBEDDING: pa.array([[0.5, 0.5, 0.5, float(i)] for i in range(n)], pa.list_(pa.float32(), 4)),
            C.SELECTED: [i < 5 for i in range(n)], C.PICK_RANK: pa.array([i if i < 5 else None for i in range(n)], pa.int64()),
            "metadata.camera": [f"cam{(i + run) % 4}" if i % 10 else None for i in range(n)],  # (ties, nulls)
            "metadata.file": [f"f{run}-{i}" for i in range(n)],  # (240 values: not a category)
            "metadata.empty": pa.nulls(n, pa.string()),  # (no value: left out)
        })
        pool.commit(rows, run_id=f"run-{run}", dag_id="d", tag=None, config={}, counts={}, embedding_model="m",
                    embedding_dim=4, read_version=pool.version() if run else None)
        parts.append(rows)
    every = pa.concat_tables(parts)
    scans: list[str] = []
    real_sql, real_batches = Q.View.sql, Q.View.sql_batches
    monkeypatch.setattr(Q.View, "sql", lambda self, text: scans.append(text) or real_sql(self, text))
    monkeypatch.setattr(Q.View, "sql_batches", lambda self, text: scans.append(text) or real_batches(self, text))
    monkeypatch.setattr(Q, "HISTOGRAM_BLOCK_VALUES", 100, raising=False)  # (many blocks: counts added block by block)
    view = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))
    view._whole()  # (the version's counts, read first by every page: the facets ask whether a sample has two rows)
    scans.clear()
    facets = view._facets(Q.SHOW_IMAGES)

    assert len(scans) == 1, scans
    assert "metadata.file" not in facets and "metadata.empty" not in facets
    for column in (C.STATUS, C.SELECTED, "metadata.camera"):
        counts = every.group_by(column).aggregate([([], "count_all")]).to_pylist()
        want = sorted(([Q._text(r[column]), r["count_all"]] for r in counts), key=lambda vn: (-vn[1], vn[0]))
        assert facets[column] == {"kind": "category", "values": want}, column
    assert facets["metadata.camera"]["values"] == [["cam0", 54], ["cam1", 54], ["cam2", 54], ["cam3", 54],
                                                   ["(none)", 24]]
    assert facets[C.PICK_RANK]["bins"][0] == 4 and sum(facets[C.PICK_RANK]["bins"]) == 20
