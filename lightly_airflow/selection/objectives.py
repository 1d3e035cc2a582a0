"""One class per greedy objective behind one small interface (like cleanlab Datalab's ``issue_manager/``).

Each strategy kind of a Lightly selection config (except THRESHOLD, a filter) becomes an :class:`Objective`
over the candidates left after the filters: it scores every candidate (``strength · log(objective)``),
updates itself after a pick, may veto the next pick with a stopping condition, says what its value was for a
picked sample (the "why it was picked" table) and reports what it achieved. The engine
(:mod:`lightly_airflow.selection.engine`) only combines them; a new kind is one new class registered in
:data:`REGISTRY`.
"""

from __future__ import annotations

import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.config.selection import (
    BalanceStrategy,
    DiversityStrategy,
    SimilarityStrategy,
    TypicalityStrategy,
    WeightsStrategy,
)
from lightly_airflow.selection.arrays import EmbeddingRows, embedding_rows, from_numpy, squared_norms
from lightly_airflow.selection.inputs import (
    class_input,
    input_column,
    is_boolean_input,
    scalar_input,
    target_classes,
)
from lightly_airflow.selection.kernels import (
    AnyFarthestState,
    farthest_point_state,
    on_threads,
    selection_threads,
)
from lightly_airflow.selection.kmeans import RowPool, kmeans

logger = logging.getLogger(__name__)

EPS = 1e-6
"""Floor of every objective before the log: a zero never hides the other objectives."""
OTHER = "__other__"
"""BALANCE bucket of the classes a ``target`` does not name."""
PRESELECTED = "preselected:"
"""Prefix of ``missing_inputs`` keys counting preselected samples."""


def log_objective(obj: np.ndarray | float) -> np.ndarray:
    """``log(max(obj, EPS))``."""
    return np.log(np.maximum(obj, EPS))


def scale_weights(v: np.ndarray) -> np.ndarray:
    """WEIGHTS values to [0, 1]: ``v / max`` for non-negative values, min-max otherwise (NaN stays NaN)."""
    ok = np.isfinite(v)
    if not ok.any():
        return np.ones_like(v)
    lo, hi = float(v[ok].min()), float(v[ok].max())
    if lo >= 0:
        return v / hi if hi > 0 else np.where(ok, 1.0, np.nan)
    return (v - lo) / (hi - lo) if hi > lo else np.where(ok, 1.0, np.nan)


def _worst(strength: float) -> float:
    """The least preferred ``strength · log(objective)``: the floor for a positive strength, 0 otherwise."""
    return min(strength * math.log(EPS), 0.0)


def _r(v: float) -> float | None:
    return round(float(v), 6) if math.isfinite(v) else None


# ------------------------------------------------------------------------------------------------- context
@dataclass
class Context:
    """What objectives are built from: the candidates, the rows the filters kept, the preselected samples.

    :param table: every candidate (the caller's rows).
    :param keep: row indices of the candidates left after THRESHOLD filters and the missing-embedding rule;
        objectives index candidates by their position in ``keep``.
    :param n_target: how many picks are wanted.
    :param x_all: (N, D) normalised embeddings of every candidate (zero rows where missing), when needed.
    :param has_embedding: (N,) which candidates have an embedding.
    :param missing: ``missing_inputs`` counts, filled while building.
    :param objects: object rows of the candidates (object-level inputs, :mod:`lightly_airflow.objects`).
    :param preselected_objects: object rows of the preselected images.
    :param preselected_rows: the preselected samples' ``embedding`` column already read as
        :func:`~lightly_airflow.selection.arrays.embedding_rows` gives it (e.g. streamed from Parquet); then
        ``preselected`` needs no such column.
    :param diversity_alone: DIVERSITY is the only objective (else a heap reads its state: the state's routing).
    """

    table: pa.Table
    keep: np.ndarray
    n_target: int
    preselected: pa.Table | None = None
    query_embeddings: Mapping[tuple[str, str], np.ndarray] | None = None
    seed: int | None = None
    x_all: np.ndarray | None = None
    has_embedding: np.ndarray | None = None
    x_sqnorms: np.ndarray | None = None  # canonical squared norms of x_all's rows, when the read computed them
    missing: dict[str, int] = field(default_factory=dict)
    objects: pa.Table | None = None
    preselected_objects: pa.Table | None = None
    preselected_rows: tuple[np.ndarray, np.ndarray] | EmbeddingRows | None = None
    diversity_alone: bool = True
    _x: np.ndarray | None = None
    _sub: pa.Table | None = None

    @property
    def n(self) -> int:
        return len(self.keep)

    def x(self) -> np.ndarray:
        """(n, D) float32 embeddings of the kept candidates (owned; DIVERSITY regroups its rows in place)."""
        if self._x is None:
            if self.x_all is None:
                raise ValueError("no embeddings were read for this config")  # a bug: select() reads them
            self._x = self.x_all if self.n == len(self.x_all) else np.ascontiguousarray(self.x_all[self.keep])
        return self._x

    def sqnorms(self) -> np.ndarray | None:
        """Canonical squared norms of :meth:`x`'s rows when the read computed them (else None)."""
        if self.x_sqnorms is None or self.x_all is None:
            return None
        return self.x_sqnorms if self.n == len(self.x_all) else self.x_sqnorms[self.keep]

    def sub(self) -> pa.Table:
        """The kept candidates' rows."""
        if self._sub is None:
            self._sub = self.table if self.n == self.table.num_rows else self.table.take(from_numpy(np.asarray(self.keep, dtype=np.int64)))
        return self._sub

    def preselected_embeddings(self, dim: int, rule: str) -> np.ndarray | None:
        """The preselected samples' embeddings (``None`` without preselected samples); those without one are
        counted as missing with ``rule``; a dimension other than the candidates' ``dim`` is an error."""
        if self.preselected is None or not self.preselected.num_rows:
            return None
        rows = self.preselected_rows or embedding_rows(self.preselected, path="preselected", what="preselected samples")
        px, present = rows[0], rows[1]  # (a streamed read's EmbeddingRows carries its norms too)
        self.count_missing(PRESELECTED + C.EMBEDDING, int((~present).sum()), rule)
        pre = px[present] if not present.all() else px
        if len(pre) and dim and pre.shape[1] != dim:
            raise ValueError(f"preselected embeddings have dimension {pre.shape[1]}, candidates {dim}")
        return pre

    def count_missing(self, name: str, n: int, rule: str) -> None:
        """Count (and log once per input) samples lacking an input; ``rule`` says what happens to them."""
        if n <= 0:
            return
        if name not in self.missing:
            logger.warning("selection: %s lack %r: %s. %s (docs/selection.md, Missing inputs).",
                           _lacking(name, n, self.table), name, rule, missing_input_fix(name))
        self.missing[name] = self.missing.get(name, 0) + int(n)


