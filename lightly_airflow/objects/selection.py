"""Object-level objectives: selecting images by the crops of their objects (docs/objects.md).

An ``EMBEDDINGS`` input with ``task`` reads the crop embeddings of that task's objects; the selection still
picks **images**, and picking an image selects (informs) all its objects. As in Lightly's engine:

* **object DIVERSITY**: an image's objective is the **mean**, over its objects, of the distance of each object
  to its nearest *selected* object (objects of images picked so far in the run and of every image the pool
  selected before), halved and capped at 1 like image DIVERSITY (``min(d / 2, 1)``; with nothing selected
  yet every object is at the cap). It changes after every pick.
* **object SIMILARITY**: an image's objective is that of its **best-matching** object,
  ``max_o (1 - d_query(o) / 2)``; fixed per image.
* **object TYPICALITY** (where Lightly is silent we choose): the mean over the image's objects of each
  object's typicality among all the run's objects of the task, ``1 / (1 + mean distance to its K nearest
  objects)``; fixed per image.

Choices where Lightly is silent (documented in docs/objects.md):

* an image **without objects** of the task has objective 0 (floored at 1e-6 like every objective): it is
  picked only after every image with objects (all else equal), and counted in the metrics;
* ``stopping_condition_minimum_distance`` stops when the next pick's mean object distance (not halved) is
  below the threshold.

Distances are exact float64 ``sqrt(max(|x|² + |s|² - 2 x·s, 0))`` of the unit-normalised float32 crop
embeddings; :func:`reference_object_diversity` is the slow, formula-by-formula reference the tests compare to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.arrow import filtered

EPS = 1e-6
_BLOCK = 8192


@dataclass
class ObjectSet:
    """The objects of one task for a list of candidate images.

    :param x: ``(M, D)`` unit-normalised float32 crop embeddings, grouped by image in candidate order.
    :param owner: ``(M,)`` the candidate row of each object (non-decreasing).
    :param n: the number of candidate images.
    :param pre: ``(P, D)`` embeddings of the objects of preselected images.
    :param task: the task name.
    """

    x: np.ndarray
    owner: np.ndarray
    n: int
    pre: np.ndarray
    task: str

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.owner, minlength=self.n)

    def take(self, rows: np.ndarray) -> ObjectSet:
        """The objects of candidate ``rows`` only (after filters), owners renumbered to positions in ``rows``."""
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        new_owner = pos[self.owner]
        keep = new_owner >= 0
        at = np.flatnonzero(keep)[np.argsort(new_owner[keep], kind="stable")]
        return ObjectSet(_rows(self.x, at), new_owner[at], len(rows), self.pre, self.task)


def _rows(x: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``x[at]``, without a copy of the ``(M, D)`` embeddings when ``at`` keeps every row in place (no filter,
    objects already in candidate order: the usual case)."""
    return x if len(at) == len(x) and np.array_equal(at, np.arange(len(at))) else x[at]


