"""Arrow <-> numpy without pandas, and the embedding matrix read from Parquet: no pydantic here.

This module imports nothing of the config models (pydantic): reading a matrix does not need them. The rule
for missing inputs lives in ``selection.inputs``.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.arrow import from_numpy as from_numpy  # (its home: the shard tasks build arrays with it too)
from lightly_airflow.arrow import one_array
from lightly_airflow.selection.kernels import _pool, even_shares, selection_threads, sequential_dots

if TYPE_CHECKING:
    import pyarrow.parquet as pq


def missing_column_error(path: str, column: str, producer: str, table: pa.Table, what: str = "candidates") -> ValueError:
    """The error for an input whose column the table lacks altogether."""
    have = ", ".join(n for n in table.column_names[:30])
    return ValueError(
        f"{path}: the {what} have no column {column!r} (produced by {producer}); columns present: [{have}]"
    )


_NUMPY_TYPES = {pa.float32(): np.float32, pa.float64(): np.float64, pa.int8(): np.int8, pa.int16(): np.int16,
                pa.int32(): np.int32, pa.int64(): np.int64, pa.uint8(): np.uint8, pa.uint16(): np.uint16,
                pa.uint32(): np.uint32, pa.uint64(): np.uint64}


def to_numpy(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean Arrow array as numpy, from its buffers when it has no nulls (zero-copy for numbers).

    ``Array.to_numpy`` imports pandas on its first call (~1.8 s, in pyarrow 26) even for a float column:
    the selection's loading path must not pay that. Arrays with nulls or of other types take that route.
    """
    arr = one_array(arr)
    dt = _NUMPY_TYPES.get(arr.type)
    if len(arr) == 0 and (dt is not None or pa.types.is_boolean(arr.type)):
        return np.zeros(0, dtype=dt if dt is not None else bool)
    if dt is not None and (arr.null_count == 0 or np.dtype(dt).kind == "f"):
        size = np.dtype(dt).itemsize
        out: np.ndarray = np.frombuffer(arr.buffers()[1], dtype=dt, count=len(arr), offset=arr.offset * size)
        if arr.null_count:  # floats: a null becomes NaN
            out = out.copy()
            out[~_bits(arr.buffers()[0], arr.offset, len(arr))] = np.nan
        return out
    if arr.null_count == 0 and pa.types.is_boolean(arr.type):
        return _bits(arr.buffers()[1], arr.offset, len(arr))
    res: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return res


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    out: np.ndarray = bits[offset : offset + n].astype(bool)
    return out


def string_array(values: list[str]) -> pa.Array:
    """Python strings as an Arrow string array, built from buffers (``pa.array`` imports pandas; a cast from
    large_string imports ``pyarrow.compute``, 43 ms, so only beyond 2 GiB of text)."""
    enc = [v.encode() for v in values]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in enc], out=offsets[1:])
    data = pa.py_buffer(b"".join(enc))
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), len(enc), [None, pa.py_buffer(offsets.astype(np.int32)), data])
    return pa.Array.from_buffers(pa.large_string(), len(enc), [None, pa.py_buffer(offsets), data]).cast(pa.string())


def _offsets(col: pa.Array) -> np.ndarray:
    """The ``len(col) + 1`` offsets of a list/large_list or string/large_string column (its slice's)."""
    dt = np.int64 if pa.types.is_large_list(col.type) or pa.types.is_large_string(col.type) else np.int32
    return np.frombuffer(col.buffers()[1], dtype=dt, count=len(col) + 1, offset=col.offset * np.dtype(dt).itemsize)


def _list_lengths(col: pa.Array) -> np.ndarray:
    """Length of every list of a list column from its offsets (``pyarrow.compute`` would import pandas)."""
    if pa.types.is_fixed_size_list(col.type):
        return np.full(len(col), col.type.list_size, dtype=np.int64)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return np.diff(_offsets(col)).astype(np.int64)
    import pyarrow.compute as pc  # (lazily: 20-30 ms of a select process' imports, for the rare list types)

    return to_numpy(pc.fill_null(pc.list_value_length(col), 0)).astype(np.int64)


def _numeric_lists(t: pa.DataType) -> bool:
    """Whether ``t`` is a list, large list or fixed-size list type of integers or floats (an embedding column's)."""
    lists = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    return lists and bool(pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))


