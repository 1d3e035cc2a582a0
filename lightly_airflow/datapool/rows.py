"""Validate a run's rows and add the datapool-only columns before they are committed.

The select task hands over one row per processed sample (the column convention of
:mod:`lightly_airflow.columns` plus ``selected`` and ``pick_rank``); this module checks them once, with errors
that name the column and the fix, and returns the table exactly as it is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.arrow import one_array
from lightly_airflow.datapool.errors import DatapoolError, EmbeddingMismatchError
from lightly_airflow.identity import sample_id as sample_id  # (re-exported: its home is outside the datapool package)

#: The pool version a row was committed in (datapool-only; orders rows of the same key across runs).
COMMIT_VERSION = "commit_version"

#: Columns the commit adds; rows handed to ``commit`` must not carry them.
ADDED_COLUMNS = (C.SAMPLE_ID, C.RUN_ID, C.DAG_ID, C.TAGS, C.COMMITTED_AT, COMMIT_VERSION, C.PIXEL_RULES)
REQUIRED_COLUMNS = (C.KEY, C.ETAG, C.STATUS, C.EMBEDDING, C.SELECTED, C.PICK_RANK)

EMBEDDING_TYPE = pa.list_(pa.field("element", pa.float32()))


def writer_properties(schema: pa.Schema) -> Any:
    """How delta-rs writes the pool's Parquet files (``writer_properties`` of ``write_deltalake``): Snappy, as its
    default does, with dictionary pages for the top-level columns of ``schema`` that are not nested, but not for
    the embeddings' floats (nearly all distinct: the dictionary overflows and the writer falls back to plain
    pages after building it). delta-rs names a column's properties by a one-part path, so nested columns (the
    embedding's list, predictions' and objects' structs) take the default: plain pages. Reading the embeddings of
    40,000 x 1,280 rows back: 1.47 s instead of 2.23 s (medians of 5 interleaved, load 2, 2026-12-06); the log's
    statistics are unchanged (tested)."""
    from deltalake import ColumnProperties, WriterProperties

    return WriterProperties(
        compression="SNAPPY",
        default_column_properties=ColumnProperties(dictionary_enabled=False),
        column_properties={field.name: ColumnProperties(dictionary_enabled=True) for field in schema
                           if not pa.types.is_nested(field.type)},
    )


#: Rows per batch handed to delta-rs (:func:`write_batches`).
WRITE_BATCH_ROWS = 4096


def write_batches(table: pa.Table) -> pa.RecordBatchReader:
    """``table`` for ``write_deltalake`` as a stream of :data:`WRITE_BATCH_ROWS`-row batches (the same files,
    statistics and rows): given the table, delta-rs held more of it at once. 40,000 x 1,280 float32 (195 MiB)
    appended to a local pool: RSS +739 MiB (+665-765, 3 interleaved rounds) -> +568 MiB (+568-573), 0.79 -> 0.65 s."""
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=WRITE_BATCH_ROWS))


def embedding_field(model: str, dim: int) -> pa.Field:
    """The stored ``embedding`` field; the model and dimension live in its field metadata."""
    return pa.field(
        C.EMBEDDING, EMBEDDING_TYPE, True,
        {C.EMBEDDING_MODEL_METADATA_KEY: model, C.EMBEDDING_DIM_METADATA_KEY: str(int(dim))},
    )


def storable_type(typ: pa.DataType) -> pa.DataType:
    """Map Arrow types Delta cannot store to ones it can (timestamps in µs UTC, plain strings/lists)."""
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_date64(typ):
        return pa.date32()
    if pa.types.is_dictionary(typ):
        return storable_type(typ.value_type)
    if pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return pa.string()
    if pa.types.is_large_binary(typ) or pa.types.is_binary_view(typ):
        return pa.binary()
    if pa.types.is_uint8(typ) or pa.types.is_uint16(typ):
        return pa.int32()
    if pa.types.is_uint32(typ) or pa.types.is_uint64(typ):
        return pa.int64()
    if pa.types.is_float16(typ):
        return pa.float32()
    if pa.types.is_fixed_size_list(typ) or pa.types.is_large_list(typ) or pa.types.is_list_view(typ) or pa.types.is_list(typ):
        return pa.list_(pa.field("element", storable_type(typ.value_type)))
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, storable_type(f.type)) for f in typ])
    return typ


def _embedding_column(rows: pa.Table, dim: int) -> pa.Array:
    col = one_array(rows.column(C.EMBEDDING))
    typ = col.type
    if pa.types.is_null(typ):
        return pa.nulls(len(col), EMBEDDING_TYPE)
    if not (pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ)):
        raise DatapoolError(
            f"Column 'embedding' has type {typ}; expected fixed_size_list<float32>[{dim}] or list<float32>."
        )
    if not pa.types.is_floating(typ.value_type):
        raise DatapoolError(f"Column 'embedding' holds {typ.value_type} values; expected float32.")
    lengths = pc.list_value_length(col)
    bad = pc.and_(pc.is_valid(col), pc.not_equal(lengths, dim))
    n_bad = pc.sum(bad).as_py() or 0
    if n_bad:
        first = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
        raise EmbeddingMismatchError(
            f"{n_bad} embedding(s) do not have the pool's dimension {dim} (key {rows.column(C.KEY)[first].as_py()!r} "
            f"has {lengths[first].as_py()}); embed the run with the pool's model or start a new pool."
        )
    return col.cast(EMBEDDING_TYPE)


def validate_rows(rows: pa.Table) -> None:
    """Check the columns and invariants of a run's rows; raise :class:`DatapoolError` naming the problem."""
    if not isinstance(rows, pa.Table):
        raise DatapoolError(f"rows must be a pyarrow.Table, got {type(rows).__name__}.")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.column_names]
    if missing:
        raise DatapoolError(f"rows lack the column(s) {missing}; the select task must provide {list(REQUIRED_COLUMNS)}.")
    reserved = [c for c in ADDED_COLUMNS if c in rows.column_names]
    if reserved:
        raise DatapoolError(f"rows carry {reserved}, which the commit sets itself; drop them before committing.")
    dupes = [n for n in rows.column_names if rows.column_names.count(n) > 1]
    if dupes:
        raise DatapoolError(f"rows have duplicate column name(s) {sorted(set(dupes))}.")
    keys = rows.column(C.KEY)
    if keys.null_count:
        raise DatapoolError("Column 'key' has nulls; every processed sample needs its datasource key.")
    if pc.count_distinct(keys).as_py() != rows.num_rows:
        counts = pc.value_counts(keys)
        dup = next(v["values"] for v in counts.to_pylist() if v["counts"] > 1)
        raise DatapoolError(f"Key {dup!r} appears more than once in the run's rows; a run holds one row per sample.")
    statuses = set(pc.unique(rows.column(C.STATUS)).to_pylist())
    unknown = statuses - set(C.STATUSES)
    if unknown:
        raise DatapoolError(f"Column 'status' has unknown value(s) {sorted(map(str, unknown))}; allowed: {list(C.STATUSES)}.")
    selected = rows.column(C.SELECTED)
    if not pa.types.is_boolean(selected.type) or selected.null_count:
        raise DatapoolError("Column 'selected' must be a non-null bool.")
    ranked = pc.is_valid(rows.column(C.PICK_RANK))
    if rows.num_rows and not pc.all(pc.equal(ranked, selected)).as_py():
        raise DatapoolError("Column 'pick_rank' must be set exactly on the selected rows (null elsewhere).")
    if rows.num_rows and pc.any(pc.and_(selected, pc.not_equal(rows.column(C.STATUS), C.STATUS_OK))).as_py():
        raise DatapoolError("A selected row has a status other than 'ok'; only ok samples can be selected.")
    if rows.num_rows and pc.any(pc.and_(selected, pc.is_null(rows.column(C.EMBEDDING)))).as_py():
        raise DatapoolError("A selected row has no embedding; the selection needs one for every selected sample.")


