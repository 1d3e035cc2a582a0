"""Object-level objectives: selecting images by the crops of their objects (docs/objects.md).

An ``EMBEDDINGS`` input with ``task`` reads the crop embeddings of that task's objects; the selection still
picks **images**, and picking an image selects (informs) all its objects. As in Lightly's engine:

* **object DIVERSITY**: an image's objective is the **root mean square**, over its objects, of the distance of
  each object to its nearest *selected* object (objects of images picked so far in the run and of every image
  the pool selected before), halved and capped at 1 like image DIVERSITY (``min(sqrt(mean(d²)) / 2, 1)``; with
  nothing selected yet every object is at the cap). It changes after every pick. Lightly's engine
  (lightly-mundig's ``add_subpart_diversifying_strategy``) ranks images by the mean of the squared distances:
  the same order (``benchmarks/object_selection.py`` compares the picks).
* **object SIMILARITY**: an image's objective is that of its **best-matching** object,
  ``max_o (1 - d_query(o) / 2)``; fixed per image.
* **object TYPICALITY** (where Lightly is silent we choose): the mean over the image's objects of each
  object's typicality among all the run's objects of the task, ``1 / (1 + mean distance to its K nearest
  objects)``; fixed per image.

Choices where Lightly is silent (documented in docs/objects.md):

* an image **without objects** of the task has objective 0 (floored at 1e-6 like every objective): it is
  picked only after every image with objects (all else equal), and counted in the metrics;
* ``stopping_condition_minimum_distance`` stops when the next pick's root mean square object distance (not
  halved) is below the threshold (where lightly-mundig stops too).

Distances are exact float64 ``sqrt(max(|x|² + |s|² - 2 x·s, 0))`` of the unit-normalised float32 crop
embeddings; a pick computes them only for the objects that neither the triangle inequality on each object's
nearest selected object (:func:`may_get_nearer`: no product of the objects; in chords and angles; its product of the
picked objects only for those their projections, :meth:`Projection.lower`, leave in question), nor a float32
product of the objects projected on 32 directions (:class:`Projection`, 256 dimensions and more), nor then a
float32 product with a proven error bound (:func:`lower_to_nearest`) can rule out, and only to the new objects
that product leaves in question; the preselected objects go the same way (an object duplicating one gets the
formula's value wherever it lies). :func:`reference_object_diversity` is the slow, formula-by-formula reference the
tests compare to.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.arrow import filtered
from lightly_airflow.selection.arrays import squared_norms
from lightly_airflow.selection.kernels import (
    MIN_WORK_PER_THREAD,
    _pool,
    blas_one_thread,
    even_shares,
    float32_margin,
    selection_threads,
)

logger = logging.getLogger(__name__)

EPS = 1e-6
_BLOCK = 8192
_GATHER = 1024  # (row, new object) pairs a pick computes in float64 at a time (lower_to_nearest)
_FEW_PAIRS = 2048
"""A block with fewer (row, new object) pairs in question leaves them to one pass over all the blocks' pairs after
(:func:`lower_to_nearest`): late picks leave a few pairs in most blocks (a call per block cost more than the dots)."""
BOUND_PAYS = 0.2
"""A pick's triangle-inequality bound (:func:`may_get_nearer`) whose rows ruled out, less the rows of its own
product (the selected objects it compares with the pick's: the same ``k·D`` multiply-adds per row), are fewer
than this share of the objects does not pay for itself (the first picks, data without clusters, many preselected
objects): the next ``2, 4, … 16`` picks go without it (:data:`BOUND_MAX_GAP`), then it is tried again."""
BOUND_MAX_GAP = 16
SCREEN_PAYS = 1 / 3
"""A pick's projected screen (:class:`Projection`) that ruled out fewer than this share of the rows it screened does
not pay for itself (its product and minimum cost about a third of the rows' float32 product it spares, 140,000
objects of 256 dimensions, measured: objects without clusters, the first picks): the next picks go without it, as
for the bound (:data:`BOUND_MAX_GAP`)."""


class _Backoff:
    """Whether a pick uses a screen that may not pay: after a pick where it did not, the next ``1, 2, 4 …``
    :data:`BOUND_MAX_GAP` picks go without it, then it is tried again."""

    def __init__(self) -> None:
        self.gap = 1
        self.wait = 0
        self.skipped = 0  # picks without it
        self.failed = 0  # picks where it did not pay

    def skip(self) -> bool:
        """Whether this pick goes without it (counted)."""
        if not self.wait:
            return False
        self.wait -= 1
        self.skipped += 1
        return True

    def paid(self, ok: bool) -> None:
        if ok:
            self.gap = 1
        else:
            self.failed += 1
            self.wait = self.gap
            self.gap = min(2 * self.gap, BOUND_MAX_GAP)


@dataclass
class ObjectSet:
    """The objects of one task for a list of candidate images.

    :param x: ``(M, D)`` unit-normalised float32 crop embeddings, grouped by image in candidate order.
    :param owner: ``(M,)`` the candidate row of each object (non-decreasing).
    :param n: the number of candidate images.
    :param pre: ``(P, D)`` embeddings of the objects of preselected images.
    :param task: the task name.
    :param pre_without: preselected images with no object of the task (``preselected_images_without_objects``).
    """

    x: np.ndarray
    owner: np.ndarray
    n: int
    pre: np.ndarray
    task: str
    pre_without: int = 0

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
        return ObjectSet(_rows(self.x, at), new_owner[at], len(rows), self.pre, self.task, self.pre_without)


def _rows(x: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``x[at]``, without a copy of the ``(M, D)`` embeddings when ``at`` keeps every row in place (no filter,
    objects already in candidate order: the usual case)."""
    return x if len(at) == len(x) and np.array_equal(at, np.arange(len(at))) else x[at]


def _appended(rows: np.ndarray, n: int, new: np.ndarray) -> np.ndarray:
    """``rows`` (its first ``n`` in use) with ``new`` after them: in place, or in a copy twice as large."""
    if n + len(new) > len(rows):
        grown = np.empty((max(2 * len(rows), n + len(new)), rows.shape[1]), dtype=rows.dtype)
        grown[:n] = rows[:n]
        rows = grown
    rows[n : n + len(new)] = new
    return rows


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
    *, path: str = "input", preselected_keys: list[str] | None = None,
) -> ObjectSet:
    """Gather the objects of ``task`` of the candidates (by ``parent_key``) and of the preselected images.

    :param candidate_keys: the candidates' keys in row order.
    :param objects: object rows (``parent_key``, ``object_task``, ``embedding``) of the run.
    :param preselected: object rows of images the pool selected before.
    :param preselected_keys: the keys of the images the pool selected before: those this run processed again
        (``process_all``) count with the run's own objects (the pool's are of an earlier run, none when that run
        did not crop the task); those without any object of the task are counted (:func:`preselected_objects`).
    :raises ValueError: naming the input when no object of the task exists at all.
    """
    def of_task(table: pa.Table | None) -> pa.Table | None:
        if table is None or table.num_rows == 0 or C.OBJECT_TASK not in table.column_names:
            return None
        # Only the columns read here; a filter copies them (the crop embeddings): none where it drops nothing.
        rows = filtered(table.select([C.PARENT_KEY, C.EMBEDDING]), pc.equal(table.column(C.OBJECT_TASK), task))
        return filtered(rows, pc.is_valid(rows.column(C.EMBEDDING))) if rows.num_rows else None

    mine = of_task(objects)
    pre_rows, pre_without = preselected_objects(mine, of_task(preselected), preselected_keys or [], task)
    if mine is None and pre_rows is None:
        from lightly_airflow import staging

        counts = staging.summed_counts([objects], staging.OBJECTS).counts  # (the run's, summed by objects.run)
        dropped = [f"{counts[n]} {what}" for n, what in (
            ("boxes_outside_image", "predicted boxes had no area inside their images"),
            ("video_frames_failed", "video frames with boxes did not decode"),
            ("prediction_files_rejected", "prediction files had a problem (the predictions stage lists them; e.g. "
             "category ids that schema.json does not have)"),
        ) if counts.get(n)]
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
    return ObjectSet(x, owner, len(candidate_keys), pre, task, pre_without)


