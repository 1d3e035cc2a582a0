"""Reading a strategy's input from the samples table, null-safe: the one rule for missing inputs.

**Missing inputs** (docs/selection.md "Missing inputs"). A sample *lacks* an input when its value is null or
NaN (a sample without that metadata, without a prediction file, without a score, a class distribution that is
null or holds NaN, a null embedding). The rule, the same for every input type:

* a sample lacking a value is **never preferred because of it**: THRESHOLD — it fails the filter; WEIGHTS,
  SIMILARITY, TYPICALITY, BALANCE — that objective takes its least preferred value (the floor 1e-6 for a
  positive strength; for BALANCE the sample belongs to no class), so, all else equal, it is picked only after
  the samples that have the value; it adds nothing to ``stopping_condition_max_sum`` / ``target_range`` sums;
* a sample without an embedding cannot be placed in embedding space: when any strategy uses EMBEDDINGS
  (DIVERSITY, SIMILARITY, TYPICALITY) it is not a candidate; a preselected sample without one does not count
  for DIVERSITY; a preselected sample without the BALANCE input counts for no class;
* every case is counted per input (``SelectionResult.metrics["missing_inputs"]``, keyed by the column, with
  ``preselected:`` in front for preselected samples) and logged as a warning.

A column that is absent altogether is a configuration error (the input names a column nobody produced) and
fails with the input's JSON path and the producer; preselected samples from earlier runs may lack a column
(the rule above applies, counted, never an error).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.config.selection import (
    EmbeddingsInput,
    MetadataInput,
    PredictionsInput,
    RandomInput,
    ScoresInput,
)
from lightly_airflow.selection.arrays import missing_column_error, to_numpy

logger = logging.getLogger(__name__)


def producer(inp: Any) -> str:
    """Who writes the column of an input (for error messages)."""
    if isinstance(inp, ScoresInput):
        return f".lightly/predictions/{inp.task}/ (scored with {inp.score})"
    if isinstance(inp, PredictionsInput):
        return f".lightly/predictions/{inp.task}/"
    if isinstance(inp, MetadataInput):
        if inp.key.startswith("lightly."):
            return "the metadata stage (computed lightly.* metrics)"
        return ".lightly/metadata/ (custom metadata schema.json and files)"
    return "the pipeline"


def input_column(inp: Any) -> str:
    """The column (or column family) an input reads: the key of ``missing_inputs``."""
    if isinstance(inp, ScoresInput):
        return C.score_column(inp.task, inp.score)
    if isinstance(inp, MetadataInput):
        return C.metadata_column(inp.key)
    if isinstance(inp, PredictionsInput):
        if inp.name == "CATEGORY_COUNT":
            return C.category_count_column(inp.task, "*")
        return C.class_distribution_column(inp.task)
    if isinstance(inp, RandomInput):
        return "random"
    return C.EMBEDDING


def input_columns(inp: Any) -> list[str] | None:
    """Every candidate column an input reads; None when it needs the whole rows (object-level embeddings are
    joined to the samples by key)."""
    if isinstance(inp, EmbeddingsInput):
        return None if inp.task is not None else [C.EMBEDDING]
    if isinstance(inp, PredictionsInput) and inp.name == "CATEGORY_COUNT":
        return [C.category_count_column(inp.task, cat) for cat in inp.categories or []]
    if isinstance(inp, RandomInput):
        return []
    return [input_column(inp)]


def config_columns(strategies: list[Any], available: list[str]) -> list[str] | None:
    """The columns of a samples file that a selection config's strategies read (without ``key``), so that a
    process loads only those; None (read every column) when an input needs the whole rows or names a column
    the file lacks (then the error lists the columns present).

    :param strategies: the config's ``strategies`` entries (each with an ``input``).
    :param available: the file's column names.
    """
    have = set(available)
    out: list[str] = []
    for entry in strategies:
        cols = input_columns(entry.input)
        if cols is None or any(c not in have for c in cols):
            return None
        out += [c for c in cols if c not in out]
    return out


def _rows_matrix(col: pa.Array, what: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as an (N, D) float64 matrix and the mask of rows that have a full, finite vector.

    Null rows and rows holding NaN stay zero (missing); a column whose non-null rows differ in length is an
    error.
    """
    import pyarrow.compute as pc

    n = len(col)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    valid = ~col.is_null().to_numpy(zero_copy_only=False) if n else np.zeros(0, dtype=bool)
    if not valid.any():
        return np.zeros((n, 0)), valid
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    width = int(lengths[valid][0])
    if np.any(lengths[valid] != width):
        raise ValueError(f"{path}: the {what} vectors have different lengths")
    mat = np.zeros((n, width))
    rows = np.flatnonzero(valid)
    flat = col.take(pa.array(rows)).flatten() if len(rows) != n else col.flatten()
    vals = pc.fill_null(flat.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    mat[rows] = vals.reshape(len(rows), width)
    finite = np.isfinite(mat).all(axis=1)
    ok = valid & finite
    mat[~ok] = 0.0
    return mat, ok


def numeric(table: pa.Table, column: str, path: str, made_by: str) -> np.ndarray:
    """A numeric column as float64 with NaN where the value is missing (null or NaN)."""
    if column not in table.column_names:
        raise missing_column_error(path, column, made_by, table)
    arr = table.column(column).combine_chunks()
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)
            or pa.types.is_null(arr.type)):
        raise ValueError(f"{path}: column {column!r} holds {arr.type}, not numbers (needed by this strategy)")
    if pa.types.is_null(arr.type):
        return np.full(len(arr), np.nan)
    if arr.type in (pa.float32(), pa.float64()):  # (no cast: Array.cast imports pyarrow.compute, 26 ms a process)
        return np.array(to_numpy(arr), dtype=np.float64)  # null -> NaN
    return np.array(to_numpy(arr.cast(pa.float64())), dtype=np.float64)  # null -> NaN


