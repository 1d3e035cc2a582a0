"""Inputs → objectives → the greedy engine (lightly-compat.md §1 "How strategies combine").

1. THRESHOLD strategies filter the candidates (and, when a strategy uses EMBEDDINGS, samples without one are
   no candidates: see :mod:`lightly_airflow.selection.inputs` for the one rule on missing inputs).
2. Every other strategy is an :class:`~lightly_airflow.selection.objectives.Objective`; the greedy loop picks
   the candidate maximising ``Σ strength_i · log(objective_i)`` (the log of ``Π objective_i ** strength_i``),
   lowest index on ties. Objectives lie in [0, 1] and are floored at :data:`EPS` so that a zero never hides
   the other objectives:

   * DIVERSITY: ``min(d / 2, 1)``, ``d`` = distance to the nearest selected sample (preselected included);
     DIVERSITY alone maximises ``d`` itself (exact farthest-point order);
   * WEIGHTS: the value scaled to [0, 1] (``v / max`` for non-negative values, min-max otherwise);
   * BALANCE: the selection's deficit of the sample's class(es) relative to the largest deficit;
   * SIMILARITY: ``1 - d_query / 2`` with ``d_query`` the distance to the nearest query embedding;
   * TYPICALITY: ``1 / (1 + mean distance to the K nearest neighbours)``.
3. The result carries each objective's own report (``SelectionResult.objectives``) and, per pick, the value
   of every objective at the moment of the pick (``SelectionResult.pick_details``: why it was picked).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.config import SelectionConfig, parse_selection_config
from lightly_airflow.config.selection import EmbeddingsInput, ThresholdStrategy
from lightly_airflow.selection.arrays import (
    EmbeddingRows,
    embedding_matrix,
    embedding_rows,
    from_numpy,
    string_array,
)
from lightly_airflow.selection.inputs import input_column, scalar_input
from lightly_airflow.selection.kernels import (
    FarthestPointState,
    LazyMaxHeap,
    NumpyDenseState,
    NumpyLazyHeap,
    blas_one_thread,
    selection_threads,
    uses_numpy_state,
)
from lightly_airflow.selection.metrics import NearestWithin, selection_metrics, within_step
from lightly_airflow.selection.objectives import (
    EPS,
    BalanceObjective,
    Context,
    DiversityObjective,
    Objective,
    build_objective,
)

__all__ = ["EPS", "SelectionResult", "StopReason", "embedding_matrix", "greedy", "select"]

logger = logging.getLogger(__name__)

_EMBEDDING_STRATEGIES = ("DIVERSITY", "SIMILARITY", "TYPICALITY")


class StopReason(StrEnum):
    """Why a selection stopped, decided where it is known (the greedy loop, the filters of :func:`select`,
    :func:`~lightly_airflow.selection.sequences.select_sequences`, the pipeline before the engine runs). A ``str``:
    ``metrics["stop_reason"]`` holds its value, what the report, the commit's metadata and the logs show."""

    #: the selection reached its count (``n_samples`` / ``proportion_samples``)
    N_REACHED = "n_reached"
    #: a DIVERSITY's ``stopping_condition_minimum_distance``: the farthest candidate is closer than it
    MINIMUM_DISTANCE = "minimum_distance"
    #: a WEIGHTS' ``stopping_condition_max_sum``: the next pick would pass it
    MAX_SUM = "max_sum"
    #: a TYPICALITY's ``stopping_condition_minimum_typicality``: the most typical candidate is below it
    MINIMUM_TYPICALITY = "minimum_typicality"
    #: every candidate left after the filters was picked before the count was reached
    NO_CANDIDATES_LEFT = "no_candidates_left"
    #: the THRESHOLD strategies left no candidate (a candidate without the input fails the filter)
    THRESHOLDS_LEFT_NONE = "thresholds_left_none"
    #: an EMBEDDINGS strategy (DIVERSITY, SIMILARITY, TYPICALITY) and no candidate with an embedding
    NO_EMBEDDINGS = "no_embeddings"
    #: sequence selection (``selected_sequence_length``): no complete run of consecutive frames
    NO_COMPLETE_SEQUENCES = "no_complete_sequences"
    #: no candidate at all (the pipeline: every file corrupt, a duplicate, missing or selected before)
    NO_CANDIDATES = "no_candidates"
    #: the pipeline with ``n_samples_meaning: total``: the preselected samples already number ``n_samples``
    LABELLED_SET_FULL = "labelled_set_full"


