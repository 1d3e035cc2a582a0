"""How often the samples page of a pool with a long, uncompacted history reads every data file (a pool of 800 small
files: ~0.3 s a scan). A cold page: one query for the version's rows, distinct samples and unviewable images (which
are the grid's counts where no sample was processed twice), one for the grid's rows, one scan for the facets (their
histograms' bounds from the Delta log's file statistics, checked by that scan); its next pages and a reload: none
(rows kept in blocks per version, scope and order). What they show is what the queries they replace said."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from long_pool import build_long_pool

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import UNVIEWABLE_IMAGES
from lightly_airflow.datapool.reading import query, query_batches
from lightly_airflow.plugins import query as Q
from lightly_airflow.plugins.config import PoolSpec

RUNS = 12  # (tests/long_pool.py: two rows a run, one selected: two data files a version)


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query the views run from here on."""
    seen: list[str] = []
    real_sql, real_batches = Q.View.sql, Q.View.sql_batches
    monkeypatch.setattr(Q.View, "sql", lambda self, text: seen.append(text) or real_sql(self, text))
    monkeypatch.setattr(Q.View, "sql_batches", lambda self, text: seen.append(text) or real_batches(self, text))
    return seen


@pytest.fixture
def long_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from ui_client import ui_client

    build_long_pool(str(tmp_path / "pool"), RUNS)
    with ui_client(monkeypatch, {"p": {"uri": str(tmp_path / "pool")}}) as c:
        yield c


def _commit(pool: Datapool, rows: pa.Table, run: int) -> None:
    pool.commit(rows, run_id=f"run-{run}", dag_id="d", tag=None, config={}, counts={}, embedding_model="m",
                embedding_dim=2, read_version=pool.version() if pool.exists() else None)


def _rows(keys: list[str], **columns: pa.Array) -> pa.Table:
    n = len(keys)
    return pa.table({
        C.KEY: keys, C.ETAG: [f"e-{k}" for k in keys], C.STATUS: ["ok"] * n,
        C.EMBEDDING: pa.array([[1.0, 0.0]] * n, pa.list_(pa.float32(), 2)),
        C.SELECTED: [i == 0 for i in range(n)], C.PICK_RANK: pa.array([0] + [None] * (n - 1), pa.int64()),
        **columns,
    })


def test_a_cold_samples_page_reads_the_pool_three_times_and_its_next_pages_not_again(long_client, scans) -> None:
    first = long_client.get("/lightly/pools/p/samples", params={"limit": 4})
    assert first.status_code == 200 and f"<b>{2 * RUNS}</b> samples match" in first.text
    # the version's counts, the grid's block of rows, the facets' one scan (no MIN/MAX, no COUNT DISTINCT of its own)
    assert len(scans) == 3, scans
    assert "COUNT(DISTINCT" in scans[0] and "LIMIT 240" in scans[1] and "MIN(" not in scans[2]
    scans.clear()
    for offset in (4, 8, 0):  # the next pages and a reload: the block read for the first page
        page = long_client.get("/lightly/pools/p/samples", params={"limit": 4, "offset": offset})
        assert page.status_code == 200 and f"{offset + 1}–{offset + 4} shown" in page.text
    assert scans == []
    filtered = long_client.get("/lightly/pools/p/samples", params={"limit": 4, "in.selected": "true"})
    assert f"<b>{RUNS}</b> samples match" in filtered.text
    assert len(scans) == 2, scans  # its rows and its count; the version's counts and facets were kept


def test_the_grid_pages_from_blocks_are_the_rows_of_their_own_queries(tmp_path: Path) -> None:
    build_long_pool(str(tmp_path / "pool"), RUNS)
    view = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))
    every = view.sql(f'SELECT "{C.SAMPLE_ID}", "{C.KEY}" FROM pool ORDER BY "{C.KEY}" DESC, "{C.SAMPLE_ID}"')
    want = every.column(C.KEY).to_pylist()
    got = []
    for offset in range(0, 2 * RUNS, 5):
        page = view.grid(Q.Scope(), sort=C.KEY, descending=True, offset=offset, limit=5)
        assert page["total"] == 2 * RUNS
        got += [item[C.KEY] for item in page["items"]]
    assert got == want
    walk = view.walk(Q.Scope(), every.column(C.SAMPLE_ID)[7].as_py(), sort=C.KEY, descending=True, at=7)
    assert walk is not None and walk.before == every.column(C.SAMPLE_ID)[6].as_py()


