"""Exact k-means (TypiClust's clusters, :func:`~lightly_airflow.selection.objectives.typiclust`): k-means++ seeding
(``numpy.random.default_rng(seed)``, seed None = 0), then Lloyd iterations until no label changes; the labels are the
plain formulas' bits, with most distances proven unneeded and not computed.

In float64, the rows converted a block at a time into a buffer per thread, the blocks of a pass split over the
selection threads (4 blocks a thread at least; memory: the buffers, a (block x k) distance block a thread and a few
n-vectors, while seeding (and in the Lloyd passes from :data:`KMEANS_CANDIDATES_MIN_CLUSTERS` clusters) the lifted
vectors, (r + 1) float32 a row: 0.1x the rows at 1,280 dimensions; no float64 copy of the rows: 2x the float32 rows).
ε = (D + 8) 2⁻⁵⁰ max|x|² is twice the rounding of a computed squared distance. Where each step's proof is:
:meth:`_KMeans.seed_rows` (the seeding), :meth:`_KMeans.assign` and :meth:`_KMeans.check` (the Lloyd passes),
:func:`_mean_rows` (the centres).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lightly_airflow.selection.arrays import squared_norms
from lightly_airflow.selection.kernels import (
    MIN_WORK_PER_THREAD,
    PROJECTION_MIN_DIM,
    PROJECTION_MIN_ROWS,
    PROJECTION_RANK,
    LiftedProjection,
    blas_one_thread,
    on_threads,
    selection_threads,
)

logger = logging.getLogger(__name__)

KMEANS_BLOCK = 1024
"""Rows of :func:`kmeans`' float64 block (10 MiB at 1,280 dimensions): the rows are converted a block at a time, never
copied whole to float64."""
KMEANS_PROJECTION_MIN_CLUSTERS = 64
"""Clusters from which :func:`kmeans`' seeding screens rows with a :class:`LiftedProjection` (wide and tall rows
only, as the dense selection: ``PROJECTION_MIN_DIM``, ``PROJECTION_MIN_ROWS``): its basis and lift cost about as
much as 50 seeds' distances on 8,000 x 1,280 real-image embeddings (measured break-even; seeding 100 clusters 0.77
-> 0.47-0.63 s, 1,000 5.2 -> 1.2-1.7 s, one thread, busy machine). Its margins grow with the rows' norms: on rows
far from the origin next to their spread (norms 200x their distances) it computed every distance, the triangle
rule 92% (synthetic, 2,048 x 256, 100 clusters)."""
KMEANS_CANDIDATES_MIN_CLUSTERS = 200
"""Clusters from which :func:`kmeans`' Lloyd passes keep the seeding's lifted vectors (its distances to a row's
lifted candidates, its bounds unwidened: see there); fewer clusters free them and widen Hamerly's bounds. The Lloyd
passes' CPU time on 8,000 x 1,280 real-image embeddings, 2 threads, busy machine: 1,000 clusters 5.1 -> 1.3 s, 200
1.7 -> 1.0 s; at 100 as often slower as faster (1.4 -> 1.0 s, over 6,900 rows 1.8 -> 2.4 s; 100 synthetic clusters
0.5 -> 0.6 s)."""

Screen = tuple[LiftedProjection, np.ndarray, np.ndarray, np.ndarray]
"""A :class:`LiftedProjection` and every row's lifted vector z, its squared norm and its error bound e."""


