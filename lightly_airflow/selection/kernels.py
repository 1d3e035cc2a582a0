"""Exact greedy farthest-point selection without N×N or k×N matrices.

The engine keeps, for every candidate, the squared distance ``d2`` to its nearest selected sample (the
preselected pool included) and the *group* it belongs to: the points sharing one nearest selected sample
(optionally split further by a class label, see :class:`GreedyState`). When a new sample ``p`` is selected
only points that can possibly move closer to ``p`` are touched:

* a whole group with centre ``c`` and radius ``r`` (largest member distance) is skipped when
  ``d(c, p) >= 2 r``: by the triangle inequality ``d(x, p) >= d(c, p) - d(x, c) >= r >= d(x, c)``;
* inside a visited group a point ``x`` is skipped when ``d(c, p) >= 2 d(x, c)`` (same argument per point);
* the remaining points get a float32 BLAS distance with a proven error bound (:func:`float32_margin`); only
  those whose bound does not exclude an improvement are recomputed with :func:`canonical_d2`.

Every value the selection compares is therefore a *canonical* distance: float64, accumulated dimension by
dimension in a fixed order, so the value for a pair depends only on the two vectors, not on which block or
batch computed it. The slow reference in the tests uses the same formula on all points, which is why the
fast selection is identical, ties included (lowest index wins).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

_U32 = 2.0**-24  # unit roundoff of float32


def canonical_dot(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Dot products of float32 ``rows`` (m×D) with ``q`` in float64, summed over dimensions in order.

    The products of two float32 values are exact in float64 and the sum runs ``0, 1, …, D-1`` for every row,
    so a row's result depends only on that row and ``q`` (never on BLAS blocking or the batch it came in).

    :param rows: (m, D) float32 array.
    :param q: (D,) float32 vector.
    """
    cols = np.ascontiguousarray(rows.T, dtype=np.float64)
    q64 = q.astype(np.float64)
    acc = cols[0] * q64[0]
    for j in range(1, cols.shape[0]):
        acc += cols[j] * q64[j]
    return acc


def canonical_sqnorms(x: np.ndarray, block: int = 65536) -> np.ndarray:
    """Canonical squared norms ``canonical_dot(x_i, x_i)`` of every row of ``x`` (computed blockwise)."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], block):
        cols = np.ascontiguousarray(x[start : start + block].T, dtype=np.float64)
        acc = cols[0] * cols[0]
        for j in range(1, cols.shape[0]):
            acc += cols[j] * cols[j]
        out[start : start + block] = acc
    return out


def canonical_d2(rows: np.ndarray, row_sqnorms: np.ndarray, q: np.ndarray, q_sqnorm: float) -> np.ndarray:
    """Canonical squared Euclidean distances ``max(|x|² + |q|² - 2 x·q, 0)`` in float64.

    :param rows: (m, D) float32 points.
    :param row_sqnorms: their canonical squared norms.
    :param q: (D,) float32 query point.
    :param q_sqnorm: its canonical squared norm.
    """
    d2 = (row_sqnorms + q_sqnorm) - 2.0 * canonical_dot(rows, q)
    np.maximum(d2, 0.0, out=d2)
    return d2


def float32_margin(dim: int, max_sqnorm: float) -> float:
    """A bound on ``|approx - canonical|`` for squared distances whose dot product came from float32 BLAS.

    Any summation order (with or without FMA) of ``D`` float32 products has error at most
    ``γ_D Σ|x_j q_j| <= γ_D |x||q|`` with ``γ_D = D u / (1 - D u)``; the squared distance uses ``2 x·q``.
    The canonical float64 value is within ~1e-15 of the exact one. We double the bound for safety.

    :param dim: embedding dimension D.
    :param max_sqnorm: the largest squared norm of any vector involved.
    """
    gamma = dim * _U32 / (1.0 - dim * _U32)
    return 2.0 * (2.0 * gamma * max_sqnorm) + 1e-12


KeyFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``key(d2, indices) -> float64 keys``: the greedy objective of points given their squared distances."""


