"""Inputs → objectives → the greedy engine (lightly-compat.md §1 "How strategies combine").

1. THRESHOLD strategies filter the candidates.
2. The rest is greedy: each step picks the candidate maximising ``Σ strength_i · log(objective_i)`` (the log of
   ``Π objective_i ** strength_i``), lowest index on ties. Objectives lie in [0, 1] and are floored at
   :data:`EPS` so that a zero never hides the other objectives:

   * DIVERSITY: ``min(d / 2, 1)``, ``d`` = distance to the nearest selected sample (preselected included);
     DIVERSITY alone maximises ``d`` itself (exact farthest-point order);
   * WEIGHTS: the value scaled to [0, 1] (``v / max`` for non-negative values, min-max otherwise);
   * BALANCE: the selection's deficit of the sample's class(es) relative to the largest deficit;
   * SIMILARITY: ``1 - d_query / 2`` with ``d_query`` the distance to the nearest query embedding;
   * TYPICALITY: ``1 / (1 + mean distance to the K nearest neighbours)``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.config import SelectionConfig, parse_selection_config
from lightly_airflow.config.selection import (
    BalanceStrategy,
    DiversityStrategy,
    EmbeddingsInput,
    MetadataInput,
    PredictionsInput,
    RandomInput,
    ScoresInput,
    SimilarityStrategy,
    ThresholdStrategy,
    TypicalityStrategy,
    WeightsStrategy,
)
from lightly_airflow.selection.kernels import FarthestPointState, LazyMaxHeap
from lightly_airflow.selection.metrics import selection_metrics

logger = logging.getLogger(__name__)

EPS = 1e-6
_OTHER = "__other__"


@dataclass
class SelectionResult:
    """What :func:`select` returns.

    :param indices: pick order, as row indices into the candidates table.
    :param keys: the ``key`` column of the picks, in pick order.
    :param metrics: JSON-serialisable numbers and strings (``stop_reason`` included).
    :param stop_reason: ``n_reached``, ``minimum_distance``, ``max_sum``, ``minimum_typicality`` or
        ``no_candidates_left``.
    """

    indices: np.ndarray
    keys: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    stop_reason: str = "n_reached"


# ---------------------------------------------------------------------------------------------- columns
def _missing(path: str, column: str, producer: str, table: pa.Table, what: str = "candidates") -> ValueError:
    have = ", ".join(n for n in table.column_names[:30])
    return ValueError(
        f"{path}: the {what} have no column {column!r} (produced by {producer}); columns present: [{have}]"
    )


def embedding_matrix(table: pa.Table, *, path: str = "input", what: str = "candidates") -> np.ndarray:
    """The ``embedding`` column as an L2-normalised C-contiguous float32 (N, D) matrix.

    :param table: a table with an ``embedding`` column (list<float> or fixed_size_list).
    :param path: JSON path of the input that needs it (for the error message).
    """
    if C.EMBEDDING not in table.column_names:
        raise _missing(path, C.EMBEDDING, "the embed stage (embeddings/ staging files) or a custom "
                       ".lightly/embeddings/*.csv", table, what)
    col = table.column(C.EMBEDDING).combine_chunks()
    n = len(col)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if col.null_count:
        raise ValueError(f"{path}: {col.null_count} {what} have no embedding (null); drop them first")
    values = col.flatten().to_numpy(zero_copy_only=False)
    if len(values) % n:
        raise ValueError(f"{path}: the {what}' embeddings have different lengths")
    x = values.reshape(n, len(values) // n).astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(x, dtype=np.float32)


def _numeric(table: pa.Table, column: str, path: str, producer: str) -> np.ndarray:
    if column not in table.column_names:
        raise _missing(path, column, producer, table)
    arr = table.column(column).combine_chunks()
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)):
        raise ValueError(f"{path}: column {column!r} holds {arr.type}, not numbers (needed by this strategy)")
    out = arr.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    return np.nan_to_num(out, nan=0.0)


def _producer(inp: Any) -> str:
    if isinstance(inp, ScoresInput):
        return f".lightly/predictions/{inp.task}/ (scored with {inp.score})"
    if isinstance(inp, PredictionsInput):
        return f".lightly/predictions/{inp.task}/"
    if isinstance(inp, MetadataInput):
        if inp.key.startswith("lightly."):
            return "the metadata stage (computed lightly.* metrics)"
        return ".lightly/metadata/ (custom metadata schema.json and files)"
    return "the pipeline"


def scalar_input(table: pa.Table, inp: Any, path: str, seed: int | None) -> np.ndarray:
    """The per-sample scalar of a SCORES, METADATA (numeric), CATEGORY_COUNT or RANDOM input."""
    if isinstance(inp, ScoresInput):
        return _numeric(table, C.score_column(inp.task, inp.score), path, _producer(inp))
    if isinstance(inp, MetadataInput):
        return _numeric(table, C.metadata_column(inp.key), path, _producer(inp))
    if isinstance(inp, PredictionsInput) and inp.name == "CATEGORY_COUNT":
        total = np.zeros(table.num_rows)
        for cat in inp.categories or []:
            total += _numeric(table, C.category_count_column(inp.task, cat), path, _producer(inp))
        return total
    if isinstance(inp, RandomInput):
        s = inp.random_seed if inp.random_seed is not None else seed
        return np.random.default_rng(s).random(table.num_rows)
    raise ValueError(f"{path}: input {inp.type} gives no scalar value")


def _categories(table: pa.Table, task: str) -> list[str] | None:
    meta = table.schema.metadata or {}
    raw = meta.get(C.CATEGORIES_METADATA_KEY.encode())
    if raw is None:
        return None
    names = json.loads(raw).get(task)
    return [str(n) for n in names] if names is not None else None


def class_input(
    table: pa.Table, inp: Any, path: str, names: list[str] | None = None
) -> tuple[np.ndarray, list[str], bool]:
    """Class membership of every row: (N, C) weights, class names, and whether it is one-hot (categorical).

    :param names: class names to use (so candidates and preselected agree); discovered when None.
    """
    if isinstance(inp, MetadataInput):
        column = C.metadata_column(inp.key)
        if column not in table.column_names:
            raise _missing(path, column, _producer(inp), table)
        values = [None if v is None else str(v) for v in table.column(column).to_pylist()]
        if names is None:
            names = sorted({v for v in values if v is not None})
        lookup = {n: i for i, n in enumerate(names)}
        labels = np.array([lookup.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)
        onehot = np.zeros((len(values), len(names)))
        ok = labels >= 0
        onehot[np.flatnonzero(ok), labels[ok]] = 1.0
        return onehot, names, True
    column = C.class_distribution_column(inp.task)
    if column not in table.column_names:
        raise _missing(path, column, _producer(inp), table)
    col = table.column(column).combine_chunks()
    n = len(col)
    mat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(n, -1) if n else np.zeros((0, 0))
    found = _categories(table, inp.task) or [str(i) for i in range(mat.shape[1])]
    if names is None:
        names = found
    if mat.shape[1] != len(names):
        raise ValueError(f"{path}: {column!r} has {mat.shape[1]} classes but the task has {len(names)} categories")
    return np.nan_to_num(mat), names, False


# ------------------------------------------------------------------------------------------- objectives
def _scale_weights(v: np.ndarray) -> np.ndarray:
    if len(v) == 0:
        return v
    lo, hi = float(v.min()), float(v.max())
    if lo >= 0:
        return v / hi if hi > 0 else np.ones_like(v)
    return (v - lo) / (hi - lo) if hi > lo else np.ones_like(v)


def _log(obj: np.ndarray | float) -> np.ndarray:
    return np.log(np.maximum(obj, EPS))


def _min_distance_to(x: np.ndarray, q: np.ndarray, block: int = 8192) -> np.ndarray:
    out = np.empty(len(x))
    qn = (q.astype(np.float64) ** 2).sum(axis=1)
    for s in range(0, len(x), block):
        xb = x[s : s + block]
        d2 = (xb.astype(np.float64) ** 2).sum(axis=1)[:, None] + qn[None, :] - 2.0 * (xb @ q.T)
        out[s : s + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def typicality(x: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """``1 / (1 + mean distance to the k nearest other candidates)``, blockwise (O(N²D) time, O(N) memory)."""
    n = len(x)
    if n <= 1:
        return np.ones(n)
    k = min(k, n - 1)
    sq = (x.astype(np.float64) ** 2).sum(axis=1)
    out = np.empty(n)
    for s in range(0, n, block):
        xb = x[s : s + block]
        d2 = sq[s : s + block, None] + sq[None, :] - 2.0 * (xb @ x.T)
        rows = np.arange(len(xb))
        d2[rows, s + rows] = np.inf
        part = np.partition(d2, k - 1, axis=1)[:, :k]
        out[s : s + block] = 1.0 / (1.0 + np.sqrt(np.maximum(part, 0.0)).mean(axis=1))
    return out


class _Balance:
    """Deficit-based BALANCE objective; tracks the achieved class counts."""

    def __init__(self, strat: BalanceStrategy, names: list[str], member: np.ndarray, path: str,
                 pre_counts: np.ndarray | None) -> None:
        self.strength = strat.strength
        if strat.distribution == "TARGET":
            target = dict(strat.target or {})
            unknown = [k for k in target if k not in names]
            if unknown:
                # A run whose new files lack a class (a batch without photos) cannot pick it: balance the rest.
                logger.warning("%s.target: classes %s do not occur among these samples (known: %s); they cannot "
                            "be selected in this run.", path, unknown, names[:50])
                target = {k: v for k, v in target.items() if k in names}
            rest = [n for n in names if n not in target]
            self.names = [n for n in names if n in target] + ([_OTHER] if rest else [])
            idx = {n: i for i, n in enumerate(self.names)}
            cols = np.array([idx.get(n, idx.get(_OTHER, -1)) for n in names])
            self.t = np.array([target[n] for n in self.names if n != _OTHER] +
                              ([max(0.0, 1.0 - sum(target.values()))] if rest else []))
        else:
            self.names = list(names)
            cols = np.arange(len(names))
            if strat.distribution == "UNIFORM":
                self.t = np.full(len(names), 1.0 / max(len(names), 1))
            else:
                tot = member.sum(axis=0)
                self.t = tot / tot.sum() if tot.sum() > 0 else np.full(len(names), 1.0 / len(names))
        # Map the per-name membership onto the target buckets.
        self.proj = np.zeros((len(names), len(self.names)))
        self.proj[np.arange(len(names)), cols] = 1.0
        self.member = member @ self.proj
        rs = self.member.sum(axis=1, keepdims=True)
        self.member_n = np.divide(self.member, rs, out=np.zeros_like(self.member), where=rs > 0)
        self.counts = np.zeros(len(self.names)) if pre_counts is None else pre_counts @ self.proj

    def bucket_bonus(self) -> np.ndarray:
        """strength · log(objective) per bucket."""
        total = self.counts.sum()
        achieved = self.counts / total if total > 0 else np.zeros_like(self.counts)
        gap = np.maximum(self.t - achieved, 0.0)
        obj = gap / gap.max() if gap.max() > 0 else np.ones_like(gap)
        return self.strength * _log(obj)

    def sample_bonus(self) -> np.ndarray:
        total = self.counts.sum()
        achieved = self.counts / total if total > 0 else np.zeros_like(self.counts)
        gap = np.maximum(self.t - achieved, 0.0)
        obj = self.member_n @ (gap / gap.max()) if gap.max() > 0 else np.ones(len(self.member_n))
        return self.strength * _log(obj)

    def add(self, i: int) -> None:
        self.counts += self.member[i]

    def report(self) -> dict[str, Any]:
        total = self.counts.sum()
        achieved = self.counts / total if total > 0 else self.counts
        return {n: {"target": round(float(t), 6), "achieved": round(float(a), 6)}
                for n, t, a in zip(self.names, self.t, achieved, strict=True)}


# ------------------------------------------------------------------------------------------------ select
def _threshold_mask(v: np.ndarray, s: ThresholdStrategy) -> np.ndarray:
    return {"SMALLER": v < s.threshold, "SMALLER_EQUAL": v <= s.threshold, "BIGGER": v > s.threshold,
            "BIGGER_EQUAL": v >= s.threshold}[s.operation]


def select(
    candidates: pa.Table,
    config: SelectionConfig | dict | str,
    *,
    preselected: pa.Table | None = None,
    query_embeddings: Mapping[tuple[str, str], np.ndarray] | None = None,
    seed: int | None = None,
) -> SelectionResult:
    """Run a Lightly selection config over the candidates.

    :param candidates: samples table (columns per :mod:`lightly_airflow.columns`, ``key`` required).
    :param config: selection config (model, dict or JSON).
    :param preselected: samples already in the datapool (at least ``embedding``); they count as selected
        for DIVERSITY and, when they carry the column, for BALANCE's achieved distribution.
    :param query_embeddings: query sets for SIMILARITY keyed by ``(dataset_id, tag_name)``.
    :param seed: seed of RANDOM inputs without ``random_seed``.
    """
    t0 = time.monotonic()
    cfg = parse_selection_config(config)
    if C.KEY not in candidates.column_names:
        raise ValueError("candidates: the samples table needs a 'key' column")
    n_all = candidates.num_rows
    n_target = cfg.target_count(n_all)
    keep = np.ones(n_all, dtype=bool)
    fixed = np.zeros(n_all)
    diversity: tuple[str, DiversityStrategy] | None = None
    balances: list[tuple[str, BalanceStrategy, Any]] = []
    weights: list[tuple[str, WeightsStrategy, np.ndarray]] = []
    typical: list[tuple[TypicalityStrategy, np.ndarray]] = []
    x: np.ndarray | None = None

    def emb() -> np.ndarray:
        nonlocal x
        if x is None:
            x = embedding_matrix(candidates, path=path + ".input")
        return x

    for i, entry in enumerate(cfg.strategies):
        path = f"strategies[{i}]"
        inp, strat = entry.input, entry.strategy
        if isinstance(inp, EmbeddingsInput) and inp.task is not None:
            raise _missing(path + ".input.task", f"{C.EMBEDDING} of objects of task {inp.task!r}",
                           "object-level embedding (not supported yet: use image embeddings)", candidates)
        if isinstance(strat, ThresholdStrategy):
            keep &= _threshold_mask(scalar_input(candidates, inp, path + ".input", seed), strat)
        elif isinstance(strat, DiversityStrategy):
            if diversity is not None:
                raise ValueError(f"{path}: only one DIVERSITY strategy per config (first at {diversity[0]})")
            emb()
            diversity = (path, strat)
        elif isinstance(strat, WeightsStrategy):
            v = scalar_input(candidates, inp, path + ".input", seed)
            weights.append((path, strat, v))
        elif isinstance(strat, BalanceStrategy):
            balances.append((path, strat, inp))
        elif isinstance(strat, SimilarityStrategy):
            qkey = (inp.dataset_id, inp.tag_name)
            if query_embeddings is None or qkey not in query_embeddings:
                raise ValueError(f"{path}.input: no query embeddings for dataset_id={inp.dataset_id!r} "
                                 f"tag_name={inp.tag_name!r}; the caller must load that datapool tag or "
                                 "Parquet file (known: " + str(sorted(query_embeddings or {})) + ")")
            q = np.asarray(query_embeddings[qkey], dtype=np.float64)
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            sim = 1.0 - _min_distance_to(emb(), q.astype(np.float32)) / 2.0
            fixed += strat.strength * _log(sim)
        elif isinstance(strat, TypicalityStrategy):
            typical.append((strat, typicality(emb(), strat.num_nearest_neighbors)))

    for strat, typ in typical:
        fixed += strat.strength * _log(typ)
    idx_keep = np.flatnonzero(keep)
    n_after = len(idx_keep)
    sub = candidates.take(pa.array(idx_keep)) if n_after != n_all else candidates
    fixed_k = fixed[idx_keep]
    plain_weights = []
    for path, strat, v in weights:
        vk = v[idx_keep]
        if strat.target_range is None:
            fixed_k = fixed_k + strat.strength * _log(_scale_weights(vk))
        plain_weights.append((path, strat, vk))
    bal_objs: list[_Balance] = []
    labels = None
    for path, strat, inp in balances:
        member, names, onehot = class_input(sub, inp, path + ".input")
        pre = None
        if preselected is not None:
            try:
                pm, _, _ = class_input(preselected, inp, path + ".input", names)
                pre = pm.sum(axis=0)
            except ValueError:
                pre = None
        bal = _Balance(strat, names, member, path + ".strategy", pre)
        bal._onehot = onehot  # type: ignore[attr-defined]
        bal_objs.append(bal)
    xk = x[idx_keep] if x is not None and n_after != n_all else x
    dynamic_dense = any(not b._onehot for b in bal_objs) or any(s.target_range for _, s, _ in plain_weights) \
        or len(bal_objs) > 1
    if len(bal_objs) == 1 and not dynamic_dense:
        labels = bal_objs[0].member.argmax(axis=1)
        labels[bal_objs[0].member.sum(axis=1) == 0] = 0
    pre_x = embedding_matrix(preselected, path="preselected", what="preselected samples") \
        if preselected is not None and diversity is not None and preselected.num_rows else None
    if xk is not None and pre_x is not None and pre_x.shape[1] != xk.shape[1]:
        raise ValueError(f"preselected embeddings have dimension {pre_x.shape[1]}, candidates {xk.shape[1]}")

    picks, reason, state = _greedy(cfg, n_target, fixed_k, xk, diversity, plain_weights, bal_objs, labels,
                                   dynamic_dense, pre_x, typical, idx_keep)
    indices = idx_keep[picks] if len(picks) else np.zeros(0, dtype=np.int64)
    keys = [str(k) for k in candidates.column(C.KEY).take(pa.array(indices)).to_pylist()]
    metrics = selection_metrics(
        x if x is not None else None, indices, state=state, preselected=pre_x,
        weights={p: v for p, _, v in weights},
        balances={f"balance[{p}]": b.report() for (p, _, _), b in zip(balances, bal_objs, strict=True)},
        seed=seed,
    )
    metrics.update({"n_candidates": n_all, "n_after_thresholds": n_after, "n_target": n_target,
                    "n_selected": len(indices), "stop_reason": reason,
                    "seconds": round(time.monotonic() - t0, 3)})
    logger.info("selection: %s", json.dumps(metrics, sort_keys=True))
    return SelectionResult(indices=indices, keys=keys, metrics=metrics, stop_reason=reason)


def _greedy(cfg, n_target, fixed, x, diversity, weights, bals, labels, dense, pre_x, typical, idx_keep):
    """The greedy loop; returns (picks into the filtered candidates, stop reason, FarthestPointState or None).

    Three exact paths, all maximising the same score with the lowest index on ties:

    * DIVERSITY alone: the farthest point of the pruned k-center state (max over group radii);
    * static keys (WEIGHTS/SIMILARITY/TYPICALITY), one-hot BALANCE and DIVERSITY with strength >= 0: a lazy
      max-heap per BALANCE class (keys only decrease, so stale keys are upper bounds);
    * everything else (soft BALANCE, several BALANCEs, ``target_range``, negative DIVERSITY strength): the
      score of every candidate is recomputed per pick.
    """
    n = len(fixed)
    picks: list[int] = []
    reason = "n_reached"
    max_sums = [(s.stopping_condition_max_sum, v) for _, s, v in weights if s.stopping_condition_max_sum is not None]
    sums = [0.0] * len(max_sums)
    min_typ = [(s.stopping_condition_minimum_typicality, t[idx_keep]) for s, t in typical
               if s.stopping_condition_minimum_typicality is not None]
    state = None
    heap = None
    order = None
    strength = diversity[1].strength if diversity is not None else 0.0
    n_pre = 0 if pre_x is None else len(pre_x)
    if diversity is not None:
        state = FarthestPointState(x, capacity=n_target + n_pre)
        if pre_x is not None:
            for row in pre_x:
                state.insert(row)
    pure = (diversity is not None and not bals and not weights and not typical and strength > 0
            and bool(np.all(fixed == 0)))
    if not pure and not dense and (diversity is None or strength >= 0):
        if diversity is None and not bals:
            order = np.argsort(-fixed, kind="stable")
        else:
            heap = LazyMaxHeap(fixed, state, strength, labels=labels,
                               n_labels=(len(bals[0].names) if labels is not None else 1))
    taken = np.zeros(n, dtype=bool)
    last = time.monotonic()
    while len(picks) < n_target:
        if pure:
            i, _ = state.farthest()
        elif heap is not None:
            i, _ = heap.best(bals[0].bucket_bonus() if labels is not None else None)
        elif order is not None:
            i = int(order[len(picks)]) if len(picks) < n else -1
        else:
            score = fixed.copy()
            if state is not None:
                score += strength * 0.5 * _log(np.minimum(state.d2 / 4.0, 1.0))
            for b in bals:
                score += b.sample_bonus()
            for _, s, v in weights:
                if s.target_range is not None:
                    cur = float(v[picks].sum()) if picks else 0.0
                    lo = s.target_range.min_sum if s.target_range.min_sum is not None else -math.inf
                    hi = s.target_range.max_sum if s.target_range.max_sum is not None else math.inf
                    obj = _scale_weights(v) if cur < lo else np.where(cur + v <= hi, 1.0, 0.0)
                    score += s.strength * _log(obj)
            score[taken] = -np.inf
            i = int(np.argmax(score)) if (~taken).any() else -1
        if i < 0:
            reason = "no_candidates_left"
            break
        if (
            diversity is not None
            and diversity[1].stopping_condition_minimum_distance is not None
            and math.sqrt(max(state.distance2(i), 0.0)) < diversity[1].stopping_condition_minimum_distance
        ):
            reason = "minimum_distance"
            break
        if any(v[i] < m for m, v in min_typ):
            reason = "minimum_typicality"
            break
        if any(sums[j] + v[i] > m for j, (m, v) in enumerate(max_sums)):
            reason = "max_sum"
            break
        for j, (_, v) in enumerate(max_sums):
            sums[j] += float(v[i])
        picks.append(i)
        taken[i] = True
        if heap is not None:
            heap.take(i)
        for b in bals:
            b.add(i)
        if state is not None:
            state.select(i)
        if time.monotonic() - last > 10:
            last = time.monotonic()
            logger.info("selection: %d/%d picked", len(picks), n_target)
    if state is not None:
        state.restore()
    return np.asarray(picks, dtype=np.int64), reason, state
