"""Object-level objectives on the engine's :class:`~lightly_airflow.selection.objectives.Objective` interface.

An ``EMBEDDINGS`` input with ``task`` makes DIVERSITY, SIMILARITY and TYPICALITY work on the crops of that
task's objects while the engine still picks images (semantics in :mod:`lightly_airflow.objects.selection`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from lightly_airflow import columns as C
from lightly_airflow.objects.selection import (
    EPS,
    ObjectDiversity,
    ObjectSet,
    object_set,
    object_similarity,
    object_typicality,
    preselected_note,
)
from lightly_airflow.selection.objectives import Context, Objective, StaticObjective, TypicalityObjective

logger = logging.getLogger(__name__)


def _objects_of(path: str, inp: Any, ctx: Context) -> ObjectSet:
    keys = [str(k) for k in ctx.table.column(C.KEY).to_pylist()]
    pre = ctx.preselected
    pre_keys = [str(k) for k in pre.column(C.KEY).to_pylist()] if pre is not None and C.KEY in pre.column_names else None
    objs = object_set(keys, ctx.objects, inp.task, ctx.preselected_objects, path=path + ".input",
                      preselected_keys=pre_keys)
    return objs.take(ctx.keep)


def _column(task: str) -> str:
    return f"objects.{task}.{C.EMBEDDING}"


class ObjectDiversityObjective(Objective):
    """Object DIVERSITY: an image's objective is ``min(rms(d) / 2, 1)`` of its objects' distances (dynamic)."""

    kind = "DIVERSITY"
    detail = "object_distance"

    def __init__(self, path: str, strength: float, objects: ObjectSet, minimum_distance: float | None) -> None:
        super().__init__(path, strength, _column(objects.task))
        self.dynamic = True
        self.state = ObjectDiversity(objects, strength, minimum_distance)
        self.pick_distances: list[float] = []

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        objs = _objects_of(path, inp, ctx)
        note = preselected_note(objs.task, objs.pre_without, len(objs.pre))
        if note:
            logger.warning("%s: %s", path, note)
        return cls(path, strategy.strength, objs, strategy.stopping_condition_minimum_distance)

    def score(self) -> np.ndarray:
        return self.state.log_bonus()

    def score_at(self, i: int) -> float:
        return float(self.strength * np.log(max(min(self.value(i) / 2.0, 1.0), EPS)))

    def value(self, i: int) -> float:
        a, b = self.state.starts[i], self.state.starts[i + 1]
        return float(self.state.d[a:b].mean()) if b > a else 0.0

    def stop_reason(self, i: int) -> str | None:
        return "minimum_distance" if self.state.stops_before(i) else None

    def on_pick(self, i: int) -> None:
        self.pick_distances.append(self.value(i))
        self.state.pick(i)

    def report(self, picks: np.ndarray) -> dict[str, Any]:
        out = self._base_report()
        out.update(self.state.report())
        out["mean_object_distance_at_pick"] = (round(float(np.mean(self.pick_distances)), 6)
                                               if self.pick_distances else None)
        return out


class ObjectSimilarityObjective(StaticObjective):
    """Object SIMILARITY: an image's objective is that of its best-matching object (0 without objects)."""

    kind = "SIMILARITY"
    detail = "object_similarity"

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        qkey = (inp.dataset_id, inp.tag_name)
        if ctx.query_embeddings is None or qkey not in ctx.query_embeddings:
            raise ValueError(f"{path}.input: no query embeddings for dataset_id={inp.dataset_id!r} "
                             f"tag_name={inp.tag_name!r} (known: {sorted(ctx.query_embeddings or {})})")
        objs = _objects_of(path, inp, ctx)
        sim = object_similarity(objs, np.asarray(ctx.query_embeddings[qkey]))
        return cls(path, strategy.strength, _column(objs.task), sim, sim)

    def report(self, picks: np.ndarray) -> dict[str, Any]:
        out = self._base_report()
        out.update(self._means(picks, "similarity"))
        return out


class ObjectTypicalityObjective(TypicalityObjective):
    """Object TYPICALITY (our choice): the mean typicality of an image's objects among the run's objects; the
    minimum-typicality stop and the report are the image objective's."""

    kind = "TYPICALITY"
    detail = "object_typicality"

    @classmethod
    def build(cls, path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
        objs = _objects_of(path, inp, ctx)
        typ = object_typicality(objs, strategy.num_nearest_neighbors)
        obj = cls(path, strategy.strength, _column(objs.task), typ, typ)
        obj.minimum = strategy.stopping_condition_minimum_typicality
        return obj


OBJECT_OBJECTIVES: dict[str, type[Objective]] = {
    "DIVERSITY": ObjectDiversityObjective, "SIMILARITY": ObjectSimilarityObjective,
    "TYPICALITY": ObjectTypicalityObjective,
}


def build_object_objective(path: str, inp: Any, strategy: Any, ctx: Context) -> Objective:
    """The object-level objective of an ``EMBEDDINGS`` input with ``task``."""
    cls = OBJECT_OBJECTIVES.get(strategy.type)
    if cls is None:
        raise ValueError(f"{path}.strategy.type: {strategy.type!r} is not an object-level strategy "
                         f"(EMBEDDINGS with task: {sorted(OBJECT_OBJECTIVES)})")
    return cls.build(path, inp, strategy, ctx)