def preselected_objects(run: pa.Table | None, pool: pa.Table | None, keys: list[str], task: str
                        ) -> tuple[pa.Table | None, int]:
    """The objects of ``task`` that count as selected before, and how many preselected images have none.

    The run's own objects of preselected images (``run``: a ``process_all`` run crops them again) replace the
    pool's of those images (``pool``: from the run that processed each image before, which has none of a task
    added since: the process_all run itself selected as if they had none). A preselected image without any
    object of the task is counted (:func:`preselected_note`)."""
    if keys and run is not None and run.num_rows:
        fresh = filtered(run, pc.is_in(run.column(C.PARENT_KEY), pa.array(keys, pa.string())))
        if fresh.num_rows:
            if pool is not None:
                pool = filtered(pool, pc.invert(pc.is_in(pool.column(C.PARENT_KEY), pc.unique(fresh.column(C.PARENT_KEY)))))
            pool = pa.concat_tables([t for t in (pool, fresh) if t is not None and t.num_rows],
                                    promote_options="permissive")
    with_objects = set() if pool is None else set(pc.unique(pool.column(C.PARENT_KEY)).to_pylist())
    return (pool if pool is not None and pool.num_rows else None), len(set(keys) - with_objects)


def preselected_note(task: str, without: int, preselected_objects: int) -> str | None:
    """What object DIVERSITY says when no image selected before has an object of its task (``without`` of them):
    the task is new to them (the runs that processed them did not crop it), so new picks are not kept away from
    their objects; ``None`` when some have objects (the others have no boxes of the task)."""
    if not without or preselected_objects:
        return None
    return (f"{without:,} images selected before have no objects of task '{task}' in the datapool (the runs that "
            "processed them did not crop it: a task added since?), so object DIVERSITY could not keep new picks "
            "away from their objects. Fix: run once with process_all=true to crop them (that run selects with them).")


def nearest_distances(x: np.ndarray, s: np.ndarray, xn: np.ndarray | None = None,
                      arg: np.ndarray | None = None) -> np.ndarray:
    """``(len(x),)``: each row's exact float64 distance to its nearest row of ``s``, in blocks of rows of ``x`` (memory
    holds a block's distances, not all ``len(x) x len(s)``); ``xn``: :func:`squared_norms` of ``x`` when the caller
    keeps them (the same numbers, computed once instead of per call); ``arg``: filled with the row of ``s`` each
    distance is to (the first on ties) when given."""
    out = np.empty(len(x))
    s64, sn = _float64_rows(s)
    for start in range(0, len(x), _BLOCK):
        xb = x[start : start + _BLOCK].astype(np.float64)
        xbn = squared_norms(x[start : start + _BLOCK]) if xn is None else xn[start : start + _BLOCK]
        out[start : start + _BLOCK], nearest = _exact_nearest(xb, xbn, s64, sn)
        if arg is not None:
            arg[start : start + _BLOCK] = nearest
    return out


