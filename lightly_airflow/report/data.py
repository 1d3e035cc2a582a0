"""What the report shows, computed from the run's rows: counts, the 2-D embedding map, metric columns, balances.

Everything here is plain numpy/pyarrow and tolerates any subset of the columns of
:mod:`lightly_airflow.columns`: a missing column yields an empty section, never an error.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C

#: Map groups, in drawing order (later groups are drawn on top).
GROUP_NOT_SELECTED = "not selected"
GROUP_EARLIER = "selected by earlier runs"
GROUP_NEW = "selected in this run"
GROUPS = (GROUP_NOT_SELECTED, GROUP_EARLIER, GROUP_NEW)
_SEED = 0
_LIGHTLY_PREFIX = C.metadata_column("lightly.")
_OTHER = "other classes"


# -------------------------------------------------------------------------------------------- helpers
def as_dict(obj: Any) -> dict[str, Any]:
    """A summary or config as a plain dict: accepts dicts, dataclasses with ``to_dict`` and pydantic models."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "model_dump"):
        dumped: dict[str, Any] = obj.model_dump(mode="json", exclude_none=True)
        return dumped
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    raise TypeError(f"expected a dict, a RunSummary or a SelectionConfig, got {type(obj).__name__}")


def _bool_mask(table: pa.Table, column: str) -> np.ndarray:
    if column not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    mask: np.ndarray = pc.fill_null(table.column(column), False).to_numpy(zero_copy_only=False).astype(bool)
    return mask


def selected_mask(rows: pa.Table) -> np.ndarray:
    """Rows selected in this run (``selected`` true, or a non-null ``pick_rank`` when ``selected`` is absent)."""
    if C.SELECTED in rows.column_names:
        return _bool_mask(rows, C.SELECTED)
    if C.PICK_RANK in rows.column_names:
        ranked: np.ndarray = pc.is_valid(rows.column(C.PICK_RANK)).to_numpy(zero_copy_only=False).astype(bool)
        return ranked
    return np.zeros(rows.num_rows, dtype=bool)


# --------------------------------------------------------------------------------------------- counts
@dataclass
class Counts:
    """The header numbers; ``None`` where neither the rows nor the summary know them."""

    processed: int
    ok: int | None
    corrupt: int | None
    duplicate: int | None
    missing: int | None
    selected: int
    preselected: int
    stop_reason: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def counts(rows: pa.Table, summary: Mapping[str, Any], preselected: pa.Table | None) -> Counts:
    """Counts from the rows (the truth of what this report shows), the summary filling what rows lack."""
    metrics = summary.get("metrics") or {}
    stop = summary.get("stop_reason", metrics.get("stop_reason") if isinstance(metrics, Mapping) else None)
    by_status: dict[str, int | None] = {s: summary.get(s) for s in C.STATUSES}
    if C.STATUS in rows.column_names:
        vc = pc.value_counts(pc.fill_null(rows.column(C.STATUS), C.STATUS_MISSING)).to_pylist()
        found = {d["values"]: int(d["counts"]) for d in vc}
        by_status = {s: found.get(s, 0) for s in C.STATUSES}
    elif by_status[C.STATUS_OK] is None and summary.get("candidates") is not None:
        by_status[C.STATUS_OK] = None  # candidates excludes preselected keys: not the ok count
    n_pre = preselected.num_rows if preselected is not None else summary.get("pool_selected_before") or 0
    extra = {k: summary[k] for k in ("run_id", "tag", "version", "dry_run", "committed", "candidates")
             if summary.get(k) is not None}
    started = summary.get("started_by")
    if isinstance(started, Mapping) and started:
        from lightly_airflow.run_origin import RunOrigin

        extra["started_by"] = RunOrigin.from_dict(started).text()
    review = summary.get("review")
    if isinstance(review, Mapping) and review.get("text"):
        extra["review"] = str(review["text"])
    return Counts(
        processed=rows.num_rows if rows.num_rows or not summary.get("processed") else int(summary["processed"]),
        ok=by_status[C.STATUS_OK], corrupt=by_status[C.STATUS_CORRUPT], duplicate=by_status[C.STATUS_DUPLICATE],
        missing=by_status[C.STATUS_MISSING],
        selected=int(selected_mask(rows).sum()) if rows.num_rows else int(summary.get("selected") or 0),
        preselected=int(n_pre), stop_reason=None if stop is None else str(stop), extra=extra,
    )