@dataclass
class RowPool:
    """The rows of k-means and TypiClust: ``x[rows]`` (all of ``x`` without ``rows``), then ``pre`` (cast to ``x``'s
    dtype), read a block or a gather at a time: no concatenated or float64 copy of the whole."""

    x: np.ndarray
    rows: np.ndarray | None = None
    pre: np.ndarray | None = None

    @property
    def n_x(self) -> int:
        return len(self.x) if self.rows is None else len(self.rows)

    def __len__(self) -> int:
        return self.n_x + (0 if self.pre is None else len(self.pre))

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (ascending) in ``x``'s dtype."""
        cut = int(np.searchsorted(idx, self.n_x))
        out = np.empty((len(idx), self.x.shape[1]), dtype=self.x.dtype)
        np.take(self.x, idx[:cut] if self.rows is None else self.rows[idx[:cut]], axis=0, out=out[:cut],
                mode="clip")  # (valid indices; "raise" copies through a buffer: 2x the time)
        if cut < len(idx):
            out[cut:] = self.pre[idx[cut:] - self.n_x]  # type: ignore[index]
        return out

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (a view where they are contiguous rows of ``x``)."""
        if self.rows is None and stop <= self.n_x:
            return self.x[start:stop]
        return self.take(np.arange(start, stop))

    def sqnorms(self) -> np.ndarray:
        """``arrays.squared_norms`` of every row."""
        sq = squared_norms(self.x, rows=self.rows)
        return sq if self.pre is None else np.concatenate([sq, squared_norms(self.pre.astype(self.x.dtype))])

    def lifted(self, sq: np.ndarray) -> Screen | None:
        """A :class:`LiftedProjection` of ``x`` (rank ``min(PROJECTION_RANK, D // 4)``) and every row's lifted
        vector, its squared norm and error bound (``sq``: :meth:`sqnorms`); None, logged, when its basis is not
        orthonormal enough."""
        with blas_one_thread():  # (LAPACK's threads on a busy machine: 10x slower)
            proj = LiftedProjection(self.x, sq if self.rows is None and self.pre is None else squared_norms(self.x),
                                    min(PROJECTION_RANK, self.x.shape[1] // 4),
                                    threads=max(1, min(selection_threads(), self.x.size // MIN_WORK_PER_THREAD)))
            if not proj.ok:
                logger.warning("k-means: projection basis not orthonormal enough; the seeding computes more distances")
                return None
            z, eps = (proj.z, proj.eps) if self.rows is None else (proj.z[self.rows], proj.eps[self.rows])
            if self.pre is not None:
                zp, ep = proj.lift(self.pre.astype(self.x.dtype), sq[self.n_x :])
                z, eps = np.concatenate([z, zp]), np.concatenate([eps, ep])
        return proj, z, np.einsum("ij,ij->i", z, z, dtype=np.float64), eps


def _mean_rows(pool: RowPool, idx: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """``pool.take(idx)`` in float64, ``.mean(axis=0)``, a chunk of ``len(buf) - 1`` rows at a time in ``buf``: the
    same bits (numpy sums the rows in order, so each chunk continues the sum from the previous chunks' sum, its first
    row; the sum starts at -0.0, which adds nothing to any value). An in-pass sum per block, ``numpy.add.at`` or a
    scatter of the block by label, was slower."""
    total = np.full(buf.shape[1], -0.0)
    step = len(buf) - 1
    for start in range(0, len(idx), step):
        part = idx[start : start + step]
        buf[0] = total
        buf[1 : len(part) + 1] = pool.take(part)
        np.add.reduce(buf[: len(part) + 1], axis=0, out=total)
    out: np.ndarray = total / len(idx)
    return out


def kmeans(x: np.ndarray, k: int, seed: int | None, iterations: int = 100, rows: np.ndarray | None = None,
           pre: np.ndarray | None = None, block: int = KMEANS_BLOCK) -> np.ndarray:
    """Cluster label per row of ``x[rows]`` then ``pre`` (:class:`RowPool`): k-means++ seeding
    (``numpy.random.default_rng(seed)``, seed None = 0), then Lloyd iterations until no label changes (at most
    ``iterations``); ties go to the lower cluster index. An empty cluster keeps its centre. Deterministic given
    ``seed``: the labels of the formulas written over the float64 rows (the seeding's dot products each row's own
    ``einsum`` sum; a Lloyd pass' the BLAS product of ``block`` rows by the centres), in any block and on any threads
    (the module's docstring). Debug lines count the distances computed."""
    return _KMeans(RowPool(x, rows, pre), k, block).run(seed, iterations)


class _KMeans:
    """One k-means run's state: the rows, the centres, each row's bounds and the per-thread buffers."""

    def __init__(self, pool: RowPool, k: int, block: int) -> None:
        self.pool = pool
        n = self.n = len(pool)
        self.k = k = max(1, min(k, n))
        dim = pool.x.shape[1]
        self.sq = pool.sqnorms()
        self.width = width = min(block, n)  # (rows of a product: all of them when they fit one block)
        self.n_blocks = n_blocks = len(range(0, n, width))
        threads = max(1, min(selection_threads(), n_blocks // 4))  # (each thread 4 blocks at least)
        # (a block and its distances per thread)
        self.buffers = [(np.zeros((max(width, 2), dim)), np.empty((width, k))) for _ in range(threads)]
        self.centres = np.empty((k, dim))
        self.csq = np.empty(k)  # (the centres' squared norms, each pass)
        self.rel = (dim + 8) * 2.0**-50  # (8x the relative rounding of a dot product or norm in float64)
        top_sq = float(self.sq.max(initial=0.0))
        self.slack = self.rel * top_sq  # (ε: 2x the rounding of a computed squared distance)
        self.top = max(1.0, top_sq)  # (the lifted bound's M: every squared norm, and 1)
        self.screen: Screen | None = (
            pool.lifted(self.sq) if k >= KMEANS_PROJECTION_MIN_CLUSTERS and n >= PROJECTION_MIN_ROWS
            and dim >= PROJECTION_MIN_DIM else None)
        self.d2 = np.full(n, np.inf)  # (seeding: squared distance to the nearest centre so far; then ``upper``)
        self.near = np.zeros(n, dtype=np.intp)  # (the centre whose distance d2 is)
        self.picked = np.zeros(k, dtype=np.intp)
        self.computed = np.zeros(n_blocks, dtype=np.int64)  # (row distances computed, per block)
        self.candidates = np.zeros(n_blocks, dtype=np.int64)  # (lifted candidates' distances, per block)
        self.full = np.zeros(n_blocks, dtype=np.int64)  # (rows given every centre's distance, per block)
        self.labels = np.full(n, -1)
        self.changed = np.zeros(n_blocks, dtype=bool)
        # The Lloyd passes' state (:meth:`run`): |x - own centre| <= upper, |x - any other| >= lower; the rows in
        # question (``todo``), those kept (``kept``, ``keep``) and the centres the last pass moved (``moved``,
        # ``moving``); the centres' lifted vectors, their squared norms and largest error bound (``lifted``).
        self.upper = self.lower = self.d2
        self.todo = self.kept = self.keep = self.moving = np.empty(0, dtype=np.intp)
        self.moved = np.ones(k, dtype=bool)
        self.lifted: tuple[np.ndarray, np.ndarray, float] = (np.empty(0), np.empty(0), 0.0)

    def each_block(self, fn: Callable[[int, int, np.ndarray, np.ndarray], None], over: int) -> None:
        """``fn(start, stop, rows, dist)`` for every block of ``width`` of ``range(over)`` with a thread's buffers
        (``rows``: ``width`` float64 rows, for the block's rows converted there); the blocks split over the
        selection threads, each writing its own rows' entries."""
        width = self.width
        on_threads(lambda start, buf: fn(start, min(start + width, over), *buf), range(0, over, width), self.buffers)

    def load(self, idx: np.ndarray, rows: np.ndarray) -> None:
        """Rows ``idx`` (ascending) converted into ``rows``: in place when they are contiguous, else gathered 256
        at a time (a small float32 copy)."""
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1:
            rows[: len(idx)] = self.pool.block(int(idx[0]), int(idx[-1]) + 1)
            return
        for at in range(0, len(idx), 256):
            rows[at : at + 256][: len(idx) - at] = self.pool.take(idx[at : at + 256])

    def run(self, seed: int | None, iterations: int) -> np.ndarray:
        """The seeding, then the Lloyd passes; the labels."""
        self.seed(np.random.default_rng(0 if seed is None else seed))
        n, k = self.n, self.k
        if self.screen is None or k < KMEANS_CANDIDATES_MIN_CLUSTERS:  # (else ``near`` is each row's own centre)
            self.near, self.screen = np.empty(0, dtype=np.intp), None  # (freed)
        self.upper, self.lower = self.d2, np.zeros(n)
        self.upper.fill(np.inf)  # (every row computed at first)
        self.computed[:] = 0  # (rows whose distances a Lloyd pass computed)
        passes = 0
        for _ in range(iterations):
            passes += 1
            if not self.lloyd_pass():
                break
            shift = self.move_centres()
            if self.screen is None:  # (Hamerly's bounds widened by the centres' moves)
                self.upper += shift[self.labels]
                self.upper *= 1.0 + self.rel
                np.maximum((self.lower - shift.max()) * (1.0 - self.rel), 0.0, out=self.lower)
        logger.debug("k-means Lloyd passes: %d over %d rows: %d rows' distances computed of %d (the others' labels "
                     "provably kept): %d to every centre, the others' to their own and %d other lifted candidates",
                     passes, n, int(self.computed.sum()), passes * n, int(self.full.sum()),
                     int(self.candidates.sum()))
        return self.labels

    # -- the seeding ---------------------------------------------------------------------------------------------

    def seed(self, rng: np.random.Generator) -> None:
        """k-means++: the first centre uniform, each next one drawn with probability d2 / sum(d2)."""
        n = self.n
        self.add_centre(0, int(rng.integers(n)))
        for c in range(1, self.k):
            total = float(self.d2.sum())
            self.add_centre(c, int(rng.choice(n, p=self.d2 / total)) if total > 0 else int(rng.integers(n)))
        logger.debug("k-means++ seeding of %d clusters over %d rows: %d row distances computed of %d (the others "
                     "provably unchanged)", self.k, n, int(self.computed.sum()), n * self.k)

    def add_centre(self, c: int, i: int) -> None:
        """Row ``i`` becomes centre ``c``; every row's d2 and nearest centre updated (:meth:`seed_rows`)."""
        self.centres[c], self.picked[c] = self.pool.take(np.array([i]))[0], i
        gap = None
        if self.screen is None:  # (|c - c_j|²: only the skip reads it; einsum, not BLAS: its threads would spin
            # between the passes)
            gap = self.sq[self.picked[:c]] - 2.0 * np.einsum("ij,j->i", self.centres[:c], self.centres[c]) + self.sq[i]
        self.each_block(lambda start, stop, rows, dist: self.seed_rows(c, i, gap, start, stop, rows), self.n)

    def seed_rows(self, c: int, i: int, gap: np.ndarray | None, start: int, stop: int, rows: np.ndarray) -> None:
        """Rows ``start:stop``' squared distance to the new centre c (row ``i``): ``max((|x|² - 2 einsum(x, c)) +
        |c|², 0)`` (the dot product by ``numpy.einsum``: each row's own sum, the same bits in any block; a BLAS
        matrix-vector product's bits depend on the rows around it and the threads), taken only for the rows where it
        can fall below the row's d2 (a row's computed distance ≥ d2 leaves its d2's bits as they are). With the
        lifted bound (from :data:`KMEANS_PROJECTION_MIN_CLUSTERS` clusters on ``PROJECTION_MIN_DIM`` dimensions and
        ``PROJECTION_MIN_ROWS`` rows): a row where ``|z_x|² + |z_c|² - 2 z_x·z_c`` (float32 product, float64 sums) is
        at least ``thresholds(d2 + ε, e_x, e_c, max(1, max|x|²))`` is proven (that method: ``float32_margin`` covers
        the product's rounding, ``|z_x - z_c| - e_x - e_c <= |x - c|``) more than ``d2 + ε`` from c, so its computed
        distance (within ε/2) is not below d2 (5% of the seeding's distances for 1,000 clusters on 8,000 x 1,280
        real-image embeddings, 23% for 100; the rule below left 50% and 95%); else by the triangle inequality: a row
        whose nearest centre so far a has ``|c - a|² > 4 d2 + 5ε`` (``gap``) is at least d2 from c. A block with under
        3/4 of its rows left gathers them 256 at a time, else converts them all."""
        d2, near, sq = self.d2, self.near, self.sq
        idx = np.arange(start, stop)
        if c and gap is not None:  # (the rows whose distance can fall: the others' new one is provably >= d2)
            idx = idx[gap[near[start:stop]] <= 4.0 * d2[start:stop] + 5.0 * self.slack]
        elif c and self.screen is not None:  # (the same, by the lifted bound)
            proj, z, zsq, eps = self.screen
            bound = zsq[start:stop] + zsq[i] - 2.0 * (z[start:stop] @ z[i])
            idx = idx[bound < proj.thresholds(d2[start:stop] + self.slack, eps[start:stop], float(eps[i]), self.top)]
        if 4 * len(idx) > 3 * (stop - start):  # (most rows: all converted in place, cheaper than a gather)
            idx = np.arange(start, stop)
        self.load(idx, rows)
        self.computed[start // self.width] += len(idx)
        dots = np.einsum("ij,j->i", rows[: len(idx)], self.centres[c])
        dots *= 2.0
        new = np.maximum(sq[idx] - dots + sq[i], 0.0)
        closer = new < d2[idx]
        d2[idx[closer]], near[idx[closer]] = new[closer], c

    # -- the Lloyd passes ----------------------------------------------------------------------------------------

    def lloyd_pass(self) -> bool:
        """Every row's label from the current centres (the rows that bounds prove keep it skipped); whether any
        label changed. A row keeps its label where ``upper² + 2ε < lower²`` (Hamerly's bounds, the rounding included:
        its computed distance to its centre is below every other's; 39% of the rows skipped over the 17 passes of
        1,000 clusters on 8,000 x 1,280 real-image embeddings, 58% over the 36 passes of 100). With the lifted vectors
        (from :data:`KMEANS_CANDIDATES_MIN_CLUSTERS` clusters) no bound is widened: a row whose centre did not move
        keeps its bounds and is checked against the moved centres only (:meth:`check`)."""
        self.csq = (self.centres**2).sum(axis=1)
        if self.screen is not None:
            with blas_one_thread():
                zc, ec = self.screen[0].lift(self.centres, self.csq)
            self.lifted = (zc, np.einsum("ij,ij->i", zc, zc, dtype=np.float64), float(ec.max()))
        self.changed[:] = False
        # (the rows whose label can change; the others' computed distance to their centre is below every other's)
        self.keep = self.upper**2 + 2.0 * self.slack < self.lower**2
        if self.screen is not None:  # (and below every moved centre's: no drift)
            self.keep &= ~self.moved[self.labels]
            self.kept, self.moving = np.flatnonzero(self.keep), np.flatnonzero(self.moved)
            if len(self.moving):
                self.each_block(self.check, len(self.kept))
        self.todo = np.flatnonzero(~self.keep)
        self.each_block(self.assign, len(self.todo))
        return bool(self.changed.any())

    def move_centres(self) -> np.ndarray:
        """Each cluster's centre the float64 mean of its members (from one stable sort of the labels,
        :func:`_mean_rows`); how far each moved, rounded up."""
        k, labels, centres = self.k, self.labels, self.centres
        gather = self.buffers[0][0][:257]  # (gathers of up to 256 rows in a block buffer)
        order = np.argsort(labels, kind="stable")
        cuts = np.searchsorted(labels[order], np.arange(k + 1))
        shift = np.zeros(k)
        for c in range(k):
            if cuts[c + 1] > cuts[c]:
                mean = _mean_rows(self.pool, order[cuts[c] : cuts[c + 1]], gather)
                shift[c] = np.sqrt(((mean - centres[c]) ** 2).sum()) * (1.0 + self.rel)
                self.moved[c] = not np.array_equal(mean, centres[c])
                centres[c] = mean
        return shift

    def settle(self, idx: np.ndarray, dist: np.ndarray) -> np.ndarray:
        """Rows ``idx``' labels and bounds from their squared distances ``dist[:len(idx)]`` (each within ``ε/2`` of
        the exact one); returns each row's smallest distance to another centre less that to its own."""
        m = len(idx)
        best = dist[:m].argmin(axis=1)
        self.labels[idx] = best
        own = dist[np.arange(m), best]
        self.upper[idx] = np.sqrt(np.maximum(own + self.slack, 0.0))  # (never NaN: a NaN bound skips)
        dist[np.arange(m), best] = np.inf
        other = dist[:m].min(axis=1)
        self.lower[idx] = np.sqrt(np.maximum(other - self.slack, 0.0))
        gap: np.ndarray = other - own
        return gap

    def product(self, idx: np.ndarray, rows: np.ndarray, dist: np.ndarray, start: int) -> None:
        """Rows ``idx`` (converted in ``rows``) settled by ``(|x|² - 2 x·C) + |C|²`` with ``x·C`` the BLAS product of
        ``rows[:width]`` by the centres (a fixed shape, the last block padded: the same bits as the product of all the
        rows, a row's bits not depending on where it sits in the block), doubled after it is taken."""
        self.full[start // self.width] += len(idx)
        np.matmul(rows[: self.width], self.centres.T, out=dist)
        dist *= 2.0
        np.subtract(self.sq[idx, None], dist[: len(idx)], out=dist[: len(idx)])
        dist[: len(idx)] += self.csq[None, :]
        self.settle(idx, dist)

    def pairs(self, idx: np.ndarray, rows: np.ndarray, at: np.ndarray, cs: np.ndarray) -> np.ndarray:
        """Squared distances ``(|x|² - 2 einsum(x, c)) + |c|²`` (within ε/2 of the exact, as the product's) of rows
        ``idx[at]`` (converted in ``rows[at]``) to centres ``cs``, 64 at a time (gathered into two buffers: a fresh
        gather per chunk was 8x slower, page faults)."""
        out = np.empty(len(at))
        a_buf, c_buf = np.empty((2, 64, self.pool.x.shape[1]))
        for a in range(0, len(at), 64):
            i, c = at[a : a + 64], cs[a : a + 64]
            np.take(rows, i, axis=0, out=a_buf[: len(i)], mode="clip")
            np.take(self.centres, c, axis=0, out=c_buf[: len(i)], mode="clip")
            out[a : a + 64] = (self.sq[idx[i]] - 2.0 * np.einsum("ij,ij->i", a_buf[: len(i)], c_buf[: len(i)])
                               ) + self.csq[c]
        return out

    def lifted_bound(self, idx: np.ndarray, cols: np.ndarray | slice, out: np.ndarray) -> np.ndarray:
        """In ``out``: the lifted squared distances of rows ``idx`` to centres ``cols`` (float32 product, float64
        sums), the values :meth:`LiftedProjection.thresholds` tests."""
        _, z, zsq, _ = self.screen  # type: ignore[misc]
        zc, zcsq, _ = self.lifted
        np.matmul(z[idx], zc[cols].T, out=out)
        out *= -2.0
        out += zsq[idx, None]
        out += zcsq[None, cols]
        return out

    def assign(self, start: int, stop: int, rows: np.ndarray, dist: np.ndarray) -> None:
        """Labels of the rows in question ``todo[start:stop]``: without the lifted vectors, by :meth:`product`. With
        them, a row gets its squared distance ``o`` to its own centre (the nearest seed in the first pass) and to its
        lifted candidates only (:meth:`pairs`): a centre whose lifted bound is at least ``thresholds(o + 4ε, ...)`` is
        more than ``o + 4ε`` away (squared, by that method's margin 1e-9 max(1, max|x|²) more: the bound it gets), its
        product value above ``o + 3ε``, above the nearest candidate's (at most its ``o + ε``); the nearest candidate is
        the label unless another lies within 2ε of it (then the row gets the product of every centre: the ties'
        rule), a candidate more than 2ε above it being above it in the product too: the labels are the product's
        argmin (1,000 clusters on 8,000 x 1,280 real-image embeddings: 33,000 rows in question of 136,000, 9
        distances each, the Lloyd passes' CPU 5.1 -> 1.3 s on 2 threads)."""
        idx = self.todo[start:stop]
        m = len(idx)
        old = self.labels[idx]
        self.load(idx, rows)
        self.computed[start // self.width] += m
        if self.screen is None:
            self.product(idx, rows, dist, start)
        else:
            proj, _, _, eps = self.screen
            own = np.where(old < 0, self.near[idx], old)
            first = self.pairs(idx, rows, np.arange(m), own)
            reach = first + 4.0 * self.slack
            bound = self.lifted_bound(idx, slice(None), dist[:m])
            at, cs = np.divmod(np.flatnonzero(bound < proj.thresholds(reach, eps[idx], self.lifted[2], self.top)[:, None]),
                               self.k)
            at, cs = at[cs != own[at]], cs[cs != own[at]]
            self.candidates[start // self.width] += len(at)
            dist[:m] = reach[:, None] + 1e-9 * self.top  # (the others': proven farther, by thresholds' margin)
            dist[np.arange(m), own] = first
            dist[at, cs] = self.pairs(idx, rows, at, cs)
            ties = np.flatnonzero(self.settle(idx, dist) <= 2.0 * self.slack)
            if len(ties):
                rows[: len(ties)] = rows[ties]
                self.product(idx[ties], rows, dist, start)
        self.changed[start // self.width] |= bool((self.labels[idx] != old).any())

    def check(self, start: int, stop: int, rows: np.ndarray, dist: np.ndarray) -> None:
        """Rows ``kept[start:stop]`` (their centre unmoved, Hamerly's test passed) against the centres that moved:
        those their lifted bound (``thresholds(lower², e_x, max e_c, ...)``) leaves possibly nearer than ``lower`` get
        their distance, which lowers ``lower`` (the others are proven at least ``lower`` away); a row whose test then
        fails is not kept."""
        idx = self.kept[start:stop]
        m = len(idx)
        moving = self.moving
        proj, _, _, eps = self.screen  # type: ignore[misc]
        bound = self.lifted_bound(idx, moving, dist.reshape(-1)[: m * len(moving)].reshape(m, len(moving)))
        threshold = proj.thresholds(self.lower[idx] ** 2, eps[idx], self.lifted[2], self.top)
        at, cs = np.divmod(np.flatnonzero(bound < threshold[:, None]), len(moving))
        self.candidates[start // self.width] += len(at)
        if len(at):
            hit, at = np.unique(at, return_inverse=True)
            self.load(idx[hit], rows)
            low = np.sqrt(np.maximum(self.pairs(idx[hit], rows, at, moving[cs]) - self.slack, 0.0))
            np.minimum.at(self.lower, idx[hit[at]], low)
        self.keep[idx[self.upper[idx] ** 2 + 2.0 * self.slack >= self.lower[idx] ** 2]] = False
