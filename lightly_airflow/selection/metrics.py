"""Selection quality metrics (issue item 7), computed blockwise: never an N×N or k×N matrix."""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np

from lightly_airflow.selection.arrays import squared_norms
from lightly_airflow.selection.kernels import (
    AnyFarthestState,
    NumpyDenseState,
    _pool,
    blas_one_thread,
    even_shares,
    selection_threads,
)

COVERAGE_SAMPLE = 100_000
COVERAGE_STATE_WORK = 200_000
"""Picks x dimensions from which the coverage radius without a DIVERSITY state comes from a farthest-point state
(:func:`_coverage`), below it every row against every pick (:func:`_nearest`): the state costs a few us a row
before its first product. Random unit vectors, in process: 100,000 x 64 with 300 picks 0.40 vs 0.17 s, x 16 with
3,000 0.88 vs 0.88 s, 20,000 x 32 with 5,000 0.43 vs 0.43 s, 20,000 x 64 with 10,000 0.74 vs 1.94 s."""


def _rows(m: np.ndarray, rows: np.ndarray | None, s: int, e: int) -> np.ndarray:
    """Rows ``s:e`` of ``m`` (or of ``m[rows]``, gathered for that block only)."""
    return m[s:e] if rows is None else m[rows[s:e]]


def _sqnorms(m: np.ndarray, block_values: int, rows: np.ndarray | None = None) -> np.ndarray:
    """:func:`~.arrays.squared_norms` of the rows of ``m`` (or of ``m[rows]``) in blocks of about ``block_values``
    entries (no float64 copy of ``m``: 2,000 picks x 1280 took two 20 MiB temporaries)."""
    return squared_norms(m, max(1, block_values // max(m.shape[1], 1)), rows)


def _nearest(a: np.ndarray, b: np.ndarray, *, a_rows: np.ndarray | None = None, b_rows: np.ndarray | None = None,
             block_values: int = 2**18) -> np.ndarray:
    """Distance of every row of ``a`` (or ``a[a_rows]``) to its nearest row of ``b`` (or ``b[b_rows]``).

    Rows of a in blocks of about ``block_values`` distances and entries: 2 MiB of float64 however many rows b
    has, ~6 MiB with the temporaries (4,096 rows x 10,000 picks took 1.2 GB; blocks of 2**21 values ~48 MiB,
    more than a 20,000 x 64 selection's own state). The rows of b are gathered in blocks of ``block_values``
    entries (the 2,000 picks of an 8,000 x 1280 selection gathered at once were 10 MiB, a quarter of the
    matrix; blocks of 4 MiB with their float64 temporaries still 14 MiB); each block of b is gathered once per
    thread. The rows of a are split over the selection threads (BLAS on one thread: :func:`selection_metrics`); 8,000 x
    1,280 rows against 2,000 picks took 0.53 s on one.
    """
    na = len(a) if a_rows is None else len(a_rows)
    nb = len(b) if b_rows is None else len(b_rows)
    out = np.full(na, np.inf)
    an = _sqnorms(a, block_values, a_rows)  # (once, not once per block of b)
    bn = _sqnorms(b, block_values, b_rows)
    b_step = max(16, block_values // max(b.shape[1], 1))

    def part(lo_hi: tuple[int, int]) -> None:
        lo, hi = lo_hi
        for t in range(0, nb, b_step):
            bb = _rows(b, b_rows, t, t + b_step)
            bnt = bn[t : t + len(bb)]
            block = max(16, min(block_values // max(len(bb), 1), block_values // max(a.shape[1], 1)))
            for s in range(lo, hi, block):
                e = min(s + block, hi)
                ab = _rows(a, a_rows, s, e)
                d2 = np.add.outer(an[s:e], bnt)
                d2 -= np.multiply(ab @ bb.T, 2.0, dtype=np.float64)  # (the same values as sq + sq - 2.0 * dots)
                np.minimum(out[s:e], d2.min(axis=1), out=out[s:e])

    shares = even_shares(0, na, max(1, min(selection_threads(), na // 256)))
    if len(shares) == 1:
        part(shares[0])
    else:
        list(_pool(len(shares)).map(part, shares))
    dist: np.ndarray = np.sqrt(np.maximum(out, 0.0))
    return dist


def _coverage(x: np.ndarray, centres: np.ndarray) -> float:
    """The largest distance of a row of ``x`` to its nearest row of ``centres`` (DIVERSITY's coverage radius, for a
    selection without a DIVERSITY state): the picks go into a numpy-only farthest-point state at once (its lazy
    pool: each row takes the first block of them, then only the rows that could hold the maximum take the rest),
    which reads the largest canonical distance. :func:`_nearest` of every row took 2.2-4x longer (0.60 vs 0.24 s
    at 8,000 x 1,280 with 2,000 picks, 2.05 vs 0.49 s at 100,000 x 64 with 5,000, 0.83 vs 0.37 s at 50,000 x 256);
    the same values to ~1e-8 (canonical distances, the engine's own)."""
    state = NumpyDenseState(x, capacity=len(centres))
    state.insert_many(np.ascontiguousarray(centres, dtype=x.dtype))
    return float(np.sqrt(max(state.max_d2(), 0.0)))


def within_step(dim: int, block_values: int = 2**18) -> int:
    """Picks per block of :func:`_nearest_within` (about ``block_values`` gathered entries and at most
    ``block_values`` distances: step x step float64)."""
    return max(16, min(block_values // max(dim, 1), int(np.sqrt(block_values))))


def _block_pair(m: np.ndarray, a: np.ndarray, sq_a: np.ndarray, out_a: np.ndarray, b_rows: np.ndarray | None,
                sq_b: np.ndarray, out_b: np.ndarray) -> None:
    """The squared distances of the pick block ``a`` (gathered rows) to the later block ``m[b_rows]`` (None: ``a``
    itself, without each row's own) lower the minima of both blocks' rows (``out_a``, ``out_b``, in place)."""
    b = a if b_rows is None else m[b_rows]
    d2 = np.add.outer(sq_a, sq_b)
    d2 -= np.multiply(a @ b.T, 2.0, dtype=np.float64)
    if b_rows is None:
        np.fill_diagonal(d2, np.inf)
    np.minimum(out_a, d2.min(axis=1), out=out_a)
    np.minimum(out_b, d2.min(axis=0), out=out_b)


def _nearest_within(m: np.ndarray, rows: np.ndarray, *, block_values: int = 2**18,
                    threads: int | None = None) -> np.ndarray:
    """Distance of every row of ``m[rows]`` to its nearest other row of ``m[rows]``: :func:`_nearest` of the
    picks against themselves without the row itself, but each pair of blocks once (block ``(s, t)`` with
    ``t >= s`` gives the minima of both its rows and its columns: half the products) and the blocks of rows
    split over ``threads`` (each keeps its own minima; the nearest pick of 2,000 picks x 1,280 took 0.13 s on one thread).
    The rows are gathered block by block (never all at once). Blocks of 2**18 values (204 rows at D = 1,280, ~1 MiB
    gathered): 2,000 random picks of the 8,000 x 1,280 image embeddings in 41.5 ms on 2 threads against 52.0 ms
    in blocks of 2**17 (102 rows: 210 small products, each block of b gathered again for every pair) and 52.8 ms
    in blocks of 2**20 (medians of 7, 2026-12-05). :class:`NearestWithin` computes the same blocks while the
    picks come."""
    k = len(rows)
    step = within_step(m.shape[1], block_values)
    starts = list(range(0, k, step))
    sq = _sqnorms(m, block_values, rows)
    n_threads = max(1, min(threads if threads is not None else selection_threads(), len(starts)))

    def part(j: int) -> np.ndarray:
        out = np.full(k, np.inf)
        for i in range(j, len(starts), n_threads):
            s = starts[i]
            a = m[rows[s : s + step]]
            for t in starts[i:]:
                _block_pair(m, a, sq[s : s + len(a)], out[s : s + len(a)], None if t == s else rows[t : t + step],
                            sq[t : t + step], out[t : t + step])
        return out

    parts = [part(0)] if n_threads == 1 else list(_pool(n_threads).map(part, range(n_threads)))
    best: np.ndarray = np.minimum.reduce(parts) if len(parts) > 1 else parts[0]
    dist: np.ndarray = np.sqrt(np.maximum(best, 0.0))
    return dist


class NearestWithin:
    """:func:`_nearest_within` of the picks computed on a thread of its own while the greedy loop picks: each
    block of picks, once complete, against itself and every earlier block (the same blocks and products as
    :func:`_nearest_within`, so the same values); :meth:`result` adds the last, partial block.

    The greedy loop of the numpy state leaves most of a second core idle (its per-pick Python runs on one thread
    between the passes): the nearest-pick metric of 2,000 picks x 1,280 (~40 ms on 2 threads after the loop)
    runs there. ``m``'s rows must not move while it runs (the numpy state never permutes them; the compiled
    state's pruned modes do: no thread beside them). BLAS must be held to one thread meanwhile
    (:func:`~lightly_airflow.selection.kernels.blas_one_thread` around the loop; its count is process-wide)."""

    def __init__(self, m: np.ndarray, *, block_values: int = 2**18) -> None:
        self.m = m
        self.block_values = block_values
        self.step = within_step(m.shape[1], block_values)
        self._blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, squared norms, minima)
        self._fed = 0  # picks handed to the thread
        self._queue: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lightly-selection-metrics", daemon=True)
        self._thread.start()

    def feed(self, picks: list[int]) -> None:
        """Called after each pick with every pick so far: hands over a block once it is complete."""
        if len(picks) - self._fed >= self.step:
            self._queue.put(np.asarray(picks[self._fed : self._fed + self.step], dtype=np.int64))
            self._fed += self.step

    def _run(self) -> None:
        while (rows := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._add(rows)
            except BaseException as exc:  # (raised by result())
                self._error = exc

    def _add(self, rows: np.ndarray) -> None:
        m = self.m
        sq = _sqnorms(m, self.block_values, rows)
        out = np.full(len(rows), np.inf)
        for t_rows, t_sq, t_out in self._blocks:
            _block_pair(m, m[t_rows], t_sq, t_out, rows, sq, out)
        _block_pair(m, m[rows], sq, out, None, sq, out)
        self._blocks.append((rows, sq, out))

    def result(self, picks: list[int] | np.ndarray) -> np.ndarray:
        """The distance of each pick to its nearest other pick (``picks``: every pick, those fed first)."""
        picks = np.asarray(picks, dtype=np.int64)
        if len(picks) > self._fed:
            self._queue.put(picks[self._fed :])
            self._fed = len(picks)
        self.close()
        if self._error is not None:
            raise self._error
        mins = [out for _, _, out in self._blocks]
        best = np.concatenate(mins) if mins else np.zeros(0)
        dist: np.ndarray = np.sqrt(np.maximum(best, 0.0))
        return dist

    def close(self) -> None:
        """Stop the thread (after the blocks handed over); safe to call twice."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def selection_metrics(
    x: np.ndarray | None,
    indices: np.ndarray,
    *,
    state: AnyFarthestState | None = None,
    preselected: np.ndarray | None = None,
    seed: int | None = None,
    nearest: np.ndarray | None = None,
) -> dict[str, Any]:
    """Nearest-neighbour distance among the selected (min/mean) and the coverage radius.

    Per-objective figures (mean weights, BALANCE target vs achieved …) are each objective's own report.

    :param x: (N, D) normalised candidate embeddings, or None when the config used none.
    :param indices: selected rows of ``x`` in pick order.
    :param state: the diversity state after the selection (gives the exact coverage radius).
    :param preselected: (P, D) embeddings already in the pool (count as selected for coverage).
    :param nearest: each pick's distance to its nearest other pick when already computed (:class:`NearestWithin`).
    """
    with blas_one_thread():  # hundreds of small sgemm calls: BLAS' threads took 5-10x longer (10,000 picks:
        return _metrics(x, indices, state, preselected, seed, nearest)  # 2.8-5.2 s vs 0.44-0.6 s, load 4, measured)


def _metrics(x: np.ndarray | None, indices: np.ndarray, state: AnyFarthestState | None,
             preselected: np.ndarray | None, seed: int | None, nearest: np.ndarray | None) -> dict[str, Any]:
    m: dict[str, Any] = {}
    if x is not None and len(indices) >= 2:
        # (the picks' rows gathered in blocks)
        nn = nearest if nearest is not None else _nearest_within(x, np.asarray(indices))
        m["nn_distance_min"] = round(float(nn.min()), 6)
        m["nn_distance_mean"] = round(float(nn.mean()), 6)
    if x is not None and len(x) and (len(indices) or (preselected is not None and len(preselected))):
        if state is not None:
            m["coverage_radius"] = round(float(np.sqrt(max(state.max_d2(), 0.0))), 6)
        else:
            centres = x[indices] if preselected is None else np.concatenate([x[indices], preselected])
            if len(x) > COVERAGE_SAMPLE:
                rows = np.sort(np.random.default_rng(seed).choice(len(x), COVERAGE_SAMPLE, replace=False))
                m["coverage_radius_sample_size"] = COVERAGE_SAMPLE
                m["coverage_radius"] = round(float(_nearest(x, centres, a_rows=rows).max()), 6)
            elif len(centres) * x.shape[1] >= COVERAGE_STATE_WORK:
                m["coverage_radius"] = round(_coverage(x, centres), 6)
            else:
                m["coverage_radius"] = round(float(_nearest(x, centres).max()), 6)
    return m