def _lacking(name: str, n: int, table: pa.Table) -> str:
    """Who lacks the input, in its unit: ``"3 samples"``, or for sequence selection (the candidates are sequences of
    frames: :data:`~lightly_airflow.selection.sequences.SEQUENCE_LENGTH_METADATA_KEY`) ``"3 sequences of 3 frames
    (11 frames of the candidates lack it; a sequence lacks it when all its frames do)"``."""
    import json

    from lightly_airflow.selection.sequences import SEQUENCE_LENGTH_METADATA_KEY, SEQUENCE_MISSING_FRAMES_METADATA_KEY

    meta = table.schema.metadata or {}
    length = meta.get(SEQUENCE_LENGTH_METADATA_KEY.encode())
    if name.startswith(PRESELECTED) or not length:
        return f"{n} samples" if not name.startswith(PRESELECTED) else f"{n} preselected samples"
    try:
        frames = json.loads(meta.get(SEQUENCE_MISSING_FRAMES_METADATA_KEY.encode()) or b"{}").get(name)
    except ValueError:
        frames = None
    words = f"{n} sequences of {int(length)} frames"
    if isinstance(frames, int):
        words += f" ({frames} frames of the candidates lack it; a sequence lacks it when all its frames do)"
    return words


def missing_input_fix(name: str) -> str:
    """Where the values of the input column ``name`` come from, and how to give the samples one."""
    column = name[len(PRESELECTED):] if name.startswith(PRESELECTED) else name
    if name.startswith(PRESELECTED):
        return (f"Fix: earlier runs selected these samples without {column!r} (their files are not read again): "
                "process them again (process_all) to give them the input, or leave them out of the context "
                "(preselected_tag_name)")
    if column == C.EMBEDDING:
        return ("Fix: the embed step gave them no embedding (the run's problems name the files it could not read "
                "or decode), or a custom embeddings CSV does not list them")
    for prefix in (C.PREDICTIONS_PREFIX, C.SCORES_PREFIX):
        if column.startswith(prefix):
            task = column[len(prefix):].split(".", 1)[0]
            return (f"Fix: the values come from .lightly/predictions/{task}/<sample name>.json (a video frame's: "
                    f"<video>-<frame index>-<video extension>.json, e.g. .lightly/predictions/{task}/clip-007-mp4.json "
                    "for frame 7 of clip.mp4); add the missing files (the run's problems name each sample's file, "
                    "and files found under another name)")
    if column.startswith(C.METADATA_PREFIX + "lightly."):
        return ("Fix: the metadata task computes it from the file's pixels; the run's problems name the files it "
                "could not decode")
    if column.startswith(C.METADATA_PREFIX):
        path = column[len(C.METADATA_PREFIX):]
        return (f"Fix: the values come from field {path!r} of .lightly/metadata/<sample name>.json (a video frame "
                "may use its video's <video>.json), declared in .lightly/metadata/schema.json: add the field to "
                "those files, or give it a defaultValue in schema.json")
    return "Fix: check that the run's rows carry the column (docs/selection.md, Inputs)"


# ----------------------------------------------------------------------------------------------- interface
class Objective(ABC):
    """One greedy objective over the kept candidates (indices ``0 … n-1`` into ``Context.keep``).

    :cvar kind: the strategy type it implements (``DIVERSITY`` …).
    :cvar detail: name of its per-pick value (``distance`` …): the ``selection.<detail>`` column.
    :ivar dynamic: whether :meth:`score` changes after picks (static scores are summed once).
    """

    kind: ClassVar[str]
    detail: ClassVar[str]

    def __init__(self, path: str, strength: float, column: str) -> None:
        self.dynamic = False
        self.path = path
        self.strength = float(strength)
        self.column = column

    @classmethod
    @abstractmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        """The objective of config entry ``path`` (``strategies[i]``) over the kept candidates."""

    @abstractmethod
    def score(self) -> np.ndarray:
        """``strength · log(objective)`` of every kept candidate given the picks so far."""

    @abstractmethod
    def score_at(self, i: int) -> float:
        """:meth:`score` of one candidate."""

    @abstractmethod
    def value(self, i: int) -> float:
        """The value behind the objective for candidate ``i`` now (before it is picked): distance, weight …"""

    def on_pick(self, i: int) -> None:  # noqa: B027 - optional hook
        """Update after candidate ``i`` was picked."""

    def stop_reason(self, i: int) -> str | None:
        """The stopping condition that picking ``i`` next would break, or None."""
        return None

    def finish(self) -> None:  # noqa: B027 - optional hook
        """Called once after the last pick."""

    @abstractmethod
    def report(self, picks: np.ndarray) -> dict[str, Any]:
        """What this objective achieved (JSON-serialisable): the report draws it as is."""

    def _base_report(self) -> dict[str, Any]:
        return {"kind": self.kind, "input": self.column, "strength": self.strength}


