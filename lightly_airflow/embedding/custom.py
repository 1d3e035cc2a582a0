"""Lightly's custom embeddings CSV (``.lightly/embeddings/<name>.csv``) as a source instead of a model.

Format: a header ``filenames,embedding_0,…,embedding_{D-1}[,labels]``; ``filenames`` are relative to the
datasource root (our ``key``). The whole file is validated when read; problems are reported with the row's
filename and the fix. Vectors are L2-normalised unless ``normalize=False`` (``worker_config``'s
``normalize_embeddings``).
"""

from __future__ import annotations

import io
import json
import posixpath
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lightly_airflow.columns import (
    EMBEDDING,
    EMBEDDING_DIM_METADATA_KEY,
    EMBEDDING_MODEL_METADATA_KEY,
    ETAG,
    KEY,
    STATUS_MISSING,
    STATUS_OK,
)
from lightly_airflow.storage import StorageCredentials, filesystem

FILENAMES = "filenames"
LABELS = "labels"
_EMBEDDING_COLUMN = re.compile(r"^embedding_(\d+)$")


def csv_model_id(uri: str, dim: int) -> str:
    """The model id recorded for embeddings from a CSV: ``custom-csv:<file name>/d<dim>``."""
    return f"custom-csv:{posixpath.basename(str(uri).rstrip('/'))}/d{int(dim)}"


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
    try:
        header = next(iter(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig"))).strip().split(",")
    except StopIteration:
        raise ValueError(f"Embeddings CSV {uri!r} is empty: it needs the header filenames,embedding_0,…[,labels].") from None
    header = [h.strip() for h in header]
    indices = sorted(int(m.group(1)) for h in header if (m := _EMBEDDING_COLUMN.match(h)))
    extra = [h for h in header if h not in (FILENAMES, LABELS) and not _EMBEDDING_COLUMN.match(h)]
    if FILENAMES not in header or not indices or indices != list(range(len(indices))) or extra:
        raise ValueError(
            f"Embeddings CSV {uri!r} has header {header[:6]}{'…' if len(header) > 6 else ''}: expected "
            "filenames,embedding_0,…,embedding_{D-1}[,labels] with contiguous embedding columns"
            + (f" (unexpected columns {extra[:5]})" if extra else "") + "."
        )
    dim = len(indices)
    column_types = {FILENAMES: pa.string(), LABELS: pa.string(), **{f"embedding_{i}": pa.float64() for i in indices}}
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise ValueError(
            f"Embeddings CSV {uri!r} cannot be parsed: {str(exc).splitlines()[0][:300]}. Every embedding value "
            "must be a number and every row must have as many fields as the header."
        ) from None
    names = table[FILENAMES].to_pylist()
    matrix = np.column_stack([table[f"embedding_{i}"].to_numpy(zero_copy_only=False) for i in indices]).astype(np.float64)
    matrix = matrix.reshape(len(names), dim)
    _check_rows(uri, names, matrix, normalize)
    if normalize:
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = matrix.astype(np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim).cast(
        pa.list_(pa.float32())
    )
    columns = {KEY: pa.array([n.strip().lstrip("/") for n in names], pa.string()), EMBEDDING: embedding}
    if LABELS in table.column_names:
        columns[LABELS] = table[LABELS].combine_chunks()
    metadata = {
        EMBEDDING_MODEL_METADATA_KEY: json.dumps(csv_model_id(uri, dim)),
        EMBEDDING_DIM_METADATA_KEY: json.dumps(dim),
    }
    return pa.table(columns).replace_schema_metadata(metadata)


def _check_rows(uri: str, names: list[str | None], matrix: np.ndarray, normalize: bool) -> None:
    empty = [i + 2 for i, n in enumerate(names) if not n or not n.strip()]
    if empty:
        raise ValueError(f"Embeddings CSV {uri!r}: empty filename on line(s) {empty[:5]}; every row needs a filename.")
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dupes:
        raise ValueError(f"Embeddings CSV {uri!r}: duplicate filename(s) {dupes[:5]}; keep one row per file.")
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise ValueError(
            f"Embeddings CSV {uri!r}: missing or non-finite values for {[names[i] for i in np.flatnonzero(bad)[:5]]}; "
            "every embedding value must be a finite number."
        )
    if normalize:
        zero = np.linalg.norm(matrix, axis=1) == 0
        if zero.any():
            raise ValueError(
                f"Embeddings CSV {uri!r}: all-zero vector for {[names[i] for i in np.flatnonzero(zero)[:5]]} cannot be "
                "normalised; fix those rows or set normalize_embeddings=false."
            )


def embeddings_from_csv(manifest: pa.Table, csv_uri: str, *, credentials: StorageCredentials | None = None,
                        normalize: bool = True) -> pa.Table:
    """The embeddings staging table of a manifest shard taken from a CSV; keys absent from it are ``missing``.

    :param manifest: the shard (``key``, ``etag``, …).
    :param csv_uri: the Lightly embeddings CSV.
    """
    from lightly_airflow.embedding.runner import _embedding_column, embedding_schema

    source = load_embeddings_csv(csv_uri, credentials, normalize=normalize)
    dim = json.loads(source.schema.metadata[EMBEDDING_DIM_METADATA_KEY.encode()])
    model_id = json.loads(source.schema.metadata[EMBEDDING_MODEL_METADATA_KEY.encode()])
    index = pc.index_in(manifest[KEY].cast(pa.string()), value_set=source[KEY])
    found = np.asarray(index.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    positions = np.asarray(index.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    n = manifest.num_rows
    vectors = np.zeros((n, dim), dtype=np.float32)
    if found.any():
        all_vectors = np.asarray(source[EMBEDDING].combine_chunks().flatten().to_numpy(), np.float32).reshape(-1, dim)
        vectors[found] = all_vectors[positions[found]]
    reason = f"not in embeddings CSV {csv_uri}"
    return pa.table(
        [
            manifest[KEY].combine_chunks(),
            manifest[ETAG].combine_chunks(),
            _embedding_column(vectors, found),
            pa.array(np.where(found, STATUS_OK, STATUS_MISSING).tolist(), pa.string()),
            pa.array([None if f else reason for f in found], pa.string()),
        ],
        schema=embedding_schema(model_id, dim, None, manifest.schema.field(KEY).type, manifest.schema.field(ETAG).type),
    )
