"""Lightly's custom embeddings CSV (``.lightly/embeddings/<name>.csv``) as a source instead of a model.

Format: exactly what Lightly's ``lightly.utils.io.save_embeddings`` writes (Python's ``csv`` module): a header
``filenames,embedding_0,…,embedding_{D-1}[,labels]``, optionally with Lightly's ``selected`` / ``masked``
columns (accepted and not used: the selection decides here). ``filenames`` are relative to the datasource
root (our ``key``) and are taken exactly as written, blanks at either end included. The whole file is
validated when read; problems are reported with the line number and the fix, never with the file's content
(the CSV's location is user-given). Vectors are L2-normalised unless ``normalize=False`` (``worker_config``'s
``normalize_embeddings``).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lightly_airflow.arrow import from_numpy, from_pylist, numpy_of, valid_of
from lightly_airflow.columns import (
    EMBEDDING,
    EMBEDDING_DIM_METADATA_KEY,
    EMBEDDING_MODEL_METADATA_KEY,
    ETAG,
    KEY,
    STATUS_MISSING,
    STATUS_OK,
)
from lightly_airflow.staging import PoolModelMismatchError
from lightly_airflow.storage import StorageCredentials, filesystem

FILENAMES = "filenames"
LABELS = "labels"
#: Lightly's optional columns (``check_embeddings`` allows them between the embeddings and ``labels``).
IGNORED_COLUMNS = ("selected", "masked")
_EMBEDDING_COLUMN = re.compile(r"^embedding_(\d+)$")


def csv_model_id(uri: str, dim: int, normalize: bool = True) -> str:
    """The model id recorded for embeddings from a CSV: ``custom-csv:<file name>/d<dim>``, and ``/raw`` when its
    vectors are taken as they are (``normalize_embeddings: false``): a datapool then refuses to mix the raw and
    the normalised vectors of one CSV as one embedding space."""
    return f"custom-csv:{posixpath.basename(str(uri).rstrip('/'))}/d{int(dim)}" + ("" if normalize else "/raw")


def load_embeddings_csv(uri: str, credentials: StorageCredentials | None = None, *, normalize: bool = True) -> pa.Table:
    """Read a Lightly embeddings CSV into ``key``, ``embedding`` (list<float32>) and ``labels`` (if present).

    The schema metadata records ``lightly.embedding_model`` (:func:`csv_model_id`) and ``lightly.embedding_dim``.

    :param uri: the CSV on any store.
    :param credentials: store credentials (``None``: ambient).
    :param normalize: L2-normalise each vector (Lightly's default).
    :raises FileNotFoundError: when the CSV does not exist.
    :raises ValueError: bad header, non-numeric or non-finite values, duplicate or empty filenames, zero
        vectors (with ``normalize``); the message names the file, the row and the fix.
    """
    fs, path = filesystem(uri, credentials)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"Embeddings CSV {uri!r} does not exist: check worker_config.embeddings.") from None
    header = _header_fields(data, uri)
    indices = _check_header(header, uri)
    dim = len(indices)
    column_types = {FILENAMES: pa.string(), LABELS: pa.string(), **{f"embedding_{i}": pa.float64() for i in indices}}
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, strings_can_be_null=False, quoted_strings_can_be_null=False,
                include_columns=[FILENAMES, *(f"embedding_{i}" for i in indices),
                                 *([LABELS] if LABELS in header else [])],
            ),
        )
    except pa.ArrowInvalid as exc:
        # (Arrow's "Row #N" counts the header: it is the line number the other errors give; "data row N" named the
        # row after the bad one)
        where = re.search(r"[Rr]ow #?(\d+)", str(exc))
        raise ValueError(
            f"Embeddings CSV {uri!r} cannot be parsed"
            + (f" (near line {where.group(1)})" if where else "")
            + ": every embedding value must be a number and every row must have as many fields as the header."
        ) from None
    names = table[FILENAMES].to_pylist()
    # (from buffers: to_numpy and pa.array of numpy import pandas, 0.2-0.5 s of the embed task; a null is NaN as
    # to_numpy gave)
    matrix = np.column_stack([_floats(table[f"embedding_{i}"]) for i in indices]).astype(np.float64)
    matrix = matrix.reshape(len(names), dim)
    _check_rows(uri, names, matrix, normalize)
    if normalize:  # (scaled by the largest value first: the squares of values above ~1e154 overflow to an
        # infinite norm, and a row of 1e200s became a zero vector stored as ok)
        matrix = matrix / np.abs(matrix).max(axis=1, keepdims=True)
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = matrix.astype(np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(from_numpy(vectors.reshape(-1)), dim).cast(
        pa.list_(pa.float32())
    )
    columns = {KEY: from_pylist(names, pa.string()), EMBEDDING: embedding}
    if LABELS in table.column_names:
        columns[LABELS] = table[LABELS].combine_chunks()
    metadata = {
        EMBEDDING_MODEL_METADATA_KEY: json.dumps(csv_model_id(uri, dim, normalize)),
        EMBEDDING_DIM_METADATA_KEY: json.dumps(dim),
    }
    return pa.table(columns).replace_schema_metadata(metadata)


def _header_fields(data: bytes, uri: str) -> list[str]:
    """The header row's fields (Python's ``csv`` rules, as Lightly writes them)."""
    try:
        first = next(iter(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")), "")
    except UnicodeDecodeError:
        raise ValueError(f"Embeddings CSV {uri!r} is not UTF-8 text: write it with Lightly's save_embeddings.") from None
    if not first.strip():
        raise ValueError(f"Embeddings CSV {uri!r} is empty: it needs the header filenames,embedding_0,…[,labels].")
    return [h.strip() for h in next(csv.reader([first]))]


def _check_header(header: list[str], uri: str) -> list[int]:
    """The embedding column indices of a valid header; the error describes the problem by column number
    only (the header is the file's content, and the file's location is user-given)."""
    indices = sorted(int(m.group(1)) for h in header if (m := _EMBEDDING_COLUMN.match(h)))
    unknown = [i + 1 for i, h in enumerate(header) if h not in (FILENAMES, LABELS, *IGNORED_COLUMNS)
               and not _EMBEDDING_COLUMN.match(h)]
    duplicated = len(set(header)) != len(header)
    if FILENAMES not in header or not indices or indices != list(range(len(indices))) or unknown or duplicated:
        raise ValueError(
            f"Embeddings CSV {uri!r} does not have Lightly's header: expected filenames,embedding_0,…,"
            "embedding_{D-1}[,selected][,masked][,labels] with contiguous embedding columns"
            + (f" (columns {unknown[:5]} are none of these)" if unknown else "")
            + (" (a column name repeats)" if duplicated else "")
            + ("" if FILENAMES in header else " (no 'filenames' column)") + "."
        )
    return indices


def check_embeddings_header(uri: str, credentials: StorageCredentials | None = None, *, max_bytes: int = 1 << 20) -> int:
    """Check a custom embeddings CSV's header in seconds (the run's first task); returns the dimension.

    :raises ValueError: for a header that is not Lightly's layout (the message shows no content).
    """
    fs, path = filesystem(uri, credentials)
    with fs.open(path, "rb") as handle:
        head = handle.read(max_bytes)
    return len(_check_header(_header_fields(head.split(b"\n", 1)[0] + b"\n", uri), uri))


class EmbeddingsDimMismatchError(PoolModelMismatchError):
    """The run asks for an embedding dimension (``lightly_config.model.num_ftrs``, the embed step's ``dim``)
    other than the custom embeddings CSV's: the CSV's vectors are used as they are, so no retry can fix it."""


def check_embeddings_dim(uri: str, dim: int | None, credentials: StorageCredentials | None = None) -> int:
    """The CSV's dimension (from its header alone, in seconds), checked against the ``dim`` a run asks for.

    :param dim: ``lightly_config.model.num_ftrs`` (the embed step's ``dim`` option); ``None``: not asked.
    :raises EmbeddingsDimMismatchError: naming the file, the key, both dimensions and the fix.
    :raises ValueError: for a header that is not Lightly's layout.
    """
    found = check_embeddings_header(uri, credentials)
    if dim is not None and int(dim) != found:
        raise EmbeddingsDimMismatchError(
            f"lightly_config.model.num_ftrs (the embedding dimension, dim) is {int(dim)}, but the custom embeddings "
            f"CSV {uri!r} (worker_config.embeddings) has {found} embedding columns (embedding_0 … "
            f"embedding_{found - 1}): its vectors are used as they are, never re-embedded to another dimension. "
            f"Fix: remove model.num_ftrs from lightly_config (or set it to {found}), or give a CSV with {int(dim)} "
            "embedding columns."
        )
    return found


def _check_rows(uri: str, names: list[str | None], matrix: np.ndarray, normalize: bool) -> None:
    def lines(mask: Any) -> list[int]:
        return [int(i) + 2 for i in np.flatnonzero(mask)[:5]]  # the header is line 1

    empty = [i + 2 for i, n in enumerate(names) if not n]
    if empty:
        raise ValueError(f"Embeddings CSV {uri!r}: empty filename on line(s) {empty[:5]}; every row needs a filename.")
    first: dict[str, int] = {}
    dupes: list[int] = []
    for i, n in enumerate(names):
        if n in first:
            dupes.append(i + 2)
        first.setdefault(str(n), i)
    if dupes:
        raise ValueError(f"Embeddings CSV {uri!r}: duplicate filename on line(s) {dupes[:5]} (it repeats an earlier row's); "
                         "keep one row per file.")
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise ValueError(
            f"Embeddings CSV {uri!r}: missing or non-finite values on line(s) {lines(bad)}; every embedding value "
            "must be a finite number."
        )
    huge = np.abs(matrix).max(axis=1, initial=0.0) > np.finfo(np.float32).max
    if not normalize and huge.any():  # (stored as float32: these became infinite)
        raise ValueError(
            f"Embeddings CSV {uri!r}: values beyond float32's range (±3.4e38) on line(s) {lines(huge)}; scale the "
            "vectors or set normalize_embeddings=true."
        )
    if normalize:
        zero = ~np.abs(matrix).any(axis=1)
        if zero.any():
            raise ValueError(
                f"Embeddings CSV {uri!r}: all-zero vector on line(s) {lines(zero)} cannot be normalised; fix those "
                "rows or set normalize_embeddings=false."
            )


def embeddings_from_csv(manifest: pa.Table, csv_uri: str, *, credentials: StorageCredentials | None = None,
                        normalize: bool = True) -> pa.Table:
    """The embeddings staging table of a manifest shard taken from a CSV; keys absent from it are ``missing``.

    :param manifest: the shard (``key``, ``etag``, …).
    :param csv_uri: the Lightly embeddings CSV.
    :param normalize: L2-normalise its vectors (``worker_config.normalize_embeddings``; the runner passed nothing
        here, so ``false`` was ignored and every run normalised).
    """
    from lightly_airflow.embedding.runner import _embedding_column, embedding_schema

    source = load_embeddings_csv(csv_uri, credentials, normalize=normalize)
    dim = json.loads(source.schema.metadata[EMBEDDING_DIM_METADATA_KEY.encode()])
    model_id = json.loads(source.schema.metadata[EMBEDDING_MODEL_METADATA_KEY.encode()])
    index = pc.index_in(manifest[KEY].cast(pa.string()), value_set=source[KEY])
    found = valid_of(index)
    positions = np.where(found, numpy_of(index), 0).astype(np.int64)
    n = manifest.num_rows
    vectors = np.zeros((n, dim), dtype=np.float32)
    if found.any():
        all_vectors = np.asarray(numpy_of(source[EMBEDDING].combine_chunks().flatten()), np.float32).reshape(-1, dim)
        vectors[found] = all_vectors[positions[found]]
    return pa.table(
        [
            manifest[KEY].combine_chunks(),
            manifest[ETAG].combine_chunks(),
            _embedding_column(vectors, found),
            from_pylist(np.where(found, STATUS_OK, STATUS_MISSING).tolist(), pa.string()),
            from_pylist(_missing_reasons(manifest[KEY].cast(pa.string()), found, source[KEY], csv_uri), pa.string()),
        ],
        schema=embedding_schema(model_id, dim, None, manifest.schema.field(KEY).type, manifest.schema.field(ETAG).type),
    )


def _missing_reasons(keys: Any, found: np.ndarray, names: pa.Array, csv_uri: str) -> list[str | None]:
    """Why each key absent from the CSV is missing; one the CSV names but for case or Unicode normalization (a CSV
    written on a Mac names ``cafe\u0301.jpg``, decomposed, the store ``caf\u00e9.jpg``) is named with the fix, as the
    relevant filenames file's look-alikes are (only "not in embeddings CSV" before: the file was there)."""
    from lightly_airflow.datasource.relevant import fold_names, near_reason

    reasons: list[str | None] = [None] * len(found)
    absent = np.flatnonzero(~found)
    if not len(absent):
        return reasons
    missing = keys.take(from_numpy(absent)).combine_chunks()
    # (vectorised: 0.75 s against 1,000,000 names, load ~6 on 2 cores, far less than reading such a CSV)
    alike = pc.index_in(fold_names(missing), value_set=fold_names(names)).to_pylist()
    for row, key, at in zip(absent.tolist(), missing.to_pylist(), alike, strict=True):
        reasons[row] = (f"not in embeddings CSV {csv_uri}" if at is None
                        else near_reason(f"embeddings CSV {csv_uri}", names[at].as_py(), key))
    return reasons


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    """A float64 column as numpy, NaN where null (``to_numpy(zero_copy_only=False)``, which imports pandas)."""

    valid = valid_of(col)
    values = numpy_of(col)
    return values if valid.all() else np.where(valid, values, np.nan)