REGISTRY: dict[str, type[Objective]] = {}
"""Objective class per strategy ``type``."""


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make ``cls`` the objective of strategies of type ``cls.kind``."""
    REGISTRY[cls.kind] = cls
    return cls


def build_objective(path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
    """The registered objective for one config entry."""
    cls = REGISTRY.get(strategy.type)
    if cls is None:
        raise ValueError(f"{path}.strategy.type: {strategy.type!r} has no objective (known: {sorted(REGISTRY)})")
    return cls.build(path, inp, strategy, ctx)


# ---------------------------------------------------------------------------------------------- static ones
class StaticObjective(Objective):
    """An objective fixed per candidate: precomputed values and scores (missing: the least preferred score)."""

    def __init__(self, path: str, strength: float, column: str, values: np.ndarray, obj: np.ndarray) -> None:
        super().__init__(path, strength, column)
        self.values = values
        self.missing = ~np.isfinite(values)
        self.scores = np.where(self.missing, _worst(self.strength),
                               self.strength * log_objective(np.nan_to_num(obj, nan=0.0)))

    def score(self) -> np.ndarray:
        return self.scores

    def score_at(self, i: int) -> float:
        return float(self.scores[i])

    def value(self, i: int) -> float:
        return float(self.values[i])

    def _means(self, picks: np.ndarray, name: str) -> dict[str, Any]:
        ok = ~self.missing
        sel = picks[ok[picks]] if len(picks) else picks
        return {f"mean_{name}_selected": _r(float(self.values[sel].mean())) if len(sel) else None,
                f"mean_{name}_all": _r(float(self.values[ok].mean())) if ok.any() else None,
                "n_missing": int(self.missing.sum())}


def within_sum(limit: float) -> float:
    """The largest running sum a WEIGHTS ``max_sum`` (a stopping condition or a ``target_range``) lets through: the
    limit and its rounding (1e-9 of it, at least 1e-9): weights 0.2 + 0.1 sum to 0.30000000000000004, which a bare
    comparison put above a ``max_sum`` of 0.3 ("not above", docs/selection.md)."""
    return limit + 1e-9 * max(1.0, abs(limit))


@register
class WeightsObjective(StaticObjective):
    """WEIGHTS: the value scaled to [0, 1]; ``stopping_condition_max_sum``; ``target_range`` (then dynamic)."""

    kind = "WEIGHTS"
    detail = "weight"

    def __init__(self, path: str, strat: WeightsStrategy, column: str, values: np.ndarray) -> None:
        super().__init__(path, strat.strength, column, values, scale_weights(values))
        self.strat = strat
        self.filled = np.where(np.isfinite(values), values, 0.0)  # a missing value (NaN, ±inf) adds nothing to sums
        self.total = 0.0
        self.dynamic = strat.target_range is not None

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        v = scalar_input(ctx.table, inp, path + ".input", ctx.seed)[ctx.keep]
        column = input_column(inp)
        ctx.count_missing(column, int((~np.isfinite(v)).sum()),
                          "WEIGHTS: least preferred, adds nothing to sums")
        return cls(path, strategy, column, v)

    def score(self) -> np.ndarray:
        tr = self.strat.target_range
        if tr is None:
            return self.scores
        lo = tr.min_sum if tr.min_sum is not None else -math.inf
        hi = within_sum(tr.max_sum) if tr.max_sum is not None else math.inf
        if self.total < lo:
            return self.scores
        obj = np.where(self.total + self.filled <= hi, 1.0, 0.0)
        return np.where(self.missing, _worst(self.strength), self.strength * log_objective(obj))

    def score_at(self, i: int) -> float:
        return float(self.score()[i]) if self.dynamic else float(self.scores[i])

    def on_pick(self, i: int) -> None:
        self.total += float(self.filled[i])

    def stop_reason(self, i: int) -> str | None:
        m = self.strat.stopping_condition_max_sum
        if m is not None and self.total + float(self.filled[i]) > within_sum(m):
            return "max_sum"
        return None

    def report(self, picks: np.ndarray) -> dict[str, Any]:
        out = self._base_report()
        out.update(self._means(picks, "weight"))
        out["sum_selected"] = _r(float(self.filled[picks].sum())) if len(picks) else 0.0
        if self.strat.stopping_condition_max_sum is not None:
            out["max_sum"] = self.strat.stopping_condition_max_sum
        if self.strat.target_range is not None:
            out["target_range"] = self.strat.target_range.model_dump(exclude_none=True)
        return out


@register
class SimilarityObjective(StaticObjective):
    """SIMILARITY: ``1 - d_query / 2``, ``d_query`` the distance to the nearest query embedding."""

    kind = "SIMILARITY"
    detail = "similarity"

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        assert isinstance(strategy, SimilarityStrategy)
        qkey = (inp.dataset_id, inp.tag_name)
        if ctx.query_embeddings is None or qkey not in ctx.query_embeddings:
            raise ValueError(f"{path}.input: no query embeddings for dataset_id={inp.dataset_id!r} "
                             f"tag_name={inp.tag_name!r}; the caller must load that datapool tag or "
                             "Parquet file (known: " + str(sorted(ctx.query_embeddings or {})) + ")")
        q = np.asarray(ctx.query_embeddings[qkey], dtype=np.float64)
        x = ctx.x()
        problem = ("holds no samples" if len(q) == 0 else
                   f"has embeddings of dimension {q.shape[-1]}, the candidates {x.shape[1]}"
                   if q.ndim != 2 or q.shape[1] != x.shape[1] else None)
        if problem is None and not np.linalg.norm(q, axis=1).all():
            problem = f"has {int((np.linalg.norm(q, axis=1) == 0).sum())} all-zero embeddings (no direction)"
        if problem:
            raise ValueError(
                f"{path}.input: the query set dataset_id={inp.dataset_id!r} tag_name={inp.tag_name!r} {problem}; "
                "query with samples embedded by the same model as the candidates (the datapool's), each a "
                "non-zero vector")
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        sim = 1.0 - min_distance_to(x, q) / 2.0
        obj = cls(path, strategy.strength, C.EMBEDDING, sim, sim)
        obj.n_query = len(q)
        return obj

    n_query = 0

    def report(self, picks: np.ndarray) -> dict[str, Any]:
        out = self._base_report()
        out.update(self._means(picks, "similarity"))
        out["query_size"] = self.n_query
        return out


@register
class TypicalityObjective(StaticObjective):
    """TYPICALITY: ``1 / (1 + mean distance to the K nearest other candidates)``; a minimum stops."""

    kind = "TYPICALITY"
    detail = "typicality"
    minimum: float | None = None
    n_clusters: int | None = None
    cluster_cost: float | None = None  # (TypiClust: sum n_c² · D of the within-cluster typicality)

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        assert isinstance(strategy, TypicalityStrategy) and ctx.x_all is not None and ctx.has_embedding is not None
        # Density among every candidate with an embedding (THRESHOLD filters do not change the density).
        rows = np.flatnonzero(ctx.has_embedding)
        full = np.full(len(ctx.x_all), np.nan)
        every = len(rows) == len(ctx.x_all)
        if strategy.clusters:  # (reads the rows in place: no copy of those with an embedding)
            pre = ctx.preselected_embeddings(
                ctx.x_all.shape[1], "a preselected sample without embedding covers no TYPICALITY cluster")
            kept = np.zeros(len(ctx.x_all), dtype=bool)
            kept[ctx.keep] = True
            typ_rows, prio_rows, n_clusters, cost = typiclust(
                ctx.x_all, pre, ctx.n_target, strategy.num_nearest_neighbors, kept[rows], ctx.seed,
                None if every else rows)
            prio = np.full(len(ctx.x_all), np.nan)
            full[rows], prio[rows] = typ_rows, prio_rows
            obj = cls(path, strategy.strength, C.EMBEDDING, full[ctx.keep], prio[ctx.keep])
            obj.n_clusters, obj.cluster_cost = n_clusters, cost
            obj.minimum = strategy.stopping_condition_minimum_typicality
            return obj
        full[rows] = typicality(ctx.x_all if every else ctx.x_all[rows], strategy.num_nearest_neighbors)
        typ = full[ctx.keep]
        obj = cls(path, strategy.strength, C.EMBEDDING, typ, typ)
        obj.minimum = strategy.stopping_condition_minimum_typicality
        if 1 < len(rows) <= strategy.num_nearest_neighbors:  # (typicality takes every other candidate then)
            obj.neighbours = (strategy.num_nearest_neighbors, len(rows) - 1)
            logger.warning("%s.strategy.num_nearest_neighbors=%d: only %d other candidates have an embedding; each "
                           "typicality is the mean distance to those %d. Fix: a smaller num_nearest_neighbors.",
                           path, strategy.num_nearest_neighbors, len(rows) - 1, len(rows) - 1)
        return obj

    #: ``(num_nearest_neighbors, the neighbours used)`` where fewer candidates than asked had an embedding
    neighbours: tuple[int, int] | None = None

    def stop_reason(self, i: int) -> str | None:
        if self.minimum is not None and self.values[i] < self.minimum:
            return "minimum_typicality"
        return None

    def report(self, picks: np.ndarray) -> dict[str, Any]:
        out = self._base_report()
        out.update(self._means(picks, "typicality"))
        out["min_typicality_selected"] = _r(float(self.values[picks].min())) if len(picks) else None
        if self.minimum is not None:
            out["stopping_condition_minimum_typicality"] = self.minimum
        if self.neighbours is not None:
            out["num_nearest_neighbors"], out["num_nearest_neighbors_used"] = self.neighbours
        if self.n_clusters is not None:
            out["clusters"] = self.n_clusters
            out["cluster_typicality_multiply_adds"] = self.cluster_cost
        return out


# -------------------------------------------------------------------------------------------------- diversity
@register
class DiversityObjective(Objective):
    """DIVERSITY: ``min(d / 2, 1)`` with ``d`` the distance to the nearest selected sample (preselected too).

    Holds the exact pruned k-center state (:class:`~lightly_airflow.selection.kernels.FarthestPointState`).
    """

    kind = "DIVERSITY"
    detail = "distance"

    def __init__(self, path: str, strat: DiversityStrategy, state: AnyFarthestState, n_pre: int) -> None:
        super().__init__(path, strat.strength, C.EMBEDDING)
        self.dynamic = True
        self.strat = strat
        self.state = state
        self.n_pre = n_pre
        self.pick_distances: list[float] = []

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        assert isinstance(strategy, DiversityStrategy)
        x = ctx.x()
        pre = ctx.preselected_embeddings(x.shape[1], "a preselected sample without embedding does not count for DIVERSITY")
        n_pre = 0 if pre is None else len(pre)
        state = farthest_point_state(x, capacity=ctx.n_target + n_pre, pool=n_pre, alone=ctx.diversity_alone,
                                     sqnorms=ctx.sqnorms())
        if pre is not None:
            state.insert_many(pre)
        return cls(path, strategy, state, n_pre)

    def score(self) -> np.ndarray:
        return self.strength * 0.5 * log_objective(np.minimum(self.state.d2 / 4.0, 1.0))

    def score_at(self, i: int) -> float:
        return float(self.strength * 0.5 * log_objective(min(self.state.distance2(i) / 4.0, 1.0)))

    def value(self, i: int) -> float:
        d2 = self.state.distance2(i)
        return math.sqrt(max(d2, 0.0)) if math.isfinite(d2) else math.inf

    def stop_reason(self, i: int) -> str | None:
        m = self.strat.stopping_condition_minimum_distance
        if m is not None and self.value(i) < m:
            return "minimum_distance"
        return None

    def on_pick(self, i: int) -> None:
        self.pick_distances.append(self.value(i))
        self.state.select(i)

    def finish(self) -> None:
        self.state.restore()

    def report(self, picks: np.ndarray) -> dict[str, Any]:
        out = self._base_report()
        finite = [d for d in self.pick_distances if math.isfinite(d)]
        out.update({
            "min_distance_at_pick": _r(min(finite)) if finite else None,
            "coverage_radius": _r(math.sqrt(max(self.state.max_d2(), 0.0))) if self.state.n and (len(picks) or self.n_pre)
            else None,
            "preselected": self.n_pre,
        })
        if self.strat.stopping_condition_minimum_distance is not None:
            out["stopping_condition_minimum_distance"] = self.strat.stopping_condition_minimum_distance
        return out


# ---------------------------------------------------------------------------------------------------- balance
@register
class BalanceObjective(Objective):
    """BALANCE: the deficit of the sample's class(es) at the next pick relative to the largest; tracks class counts.

    ``target`` < 1 in total: the remainder is the target of all other classes together (bucket
    ``__other__``); UNIFORM; INPUT = the distribution among the candidates. Preselected samples that carry
    the input count as achieved.
    """

    kind = "BALANCE"
    detail = "balance_deficit"

    def __init__(self, path: str, strat: BalanceStrategy, column: str, names: list[str], member: np.ndarray,
                 onehot: bool, pre_counts: np.ndarray | None, n_pre: int, n_missing: int) -> None:
        super().__init__(path, strat.strength, column)
        self.dynamic = True
        self.strat = strat
        self.onehot = onehot
        self.n_missing = n_missing
        self.candidate_classes = list(names)
        if strat.distribution == "TARGET":
            target = dict(strat.target or {})
            unknown = [k for k in target if k not in names]
            if unknown:
                # A run whose new files lack a class (a batch without photos) cannot pick it: balance the rest.
                # Logged and reported (``targets_not_among_candidates``): the run's warnings name them
                # (pipeline.selection_warnings: the task log, the report's missed goals, the metrics).
                logger.warning("%s.strategy.target: classes %s do not occur among these samples (known: %s); "
                               "they cannot be selected in this run.", path, unknown, names[:50])
                target = {k: v for k, v in target.items() if k in names}
            self.unknown_targets = unknown
            rest = [n for n in names if n not in target]
            self.names = [n for n in names if n in target] + ([OTHER] if rest else [])
            idx = {n: i for i, n in enumerate(self.names)}
            cols = np.array([idx.get(n, idx.get(OTHER, -1)) for n in names], dtype=np.int64)
            self.t = np.array([target[n] for n in self.names if n != OTHER] +
                              ([max(0.0, 1.0 - sum(target.values()))] if rest else []))
        else:
            self.unknown_targets = []
            self.names = list(names)
            cols = np.arange(len(names))
            if strat.distribution == "UNIFORM":
                self.t = np.full(len(names), 1.0 / max(len(names), 1))
            else:
                tot = member.sum(axis=0)
                self.t = tot / tot.sum() if tot.sum() > 0 else np.full(len(names), 1.0 / max(len(names), 1))
        proj = np.zeros((len(names), len(self.names)))
        proj[np.arange(len(names)), cols] = 1.0
        self.member = member @ proj
        rs = self.member.sum(axis=1, keepdims=True)
        self.member_n = np.divide(self.member, rs, out=np.zeros_like(self.member), where=rs > 0)
        self.counts = np.zeros(len(self.names)) if pre_counts is None else pre_counts @ proj
        self.pre_counts = self.counts.copy()
        self.members = self.member.sum(axis=0)  # (each class's candidates: those left = these - this run's picks)
        self.n_pre = n_pre

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        assert isinstance(strategy, BalanceStrategy)
        member, names, onehot, miss = class_input(ctx.sub(), inp, path + ".input")
        if strategy.target is not None:  # (spelt as the column's class names: true/True on a boolean field)
            target = target_classes(strategy.target, is_boolean_input(ctx.table, inp), path + ".strategy.target")
            strategy = strategy.model_copy(update={"target": target})
        column = input_column(inp)
        ctx.count_missing(column, int(miss.sum()), "BALANCE: belongs to no class (least preferred)")
        pre, n_pre = None, 0
        p = ctx.preselected
        if p is not None and p.num_rows:
            if column not in p.column_names:
                # Earlier runs' samples without this input: they count for no class (visible, never silent).
                ctx.count_missing(PRESELECTED + column, p.num_rows,
                                  "BALANCE: the preselected samples count for no class")
            else:
                # Errors here (e.g. another set of categories) are real and surface with the input's path.
                pm, _, _, pmiss = class_input(p, inp, path + ".input", names, what="preselected samples")
                ctx.count_missing(PRESELECTED + column, int(pmiss.sum()),
                                  "BALANCE: the preselected sample counts for no class")
                unmatched = int(((pm.sum(axis=1) == 0) & ~pmiss).sum())
                if unmatched:
                    logger.warning("%s: %d preselected samples have classes that no candidate has; they do not "
                                   "count for this run's balance.", path, unmatched)
                pre, n_pre = pm.sum(axis=0), p.num_rows - int(pmiss.sum()) - unmatched
        return cls(path, strategy, column, names, member, onehot, pre, n_pre, int(miss.sum()))

    def _gap(self, counts: np.ndarray | None = None) -> np.ndarray:
        counts = self.counts if counts is None else counts
        total = counts.sum()
        achieved = counts / total if total > 0 else np.zeros_like(counts)
        gap: np.ndarray = np.maximum(self.t - achieved, 0.0)
        return gap

    def _next_gap(self, counts: np.ndarray | None = None) -> np.ndarray:
        """What the picks rank by: each class's deficit at the next pick's size, ``max(t (total + 1) - counts, 0)``
        in samples. The share deficit (:meth:`_gap`, which :meth:`value` and the report keep) is 0 for every class
        once the shares equal the target, and every class then scored alike: ``{"b": 1.0}`` picked b, a, b (the
        lowest row won, whatever its target). Some class's next-pick deficit is positive whenever the targets of
        the classes with candidates left sum to 1, and a class whose target is 0 never has one.

        The target of a class without candidates left (the remainder of ``{"a": 0.25, "b": 0.25}`` when no other
        class occurs, or once its candidates are taken) goes to the others in proportion to theirs: the named
        classes' deficits clipped to 0 and the lowest row won, 3 a : 1 b (Lightly: "not specified classes do not
        influence the selection"; a target the data cannot meet is not met)."""
        counts = self.counts if counts is None else counts
        t = np.where(self.members - (counts - self.pre_counts) > 1e-9, self.t, 0.0)
        total = t.sum()
        t = t / total if total > 0 else self.t
        gap: np.ndarray = np.maximum(t * (counts.sum() + 1.0) - counts, 0.0)
        return gap

    def labels(self) -> np.ndarray:
        """One-hot membership as labels; samples of no class get the extra label ``len(names)``."""
        lab = self.member.argmax(axis=1).astype(np.int64) if self.member.shape[1] else \
            np.zeros(len(self.member), dtype=np.int64)
        lab[self.member.sum(axis=1) == 0] = len(self.names)
        return lab

    def bucket_bonus(self, more: np.ndarray | None = None) -> np.ndarray:
        """``strength · log(objective)`` per label of :meth:`labels` (the no-class label last); with ``more``, once
        that many more picks of each class are counted (what a heap planning the next picks needs)."""
        gap = self._next_gap(None if more is None else self.counts + more)
        obj = gap / gap.max() if len(gap) and gap.max() > 0 else np.ones_like(gap)
        return np.append(self.strength * log_objective(obj), self.strength * math.log(EPS))

    def score(self) -> np.ndarray:
        gap = self._next_gap()
        obj = self.member_n @ (gap / gap.max()) if len(gap) and gap.max() > 0 else \
            np.where(self.member_n.sum(axis=1) > 0, 1.0, 0.0)
        return self.strength * log_objective(obj)

    def score_at(self, i: int) -> float:
        gap = self._next_gap()
        row = self.member_n[i]
        obj = float(row @ (gap / gap.max())) if len(gap) and gap.max() > 0 else float(row.sum() > 0)
        return float(self.strength * log_objective(obj))

    def value(self, i: int) -> float:
        return float(self.member_n[i] @ self._gap())

    def on_pick(self, i: int) -> None:
        self.counts += self.member[i]

    def report(self, picks: np.ndarray) -> dict[str, Any]:
        total = self.counts.sum()
        achieved = self.counts / total if total > 0 else self.counts
        avail = self.member.sum(axis=0)
        available = avail / avail.sum() if avail.sum() > 0 else avail
        out = self._base_report()
        out.update({
            "distribution": self.strat.distribution,
            "classes": list(self.names),
            "target": [_r(v) for v in self.t],
            "achieved": [_r(v) for v in achieved],
            "available": [_r(v) for v in available],
            "selected_counts": [_r(v) for v in self.counts - self.pre_counts],
            "preselected_counted": int(self.n_pre),
            "n_missing": int(self.n_missing),
        })
        if self.unknown_targets:
            out["targets_not_among_candidates"] = self.unknown_targets
            out["classes_among_candidates"] = self.candidate_classes[:50]
        return out