def scalar_input(table: pa.Table, inp: Any, path: str, seed: int | None) -> np.ndarray:
    """The per-sample scalar of a SCORES, METADATA (numeric), CATEGORY_COUNT or RANDOM input; NaN = missing."""
    if isinstance(inp, ScoresInput):
        return numeric(table, C.score_column(inp.task, inp.score), path, producer(inp))
    if isinstance(inp, MetadataInput):
        return numeric(table, C.metadata_column(inp.key), path, producer(inp))
    if isinstance(inp, PredictionsInput) and inp.name == "CATEGORY_COUNT":
        total = np.zeros(table.num_rows)
        for cat in inp.categories or []:
            total += numeric(table, C.category_count_column(inp.task, cat), path, producer(inp))  # NaN stays NaN
        return total
    if isinstance(inp, RandomInput):
        s = inp.random_seed if inp.random_seed is not None else seed
        # (numpy's generators take no negative seed, Lightly's configs any integer: -1 is 2**64 - 1)
        rand: np.ndarray = np.random.default_rng(s % 2**64 if s is not None and s < 0 else s).random(table.num_rows)
        return rand
    raise ValueError(f"{path}: input {inp.type} gives no scalar value")


def categories(table: pa.Table, task: str) -> list[str] | None:
    """Category names of a prediction task from the table's schema metadata."""
    meta = table.schema.metadata or {}
    raw = meta.get(C.CATEGORIES_METADATA_KEY.encode())
    if raw is None:
        return None
    names = json.loads(raw).get(task)
    return [str(n) for n in names] if names is not None else None


#: The BALANCE class names of a boolean column (``str`` of the value), and every spelling a user may write
#: for them in a ``target`` (JSON's ``true``/``false``, Python's ``True``/``False``, any case).
BOOLEAN_CLASSES = {"true": "True", "false": "False"}


def class_name(value: Any, boolean: bool = False) -> str:
    """The BALANCE class name of a categorical value or of a ``target`` key: the one place both sides are
    spelt the same. ``str(value)``; for a boolean-typed column, any case of ``true``/``false`` becomes the
    column's class name (``True``/``False``), so ``{"true": 0.5, "false": 0.5}`` (the JSON spelling a
    Lightly user writes) matches a ``CATEGORICAL_BOOLEAN`` field."""
    text = str(value)
    return BOOLEAN_CLASSES.get(text.lower(), text) if boolean else text


def is_boolean_input(table: pa.Table, inp: Any) -> bool:
    """Whether ``inp`` is a METADATA input whose column in ``table`` is boolean-typed (``CATEGORICAL_BOOLEAN``)."""
    if not isinstance(inp, MetadataInput):
        return False
    column = C.metadata_column(inp.key)
    return column in table.column_names and pa.types.is_boolean(table.schema.field(column).type)


def target_classes(target: dict[str, float], boolean: bool, path: str) -> dict[str, float]:
    """A BALANCE ``target`` with its keys as class names (:func:`class_name`).

    :raises ValueError: when two keys name the same class (``"true"`` and ``"True"`` on a boolean field).
    """
    out: dict[str, float] = {}
    given: dict[str, str] = {}
    for key, share in target.items():
        name = class_name(key, boolean)
        if name in out:
            raise ValueError(f"{path}: target keys {given[name]!r} and {key!r} are the same class {name!r} of a "
                             "boolean field; give each class once")
        out[name], given[name] = share, key
    return out


def class_input(
    table: pa.Table, inp: Any, path: str, names: list[str] | None = None, *, what: str = "candidates",
) -> tuple[np.ndarray, list[str], bool, np.ndarray]:
    """Class membership of every row: (N, C) weights, class names, one-hot (categorical)?, missing mask.

    A row lacking the value (null metadata, null or NaN class distribution) has an all-zero membership (it
    belongs to no class) and is ``True`` in the missing mask.

    :param names: class names to use (so candidates and preselected agree); discovered when None.
    """
    if isinstance(inp, MetadataInput):
        column = C.metadata_column(inp.key)
        if column not in table.column_names:
            raise missing_column_error(path, column, producer(inp), table, what)
        boolean = is_boolean_input(table, inp)
        values = [None if v is None else class_name(v, boolean) for v in table.column(column).to_pylist()]
        missing = np.array([v is None or v == "nan" for v in values], dtype=bool)
        if names is None:
            names = sorted({v for v in values if v is not None and v != "nan"})
        lookup = {n: i for i, n in enumerate(names)}
        labels = np.array([lookup.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)
        onehot = np.zeros((len(values), len(names)))
        ok = labels >= 0
        onehot[np.flatnonzero(ok), labels[ok]] = 1.0
        return onehot, names, True, missing
    column = C.class_distribution_column(inp.task)
    if column not in table.column_names:
        raise missing_column_error(path, column, producer(inp), table, what)
    mat, ok = _rows_matrix(table.column(column), f"{column!r} class distribution", path)
    found = categories(table, inp.task) or [str(i) for i in range(mat.shape[1])]
    if names is None:
        names = found
    if mat.shape[1] == 0 and not ok.any():
        mat = np.zeros((len(ok), len(names)))
    if mat.shape[1] != len(names):
        raise ValueError(f"{path}: {column!r} of the {what} has {mat.shape[1]} classes but the task has "
                         f"{len(names)} categories ({names[:20]}); the predictions of all samples must use the "
                         "same categories (.lightly/predictions/<task>/schema.json)")
    return mat, names, False, ~ok