@dataclass
class SelectionResult:
    """What :func:`select` returns.

    :param indices: pick order, as row indices into the candidates table.
    :param keys: the ``key`` column of the picks, in pick order.
    :param metrics: JSON-serialisable numbers and strings (``stop_reason``, ``missing_inputs`` and
        ``objectives`` included).
    :param stop_reason: why it stopped (:class:`StopReason`: ``n_reached``, ``minimum_distance``, ``max_sum``,
        ``minimum_typicality``, ``no_candidates_left``, ``thresholds_left_none``, ``no_embeddings`` or
        ``no_candidates``); ``metrics["stop_reason"]`` holds its value.
    :param objectives: each objective's own report keyed by its strategy path (``strategies[1]``): ``kind``,
        ``input``, ``strength`` and per kind e.g. BALANCE ``classes``/``target``/``achieved``/``available``,
        WEIGHTS ``mean_weight_selected``/``mean_weight_all``, DIVERSITY ``min_distance_at_pick``/``coverage_radius``.
        Also in ``metrics["objectives"]``.
    :param pick_details: one row per pick: ``key``, ``pick_rank``, ``selection.score`` (the combined
        ``Σ strength·log(objective)``) and per objective its value at the moment of the pick
        (``selection.distance``, ``selection.weight``, ``selection.balance_deficit``, ``selection.similarity``,
        ``selection.typicality``; a second objective of the same kind gets ``.<strategy index>``).
    """

    indices: np.ndarray
    keys: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    stop_reason: StopReason = StopReason.N_REACHED
    objectives: dict[str, dict[str, Any]] = field(default_factory=dict)
    pick_details: pa.Table | None = None


# ------------------------------------------------------------------------------------------------ select
def _threshold_mask(v: np.ndarray, s: ThresholdStrategy, float32: bool = False) -> np.ndarray:
    """NaN (a missing value) fails every comparison: it never passes a filter. ``float32``: the input column holds
    float32 values (a user's Parquet), compared with the threshold at that precision: 0.3 stored as float32 is
    0.30000001192 and failed ``SMALLER_EQUAL 0.3``."""
    t = float(np.float32(s.threshold)) if float32 else s.threshold
    with np.errstate(invalid="ignore"):
        mask: np.ndarray = {"SMALLER": v < t, "SMALLER_EQUAL": v <= t, "BIGGER": v > t, "BIGGER_EQUAL": v >= t}[
            s.operation]
    return mask