def _sql_facets(view: Q.View, columns: list[str], rows: str) -> dict[str, dict[str, object]]:
    """MIN, MAX and COUNT of each column by SQL, and its histogram between them: what the facets said before."""
    out: dict[str, dict[str, object]] = {}
    for c in columns:
        q = f'"{c}"'
        got = view.sql(f"SELECT COUNT(*) AS t, MIN({q}) AS a, MAX({q}) AS b, COUNT({q}) AS n FROM pool WHERE {rows}"
                       ).to_pylist()[0]
        if got["a"] is None or (isinstance(got["a"], float) and not math.isfinite(got["a"])):
            continue
        out[c] = {"kind": "number", "min": got["a"], "max": got["b"], "nulls": got["t"] - got["n"]}
        if math.isfinite(got["a"]) and math.isfinite(got["b"]) and float(got["a"]) < float(got["b"]):
            v = view.sql(f"SELECT CAST({q} AS DOUBLE) AS v FROM pool WHERE {rows}").column("v")
            v = v.to_numpy(zero_copy_only=False).astype(np.float64)
            v = v[~np.isnan(v)]
            low, width = float(got["a"]), (float(got["b"]) - float(got["a"])) / Q.HISTOGRAM_BINS
            bins = np.clip(np.floor((v - low) / width), 0, Q.HISTOGRAM_BINS - 1).astype(np.int64)
            out[c]["bins"] = np.bincount(bins, minlength=Q.HISTOGRAM_BINS).tolist()
    return out


def test_numeric_facets_are_sqls_min_max_and_count_from_one_scan(tmp_path: Path, scans) -> None:
    """NaN (MAX is NaN, MIN is not), -0.0 below 0.0, integers past 2**53 (bounds one float apart: no histogram), float32,
    nulls, a column added later (the older files have no statistics of it) and one never set: the values SQL gives,
    from one scan (the log's statistics held every histogram's bounds)."""
    pool = Datapool(str(tmp_path / "pool"))
    big = 2**53
    _commit(pool, _rows(["a/0.jpg", "a/1.jpg", "a/2.jpg"],
                        **{"metadata.plain": pa.array([0.5, 2.0, 1.25]),
                           "metadata.nan": pa.array([1.0, math.nan, None]),
                           "metadata.zero": pa.array([-0.0, 0.0, 3.0]),
                           "metadata.big": pa.array([big + 1, big + 3, None], pa.int64()),
                           "metadata.f32": pa.array([0.1, 0.7, 0.3], pa.float32()),
                           "metadata.none": pa.nulls(3, pa.float64()),
                           "metadata.close": pa.array([big, big + 1, big], pa.int64())}), 0)
    _commit(pool, _rows(["b/0.jpg", "b/1.jpg"],
                        **{"metadata.plain": pa.array([7.5, None]), "metadata.nan": pa.array([2.0, 0.5]),
                           "metadata.zero": pa.array([1.0, 0.0]), "metadata.big": pa.array([big + 2, big], pa.int64()),
                           "metadata.f32": pa.array([0.2, None], pa.float32()),
                           "metadata.none": pa.nulls(2, pa.float64()), "metadata.later": pa.array([4, 9], pa.int64())}),
            1)
    view = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))
    numeric = view.numeric_columns()
    want = _sql_facets(view, numeric, "TRUE")
    view._whole()  # (the version's counts, the page's first query: the facets ask whether a sample has two rows)
    scans.clear()
    got = {c: f for c, f in view._facets(Q.SHOW_IMAGES).items() if f["kind"] == "number"}
    assert got.keys() == want.keys()
    for c in want:  # (NaN != NaN: compared as text)
        assert repr(got[c]) == repr(want[c]), c
        assert [type(got[c][k]) for k in ("min", "max")] == [type(want[c][k]) for k in ("min", "max")], c
    assert repr(got["metadata.zero"]["min"]) == "-0.0" and math.isnan(got["metadata.nan"]["max"])
    assert got["metadata.big"]["max"] == big + 3 and "metadata.none" not in got
    assert got["metadata.close"] == {"kind": "number", "min": big, "max": big + 1, "nulls": 2}  # (one float: no bins)
    assert len(scans) == 1, scans


