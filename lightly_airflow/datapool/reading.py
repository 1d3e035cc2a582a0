"""Read paths that are safe with deltalake 1.6.6, and the normalisation of what they return.

After ``DeltaTable.to_pyarrow_table()`` / ``to_pyarrow_dataset()`` a process often aborts at exit
("terminate called without an active exception", exit code 134), which would fail an Airflow task after it
committed. Every read of the datapool therefore goes through DataFusion's ``QueryBuilder`` (SQL over the
table, results streamed back through the Arrow C interface), which does not show the abort; the test
``tests/datapool/test_safe_reads.py`` runs reads in a subprocess and checks its exit code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from lightly_airflow.datapool.errors import MissingDataFileError

#: How delta-rs (object_store) names a data file that is gone, on local disk and on every object store.
_NOT_FOUND = re.compile(r"Object at location (\S+?) not found")


def quote_ident(name: str) -> str:
    """A SQL identifier for a column name (names contain dots: ``"metadata.lightly.sharpness"``)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


IN_LIST_MAX = 1_000
"""Values a read puts in an SQL ``IN (...)`` list at most (:func:`in_list`); more are kept by :func:`query`'s
``keep``, batch by batch as the rows stream back. DataFusion (deltalake 1.6.6) crashes the process on long lists:
20,000 keys of ~60 characters took 0.7 s, 30,000 (and 100,000 split into IN lists of 1,000 joined by OR) ended
in a segmentation fault, on a 8 MiB stack (2026-12-06)."""


def in_list(column: str, values: list[str]) -> str:
    """``column IN (values)`` for at most :data:`IN_LIST_MAX` values (a longer list crashes DataFusion)."""
    if len(values) > IN_LIST_MAX:
        raise ValueError(f"{len(values)} values for an SQL IN list on {column!r}; at most {IN_LIST_MAX} (keep more "
                         "with query(..., keep=))")
    return f"{quote_ident(column)} IN ({', '.join(quote_literal(v) for v in values)})"


def query(table: DeltaTable, sql: str, *, keep: tuple[str, list[str]] | None = None) -> pa.Table:
    """Run ``sql`` against ``table`` registered as ``pool`` and return a normalised pyarrow table.

    :param table: a loaded :class:`DeltaTable` (any version).
    :param sql: a DataFusion SQL query over the table name ``pool``.
    :param keep: (column, values): only the rows whose ``column`` (one the query returns) holds one of ``values``,
        filtered batch by batch as they stream back (any number of values: see :data:`IN_LIST_MAX`).
    :raises MissingDataFileError: a data file the version reads is gone (a VACUUM run outside lightly-airflow
        deleted it, or it was deleted by hand), instead of delta-rs' "Object at location ... not found".
    """
    import pyarrow.compute as pc

    if keep is None:
        with _missing_files(table):
            # (through the stream, not ``pa.table``: that asks whether the result is a pandas DataFrame and imports
            # pandas, 0.4-0.7 s on a process's first query: the home page's first load after the api-server starts)
            stream = QueryBuilder().register("pool", table).execute(sql)
            return normalise(pa.RecordBatchReader.from_stream(stream).read_all())
    column, values = keep
    batches = _batches(table, sql)
    kept = [next(batches)]  # (the result's schema, with plain types: Arrow's is_in has no string_view kernel)
    value_set = pa.array(values, kept[0].schema.field(column).type)
    kept += [rows.filter(pc.is_in(rows.column(column), value_set=value_set)) for rows in batches]
    return pa.concat_tables(kept)


#: Bytes of record batches :func:`query_batches` gathers into one table before normalising it: a pool of many small
#: data files streams a tiny batch per file, and each one normalised alone cost ~0.25 ms (a scan of 800 files:
#: 0.2 s, as much as DataFusion's own read of them).
GATHER_BYTES = 8 << 20


def query_batches(table: DeltaTable, sql: str) -> Iterator[pa.Table]:
    """:func:`query`'s rows as they stream back, one normalised table per record batch, or per several small ones
    (:data:`GATHER_BYTES`): for a caller that reduces them (a scan of many columns of every row holds a few MB of
    batches in memory, not the whole result).

    :raises MissingDataFileError: as :func:`query`.
    """
    batches = _batches(table, sql)
    next(batches)  # (the empty table of the schema)
    yield from batches


def _batches(table: DeltaTable, sql: str) -> Iterator[pa.Table]:
    """The result's empty table (its normalised schema), then one normalised table per record batch, or per several
    small ones in a row (:data:`GATHER_BYTES`)."""
    with _missing_files(table):
        reader = pa.RecordBatchReader.from_stream(QueryBuilder().register("pool", table).execute(sql))
        yield normalise(reader.schema.empty_table())
        gathered: list[pa.RecordBatch] = []
        held = 0
        for batch in reader:
            gathered.append(batch)
            held += batch.nbytes
            if held >= GATHER_BYTES:
                yield normalise(pa.Table.from_batches(gathered))
                gathered, held = [], 0
        if gathered:
            yield normalise(pa.Table.from_batches(gathered))


@contextmanager
def _missing_files(table: DeltaTable) -> Iterator[None]:
    """delta-rs' "Object at location ... not found" raised as a :class:`MissingDataFileError` (delta-rs raises a bare
    Exception for DataFusion's errors; any other one goes on as it is)."""
    try:
        yield
    except Exception as exc:
        found = _NOT_FOUND.search(str(exc))
        if found is None:
            raise
        raise MissingDataFileError(found.group(1), int(table.version()), str(exc).splitlines()[0][:500]) from None


def _plain_type(typ: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(typ) or pa.types.is_large_string(typ):
        return pa.string()
    if pa.types.is_binary_view(typ) or pa.types.is_large_binary(typ):
        return pa.binary()
    if pa.types.is_list_view(typ) or pa.types.is_large_list(typ) or pa.types.is_list(typ):
        return pa.list_(_plain_field(typ.value_field))
    if pa.types.is_struct(typ):
        return pa.struct([_plain_field(f) for f in typ])
    return typ


def _plain_field(field: pa.Field) -> pa.Field:
    return pa.field(field.name, _plain_type(field.type), field.nullable, field.metadata)


def normalise(table: pa.Table) -> pa.Table:
    """Cast the view/large types DataFusion returns to plain ``string``/``binary``/``list`` types."""
    schema = pa.schema([_plain_field(f) for f in table.schema], metadata=table.schema.metadata)
    if schema.equals(table.schema, check_metadata=False):
        return table
    return table.cast(schema)