def flat_metrics(summary: Mapping[str, Any], limit: int = 200) -> list[tuple[str, str]]:
    """The summary's ``metrics`` flattened to ``(dotted key, value text)`` rows (scalars; lists shortened)."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, Mapping):
            for k in sorted(value, key=str):
                walk(f"{prefix}.{k}" if prefix else str(k), value[k])
        elif isinstance(value, float):
            out.append((prefix, f"{value:.6g}" if math.isfinite(value) else str(value)))
        elif isinstance(value, (list, tuple)):
            text = json.dumps(list(value[:20]), default=str)
            out.append((prefix, text + (f" … ({len(value)} values)" if len(value) > 20 else "")))
        else:
            out.append((prefix, str(value)))

    walk("", summary.get("metrics") or {})
    return out


# ------------------------------------------------------------------------------------------ embeddings
def embedding_matrix(table: pa.Table | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a usable embedding: ``(index into table, float32 matrix)``; the most common dimension wins."""
    if table is None or C.EMBEDDING not in table.column_names or table.num_rows == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    from lightly_airflow.arrow import one_array

    col = one_array(table.column(C.EMBEDDING))  # (the committed rows' one chunk: a view of their values)
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    positive = lengths[lengths > 0]
    if not len(positive):
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    dim = int(np.bincount(positive).argmax())
    idx = np.flatnonzero(lengths == dim)
    sub = col if len(idx) == len(col) else col.take(pa.array(idx))  # the usual case: no copy of the column
    mat = sub.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(idx), dim)
    finite = np.isfinite(mat).all(axis=1)
    if finite.all():
        return idx, mat
    return idx[finite], mat[finite]


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Single-threaded BLAS for the small products here: on a busy machine, BLAS threads cost 3-5x wall time."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (scikit-learn brings it); without it BLAS keeps its own threading
        return contextlib.nullcontext()
    limits: contextlib.AbstractContextManager[Any] = threadpool_limits(limits=1, user_api="blas")
    return limits


def pca_2d(x: np.ndarray, *, fit_rows: int = 5000, seed: int = _SEED) -> np.ndarray:
    """Project onto the top two principal components (randomized subspace iteration, deterministic signs).

    :param x: (N, D) matrix.
    :param fit_rows: at most this many rows (a seeded sample) fit the components; all rows are projected.
    """
    with _one_blas_thread():
        return _pca_2d(x, fit_rows, seed)


