"""The UI's CSV export made a column at a time in Arrow (``export.column_cells``, ``export.csv_text``) is byte for
byte what it wrote before, row by row through ``csv.writer`` of the Python values (the old code is kept here as
the oracle): every column type (floats with NaN, inf, -0.0, tiny and huge values, float32, ints, bools, nulls,
timestamps, strings with commas, quotes, CR and LF, non-ASCII keys)."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool import export as X

N = 400
SPECIAL = [0.0, -0.0, 1.0, -1.0, 100.0, 0.1, 1e-4, 9.9999e-5, 1e-5, 1e-7, 1e15, 1e16, 9999999999999998.0,
           1.2345678901234568e17, 1e22, 1.5e300, 5e-324, 2.2250738585072014e-308, math.nan, math.inf, -math.inf,
           0.30000000000000004, 123456.789, -0.00012, 1 / 3, 2 / 3 * 1e10]


def _old_cell(value: object) -> str:
    """What ``csv.writer`` made of a Python value after the old route's ``"" if None``: ``repr`` of a float, else
    ``str`` (CPython's ``_csv.c``)."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def _floats(rng: np.random.Generator) -> np.ndarray:
    bits = rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64)  # every exponent, NaN payloads
    scaled = rng.normal(size=20_000) * 10.0 ** rng.integers(-20, 24, 20_000)
    return np.concatenate([bits, scaled, np.array(SPECIAL), -np.array(SPECIAL)])


def test_float_cells_are_reprs() -> None:
    rng = np.random.default_rng(65)
    values = _floats(rng)
    with np.errstate(over="ignore", invalid="ignore"):  # (to float32: past its range, inf)
        narrow = values.astype(np.float32)
    for typ, data in ((pa.float64(), values), (pa.float32(), narrow),
                      (pa.float32(), rng.random(5_000, dtype=np.float32))):
        column = pa.array(data, typ)
        assert X.column_cells(column).to_pylist() == [repr(v) for v in column.to_pylist()]
    with_nulls = pa.chunked_array([pa.array([1.5, None, 100.0], pa.float64()), pa.array([None, 1e-5], pa.float64())])
    assert X.column_cells(with_nulls).to_pylist() == ["1.5", "", "100.0", "", "1e-05"]


def test_other_cells_are_what_csv_writer_wrote() -> None:
    moments = [datetime(2026, 12, 7, 18, 46, 53, 922188, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), None,
               datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC)]
    columns = [
        pa.array([1, -2, None, 2**63 - 1, -(2**63)], pa.int64()), pa.array([1, None, 255], pa.uint8()),
        pa.array([True, False, None]), pa.array(["a", None, "", "x,y", 'q"', "ü\r\n"], pa.string()),
        pa.array(["a", None], pa.large_string()), pa.array(moments, pa.timestamp("us", tz="UTC")),
        pa.array([None if m is None else m.replace(tzinfo=None) for m in moments], pa.timestamp("us")),
        pa.array([None if m is None else m.replace(microsecond=0) for m in moments], pa.timestamp("s", tz="UTC")),
        pa.array(moments, pa.timestamp("ms", tz="Europe/Berlin")), pa.array(moments, pa.timestamp("ns", tz="UTC")),
        pa.array(["a", "b", None, "a"]).dictionary_encode(),
    ]
    for column in columns:
        assert X.column_cells(column).to_pylist() == [_old_cell(v) for v in column.to_pylist()], column.type


def test_csv_text_is_csv_writers() -> None:
    rng = np.random.default_rng(7)
    alphabet = ["a", "b", ",", '"', "\r", "\n", " ", "ü", "𝄞", "\t", ";", "'", "\\"]
    columns = [["".join(rng.choice(alphabet, int(rng.integers(0, 6)))) for _ in range(2_000)] for _ in range(4)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["h,1", "h2", 'h"3', "h4"])
    writer.writerows(zip(*columns, strict=True))
    assert X.csv_text(["h,1", "h2", 'h"3', "h4"], [pa.array(c) for c in columns]) == out.getvalue()
    assert X.csv_text(["a"], [[]]) == "a\r\n"