def _float64_rows(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return s.astype(np.float64), squared_norms(s)


def _exact_nearest(xb: np.ndarray, xbn: np.ndarray, s64: np.ndarray, sn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distance formula: each float64 row of ``xb`` (squared norms ``xbn``) to its nearest row of ``s64``,
    ``min_s sqrt(max(|x|² + |s|² - 2 x·s, 0))``, and that row of ``s64`` (the first on ties: the value is the
    minimum's, bit for bit)."""
    d2 = xbn[:, None] + sn[None, :] - 2.0 * (xb @ s64.T)
    dist = np.sqrt(np.maximum(d2, 0.0))
    arg = dist.argmin(axis=1)
    return dist[np.arange(len(dist)), arg], arg


def lower_to_nearest(d: np.ndarray, x: np.ndarray, s: np.ndarray, xn: np.ndarray, max_sqnorm: float,
                     margin_scale: float = 1.0, *, keep: np.ndarray | None = None,
                     near: np.ndarray | None = None, first: int = 0,
                     screen: tuple[Projection, np.ndarray] | None = None) -> int:
    """``d = min(d, nearest_distances(x, s, xn))`` in place, computing the float64 formula only for the rows, and
    the rows of ``s``, a float32 product cannot rule out; returns how many rows it computed in float64.

    ``keep``: the rows a caller's bound could not rule out (:func:`may_get_nearer`); the others are neither
    multiplied nor computed (the bound proves their ``d`` unchanged). ``screen``: a :class:`Projection` and the
    new objects' :meth:`Projection.against`: each block's rows still in question are screened first (its bound
    proves the same, with ``slack`` :func:`float64_slack`). ``near``: where a row gets strictly nearer,
    ``first`` + the row of ``s`` it is now nearest to is written into it (the bound's next centres).

    Per block of rows (split over the selection's threads): the float32 product ``x·s`` (straight on the float32
    rows, no float64 copy; only the rows of the block still in question, gathered, where they are at most half
    of it) gives each row and row of ``s`` an estimate ``w = |x|² + |s|² - 2 fl32(x·s)`` of the formula's ``v =
    |x|² + |s|² - 2 x·s``. A row whose lower bound ``|x|² + min|s|² - 2 max_s fl32(x·s) - margin`` (float64; at
    most ``min_s w - margin``) is not below its ``d²`` (or whose ``d`` is already 0) cannot get nearer. For the
    others only the rows of ``s`` with ``fl32(x·s) >= max_s fl32(x·s) - tie`` are in question (one where
    distances do not nearly tie): those (row, s) pairs get the formula, the pair's float64 dot by ``np.einsum``
    (``D`` multiply-adds a pair instead of ``k·D`` a row; no float64 copy of the rows, no ``(rows, k)`` float64
    product), :data:`_GATHER` pairs at a time, in the block's pass where it has :data:`_FEW_PAIRS` or more (its
    rows in cache), else all blocks' pairs together after.

    The bound. The float32 dot of ``D`` products, in any summation order with or without FMA, errs by at most
    ``γ_D Σ|x_j s_j| <= γ_D |x||s|`` with ``γ_D = D u / (1 - D u)``, ``u = 2^-24`` (the float32 inputs multiply
    exactly in float64, so a float64 dot, in any order, errs by ``γ_D`` with ``u = 2^-53``: below 1e-12).
    :func:`lightly_airflow.selection.kernels.float32_margin` takes ``γ`` of ``D + 2``, ``|x||s| <= max(|x|², |s|²)``
    (``max_sqnorm``: the rows are unit length to ~2^-24, so about 1), the factor 2 of ``2 x·s``, doubles the
    result and adds 1e-12: ``margin = 2 (2 γ_{D+2} M) + 1e-12``, ``M = max_sqnorm``. ``w`` (exact arithmetic on
    the float32 dot) and ``v`` (the same ``|x|²`` and ``|s|²`` numbers) both lie within ``2 γ_D M`` (``u = 2^-24``,
    resp. ``2^-53``) and ~1e-15 of float64 rounding of the exact value, so ``|v - w| <= 2 γ_D^32 M + 2 γ_D^64 M +
    1e-15 < margin / 2 - 4e-13`` (``γ_{D+2}`` over ``γ_D`` leaves more than that). Rows: with a lower bound ``>=
    d²`` (the float64 rounding of ``d²`` and of the bound is ~1e-15) every ``v >= d² + margin / 2 - 1e-12 > d²``
    (real): no ``sqrt(max(v, 0))`` is below ``d`` and ``np.minimum`` would leave the row's ``d`` unchanged. Rows of
    ``s``: the first ``s*`` with the least ``v`` has, against the ``s'`` with the least ``w`` and the ``s⁺`` with
    the largest float32 dot, ``w(s*) <= v(s*) + margin / 2 <= v(s') + margin / 2 <= w(s') + margin <= w(s⁺) +
    margin``, i.e. ``fl32(x·s*) >= fl32(x·s⁺) - margin / 2 - Δ / 2`` (``Δ = max|s|² - min|s|²``);
    ``tie = margin / 2 + Δ + 2^-22 max(1, M)`` also covers the float32 rounding of ``max - tie`` (at most
    ``2^-24 (M + tie)``). So ``s*`` and every ``s`` tied with it are among those computed: the least ``v`` of those
    (its first ``s`` on ties) is the formula's over every ``s``. A pair's float64 dot sums in ``np.einsum``'s order,
    the same for every pair wherever its row lies (the picks give objects that duplicate each other the same
    distances bit for bit: their images tie exactly), :func:`nearest_distances`' in that of BLAS' matrix product
    (object SIMILARITY's distances), which depends on the matrix's shape and the row's place in it: values
    within ``4 γ_D^64 M`` of each other. ``margin_scale`` scales ``margin`` and ``tie`` for the tests (a too small
    margin must change results where distances nearly tie).
    """
    if not len(x) or not len(s):
        return 0
    sn, s32 = squared_norms(s), np.ascontiguousarray(s, dtype=np.float32)
    margin = margin_scale * float32_margin(x.shape[1], max(max_sqnorm, float(sn.max())))
    offset = float(sn.min()) - margin
    tie = margin / 2.0 + margin_scale * (float(sn.max() - sn.min()) + 2.0**-22 * max(1.0, max_sqnorm, float(sn.max())))
    slack = margin_scale * float64_slack(x.shape[1], max(1.0, max_sqnorm, float(sn.max())))

    def lower(rows: np.ndarray, new: np.ndarray, arg: np.ndarray) -> None:
        """``d[rows] = min(d[rows], new)``; where strictly nearer, ``near[rows] = first + arg``."""
        if near is not None:
            better = new < d[rows]
            near[rows[better]] = first + arg[better]
        d[rows] = np.minimum(d[rows], new)

    def formula(pair_row: np.ndarray, pair_s: np.ndarray) -> None:
        """The formula for (row, s) pairs (by row, then s), :data:`_GATHER` pairs at a time, then each row's least
        distance (its first ``s`` on ties)."""
        dots64 = np.empty(len(pair_row))
        for a in range(0, len(pair_row), _GATHER):
            r, c = pair_row[a : a + _GATHER], pair_s[a : a + _GATHER]
            dots64[a : a + _GATHER] = np.einsum("ij,ij->i", x[r], s32[c], dtype=np.float64)
        dist = np.sqrt(np.maximum(xn[pair_row] + sn[pair_s] - 2.0 * dots64, 0.0))
        row_first = np.flatnonzero(np.diff(pair_row, prepend=-1))
        new = np.minimum.reduceat(dist, row_first)
        best = np.flatnonzero(dist == np.repeat(new, np.diff(row_first, append=len(dist))))
        lower(pair_row[row_first], new, pair_s[best[np.diff(pair_row[best], prepend=-1) > 0]])

    def block_pass(start: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Block ``start``: how many rows the float32 product cannot rule out; their (row, s) pairs in question
        are computed here where they are many (their rows in cache), else returned (by row, then s)."""
        xb, xbn, db = x[start : start + _BLOCK], xn[start : start + _BLOCK], d[start : start + _BLOCK]
        open_ = db > 0.0 if keep is None else (db > 0.0) & keep[start : start + _BLOCK]
        cand = np.flatnonzero(open_)
        if screen is not None and len(cand):
            cand = cand[screen[0].may_get_nearer(start, cand, db[cand], screen[1], slack)]
        whole = 2 * len(cand) > len(xb)
        dots = xb @ s32.T if whole else xb[cand] @ s32.T  # (a (B, k) float32 product)
        if whole and len(cand) < len(xb):
            dots = dots[cand]
        top = dots.max(axis=1, initial=-np.inf)
        nearer = xbn[cand] + offset - 2.0 * top < db[cand] ** 2
        rows = start + cand
        if not nearer.all():
            rows, dots, top = rows[nearer], dots[nearer], top[nearer]
        pair_row, pair_s = np.nonzero(dots >= (top - tie).astype(np.float32)[:, None])  # (float32: no copy)
        pair_row = rows[pair_row]
        if len(pair_row) < _FEW_PAIRS:
            return len(rows), pair_row, pair_s
        formula(pair_row, pair_s)
        return len(rows), pair_row[:0], pair_s[:0]

    starts = list(range(0, len(x), _BLOCK))
    threads = max(1, min(selection_threads(), len(starts)))
    with blas_one_thread():  # (BLAS' own threads on small products on a busy machine: 2-20x the time, measured)
        done = [block_pass(a) for a in starts] if threads == 1 else list(_pool(threads).map(block_pass, starts))
        pair_row = np.concatenate([p[1] for p in done])  # (by row: the blocks in order)
        if len(pair_row):  # (the blocks' few pairs together)
            formula(pair_row, np.concatenate([p[2] for p in done]))
    return sum(p[0] for p in done)


def float64_slack(dim: int, max_sqnorm: float) -> float:
    """``2 sqrt(e) + 1e-6``, ``e = 8 γ_{D+2} M`` (``u = 2^-53``, ``M = max_sqnorm``): ``e`` bounds how far a float64
    evaluation of the distance formula's ``|x|² + |s|² - 2 x·s`` (two squared norms and a dot, float64 sums of
    exact products, ``γ_D M`` each, ``2 γ_D M`` for ``2 x·s``, and two additions) is from the exact ``|x - s|²``;
    :func:`may_get_nearer` keeps a row unless its bound clears ``2 d`` by this much."""
    u = 2.0**-53
    gamma = (dim + 2) * u / (1.0 - (dim + 2) * u)
    return 2.0 * math.sqrt(8.0 * gamma * max_sqnorm) + 1e-6


_PROJECTED = 32
"""Directions of the projection (:class:`Projection`) a pick screens the objects with first, where they have at least
8 times as many dimensions."""


@dataclass
class Projection:
    """The objects projected on :data:`_PROJECTED` orthonormal directions of most variance, a cheap lower bound of
    their distances: a pick's float32 product of the projected rows (``r + 1`` columns instead of ``D``) rules out
    the objects it proves no new object can bring nearer before :func:`lower_to_nearest`'s product of the rows.

    :param y: ``(r + 1, M)`` float32: each object's ``y = Q^T x`` (``Q``: ``(D, r)`` float32, ``|Q|_2 <= 1``), then
        1, as a column (a pick's ``(k, rows)`` product: its minimum over the ``k`` new objects runs along
        contiguous rows; in the picks of 139,111 objects of 256 dimensions 1.0-1.1 ms a block of 8,192 against
        1.6-1.8 ms for ``(rows, k)``, one thread, measured).
    :param yn: ``(M,)`` the squared norms of the float32 ``y`` (float64).
    :param margin: :func:`float32_margin` of ``r + 1`` columns (below).
    :param blur: ``2 sqrt(r M) γ_{D+2}`` (``u = 2^-24``): the float32 ``y`` of two rows are within it of their exact
        ``Q^T (x - s)``.

    The bound. With ``|Q|_2 <= 1`` (divided, in float64, by the square root of the largest absolute row sum of
    ``Q^T Q``, which bounds its largest eigenvalue, times ``1 + 1e-6``: more than the float64 rounding of that sum
    and the float32 rounding of each entry after, ``2^-24 sqrt(r)`` of the norm), ``|x - s| >= |Q^T (x - s)|``. Each
    coordinate of the float32 product ``y = Q^T x`` (any order, with or without FMA) is within ``γ_D Σ_i |x_i q_i|
    <= γ_D |x|`` of the exact one, so ``|x - s| >= |y_x - y_s| - blur``. A pick's product of ``[y_x, 1]`` with
    ``[-2 y_s, |y_s|²]`` (float32) is ``|y_s|² - 2 y_x·y_s`` within ``γ_{r+1} (2 |y_x||y_s| + |y_s|²) + 2^-24
    |y_s|² <= 3 γ_{r+1} M + 2^-24 M`` (the float32 ``|y_s|²``), which ``margin = 4 γ_{r+3} M + 1e-12`` covers with
    the float64 rounding of ``|y_x|² + min_s … - margin``. So ``L = sqrt(max(|y_x|² + min_s fl32(…) - margin, 0)) -
    blur <= min_s |x - s|`` (up to 1e-15), and a row with ``L - d >= slack`` (:func:`float64_slack`) is left out:
    :func:`may_get_nearer`'s chords, whose proof shows the formula's value for every ``(x, s)`` is above ``d²``.
    """

    y: np.ndarray
    yn: np.ndarray
    margin: float
    blur: float
    tally: list[tuple[int, int]] = field(default_factory=list)
    """Per block screened since the pick began: (rows screened, rows kept) (appended from the blocks' threads)."""

    def against(self, a: int, b: int) -> np.ndarray:
        """``(b - a, r + 1)`` float32 ``[-2 y_s, |y_s|²]`` of the objects ``a:b`` (a pick's)."""
        out = np.ascontiguousarray(-2.0 * self.y[:, a:b].T)
        out[:, -1] = self.yn[a:b]
        return out

    def lower(self, y: np.ndarray, yn: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``L`` (below) of the projected objects ``y`` (``(r + 1, n)`` columns of :attr:`y`, squared norms ``yn``): a
        lower bound of each one's distance to its nearest new object (:meth:`against`: ``s``)."""
        out: np.ndarray = np.sqrt(np.maximum(yn + ((s @ y).min(axis=0) - self.margin), 0.0)) - self.blur
        return out

    def may_get_nearer(self, start: int, cand: np.ndarray, d: np.ndarray, s: np.ndarray, slack: float) -> np.ndarray:
        """Which rows ``start + cand`` (distances ``d``) the new objects (:meth:`against`: ``s``) might bring nearer."""
        end = min(start + _BLOCK, len(self.yn))
        if 2 * len(cand) > end - start:  # (most of the block: multiplied whole, not gathered)
            low = self.lower(self.y[:, start:end], self.yn[start:end], s)[cand]
        else:
            low = self.lower(self.y[:, start + cand], self.yn[start + cand], s)
        out: np.ndarray = low - d < slack
        self.tally.append((len(cand), int(np.count_nonzero(out))))
        return out


def projection(x: np.ndarray, top: float) -> Projection | None:
    """The :class:`Projection` of the rows ``x`` (None below 8 x :data:`_PROJECTED` dimensions or 2 rows); ``top``:
    at least 1 and every squared norm. The directions: four rounds of subspace iteration (float32) on the
    covariance of at most ~8,000 evenly spaced rows (their quality only decides how many objects are ruled out)."""
    r, dim = _PROJECTED, x.shape[1]
    if dim < 8 * r or len(x) < 2:
        return None
    sample = x[:: max(1, len(x) // 4096)]
    sample = sample - sample.mean(axis=0)
    q = np.random.default_rng(0).normal(size=(dim, r)).astype(np.float32)
    y = np.ones((r + 1, len(x)), dtype=np.float32)
    with blas_one_thread():  # (BLAS' threads on a busy machine: a (1,280, 32) QR 0.39 s, one thread 1.6 ms)
        for _ in range(4):
            q = np.linalg.qr(sample.T @ (sample @ q))[0]
        q64 = q.astype(np.float64)
        q = (q64 / (math.sqrt(float(np.abs(q64.T @ q64).sum(axis=1).max())) * (1.0 + 1e-6))).astype(np.float32)
        for start in range(0, len(x), _BLOCK):
            y[:r, start : start + _BLOCK] = (x[start : start + _BLOCK] @ q).T
    gamma = (dim + 2) * 2.0**-24 / (1.0 - (dim + 2) * 2.0**-24)
    return Projection(y, squared_norms(y[:r].T), float32_margin(r + 1, top), 2.0 * math.sqrt(r * top) * gamma)


def may_get_nearer(d: np.ndarray, near: np.ndarray, s: np.ndarray, sn: np.ndarray,
                   centres: list[tuple[np.ndarray | slice, np.ndarray, np.ndarray]], ids: int, top: float,
                   margin_scale: float = 1.0, *, bottom: float = 0.0,
                   lower: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The rows whose distance ``d`` the new selected objects ``s`` might lower (a boolean mask; rows at ``d = 0``
    may be in it), and how many centres it multiplied: the triangle inequality on each row's nearest selected
    object, without a product of the rows, in chords and (rows near the unit sphere) in angles.

    :param near: per row, the id (``0 … ids - 1``) of the selected object its ``d`` is the distance to (-1: none,
        ``d`` = 2).
    :param sn: the squared norms of ``s``.
    :param centres: selected objects in parts, ``(their ids, float32 vectors, squared norms)``: every id in
        ``near`` must be in one (others may be: their bound is not used).
    :param top: at least 1 and every squared norm involved (the margin's ``M``).
    :param bottom: at most every squared norm involved (below ``(1 - 1e-3)²``: no angles).
    :param lower: ``(ids,)`` a cheaper lower bound of ``min_s |s - c|`` per id, up to 1e-15 (-inf where none; the
        picked objects' :meth:`Projection.lower`): the rule below with it as ``L(c)`` (the proof needs no more) leaves
        rows out first, and the product is computed only for the centres some row at ``d > 0`` is still kept for
        (gathered where at most half of a part), their ``L(c)`` taking its place for the rows it kept: late picks
        multiply a few of the many picked objects (35,000 objects of 1,280 dimensions, real image embeddings: 2,089
        of 10,000 at pick 2,000, 1,402 of 15,000 at pick 3,000).

    A row ``x`` nearest to ``c`` (its ``d`` is ``sqrt(max(v, 0))`` of a float64 evaluation ``v`` of the formula for
    ``(x, c)``) is left out when ``L(c) - 2 d >= slack`` (float64), ``L(c)`` a lower bound of ``min_s |s - c|``:
    ``L² = min|s|² + |c|² - 2 max_s fl32(s·c) - margin`` (:func:`float32_margin`: the float32 product's error,
    doubled; the doubling also covers the float64 rounding of ``L²``, so ``L <= |s - c|`` up to the square root's
    rounding).
    Then ``|x - c| <= sqrt(v + e) <= d + sqrt(e)`` (:func:`float64_slack`'s ``e``), so for every ``s``
    ``|x - s| >= |s - c| - |x - c| >= d + slack - sqrt(e) - 1e-15 >= d + sqrt(e) + 0.99e-6`` and the formula's value
    for ``(x, s)`` is ``>= |x - s|² - e >= d² + 0.98e-12``, above ``d²`` by more than the rounding of ``d²`` and of
    the square root (``d <= 2``): ``np.minimum`` would leave the row's ``d`` (and a strict ``<`` its ``near``)
    unchanged.

    Angles. On the unit sphere the angles obey the triangle inequality, which rules out more (a chord is concave
    in its angle): an ``s`` at more than twice the angle from ``c`` than ``x`` is farther from ``x`` than ``c``,
    i.e. ``|s - c| > 2 sin(2 asin(|x - c| / 2)) = 2 a sqrt(1 - a² / 4)`` at ``a = |x - c|`` (up to ``2 d`` at
    ``d = 0``, ``sqrt(3) d`` at ``d = 1``). Rows off the sphere by ``ε`` at most (``|v - v/|v|| = ||v| - 1| <= ε``,
    from ``top`` and ``bottom``; ~1e-7 for unit-normalised float32 rows): with ``a = d + slack / 2 + 2 ε`` (above
    the chord of ``x/|x|`` and ``c/|c|``, ``<= |x - c| + 2 ε <= d + sqrt(e) + 2 ε``, by 0.5e-6) and ``a² <= 2``, a row
    is left out too when ``L(c) >= 2 a sqrt(1 - a² / 4) + 2 ε + slack / 2``: the chord of ``c/|c|`` and ``s/|s|`` is
    ``>= L - 2 ε`` (up to 1e-15), above the chord ``2 sin α`` of twice the angle ``α = 2 asin(a / 2) <= π / 2``
    (chords grow with the angle up to ``π``), so the angle of ``s/|s|`` from ``x/|x|`` exceeds ``2α - α``, their
    chord exceeds ``a``, ``|x - s| > a - 2 ε = d + sqrt(e) + 0.5e-6`` and the formula's value for ``(x, s)`` is ``>=
    |x - s|² - e > d² + 0.25e-12``: as above. ``margin_scale`` scales ``margin`` and ``slack`` for the tests (too
    small a margin must change results where distances nearly tie).
    """
    margin = margin_scale * float32_margin(s.shape[1], top)
    slack = margin_scale * float64_slack(s.shape[1], top)
    gap = np.full(ids + 1, -np.inf)  # (the last: near = -1, never left out)
    eps = max(math.sqrt(top) - 1.0, 1.0 - math.sqrt(max(bottom, 0.0)))
    s32 = np.ascontiguousarray(s, np.float32)

    def kept(rows: np.ndarray | slice) -> np.ndarray:
        """Which of ``rows`` the gaps of their nearest selected objects cannot leave out (chords, then angles)."""
        dr, g = d[rows], gap[near[rows]]
        out: np.ndarray = g - 2.0 * dr < slack
        if eps < 1e-3:
            at = np.flatnonzero(out)  # (those the chords keep)
            a = dr[at] + (slack / 2.0 + 2.0 * eps)
            a2 = a * a
            angle = 2.0 * a * np.sqrt(np.maximum(1.0 - a2 / 4.0, 0.0)) + (2.0 * eps + slack / 2.0)
            out[at[(g[at] >= angle) & (a2 <= 2.0)]] = False
        return out

    def lower_gap(part: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``L`` of the centres ``c`` (squared norms ``cn``): a ``(len(c), k)`` float32 product (13-18 % faster than
        ``(k, len(c))`` in OpenBLAS at 256 and 1,280 dimensions, one thread), one pass."""
        c, cn = part
        l2 = cn + (float(sn.min()) - margin) - 2.0 * (c @ s32.T).max(axis=1)  # (<= min_s of each s' L²)
        out: np.ndarray = np.sqrt(np.maximum(l2, 0.0))
        return out

    need = None
    if lower is not None:
        gap[:ids] = lower
        out = kept(slice(None))
        need = np.zeros(ids + 1, dtype=bool)
        need[near[out & (d > 0.0)]] = True  # (-1: the last, not an id)
    multiplied = 0
    for at, c, cn in centres:
        if need is not None:  # (only the centres whose rows the cheaper bound keeps: gathered where at most half)
            pos = np.flatnonzero(need[at])
            if 2 * len(pos) <= len(cn):
                at = (np.arange(at.start, at.stop) if isinstance(at, slice) else at)[pos]
                c, cn = c[pos], cn[pos]
        multiplied += len(cn)
        if len(cn):
            threads = max(1, min(selection_threads(), c.size // MIN_WORK_PER_THREAD))
            with blas_one_thread():  # (BLAS' own threads, busy machine: 31.6 ms, one 6.5 ms; 35,000 x 1,280; our
                # threads on parts of the centres: 1.5x the wall time at 400 picks there, +2 % CPU)
                if threads == 1:
                    gap[at] = lower_gap((c, cn))
                else:  # (the centres split over the selection's threads)
                    cuts = even_shares(0, len(cn), threads)
                    gap[at] = np.concatenate(list(_pool(threads).map(lower_gap, [(c[a:b], cn[a:b]) for a, b in cuts])))
    if need is None:
        return kept(slice(None)), multiplied
    rows = np.flatnonzero(out)  # (the rows the cheaper bound kept: again with the products' gaps)
    out[rows] = kept(rows)
    return out, multiplied


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
        self.max_sqnorm = float(self.xn.max()) if len(self.xn) else 0.0
        self.measured_rows = 0  # object rows the picks measured: len(x) per pick of an image with objects
        self.exact_rows = 0  # of those, the rows computed in float64 (the float32 filter ruled the others out)
        self.bound_rows = 0  # of those, rows not at 0 the triangle-inequality bound ruled out (no product at all)
        self.bound_picks = 0  # picks that computed the bound
        self.bound_centres = 0  # selected objects the bound's float32 products multiplied, over its picks
        self.projected_picks = 0  # of its picks, those that bounded the picked objects by their projections first
        self.screen_rows = 0  # of those, rows not at 0 the projected screen ruled out (Projection)
        self.screen_picks = 0  # picks that screened
        # Per object, the id of the selected object its d is the distance to (-1: none): ids 0 … P-1 are the
        # preselected objects, P … the objects of the picks in pick order (rows self.picked_rows of x).
        self.near = np.full(len(objects.x), -1, dtype=np.int64)
        self.picked_rows = np.zeros(0, dtype=np.int64)
        self.picked_x = np.empty((0, objects.x.shape[1]), dtype=np.float32)  # (x[picked_rows], contiguous; grows 2x)
        self.pre_sqnorms = squared_norms(objects.pre)
        self.top = max(1.0, self.max_sqnorm, float(self.pre_sqnorms.max(initial=0.0)))  # (the bound's M)
        self.bottom = min(float(self.xn.min(initial=np.inf)), float(self.pre_sqnorms.min(initial=np.inf)))
        self._bound = _Backoff()  # (picks without the bound after one where it did not pay)
        self._screen = _Backoff()
        self._projected = _Backoff()  # (the bound's picks without the picked objects' projections)
        self.bound_margin_scale = 1.0  # (the tests: a too small margin must change results)
        self.projection = projection(objects.x, self.top)
        # (the picked objects' projected rows, Projection.y's columns x[picked_rows] as rows; grows with picked_x)
        self.picked_y = np.empty((0, 0 if self.projection is None else len(self.projection.y)), dtype=np.float32)
        # The preselected objects 256 at a time, by the picks' own path (the float32 filter, the formula for the
        # pairs in question): an object duplicating a preselected one gets the formula's value wherever it lies.
        for start in range(0, len(objects.pre) if len(objects.x) else 0, 256):
            lower_to_nearest(self.d, objects.x, objects.pre[start : start + 256], self.xn, self.max_sqnorm,
                             near=self.near, first=start)
        self.picked = 0

    def rms_distance(self) -> np.ndarray:
        """Per candidate image: the root mean square distance of its objects to the nearest selected object (0
        without)."""
        rms: np.ndarray = np.sqrt(_mean_per_owner(self.d * self.d, self.objects.owner, self.counts))
        return rms

    def objective(self) -> np.ndarray:
        return np.minimum(self.rms_distance() / 2.0, 1.0)

    def log_bonus(self) -> np.ndarray:
        """``strength · log(objective)`` per candidate, the objective floored at 1e-6."""
        bonus: np.ndarray = self.strength * np.log(np.maximum(self.objective(), EPS))
        return bonus

    def stops_before(self, i: int) -> bool:
        """Whether ``stopping_condition_minimum_distance`` stops the selection before picking ``i``."""
        if self.minimum_distance is None:
            return False
        a, b = self.starts[i], self.starts[i + 1]
        rms = math.sqrt(float((self.d[a:b] * self.d[a:b]).mean())) if b > a else 0.0
        return rms < self.minimum_distance

    def pick(self, i: int) -> None:
        """Candidate ``i`` was selected: its objects become selected objects."""
        a, b = self.starts[i], self.starts[i + 1]
        if b > a and len(self.d):
            ids = len(self.objects.pre) + len(self.picked_rows)
            against = self.projection.against(a, b) if ids and self.projection is not None else None
            keep = self._may_get_nearer(a, b, ids, against) if ids else None
            screen = None
            if self.projection is not None and against is not None and not self._screen.skip():  # (none: d at its cap)
                screen = (self.projection, against)
            self.exact_rows += lower_to_nearest(self.d, self.objects.x, self.objects.x[a:b], self.xn, self.max_sqnorm,
                                                keep=keep, near=self.near, first=ids, screen=screen)
            if screen is not None:
                self._screened(screen[0])
            self.measured_rows += len(self.d)
            n = len(self.picked_rows)
            self.picked_x = _appended(self.picked_x, n, self.objects.x[a:b])
            if self.projection is not None:
                self.picked_y = _appended(self.picked_y, n, self.projection.y[:, a:b].T)
            self.picked_rows = np.concatenate([self.picked_rows, np.arange(a, b)])
        self.picked += 1

    def _may_get_nearer(self, a: int, b: int, ids: int, against: np.ndarray | None) -> np.ndarray | None:
        """:func:`may_get_nearer` for the objects ``a:b`` of a pick, or None where it did not pay at a recent pick
        (:data:`BOUND_PAYS`: logged the first time, counted in the report); ``against``: their
        :meth:`Projection.against`, for the picked objects' projected bound (``lower``; its product, ``33·n``
        multiply-adds a new object, counted as ``33 / D`` rows of the bound's product)."""
        if self._bound.skip():
            return None
        pre, n_pre = self.objects.pre, len(self.objects.pre)
        lower, cheap = None, 0  # (cheap: the projected product's cost in rows of the product, 33 of D columns)
        if self.projection is not None and against is not None and not self._projected.skip():
            lower = np.full(ids, -np.inf)
            with blas_one_thread():  # (a (k, 33) by (33, n) product: BLAS' threads cost more than they give)
                lower[n_pre:] = self.projection.lower(self.picked_y[: ids - n_pre].T,
                                                      self.projection.yn[self.picked_rows], against)
            cheap = (ids - n_pre) * self.picked_y.shape[1] // self.objects.x.shape[1]
        # (every picked object, without a gather: nearly each is some object's nearest, its own; of the preselected
        # only those some object is nearest to)
        live = np.flatnonzero(np.bincount(self.near[self.near < n_pre] + 1, minlength=n_pre + 1)[1:])
        centres: list[tuple[np.ndarray | slice, np.ndarray, np.ndarray]] = [
            (live, pre[live], self.pre_sqnorms[live]),
            (slice(n_pre, ids), self.picked_x[: ids - n_pre], self.xn[self.picked_rows])]
        keep, multiplied = may_get_nearer(self.d, self.near, self.objects.x[a:b], self.xn[a:b], centres, ids, self.top,
                                          self.bound_margin_scale, bottom=self.bottom, lower=lower)
        ruled_out = int(np.count_nonzero(~keep & (self.d > 0.0)))  # (rows at 0 are never computed: not counted)
        self.bound_picks += 1
        self.bound_rows += ruled_out
        self.bound_centres += multiplied
        if lower is not None:  # (it pays where it spared a product: every object kept some selected one in question)
            self._projections_paid(multiplied < len(live) + ids - n_pre, ids)
        pays = ruled_out - multiplied - cheap >= BOUND_PAYS * len(keep)  # (its products: a row per centre)
        if not pays and not self._bound.failed:
            logger.info("object DIVERSITY: the triangle-inequality bound ruled out %d of %d objects at pick %d for a "
                        "product with %d selected objects (it pays from %d %% of the objects more): the next picks "
                        "measure every object, the bound is tried again every 2-%d picks (counted in the strategy's "
                        "report: bound_picks, unbounded_picks)", ruled_out, len(keep), self.picked + 1,
                        multiplied, round(100 * BOUND_PAYS), BOUND_MAX_GAP)
        self._bound.paid(pays)
        return keep

    def _projections_paid(self, spared: bool, ids: int) -> None:
        """Count a pick whose bound first bounded the picked objects by their projections, and whether that
        ``spared`` part of its product (logged the first time it did not, counted in the report)."""
        self.projected_picks += 1
        if not spared and not self._projected.failed:
            logger.info("object DIVERSITY: the picked objects' projections left every one of the %d selected objects "
                        "in question at pick %d (objects of many clusters: each keeps some nearest object in question): "
                        "the next picks' bound multiplies them all without, the projections are tried again every 2-%d "
                        "picks (counted in the strategy's report: projected_picks, unprojected_picks)", ids,
                        self.picked + 1, BOUND_MAX_GAP)
        self._projected.paid(spared)

    def _screened(self, projection: Projection) -> None:
        """Count what the projected screen ruled out at this pick (its blocks' tallies) and whether it paid
        (:data:`SCREEN_PAYS`: logged the first time it did not, counted in the report)."""
        screened, kept = (sum(t) for t in zip(*projection.tally, strict=True)) if projection.tally else (0, 0)
        projection.tally.clear()
        self.screen_picks += 1
        self.screen_rows += screened - kept
        pays = screened - kept >= SCREEN_PAYS * screened
        if not pays and not self._screen.failed:
            logger.info("object DIVERSITY: the projected screen ruled out %d of the %d objects it screened at pick %d "
                        "(it pays from %d %%): the next picks go without it, it is tried again every 2-%d picks "
                        "(counted in the strategy's report: screen_picks, unscreened_picks)", screened - kept,
                        screened, self.picked + 1, round(100 * SCREEN_PAYS), BOUND_MAX_GAP)
        self._screen.paid(pays)

    def report(self) -> dict[str, float | int]:
        return {
            "task": self.objects.task,  # type: ignore[dict-item]
            "objects": int(len(self.objects.x)),
            "preselected_objects": int(len(self.objects.pre)),
            "preselected_images_without_objects": int(self.objects.pre_without),
            "images_without_objects": int((self.counts == 0).sum()),
            "measured_rows": int(self.measured_rows),
            "exact_rows": int(self.exact_rows),  # (of measured_rows: computed in float64, lower_to_nearest)
            "bound_rows": int(self.bound_rows),  # (of measured_rows: ruled out without a product, may_get_nearer)
            "bound_picks": int(self.bound_picks),
            "bound_centres": int(self.bound_centres),  # (the selected objects its products multiplied, all picks)
            "projected_picks": int(self.projected_picks),  # (of bound_picks: the picked objects' projections first)
            "unprojected_picks": int(self._projected.skipped),  # (of bound_picks: they spared no product recently)
            "unbounded_picks": int(self._bound.skipped),  # (after the first: the bound did not pay recently)
            "screen_rows": int(self.screen_rows),  # (of measured_rows: ruled out by the projected screen, Projection)
            "screen_picks": int(self.screen_picks),
            "unscreened_picks": int(self._screen.skipped),  # (it did not pay at a recent pick)
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
                rms = 0.0
            else:
                total = 0.0
                for o in np.asarray(objs, np.float64):
                    d = min([2.0] + [float(np.sqrt(max(((o - s) ** 2).sum(), 0.0))) for s in selected])
                    total += min(d, 2.0) ** 2
                rms = float(np.sqrt(total / len(objs)))
            score = strength * np.log(max(min(rms / 2.0, 1.0), EPS))
            if score > best_score:
                best, best_score = i, score
        order.append(best)
        selected.extend(np.asarray(objects[best], np.float64))
    return order