def pca_basis(x: np.ndarray, *, fit_rows: int = 5000, seed: int = _SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, components)`` of the top two principal components of ``x`` (``components``: (k, D), k <= 2).

    :param x: (N, D) matrix, N >= 1.
    :param fit_rows: at most this many rows (a seeded sample) fit the components.
    """
    with _one_blas_thread():
        return _pca_basis(x, fit_rows, seed)


def _pca_basis(x: np.ndarray, fit_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    rng = np.random.default_rng(seed)
    fit = x if n <= fit_rows else x[np.sort(rng.choice(n, fit_rows, replace=False))]
    fit = fit.astype(np.float64)
    mean = fit.mean(axis=0)
    centred = np.subtract(fit, mean, out=fit)  # (fit is this function's own copy: centred in place)
    d = x.shape[1]
    k = min(d, 2)
    if d <= 128:
        _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        comps = vecs[:, ::-1][:, :k].T.copy()
    else:
        q = rng.standard_normal((d, min(d, 12)))
        for _ in range(4):
            q, _ = np.linalg.qr(centred.T @ (centred @ q))
        _, vecs = np.linalg.eigh((centred @ q).T @ (centred @ q))
        comps = (q @ vecs[:, ::-1][:, :k]).T
    for i in range(len(comps)):  # a deterministic orientation: largest coefficient positive
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] = -comps[i]
    return mean, comps


def project_2d(x: np.ndarray, mean: np.ndarray, comps: np.ndarray) -> np.ndarray:
    """(N, 2) coordinates of ``x`` in the basis of :func:`pca_basis` (a missing second component is 0)."""
    out = np.zeros((len(x), 2))
    if len(x) and len(comps):
        # Project without a centred copy of x (float32 is plenty for a picture).
        out[:, : len(comps)] = x.astype(np.float32, copy=False) @ comps.T.astype(np.float32) - mean @ comps.T
    return out


def _pca_2d(x: np.ndarray, fit_rows: int, seed: int) -> np.ndarray:
    if len(x) == 0:
        return np.zeros((0, 2))
    mean, comps = _pca_basis(x, fit_rows, seed)
    return project_2d(x, mean, comps)


@dataclass
class EmbeddingMap:
    """2-D coordinates and the group of every plotted point; ``total`` per group before subsampling."""

    xy: np.ndarray
    group: np.ndarray  # index into GROUPS
    total: dict[str, int]
    shown: dict[str, int]


def embedding_map(
    rows: pa.Table, preselected: pa.Table | None, *, max_points: int, seed: int = _SEED
) -> EmbeddingMap | None:
    """PCA map of this run's rows and the earlier-selected samples, subsampled to ``max_points``.

    Newly selected samples are kept first; the rest of the budget is shared between earlier-selected and
    not-selected samples in proportion to their sizes, each drawn with a fixed seed (the same inputs give
    the same picture). Rows of this run that are also in ``preselected`` count as earlier-selected once.
    """
    idx, mat = embedding_matrix(rows)
    sel = selected_mask(rows)[idx] if len(idx) else np.zeros(0, dtype=bool)
    pre_idx, pre_mat = embedding_matrix(preselected)
    if len(pre_idx) and len(idx) and pre_mat.shape[1] != mat.shape[1]:
        pre_idx, pre_mat = pre_idx[:0], np.zeros((0, mat.shape[1]), dtype=np.float32)
    groups = np.where(sel, 2, 0)
    if (len(pre_idx) and len(idx) and preselected is not None
            and C.KEY in rows.column_names and C.KEY in preselected.column_names):
        pre_keys = preselected.column(C.KEY).take(pa.array(pre_idx))
        in_pre = pc.is_in(rows.column(C.KEY).take(pa.array(idx)), pre_keys).to_numpy(zero_copy_only=False)
        keep = ~(in_pre & ~sel)  # drop this run's copy of an earlier-selected sample
        if not keep.all():  # (else no copy of the matrix)
            idx, mat, groups = idx[keep], mat[keep], groups[keep]
    if not len(idx) and not len(pre_idx):
        return None
    n_run = len(idx)
    groups = np.concatenate([groups, np.ones(len(pre_idx), dtype=np.int64)]).astype(np.int64)
    total = {g: int((groups == i).sum()) for i, g in enumerate(GROUPS)}
    chosen = subsample(groups, max_points, seed=seed)
    run_part, pre_part = chosen[chosen < n_run], chosen[chosen >= n_run] - n_run
    if not len(pre_part):
        points = mat if len(run_part) == n_run else mat[run_part]
    elif not len(run_part):
        points = pre_mat if len(pre_part) == len(pre_mat) else pre_mat[pre_part]
    else:
        points = np.concatenate([mat[run_part], pre_mat[pre_part]])  # chosen is sorted: run rows come first
    xy = pca_2d(points, seed=seed)
    g = groups[chosen]
    return EmbeddingMap(xy=xy, group=g, total=total, shown={name: int((g == i).sum()) for i, name in enumerate(GROUPS)})


def subsample(groups: np.ndarray, max_points: int, *, seed: int = _SEED) -> np.ndarray:
    """Sorted indices of at most ``max_points`` rows: all of group 2 first, the rest shared proportionally."""
    n = len(groups)
    if max_points <= 0:
        raise ValueError(f"max_points must be positive, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    new = np.flatnonzero(groups == 2)
    if len(new) >= max_points:
        return np.sort(rng.choice(new, max_points, replace=False))
    budget = max_points - len(new)
    rest = [np.flatnonzero(groups == 1), np.flatnonzero(groups == 0)]
    sizes = np.array([len(r) for r in rest], dtype=np.float64)
    take = np.floor(budget * sizes / sizes.sum()).astype(int)
    take[np.argmax(sizes)] += budget - take.sum()
    parts = [new] + [rng.choice(r, t, replace=False) for r, t in zip(rest, take, strict=True) if t > 0]
    return np.sort(np.concatenate(parts))


# -------------------------------------------------------------------------------------------- metrics
def lightly_metric_columns(rows: pa.Table) -> list[str]:
    """The numeric ``metadata.lightly.*`` columns, in table order."""
    return [
        name for name, typ in zip(rows.column_names, rows.schema.types, strict=True)
        if name.startswith(_LIGHTLY_PREFIX) and (pa.types.is_integer(typ) or pa.types.is_floating(typ))
    ]


def metric_values(rows: pa.Table, column: str, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite values of a numeric column for all rows and for the selected rows."""
    v = pc.fill_null(pc.cast(rows.column(column), pa.float64()), math.nan).to_numpy(zero_copy_only=False)
    finite = np.isfinite(v)
    return v[finite], v[finite & sel]