def select(
    candidates: pa.Table,
    config: SelectionConfig | dict[str, Any] | str,
    *,
    preselected: pa.Table | None = None,
    query_embeddings: Mapping[tuple[str, str], np.ndarray] | None = None,
    seed: int | None = None,
    objects: pa.Table | None = None,
    preselected_objects: pa.Table | None = None,
    embeddings: tuple[np.ndarray, np.ndarray] | EmbeddingRows | None = None,
    preselected_embeddings: tuple[np.ndarray, np.ndarray] | EmbeddingRows | None = None,
    keys: bool = True,
) -> SelectionResult:
    """Run a Lightly selection config over the candidates.

    :param candidates: samples table (columns per :mod:`lightly_airflow.columns`, ``key`` required).
    :param config: selection config (model, dict or JSON).
    :param preselected: samples already in the datapool (at least ``embedding``); they count as selected
        for DIVERSITY and, when they carry the column, for BALANCE's achieved distribution.
    :param query_embeddings: query sets for SIMILARITY keyed by ``(dataset_id, tag_name)``.
    :param seed: seed of RANDOM inputs without ``random_seed``.
    :param objects: object rows of the candidates (``parent_key, object_task, embedding``) for object-level
        inputs (``EMBEDDINGS`` with ``task``: :mod:`lightly_airflow.objects.objectives`).
    :param preselected_objects: object rows of the preselected images (they count as selected objects).
    :param embeddings: the candidates' ``embedding`` column already read as :func:`~lightly_airflow.selection.
        arrays.embedding_rows` gives it (normalised float32 matrix, present mask), e.g. streamed from Parquet by
        :func:`~lightly_airflow.selection.arrays.read_embedding_rows` (its ``EmbeddingRows`` may carry the rows'
        canonical squared norms, which the DIVERSITY state then takes); the table then needs no such column.
        The pruned and auto modes of the k-center state permute the matrix's rows while they run and put them
        back (the default dense mode never does).
    :param preselected_embeddings: the same for the preselected samples (``preselected`` then needs no
        ``embedding`` column).
    :param keys: False: the picks' keys are not read from ``candidates`` (the caller reads them later, e.g. the
        CLI from the file, and the table's ``key`` column may be a null stand-in): ``SelectionResult.keys`` is
        empty and ``pick_details`` has a null ``key`` column for the caller to replace.
    """
    t0 = time.monotonic()
    cfg = parse_selection_config(config)
    if C.KEY not in candidates.column_names:
        raise ValueError("candidates: the samples table needs a 'key' column")
    n_pre = preselected.num_rows if preselected is not None else 0
    entries = _applying(cfg, n_pre)
    applying = {path for path, _ in entries}
    inactive = [path for path in (f"strategies[{i}]" for i in range(len(cfg.strategies))) if path not in applying]
    if inactive:
        logger.info("selection: %s not used with %d preselected samples (their 'when')", inactive, n_pre)
    if not _greedy(entries):
        raise ValueError(f"no strategy applies with {n_pre} preselected samples: every non-THRESHOLD strategy "
                         "has a 'when' that excludes it; widen a 'when' range or add a strategy without one")
    n_all = candidates.num_rows
    n_target = cfg.target_count(n_all)
    rows_dtype = np.int32 if n_all < 2**31 else np.int64  # (kept-row indices: 4 bytes per row less than int64)
    ctx = Context(table=candidates, keep=np.arange(n_all, dtype=rows_dtype), n_target=n_target, preselected=preselected,
                  query_embeddings=query_embeddings, seed=seed, objects=objects,
                  preselected_objects=preselected_objects, preselected_rows=preselected_embeddings)
    keep = np.ones(n_all, dtype=bool)
    passes = np.ones(n_all, dtype=bool)  # (the THRESHOLD filters alone: why nothing is left, when nothing is)
    diversity_at: str | None = None
    for path, entry in entries:
        inp, strat = entry.input, entry.strategy
        object_level = isinstance(inp, EmbeddingsInput) and inp.task is not None
        if strat.type == "DIVERSITY":
            if diversity_at is not None:
                raise ValueError(f"{path}: only one DIVERSITY strategy per config (first at {diversity_at})")
            diversity_at = path
        if strat.type in _EMBEDDING_STRATEGIES and ctx.x_all is None and not object_level:
            if embeddings is not None:
                if len(embeddings[0]) != n_all or len(embeddings[1]) != n_all:
                    raise ValueError(f"embeddings: {len(embeddings[0])} rows for {n_all} candidates")
                ctx.x_all, ctx.has_embedding = embeddings[0], embeddings[1]
                ctx.x_sqnorms = embeddings.sqnorms if isinstance(embeddings, EmbeddingRows) else None
            else:
                ctx.x_all, ctx.has_embedding = embedding_rows(candidates, path=path + ".input")
            ctx.count_missing(C.EMBEDDING, int((~ctx.has_embedding).sum()),
                              "not a candidate (no embedding to place it by)")
            keep &= ctx.has_embedding
        if isinstance(strat, ThresholdStrategy):
            v = scalar_input(candidates, inp, path + ".input", seed)
            ctx.count_missing(input_column(inp), int(np.isnan(v).sum()), "THRESHOLD: fails the filter")
            column = input_column(inp)
            float32 = column in candidates.column_names and pa.types.is_float32(candidates.schema.field(column).type)
            passes &= _threshold_mask(v, strat, float32)
    keep &= passes
    ctx.keep = np.flatnonzero(keep).astype(rows_dtype, copy=False)
    # DIVERSITY is built last: its k-center state regroups the embedding rows in place (restored at the end),
    # so objectives that read the embeddings once (TYPICALITY, SIMILARITY) must read them first. The list
    # keeps the config's order.
    greedy_entries = _greedy(entries)
    ctx.diversity_alone = len(greedy_entries) == 1
    built = {path: _build(path, e.input, e.strategy, ctx)
             for path, e in sorted(greedy_entries, key=lambda pe: pe[1].strategy.type == "DIVERSITY")}
    objectives = [built[path] for path, _ in greedy_entries]

    div = next((o for o in objectives if isinstance(o, DiversityObjective)), None)
    beside = _nearest_beside(ctx, div, n_target)
    try:
        with blas_one_thread() if beside is not None else nullcontext():
            picks, reason, values, scores = greedy(objectives, n_target,
                                                   on_pick=beside.feed if beside is not None else None)
            nearest = beside.result(picks) if beside is not None else None
    finally:
        if beside is not None:
            beside.close()
    if not len(ctx.keep):  # (nothing to pick from: say which step left nothing)
        reason = _nothing_kept(n_all, passes, ctx.has_embedding if ctx.x_all is not None else None)
    elif reason == StopReason.N_REACHED and cfg.n_samples is not None and cfg.n_samples > len(picks):
        reason = StopReason.NO_CANDIDATES_LEFT  # (n_samples above the candidates: each picked, fewer than asked)
    indices = ctx.keep[picks].astype(np.int64) if len(picks) else np.zeros(0, dtype=np.int64)
    pick_keys = [str(k) for k in candidates.column(C.KEY).take(from_numpy(indices)).to_pylist()] if keys else []
    reports = {o.path: o.report(picks) for o in objectives}
    metrics = selection_metrics(ctx.x() if ctx.x_all is not None else None, picks,
                                state=div.state if div is not None else None, seed=seed, nearest=nearest)
    metrics.update({"n_candidates": n_all, "n_after_thresholds": len(ctx.keep), "n_target": n_target,
                    "n_selected": len(indices), "stop_reason": reason.value,
                    "missing_inputs": dict(sorted(ctx.missing.items())), "objectives": reports,
                    "inactive_strategies": inactive,
                    "seconds": round(time.monotonic() - t0, 3)})
    logger.info("selection: %s", json.dumps(metrics, sort_keys=True))
    details = pick_details_table(pick_keys if keys else None, scores, objectives, values)
    return SelectionResult(indices=indices, keys=pick_keys, metrics=metrics, stop_reason=reason,
                           objectives=reports, pick_details=details)