# ---------------------------------------------------------------------------------------------------- helpers
def min_distance_to(x: np.ndarray, q: np.ndarray, block: int = 1024) -> np.ndarray:
    """Distance of every row of ``x`` to its nearest row of ``q``: ``sqrt(|x|² + |q|² - 2 x·q)`` in float64, ``block``
    rows at a time (a float64 copy of a block: 10 MB at 1,024 x 1,280).

    A float32 product rounds by up to ``(D + 2) 2^-24 |x||q|``, which near a distance of 0 is ~1e-3 of the distance:
    the query's own copy ranked below a sample 3e-4 from it in 74 of 200 random 64-d cases. Up to
    :data:`SIMILARITY_DENSE_QUERIES` queries every product is float64; with more, the float32 product screens: a
    row's nearest column and those within twice the bound of it get the float64 product (one column for most rows),
    so the nearest query is the exact one at nearly the float32 product's cost (1,000 queries: float64 products
    throughout took 2.4x as long)."""
    out = np.empty(len(x))
    q64 = np.asarray(q, dtype=np.float64)
    qn = squared_norms(q64)
    screen = len(q64) > SIMILARITY_DENSE_QUERIES and x.dtype != np.float64
    q32 = q64.astype(x.dtype) if screen else q64
    for s in range(0, len(x), block):
        xb = np.asarray(x[s : s + block], dtype=np.float64)
        xn = squared_norms(xb)
        if not screen:
            d2 = xn[:, None] + qn[None, :] - 2.0 * (xb @ q64.T)
            out[s : s + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
            continue
        d2 = xn[:, None] + qn[None, :] - 2.0 * (x[s : s + block] @ q32.T)
        near = d2.argmin(axis=1)
        best = xn + qn[near] - 2.0 * np.einsum("ij,ij->i", xb, q64[near])
        bound = 2.0 * (x.shape[1] + 2) * 2.0**-24 * math.sqrt(float(xn.max(initial=0.0)) * float(qn.max()))
        rows, cols = np.nonzero(d2 <= (d2[np.arange(len(xb)), near] + 2.0 * bound)[:, None])
        other = cols != near[rows]
        rows, cols = rows[other], cols[other]
        if len(rows):
            np.minimum.at(best, rows, xn[rows] + qn[cols] - 2.0 * np.einsum("ij,ij->i", xb[rows], q64[cols]))
        out[s : s + block] = np.sqrt(np.maximum(best, 0.0))
    return out


#: Up to this many query embeddings, SIMILARITY's products are all float64 (:func:`min_distance_to`).
SIMILARITY_DENSE_QUERIES = 16


TYPICALITY_BLOCK = 1024
"""Rows and columns of a product block of :func:`typicality` (two float32 buffers of 4 MiB)."""
TYPICALITY_SLACK = 64 * 2.0**-24
"""Times the largest squared norm: the margin of :func:`typicality`'s float32 screen over the exact float64 squared
distances (``_take_nearest``: 2 x 9 x 2^-24 needed, and the threshold's rounding)."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def typicality(x: np.ndarray, k: int, block: int = TYPICALITY_BLOCK) -> np.ndarray:
    """``1 / (1 + mean distance to the k nearest other candidates)`` (O(N²D) time; memory: the rows' norms, the k
    nearest squared distances of every row and two ``block`` x ``block`` buffers a thread).

    A squared distance is ``(|a|² + |b|²) - 2 a·b`` with the product in the embeddings' dtype and the rest in
    float64. The products are taken once per pair of rows (a block of rows against the blocks from itself on:
    the distances are symmetric, half the products of rows against all rows); a block's float32 screen
    (the same formula in float32) finds, for each row, the columns that may be among its k nearest so far (below
    its current k-th nearest, or the block's k-th smallest screen value for a row that has fewer, plus
    :data:`TYPICALITY_SLACK`), and only those get the float64 value (``_take_nearest``); each row keeps the k
    smallest. The pairs of blocks run on the selection threads, each pair whole (its product on one BLAS thread,
    its screen, the merges into its two blocks' rows, one block at a time under that block's lock), in an order
    where the pairs running together share no block (:func:`block_pairs`). A row's k nearest are the same
    whatever the order its columns come in (the screen keeps every column that may be among them at the time),
    so the values are the same bits on any number of threads."""
    n = len(x)
    if n <= 1:
        return np.ones(n)
    k = min(k, n - 1)
    sq = squared_norms(x)
    sq32 = sq.astype(np.float32)
    slack = TYPICALITY_SLACK * max(float(sq.max()), 1e-30)
    nearest = np.full((n, k), np.inf)  # per row its k smallest squared distances so far (the k-th last)
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    pairs = block_pairs(n_blocks)
    threads = max(1, min(selection_threads(), len(pairs)))
    locks = [threading.Lock() for _ in range(n_blocks)]

    def pair(ij: tuple[int, int], buffers: tuple[np.ndarray, np.ndarray]) -> None:
        a, b = ij[0] * block, ij[1] * block
        xa, xb = x[a : a + block], x[b : b + block]
        ma, mb = len(xa), len(xb)
        p, scr = buffers[0][:ma, :mb], buffers[1][:ma, :mb]
        np.matmul(xa, xb.T, out=p)
        np.multiply(p, -2.0, out=scr)
        scr += sq32[None, b : b + mb]
        scr += sq32[a : a + ma, None]
        if a == b:
            scr[np.arange(ma), np.arange(ma)] = np.inf  # (not its own neighbour)
        with locks[ij[0]]:
            _take_nearest(nearest[a : a + ma], scr, p, sq[a : a + ma], sq[b : b + mb], slack, False)
        if a != b:  # (the block's columns are other rows: theirs too)
            with locks[ij[1]]:
                _take_nearest(nearest[b : b + mb], scr, p, sq[b : b + mb], sq[a : a + ma], slack, True)

    # (a product and its screen per thread; on one thread BLAS keeps its own threads for the products)
    on_threads(pair, pairs, [(np.empty((block, block), dtype=x.dtype), np.empty((block, block), dtype=np.float32))
                             for _ in range(threads)])
    nearest.sort(axis=1)
    out: np.ndarray = 1.0 / (1.0 + np.sqrt(np.maximum(nearest, 0.0)).mean(axis=1))
    return out


def block_pairs(n: int) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i <= j < n``, once: first each block with itself, then the rounds of a round-robin
    tournament (the circle method), so that each run of ``n // 2`` consecutive pairs shares no block."""
    out = [(i, i) for i in range(n)]
    seats = list(range(n)) + ([-1] if n % 2 else [])  # (-1: a bye)
    m = len(seats)
    for _ in range(m - 1):
        out += [(min(a, b), max(a, b)) for a, b in ((seats[i], seats[m - 1 - i]) for i in range(m // 2))
                if a >= 0 and b >= 0]
        seats = [seats[0], seats[-1], *seats[1:-1]]
    return out


def _take_nearest(nearest: np.ndarray, screen: np.ndarray, p: np.ndarray, sq_rows: np.ndarray, sq_cols: np.ndarray,
                  slack: float, by_column: bool) -> None:
    """Merge a block's columns into each row's k nearest squared distances (``nearest``, in place: the k-th last);
    ``by_column``: the block's columns are the rows (``screen`` and ``p`` are read in their own layout, not
    through a transposed view: a strided scan was 5x slower).

    ``screen`` is the block's float32 squared distances (``inf`` where a row is its own column), ``p`` the
    products. A screen value lies within ``e`` = 9 · 2^-24 · (largest squared norm) of the exact float64 one: the
    two norms' roundings to float32 (2^-24 of each), and the two float32 sums' (2^-24 of at most 3 and 4 times
    the largest squared norm: |a·b| is at most it); the doubled product is exact. A column can enter a row's k
    nearest only if its exact value is below the row's current k-th: its screen value is then below that plus
    ``e``. A row with fewer than k so far takes the block's k-th smallest screen value ``s`` instead: k columns
    have exact values at most ``s + e``, so one outside the k nearest has an exact value above that, a screen
    value above ``s``; a column within them at most ``s + 2e``. :data:`TYPICALITY_SLACK` (64 · 2^-24) covers 2e
    and the threshold's own rounding to float32 (at most 2^-24 of 4x + the slack). Those columns get their exact
    ``(|a|² + |b|²) - 2 a·b`` and each row keeps the k smallest of its old and new values."""
    m, k = nearest.shape
    limit = nearest[:, -1].copy()
    fewer = np.isinf(limit)
    if fewer.any() and screen.shape[0 if by_column else 1] > k:
        rows_first = np.ascontiguousarray(screen[:, fewer].T) if by_column else screen[fewer]
        limit[fewer] = np.partition(rows_first, k - 1, axis=1)[:, k - 1]
    bound = np.minimum(limit + slack, _FLOAT32_MAX).astype(np.float32)  # (finite: a row's own column never passes)
    hits = np.flatnonzero(screen <= (bound[None, :] if by_column else bound[:, None]))  # (np.nonzero: 10x slower)
    rows, cols = np.divmod(hits, screen.shape[1])
    if by_column:
        rows, cols = cols, rows
    if not len(rows):
        return
    exact = (sq_rows[rows] + sq_cols[cols]) - 2.0 * (p[cols, rows] if by_column else p[rows, cols])
    by_row = np.argsort(rows, kind="stable")  # (already sorted unless by_column)
    sorted_rows = rows[by_row]
    starts = np.flatnonzero(np.diff(sorted_rows, prepend=-1))
    touched = sorted_rows[starts]
    count = np.diff(starts, append=len(rows))
    at = np.arange(len(rows)) - np.repeat(starts, count)  # (a hit's place among its row's)
    merged = np.full((len(touched), k + int(count.max())), np.inf)  # (a row's k old values, then its hits)
    merged[:, :k] = nearest[touched]
    merged[np.repeat(np.arange(len(touched)), count), k + at] = exact[by_row]
    merged.partition(k - 1, axis=1)
    nearest[touched] = merged[:, :k]


TYPICLUST_LARGE = 1e12
"""Multiply-adds (sum of n_c² · D over the clusters) above which TypiClust's within-cluster typicality is logged as
large (~15 s of typicality on two busy cores: 50,000 x 1,280 in 10 clusters is 3.7e11, ~5 s; 200,000 x 1,280
5.9e12, ~35 s; docs/selection.md)."""


def typiclust(x: np.ndarray, pre: np.ndarray | None, n_target: int, k: int, kept: np.ndarray,
              seed: int | None, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int, float]:
    """TypiClust (Hacohen et al., "Active learning on a budget", ICML 2022) as a static objective.

    k-means (:func:`~lightly_airflow.selection.kmeans.kmeans`) over the candidates ``x[rows]`` (all of ``x`` without
    ``rows``) and the preselected ``pre`` together, into ``len(pre) + n_target`` clusters. Each candidate's typicality is :func:`typicality`
    within its cluster (``1 / (1 + mean distance to its k nearest cluster members)``, preselected members included;
    the cluster's rows gathered one cluster at a time). The clusters holding no preselected sample are ranked by
    size (largest first, then lower index); the most typical ``kept`` candidate of the cluster of rank ``r`` (of
    ``m`` such clusters) gets the priority ``1 - r / (2m)`` (in (0.5, 1]), every other candidate
    ``0.5 · typicality`` (< 0.5): a greedy pick of n takes the representatives of the n largest uncovered clusters,
    then the most typical of the rest. The within-cluster typicality costs sum n_c² · D multiply-adds (exact
    all-pairs, as in the paper); above :data:`TYPICLUST_LARGE` a warning says so before it starts, with the fix.

    :returns: in-cluster typicality and priority per candidate, the number of clusters and that cost.
    """
    pool = RowPool(x, rows, pre)
    n_x, n_pre = pool.n_x, len(pool) - pool.n_x
    labels = kmeans(x, n_pre + n_target, seed, rows=rows, pre=pre)
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=n_clusters)
    cost = float((sizes.astype(np.float64) ** 2).sum()) * x.shape[1]
    if cost >= TYPICLUST_LARGE:
        logger.warning(
            "TYPICALITY with clusters (TypiClust): exact typicality within %d clusters of %d samples x %d dimensions "
            "(the largest %d) costs sum n_c^2 x D = %.2g multiply-adds, quadratic in the samples; on a large bucket "
            "use `lightly-airflow recipe active-learning --cold-start 0` or preselect 20 labelled samples",
            n_clusters, len(labels), x.shape[1], int(sizes.max()), cost)
    typ_pool = np.empty(len(labels))
    order = np.argsort(labels, kind="stable")
    cuts = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    for c in range(n_clusters):
        members = order[cuts[c] : cuts[c + 1]]
        typ_pool[members] = typicality(pool.take(members), k)
    typ, cand_labels = typ_pool[:n_x], labels[:n_x]
    prio = 0.5 * typ
    covered = np.zeros(n_clusters, dtype=bool)
    covered[labels[n_x:]] = True
    ranked = [c for c in np.lexsort((np.arange(n_clusters), -sizes)) if not covered[c]]
    rank = 0
    for c in ranked:
        members = np.flatnonzero((cand_labels == c) & kept)
        if not len(members):
            continue
        best = members[int(np.argmax(typ[members]))]
        prio[best] = 1.0 - rank / (2.0 * len(ranked))
        rank += 1
    return typ, prio, n_clusters, cost