# ------------------------------------------------------------------------------------------- balances
@dataclass
class Balance:
    """One BALANCE strategy: its column and the fractions per class (target, achieved, all candidates)."""

    title: str
    column: str
    classes: list[str]
    target: np.ndarray
    achieved: np.ndarray
    available: np.ndarray
    n_selected: int


def is_boolean_column(table: pa.Table, column: str) -> bool:
    """Whether ``column`` of ``table`` is boolean-typed (a ``CATEGORICAL_BOOLEAN`` field: classes ``True``/``False``)."""
    return column in table.column_names and pa.types.is_boolean(table.schema.field(column).type)


def class_values(table: pa.Table, column: str) -> list[str | None]:
    """The BALANCE class of every row of a categorical column, spelt as the engine spells it
    (:func:`lightly_airflow.selection.inputs.class_name`: ``True``/``False`` for a boolean field, ``str`` of the
    value otherwise); ``None`` where the row lacks a value (null, NaN)."""
    from lightly_airflow.selection.inputs import class_name

    boolean = is_boolean_column(table, column)
    names = (None if v is None else class_name(v, boolean) for v in table.column(column).to_pylist())
    return [None if v == "nan" else v for v in names]


def target_shares(target: Mapping[str, Any], table: pa.Table, column: str) -> dict[str, float]:
    """A BALANCE ``target`` keyed by class names as the engine reads it (``{"true": 0.5}`` on a boolean field is
    the class ``True``; :func:`lightly_airflow.selection.inputs.target_classes`)."""
    from lightly_airflow.selection.inputs import class_name

    boolean = is_boolean_column(table, column)
    return {class_name(k, boolean): float(v) for k, v in target.items()}


def _membership(table: pa.Table, inp: Mapping[str, Any], names: list[str] | None) -> tuple[np.ndarray, list[str]] | None:
    """(N, classes) membership of a categorical metadata column or a class-distribution column, as the engine."""
    if inp.get("type") == "METADATA":
        column = C.metadata_column(str(inp.get("key")))
        if column not in table.column_names:
            return None
        values = class_values(table, column)
        if names is None:
            names = sorted({v for v in values if v is not None})
        lookup = {n: i for i, n in enumerate(names)}
        mat = np.zeros((len(values), len(names)))
        for r, v in enumerate(values):
            if v in lookup:
                mat[r, lookup[v]] = 1.0
        return mat, names
    column = C.class_distribution_column(str(inp.get("task")))
    if column not in table.column_names:
        return None
    col = table.column(column).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    if not len(lengths) or not lengths.max():
        return None
    width = int(lengths.max())
    mat = np.zeros((len(col), width))
    ok = np.flatnonzero(lengths == width)
    if len(ok):
        flat = col.take(pa.array(ok)).flatten()
        mat[ok] = np.nan_to_num(pc.fill_null(flat, 0.0).to_numpy(zero_copy_only=False).astype(np.float64)).reshape(len(ok), width)
    raw = (table.schema.metadata or {}).get(C.CATEGORIES_METADATA_KEY.encode())
    found = None
    if raw:
        try:
            found = json.loads(raw).get(str(inp.get("task")))
        except (ValueError, AttributeError):
            found = None
    if names is None:
        from lightly_airflow.selection.inputs import class_name

        names = [class_name(n) for n in found] if found and len(found) == width else [str(i) for i in range(width)]
    if len(names) != width:
        return None
    return mat, names


