"""Every candidate's nearest preselected vector at once, exactly: the start of a selection aware of a large
datapool (everything selected before counts as selected).

Inserting preselected vectors one at a time (:meth:`FarthestPointState.insert`) makes each one a group whose
bounds every pass computes: with more preselected vectors than candidates the groups own one or two rows each,
the bounds cost as much as the products they save, and 100,000 preselected vectors took longer than the loop a
user would write (one float32 product of the candidates by every preselected vector). Here the preselected
vectors are split into *cells* around pivots (a spread subset of them), and a candidate multiplies only the
cells the triangle inequality cannot rule out:

* the distance to each pivot (one float32 product of the candidates by the pivots) gives an upper bound of the
  nearest distance (the pivots are preselected vectors) and, with each cell's radius, a lower bound for every
  member of the cell: ``d(x, p) >= d(x, c) - r``;
* each candidate first multiplies the cell of its nearest pivot, then every cell whose lower bound does not
  exceed the nearest distance found.

**Exactness.** The values are the canonical squared distances of :mod:`~lightly_airflow.selection.kernels`
(float64 sums in dimension order). Products come from float32 BLAS; a pair gets its canonical value when its
float32 value is within twice :func:`float32_margin` of the row's smallest float32 value, which includes every
pair at the canonical minimum; ties go to the lowest preselected index (the vector that one-at-a-time inserts
would keep). Bounds are widened by ``1e-6 * max |v|`` (as the passes' δ), so a cell left out holds no pair
at or below the minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from threading import Lock

import numpy as np

from lightly_airflow.jit import njit
from lightly_airflow.selection.kernels import (
    _pool,
    blas_one_thread,
    even_shares,
    farthest_point_order,
    float32_margin,
    selection_threads,
)

CELLS_PER_SQRT = 4.0
"""``4 sqrt(P)`` cells around k-center pivots (:func:`_pivots`), at least :data:`MIN_CELL` vectors each on
average and at most :data:`MAX_CELLS`: every candidate and every preselected vector is compared with every
pivot, and more cells prune more pairs. In process on 2 threads, 64-D unit vectors, seconds (two runs) with
2 / 3 / 4 sqrt(P) cells (N, P in thousands): clustered (50, 100) 0.63-0.76 / 0.72-0.92 / 0.92-1.10; (50, 200)
1.11-1.36 / 1.38-1.50 / 1.82-1.84; (200, 100) 1.69-2.06 / 1.64-1.74 / 1.88-2.00; (50, 20) 0.77-0.80 / 0.46 /
0.42; hard (50, 100) 3.75-4.04 / 1.93-2.01 / 1.39-1.54 (one at a time: 12.9, 26.3, 18.6, -, 19.8 s). 4 is the
one without a bad case."""
MIN_CELL = 8
NEEDS_AT_ONCE = 1 << 22
"""(row, cell) pairs of the bounds' second stage held at once per thread (8 bytes each) before their cells run."""
DENSE_SHARE = 0.5
"""A chunk of candidates whose bounds keep more than this share of the cells is multiplied by every preselected
vector instead (blocks of contiguous rows, no gathers): on data without clusters the bounds keep nearly every
cell, and the (row, cell) lists and gathered rows cost more time and memory than the products they save."""
MAX_CELLS = 4096
PIVOT_SAMPLE = 16


@dataclass
class NearestStats:
    """What :func:`nearest_selected` computed (for logs and benchmarks)."""

    cells: int = 0
    pairs: int = 0  # (candidate, preselected vector) float32 products in the cells visited
    exact: int = 0  # canonical values computed
    visits: int = 0  # (part of the rows, cell) products
    dense_rows: int = 0  # candidates multiplied by every preselected vector (the bounds kept too many cells)


@njit(cache=True, nogil=True)
def _scan(a, rows, x, cells, c0, csq, corig, sqn, margin, amin, best, bown):  # type: ignore[no-untyped-def]
    """Rows ``rows`` (positions) by the preselected vectors ``cells[c0 : c0 + a.shape[1]]``: ``a`` holds their
    float32 dot products. Updates each row's smallest float32 value ``amin`` and, for the pairs within twice the
    margin of it, the canonical minimum ``best`` and its preselected index ``bown`` (lowest index on ties).
    Returns the number of canonical values computed. Releases the GIL."""
    nc = a.shape[1]
    dim = x.shape[1]
    exact = 0
    for t in range(rows.shape[0]):
        i = rows[t]
        base = sqn[i]
        am = amin[i]
        for j in range(nc):
            v = (base + csq[c0 + j]) - 2.0 * np.float64(a[t, j])
            am = v if v < am else am
        amin[i] = am
        lim = am + 2.0 * margin
        bi = best[i]
        oi = bown[i]
        for j in range(nc):
            v = (base + csq[c0 + j]) - 2.0 * np.float64(a[t, j])
            if v <= lim:
                acc = 0.0  # (kernels._exact_d2 inlined: a lazy kernel of another module is not callable here)
                for d in range(dim):
                    acc += np.float64(x[i, d]) * np.float64(cells[c0 + j, d])
                e = (base + csq[c0 + j]) - 2.0 * acc
                e = e if e > 0.0 else 0.0
                o = corig[c0 + j]
                if e < bi or (e == bi and o < oi):
                    bi = e
                    oi = o
                exact += 1
        best[i] = bi
        bown[i] = oi
    return exact