def prepare_rows(
    rows: pa.Table, *, run_id: str, dag_id: str, tag: str, embedding_model: str, embedding_dim: int,
    commit_version: int, committed_at: datetime, pool_schema: pa.Schema | None,
) -> pa.Table:
    """The run's rows as stored: validated, storable types, datapool-only columns added.

    :param rows: one row per processed sample of the run (see :func:`validate_rows`).
    :param run_id: the Airflow run id.
    :param dag_id: the Airflow DAG id.
    :param tag: the run's tag; selected rows carry it and ``initial-tag``.
    :param embedding_model: the encoder id recorded in the ``embedding`` field metadata.
    :param embedding_dim: the embedding dimension every non-null embedding must have.
    :param commit_version: the pool version this commit creates.
    :param committed_at: the commit's timestamp (UTC).
    :param pool_schema: the pool's current schema (columns present there are cast to its types), or ``None``.
    """
    validate_rows(rows)
    n = rows.num_rows
    out_fields: list[pa.Field] = []
    out_columns: list[pa.Array | pa.ChunkedArray] = []
    pool_types = {f.name: f.type for f in pool_schema} if pool_schema is not None else {}
    for name in rows.column_names:
        if name == C.EMBEDDING:
            out_fields.append(embedding_field(embedding_model, embedding_dim))
            out_columns.append(_embedding_column(rows, embedding_dim))
            continue
        col = rows.column(name)
        target = pool_types.get(name)
        if target is None or pa.types.is_null(target):
            target = storable_type(col.type)
        if pa.types.is_null(target):
            target = pa.string()  # an all-null column of unknown type: store as nullable string
        if name == C.PICK_RANK:
            target = pa.int64()
        if col.type != target:
            try:
                col = col.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DatapoolError(
                    f"Column {name!r} has type {col.type} in this run but {target} in the pool and cannot be cast "
                    f"({exc}); keep a column's type stable across runs or rename the new column."
                ) from None
        out_fields.append(pa.field(name, target))
        out_columns.append(col)

    keys = rows.column(C.KEY).to_pylist()
    etags = rows.column(C.ETAG).cast(pa.string()).to_pylist()
    selected = rows.column(C.SELECTED).to_pylist()
    run_tags = [tag, C.INITIAL_TAG]
    added = {
        C.SAMPLE_ID: (pa.string(), pa.array([sample_id(k, e) for k, e in zip(keys, etags)], pa.string())),
        C.RUN_ID: (pa.string(), pa.array([run_id] * n, pa.string())),
        C.DAG_ID: (pa.string(), pa.array([dag_id] * n, pa.string())),
        C.TAGS: (
            pa.list_(pa.field("element", pa.string())),
            pa.array([run_tags if s else [] for s in selected], pa.list_(pa.field("element", pa.string()))),
        ),
        C.COMMITTED_AT: (
            pa.timestamp("us", tz="UTC"), pa.array([committed_at] * n, pa.timestamp("us", tz="UTC")),
        ),
        COMMIT_VERSION: (pa.int64(), pa.array([commit_version] * n, pa.int64())),
        C.PIXEL_RULES: (pa.int64(), pa.array([C.PIXEL_RULES_VERSION] * n, pa.int64())),
    }
    front = [C.SAMPLE_ID]
    for name in front:
        typ, arr = added[name]
        out_fields.insert(0, pa.field(name, typ))
        out_columns.insert(0, arr)
    for name in (C.RUN_ID, C.DAG_ID, C.TAGS, C.COMMITTED_AT, COMMIT_VERSION, C.PIXEL_RULES):
        typ, arr = added[name]
        out_fields.append(pa.field(name, typ))
        out_columns.append(arr)
    return pa.Table.from_arrays(out_columns, schema=pa.schema(out_fields))