def _fractions(v: np.ndarray) -> np.ndarray:
    s = v.sum()
    return v / s if s > 0 else np.zeros_like(v)


def engine_balances(summary: Mapping[str, Any], n_selected: int) -> list[Balance] | None:
    """The BALANCE objectives as the selection engine reported them (``metrics.objectives``), or None.

    The engine's report is what the selection optimised (target vs achieved, preselected counted); the
    report draws it as is instead of recomputing it from the config.
    """
    metrics = summary.get("metrics") or {}
    objectives = metrics.get("objectives") if isinstance(metrics, Mapping) else None
    if not isinstance(objectives, Mapping):
        return None
    out: list[Balance] = []
    for path, rep in objectives.items():
        if not isinstance(rep, Mapping) or rep.get("kind") != "BALANCE":
            continue

        def arr(key: str, rep: Mapping[str, Any] = rep) -> np.ndarray:
            return np.array([math.nan if v is None else float(v) for v in rep.get(key) or []])

        out.append(Balance(
            title=f"{path}: BALANCE {rep.get('distribution')} on {rep.get('input')}", column=str(rep.get("input")),
            classes=[str(c) for c in rep.get("classes") or []], target=arr("target"), achieved=arr("achieved"),
            available=arr("available"), n_selected=n_selected,
        ))
    return out


def balances(rows: pa.Table, config: Mapping[str, Any], preselected: pa.Table | None) -> list[Balance]:
    """Target vs achieved class fractions of every BALANCE strategy whose column the rows carry.

    Achieved counts this run's selection plus the earlier-selected samples when they carry the column (as
    the engine does); "available" is the distribution among this run's ok rows.
    """
    out: list[Balance] = []
    sel = selected_mask(rows)
    ok = np.ones(rows.num_rows, dtype=bool)
    if C.STATUS in rows.column_names:
        ok = pc.fill_null(pc.equal(rows.column(C.STATUS), C.STATUS_OK), False).to_numpy(zero_copy_only=False)
    for i, entry in enumerate(config.get("strategies") or []):
        if not isinstance(entry, Mapping):
            continue
        inp, strat = entry.get("input") or {}, entry.get("strategy") or {}
        if strat.get("type") != "BALANCE" or not isinstance(inp, Mapping):
            continue
        if inp.get("type") == "PREDICTIONS" and inp.get("name") not in (None, "CLASS_DISTRIBUTION"):
            continue
        found = _membership(rows, inp, None)
        if found is None:
            continue
        mat, names = found
        column = C.metadata_column(str(inp.get("key"))) if inp.get("type") == "METADATA" else \
            C.class_distribution_column(str(inp.get("task")))
        achieved_counts = mat[sel].sum(axis=0)
        if preselected is not None and preselected.num_rows and column in preselected.column_names:
            pre = _membership(preselected, inp, names)
            if pre is not None:
                achieved_counts = achieved_counts + pre[0].sum(axis=0)
        available = _fractions(mat[ok].sum(axis=0))
        dist = strat.get("distribution") or "TARGET"
        target_map = target_shares(strat.get("target") or {}, rows, column)
        if dist == "UNIFORM":
            target = np.full(len(names), 1.0 / max(len(names), 1))
        elif dist == "INPUT":
            target = available
        else:
            target = np.array([float(target_map.get(n, 0.0)) for n in names])
        achieved = _fractions(achieved_counts)
        classes = list(names)
        rest = [j for j, n in enumerate(names) if n not in target_map]
        if dist == "TARGET" and rest:
            # Classes without a target share the remainder, as the engine does: show them as one bar.
            keep = [j for j, n in enumerate(names) if n in target_map]
            classes = [names[j] for j in keep] + [_OTHER]
            remainder = max(0.0, 1.0 - sum(float(v) for v in target_map.values()))
            target = np.append(target[keep], remainder)
            achieved = np.append(achieved[keep], achieved[rest].sum())
            available = np.append(available[keep], available[rest].sum())
        what = f"metadata {inp.get('key')}" if inp.get("type") == "METADATA" else f"predictions {inp.get('task')}"
        out.append(Balance(
            title=f"strategies[{i}]: BALANCE {dist} on {what}", column=column, classes=classes,
            target=target, achieved=achieved, available=available, n_selected=int(sel.sum()),
        ))
    return out