def _nearest_beside(ctx: Context, div: DiversityObjective | None, n_target: int) -> NearestWithin | None:
    """The nearest-pick metric computed on a thread beside the greedy loop (:class:`~lightly_airflow.selection.
    metrics.NearestWithin`), when the candidates' embeddings were read, a second core is there, more than one
    block of picks is wanted, and no compiled k-center state may permute the rows meanwhile; else None (computed
    after the loop)."""
    if ctx.x_all is None or selection_threads() < 2 or min(n_target, len(ctx.keep)) < 2:
        return None
    if div is not None and not isinstance(div.state, NumpyDenseState):
        return None
    x = ctx.x()
    if min(n_target, len(x)) <= within_step(x.shape[1]):  # (one block: nothing to overlap)
        return None
    return NearestWithin(x)


def _nothing_kept(n_all: int, passes: np.ndarray, has_embedding: np.ndarray | None) -> StopReason:
    """Why no candidate is left to pick from: none given, none with an embedding (EMBEDDINGS strategies), or the
    THRESHOLD filters (also when they leave only candidates without an embedding)."""
    if not n_all:
        return StopReason.NO_CANDIDATES
    if has_embedding is not None and not has_embedding.any() and passes.any():
        return StopReason.NO_EMBEDDINGS
    return StopReason.THRESHOLDS_LEFT_NONE