def _rows(n: int) -> pa.Table:
    rng = np.random.default_rng(3)
    floats = _floats(rng)[: n]
    floats[: len(SPECIAL)] = SPECIAL
    return pa.table({
        C.KEY: [f'img/ünï "{i}",\n{i}.png' if i % 7 == 0 else f"img/{i:04d}.png" for i in range(n)],
        C.SIZE: pa.array(rng.integers(0, 10**9, n), pa.int64()),
        C.ETAG: [f"e{i}" for i in range(n)],
        C.STATUS: [C.STATUS_OK] * n,
        C.EMBEDDING: pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * 4, dtype=np.float32)), 4),
        C.SELECTED: [i % 3 == 0 for i in range(n)],
        C.PICK_RANK: pa.array([i // 3 if i % 3 == 0 else None for i in range(n)], pa.int64()),
        "metadata.float": pa.array([None if i % 11 == 5 else float(v) for i, v in enumerate(floats)], pa.float64()),
        "metadata.float32": pa.array(rng.random(n, dtype=np.float32), pa.float32()),
        "metadata.int": pa.array([None if i % 13 == 0 else int(v) for i, v in enumerate(rng.integers(-99, 99, n))],
                                 pa.int64()),
        "metadata.flag": pa.array([None if i % 5 == 0 else i % 2 == 0 for i in range(n)], pa.bool_()),
        "metadata.note": pa.array([None if i % 9 == 0 else f'v{i},"q"\r\n ü' if i % 4 == 0 else f"c{i % 3}"
                                   for i in range(n)], pa.string()),
        "metadata.when": pa.array([datetime(2026, 1, 1 + i % 28, i % 24, tzinfo=UTC) if i % 6 else None
                                   for i in range(n)], pa.timestamp("us", tz="UTC")),
    })


def _old_export(view, scope, name: str) -> bytes:
    """The route's CSV before 2026-12-07 (session 65): records and gone files as now, then ``to_csv``'s text read
    back with ``csv.reader`` and every row written again through ``csv.writer`` with the Python values."""
    rows = view.export_rows(scope).to_pylist()
    sources = X.run_datasources(view.history())
    uris = X.SampleUris()
    records = [X.ExportRecord(key=r[C.KEY], uri=uris.uri(r, sources.get(r.get("commit_version"))),
                              sample_id=r.get(C.SAMPLE_ID), run_id=r.get(C.RUN_ID), pick_rank=r.get(C.PICK_RANK),
                              **X.frame_fields(r)) for r in rows]
    gone = X.gone_exports(view.datapool(), records, history=view.all_history())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["uri", "key", "sample_id", "run_id", "tag", "pick_rank"])
    for r in records:
        writer.writerow([r.uri, r.key, r.sample_id or "", r.run_id or "", name,
                         "" if r.pick_rank is None else r.pick_rank])
    extra = [c for c in (rows[0] if rows else {}) if c not in (C.KEY, C.SAMPLE_ID, C.RUN_ID, C.PICK_RANK)]
    again = io.StringIO()
    writer = csv.writer(again, lineterminator="\r\n")
    head, *lines = list(csv.reader(io.StringIO(out.getvalue())))
    writer.writerow([*head, *extra, "file_gone"])
    for line, r, record in zip(lines, rows, records, strict=True):
        writer.writerow([*line, *("" if r.get(c) is None else r.get(c) for c in extra),
                         "true" if record.uri in set(gone.uris) else "false"])
    return again.getvalue().encode("utf-8")


@pytest.mark.parametrize("params", [{}, {"tag": "initial-tag"}, {"in.status": "missing"}])
def test_the_ui_csv_export_is_byte_for_byte_the_old_one(tmp_path, monkeypatch, params) -> None:
    from lightly_airflow.plugins.config import PoolSpec
    from lightly_airflow.plugins.pages import scope_text
    from lightly_airflow.plugins.query import Filters, Scope, View

    pool = Datapool(f"file://{tmp_path / 'pool'}")
    pool.commit(_rows(N), run_id="scheduled__2026-03-01T00:00:00+00:00", dag_id="d", tag=None, config={},
                counts={}, embedding_model="m", embedding_dim=4, read_version=pool.version(),
                datasource_uri=str(tmp_path / "source"))
    with ui_client(monkeypatch, {"csv": {"uri": pool.uri}}) as client:
        got = client.get("/lightly/pools/csv/export", params={"format": "csv", **params})
    assert got.status_code == 200, got.text
    filters = Filters(values={"status": ["missing"]}) if params.get("in.status") else Filters()
    scope = Scope(tag=params.get("tag"), filters=filters)
    view = View(PoolSpec(name="csv", uri=pool.uri))
    expected = _old_export(view, scope, scope.tag or f"filter ({scope_text(view, scope)})")
    if not params.get("in.status"):  # (the filter matches no row: the header alone, without metadata columns)
        assert got.content.count(b"\r\n") > N // 3 and b'"img/\xc3\xbcn\xc3\xaf ""0"",\n0.png"' in got.content
    assert got.content == expected