def test_image_facets_of_a_pool_with_object_rows(tmp_path: Path, scans) -> None:
    """The log's statistics are of every row: where object rows widen a column, the images' bounds come from the
    facets' scan and that column's histogram from a second one, of it alone; the objects' facets are their rows'."""
    pool = Datapool(str(tmp_path / "pool"))
    keys = ["i/0.jpg", "i/1.jpg", "i/0.jpg#det#0", "i/0.jpg#det#1"]
    _commit(pool, _rows(keys, **{
        C.PARENT_KEY: pa.array([None, None, "i/0.jpg", "i/0.jpg"]),
        C.OBJECT_SCORE: pa.array([None, None, 0.25, 0.75]),
        "metadata.shared": pa.array([1.0, 2.0, -40.0, 90.0]),
        "metadata.images": pa.array([3.0, 5.0, None, None])}), 0)
    view = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))
    for show, rows in ((Q.SHOW_IMAGES, f'"{C.PARENT_KEY}" IS NULL'), (Q.SHOW_OBJECTS, f'"{C.PARENT_KEY}" IS NOT NULL')):
        numeric = [c for c in view.numeric_columns() if show == Q.SHOW_OBJECTS or not c.startswith("object_")]
        want = _sql_facets(view, numeric, rows)
        view._whole()  # (as above)
        scans.clear()
        got = {c: f for c, f in view._facets(show).items() if f["kind"] == "number"}
        assert got == want, show
        if show == Q.SHOW_IMAGES:
            assert len(scans) == 2 and "metadata.shared" in scans[1] and "metadata.images" not in scans[1], scans
        else:
            assert len(scans) == 1, scans
    assert view._facets(Q.SHOW_IMAGES)["metadata.shared"]["max"] == 2.0


def test_the_counts_of_a_pool_with_reprocessed_samples_are_of_each_samples_latest_row(tmp_path: Path, scans) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    keys = ["p/a.jpg", "p/b.HEIC", "p/c.jpg"]
    _commit(pool, _rows(keys), 0)
    _commit(pool, _rows(keys[:2] + ["p/d.tif"]), 1)  # (a and b again: a process_all run)
    view = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))
    assert view.reprocessed() == 2
    scans.clear()
    assert view.count(Q.Scope()) == 4 and view.unviewable_count(Q.Scope()) == 2
    assert len(scans) == 1 and "NOT EXISTS" in scans[0], scans  # (not the version's own row count)
    assert view.count(Q.Scope(show=Q.SHOW_OBJECTS)) == 0


@pytest.mark.parametrize("reprocessed", [False, True])
def test_unviewable_images_are_those_exports_name(tmp_path: Path, reprocessed: bool) -> None:
    """Any case of an extension of UNVIEWABLE_IMAGES at the end of the key, as ``export`` tells them (the version's
    count and a filtered scope's)."""
    keys = ["a.HEIC", "b.tif", "c.TIFF", "d.tif.jpg", "e.hif", "f.heif ", "gtif", "h.Tiff", "i.heic/j.png", "k.HeIf",
            "l.jpg"]
    want = sum(1 for k in keys if "." in k and k.rsplit(".", 1)[-1].lower() in UNVIEWABLE_IMAGES)
    pool = Datapool(str(tmp_path / "pool"))
    _commit(pool, _rows(keys), 0)
    if reprocessed:
        _commit(pool, _rows(keys[:2]), 1)
    view = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))
    assert want == 6
    assert view.unviewable_count(Q.Scope()) == want
    assert view.unviewable_count(Q.Scope(filters=Q.Filters(values={C.STATUS: ["ok"]}))) == want


def test_many_small_data_files_stream_back_as_few_tables(tmp_path: Path) -> None:
    """A scan of a pool of many tiny files gathers their record batches (each normalised alone: ~0.25 ms a file)."""
    build_long_pool(str(tmp_path / "pool"), RUNS)
    view = Q.View(PoolSpec(name="p", uri=str(tmp_path / "pool")))
    sql = f'SELECT "{C.KEY}", "{C.STATUS}", "{C.PICK_RANK}" FROM pool'
    tables = list(query_batches(view.table, sql))
    assert len(view.table.file_uris()) == 2 * RUNS and len(tables) == 1
    got = pa.concat_tables(tables).sort_by(C.KEY)
    assert got.equals(query(view.table, sql).sort_by(C.KEY)) and got.schema.field(C.KEY).type == pa.string()