def embedding_rows(table: pa.Table, *, path: str = "input", what: str = "candidates",
                   block: int = 2**18) -> tuple[np.ndarray, np.ndarray]:
    """The ``embedding`` column as an L2-normalised C-contiguous float32 (N, D) matrix and the present mask.

    Rows without an embedding (null, or holding NaN) are zero and ``False`` in the mask. Normalised in blocks
    of about ``block`` values (a float64 block stays in cache): no float64 copy of the whole matrix.
    """
    if C.EMBEDDING not in table.column_names:
        raise missing_column_error(path, C.EMBEDDING, "the embed stage (embeddings/ staging files) or a custom "
                                   ".lightly/embeddings/*.csv", table, what)
    col = one_array(table.column(C.EMBEDDING))  # (a view of the run's one chunk: no copy before `out`)
    if not _numeric_lists(col.type):
        raise ValueError(f"{path}: the {what}' column '{C.EMBEDDING}' holds {col.type}, not a list of numbers per "
                         "row\nFix: write each embedding as a list of floats (Arrow list<float>), e.g. from the "
                         "embed stage or a custom .lightly/embeddings/*.csv")
    n = len(col)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=bool)
    present = ~to_numpy(col.is_null())
    if not present.any():
        return np.zeros((n, 0), dtype=np.float32), present
    lengths = _list_lengths(col)
    width = int(lengths[present][0])
    if np.any(lengths[present] != width):
        raise ValueError(f"{path}: the {what}' embeddings have different lengths")
    if present.all():
        values = to_numpy(col.flatten()).reshape(n, width)
    else:
        rows = np.flatnonzero(present)
        values = np.zeros((n, width), dtype=np.float32)
        values[rows] = to_numpy(col.take(from_numpy(rows.astype(np.int64))).flatten()).reshape(len(rows), width)
    out = np.empty((n, width), dtype=np.float32)
    normalise_rows(values, present, out, block)
    return out, present


def squared_norms(x: np.ndarray, block: int = 1024, rows: np.ndarray | None = None) -> np.ndarray:
    """``|x|²`` of each row (of ``x[rows]``: gathered a block at a time) in float64, ``block`` rows at a time (one
    float64 block in memory, not a float64 copy and its square of the whole matrix; each row's sum is the same
    whatever the block)."""
    out = np.empty(len(x) if rows is None else len(rows))
    for start in range(0, len(out), block):
        xb = (x[start : start + block] if rows is None else x[rows[start : start + block]]).astype(np.float64)
        xb *= xb
        out[start : start + block] = xb.sum(axis=1)
    return out


