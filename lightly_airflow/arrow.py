"""Small Arrow helpers shared by the core's modules, and Arrow arrays built without pandas.

pyarrow 26 imports pandas (0.2-0.3 s, more on a busy machine) the first time ``pa.array``, ``pa.scalar`` or
``pa.table`` of Python lists meets a list or a numpy array: it asks whether the value is a pandas object. A shard
task (``lightly-airflow metadata``, ``predictions``, ``embed``) is a fresh process that builds a few columns; it
builds them here, from buffers (:func:`from_pylist`, :func:`from_numpy`), and never loads pandas
(``tests/test_cli_startup.py``). ``pa.table`` of a dict of Arrow arrays does not ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_NUMPY_TYPES: dict[pa.DataType, type[np.number[Any]]] = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
                pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
                pa.float32(): np.float32, pa.float64(): np.float64}
_NONE = type(None)
#: the largest ints a float32 and a float64 hold exactly (pyarrow refuses a larger one: such a list goes to pa.array)
_EXACT_INTS = {pa.float32(): 2**24, pa.float64(): 2**53}


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


def from_numpy(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A 1-D numeric or boolean numpy array as Arrow (``mask``: True = null), from its buffers: what
    ``pa.array(values, mask=mask)`` gives, without its pandas import (a copy only where ``values`` is not
    contiguous, and for booleans, which Arrow packs into bits)."""
    values = np.ascontiguousarray(values)
    if values.ndim != 1:
        raise ValueError(f"from_numpy takes a 1-D array, not one of shape {values.shape}")
    validity, nulls = _validity(mask, len(values))
    if values.dtype == np.bool_:
        return pa.Array.from_buffers(pa.bool_(), len(values), [validity, _bits(values)], null_count=nulls)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [validity, pa.py_buffer(values)],
                                 null_count=nulls)


def from_pylist(values: Sequence[Any], type: pa.DataType) -> pa.Array:  # noqa: A002 - pa.array's name
    """``pa.array(values, type)`` of Python values (``None``: null), the same array, built from buffers for a
    string, integer, floating-point or boolean ``type`` without pyarrow's pandas import.

    Any other type, or values that pyarrow converts by rules of its own or refuses (a value not of the type's
    Python kind, an int a double cannot hold exactly, an int out of the type's range, a string that is not
    UTF-8, over 2 GiB of text), go to ``pa.array`` itself: its result, or its error, exactly."""
    built = _built(values, type)
    return pa.array(values, type) if built is None else built


def list_array(offsets: np.ndarray, values: pa.Array, mask: np.ndarray | None = None) -> pa.Array:
    """``pa.ListArray.from_arrays(offsets, values, mask=mask)`` (``offsets``: int32, one more than the rows; ``mask``:
    True = null) from buffers: that call converts numpy offsets with ``pa.array`` (pandas) and inverts an Arrow
    mask with ``pyarrow.compute``."""
    n = len(offsets) - 1
    validity, nulls = _validity(mask, n)
    offsets = np.ascontiguousarray(offsets, dtype=np.int32)
    return pa.Array.from_buffers(pa.list_(values.type), n, [validity, pa.py_buffer(offsets)], null_count=nulls,
                                 children=[values])


def _built(values: Sequence[Any], t: pa.DataType) -> pa.Array | None:
    kinds = set(map(type, values))
    n = len(values)
    if pa.types.is_list(t):
        return _lists(values, kinds, n, t) if kinds <= {list, tuple, _NONE} else None
    if pa.types.is_string(t):
        return _strings(values, n) if kinds <= {str, _NONE} else None
    if pa.types.is_boolean(t):
        if not kinds <= {bool, _NONE}:
            return None
        mask = _nulls(values, kinds, n)
        return from_numpy(np.fromiter((v is True for v in values), bool, n), mask)
    dtype = _NUMPY_TYPES.get(t)
    if dtype is None:
        return None
    if pa.types.is_floating(t):
        if not kinds <= {float, int, _NONE}:
            return None
        if int in kinds and any(type(v) is int and abs(v) > _EXACT_INTS[t] for v in values):
            return None
    elif not kinds <= {int, float, _NONE}:
        return None
    elif float in kinds:  # (pyarrow takes a float that is a whole number in range, e.g. a width of 35.0)
        info = np.iinfo(np.dtype(dtype))
        if not all(v.is_integer() and info.min <= v <= info.max for v in values if type(v) is float):
            return None
    mask = _nulls(values, kinds, n)
    try:
        data = np.array(values if mask is None else [0 if v is None else v for v in values], dtype=dtype)
    except OverflowError:
        return None
    return from_numpy(data, mask)