class GreedyState:
    """Nearest-selected distances of all candidates, kept exact under insertions of new centres.

    :param x: (N, D) float32 C-contiguous candidate embeddings (not copied).
    :param key: maps squared distances of points (and their indices) to the value the greedy maximises;
        must be non-decreasing in ``d2`` only when ``key_is_d2`` is used for bounds (it is not required for
        correctness: group maxima are recomputed exactly).
    :param labels: optional int class label per point (groups are split by label so the best point of a
        (centre, label) group is the best of that label there); ``None`` = one label.
    :param n_labels: number of distinct labels.
    """

    def __init__(
        self,
        x: np.ndarray,
        key: KeyFunction,
        labels: np.ndarray | None = None,
        n_labels: int = 1,
    ) -> None:
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            raise ValueError("GreedyState needs a C-contiguous float32 embedding matrix.")
        n, dim = x.shape
        self.x = x
        self.n = n
        self.dim = dim
        self.sqn = canonical_sqnorms(x)
        self.key_fn = key
        self.labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        self.n_labels = max(int(n_labels), 1)
        self.d2 = np.full(n, np.inf, dtype=np.float64)
        self.key = key(self.d2, np.arange(n))
        self.selected = np.zeros(n, dtype=bool)
        self.group_of = np.empty(n, dtype=np.int64)
        self.max_sqnorm = float(self.sqn.max()) if n else 1.0
        # Centres (selected or preselected vectors); groups refer to a centre row or -1 (no centre yet).
        self._centres = np.empty((16, dim), dtype=np.float32)
        self._centre_sqn = np.empty(16, dtype=np.float64)
        self.n_centres = 0
        self.members: list[np.ndarray] = []
        self._g_centre = np.empty(64, dtype=np.int64)
        self._g_label = np.empty(64, dtype=np.int64)
        self._g_radius2 = np.empty(64, dtype=np.float64)
        self._g_best_key = np.empty(64, dtype=np.float64)
        self._g_best_idx = np.empty(64, dtype=np.int64)
        self.points_visited = 0
        self.points_recomputed = 0
        all_idx = np.arange(n, dtype=np.int64)
        for label in range(self.n_labels):
            members = all_idx[self.labels == label]
            if len(members):
                self._new_group(-1, label, members)

    # -- groups -----------------------------------------------------------------------------------------
    def _new_group(self, centre: int, label: int, members: np.ndarray) -> None:
        g = len(self.members)
        if g == len(self._g_centre):
            for name in ("_g_centre", "_g_label", "_g_radius2", "_g_best_key", "_g_best_idx"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.empty_like(arr)]))
        self.members.append(members)
        self._g_centre[g] = centre
        self._g_label[g] = label
        self.group_of[members] = g
        self._refresh(g)

    def _refresh(self, g: int) -> None:
        m = self.members[g]
        if len(m) == 0:
            self._g_radius2[g] = -1.0
            self._g_best_key[g] = -np.inf
            self._g_best_idx[g] = -1
            return
        self._g_radius2[g] = self.d2[m].max()
        k = self.key[m]
        j = int(k.argmax())  # first maximum; members are kept in increasing index order
        self._g_best_key[g] = k[j]
        self._g_best_idx[g] = m[j]

    def _add_centre(self, vec: np.ndarray, sqn: float) -> int:
        if self.n_centres == len(self._centres):
            grow = len(self._centres) * 2
            self._centres = np.concatenate([self._centres, np.empty_like(self._centres)])[:grow]
            self._centre_sqn = np.concatenate([self._centre_sqn, np.empty_like(self._centre_sqn)])[:grow]
        c = self.n_centres
        self._centres[c] = vec
        self._centre_sqn[c] = sqn
        self.n_centres += 1
        return c

    # -- public -------------------------------------------------------------------------------------------
    def best(self, label_bonus: np.ndarray | None = None) -> tuple[int, float]:
        """The next pick: the point with the largest ``key (+ label_bonus[label])``, lowest index on ties.

        :returns: (index, value), or (-1, -inf) when no unselected point is left.
        """
        ng = len(self.members)
        keys = self._g_best_key[:ng]
        idx = self._g_best_idx[:ng]
        alive = idx >= 0
        if not alive.any():
            return -1, -np.inf
        if label_bonus is not None:
            keys = keys + label_bonus[self._g_label[:ng]]
        keys = np.where(alive, keys, -np.inf)
        top = keys.max()
        tied = (keys == top) & alive
        return int(idx[tied].min()), float(top)

    def select(self, i: int) -> None:
        """Mark candidate ``i`` selected and make it a centre (distances of all others updated)."""
        g = int(self.group_of[i])
        self.selected[i] = True
        self.members[g] = self.members[g][self.members[g] != i]
        self._refresh(g)
        self.d2[i] = 0.0
        self.key[i] = -np.inf
        self.insert(self.x[i], float(self.sqn[i]))

    def insert(self, vec: np.ndarray, sqn: float | None = None) -> None:
        """Add a selected vector (a pick or a preselected sample) and update every distance it improves.

        :param vec: (D,) float32 vector.
        :param sqn: its canonical squared norm (computed when omitted).
        """
        vec = np.ascontiguousarray(vec, dtype=np.float32)
        if sqn is None:
            sqn = float(canonical_sqnorms(vec[None, :])[0])
        margin = float32_margin(self.dim, max(self.max_sqnorm, sqn))
        n_groups = len(self.members)
        g_centre = self._g_centre[:n_groups]
        radius2 = self._g_radius2[:n_groups]
        # Lower bound of d(c, p) per group (0 for groups without centre).
        lower = np.zeros(n_groups, dtype=np.float64)
        has_c = g_centre >= 0
        if self.n_centres:
            approx_c = self._centre_sqn[: self.n_centres] + sqn - 2.0 * (
                self._centres[: self.n_centres] @ vec
            ).astype(np.float64)
            lower_c = np.sqrt(np.maximum(approx_c - margin, 0.0))
            lower[has_c] = lower_c[g_centre[has_c]]
        # Visit groups that could contain a point closer to p: d(c, p) < 2 r (slack for float64 rounding).
        radius = np.sqrt(np.maximum(radius2, 0.0)) * (1 + 1e-12) + 1e-12
        visit = np.flatnonzero((radius2 >= 0) & (lower < 2.0 * radius))
        parts = []
        for g in visit:
            m = self.members[g]
            lg = lower[g]
            if lg > 0.0:
                m = m[4.0 * self.d2[m] * (1 + 1e-12) + 1e-12 > lg * lg]
            if len(m):
                parts.append(m)
        c = self._add_centre(vec, sqn)
        if not parts:
            return
        pts = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.points_visited += len(pts)
        approx = (self.sqn[pts] + sqn) - 2.0 * (self.x[pts] @ vec).astype(np.float64)
        cand = pts[approx - margin < self.d2[pts]]
        if not len(cand):
            return
        self.points_recomputed += len(cand)
        exact = canonical_d2(self.x[cand], self.sqn[cand], vec, sqn)
        better = exact < self.d2[cand]
        moved = cand[better]
        if not len(moved):
            return
        order = np.argsort(moved, kind="stable")
        moved = moved[order]
        self.d2[moved] = exact[better][order]
        self.key[moved] = self.key_fn(self.d2[moved], moved)
        old_groups = np.unique(self.group_of[moved])
        moved_labels = self.labels[moved]
        for label in np.unique(moved_labels):
            self._new_group(c, int(label), moved[moved_labels == label])
        for g in old_groups:
            m = self.members[g]
            self.members[g] = m[self.group_of[m] == g]
            self._refresh(int(g))


