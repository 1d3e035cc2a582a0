"""Read paths that are safe with deltalake 1.6.6, and the normalisation of what they return.

After ``DeltaTable.to_pyarrow_table()`` / ``to_pyarrow_dataset()`` a process often aborts at exit
("terminate called without an active exception", exit code 134), which would fail an Airflow task after it
committed. Every read of the datapool therefore goes through DataFusion's ``QueryBuilder`` (SQL over the
table, results streamed back through the Arrow C interface), which does not show the abort; the test
``tests/datapool/test_safe_reads.py`` runs reads in a subprocess and checks its exit code.
"""

from __future__ import annotations

import re

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


def query(table: DeltaTable, sql: str) -> pa.Table:
    """Run ``sql`` against ``table`` registered as ``pool`` and return a normalised pyarrow table.

    :param table: a loaded :class:`DeltaTable` (any version).
    :param sql: a DataFusion SQL query over the table name ``pool``.
    :raises MissingDataFileError: a data file the version reads is gone (a VACUUM run outside lightly-airflow
        deleted it, or it was deleted by hand), instead of delta-rs' "Object at location ... not found".
    """
    try:
        result = QueryBuilder().register("pool", table).execute(sql).read_all()
    except Exception as exc:  # delta-rs raises a bare Exception for DataFusion's errors
        found = _NOT_FOUND.search(str(exc))
        if found is None:
            raise
        raise MissingDataFileError(found.group(1), int(table.version()), str(exc).splitlines()[0][:500]) from None
    return normalise(pa.table(result))


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
