"""Small Arrow helpers shared by the core's modules."""

from __future__ import annotations

import pyarrow as pa


def one_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one Arrow array: the chunk itself when there is one (``combine_chunks`` copies even then: a
    run's embeddings, made one chunk once, are viewed by the selection, the report's map and the commit)."""
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def filtered(table: pa.Table, mask: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table.filter(mask)`` (null: dropped), or ``table`` itself where the mask keeps every row: a filter copies
    every column (a run's embeddings), even when it drops nothing."""
    import pyarrow.compute as pc  # (here, not at import: a select process never loads it, test_loading.py)

    return table if mask.null_count == 0 and pc.all(mask).as_py() else table.filter(mask)