def _unit(matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The rows scaled to unit length in float64, as float32 (into ``out`` when given); in blocks of rows, so
    memory holds one float64 block, not the whole matrix in float64 (the rows are independent: the same values)."""
    if out is None:
        out = np.empty(matrix.shape, dtype=np.float32)
    for start in range(0, len(matrix), _BLOCK):
        x = matrix[start : start + _BLOCK].astype(np.float64)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x /= np.where(norms > 0, norms, 1.0)
        out[start : start + _BLOCK] = x
    return out


def _matrix(col: pa.ChunkedArray | pa.Array, n: int) -> np.ndarray:
    """The ``(n, D)`` unit float32 matrix of a list column, chunk by chunk (the chunks are not combined first:
    that was a copy of every embedding)."""
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    chunks = [c for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]) if len(c)]
    out: np.ndarray | None = None
    row = 0
    for chunk in chunks:
        values = np.asarray(chunk.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
        values = values.reshape(len(chunk), len(values) // len(chunk))
        if out is None:
            out = np.empty((n, values.shape[1]), dtype=np.float32)
        _unit(values, out[row : row + len(chunk)])
        row += len(chunk)
    assert out is not None and row == n
    return out


def object_set(
    candidate_keys: list[str], objects: pa.Table | None, task: str, preselected: pa.Table | None = None,
    *, path: str = "input",
) -> ObjectSet:
    """Gather the objects of ``task`` of the candidates (by ``parent_key``) and of the preselected images.

    :param candidate_keys: the candidates' keys in row order.
    :param objects: object rows (``parent_key``, ``object_task``, ``embedding``) of the run.
    :param preselected: object rows of images the pool selected before.
    :raises ValueError: naming the input when no object of the task exists at all.
    """
    def of_task(table: pa.Table | None) -> pa.Table | None:
        if table is None or table.num_rows == 0 or C.OBJECT_TASK not in table.column_names:
            return None
        # Only the columns read here; a filter copies them (the crop embeddings): none where it drops nothing.
        rows = filtered(table.select([C.PARENT_KEY, C.EMBEDDING]), pc.equal(table.column(C.OBJECT_TASK), task))
        return filtered(rows, pc.is_valid(rows.column(C.EMBEDDING))) if rows.num_rows else None

    mine = of_task(objects)
    pre_rows = of_task(preselected)
    if mine is None and pre_rows is None:
        from lightly_airflow.objects.shard import count_key

        meta = (objects.schema.metadata or {}) if objects is not None else {}
        dropped = [f"{int(meta[count_key(n)])} {what}" for n, what in (
            ("boxes_outside_image", "predicted boxes had no area inside their images"),
            ("video_frames_failed", "video frames with boxes did not decode"),
        ) if int(meta.get(count_key(n), b"0"))]
        raise ValueError(
            f"{path}.task: no objects of task {task!r} in this run"
            f"{' (' + '; '.join(dropped) + ')' if dropped else ''}: it must be an object-detection, "
            "instance-segmentation or keypoint-detection task in .lightly/predictions/tasks.json with "
            "prediction files for the images, or an auto_tasks name."
        )
    lookup = {k: i for i, k in enumerate(candidate_keys)}
    if mine is not None:
        owner_all = np.array([lookup.get(k, -1) for k in mine.column(C.PARENT_KEY).to_pylist()], dtype=np.int64)
        keep = owner_all >= 0
        at = np.flatnonzero(keep)[np.argsort(owner_all[keep], kind="stable")]
        x, owner = _rows(_matrix(mine.column(C.EMBEDDING), mine.num_rows), at), owner_all[at]
    else:
        x, owner = np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    pre = _matrix(pre_rows.column(C.EMBEDDING), pre_rows.num_rows) if pre_rows is not None else None
    dim = x.shape[1] if x.size else (pre.shape[1] if pre is not None and pre.size else 0)
    if x.size == 0:
        x = np.zeros((0, dim), np.float32)
    if pre is None or pre.size == 0:
        pre = np.zeros((0, dim), np.float32)
    if pre.shape[1] != x.shape[1]:
        raise ValueError(f"{path}: preselected object embeddings have dimension {pre.shape[1]}, the run's {x.shape[1]}")
    return ObjectSet(x, owner, len(candidate_keys), pre, task)


def squared_norms(x: np.ndarray) -> np.ndarray:
    """``|x|²`` of each row in float64, blockwise (one float64 block in memory)."""
    out = np.empty(len(x))
    for start in range(0, len(x), _BLOCK):
        xb = x[start : start + _BLOCK].astype(np.float64)
        out[start : start + _BLOCK] = (xb * xb).sum(axis=1)
    return out


def nearest_distances(x: np.ndarray, s: np.ndarray, xn: np.ndarray | None = None) -> np.ndarray:
    """``(len(x),)``: each row's exact float64 distance to its nearest row of ``s``, in blocks of rows of ``x`` (memory
    holds a block's distances, not all ``len(x) x len(s)``); ``xn``: :func:`squared_norms` of ``x`` when the caller
    keeps them (the same numbers, computed once instead of per call)."""
    out = np.empty(len(x))
    s64 = s.astype(np.float64)
    sn = (s64 * s64).sum(axis=1)
    for start in range(0, len(x), _BLOCK):
        xb = x[start : start + _BLOCK].astype(np.float64)
        xbn = (xb * xb).sum(axis=1) if xn is None else xn[start : start + _BLOCK]
        d2 = xbn[:, None] + sn[None, :] - 2.0 * (xb @ s64.T)
        out[start : start + _BLOCK] = np.sqrt(np.maximum(d2, 0.0)).min(axis=1)
    return out


def _mean_per_owner(values: np.ndarray, owner: np.ndarray, counts: np.ndarray) -> np.ndarray:
    sums = np.bincount(owner, weights=values, minlength=len(counts))
    out: np.ndarray = np.divide(sums, counts, out=np.zeros(len(counts)), where=counts > 0)
    return out


class ObjectDiversity:
    """The dynamic object-DIVERSITY objective over candidate images (see the module docstring)."""

    def __init__(self, objects: ObjectSet, strength: float = 1.0, minimum_distance: float | None = None) -> None:
        self.objects = objects
        self.strength = float(strength)
        self.minimum_distance = minimum_distance
        self.counts = objects.counts
        self.d = np.full(len(objects.x), 2.0)
        self.starts = np.searchsorted(objects.owner, np.arange(objects.n + 1))
        self.xn = squared_norms(objects.x)  # (every pick measures all M objects: their norms once, not per pick)
        if len(objects.pre) and len(objects.x):
            for start in range(0, len(objects.pre), 256):
                block = nearest_distances(objects.x, objects.pre[start : start + 256], self.xn)
                np.minimum(self.d, block, out=self.d)
        self.picked = 0

    def mean_distance(self) -> np.ndarray:
        """Per candidate image: the mean distance of its objects to the nearest selected object (0 without)."""
        return _mean_per_owner(self.d, self.objects.owner, self.counts)

    def objective(self) -> np.ndarray:
        return np.minimum(self.mean_distance() / 2.0, 1.0)

    def log_bonus(self) -> np.ndarray:
        """``strength · log(objective)`` per candidate, the objective floored at 1e-6."""
        bonus: np.ndarray = self.strength * np.log(np.maximum(self.objective(), EPS))
        return bonus

    def stops_before(self, i: int) -> bool:
        """Whether ``stopping_condition_minimum_distance`` stops the selection before picking ``i``."""
        if self.minimum_distance is None:
            return False
        a, b = self.starts[i], self.starts[i + 1]
        mean = float(self.d[a:b].mean()) if b > a else 0.0
        return mean < self.minimum_distance

    def pick(self, i: int) -> None:
        """Candidate ``i`` was selected: its objects become selected objects."""
        a, b = self.starts[i], self.starts[i + 1]
        if b > a and len(self.d):
            np.minimum(self.d, nearest_distances(self.objects.x, self.objects.x[a:b], self.xn), out=self.d)
        self.picked += 1

    def report(self) -> dict[str, float | int]:
        return {
            "task": self.objects.task,  # type: ignore[dict-item]
            "objects": int(len(self.objects.x)),
            "preselected_objects": int(len(self.objects.pre)),
            "images_without_objects": int((self.counts == 0).sum()),
        }


def object_similarity(objects: ObjectSet, queries: np.ndarray) -> np.ndarray:
    """Per candidate image: ``max`` over its objects of ``1 - d_query / 2`` (0 for an image without objects)."""
    out = np.zeros(objects.n)
    if len(objects.x) == 0:
        return out
    q = _unit(np.asarray(queries, dtype=np.float32))
    if q.shape[1] != objects.x.shape[1]:
        raise ValueError(f"query embeddings have dimension {q.shape[1]}, the objects' {objects.x.shape[1]}")
    best = np.full(len(objects.x), np.inf)
    xn = squared_norms(objects.x)
    for start in range(0, len(q), 256):
        np.minimum(best, nearest_distances(objects.x, q[start : start + 256], xn), out=best)
    sim = 1.0 - best / 2.0
    np.maximum.at(out, objects.owner, sim)
    return out


def object_typicality(objects: ObjectSet, k: int) -> np.ndarray:
    """Per candidate image: the mean typicality of its objects among all the run's objects of the task."""
    from lightly_airflow.selection.objectives import typicality

    if len(objects.x) == 0:
        return np.zeros(objects.n)
    return _mean_per_owner(typicality(objects.x, k), objects.owner, objects.counts)


def reference_object_diversity(
    objects: list[np.ndarray], preselected: np.ndarray | None, n_picks: int, strength: float = 1.0
) -> list[int]:
    """Slow reference of the object-DIVERSITY greedy, written from the definition.

    :param objects: per candidate image, its ``(k_i, D)`` unit crop embeddings (``k_i`` may be 0).
    :param preselected: ``(P, D)`` objects of preselected images.
    :returns: the pick order (lowest index on ties).
    """
    selected = [] if preselected is None else [np.asarray(p, np.float64) for p in preselected]
    order: list[int] = []
    for _ in range(min(n_picks, len(objects))):
        best, best_score = -1, -np.inf
        for i, objs in enumerate(objects):
            if i in order:
                continue
            if len(objs) == 0:
                mean = 0.0
            else:
                total = 0.0
                for o in np.asarray(objs, np.float64):
                    d = min([2.0] + [float(np.sqrt(max(((o - s) ** 2).sum(), 0.0))) for s in selected])
                    total += min(d, 2.0)
                mean = total / len(objs)
            score = strength * np.log(max(min(mean / 2.0, 1.0), EPS))
            if score > best_score:
                best, best_score = i, score
        order.append(best)
        selected.extend(np.asarray(objects[best], np.float64))
    return order