@njit(cache=True, nogil=True)
def _first_cells(dots, lo, sqn, pvsq, margin, first, up2):  # type: ignore[no-untyped-def]
    """Rows ``lo …`` (``dots``: float32 products with the pivots): the nearest pivot's cell and, in ``up2``, an
    upper bound of the squared distance to it (its float32 value plus the margin; a pivot is preselected)."""
    for t in range(dots.shape[0]):
        i = lo + t
        base = sqn[i]
        bv = np.inf
        bc = 0
        for c in range(dots.shape[1]):
            v = (base + pvsq[c]) - 2.0 * np.float64(dots[t, c])
            if v < bv:
                bv = v
                bc = c
        first[i] = bc
        up2[i] = bv + margin


@njit(cache=True, nogil=True)
def _needed_cells(dots, lo, sqn, pvsq, radius, margin, slack, best, up2, first, out_rows, out_cells):  # type: ignore[no-untyped-def]
    """Rows ``lo …``: the cells other than the first whose lower bound ``d(x, c) - r`` (the pivot's float32
    value lowered by the margin) does not exceed the nearest distance found (or bounded) so far, as (row, cell)
    pairs in ``out_*`` while they fit; returns how many there are."""
    m = 0
    cap = out_rows.shape[0]
    for t in range(dots.shape[0]):
        i = lo + t
        b = best[i] if best[i] < up2[i] else up2[i]
        u = (np.sqrt(b) if b > 0.0 else 0.0) + slack  # (a float32 value plus the margin may round below 0)
        base = sqn[i]
        f = first[i]
        for c in range(dots.shape[1]):
            v = (base + pvsq[c]) - 2.0 * np.float64(dots[t, c]) - margin
            w = u + radius[c]
            if c != f and v <= w * w:  # (v <= 0: a lower bound of 0)
                if m < cap:
                    out_rows[m] = i
                    out_cells[m] = c
                m += 1
    return m