def normalise_rows(values: np.ndarray, present: np.ndarray, out: np.ndarray, block: int = 2**15,
                   sqnorms: np.ndarray | None = None) -> None:
    """``out[i] = values[i] / |values[i]|`` (float64 arithmetic, stored as ``out``'s dtype) in blocks of about
    ``block`` values; rows holding NaN or inf become zero and ``False`` in ``present`` (in place). ``out`` may
    be ``values`` itself. The one normalisation of embeddings (the table and the streamed reader share it).
    ``sqnorms``: also the canonical squared norms of the rows of ``out`` (float32 ``out`` only:
    :func:`~lightly_airflow.selection.kernels.canonical_sqnorms_np`'s bits), block by block while it is in cache.

    The float64 block and its squares live in this thread's scratch buffers (256 KiB each): fresh temporaries
    of that size per call (the streamed read calls this once per batch) came from new pages every time and
    took 5x the arithmetic. ``|v|`` is ``np.linalg.norm``'s: ``sqrt(add.reduce(v * v))`` along the row."""
    n, width = values.shape
    step = max(1, block // max(width, 1))
    buf, sq = _scratch(step, width)
    for s in range(0, n, step):
        m = min(step, n - s)
        b, q = buf[:m], sq[:m]
        np.copyto(b, values[s : s + m])
        np.multiply(b, b, out=q)
        norms = np.sqrt(np.add.reduce(q, axis=1, keepdims=True))
        # A row holding NaN or inf has a sum of squares that is not finite (one pass over the block less than
        # isfinite(b)); so does a float64 row with values beyond ~1e154, which normalised to zeros before
        ok = np.isfinite(norms[:, 0])
        if not ok.all():
            b[~ok] = 0.0
            norms[~ok] = 0.0
            present[s : s + m] &= ok
        b /= np.where(norms > 0, norms, 1.0)
        out[s : s + m] = b
        if sqnorms is not None:
            sqnorms[s : s + m] = sequential_dots(out[s : s + m], out[s : s + m])


_SCRATCH = threading.local()


def _scratch(rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 (rows, width) buffers of the calling thread, kept between calls."""
    have = getattr(_SCRATCH, "bufs", None)
    if have is None or have[0].shape != (rows, width):
        have = _SCRATCH.bufs = (np.empty((rows, width)), np.empty((rows, width)))
    bufs: tuple[np.ndarray, np.ndarray] = have
    return bufs


class EmbeddingRows(NamedTuple):
    """A streamed read's embeddings (:func:`read_embedding_rows`): :func:`embedding_rows`' matrix and mask, and the
    matrix rows' canonical squared norms when the read computed them (the DIVERSITY state's, computed on the read's
    threads instead of after it)."""

    x: np.ndarray
    present: np.ndarray
    sqnorms: np.ndarray | None = None


def read_embedding_rows(path: str, *, batch_rows: int | None = None, what: str = "candidates",
                        caller_busy: threading.Event | None = None, stop: threading.Event | None = None,
                        sqnorms: bool = False) -> EmbeddingRows | None:
    """:func:`embedding_rows` of the ``embedding`` column of a Parquet file, streamed in batches straight into
    one float32 (N, D) matrix (the same values: rows are normalised one by one). Peak memory is the matrix
    plus one batch, not the Arrow column and a copy. None when the file has no ``embedding`` column.

    :param path: a local Parquet file.
    :param caller_busy: set while the calling thread is busy with other work (the ``select`` command imports
        the engine and validates the config): meanwhile the batches (1 MiB of float32) are copied into the
        matrix as they come and normalised on the selection's threads once it is cleared. Normalising each
        batch on the pool as it comes (in the usual ~0.25 MiB batches) made the reader wait for the importing
        thread's GIL (8,000 x 1280, medians of 7: imports and read done at 0.49 s, against 0.31-0.33 s this
        way with the caller's shorter GIL switch interval; 2 MiB batches were no faster and raised the peak by
        ~10 MiB at 320,000 x 64).
    :param stop: when set (by another thread), the read ends after the current batch and returns None.
    :param sqnorms: also the rows' canonical squared norms (:func:`normalise_rows`), on the threads that normalise
        them; None in the result where a batch took :func:`embedding_rows` (nulls in it). The ``select`` command's
        read: the main thread waits for the read after its imports, a core stands idle (8,000 x 1,280: the state's
        norms took ~11 ms on two threads after the read).
    """
    # pyarrow's calls on the batches allocate from the system allocator during the read (it returns freed
    # batches to the OS; Arrow's default mimalloc pool kept pages resident even after release_unused: 7 MiB
    # less peak at 8,000 x 1280); the caller's default pool is back afterwards. (The Parquet decoder's own
    # buffers stay in Arrow's process-wide default pool, which only ARROW_DEFAULT_MEMORY_POOL=system, set
    # before pyarrow loads, changes: ~10 MiB less again there.)
    with _system_pool():
        return _read_embedding_rows(path, batch_rows, what, caller_busy, stop, sqnorms)


_POOL_LOCK = threading.Lock()
_POOL_USERS: list[Any] = []  # the default pool to restore, once per reader running (readers may overlap)


class _system_pool:  # noqa: N801 - a context manager
    """Arrow's system allocator while any streamed read runs (two files may be read at once: the caller's
    default pool comes back when the last one ends)."""

    def __enter__(self) -> None:
        with _POOL_LOCK:
            if not _POOL_USERS:
                _POOL_USERS.append(pa.default_memory_pool())
                pa.set_memory_pool(pa.system_memory_pool())
            else:
                _POOL_USERS.append(_POOL_USERS[0])

    def __exit__(self, *exc: object) -> None:
        with _POOL_LOCK:
            default = _POOL_USERS.pop()
            if not _POOL_USERS:
                pa.set_memory_pool(default)


def embedding_width(pf: pq.ParquetFile) -> int | None:
    """The width D of a Parquet file's ``embedding`` column from its schema and footer alone (``pf``: a
    ``pyarrow.parquet.ParquetFile``): the list size of a fixed-size list, else the values per non-null row of the
    first row group that has one (a null row is one null value in the footer's counts; a guess when rows differ
    or values inside a row are null); None without the column or rows."""
    names = pf.schema_arrow.names
    if C.EMBEDDING not in names:
        return None
    t = pf.schema_arrow.field(C.EMBEDDING).type
    if pa.types.is_fixed_size_list(t):
        return int(t.list_size)
    meta = pf.metadata
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if rg.num_rows:
            for c in range(rg.num_columns):
                col = rg.column(c)
                if col.path_in_schema.split(".")[0] != C.EMBEDDING:
                    continue
                # (without the nulls, half the rows null halved the width: batches twice as large, and the
                # compiled state's routing by width misled)
                nulls = col.statistics.null_count if col.is_stats_set and col.statistics.has_null_count else 0
                if rg.num_rows > nulls:
                    return max(int(round((col.num_values - nulls) / (rg.num_rows - nulls))), 1)
    return None


def _raw_values(col: pa.Array) -> np.ndarray | None:
    """An (n, D) view of a list column's float32/float64 values when no row and no value is null and every row
    has the same length D > 0 (fixed_size_list, or list/large_list with equal lengths); else None."""
    t = col.type
    if not len(col) or col.null_count:
        return None
    if pa.types.is_fixed_size_list(t):
        width = t.list_size
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = _list_lengths(col)
        width = int(lengths[0])
        if np.any(lengths != width):
            return None
    else:
        return None
    # The child values of these rows (flatten() imports pyarrow.compute: 43 ms of a select process)
    start = col.offset * width if pa.types.is_fixed_size_list(t) else int(_offsets(col)[0])
    flat = col.values.slice(start, len(col) * width)
    dt = {pa.float32(): np.float32, pa.float64(): np.float64}.get(flat.type)
    if dt is None or width == 0 or flat.null_count or len(flat) != len(col) * width:
        return None
    size = np.dtype(dt).itemsize
    values: np.ndarray = np.frombuffer(flat.buffers()[1], dtype=dt, count=len(flat), offset=flat.offset * size)
    return values.reshape(len(col), width)


def _read_embedding_rows(path: str, batch_rows: int | None, what: str, caller_busy: threading.Event | None,
                         stop: threading.Event | None, with_sqnorms: bool) -> EmbeddingRows | None:
    import pyarrow.parquet as pq  # (not pq.read_table: that imports pyarrow.dataset, ~0.7 s)

    # Buffered page-by-page reads: without buffer_size the reader holds the whole column chunk (at 300,000 x
    # 64 the peak was the matrix + 208 MiB instead of + 132 MiB).
    pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    if C.EMBEDDING not in pf.schema_arrow.names:
        return None
    n = pf.metadata.num_rows
    if batch_rows is None:  # about 256 KiB of float32 per batch (the reader's levels and builders are ~5x a
        # batch: 4 MiB batches peaked at +23 MiB of Arrow memory). The width from the footer for list columns too
        # (the embedding runner writes list<float>): a guess of 64 made 20 MiB batches at D = 1,280 (8,000 x
        # 1280: peak RSS of the select process 213 MiB against 150 MiB for the same data as a fixed-size list)
        width = embedding_width(pf) or 64
        # ... up to 1 MiB for large matrices (N / 256 rows): 977 batches of 1,000,000 x 64 spent as much in
        # Python per batch as in the decode (6 interleaved reads: median 0.80 s, 0.54-1.59, against 0.59 s,
        # 0.54-0.78, in batches of 4,096 rows; +20 MiB at the read, below the selection's peak)
        batch_rows = (max(16, 2**18 // width) if caller_busy is not None
                      else max(16, 2**16 // width, min(2**18 // width, n // 256)))
    present = np.zeros(n, dtype=bool)
    x: np.ndarray | None = None
    sq: np.ndarray | None = np.zeros(n) if with_sqnorms else None
    s = 0
    # A batch without nulls (the usual case) is normalised straight from Arrow's buffers into the matrix on the
    # selection's threads while the reader decodes the next one (0.23 s -> ~0.1 s at 8,000 x 1280: the decode
    # alone is ~0.1 s); other batches take embedding_rows on this thread. A few batches in flight at most.
    threads = selection_threads()
    pool = _pool(threads) if threads > 1 else None
    in_flight: list[Future[None]] = []
    copied: list[list[int]] = []  # ranges of rows copied as they are while the caller was busy, not normalised

    def normalise_copied() -> None:
        assert x is not None
        for a, b in copied:  # (each range in about equal shares, one per thread)
            for c, d in even_shares(a, b, min(threads, b - a)):
                sq_cd = None if sq is None else sq[c:d]
                if pool is None:
                    normalise_rows(x[c:d], present[c:d], x[c:d], sqnorms=sq_cd)
                else:
                    in_flight.append(pool.submit(normalise_rows, x[c:d], present[c:d], x[c:d], sqnorms=sq_cd))
        copied.clear()

    for batch in pf.iter_batches(batch_size=batch_rows, columns=[C.EMBEDDING]):
        if stop is not None and stop.is_set():
            for f in in_flight:
                f.result()
            return None
        e = s + batch.num_rows
        raw = _raw_values(batch.column(0))
        busy = caller_busy is not None and caller_busy.is_set()
        if not busy and copied:
            normalise_copied()
        if raw is not None:
            x = _matrix(x, n, raw.shape[1], path, what)
            present[s:e] = True
            if busy:
                x[s:e] = raw
                if copied and copied[-1][1] == s:
                    copied[-1][1] = e
                else:
                    copied.append([s, e])
            elif pool is None:
                normalise_rows(raw, present[s:e], x[s:e], sqnorms=None if sq is None else sq[s:e])
            else:
                in_flight.append(pool.submit(normalise_rows, raw, present[s:e], x[s:e],
                                             sqnorms=None if sq is None else sq[s:e]))
                if len(in_flight) > 2 * threads:
                    in_flight.pop(0).result()
            s = e
            continue
        xb, pb = embedding_rows(pa.Table.from_batches([batch]), path=path, what=what)
        sq = None  # (a batch with nulls: the state computes the norms)
        present[s:e] = pb
        if xb.shape[1]:
            x = _matrix(x, n, xb.shape[1], path, what)
            x[s:e] = xb
        s = e
    if copied:
        normalise_copied()
    for f in in_flight:
        f.result()
    if x is None:
        x = np.zeros((n, 0), dtype=np.float32)
    # The allocator keeps freed pages of the decoded batches (mimalloc at 1,000,000 x 64: 33 MiB of RSS, 0.13x
    # the matrix; at 8,000 x 1280: 45 MiB, 1.1x) for the rest of the process: hand them back now (the system
    # pool: malloc_trim).
    pa.default_memory_pool().release_unused()
    return EmbeddingRows(x, present, sq)


def _matrix(x: np.ndarray | None, n: int, width: int, path: str, what: str) -> np.ndarray:
    """The (n, width) float32 matrix the streamed read fills: ``x``, or a new one on the first batch with
    embeddings; a batch of another width is an error naming the file."""
    if x is None:
        return np.zeros((n, width), dtype=np.float32)
    if x.shape[1] != width:
        raise ValueError(f"{path}: the {what}' embeddings have different lengths ({x.shape[1]} and {width})")
    return x


def _values_at(col: pa.Array, idx: np.ndarray) -> list[Any]:
    """``col[idx]`` as Python values; a string column without nulls straight from its buffers (``take`` imports
    ``pyarrow.compute``: 43 ms of a select process, for the picks' keys alone)."""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or col.null_count:
        return list(col.take(from_numpy(idx)).to_pylist())
    offsets = _offsets(col)
    data = col.buffers()[2]
    view = memoryview(data if data is not None else b"")  # (no data buffer: every string is empty)
    return [str(view[a:b], "utf-8") for a, b in zip(offsets[idx].tolist(), offsets[idx + 1].tolist(), strict=True)]


def read_keys(path: str, rows: np.ndarray, *, batch_rows: int = 65_536) -> list[str]:
    """The ``key`` values of ``rows`` (in that order) of a Parquet file, as strings, streamed in batches: only
    the picked keys are ever held, not the whole key column.

    :param path: a local Parquet file with a ``key`` column.
    :param rows: row indices (any order, repeats allowed).
    """
    import pyarrow.parquet as pq

    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return []
    order = np.argsort(rows, kind="stable")
    ranked = rows[order]
    found: list[Any] = []
    pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    start = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=[C.KEY]):
        end = start + batch.num_rows
        lo, hi = np.searchsorted(ranked, [start, end])
        if hi > lo:
            found += _values_at(batch.column(0), ranked[lo:hi] - start)
        start = end
    if len(found) != len(rows):
        raise ValueError(f"{path}: rows up to {int(ranked[-1])} asked, the file has {start}")
    keys: list[str] = [""] * len(rows)
    for j, k in zip(order.tolist(), found, strict=True):
        keys[j] = str(k)
    return keys


def embedding_matrix(table: pa.Table, *, path: str = "input", what: str = "candidates") -> np.ndarray:
    """The ``embedding`` column as an L2-normalised C-contiguous float32 (N, D) matrix; a null is an error.

    :param table: a table with an ``embedding`` column (list<float> or fixed_size_list).
    :param path: JSON path of the input that needs it (for the error message).
    """
    x, present = embedding_rows(table, path=path, what=what)
    if not present.all():
        raise ValueError(f"{path}: {int((~present).sum())} {what} have no embedding (null or NaN); drop them first")
    return x