# ------------------------------------------------------------------------------------------ tables
def not_ok_rows(rows: pa.Table, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` rows whose status is not ok (key order as in the rows) and how many there are."""
    if C.STATUS not in rows.column_names or rows.num_rows == 0:
        return [], 0
    bad = pc.invert(pc.fill_null(pc.equal(rows.column(C.STATUS), C.STATUS_OK), False))
    table = rows.filter(bad)
    cols = [c for c in (C.KEY, C.STATUS, C.STATUS_REASON, C.DUPLICATE_OF) if c in table.column_names]
    return table.slice(0, limit).select(cols).to_pylist(), table.num_rows


def selected_rows(rows: pa.Table, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` selected rows in pick order (``pick_rank``; row order when it is absent)."""
    sel = selected_mask(rows)
    if not sel.any():
        return [], 0
    table = rows.filter(pa.array(sel))
    if C.PICK_RANK in table.column_names:
        table = table.sort_by([(C.PICK_RANK, "ascending")])
    cols = [c for c in (C.PICK_RANK, C.KEY, *C.VIDEO_COLUMNS) if c in table.column_names]
    return table.slice(0, limit).select(cols).to_pylist(), table.num_rows


def stage_notes(summary: Mapping[str, Any]) -> list[str]:
    """What the stages guessed or dropped without failing a file, from the summary's counts, as the report's notes:
    predictions without probabilities (``derived_probabilities``), the object stage's dropped inputs (``objects``:
    :data:`~lightly_airflow.objects.shard.DROP_COUNTS`) and selected video frames whose PNG failed (``frames``).
    Each is logged by its task; here it is shown, so that nothing a run guessed or left out is silent."""
    from lightly_airflow.predictions.shard import DERIVED_PROBABILITIES

    out = []
    for task, n in sorted((summary.get("derived_probabilities") or {}).items()):
        out.append(f"{int(n):,} predictions of task '{task}' {DERIVED_PROBABILITIES}.")
    objects = summary.get("objects") or {}
    for name, what in (
        ("boxes_outside_image", "predicted boxes have no area inside their image: no object was made of them"),
        ("video_frames_failed", "video frames with objects did not decode: they have no objects (each frame is "
                                "reported corrupt)"),
        ("images_with_normalized_looking_boxes", "images have boxes of a task that all lie within [0, 1]: relative "
                                                 "coordinates where Lightly's format has pixels? Their objects are "
                                                 "tiny; fix the prediction files"),
        ("prediction_files_rejected", "prediction files of object tasks give their image no objects (unreadable or "
                                      "with a problem: see the problems file)"),
        ("images_failed", "images with objects yield no objects: they could not be decoded or cropped (the embed "
                          "task's log names each; a corrupt one is listed with the problems)"),
    ):
        if int(objects.get(name) or 0):
            out.append(f"{int(objects[name]):,} {what}.")
    out.extend(str(note) for note in objects.get("notes") or [])  # (worded by objects.run.summary)
    failed = int((summary.get("frames") or {}).get("failed") or 0)
    if failed:
        out.append(f"{failed:,} selected video frames could not be written as PNG (the task log names them); an "
                   "export of them has no image file.")
    return out


def objects_counts(summary: Mapping[str, Any]) -> str:
    """The object-level run's counts (``summary["objects"]``: :func:`lightly_airflow.objects.run.summary`) as the
    first sentence of the objects section, or ``""``: the page showed the selected images' boxes but never how many
    objects the run had or selected."""
    objects = summary.get("objects") or {}
    if objects.get("objects") is None:
        return ""
    tasks = ", ".join(f"'{t}'" for t in objects.get("tasks") or [])
    return (f"{int(objects['objects']):,} objects{f' (tasks {tasks})' if tasks else ''} in this run's images; "
            f"{int(objects.get('selected') or 0):,} of them selected. ")