def needs_embeddings(config: SelectionConfig) -> bool:
    """Whether a config reads the candidates' ``embedding`` column (DIVERSITY, SIMILARITY or TYPICALITY on the
    images' own embeddings)."""
    return any(e.strategy.type in _EMBEDDING_STRATEGIES and _own_embeddings(e) for e in config.strategies)


def _own_embeddings(entry: Any) -> bool:
    """Whether a config entry reads the images' own embeddings (not an object task's)."""
    return isinstance(entry.input, EmbeddingsInput) and entry.input.task is None


def _applying(cfg: SelectionConfig, n_pre: int) -> list[tuple[str, Any]]:
    """The config's entries (path, entry) that apply with ``n_pre`` preselected samples (their ``when``)."""
    return [(f"strategies[{i}]", e) for i, e in enumerate(cfg.strategies) if e.when is None or e.when.applies(n_pre)]


def _greedy(entries: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The entries the greedy scores (every strategy but THRESHOLD, a filter)."""
    return [(path, e) for path, e in entries if not isinstance(e.strategy, ThresholdStrategy)]


def expects_compiled_state(config: SelectionConfig, n_rows: int, dim: int, n_pre: int) -> bool:
    """Whether :func:`select` over ``n_rows`` candidates of ``dim`` dimensions after ``n_pre`` preselected
    samples will build the compiled k-center state (:func:`~lightly_airflow.selection.kernels.uses_numpy_state`
    false for its DIVERSITY on the images' embeddings). A guess from the counts alone: THRESHOLDs and
    candidates without an embedding may leave fewer rows, and the numpy state take them."""
    entries = _applying(config, n_pre)
    if not any(e.strategy.type == "DIVERSITY" and _own_embeddings(e) for _, e in entries):
        return False
    alone = len(_greedy(entries)) == 1  # (as select's ctx.diversity_alone)
    return not uses_numpy_state(n_rows, dim, n_pre, picks=config.target_count(n_rows), alone=alone)


def _build(path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
    if isinstance(inp, EmbeddingsInput) and inp.task is not None:
        from lightly_airflow.objects.objectives import build_object_objective

        return build_object_objective(path, inp, strategy, ctx)
    return build_objective(path, inp, strategy, ctx)


def pick_details_table(keys: list[str] | None, scores: list[float], objectives: list[Objective],
                       values: list[list[float]]) -> pa.Table:
    """One row per pick: key, pick_rank, ``selection.score`` and each objective's value at its pick (keys None:
    a null ``key`` column, for a caller that reads the keys itself)."""
    n = len(scores)
    cols: dict[str, pa.Array] = {
        C.KEY: string_array(keys) if keys is not None else pa.nulls(n, pa.string()),
        C.PICK_RANK: from_numpy(np.arange(n, dtype=np.int64)),
        C.selection_column("score"): from_numpy(np.asarray(scores, dtype=np.float64)),
    }
    for o, vals in zip(objectives, values, strict=True):
        name = C.selection_column(o.detail)
        if name in cols:
            name = f"{name}.{o.path[len('strategies['):-1]}"
        v = np.asarray(vals, dtype=np.float64)
        cols[name] = from_numpy(v, mask=~np.isfinite(v))  # no value (no selection yet): null
    return pa.table(cols)


def greedy(objectives: list[Objective], n_target: int, *, dense: bool = False,
           on_pick: Callable[[list[int]], None] | None = None
           ) -> tuple[np.ndarray, StopReason, list[list[float]], list[float]]:
    """The greedy loop over the kept candidates.

    :param on_pick: called with the picks so far after each pick (:class:`~lightly_airflow.selection.metrics.
        NearestWithin`'s ``feed``).
    :returns: (picks into the kept candidates, stop reason, per objective its value at each pick, the
        combined score of each pick).

    Three exact paths, all maximising the same score with the lowest index on ties:

    * DIVERSITY alone: the farthest point of the pruned k-center state (max over group radii);
    * static objectives (WEIGHTS/SIMILARITY/TYPICALITY), one one-hot BALANCE and DIVERSITY with strength
      >= 0: a lazy max-heap per BALANCE class (keys only decrease, so stale keys are upper bounds);
    * everything else (soft or several BALANCEs, ``target_range``, negative DIVERSITY strength) or
      ``dense=True``: the score of every candidate is recomputed per pick.
    """
    div = next((o for o in objectives if isinstance(o, DiversityObjective)), None)
    bals = [o for o in objectives if isinstance(o, BalanceObjective)]
    others = [o for o in objectives if o.dynamic and o is not div and not isinstance(o, BalanceObjective)]
    n = div.state.n if div is not None else None
    fixed = None
    for o in objectives:
        if not o.dynamic:
            s = o.score()
            fixed = s.copy() if fixed is None else fixed + s
            n = len(s)
    if n is None:  # only dynamic objectives: BALANCE, object DIVERSITY
        n = len(bals[0].member) if bals else len(others[0].score())
    if fixed is None:
        fixed = np.zeros(n)
    strength = div.strength if div is not None else 0.0
    pure = div is not None and len(objectives) == 1 and strength > 0
    lazy = not dense and not others and len(bals) <= 1 and all(b.onehot for b in bals) and strength >= 0
    heap: LazyMaxHeap | NumpyLazyHeap | None = None
    order = None
    bal = bals[0] if bals else None
    if not pure and lazy:
        if div is None and bal is None:
            order = np.argsort(-fixed, kind="stable")
        else:
            st = div.state if div is not None else None
            labels = bal.labels() if bal is not None else None
            n_labels = len(bal.names) + 1 if bal is not None else 1
            if isinstance(st, FarthestPointState):  # (the compiled heap reads the compiled state's arrays)
                heap = LazyMaxHeap(fixed, st, strength, labels=labels, n_labels=n_labels)
            else:
                heap = NumpyLazyHeap(fixed, st, strength, labels=labels, n_labels=n_labels,
                                     bonus_after=bal.bucket_bonus if bal is not None else None)
    checks = ([div] if div is not None else []) + [o for o in objectives if o is not div]
    picks: list[int] = []
    values: list[list[float]] = [[] for _ in objectives]
    scores: list[float] = []
    reason = StopReason.N_REACHED
    taken = np.zeros(n, dtype=bool)
    last = time.monotonic()
    while len(picks) < n_target:
        if pure and div is not None:
            i, _ = div.state.farthest()
        elif heap is not None:
            i, _ = heap.best(bal.bucket_bonus() if bal is not None else None)
        elif order is not None:
            i = int(order[len(picks)]) if len(picks) < n else -1
        else:
            score = fixed.copy()
            for o in objectives:
                if o.dynamic:
                    score += o.score()
            score[taken] = -np.inf
            i = int(np.argmax(score)) if not taken.all() else -1
        if i < 0:
            reason = StopReason.NO_CANDIDATES_LEFT
            break
        stop = next((r for r in (o.stop_reason(i) for o in checks) if r is not None), None)
        if stop is not None:
            reason = StopReason(stop)  # (an objective's stopping condition: minimum_distance, max_sum, …)
            break
        for vals, o in zip(values, objectives, strict=True):
            vals.append(o.value(i))
        scores.append(float(sum(o.score_at(i) for o in objectives)))
        picks.append(i)
        taken[i] = True
        if heap is not None:
            heap.take(i)
        for o in objectives:
            o.on_pick(i)
        if on_pick is not None:
            on_pick(picks)
        if time.monotonic() - last > 10:
            last = time.monotonic()
            logger.info("selection: %d/%d picked", len(picks), n_target)
    if heap is not None:
        logger.debug("selection heap: %s", heap.summary())
    for o in objectives:
        o.finish()
    return np.asarray(picks, dtype=np.int64), reason, values, scores