def _lists(values: Sequence[Any], kinds: set[type], n: int, t: pa.ListType) -> pa.Array | None:
    """A list column of lists (or tuples) of values :func:`_built` builds."""
    lengths = np.fromiter((0 if v is None else len(v) for v in values), np.int64, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        return None
    flat = [x for v in values if v is not None for x in v]
    children = _built(flat, t.value_type)
    if children is None:
        return None
    return list_array(offsets.astype(np.int32), children, _nulls(values, kinds, n))


def _nulls(values: Sequence[Any], kinds: set[type], n: int) -> np.ndarray | None:
    return np.fromiter((v is None for v in values), bool, n) if _NONE in kinds else None


def _strings(values: Sequence[str | None], n: int) -> pa.Array | None:
    try:
        encoded = [b"" if v is None else v.encode() for v in values]
    except UnicodeEncodeError:  # (a lone surrogate: pyarrow's own error)
        return None
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    if offsets[-1] >= 2**31:
        return None
    mask = np.fromiter((v is None for v in values), bool, n) if None in values else None
    validity, nulls = _validity(mask, n)
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets.astype(np.int32)),
                                                  pa.py_buffer(b"".join(encoded))], null_count=nulls)


def _validity(mask: np.ndarray | None, n: int) -> tuple[pa.Buffer | None, int]:
    """Arrow's validity bitmap of ``mask`` (True = null) and the count of nulls; ``None`` when there are none."""
    if mask is None:
        return None, 0
    mask = np.asarray(mask, dtype=bool)
    if len(mask) != n:
        raise ValueError(f"the mask has {len(mask)} values for {n}")
    nulls = int(np.count_nonzero(mask))
    return (_bits(~mask), nulls) if nulls else (None, 0)


def _bits(flags: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(flags, bitorder="little"))


def valid_of(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column's validity (True = a value) as numpy, from its bitmap (``is_valid().to_numpy()`` imports
    pandas in pyarrow 26)."""
    arr = one_array(col)
    n, start = len(arr), arr.offset
    bitmap = arr.buffers()[0]
    if bitmap is None or arr.null_count == 0:
        return np.ones(n, dtype=bool)
    return np.unpackbits(np.frombuffer(bitmap, np.uint8), count=start + n, bitorder="little")[start:].astype(bool)


def numpy_of(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean Arrow column's values as numpy, from its buffers (a view where it can be): pyarrow
    26's ``to_numpy`` imports pandas (0.2-0.5 s of a fresh task) even for a primitive array. The values at null
    slots are whatever the buffer holds (:func:`valid_of` tells which)."""
    arr = one_array(col)
    n, start = len(arr), arr.offset
    t = arr.type
    data = arr.buffers()[1]
    if pa.types.is_boolean(t):
        return np.unpackbits(np.frombuffer(data, np.uint8), count=start + n, bitorder="little")[start:].astype(bool)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)) or pa.types.is_float16(t):
        raise TypeError(f"numpy_of takes a numeric or boolean column, not {t}")
    kind = "f" if pa.types.is_floating(t) else "i" if pa.types.is_signed_integer(t) else "u"
    dtype = np.dtype(f"{kind}{t.bit_width // 8}")
    return np.frombuffer(data, dtype, count=n, offset=start * dtype.itemsize)
