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

_SLACK = 1e-7  # distance units; covers float64 rounding of canonical values and block bounds


def spatial_blocks(x: np.ndarray, labels: np.ndarray, block: int, seed: int = 0) -> np.ndarray:
    """Order points into blocks of ``block`` nearby points of one label (a 2-pivot projection tree).

    Each label's points are split recursively at the median of their projection onto the direction between
    two far-apart points of the node, until a node fits in a block; every label is padded to whole blocks.

    :param x: (N, D) float32 points.
    :param labels: (N,) int labels (blocks never mix labels).
    :param block: block size.
    :returns: (n_blocks * block,) int64 positions into ``x``, -1 for padding.
    """
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for label in np.unique(labels):
        stack = [np.flatnonzero(labels == label)]
        leaves: list[np.ndarray] = []
        while stack:
            node = stack.pop()
            if len(node) <= block:
                leaves.append(node)
                continue
            pts = x[node]
            a = pts[int(rng.integers(len(node)))]
            b = pts[int(np.argmin(pts @ a))]
            c = pts[int(np.argmin(pts @ b))]
            proj = pts @ (b - c)
            n_left = -(-len(node) // 2 // block) * block or block
            part = np.argpartition(proj, n_left - 1) if n_left < len(node) else np.arange(len(node))
            stack.append(node[part[n_left:]])
            stack.append(node[part[:n_left]])
        for leaf in leaves:
            padded = np.full(block, -1, dtype=np.int64)
            padded[: len(leaf)] = np.sort(leaf)
            out.append(padded)
    if not out:
        return np.empty(0, dtype=np.int64)
    return np.concatenate(out)


class GreedyState:
    """Nearest-selected distances of all candidates, kept exact under insertions of new selected vectors.

    Points are stored in blocks of ``block`` spatially close points of one label (:func:`spatial_blocks`),
    each with a bounding ball. Inserting a selected vector ``p`` visits only blocks whose ball could hold a
    point closer to ``p`` than its current nearest selected sample (``d(b, p) - R_b < max d_min`` in the
    block); inside those, float32 BLAS distances with a proven error bound (:func:`float32_margin`) rule
    out most points and the rest get canonical distances (:func:`canonical_d2`).

    :param x: (N, D) float32 candidate embeddings.
    :param key: maps squared distances (and original indices) of points to the value the greedy maximises.
    :param labels: optional int label per point in ``[0, n_labels)``; blocks never mix labels, so
        :meth:`best` can add a per-label bonus (BALANCE) exactly.
    :param n_labels: number of labels.
    :param block: points per block.
    """

    def __init__(
        self,
        x: np.ndarray,
        key: KeyFunction,
        labels: np.ndarray | None = None,
        n_labels: int = 1,
        block: int = 32,
    ) -> None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        n, dim = x.shape
        self.n = n
        self.dim = dim
        self.block = block
        self.key_fn = key
        labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        self.n_labels = max(int(n_labels), 1)
        order = spatial_blocks(x, labels, block)
        alive = order >= 0
        self.orig = np.where(alive, order, n)  # original index per slot; n = padding
        self.pos = np.empty(n, dtype=np.int64)
        self.pos[order[alive]] = np.flatnonzero(alive)
        nb = len(order) // block
        self.n_blocks = nb
        self.x = np.zeros((len(order), dim), dtype=np.float32)
        self.x[alive] = x[order[alive]]
        del x
        self.x3 = self.x.reshape(nb, block, dim)
        self.sqn = canonical_sqnorms(self.x)
        self.sqn_b = self.sqn.reshape(nb, block)
        self.max_sqnorm = float(self.sqn.max()) if n else 1.0
        self.block_label = labels[order[::block]] if nb else np.zeros(0, dtype=np.int64)
        # Bounding balls: centroid of live points, radius = largest distance to it (float64 + slack).
        cnt = alive.reshape(nb, block).sum(axis=1)
        cent = self.x3.astype(np.float64).sum(axis=1) / np.maximum(cnt, 1)[:, None]
        diff = self.x3.astype(np.float64) - cent[:, None, :]
        rad = np.sqrt((diff * diff).sum(axis=2))
        rad[~alive.reshape(nb, block)] = 0.0
        self.centre_b = cent
        self.centre_sqn_b = (cent * cent).sum(axis=1)
        self.radius_b = rad.max(axis=1) * (1 + 1e-9) + _SLACK
        del diff, rad, cent
        self.d2 = np.where(alive, np.inf, -1.0)
        self.d2_b = self.d2.reshape(nb, block)
        self.key = np.full(len(order), -np.inf)
        self.key[alive] = key(self.d2[alive], self.orig[alive])
        self.key_b = self.key.reshape(nb, block)
        self.orig_b = self.orig.reshape(nb, block)
        self.maxd2_b = np.empty(nb)
        self.best_key_b = np.empty(nb)
        self.best_idx_b = np.empty(nb, dtype=np.int64)
        self._refresh(np.arange(nb))
        self.points_visited = 0
        self.points_recomputed = 0

    def _refresh(self, blocks: np.ndarray) -> None:
        self.maxd2_b[blocks] = self.d2_b[blocks].max(axis=1)
        kb = self.key_b[blocks]
        top = kb.max(axis=1)
        tied = (kb == top[:, None]) & (self.orig_b[blocks] < self.n)
        self.best_key_b[blocks] = top
        self.best_idx_b[blocks] = np.where(tied, self.orig_b[blocks], self.n).min(axis=1)

    def best(self, label_bonus: np.ndarray | None = None) -> tuple[int, float]:
        """The next pick: largest ``key (+ label_bonus[label])``, lowest original index on ties.

        :returns: (original index, value), or (-1, -inf) when no unselected point is left.
        """
        keys = self.best_key_b
        if label_bonus is not None:
            keys = keys + label_bonus[self.block_label]
        alive = self.best_idx_b < self.n
        if not alive.any():
            return -1, -np.inf
        keys = np.where(alive, keys, -np.inf)
        top = keys.max()
        if np.isneginf(top):
            return int(self.best_idx_b[alive].min()), float(top)
        return int(self.best_idx_b[keys == top].min()), float(top)

    def distance2(self, i: int) -> float:
        """Canonical squared distance of original point ``i`` to its nearest selected vector."""
        return float(self.d2[self.pos[i]])

    def select(self, i: int) -> None:
        """Mark original point ``i`` selected and update every distance it improves."""
        slot = int(self.pos[i])
        vec = self.x[slot].copy()
        self.d2[slot] = -1.0
        self.key[slot] = -np.inf
        self._refresh(np.array([slot // self.block]))
        self.insert(vec, float(self.sqn[slot]))

    def insert(self, vec: np.ndarray, sqn: float | None = None) -> None:
        """Add a selected vector (a pick or a preselected sample).

        :param vec: (D,) float32 vector.
        :param sqn: its canonical squared norm (computed when omitted).
        """
        vec = np.ascontiguousarray(vec, dtype=np.float32)
        if sqn is None:
            sqn = float(canonical_sqnorms(vec[None, :])[0])
        if self.n_blocks == 0:
            return
        v64 = vec.astype(np.float64)
        db = np.sqrt(np.maximum(self.centre_sqn_b + (v64 @ v64) - 2.0 * (self.centre_b @ v64), 0.0))
        reach = np.sqrt(np.maximum(self.maxd2_b, 0.0))
        vis = np.flatnonzero((self.maxd2_b >= 0) & (db - self.radius_b - _SLACK < reach))
        if not len(vis):
            return
        full = len(vis) == self.n_blocks
        xv = self.x3 if full else self.x3[vis]
        approx = (self.sqn_b if full else self.sqn_b[vis]) + sqn
        approx -= 2.0 * (xv @ vec)
        d2v = self.d2_b if full else self.d2_b[vis]
        margin = float32_margin(self.dim, max(self.max_sqnorm, sqn))
        cand_mask = approx - margin < d2v
        self.points_visited += len(vis) * self.block
        if not cand_mask.any():
            return
        rows, cols = np.nonzero(cand_mask)
        slots = (rows if full else vis[rows]) * self.block + cols
        self.points_recomputed += len(slots)
        exact = canonical_d2(self.x[slots], self.sqn[slots], vec, sqn)
        better = exact < self.d2[slots]
        upd = slots[better]
        if not len(upd):
            return
        self.d2[upd] = exact[better]
        self.key[upd] = self.key_fn(self.d2[upd], self.orig[upd])
        self._refresh(np.unique(upd // self.block))


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
        d = float(np.sqrt(state.distance2(i)))
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