def farthest_point_order(
    x: np.ndarray,
    n: int,
    *,
    preselected: np.ndarray | None = None,
    min_distance: float | None = None,
    progress_every: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Exact greedy farthest-point (k-center) order, lowest index on ties.

    :param x: (N, D) float32 C-contiguous candidates.
    :param n: number of picks wanted.
    :param preselected: (P, D) float32 vectors that count as already selected.
    :param min_distance: stop before a pick whose distance to the nearest selected is below this.
    :returns: (indices in pick order, distance of each pick to the nearest earlier-selected, stop reason).
    """
    state = GreedyState(x, key=lambda d2, idx: d2)
    if preselected is not None:
        for row in np.ascontiguousarray(preselected, dtype=np.float32):
            state.insert(row)
    picks: list[int] = []
    dists: list[float] = []
    reason = "n_reached"
    last_log = time.monotonic()
    while len(picks) < n:
        i, _ = state.best()
        if i < 0:
            reason = "no_candidates_left"
            break
        d = float(np.sqrt(state.d2[i]))
        if min_distance is not None and d < min_distance:
            reason = "minimum_distance"
            break
        picks.append(i)
        dists.append(d)
        state.select(i)
        if time.monotonic() - last_log > progress_every:
            last_log = time.monotonic()
            logger.info("farthest-point: %d/%d picks, current distance %.4f", len(picks), n, d)
    return np.asarray(picks, dtype=np.int64), np.asarray(dists, dtype=np.float64), reason