def _pivots(pre: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` pivots, ascending: the greedy k-center order (:func:`farthest_point_order`) of an
    evenly spaced sample of :data:`PIVOT_SAMPLE` x k preselected vectors (at least 16,384), so that no cell is
    much wider than the others. Every (P / k)-th vector instead left hard 64-D data (N = 50,000 after P =
    100,000) 18.6 % of the pairs to multiply, these 4.1 % (3.3-4.0 s -> 1.2 s, the sample's selection included);
    clustered data: about the same."""
    m = min(len(pre), max(PIVOT_SAMPLE * k, 16_384))
    sample = np.unique(np.linspace(0, len(pre) - 1, m).round().astype(np.int64))
    picks, _, _ = farthest_point_order(np.ascontiguousarray(pre[sample]), k)
    return np.sort(sample[picks])


def nearest_selected(x: np.ndarray, sqn: np.ndarray, pre: np.ndarray, psq: np.ndarray, *,
                     threads: int | None = None) -> tuple[np.ndarray, np.ndarray, NearestStats]:
    """(canonical squared distance, index into ``pre``) of every row of ``x``'s nearest vector of ``pre``.

    Memory: ``pre`` once more (sorted by cell) and 40 bytes per row of ``x``, plus per thread the products of
    a chunk of rows with the pivots (~8 MiB) and the rows a cell multiplies.

    :param x: (N, D) float32 C-contiguous candidates; ``sqn`` their canonical squared norms.
    :param pre: (P, D) float32 preselected vectors, P >= 1; ``psq`` their canonical squared norms.
    :param threads: the rows are split into this many parts, one per selection thread (default
        :func:`selection_threads`); each part goes through the cells one after another.
    """
    n, dim = x.shape
    p = len(pre)
    if p == 0:
        raise ValueError("nearest_selected needs at least one preselected vector")
    stats = NearestStats()
    best = np.full(n, np.inf)
    bown = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return best, bown, stats
    workers = max(1, threads or selection_threads())
    threads = min(workers, -(-n // 1024))  # (parts of the candidates: at least 1,024 rows each)
    max_sq = max(1.0, float(sqn.max()), float(psq.max()))
    margin = float32_margin(dim, max_sq)
    slack = 1e-6 * math.sqrt(max_sq)
    k = int(min(MAX_CELLS, p // MIN_CELL, round(CELLS_PER_SQRT * math.sqrt(p)))) or 1
    piv = _pivots(pre, k)
    k = len(piv)
    pv, pvsq = pre[piv], psq[piv]
    stats.cells = k
    chunk = max(256, 2**21 // k)  # (rows per product with the pivots: ~8 MiB of float32)
    with blas_one_thread():
        # Cells: each preselected vector with its nearest pivot by float32 values (any assignment is exact:
        # the radius, an upper bound of every member's distance, covers it).
        cell = np.empty(p, dtype=np.int64)
        cell_d2 = np.empty(p)

        def assign(s: int) -> None:  # (chunks on the selection threads: 0.9 of 1.8 s on one, 200,000 x 1,789)
            _first_cells(pre[s : min(p, s + chunk)] @ pv.T, s, psq, pvsq, margin, cell, cell_d2)

        if workers == 1 or p <= chunk:
            for s in range(0, p, chunk):
                assign(s)
        else:
            list(_pool(workers).map(assign, range(0, p, chunk)))
        rad2 = np.zeros(k)
        np.maximum.at(rad2, cell, cell_d2)
        radius = np.sqrt(np.maximum(rad2, 0.0)) + slack
        corig = np.argsort(cell, kind="stable")
        cells = np.ascontiguousarray(pre[corig])
        csq = np.ascontiguousarray(psq[corig])
        starts = np.searchsorted(cell[corig], np.arange(k + 1))
        amin = np.full(n, np.inf)
        first = np.zeros(n, dtype=np.int64)
        up2 = np.full(n, np.inf)
        lock = Lock()

        def visit_all(rows: np.ndarray, row_cells: np.ndarray) -> None:
            """Each cell with its rows (``row_cells[t]``: the cell of ``rows[t]``)."""
            order = np.argsort(row_cells, kind="stable")
            rows, row_cells = rows[order], row_cells[order]
            at = np.searchsorted(row_cells, np.arange(k + 1))
            pairs = exact = visits = 0
            for c in np.flatnonzero(np.diff(at)):
                s, e = int(starts[c]), int(starts[c + 1])
                if e == s:
                    continue
                r = rows[at[c] : at[c + 1]]
                a = x[r] @ cells[s:e].T
                exact += int(_scan(a, r, x, cells, s, csq, corig, sqn, margin, amin, best, bown))
                pairs += len(r) * (e - s)
                visits += 1
            with lock:
                stats.exact += exact
                stats.pairs += pairs
                stats.visits += visits

        def dense(s: int, e: int) -> None:
            """Rows ``s:e`` by every preselected vector, in blocks of columns (~8 MiB of products)."""
            rows = np.arange(s, e)
            cols = max(256, 2**21 // (e - s))
            exact = 0
            for c0 in range(0, p, cols):
                c1 = min(p, c0 + cols)
                exact += int(_scan(x[s:e] @ cells[c0:c1].T, rows, x, cells, c0, csq, corig, sqn, margin, amin,
                                   best, bown))
            with lock:
                stats.exact += exact
                stats.pairs += (e - s) * p
                stats.dense_rows += e - s

        def part(lo_hi: tuple[int, int]) -> None:
            lo, hi = lo_hi
            # 1. the cell of each row's nearest pivot
            for s in range(lo, hi, chunk):
                e = min(hi, s + chunk)
                _first_cells(x[s:e] @ pv.T, s, sqn, pvsq, margin, first, up2)
            visit_all(np.arange(lo, hi), first[lo:hi])
            # 2. every other cell whose lower bound does not exceed the nearest distance found (the (row, cell)
            # pairs of up to NEEDS_AT_ONCE at a time: the rows of 100,000 candidates of hard data needed ~200
            # cells each)
            rows_l: list[np.ndarray] = []
            cells_l: list[np.ndarray] = []
            held = 0
            for s in range(lo, hi, chunk):
                e = min(hi, s + chunk)
                # (the products with the pivots again: keeping stage 1's would hold N x cells float32, 358 MiB
                # at 50,000 x 1,789; recomputing them is ~0.1 s there)
                dots = x[s:e] @ pv.T
                out_r = np.empty(16 * (e - s), dtype=np.int32)
                out_c = np.empty(16 * (e - s), dtype=np.int32)
                m = int(_needed_cells(dots, s, sqn, pvsq, radius, margin, slack, best, up2, first, out_r, out_c))
                if m > DENSE_SHARE * (e - s) * max(k - 1, 1):
                    dense(s, e)  # (the bounds keep most cells: every vector, without gathers)
                    continue
                if m > len(out_r):  # (more than 16 cells per row: once more with room for all)
                    out_r, out_c = np.empty(m, dtype=np.int32), np.empty(m, dtype=np.int32)
                    _needed_cells(dots, s, sqn, pvsq, radius, margin, slack, best, up2, first, out_r, out_c)
                rows_l.append(out_r[:m])
                cells_l.append(out_c[:m])
                held += m
                if held >= NEEDS_AT_ONCE or e == hi:
                    visit_all(np.concatenate(rows_l).astype(np.int64), np.concatenate(cells_l))
                    rows_l, cells_l, held = [], [], 0

        parts = even_shares(0, n, threads)
        if threads == 1:
            part(parts[0])
        else:
            list(_pool(workers).map(part, parts))
    return best, bown, stats
