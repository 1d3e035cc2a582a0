"""Exact greedy farthest-point (k-center) selection with triangle-inequality pruning, compiled with numba.

:class:`FarthestPointState` keeps, for every candidate, the squared distance ``d2`` to its nearest selected
vector (picks and preselected samples) and the *group* it belongs to: the points sharing that nearest
selected vector (its *centre*). Each group keeps its radius ``r`` (largest member distance) and its farthest
member (lowest index on ties). When a vector ``s`` is selected:

* the distance from ``s`` to every centre ``c`` is computed (O(k·D));
* a group with ``d(c, s) >= 2 r + δ`` is skipped: by the triangle inequality every member ``x`` has
  ``d(x, s) >= d(c, s) - d(x, c) >= r + δ >= d(x, c) + δ``, so ``s`` cannot become strictly nearer;
* inside a visited group a member is skipped when ``d(c, s) >= 2 d(x) + δ`` (same argument per point);
* every other member gets its exact distance to ``s``; those that become strictly nearer move to the new
  group of ``s`` (members live in one index arena: each group a contiguous slice, compacted in place).

The next farthest point is the group with the largest radius (lowest index on ties), a scan of k radii.

That is the ``pruned`` mode. The default is ``dense`` (:data:`DEFAULT_MODE`): selected vectors wait in a batch
and one pass over the rows applies them all, with the same bounds per group and per (row, vector) pair, and a
lazy search between passes (:class:`FarthestPointState`); it was faster on every shape measured.

**Exactness.** Every value the selection compares is a *canonical* squared distance
``max((|x|² + |s|²) - 2 x·s, 0)`` in float64 where the dot products and squared norms are accumulated
dimension by dimension in order 0…D-1 over float64 products of the float32 inputs. Those products are exact
in float64 (24 + 24 bits < 53), so fused or unfused multiply-adds give the same bits; the value of a pair
depends only on the two vectors, exactly like the slow reference in the tests. The pruning tests only skip
points that cannot strictly improve; δ (``1e-6`` for unit vectors) exceeds the float64 rounding of the
bounds (≲ 1e-7 in distance units) by an order of magnitude. Centre-to-centre distances (used only in the
bounds) are computed with a vectorised float64 dot product.

:class:`LazyMaxHeap` serves combined objectives (DIVERSITY x WEIGHTS x BALANCE …): a point's greedy key
``strength · log(min(d/2, 1)) + fixed`` only decreases as picks are added (strength ≥ 0), so keys in the
heap are upper bounds; the top is re-evaluated until it is current (lazy greedy), which gives exactly the
argmax (lowest index on ties) without rescoring all points per pick.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lightly_airflow.jit import njit

logger = logging.getLogger(__name__)

EPS = 1e-6
"""Floor of objectives before the log (same as the engine)."""


# ------------------------------------------------------------------------------------------ compiled kernels
@njit(cache=True)
def canonical_sqnorms(x: np.ndarray) -> np.ndarray:
    """Canonical squared norms of the rows of float32 ``x``: float64 products summed over j = 0…D-1."""
    n, d = x.shape
    out = np.empty(n)
    for i in range(n):
        acc = 0.0
        for j in range(d):
            v = np.float64(x[i, j])
            acc += v * v
        out[i] = acc
    return out


@njit(cache=True, inline="always")
def _exact_d2(x: np.ndarray, i: int, q64: np.ndarray, sqn_i: float, qsq: float) -> float:
    acc = 0.0
    for j in range(x.shape[1]):
        acc += np.float64(x[i, j]) * q64[j]
    v = (sqn_i + qsq) - 2.0 * acc
    return v if v > 0.0 else 0.0


@njit(cache=True, inline="always")
def _catch_up(x, i, d2, owner, p64, psq, sqn, start, npend, g0):  # type: ignore[no-untyped-def]
    """Apply the pending vectors ``p64[start:npend]`` to position ``i`` (canonical distances, in pick order;
    strictly nearer moves its owner, as one pick at a time would) and return its new ``d2``."""
    di = d2[i]
    for j in range(start, npend):
        e = _exact_d2(x, i, p64[j], sqn[i], psq[j])
        if e < di:
            di = e
            owner[i] = g0 + j
    d2[i] = di
    return di


@njit(cache=True)
def _apply_pending(p, x, sqn, d2, owner, p64, psq, npend, g0, stamp, upto, epoch):  # type: ignore[no-untyped-def]
    """The current d2 of position ``p`` between dense passes: its canonical distances to the pending vectors
    not applied to it yet (in pick order, strictly nearer moves it: the owner is the same as one at a time)."""
    if stamp[p] != epoch:
        stamp[p] = epoch
        upto[p] = 0
    di = _catch_up(x, p, d2, owner, p64, psq, sqn, upto[p], npend, g0)
    upto[p] = npend
    return di


_FAST = {"reassoc", "contract", "nsz", "arcp"}  # vectorise sums; no assumptions about inf/nan
prange = range  # numba.prange in compiled kernels (lightly_airflow.jit binds it when numba is imported)


@njit(cache=True, fastmath=_FAST)
def _dot32(x: np.ndarray, i: int, q32: np.ndarray) -> float:
    acc = np.float32(0.0)
    for j in range(x.shape[1]):
        acc += x[i, j] * q32[j]
    return np.float64(acc)


def float32_margin(dim: int, max_sqnorm: float) -> float:
    """A bound on ``|approx - canonical|`` for squared distances whose dot product came from float32.

    Any summation order (with or without FMA) of ``D`` float32 products has error at most
    ``γ Σ|x_j q_j| <= γ |x||q|`` with ``γ = (D+2) u / (1 - (D+2) u)``, ``u = 2^-24``; the squared distance
    uses ``2 x·q``; the canonical float64 value is within ~1e-15 of the exact one. The bound is doubled.

    :param dim: embedding dimension D.
    :param max_sqnorm: the largest squared norm of any vector involved.
    """
    u = 2.0**-24
    gamma = (dim + 2) * u / (1.0 - (dim + 2) * u)
    return 2.0 * (2.0 * gamma * max_sqnorm) + 1e-12


_UNIT_TOL = 2e-6  # spherical mode: every squared norm within this of 1, so every norm within 1e-6 of 1
_CHORD_SLACK = 3e-6  # chord units: 2 x 1e-6 for the norms + 1e-6 for float64 rounding of distances
_ANGLE_GAP = 2e-5  # chord units required between d(x, s) and d(x, c) on the unit sphere


@njit(cache=True)
def _geodesic_threshold(dcs: float) -> float:
    """Squared chord ``hh`` such that no point with ``d2 <= hh`` in a group of centre ``c`` gets nearer to ``s``.

    On the unit sphere angles obey the triangle inequality: ``θ(x, s) >= θ(c, s) - θ(x, c)``, which prunes
    more than the chordal ``d(x, s) >= d(c, s) - d(x, c)`` (chords are concave in the angle). With
    ``A = θ(c, s) / 2`` and ``t = θ(x, c) / 2`` the requirement ``chord(x, s) >= chord(x, c) + η`` holds
    when ``sin(A - t) - sin(t) >= η / 2``, i.e. ``t <= A/2 - asin(η / (4 cos(A/2)))``. Chord slack covers
    norms within 1e-6 of 1 and rounding; the resulting gap in squared distance (>1e-11) dwarfs float64
    rounding (~1e-15), so skipped points cannot strictly improve.
    """
    clo = dcs - _CHORD_SLACK
    if clo <= 0.0:
        return -1.0
    a = np.arcsin(min(0.5 * clo, 1.0))
    t = 0.5 * a - np.arcsin(min(_ANGLE_GAP / (4.0 * np.cos(0.5 * a)), 1.0))
    if t <= 0.0:
        return -1.0
    thr = 2.0 * np.sin(t) - _CHORD_SLACK
    return thr * thr if thr > 0.0 else -1.0


@njit(cache=True)
def _compact(mem: np.ndarray, gstart: np.ndarray, gsize: np.ndarray, n_groups: int) -> int:
    w = 0
    for g in range(n_groups):  # groups are stored in creation order, so moves only go left
        s = gstart[g]
        sz = gsize[g]
        if s != w:
            for t in range(sz):
                mem[w + t] = mem[s + t]
        gstart[g] = w
        w += sz
    return w


@njit(cache=True, inline="always")
def _new_group(mem, gstart, gsize, grad2, gbest, greal, cvec, csq, st, q64, qsq, d2, orig, tmp, n_mov, stats):  # type: ignore[no-untyped-def]
    """Append the group of the new selected vector: members ``tmp[:n_mov]`` (in this order) at the arena's end."""
    n_groups = st[0]
    top = st[1]
    if top + n_mov > mem.shape[0]:
        top = _compact(mem, gstart, gsize, n_groups)
    best_r = -1.0
    best_i = -1
    for t in range(n_mov):
        i = tmp[t]
        mem[top + t] = i
        if _farther(d2[i], i, best_r, best_i, orig):
            best_r, best_i = d2[i], i
    g = n_groups
    gstart[g] = top
    gsize[g] = n_mov
    grad2[g] = best_r
    gbest[g] = best_i
    greal[g] = True
    for j in range(q64.shape[0]):
        cvec[g, j] = q64[j]
    csq[g] = qsq
    st[0] = n_groups + 1
    st[1] = top + n_mov
    stats[2] += n_mov


@njit(cache=True, parallel=True, fastmath=_FAST)
def _centre_dists(cvec: np.ndarray, csq: np.ndarray, n: int, q64: np.ndarray, qsq: float, out: np.ndarray) -> None:
    """Distances from ``q64`` to the first ``n`` centres, on numba's threads (they only enter the bounds)."""
    d = cvec.shape[1]
    for g in prange(n):
        acc = 0.0
        for j in range(d):
            acc += np.float64(cvec[g, j]) * q64[j]
        v = csq[g] + qsq - 2.0 * acc
        out[g] = np.sqrt(v) if v > 0.0 else 0.0


@njit(cache=True, parallel=True)
def _scan_groups(x, sqn, d2, orig, mem, gstart, gsize, grad2, gbest, greal, cdist, q32, q64, qsq, pick,  # type: ignore[no-untyped-def]
                 delta, margin, spherical, n_groups, off, buf, tmp, nmoved, gone, owner, stats):
    """The group loop of :func:`_insert`, groups on numba's threads (the number set decides: one runs it
    serially). Per group: skip it by the bound on its radius; pass 1 (branch-free) lists the members the
    per-point bound cannot exclude; pass 2 applies the float32 filter with its proven margin, then the
    canonical distance, and marks members that get strictly nearer; pass 3 (groups that lost members)
    compacts the group and finds its new radius and farthest member. Group ``g`` uses ``buf[off[g]:]`` and
    puts its moving members at ``tmp[off[g]:]`` (``off``: exclusive prefix sums of the group sizes, so the
    slots of different groups never overlap)."""
    visited = 0
    seen = 0
    n_f32 = 0
    n_exact = 0
    for g in prange(n_groups):
        nmoved[g] = 0
        sz = gsize[g]
        if sz == 0:
            continue
        hh = -1.0
        if greal[g]:
            dcs = cdist[g]
            if dcs >= 2.0 * np.sqrt(grad2[g]) + delta:
                continue
            h = 0.5 * (dcs - delta)
            if h > 0.0:
                hh = h * h
            if spherical:
                hg = _geodesic_threshold(dcs)
                if hg > hh:
                    hh = hg
                if grad2[g] <= hh:
                    continue
        visited += 1
        s0 = gstart[g]
        o = off[g]
        nb = 0
        for t in range(s0, s0 + sz):  # branch-free: positions the bound cannot exclude
            buf[o + nb] = t
            nb += d2[mem[t]] > hh
        seen += sz
        n_f32 += nb
        changed = False
        nm = 0
        ne = 0
        for b in range(nb):
            i = mem[buf[o + b]]
            if i == pick:
                d2[i] = 0.0
                gone[i] = True
                changed = True
                continue
            di = d2[i]
            if (sqn[i] + qsq) - 2.0 * _dot32(x, i, q32) - margin < di:
                ne += 1
                e = _exact_d2(x, i, q64, sqn[i], qsq)
                if e < di:
                    d2[i] = e
                    tmp[o + nm] = i
                    owner[i] = n_groups
                    nm += 1
                    gone[i] = True
                    changed = True
        n_exact += ne
        nmoved[g] = nm
        if not changed:
            continue
        w = s0
        best_r = -1.0
        best_i = -1
        for t in range(s0, s0 + sz):
            i = mem[t]
            if gone[i]:
                gone[i] = False
                continue
            mem[w] = i
            w += 1
            if _farther(d2[i], i, best_r, best_i, orig):
                best_r, best_i = d2[i], i
        gsize[g] = w - s0
        grad2[g] = best_r
        gbest[g] = best_i
    stats[0] += visited
    stats[1] += n_exact
    stats[3] += seen
    stats[4] += n_f32


@njit(cache=True)
def _insert(x, sqn, d2, orig, mem, gstart, gsize, grad2, gbest, greal, cvec, csq, st, q32, qsq, pick, tmp,  # type: ignore[no-untyped-def]
            cdist, delta, margin, spherical, buf, gone, off, nmoved, stats, owner):
    """Add selected vector ``q32`` (candidate ``pick`` or -1): update d2 and groups; new group = st[0]. The
    centre distances and the groups run on numba's threads (:func:`_numba_threads`); the values, groups,
    member order and new group do not depend on the number of threads (tested)."""
    n_groups = st[0]
    d = x.shape[1]
    q64 = np.empty(d)
    for j in range(d):
        q64[j] = np.float64(q32[j])
    _centre_dists(cvec, csq, n_groups, q64, qsq, cdist)
    acc = 0
    for g in range(n_groups):
        off[g] = acc
        acc += gsize[g]
    _scan_groups(x, sqn, d2, orig, mem, gstart, gsize, grad2, gbest, greal, cdist, q32, q64, qsq, pick, delta,
                 margin, spherical, n_groups, off, buf, tmp, nmoved, gone, owner, stats)
    n_mov = 0
    for g in range(n_groups):  # the moving members in group order (slots only move left)
        for m in range(nmoved[g]):
            tmp[n_mov] = tmp[off[g] + m]
            n_mov += 1
    _new_group(mem, gstart, gsize, grad2, gbest, greal, cvec, csq, st, q64, qsq, d2, orig, tmp, n_mov, stats)


@njit(cache=True)
def _farthest(gsize, grad2, gbest, orig, n_groups):  # type: ignore[no-untyped-def]
    best_r = -2.0
    best_i = -1
    for g in range(n_groups):  # (orig[gbest[g]] is a random read: only for a new maximum or a tie)
        if gsize[g] == 0:
            continue
        r = grad2[g]
        if r > best_r:
            best_r = r
            best_i = orig[gbest[g]]
        elif r == best_r:
            b = orig[gbest[g]]
            if b < best_i:
                best_i = b
    return best_i, best_r


@njit(cache=True)
def _permute_state(order, inv, x, sqn, d2, owner, sel, stamp, upto, orig, pos):  # type: ignore[no-untyped-def]
    """In place: position t of every per-position array (rows of ``x`` included) takes what position
    ``order[t]`` held (cycle by cycle, one row buffer and one flag per position); ``inv`` gets the inverse
    (old position -> new) and ``pos`` the new position of every original index. (The numpy version built
    int64 orders, inverses and a copy per array: ~32 bytes per row at its peak.)"""
    n = x.shape[0]
    for t in range(n):
        inv[order[t]] = t
    done = np.zeros(n, dtype=np.bool_)
    buf = np.empty(x.shape[1], dtype=x.dtype)
    for t in range(n):
        if done[t] or order[t] == t:
            done[t] = True
            continue
        buf[:] = x[t]
        v_sqn, v_d2, v_owner, v_sel, v_stamp, v_upto, v_orig = sqn[t], d2[t], owner[t], sel[t], stamp[t], upto[t], orig[t]
        cur = t
        while True:
            src = order[cur]
            done[cur] = True
            if src == t:
                x[cur] = buf
                sqn[cur], d2[cur], owner[cur], sel[cur] = v_sqn, v_d2, v_owner, v_sel
                stamp[cur], upto[cur], orig[cur] = v_stamp, v_upto, v_orig
                break
            x[cur] = x[src]
            sqn[cur], d2[cur], owner[cur], sel[cur] = sqn[src], d2[src], owner[src], sel[src]
            stamp[cur], upto[cur], orig[cur] = stamp[src], upto[src], orig[src]
            cur = src
    for t in range(n):
        pos[orig[t]] = t


@njit(cache=True)
def _remap(a, count, inv):  # type: ignore[no-untyped-def]
    """``a[:count] = inv[a[:count]]`` in place, negative entries (none) kept."""
    for t in range(count):
        if a[t] >= 0:
            a[t] = inv[a[t]]


@njit(cache=True)
def _group_order(mem, total, mark, order):  # type: ignore[no-untyped-def]
    """``order``: the group members ``mem[:total]`` (groups contiguous), then every position in none of them
    (the selected ones), ascending. ``mark`` is an all-False scratch flag per position (left all False)."""
    for t in range(total):
        order[t] = mem[t]
        mark[mem[t]] = True
    w = total
    for i in range(mark.shape[0]):
        if mark[i]:
            mark[i] = False
        else:
            order[w] = i
            w += 1


@njit(cache=True)
def _sort_groups(mem, gstart, gsize, n_groups):  # type: ignore[no-untyped-def]
    for g in range(n_groups):
        a = gstart[g]
        mem[a : a + gsize[g]] = np.sort(mem[a : a + gsize[g]])


# ------------------------------------------------------------------------------------ dense (fallback) passes
@njit(cache=True, nogil=True)
def _group_thresholds(dots, gids, csq, psq, greal, delta, spherical, vmax, hh, vs, order, vstart, nthr, top, pairs, sort_max, margin):  # type: ignore[no-untyped-def]
    """The bounds of one dense pass for groups ``gids`` (``dots[r]``: centre ``gids[r]`` · each pending vector,
    float32 products within ``margin`` of the exact squared distances, :func:`float32_margin`: every distance
    below is a lower bound, ``v - margin``), those of the pruned path (:func:`_scan_groups`):

    * ``hh[g]``: no member of group ``g`` with ``d2 <= hh[g]`` can get strictly nearer to any pending vector
      (the threshold of the NEAREST one: it grows with ``d(c, s)``; the geodesic one on the unit sphere);
    * per pair: a member ``x`` cannot get strictly nearer to pending vector ``j`` when ``d(c, j) >= 2 d(x, c)
      + δ``, i.e. ``d(c, j)² >= (2 sqrt(d2) + δ)²``. ``vs[vstart[g] : vstart[g] + nthr[g]]`` holds the squared
      distances ``d(c, j)²`` below ``vmax`` (no row's bound is above it) in ascending order (float32 rounded
      down: a smaller value only computes more), ``order`` at the same places their pending vectors: a member
      with ``d2`` needs only the first ``c``, ``c`` the count of values below its bound. The groups' lists lie
      one after another from ``top`` on (flat: their total, not groups x pending vectors, is what a pass
      keeps); returns the end of the last one (the caller leaves room for every pair of these groups).

    A group without a centre (before the first pass): -1 and every vector. ``pairs`` False: ``hh`` alone. A
    group that keeps more than ``sort_max`` pairs lists them unsorted with the value -1: every member gets all
    of them (a superset; an insertion sort of k pairs costs ~k²/4 moves)."""
    npend = dots.shape[1]
    v = np.empty(npend)
    for r in range(dots.shape[0]):
        g = gids[r]
        vstart[g] = top
        if not greal[g]:
            hh[g] = -1.0
            if pairs:
                for j in range(npend):
                    vs[top + j] = -1.0
                    order[top + j] = j
                top += npend
            nthr[g] = npend
            continue
        best = np.inf
        k = 0
        for j in range(npend):
            vj = csq[g] + psq[j] - 2.0 * np.float64(dots[r, j]) - margin
            vj = vj if vj > 0.0 else 0.0
            if vj < best:
                best = vj
            if pairs and vj < vmax:
                v[k] = vj
                order[top + k] = j
                k += 1
        dcs = np.sqrt(best)
        h = 0.5 * (dcs - delta)
        t = h * h if h > 0.0 else -1.0
        if spherical:
            tg = _geodesic_threshold(dcs)
            if tg > t:
                t = tg
        hh[g] = t
        if k > sort_max:  # (every kept vector for every member: no sort)
            for c in range(k):
                vs[top + c] = -1.0
            nthr[g] = k
            top += k
            continue
        # Insertion sort of the kept pairs: few once the picks are spread out, and no slower than numba's
        # argsort up to 256 (random order, per group: 1.2 vs 2.3 us at 64, 10.2 vs 11.1 us at 256)
        for c in range(1, k):
            vc = v[c]
            jc = order[top + c]
            e = c
            while e > 0 and v[e - 1] > vc:
                v[e] = v[e - 1]
                order[top + e] = order[top + e - 1]
                e -= 1
            v[e] = vc
            order[top + e] = jc
        for c in range(k):
            v32 = np.float32(v[c])
            if np.float64(v32) > v[c]:
                v32 = np.nextafter(v32, np.float32(-np.inf))
            vs[top + c] = v32
        nthr[g] = k
        top += k
    return top


@njit(cache=True, nogil=True)
def _live_groups(owner, sel, n_groups, mark):  # type: ignore[no-untyped-def]
    """The groups that own an unselected position, ascending (``mark``: n_groups zero bytes, left zero)."""
    for i in range(owner.shape[0]):
        if not sel[i]:
            mark[owner[i]] = 1
    out = np.empty(n_groups, dtype=np.int64)
    m = 0
    for g in range(n_groups):
        if mark[g]:
            out[m] = g
            m += 1
            mark[g] = 0
    return out[:m]


@njit(cache=True, inline="always")
def _farther(di, i, best_r, best_i, orig):  # type: ignore[no-untyped-def]
    """Whether position ``i`` (value ``di``) is farther than the best so far: the larger value, the lower
    original index on ties (``best_r`` starts at -1, below every d2, so ``best_i`` -1 is never read). A
    predicate, not the new (value, position) pair: returning the tuple made a dense pass' row scan 14 ns per
    row instead of 2 (numba, 1,000,000 rows; LLVM no longer branched around the tie's ``orig`` reads)."""
    return di > best_r or (di == best_r and orig[i] < orig[best_i])


@njit(cache=True, nogil=True)
def _live_rows(x, lo, hi, sel, d2, owner, hh, vs, vstart, nthr, delta, orig, rows, cnt, xb, pairs, out_r, out_i, b):  # type: ignore[no-untyped-def]
    """Rows ``lo … hi-1`` of one batched dense pass (see :meth:`FarthestPointState._flush`) that some pending
    vector may improve — unselected, ``d2`` above their group's ``hh`` (:func:`_group_thresholds`) — listed in
    ``rows``, and either (``pairs``) with ``cnt``: how many pending vectors (nearest to the centre first) the
    pair bound cannot exclude, or copied to ``xb`` (for one sgemm). Returns (rows, pairs counted). The farthest
    of the other rows (they keep their ``d2``) goes to ``out_*[b]`` (largest d2, lowest original index on
    ties). Releases the GIL."""
    best_r = out_r[b]
    best_i = out_i[b]
    m = 0
    n_pairs = 0
    for i in range(lo, hi):
        if sel[i]:
            continue
        di = d2[i]
        g = owner[i]
        if di > hh[g]:
            rows[m] = i
            if pairs:
                u = 2.0 * np.sqrt(di) + delta
                u *= u
                v0 = vstart[g]
                c = 0  # (binary search: a scan cost more than it saved where most of 64 vectors may help)
                e = nthr[g]
                while c < e:
                    mid = (c + e) >> 1
                    if vs[v0 + mid] < u:
                        c = mid + 1
                    else:
                        e = mid
                cnt[m] = c
                n_pairs += c
            else:
                xb[m, :] = x[i, :]
            m += 1
        else:
            if _farther(di, i, best_r, best_i, orig):
                best_r, best_i = di, i
    out_r[b] = best_r
    out_i[b] = best_i
    return m, n_pairs


@njit(cache=True, nogil=True)
def _gather_rows(x, rows, m, xb):  # type: ignore[no-untyped-def]
    """``xb[:m] = x[rows[:m]]`` (for one sgemm). Releases the GIL."""
    for t in range(m):
        xb[t, :] = x[rows[t], :]


@njit(cache=True, nogil=True)
def _pair_rows(x, rows, cnt, m, sqn, d2, owner, orig, p32, p64, psq, g0, order, vstart, margin, out_r, out_i, out_ex, b):  # type: ignore[no-untyped-def]
    """The listed rows of one dense pass, each against only the ``cnt`` pending vectors that may improve it
    (``order`` from ``vstart[group]`` on, :func:`_group_thresholds`): float32 products with the filter of
    :func:`_flush_rows`, the canonical value for those it lets through. The vectors come nearest-first, not in
    pick order, so a tie goes to the earlier pick explicitly: the same values and owners as applying them in
    pick order. Keeps the farthest of these rows in ``out_*[b]``. Releases the GIL."""
    best_r = out_r[b]
    best_i = out_i[b]
    nex = 0
    for t in range(m):
        i = rows[t]
        di = d2[i]
        base = sqn[i]
        g = owner[i]
        own = g
        v0 = vstart[g]
        for c in range(cnt[t]):
            j = order[v0 + c]
            if (base + psq[j]) - 2.0 * _dot32(x, i, p32[j]) - margin <= di:  # (<=: ties are decided below)
                nex += 1
                e = _exact_d2(x, i, p64[j], base, psq[j])
                if e < di or (e == di and own >= g0 and g0 + j < own):
                    di = e
                    own = g0 + j
        if own != g or di < d2[i]:
            owner[i] = own
            d2[i] = di
        if _farther(di, i, best_r, best_i, orig):
            best_r, best_i = di, i
    out_r[b] = best_r
    out_i[b] = best_i
    out_ex[b] += nex


@njit(cache=True, nogil=True)
def _flush_rows(x, a, rows, m, sqn, d2, owner, orig, p64, p64t, psq, npend, g0, margin, out_r, out_i, out_ex, b):  # type: ignore[no-untyped-def]
    """The gathered rows ``rows[:m]`` of one batched dense pass.

    ``a[t, j]`` is the float32 dot product (BLAS sgemm, any summation order) of row ``rows[t]`` with pending
    vector ``j``; a row whose float32 squared distance minus :func:`float32_margin` is not below its ``d2`` is
    proven not to get strictly nearer; the others get the canonical value (so the same values as the pruned
    path). Pending vectors are applied in order, so a row's owner is the first selected vector at its minimum.
    Keeps the farthest of these rows in ``out_*[b]`` with the others'. Releases the GIL."""
    best_r = out_r[b]
    best_i = out_i[b]
    acc = np.empty(npend)
    js = np.empty(npend, dtype=np.int64)
    for t in range(m):
        i = rows[t]
        di = d2[i]
        base = sqn[i]
        hits = _count_below(a, t, base, psq, npend, margin, di)
        if hits >= 2:
            di = _apply_row_all(x, a, i, t, base, di, owner, p64t, psq, npend, g0, margin, out_ex, b, acc, js)
            d2[i] = di
        elif hits:
            di = _apply_row(x, a, i, t, base, di, owner, p64, psq, npend, g0, margin, out_ex, b)
            d2[i] = di
        if _farther(di, i, best_r, best_i, orig):
            best_r, best_i = di, i
    out_r[b] = best_r
    out_i[b] = best_i


@njit(cache=True, inline="always")
def _count_below(a, t, base, psq, npend, margin, di):  # type: ignore[no-untyped-def]
    """How many pending vectors the float32 filter of :func:`_flush_rows` lets through for row ``t`` of ``a``
    (against the row's current ``d2``): the same expression per vector, counted without a branch (the loop
    vectorises; a pass over 1,000,000 x 64 rows by 64 vectors had spent more in the per-vector branches than
    in the sgemm)."""
    hit = 0
    for j in range(npend):
        hit += ((base + psq[j]) - 2.0 * np.float64(a[t, j]) - margin) < di
    return hit


@njit(cache=True, inline="always")
def _apply_row_all(x, a, i, t, base, di, owner, p64t, psq, npend, g0, margin, out_ex, b, acc, js):  # type: ignore[no-untyped-def]
    """:func:`_apply_row` for a row that several pending vectors may improve: the canonical dot products with
    the vectors its float32 filter lets through (against its ``d2`` before this pass, a superset of those the
    filter lets through one at a time: a vector left out then cannot improve it), side by side (``p64t``: D x
    pending, float64), each still summed over dimensions 0…D-1 in order (the same bits as :func:`_exact_d2`),
    then applied in pick order exactly as one at a time. One 64-step chain per vector had been latency-bound,
    and products with every pending vector (the vector lanes ran over all of them until 2026-12-02) had cost
    early passes ~60 of 64 products for nothing."""
    nh = 0
    for j in range(npend):
        if (base + psq[j]) - 2.0 * np.float64(a[t, j]) - margin < di:
            js[nh] = j
            acc[nh] = 0.0
            nh += 1
    for d in range(x.shape[1]):
        v = np.float64(x[i, d])
        for h in range(nh):
            acc[h] += v * p64t[d, js[h]]
    for h in range(nh):
        j = js[h]
        e = (base + psq[j]) - 2.0 * acc[h]
        e = e if e > 0.0 else 0.0  # (as _exact_d2)
        if e < di:
            di = e
            owner[i] = g0 + j
    out_ex[b] += nh
    return di


@njit(cache=True, inline="always")
def _apply_row(x, a, i, t, base, di, owner, p64, psq, npend, g0, margin, out_ex, b):  # type: ignore[no-untyped-def]
    """The pending vectors applied in order to row ``i`` (products ``a[t]``; filter, then the canonical value);
    its new ``d2``."""
    nex = 0
    for j in range(npend):
        if (base + psq[j]) - 2.0 * np.float64(a[t, j]) - margin < di:
            nex += 1
            e = _exact_d2(x, i, p64[j], base, psq[j])
            if e < di:
                di = e
                owner[i] = g0 + j
    out_ex[b] += nex
    return di


@njit(cache=True)
def _lazy_next(cand, ckey, cupto, ncand, tail, d2, sel, orig, owner, x, sqn, p64, psq, npend, g0, limit):  # type: ignore[no-untyped-def]
    """The farthest unselected position without a full pass, or (-1, -1, checked) when it cannot be proven.

    ``cand[:ncand]`` are the positions with the largest ``d2`` at the last full pass, sorted by that value
    (``ckey``, descending; original index ascending on ties); every other unselected position had ``d2 <=
    tail`` then. Values only decrease, so ``ckey`` bounds the current value from above: walking the list,
    each candidate gets the canonical distances to the vectors selected since (``p64[cupto[c]:npend]``) and
    the walk stops as soon as the next bound cannot beat the best current value (ties to the lowest original
    index). The best is proven when it beats ``tail`` strictly; ``limit`` caps the candidates updated."""
    best_r = -1.0
    best_i = -1
    checked = 0
    for c in range(ncand):
        i = cand[c]
        if sel[i]:
            continue
        key = ckey[c]
        if best_i >= 0 and (key < best_r or (key == best_r and orig[i] > orig[best_i])):
            return best_i, best_r, checked
        checked += 1
        if checked > limit:
            return -1, best_r, checked
        di = _catch_up(x, i, d2, owner, p64, psq, sqn, cupto[c], npend, g0)
        cupto[c] = npend
        if best_i < 0 or di > best_r or (di == best_r and orig[i] < orig[best_i]):
            best_r = di
            best_i = i
    if best_i >= 0 and best_r > tail:
        return best_i, best_r, checked
    return -1, best_r, checked


@njit(cache=True)
def _count_at_least(d2, sel, t, stop):  # type: ignore[no-untyped-def]
    """How many unselected positions have ``d2 >= t`` (counting stops past ``stop``)."""
    c = 0
    for i in range(d2.shape[0]):
        if d2[i] >= t and not sel[i]:
            c += 1
            if c > stop:
                break
    return c


@njit(cache=True, nogil=True)
def _catch_up_at_least(t, d2, sel, orig, owner, x, sqn, p64, psq, npend, g0, stamp, upto, epoch, lo, hi):  # type: ignore[no-untyped-def]
    """Between dense passes, when the lazy search cannot prove the next pick but has found a candidate whose
    current value is ``t``: every unselected position with ``d2 >= t`` (its stored value bounds its current
    one from above; the others are below ``t``) gets the pending vectors not applied to it yet (in pick
    order: :func:`_apply_pending`). The farthest of them (largest d2, lowest original index on ties) is then
    the farthest of all: the others' current values are below ``t``, at most its value. Returns it, of the
    positions ``lo … hi-1`` (each share of the positions on its own thread: a position is written by its own)."""
    best_r = -1.0
    best_i = -1
    for i in range(lo, hi):
        if d2[i] < t or sel[i]:
            continue
        di = _apply_pending(i, x, sqn, d2, owner, p64, psq, npend, g0, stamp, upto, epoch)
        if _farther(di, i, best_r, best_i, orig):
            best_r, best_i = di, i
    return best_i, best_r


@njit(cache=True, inline="always")
def _ranks_below(ka, ia, kb, ib):  # type: ignore[no-untyped-def]
    """Whether (value ka, original index ia) ranks below (kb, ib): a smaller value, or the same and a larger index."""
    return ka < kb or (ka == kb and ia > ib)


@njit(cache=True, nogil=True)
def _top_candidates(d2, sel, orig, m, cand, ckey):  # type: ignore[no-untyped-def]
    """The ``m`` unselected positions ranking highest (largest ``d2``, lowest original index on ties) into
    ``cand``/``ckey``, sorted that way; returns how many (fewer when fewer are unselected) and ``more``, whether
    any unselected position was left out. One pass with a min-heap of the kept ones: no O(N) temporaries
    (np.argpartition over keys took 51 ms and 16 bytes per row at 1,000,000 rows, once per dense pass)."""
    size = 0
    more = False
    low_v = np.inf  # the lowest-ranked kept one (the heap's root) once the heap is full
    low_o = 0
    for i in range(d2.shape[0]):
        if sel[i]:
            continue
        v = d2[i]
        if size < m:  # sift up
            o = orig[i]
            c = size
            size += 1
            while c > 0:
                parent = (c - 1) // 2
                if not _ranks_below(v, o, ckey[parent], orig[cand[parent]]):
                    break
                ckey[c] = ckey[parent]
                cand[c] = cand[parent]
                c = parent
            ckey[c] = v
            cand[c] = i
            if size == m:
                low_v, low_o = ckey[0], orig[cand[0]]
            continue
        more = True
        # (most rows rank below the root: decided on the value alone, the original index read on ties only)
        if v < low_v or (v == low_v and orig[i] > low_o):
            continue
        _sift_candidate(ckey, cand, orig, m, v, i)  # replaces the lowest-ranked kept one
        low_v, low_o = ckey[0], orig[cand[0]]
    for end in range(size - 1, 0, -1):  # heap sort: the lowest-ranked to the end, highest first
        v = ckey[end]
        i = cand[end]
        ckey[end] = ckey[0]
        cand[end] = cand[0]
        _sift_candidate(ckey, cand, orig, end, v, i)
    return size, more


@njit(cache=True, inline="always")
def _sift_candidate(ckey, cand, orig, size, v, i):  # type: ignore[no-untyped-def]
    """Position ``i`` with value ``v`` into the root of the min-heap ``ckey/cand[:size]`` (lowest-ranked on top,
    as :func:`_ranks_below`), sifted down to its place."""
    o = orig[i]
    c = 0
    while True:
        lo = 2 * c + 1
        if lo >= size:
            break
        if lo + 1 < size and _ranks_below(ckey[lo + 1], orig[cand[lo + 1]], ckey[lo], orig[cand[lo]]):
            lo += 1
        if not _ranks_below(ckey[lo], orig[cand[lo]], v, o):
            break
        ckey[c] = ckey[lo]
        cand[c] = cand[lo]
        c = lo
    ckey[c] = v
    cand[c] = i


@njit(cache=True)
def _merge_candidates(pcand, pckey, sizes, los, orig, m, cand, ckey):  # type: ignore[no-untyped-def]
    """The ``m`` highest-ranked of the lists :func:`_top_candidates` made for slices of the positions (row ``j`` of
    ``pcand``/``pckey``: ``sizes[j]`` positions relative to ``los[j]``, sorted) into ``cand``/``ckey``, sorted: the
    top ``m`` of every slice hold the top ``m`` of all. Returns how many and whether some listed one was left out."""
    k = sizes.shape[0]
    head = np.zeros(k, dtype=np.int64)
    size = 0
    while size < m:
        best = -1
        for j in range(k):
            h = head[j]
            if h >= sizes[j]:
                continue
            if best < 0 or _ranks_below(pckey[best, head[best]], orig[pcand[best, head[best]] + los[best]],
                                        pckey[j, h], orig[pcand[j, h] + los[j]]):
                best = j
        if best < 0:
            break
        h = head[best]
        cand[size] = pcand[best, h] + los[best]
        ckey[size] = pckey[best, h]
        head[best] = h + 1
        size += 1
    left = False
    for j in range(k):
        if head[j] < sizes[j]:
            left = True
    return size, left


@njit(cache=True)
def _best_of_blocks(out_r, out_i, orig):  # type: ignore[no-untyped-def]
    best_r = -1.0
    best_i = -1
    for b in range(len(out_r)):
        i = out_i[b]
        if i < 0:
            continue
        r = out_r[b]
        if best_i < 0 or r > best_r or (r == best_r and orig[i] < orig[best_i]):
            best_r = r
            best_i = i
    return best_i, best_r


@njit(cache=True)
def _rebuild_groups(owner, sel, d2, orig, n_groups, mem, gstart, gsize, grad2, gbest):  # type: ignore[no-untyped-def]
    """Groups (arena slices, radius, farthest member) from the owner of every unselected position."""
    n = owner.shape[0]
    for g in range(n_groups):
        gsize[g] = 0
        grad2[g] = -1.0
        gbest[g] = -1
    for i in range(n):
        if not sel[i]:
            gsize[owner[i]] += 1
    top = 0
    for g in range(n_groups):
        gstart[g] = top
        top += gsize[g]
    fill = gstart[:n_groups].copy()
    for i in range(n):
        if sel[i]:
            continue
        g = owner[i]
        mem[fill[g]] = i
        fill[g] += 1
        di = d2[i]
        if gbest[g] < 0 or di > grad2[g] or (di == grad2[g] and orig[i] < orig[gbest[g]]):
            grad2[g] = di
            gbest[g] = i
    return top


# ------------------------------------------------------------------------------------------------ states
def selection_threads() -> int:
    """Threads for dense passes: the CPUs this process may use (``LIGHTLY_SELECTION_THREADS`` overrides)."""
    env = os.environ.get("LIGHTLY_SELECTION_THREADS")
    if env:
        return max(1, int(env))
    from lightly_airflow.cores import usable_cores

    return usable_cores()


_numba_threads_set = 0


def _numba_threads(threads: int) -> None:
    """numba's parallel loops on ``threads`` threads (at most the pool numba started with)."""
    global _numba_threads_set
    if _numba_threads_set != threads:
        from lightly_airflow.jit import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        _numba_threads_set = threads


_POOL: ThreadPoolExecutor | None = None
_BLAS: list[Any] | None = None


class _OneBlasThread:
    """BLAS held to one thread inside the ``with`` block, its thread counts put back after (nested: fine).

    Direct ``get/set_num_threads`` calls on threadpoolctl's BLAS library controllers (two ctypes calls each):
    ``ThreadpoolController.limit`` rebuilt its library info on every entry, 24 us, and the numpy-only state
    enters once per pick (2,000 picks: 0.05 s of a 0.5 s selection)."""

    def __init__(self, libs: list[Any]) -> None:
        self.libs = libs
        self.before: list[int] = []

    def __enter__(self) -> _OneBlasThread:
        self.before = [lib.get_num_threads() for lib in self.libs]
        for lib, n in zip(self.libs, self.before, strict=True):
            if n != 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        for lib, n in zip(self.libs, self.before, strict=True):
            if n != 1:
                lib.set_num_threads(n)


def blas_one_thread() -> _OneBlasThread:
    """BLAS on one thread while our own threads split the rows (BLAS' threads on top would oversubscribe)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _OneBlasThread(_BLAS)


def even_shares(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` cut into ``parts`` ranges of about equal length, in order (one per thread or block)."""
    cuts = np.linspace(lo, hi, max(1, parts) + 1).astype(np.int64).tolist()
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _pool(threads: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != threads:  # noqa: SLF001
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lightly-selection")
    return _POOL


def on_threads(fn: Callable[[Any, Any], None], items: Iterable[Any], buffers: list[Any]) -> None:
    """``fn(item, buffer)`` for every item, on as many threads as ``buffers`` (one thread's scratch buffers each, in
    use by one call at a time): in order on this thread for one, else on the selection pool's threads with BLAS on
    one thread (ours split the work; BLAS' own on top oversubscribe a busy machine)."""
    free: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for buf in buffers:
        free.put(buf)

    def run(item: Any) -> None:
        buf = free.get()
        try:
            fn(item, buf)
        finally:
            free.put(buf)

    threads = len(buffers)
    if threads == 1:
        for item in items:
            run(item)
        return
    with blas_one_thread():
        list(_pool(threads).map(run, items))


MIN_WORK_PER_THREAD = 2**21
"""Below this many matrix entries (rows x dimension) per thread a dense pass runs on the calling thread."""

BATCH = 256
"""Most selected vectors applied together by one dense pass (one sgemm of the rows by BATCH vectors, or only the
pairs their bounds keep); at most 256 (the pair lists index the batch with uint8)."""
FIRST_BATCH = 128
"""... the batch of the first :data:`BATCH_GROW_AT` selected vectors (a pass then costs its scan of every row,
the group bounds and the candidate list whatever the batch: fewer passes pay, but early ones are forced by the
lazy search before a batch fills and large early batches keep more rows live). In process, dense mode, 3
interleaved rounds, same picks: clustered 1,000,000 x 64, k = 10,000: batch 64 7.91 s, 128 6.30 s, 128 then 256
5.57 s (256 throughout 5.57 s in another run where 128 took 5.70 and 128 then 256 4.87); k = 3,000: 4.72, 3.97,
4.16 s; k = 1,000: 64 2.95 s, 128 2.61-2.67, 256 2.90-3.05; hard 1,000,000 x 64, k = 3,000: 64 5.56, 128 4.52-5.07,
128 then 256 4.58, 256 4.62-4.89; hard 100,000 x 64, k = 20,000: 64 4.28, 128 4.13, 128 then 256 3.82 s."""
BATCH_GROW_AT = 2048
"""Selected vectors after which the dense mode's batch grows from :data:`FIRST_BATCH` to :data:`BATCH`."""
HEAP_BATCH = 64
"""The batch of a state that a :class:`LazyMaxHeap` reads (combined objectives), fixed: the heap brings each
position it reads up to date with every pending vector, so larger batches cost it more than their passes save
(DIVERSITY x WEIGHTS, clustered 1,000,000 x 64, k = 3,000, 3 interleaved rounds: 5.93 s with 64, 7.03 s with
128 growing to 256)."""
PAIR_SORT_MAX = 128
"""With many groups for the rows (:data:`LIVE_GROUPS_AT`), a group keeping more pairs than this in a pass lists
them unsorted, all for every member (see :func:`_group_thresholds`): large preselected sets had every group keep
most of 256 pending vectors while their distances were still large, and sorting them cost ~10 us per group and
pass. (Not with fewer groups: clustered 1,000,000 x 64, k = 10,000 took 4.39 instead of 3.77 s with the cap.)"""
BULK_INSERT_MIN = 1024
"""From this many preselected vectors on, :meth:`FarthestPointState.insert_many` finds every candidate's nearest
one at once (below, one-at-a-time inserts are a few dense passes)."""
LIVE_GROUPS_AT = 8
"""A pass computes group bounds only for the groups that own an unselected row (one scan of the owners) once
groups x pending vectors reach this many times the rows: with large preselected sets most groups own no row
(100,000 preselected vectors, 50,000 candidates: 38 % own one at the end, and the bounds of every group took
28 of the 30 s that inserting them took)."""
GROUP_BLOCK = 1024
"""Groups per block of a pass' group bounds (:meth:`FarthestPointState._thresholds`): one float32 product of their
centres by the pending vectors, their pair lists sorted in a per-thread buffer (GROUP_BLOCK x BATCH entries, 1.25
MiB) and copied into the flat lists; blocks run on the selection threads."""
CANDIDATES = 1024
"""Positions with the largest distances kept (sorted) after each dense pass for the lazy search."""
LAZY_LIMIT = 256
"""Candidates the lazy search may update before it gives up and runs a dense pass."""
CHUNK_ROWS = 8192
"""Rows per sgemm call inside a block of :class:`NumpyDenseState` (the float32 products of a chunk stay in cache)."""
PASS_ROWS = 2048
"""Rows per sgemm call inside a block of :class:`FarthestPointState`'s dense passes: each block keeps a float32
buffer of PASS_ROWS x BATCH products (8,192 rows took 16 MiB for 8 blocks, 0.27x a 250,000 x 64 matrix; 2,048
rows, 4 MiB, run a pass at the same speed: 2.0-2.3 s per 1,000 dense picks at 1,000,000 x 64 either way)."""
PAIR_COST = 2.5
"""A chunk of a dense pass computes only the (row, pending vector) products its pair bounds cannot exclude (compiled
float32 dot products) when they are fewer than 1 / PAIR_COST of all; else the sgemm of every gathered row by every
pending vector (a compiled product took 5.4 ns, one of the sgemm path 2.3 ns, measured alone)."""
CATCH_UP_ROWS = 16384
"""When the lazy search cannot prove the next pick, the positions that may still beat the best value it found
are brought up to date one by one (canonical distances to the pending vectors) if there are at most this many;
else a dense pass runs."""
SCAN_ROWS = 2**17
"""Fewest positions per thread for the scans between dense passes to run on the selection threads: the lazy
search's candidates and the catch-up of the positions above its value (serial until 2026-12-04: 0.27 s of a
5.1 s process at 1,000,000 x 64, k = 3,000, on one core while the others waited; the candidates of 1,000,000
rows 3.5 -> 2.2 ms a call on 2 threads). The count before a catch-up stays serial: it reads ``d2`` once, no
faster on 2 threads (0.7-1.4 vs 1.0 ms, the threads' wake-up ~0.1 ms)."""
PROBE_EVERY = 4
"""Dense passes that do not use the pair bounds (most pairs kept at the last count) count them every
PROBE_EVERY-th pass all the same."""


REORDER_AT = tuple(2**e for e in range(4, 16))
"""Group counts at which the rows are regrouped (each costs one in-place permutation of x; at N = 1e6 the
first 2000 picks took 108 s with regrouping at 64, 512, 4096 only and 51 s with regrouping at every
doubling, because visited groups are then read almost sequentially)."""

DEFAULT_MODE = "dense"
"""The update path of a new state. ``auto`` (the default until 2026-12-02) timed dense picks, then tried pruned
ones; since dense passes got pair bounds and catch-ups, dense alone was faster on every shape measured, in
process on an idle 2-core machine (dense vs auto): clustered 1,000,000 x 64, k = 10,000 4.49 vs 5.77 / 5.85 s;
hard 300,000 x 64, k = 10,000 2.63 vs 3.01 s; hard 100,000 x 64, k = 20,000 2.57 vs 2.62 s; tight clusters
(1,000 of intrinsic dimension 2, spread 0.05) 1,000,000 x 64, k = 10,000 4.14 vs 4.74 s; uniform 4-D
1,000,000, k = 10,000 2.64 vs 3.20 s (pruned alone 3.97 s): the trials and the regroupings of the rows cost more
than the pruned picks saved, and dense passes use every core."""
CHECK_EVERY = 2 * FIRST_BATCH
"""Picks timed per trial of a mode (a multiple of :data:`FIRST_BATCH`: dense picks are timed with their pass)."""
SLOWER_BY = 1.0
"""``auto`` mode goes back to dense passes when a pruned pick (its trial's regrouping spread over the picks still
to come included) takes this much longer than a dense one (1.15 until 2026-12-02: since the pair bounds and
catch-ups, dense passes on 2 cores were as fast as pruned picks on one, and the regroupings of trials that
stayed cost 0.2 s each; dense alone beat auto on every shape measured, see :data:`DEFAULT_MODE`)."""
ABORT_AFTER = 4
ABORT_SLOWER_BY = 6.0
"""A trial of pruned picks ends after ABORT_AFTER picks when they take ABORT_SLOWER_BY times a dense pick
(these picks run before the rows are regrouped, 4-5x slower than after at 1,000,000 x 64; 3 until dense passes
got 1.7x faster on 2026-12-01 and a trial at ~2,000 clustered picks, where pruning pays, was then cut)."""
RETRY_AFTER = 1.5
"""After a trial went back to dense passes, the next starts when the number selected has grown this much
(pruned picks get cheaper as groups shrink while dense picks cost the same; was 2: a trial lost at ~2,000
clustered picks meant 2,000 dense picks at 1.2 ms where pruned ones took 0.3-0.5 ms)."""


class FarthestPointState:
    """Exact nearest-selected distances of all candidates under insertions (see the module docstring).

    Two exact update paths compute the same canonical values:

    * **pruned** (the groups of the module docstring): reads only the points a new pick may get nearer to;
    * **dense** (batched, lazy): selected vectors wait in a batch of up to :data:`BATCH`; one pass over every
      row (parallel blocks on all cores) applies the whole batch: BLAS sgemm of a block of rows by the
      batch, a float32 filter with a proven error bound (:func:`float32_margin`), the canonical distance for
      the points the filter cannot exclude. Between passes the next pick comes from a lazy search of the
      :data:`CANDIDATES` positions that were farthest at the last pass (:func:`_lazy_next`: values only
      decrease, so old values are upper bounds); when it cannot prove the maximum, the few positions that
      could still beat the value it found are brought up to date (:func:`_catch_up_at_least`), or a pass runs
      when they are many. Passes skip rows by their group's bound and, once the picks are spread out, compute
      only the (row, pending vector) pairs their pair bounds keep. Per pick it reads the matrix 1/BATCH times
      where the plain float32 loop reads it once.

    ``mode="auto"`` times a few dense picks, then tries pruned ones; when the median pruned pick of a window
    is slower than :data:`SLOWER_BY` times the mean dense one it goes back to dense passes and tries again
    once the number of picks has grown :data:`RETRY_AFTER` times (pruning pays more the more is selected). Both paths keep ``owner`` (the
    group of every point), so switching costs one O(N) regrouping. Every pick is timed whole (search and
    update, from the end of the previous update), so both modes are compared on what they cost.

    Memory locality: in pruned mode, when the number of groups reaches each of ``reorder_at`` (and when
    pruned mode starts), the rows of ``x`` are permuted **in place** so that every group's members are
    contiguous; :meth:`restore` puts them back. Until then the caller must not read ``x`` or views of it
    (copy vectors first, as :meth:`insert` and :func:`farthest_point_order` do). Indices in and out of every
    method are the caller's original row indices; ties always go to the lowest original index.

    :param x: (N, D) float32 C-contiguous candidate embeddings (converted, i.e. copied, otherwise).
    :param capacity: expected number of selected vectors (picks + preselected); grows automatically.
    :param reorder_at: group counts at which to reorder the rows (empty: never touch ``x``).
    :param mode: ``dense`` (the default, :data:`DEFAULT_MODE`), ``auto`` or ``pruned``.
    """

    def __init__(self, x: np.ndarray, capacity: int = 1024, reorder_at: tuple[int, ...] = REORDER_AT,
                 mode: str = DEFAULT_MODE) -> None:
        if mode not in ("auto", "pruned", "dense"):
            raise ValueError(f"mode must be auto, pruned or dense, not {mode!r}")
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        n, dim = self.x.shape
        self.n, self.dim = n, dim
        self.sqn = canonical_sqnorms(self.x)
        self._d2 = np.full(n, np.inf)
        # Row indices as int32 below 2**31 rows (20 bytes per row less than int64: orig, pos, the 2N arena, tmp, buf)
        idx = np.int32 if 2 * n + 16 < 2**31 else np.int64
        self.orig = np.arange(n, dtype=idx)  # position -> original index
        self.pos = np.arange(n, dtype=idx)  # original index -> position
        self.owner = np.zeros(n, dtype=np.int32)  # position -> group (index of its nearest selected vector)
        self.sel = np.zeros(n, dtype=np.bool_)  # position -> selected
        self.reorder_at = set(int(v) for v in reorder_at) if n >= 2 else set()
        self._may_reorder = bool(self.reorder_at)
        self.permuted = False
        # The pruned path's index arena and scratch (17 bytes per row): never used in dense mode
        rows = n if mode != "dense" else 0
        self.mem = np.empty(2 * rows + 16, dtype=idx)
        self.mem[:rows] = np.arange(rows)
        self.tmp = np.empty(max(rows, 1), dtype=idx)
        self.buf = np.empty(max(rows, 1), dtype=idx)
        self.gone = np.zeros(max(rows, 1), dtype=np.bool_)
        cap = max(int(capacity), 16) + 1
        self.gstart = np.zeros(cap, dtype=np.int64)
        self.gsize = np.zeros(cap, dtype=np.int64)
        self.grad2 = np.full(cap, -1.0)
        self.gbest = np.full(cap, -1, dtype=np.int64)
        self.greal = np.zeros(cap, dtype=np.bool_)
        # (float32: every selected vector is a float32 row, so the same values in half the bytes a pruned pick reads)
        self.cvec = np.zeros((cap, dim), dtype=np.float32)
        self.csq = np.zeros(cap)
        self.cdist = np.zeros(cap)
        # Dense passes (_group_thresholds): per group, the d2 at or below which no pending vector helps; the
        # squared distances from its centre to the pending vectors that may help some row (ascending), which
        # vectors, how many
        self._hh = np.full(cap, -1.0)
        self._vs = np.zeros(0, dtype=np.float32)  # (flat, grown as a pass needs: _thresholds)
        self._ord = np.zeros(0, dtype=np.uint8 if BATCH <= 256 else np.uint16)
        self._vstart = np.zeros(cap, dtype=np.int64)
        self._nthr = np.zeros(cap, dtype=np.int64)
        self._pass_max = np.inf  # the largest d2 at the last pass: an upper bound of every d2 since
        self._off = np.zeros(cap, dtype=np.int64)  # (parallel pruned picks: per-group slots and moves)
        self._nmoved = np.zeros(cap, dtype=np.int64)
        # Group 0: every candidate, before anything is selected (no centre, distance +inf).
        self.gsize[0] = n
        self.grad2[0] = np.inf if n else -1.0
        self.gbest[0] = 0 if n else -1
        self.st = np.array([1, n], dtype=np.int64)
        max_sq = float(self.sqn.max()) if n else 1.0
        self.max_sq = max(1.0, max_sq)
        self.spherical = bool(n) and float(np.abs(self.sqn - 1.0).max()) <= _UNIT_TOL
        self.delta = 1e-6 * self.max_sq
        self.stats = np.zeros(5, dtype=np.int64)  # groups visited, exact distances, moves, members seen, float32
        self.mode = mode
        self.dense = mode != "pruned" and n > 0
        self.threads = max(1, min(selection_threads(), n * max(dim, 1) // MIN_WORK_PER_THREAD))
        self.parallel_pruned = False  # pruned picks on all threads (numba prange) when timed faster
        self.parallel_choices: list[tuple[int, bool]] = []  # (selected vectors so far, parallel pruned picks)
        self._par_phase = 0  # 0: idle; 1, 2: timing serial, parallel pruned picks
        self._par_check = 0 if self.threads > 1 else -1  # selected count of the next trial (-1: never)
        self._par_times: list[list[float]] = [[], []]
        # More blocks than threads: a slow thread (descheduled) does not stall the pass
        self.nblk = 1 if self.threads == 1 else 4 * self.threads
        self._blocks = [(a, b, i) for i, (a, b) in enumerate(even_shares(0, n, self.nblk))]
        self._scans = even_shares(0, n, max(1, min(self.threads, n // SCAN_ROWS)))  # (parallel scans: _scan)
        self._sub_r = np.full(self.nblk, -1.0)
        self._sub_i = np.full(self.nblk, -1, dtype=np.int64)
        self._sub_ex = np.zeros(self.nblk, dtype=np.int64)
        # Dense mode: the batch of selected vectors not yet applied to every row, the sorted candidates of
        # the lazy search, and the proven next pick (position, d2) when known.
        self.batch = min(FIRST_BATCH, BATCH)
        self._grows = True  # (grows to BATCH after BATCH_GROW_AT vectors unless fix_batch)
        self._pend32 = np.zeros((BATCH, dim), dtype=np.float32)
        self._pend64 = np.zeros((BATCH, dim))
        self._pend64t = np.zeros((dim, BATCH))  # (the same, dimension-major: products with all of them at once)
        self._pendsq = np.zeros(BATCH)
        self._npend = 0
        self._g0 = 1
        # rows per chunk: PASS_ROWS, fewer for wide rows (the gathered rows stay ~512 KiB per block: 80 MiB for 8
        # blocks of 2,048 x 1280 otherwise)
        rows_per = self._chunk = min(PASS_ROWS, max(64, 2**17 // max(dim, 1)), max(n, 1))
        # One set of buffers per thread, not per block (at most `threads` blocks run at once: 8 MiB less at
        # D = 64 with 8 blocks on 2 threads, 0.1x a 250,000 x 64 matrix)
        self._abuf = np.empty((self.threads, rows_per * BATCH), dtype=np.float32)
        self._xbuf = np.empty((self.threads, rows_per, dim), dtype=np.float32)  # the rows a pass gathers
        self._rbuf = np.empty((self.threads, rows_per), dtype=np.int64)
        self._cbuf = np.empty((self.threads, rows_per), dtype=np.int64)  # per gathered row: vectors that may help
        self._free_bufs: queue.SimpleQueue[int] = queue.SimpleQueue()
        for t in range(self.threads):
            self._free_bufs.put(t)
        self._gmark = np.zeros(0, dtype=np.uint8)  # (scratch of _live_groups)
        self.bounded_groups = 0  # groups whose bounds the passes computed (all, or those owning rows)
        # Per thread: one block of groups' pair lists (_thresholds; allocated by the first pass with pair bounds)
        self._tvs = np.zeros((self.threads, 0), dtype=np.float32)
        self._tord = np.zeros((self.threads, 0), dtype=self._ord.dtype)
        self._sub_live = np.zeros(self.nblk, dtype=np.int64)
        self._sub_pairs = np.zeros(self.nblk, dtype=np.int64)
        self._sub_counted = np.zeros(self.nblk, dtype=np.int64)  # (pairs the bounds kept, whichever path ran)
        self._pair_passes = True  # (decided by each pass that counts pairs)
        self.pairs = 0  # (row, pending vector) products the dense passes computed
        self.live_rows = 0  # rows the dense passes multiplied (the others were skipped by their group's bound)
        self._cand = np.zeros(0, dtype=np.int64)
        self._ckey = np.zeros(0)
        self._cupto = np.zeros(0, dtype=np.int64)
        self._ncand = 0
        self._tail = np.inf
        self._cand_stale = False
        # (int32: 8 bytes per row less; an epoch counts passes, _upto at most BATCH)
        self._stamp = np.zeros(n, dtype=np.int32)  # per position: epoch (pass count + 1) of _upto
        self._upto = np.zeros(n, dtype=np.int32)  # per position: pending vectors applied to it this epoch
        self._epoch = 1
        self._next: tuple[int, float] | None = (0, np.inf) if n else (-1, -1.0)
        self.lazy_picks = 0
        self.catch_ups = 0  # next picks proven by bringing the few positions that could beat them up to date
        self.n_added = 0
        self.bulk_inserted = self.bulk_groups = 0  # (insert_many: preselected vectors found at once, groups made)
        self._next_check = FIRST_BATCH + CHECK_EVERY // 2  # after the first timed window of dense picks
        self._t_dense = 0.0  # median seconds of recent dense updates
        self._t_dense_window: list[float] = []
        self._t_pruned: list[float] = []
        self._trial_reordered = False
        self._trial_cost = 0.0  # seconds of the running trial's regrouping
        self.capacity = max(int(capacity), 1)  # (expected selected vectors: the picks a regrouping serves)
        self.switches: list[tuple[int, str]] = []  # (selected vectors so far, new mode)
        # (selected vectors so far, mean dense pick, mean pruned pick, rows regrouped) at the end of each trial
        self.trials: list[tuple[int, float, float, bool]] = []
        self.dense_passes = 0
        self._t_end: float | None = None  # end of the previous update (picks are timed end to end)

    def _grow(self) -> None:
        cap = len(self.gstart)
        new = 2 * cap
        for name in ("gstart", "gsize", "grad2", "gbest", "greal", "csq", "cdist", "_off", "_nmoved", "cvec", "_hh",
                     "_vstart", "_nthr"):
            old = getattr(self, name)
            arr = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)

    @property
    def d2(self) -> np.ndarray:
        """(N,) canonical squared distance of every candidate to its nearest selected vector (original order)."""
        self.sync()
        out: np.ndarray = self._d2[self.pos]
        return out

    def max_d2(self) -> float:
        """The largest canonical squared distance to the selection (the coverage radius squared)."""
        self.sync()
        return float(self._d2.max()) if self.n else -1.0

    def _apply(self, order: np.ndarray) -> None:
        """Move position ``order[t]`` to position ``t`` in x and every per-position array; remap indices.
        ``order`` may be :attr:`tmp` (scratch of the picks); :attr:`buf` takes the inverse."""
        inv = self.buf
        _permute_state(order, inv, self.x, self.sqn, self._d2, self.owner, self.sel, self._stamp, self._upto,
                       self.orig, self.pos)
        g = int(self.st[0])
        if self._next is not None and self._next[0] >= 0:
            self._next = (int(inv[self._next[0]]), self._next[1])
        if self._ncand:
            _remap(self._cand, self._ncand, inv)
        if self.dense:
            return  # the arena is rebuilt from owner when pruned mode starts
        total = _compact(self.mem, self.gstart, self.gsize, g)
        self.st[1] = total
        _remap(self.mem, total, inv)
        _remap(self.gbest, g, inv)

    def _reorder(self) -> None:
        g = int(self.st[0])
        total = _compact(self.mem, self.gstart, self.gsize, g)
        self.st[1] = total
        _sort_groups(self.mem, self.gstart, self.gsize, g)
        order = self.tmp[: self.n]
        _group_order(self.mem, total, self.gone, order)
        self._apply(order)
        self.permuted = True
        self.reorder_at = {v for v in self.reorder_at if v >= 1.5 * g}  # (a trial's regrouping just before 2**e)

    def restore(self) -> None:
        """Put the rows of ``x`` back into the caller's order (the state stays usable)."""
        if self.permuted:
            order = self.tmp[: self.n]
            order[:] = self.pos
            self._apply(order)
            self.permuted = False

    # ------------------------------------------------------------------------------------- mode switching
    def _to_pruned(self) -> None:
        self.sync()
        g = int(self.st[0])
        self.st[1] = _rebuild_groups(self.owner, self.sel, self._d2, self.orig, g, self.mem, self.gstart,
                                     self.gsize, self.grad2, self.gbest)
        self.dense = False
        self._t_pruned = []
        self.switches.append((self.n_added, "pruned"))
        self.reorder_at = {v for v in self.reorder_at if v > g}
        self._trial_reordered = False  # the rows are regrouped once the trial's first picks look promising

    def _to_dense(self) -> None:
        i, r = _farthest(self.gsize, self.grad2, self.gbest, self.orig, int(self.st[0]))
        self._next = (int(self.pos[i]) if i >= 0 else -1, float(r))
        self._candidates()
        self.dense = True
        self.switches.append((self.n_added, "dense"))
        self._next_check = int(RETRY_AFTER * self.n_added) + CHECK_EVERY

    def _maybe_switch(self, seconds: float) -> None:
        """``auto``: time dense picks, then try pruned ones; keep whichever is faster (retry after RETRY_AFTER x)."""
        if self.mode != "auto":
            return
        if self.dense:
            if self.n_added <= FIRST_BATCH:
                return  # the first passes compute nearly every distance exactly: not what a dense pick costs
            self._t_dense_window.append(seconds)
            if len(self._t_dense_window) >= CHECK_EVERY // 2:
                self._t_dense = float(np.mean(self._t_dense_window))  # mean: one pass serves BATCH picks
                self._t_dense_window = []
            if self.n_added >= self._next_check and self._t_dense > 0.0:
                self._to_pruned()
        else:
            self._t_pruned.append(seconds)
            typical = float(np.mean(self._t_pruned))
            if (len(self._t_pruned) >= ABORT_AFTER and not self._trial_reordered
                    and typical <= ABORT_SLOWER_BY * self._t_dense):
                # Not hopeless: regroup the rows now (one in-place permutation, ~0.15 s at 1,000,000 x 64,
                # was paid by every trial: 1 s of hopeless trials there) and judge the picks after it.
                self._trial_reordered = True
                self._t_pruned = []
                if self._may_reorder:
                    t0 = time.perf_counter()
                    self._reorder()
                    self._trial_cost = time.perf_counter() - t0
                return
            # (a trial ends as soon as its picks so far took more than ABORT_AFTER such picks may: the same
            # decision as after ABORT_AFTER picks, without the rest; an early trial's first pick alone, before
            # regrouping, took 30-100 ms against 1.5-3 ms per dense pick at 1,000,000 x 64)
            hopeless = ((not self._trial_reordered
                         and sum(self._t_pruned) > ABORT_AFTER * ABORT_SLOWER_BY * self._t_dense)
                        or (len(self._t_pruned) >= ABORT_AFTER and typical > ABORT_SLOWER_BY * self._t_dense))
            if len(self._t_pruned) >= CHECK_EVERY or hopeless:
                if len(self._t_pruned) >= CHECK_EVERY:  # a whole window: its median (the first picks after a
                    typical = float(np.median(self._t_pruned))  # regrouping are slower than the rest)
                    # ... plus the trial's regrouping spread over the picks still to come: pruned picks have
                    # to pay for it (at 1,000,000 x 64 a regrouping is ~0.2 s, ~600 pruned picks)
                    typical += self._trial_cost / max(self.capacity - self.n_added, CHECK_EVERY)
                    self._trial_cost = 0.0
                self.trials.append((self.n_added, self._t_dense, typical, self._trial_reordered))
                self._t_pruned = []
                if typical > SLOWER_BY * self._t_dense:
                    self._to_dense()

    def _time_parallel(self, seconds: float) -> None:
        """Pruned picks: time :data:`CHECK_EVERY` serial, then as many parallel ones (numba threads wait at a
        barrier per pick: on a busy machine a descheduled thread stalls it); keep the faster by median,
        again when the number selected has doubled."""
        if self._par_check < 0:
            return
        if self._par_phase == 0:
            if self.n_added >= self._par_check:
                self._par_phase, self.parallel_pruned, self._par_times = 1, False, [[], []]
            return
        times = self._par_times[self._par_phase - 1]
        times.append(seconds)
        if len(times) < CHECK_EVERY:
            return
        if self._par_phase == 1:
            self._par_phase, self.parallel_pruned = 2, True
            return
        serial, parallel = (float(np.median(t)) for t in self._par_times)
        self.parallel_pruned = parallel * SLOWER_BY < serial
        self.parallel_choices.append((self.n_added, self.parallel_pruned))
        self._par_phase = 0
        self._par_check = 2 * self.n_added

    def _add(self, q32: np.ndarray | None, qsq: float, original: int) -> None:
        if self.st[0] + 1 >= len(self.gstart):
            self._grow()
        t_reorder = 0.0  # a regrouping is a one-off, not the cost of a pick
        if not self.dense and int(self.st[0]) in self.reorder_at:
            t_reorder = time.perf_counter()
            self.reorder_at.discard(int(self.st[0]))
            self._reorder()
            t_reorder = time.perf_counter() - t_reorder
        pick = int(self.pos[original]) if original >= 0 else -1
        if pick >= 0:
            q32 = self.x[pick].copy()
        assert q32 is not None
        g = int(self.st[0])
        if self.dense:
            q64 = q32.astype(np.float64)
            if self._npend == 0:
                self._g0 = g
            self._pend32[self._npend] = q32
            self._pend64[self._npend] = q64
            self._pend64t[:, self._npend] = q64
            self._pendsq[self._npend] = qsq
            self._npend += 1
            self.greal[g] = True
            self.cvec[g] = q32
            self.csq[g] = qsq
            self.st[0] = g + 1
            if pick >= 0:
                self._d2[pick] = 0.0
                self.owner[pick] = g
                self.sel[pick] = True
            self._next = None
            if self._npend >= self.batch:
                self._flush()
                if self._grows and self.n_added + 1 >= BATCH_GROW_AT:
                    self.batch = BATCH  # (from the next batch on: the pair lists grow with it)
        else:
            margin = float32_margin(self.dim, max(self.max_sq, qsq))
            _numba_threads(self.threads if self.parallel_pruned else 1)
            _insert(self.x, self.sqn, self._d2, self.orig, self.mem, self.gstart, self.gsize, self.grad2,
                    self.gbest, self.greal, self.cvec, self.csq, self.st, q32, qsq, pick, self.tmp, self.cdist,
                    self.delta, margin, self.spherical and abs(qsq - 1.0) <= _UNIT_TOL, self.buf, self.gone,
                    self._off, self._nmoved, self.stats, self.owner)
            if pick >= 0:
                self.sel[pick] = True
        self.n_added += 1
        now = time.perf_counter()
        if self._t_end is not None:  # this pick whole: its search (farthest) and this update
            if not self.dense:
                self._time_parallel(now - self._t_end - t_reorder)
            self._maybe_switch(now - self._t_end - t_reorder)
        self._t_end = time.perf_counter()

    def sync(self) -> None:
        """Apply the pending batch of selected vectors to every row (dense mode), so ``d2`` is current."""
        if self.dense and self._npend:
            self._flush()

    def fix_batch(self, size: int) -> None:
        """Dense passes of ``size`` (at most :data:`BATCH`) selected vectors from now on, never grown."""
        self.sync()
        self.batch, self._grows = min(size, BATCH), False

    def _flush(self) -> None:
        """One dense pass: apply the pending batch to every unselected row; the next pick; new candidates."""
        npend, g0 = self._npend, self._g0
        p32, p64, psq = self._pend32[:npend], self._pend64[:npend], self._pendsq[:npend]
        p64t = self._pend64t
        margin = float32_margin(self.dim, max(self.max_sq, float(psq.max()) if npend else 0.0))
        sub_r, sub_i, sub_ex = self._sub_r, self._sub_i, self._sub_ex
        sub_r.fill(-1.0)
        sub_i.fill(-1)
        sub_ex.fill(0)
        orig, live = self.orig, self._sub_live
        live.fill(0)
        self._sub_pairs.fill(0)
        self._sub_counted.fill(0)
        # Pair bounds (sorted per group, counted per row) cost ~10 ms a pass at 1,000,000 x 64: only while they
        # pay, and on the first block of every PROBE_EVERY-th pass to see whether they would (the share of
        # pairs they keep only falls as the picks spread)
        probe = not self._pair_passes and self.dense_passes % PROBE_EVERY == 0
        pairs = self._pair_passes or probe

        def block(blk: tuple[int, int, int]) -> None:
            lo, hi, b = blk
            k = self._free_bufs.get()
            try:
                self._pass_block(k, lo, hi, b, npend, g0, margin, p32, p64, p64t, psq, pairs and (b == 0 or not probe))
            finally:
                self._free_bufs.put(k)

        with blas_one_thread():
            self._thresholds(p32, psq, pairs)
            if self.nblk == 1:
                block(self._blocks[0])
            else:
                list(_pool(self.threads).map(block, self._blocks))
        i, r = _best_of_blocks(sub_r, sub_i, orig)
        self._npend = 0
        self._epoch += 1
        self.dense_passes += 1
        self.stats[1] += int(sub_ex.sum())
        self.live_rows += int(live.sum())
        self.pairs += int(self._sub_pairs.sum())
        counted = int(live[0] if probe else live.sum())
        if pairs and npend and counted:
            self._pair_passes = int(self._sub_counted.sum()) * PAIR_COST < counted * npend
        self.stats[3] += self.n * max(npend, 1)
        self._next = (int(i), float(r))
        self._pass_max = float(r) if i >= 0 else -1.0  # (values only decrease: a bound for the next pass)
        self._cand_stale = True  # rebuilt when the lazy search needs it (never for LazyMaxHeap's passes)

    def _pass_block(self, k: int, lo: int, hi: int, b: int, npend: int, g0: int, margin: float, p32: np.ndarray,
                    p64: np.ndarray, p64t: np.ndarray, psq: np.ndarray, pairs: bool) -> None:
        """Rows ``lo … hi-1`` of a dense pass (block ``b``) with the buffers of set ``k``, chunk by chunk: the
        rows their group's bound cannot exclude (:func:`_live_rows`), each by the pending vectors its pair bounds
        cannot exclude (``pairs``, when few: :func:`_pair_rows`) or by every pending vector (the rows gathered,
        one sgemm, :func:`_flush_rows`)."""
        x, sqn, d2, owner, sel, orig, hh = self.x, self.sqn, self._d2, self.owner, self.sel, self.orig, self._hh
        sub_r, sub_i, sub_ex = self._sub_r, self._sub_i, self._sub_ex
        buf, xb, rows, cnt = self._abuf[k], self._xbuf[k], self._rbuf[k], self._cbuf[k]
        for s in range(lo, hi, self._chunk):
            e = min(hi, s + self._chunk)
            m, n_pairs = _live_rows(x, s, e, sel, d2, owner, hh, self._vs, self._vstart, self._nthr, self.delta, orig,
                                    rows, cnt, xb, pairs, sub_r, sub_i, b)
            self._sub_counted[b] += n_pairs
            if not m:
                continue
            if pairs and n_pairs * PAIR_COST < m * npend:  # few (row, vector) pairs may improve: those alone
                _pair_rows(x, rows, cnt, m, sqn, d2, owner, orig, p32, p64, psq, g0, self._ord, self._vstart, margin,
                           sub_r, sub_i, sub_ex, b)
                self._sub_pairs[b] += n_pairs
            else:  # every gathered row by every pending vector: one BLAS sgemm
                if pairs:
                    _gather_rows(x, rows, m, xb)
                a = buf[: m * npend].reshape(m, npend)
                np.matmul(xb[:m], p32.T, out=a)
                _flush_rows(x, a, rows, m, sqn, d2, owner, orig, p64, p64t, psq, npend, g0, margin, sub_r, sub_i,
                            sub_ex, b)
                self._sub_pairs[b] += m * npend
            self._sub_live[b] += m

    def _thresholds(self, p32: np.ndarray, psq: np.ndarray, pairs: bool) -> None:
        """The bounds of :func:`_group_thresholds` for every group: the ``d2`` at or below which a member cannot
        get strictly nearer to any pending vector (a pass multiplies only the rows above theirs: 13-66 % of the
        rows were skipped at 200-2,000 picks of 1,000,000 x 64 clustered or hard data) and, with ``pairs``, the
        sorted centre-vector distances of the pair bounds. Centres · pending vectors in float32 BLAS blocks of
        :data:`GROUP_BLOCK` groups (every distance lowered by :func:`float32_margin`), the blocks on the
        selection threads. The pair lists are flat (grown by
        doubling): each block's lie together, in the order the blocks finish, and each group keeps its own
        start; late passes keep a few pairs per group, where a groups x batch layout held 5 bytes per group and
        vector of the batch (at k = N / 4 and D = 64 with batches of 256: 1.25x the matrix)."""
        g = int(self.st[0])
        if not len(p32):
            self._hh[:g] = np.inf  # nothing pending: no row changes
            return
        spherical = self.spherical and bool(np.all(np.abs(psq - 1.0) <= _UNIT_TOL))
        vmax = (2.0 * np.sqrt(self._pass_max) + self.delta) ** 2 if self._pass_max >= 0.0 else 0.0
        npend = len(p32)
        margin = float32_margin(self.dim, max(self.max_sq, float(psq.max()), float(self.csq[:g].max()) if g else 0.0))
        if pairs and self._tvs.shape[1] < GROUP_BLOCK * npend:
            self._tvs = np.empty((self.threads, GROUP_BLOCK * BATCH), dtype=np.float32)  # (npend <= batch <= BATCH)
            self._tord = np.empty((self.threads, GROUP_BLOCK * BATCH), dtype=self._ord.dtype)
        many = g * npend >= LIVE_GROUPS_AT * self.n  # (many groups for the rows: large preselected sets)
        if many:
            if len(self._gmark) < g:
                self._gmark = np.zeros(len(self.gstart), dtype=np.uint8)
            gids = _live_groups(self.owner, self.sel, g, self._gmark)
        else:
            gids = np.arange(g, dtype=np.int64)
        self.bounded_groups += len(gids)
        sort_max = PAIR_SORT_MAX if many else npend
        lock = threading.Lock()
        top = [0]

        def block(a0: int) -> None:
            ids = gids[a0 : a0 + GROUP_BLOCK]
            k = self._free_bufs.get()
            try:
                vs, order = self._tvs[k], self._tord[k]
                dots = self.cvec[ids] @ p32.T  # (float32: half the time of float64 products; bounds widened)
                n = _group_thresholds(dots, ids, self.csq, psq, self.greal, self.delta, spherical, vmax, self._hh,
                                      vs, order, self._vstart, self._nthr, 0, pairs, sort_max, margin)
                if not n:
                    return
                with lock:  # (any place in the flat lists will do: each group has its own start)
                    at = top[0]
                    if at + n > len(self._vs):  # grown by doubling (under the lock: no copy in flight)
                        size = max(at + n, 2 * len(self._vs))
                        grown_vs, grown_ord = np.empty(size, dtype=np.float32), np.empty(size, dtype=self._ord.dtype)
                        grown_vs[:at], grown_ord[:at] = self._vs[:at], self._ord[:at]
                        self._vs, self._ord = grown_vs, grown_ord
                    self._vs[at : at + n], self._ord[at : at + n] = vs[:n], order[:n]
                    top[0] = at + n
                self._vstart[ids] += at
            finally:
                self._free_bufs.put(k)

        starts = range(0, len(gids), GROUP_BLOCK)
        if self.threads == 1 or len(starts) == 1:
            for a0 in starts:
                block(a0)
        else:
            list(_pool(self.threads).map(block, starts))

    def _candidates(self) -> None:
        """The :data:`CANDIDATES` unselected positions with the largest d2, sorted for the lazy search."""
        m = min(CANDIDATES, self.n)
        if len(self._cand) != m:
            self._cand = np.zeros(m, dtype=np.int64)
            self._ckey = np.zeros(m)
            self._cupto = np.zeros(m, dtype=np.int64)
        if len(self._scans) == 1:
            size, more = _top_candidates(self._d2, self.sel, self.orig, m, self._cand, self._ckey)
        else:  # (the top m of each share, merged)
            k = len(self._scans)
            pcand, pckey = np.zeros((k, m), dtype=np.int64), np.zeros((k, m))
            found = self._scan(lambda j, lo, hi: _top_candidates(self._d2[lo:hi], self.sel[lo:hi], self.orig[lo:hi], m,
                                                                   pcand[j], pckey[j]))
            sizes = np.array([f[0] for f in found], dtype=np.int64)
            los = np.array([lo for lo, _ in self._scans], dtype=np.int64)
            size, left = _merge_candidates(pcand, pckey, sizes, los, self.orig, m, self._cand, self._ckey)
            more = left or any(f[1] for f in found)
        # (positions brought up to date since the last pass start from what they have: _catch_up_at_least)
        np.copyto(self._cupto, np.where(self._stamp[self._cand] == self._epoch, self._upto[self._cand], 0))
        self._ncand = int(size)
        # Positions left out had d2 <= the smallest key kept (-1 when every unselected one is kept).
        self._tail = float(self._ckey[size - 1]) if more else -1.0
        self._cand_stale = False

    def _scan(self, f: Callable[[int, int, int], Any]) -> list[Any]:
        """``f(j, lo, hi)`` for each share ``j`` of the positions (at least :data:`SCAN_ROWS` each), on the selection
        threads when there are several shares (the kernels it calls release the GIL)."""
        if len(self._scans) == 1:
            return [f(0, *self._scans[0])]
        return list(_pool(self.threads).map(lambda j: f(j, *self._scans[j]), range(len(self._scans))))

    def select(self, i: int) -> None:
        """Mark candidate ``i`` selected (its distance becomes 0) and update every distance it improves."""
        self._add(None, float(self.sqn[self.pos[i]]), int(i))

    def insert(self, vec: np.ndarray) -> None:
        """Add a selected vector that is not a candidate (a preselected sample)."""
        q = np.array(vec, dtype=np.float32, copy=True).reshape(1, -1)  # vec may view rows we permute
        if q.shape[1] != self.dim:
            raise ValueError(f"preselected embedding has dimension {q.shape[1]}, candidates {self.dim}")
        self._add(q[0], float(canonical_sqnorms(q)[0]), -1)

    def insert_many(self, vecs: np.ndarray) -> None:
        """:meth:`insert` each row of ``vecs`` in order (the same distances and picks).

        Before any pick, in dense mode and with at least :data:`BULK_INSERT_MIN` vectors, every candidate's
        nearest one is found at once (:func:`~lightly_airflow.selection.nearest.nearest_selected`) and only the
        vectors nearest to some candidate become groups (the others can never improve a bound): 100,000
        preselected vectors, 50,000 candidates took 11-13 s one at a time (dense passes with group bounds)."""
        if not len(vecs):
            return
        q = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(vecs), -1)
        if np.shares_memory(q, self.x):  # (rows of x: the state permutes x in place)
            q = q.copy()
        if q.shape[1] != self.dim:
            raise ValueError(f"preselected embedding has dimension {q.shape[1]}, candidates {self.dim}")
        if not (self.dense and self.n_added == 0 and len(q) >= BULK_INSERT_MIN):
            for row in q:
                self.insert(row)
            return
        from lightly_airflow.selection.nearest import nearest_selected  # (its kernels compile on first use)

        t = time.perf_counter()
        psq = canonical_sqnorms(q)
        d2, near, stats = nearest_selected(self.x, self.sqn, q, psq)  # (all threads: its work is N x P, not N)
        used = np.unique(near)  # ascending: groups in insertion order, as one at a time
        while int(self.st[0]) + len(used) + 1 >= len(self.gstart):
            self._grow()
        g0 = int(self.st[0])
        groups = slice(g0, g0 + len(used))
        self.greal[groups] = True
        self.cvec[groups] = q[used]
        self.csq[groups] = psq[used]
        self.st[0] = g0 + len(used)
        self._d2[:] = d2  # (positions are the original rows: nothing is permuted before the first pick)
        self.owner[:] = g0 + np.searchsorted(used, near)
        self.stats[1] += stats.exact
        self.stats[3] += stats.pairs
        self.bulk_inserted, self.bulk_groups = len(q), len(used)
        self.n_added = len(q)
        if self._grows and self.n_added + 1 >= BATCH_GROW_AT:
            self.batch = BATCH
        self._flush()  # (nothing pending: the next pick and the candidates of the lazy search)
        logger.info("selection: %d preselected vectors applied to %d candidates at once in %.2f s (%d cells, %.1f %% "
                    "of the pairs multiplied, %d candidates by every vector); %d of them are the nearest of some "
                    "candidate", len(q), self.n, time.perf_counter() - t, stats.cells,
                    100.0 * stats.pairs / max(1, self.n * len(q)), stats.dense_rows, len(used))

    def farthest(self) -> tuple[int, float]:
        """The unselected candidate farthest from the selection (lowest index on ties) and its d2; (-1, -1)."""
        if self.dense:
            if self._next is None:
                if self._cand_stale:
                    self._candidates()
                i, r, _ = _lazy_next(self._cand, self._ckey, self._cupto, self._ncand, self._tail, self._d2,
                                     self.sel, self.orig, self.owner, self.x, self.sqn, self._pend64,
                                     self._pendsq, self._npend, self._g0, LAZY_LIMIT)
                if i >= 0:
                    self._next = (int(i), float(r))
                    self.lazy_picks += 1
                elif r >= 0.0 and self._npend and _count_at_least(self._d2, self.sel, r, CATCH_UP_ROWS) <= CATCH_UP_ROWS:
                    # Few positions can still be above the value found: bring those up to date instead of
                    # a pass over every row (early picks: 30-450 rows of 1,000,000 against a 50-90 ms pass);
                    # each share of the positions on its thread (rows only its own), the farthest of the shares
                    t = r
                    i, r = -1, -1.0
                    ranks_below = getattr(_ranks_below, "py_func", _ranks_below)  # (the kernels' rule, in Python)
                    for bi, br in self._scan(lambda j, lo, hi: _catch_up_at_least(
                            t, self._d2, self.sel, self.orig, self.owner, self.x, self.sqn, self._pend64, self._pendsq,
                            self._npend, self._g0, self._stamp, self._upto, self._epoch, lo, hi)):
                        if bi >= 0 and (i < 0 or ranks_below(r, self.orig[i], br, self.orig[bi])):
                            i, r = bi, br
                    self._next = (int(i), float(r))
                    self.catch_ups += 1
                    self._cand_stale = True  # (the list is rebuilt from the values now stored)
                else:
                    self._flush()
            assert self._next is not None
            p, r = self._next
            return (int(self.orig[p]), float(r)) if p >= 0 else (-1, -1.0)
        i, r = _farthest(self.gsize, self.grad2, self.gbest, self.orig, int(self.st[0]))
        return int(i), float(r)

    def distance2(self, i: int) -> float:
        """Canonical squared distance of candidate ``i`` to its nearest selected vector."""
        p = int(self.pos[i])
        if self.dense and self._next is not None and self._next[0] == p:  # (the answer of farthest(): the engine
            return self._next[1]  # reads a pick's distance 3-4 times, each a kernel call otherwise)
        if self.dense and self._npend:  # the pending vectors applied to this one position
            return float(_apply_pending(p, self.x, self.sqn, self._d2, self.owner, self._pend64, self._pendsq,
                                        self._npend, self._g0, self._stamp, self._upto, self._epoch))
        return float(self._d2[p])


@njit(cache=True)
def _key(d2i, fixed_i, strength, has_div):  # type: ignore[no-untyped-def]
    if not has_div:
        return fixed_i
    o = d2i / 4.0
    if o > 1.0:
        o = 1.0
    if o < 1e-6:
        o = 1e-6
    return strength * 0.5 * np.log(o) + fixed_i


@njit(cache=True, inline="always")
def _above(ka, ia, kb, ib):  # type: ignore[no-untyped-def]
    return ka > kb or (ka == kb and ia < ib)


@njit(cache=True)
def _sift_down(hk, hi, off, size, pos):  # type: ignore[no-untyped-def]
    k = hk[off + pos]
    i = hi[off + pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        if c + 1 < size and _above(hk[off + c + 1], hi[off + c + 1], hk[off + c], hi[off + c]):
            c += 1
        if _above(hk[off + c], hi[off + c], k, i):
            hk[off + pos] = hk[off + c]
            hi[off + pos] = hi[off + c]
            pos = c
        else:
            break
    hk[off + pos] = k
    hi[off + pos] = i


@njit(cache=True)
def _heapify(hk, hi, hstart, hsize):  # type: ignore[no-untyped-def]
    for lab in range(len(hstart)):
        for pos in range(hsize[lab] // 2 - 1, -1, -1):
            _sift_down(hk, hi, hstart[lab], hsize[lab], pos)


@njit(cache=True)
def _heap_best(hk, hi, hstart, hsize, d2, pos, fixed, taken, strength, has_div, bonus,  # type: ignore[no-untyped-def]
               x, sqn, owner, p64, psq, npend, g0, stamp, upto, epoch):
    best_v = -np.inf
    best_i = -1
    for lab in range(len(hstart)):
        off = hstart[lab]
        while hsize[lab] > 0:
            i = hi[off]
            if taken[i]:
                last = hsize[lab] - 1
                hk[off] = hk[off + last]
                hi[off] = hi[off + last]
                hsize[lab] = last
                _sift_down(hk, hi, off, last, 0)
                continue
            di = _apply_pending(pos[i], x, sqn, d2, owner, p64, psq, npend, g0, stamp, upto, epoch) if npend else d2[pos[i]]
            cur = _key(di, fixed[i], strength, has_div)
            if cur < hk[off]:
                hk[off] = cur
                _sift_down(hk, hi, off, hsize[lab], 0)
                continue
            break
        if hsize[lab] == 0:
            continue
        v = hk[off] + bonus[lab]
        i = hi[off]
        if best_i < 0 or v > best_v or (v == best_v and i < best_i):
            best_v = v
            best_i = i
    return best_i, best_v


class _Heap:
    """What both lazy heaps take (:class:`LazyMaxHeap`, :class:`NumpyLazyHeap`): the static part of the keys,
    DIVERSITY's state and strength, one label per candidate; and the candidates taken."""

    def __init__(self, fixed: np.ndarray, state: AnyFarthestState | None, strength: float,
                 labels: np.ndarray | None, n_labels: int) -> None:
        if strength < 0:
            raise ValueError("LazyMaxHeap needs a non-negative DIVERSITY strength (keys must only decrease)")
        n = len(fixed)
        self.fixed = np.ascontiguousarray(fixed, dtype=np.float64)
        self.has_div = state is not None
        self.strength = float(strength)
        self.labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        self.n_labels = max(int(n_labels), int(self.labels.max()) + 1 if n else 1)
        self.taken = np.zeros(n, dtype=np.bool_)

    def take(self, i: int) -> None:
        """Mark candidate ``i`` selected."""
        self.taken[i] = True

    def summary(self) -> str:
        """What the heap did, for the debug log."""
        return type(self).__name__


class LazyMaxHeap(_Heap):
    """Argmax of ``key_i + bonus[label_i]`` over unselected candidates, lowest index on ties, lazily.

    ``key_i = strength · 0.5 · log(max(min(d2_i / 4, 1), 1e-6)) + fixed_i`` (just ``fixed_i`` without
    DIVERSITY). Keys never increase (``d2`` only shrinks, ``strength >= 0``), so stored keys are upper bounds
    and a top whose stored key equals its current key is the exact maximum of its label.

    :param fixed: (N,) static part of the key (WEIGHTS, SIMILARITY, TYPICALITY terms).
    :param state: the live :class:`FarthestPointState` of DIVERSITY, or None.
    :param strength: DIVERSITY strength (>= 0).
    :param labels: (N,) int labels in ``[0, n_labels)`` for a per-label bonus (BALANCE), or None.
    """

    def __init__(self, fixed: np.ndarray, state: FarthestPointState | None, strength: float = 1.0,
                 labels: np.ndarray | None = None, n_labels: int = 1) -> None:
        super().__init__(fixed, state, strength, labels, n_labels)
        n = len(fixed)
        self.state = state
        if state is not None:
            state.fix_batch(HEAP_BATCH)
        order = np.argsort(self.labels, kind="stable")
        counts = np.bincount(self.labels, minlength=self.n_labels)
        self.hstart = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.hsize = counts.astype(np.int64)
        self.hi = order.astype(np.int64)
        d2 = state.d2 if state is not None else np.zeros(n)
        self.hk = _keys(d2, self.fixed, self.strength, self.has_div)[self.hi]
        self._zeros = np.zeros(n)
        self._arange = np.arange(n, dtype=np.int64)
        self._no_stamp = np.zeros(1, dtype=np.int32)  # (stands in for a state's int32 _stamp/_upto: unused)
        _heapify(self.hk, self.hi, self.hstart, self.hsize)

    def best(self, bonus: np.ndarray | None = None) -> tuple[int, float]:
        """(index, value) of the best unselected candidate, or (-1, -inf)."""
        b = np.zeros(self.n_labels) if bonus is None else np.ascontiguousarray(bonus, dtype=np.float64)
        st = self.state
        if st is None:
            i, v = _heap_best(self.hk, self.hi, self.hstart, self.hsize, self._zeros, self._arange, self.fixed,
                              self.taken, self.strength, self.has_div, b, np.zeros((1, 1), dtype=np.float32),
                              self._zeros, np.zeros(1, dtype=np.int32), np.zeros((1, 1)), np.zeros(1), 0, 0,
                              self._no_stamp, self._no_stamp, -1)
        else:  # distances the heap reads are brought up to date one by one (no pass per pick)
            i, v = _heap_best(self.hk, self.hi, self.hstart, self.hsize, st._d2, st.pos, self.fixed, self.taken,
                              self.strength, self.has_div, b, st.x, st.sqn, st.owner, st._pend64, st._pendsq,
                              st._npend, st._g0, st._stamp, st._upto, st._epoch)
        return int(i), float(v)


@njit(cache=True)
def _keys(d2, fixed, strength, has_div):  # type: ignore[no-untyped-def]
    out = np.empty(len(fixed))
    for i in range(len(fixed)):
        out[i] = _key(d2[i], fixed[i], strength, has_div)
    return out


# ------------------------------------------------------------------------- numpy-only state (small inputs)
NUMPY_MAX_ROWS = 20_000
"""Up to this many candidates :func:`farthest_point_state` uses :class:`NumpyDenseState` (no numba import:
importing numba and loading its cached kernels costs ~1 CPU-second per process, more than such a selection)."""
NUMPY_MAX_ROWS_HEAP = 40_000
"""... and up to this many when a heap reads the state (DIVERSITY with WEIGHTS, BALANCE …): since the numpy
heap plans its picks, in process, DIVERSITY x WEIGHTS, 64-D clusters, k = 2,000, numpy vs compiled state (same
picks): 30,000 rows 0.52 vs 0.71 s, 40,000 0.64 vs 0.74 s (128-D 0.64 vs 0.78 s; k = 500 0.53 vs 0.61 s; k =
5,000 0.92 vs 0.88 s; after a pool of 20,000 0.72 vs 0.91 s, of 100,000, k = 1,000, 1.30 vs 1.25 s), 50,000 0.88
vs 0.80 s; ~115 MiB less memory (no numba)."""
NUMPY_HEAP_WIDE_DIM = 512
NUMPY_MAX_ROWS_HEAP_WIDE = 100_000
"""... and a heap's state up to this many rows of at least :data:`NUMPY_HEAP_WIDE_DIM` dimensions (the compiled
bounds skip little there). In process, DIVERSITY x WEIGHTS, clustered, numpy vs compiled state (same picks):
60,000 x 1,280 k = 2,000 1.87 vs 4.49 s, k = 10,000 5.13 vs 8.88 s; 100,000 x 1,280 2.86 vs 6.80 s; 100,000 x 512
2.05 vs 2.60 s. At 256-D they meet (60,000 1.05 vs 1.18 s, 80,000 1.36 vs 1.37 s, 100,000 k = 10,000 3.52 vs
3.05 s): :data:`NUMPY_MAX_ROWS_WIDE` there."""
NUMPY_WIDE_DIM = 256
NUMPY_MAX_ROWS_WIDE = 50_000
"""... and up to this many candidates of at least :data:`NUMPY_WIDE_DIM` dimensions: there the compiled state's
bounds rarely skip work and its dense passes are not BLAS products. In process, same picks, numpy vs compiled
state: real-image embeddings 40,000 x 1,280 k = 2,000 1.23 vs 4.04 s, k = 5,000 3.66 vs 5.99 s, k = 10,000
5.81 vs 8.70 s; clustered 40,000 x 1,280 k = 2,000 1.72 vs 3.55 s; clustered 40,000 x 256 k = 2,000 0.74 vs
0.76 s, k = 10,000 2.00 vs 1.74 s and harder clusters 2.82 vs 2.21 s (less than numba's ~0.6 s load apart). At
200,000 x 256 clustered the compiled state's bounds win (k = 10,000: 10.3 vs 3.3 s): hence the limit. With a
pool (the lazy insert), k = 1,000: real images 25,000 after 15,000 1.87 vs 11.62 s; hard 256-D 30,000 after
30,000 1.74 vs 3.19 s; clustered 256-D 30,000 after 30,000 2.01 vs 1.89 s, after 100,000 3.61 vs 2.27 s (the
compiled cells win on low-intrinsic-dimension data with a pool several times the candidates)."""
NUMPY_POOL_WIDE = 1024
"""... and at any number of candidates of at least :data:`NUMPY_WIDE_DIM` dimensions after this many preselected
vectors: the compiled state's bulk insert (:func:`~lightly_airflow.selection.nearest.nearest_selected`) finds
every candidate's nearest pool vector, where the numpy state's lazy pool leaves most of the pool's products out.
In process, same picks, numpy vs compiled state, 100,000 candidates after 20,000, k = 2,000 (10,000): real-image
embeddings 4.37 vs 40.2 s (15.2 vs 50.7 s), 60,000 after 20,000 3.28 vs 24.8 s; 256-D without clusters 4.24 vs
8.77 s, clusters of intrinsic dimension 32 2.72 vs 14.5 s, 2,000 clusters 3.14 vs 14.8 s, hard clusters 2.50 vs
8.26 s; the compiled cells win on 100 tight clusters only: 3.57 vs 2.57 s (7.13 vs 2.80 s), where both are
many times faster than the float32 loop. (Without a pool the compiled state wins above 50,000 rows from
k = 10,000 on most 256-D data; at k = 2,000 the numpy state: both measured, the limit above kept.)"""

NUMPY_MAX_WORK = 200_000_000
"""... and at any dimension while candidates x picks is at most this (without a pool of :data:`NUMPY_POOL_WIDE`):
numba's load (~0.6 s) and the compiled passes cost more than the numpy state's per-pick Python there. In
process, same picks, numpy vs compiled state, no pool: 50,000 x 64 hard clusters, k = 1,000, 0.37 vs 1.10 s;
100,000 x 64, k = 2,000: clusters 0.64 vs 0.93 s, hard 0.90 vs 1.32, no clusters 0.71 vs 1.00, intrinsic
dimension 32 0.61 vs 0.95; 100,000 x 256, k = 2,000: 0.78-1.19 vs 1.73-2.55 s on five kinds; real images
100,000 x 1,280 1.99 vs 5.67 s. Past it they meet (200,000 x 64, k = 2,000: 1.38-1.48 vs 1.40-1.49 s; 100,000 x
64, k = 5,000: 1.66 vs 1.90 s; 100,000 x 256 clusters, k = 5,000: 3.36 vs 2.42 s) and then part (k = 10,000:
2.83-3.19 vs 1.43-1.85 s at 64-D; 1,000,000 x 64, k = 3,000: 9.6-10.6 vs 3.8-7.1 s). After a large pool of
64-D clusters the compiled cells win (50,000 after 100,000-200,000, k = 1,000: 3.48-5.50 vs 1.98-2.07 s).
Measured for DIVERSITY alone: a heap's reader (DIVERSITY x WEIGHTS …) goes by the other rules only
(:func:`uses_numpy_state`'s ``alone``): its per-pick Python grows with the rows near the top. In process, DIVERSITY
x WEIGHTS, 64-D clusters, numpy vs compiled: 20,000, k = 2,000, 0.70 vs 0.68 s; 50,000, k = 2,000, 1.45 vs
0.79 s; 200,000, k = 1,000, 4.08 vs 1.33 s; 1,000,000, k = 200, 17.0 vs 4.9 s; 60,000 x 256, k = 2,000, 1.69
vs 1.38 s."""

NUMPY_BATCH = 128
"""Selected vectors per pass of :class:`NumpyDenseState` for its first :data:`NUMPY_BATCH_GROW_AT` picks. Real-image
embeddings 8,000 x 1,280, in process, 9 interleaved rounds, same picks: k = 2,000 0.79 s with 64, 0.70 with 128,
0.68 with 256; k = 800 0.33 vs 0.32 s (64 vs 128)."""
NUMPY_BATCH_GROW_AT = 512
NUMPY_BATCH_GROWTH = 2
"""From :data:`NUMPY_BATCH_GROW_AT` selected vectors on, a pass of :class:`NumpyDenseState` waits for
:data:`NUMPY_BATCH_GROWTH` x :data:`NUMPY_BATCH` (the waiting rows' look-ahead stays :data:`NUMPY_DEFER_AHEAD` x
:data:`NUMPY_BATCH` vectors). Early picks fall steeply and use up the candidates before a batch fills; later ones come from plans, and a pass' sgemm of 8,000 x
1,280 rows runs at 139 GFLOP/s with 83 vectors, 191 with 128, 255 with 256 (this 2-core machine). Same picks, in
process, medians of 5 interleaved rounds (128 throughout -> growing): real images 8,000 x 1,280, k = 500 0.158 ->
0.147 s, 1,000 0.200 -> 0.201, 2,000 0.370 -> 0.333, 3,000 0.626 -> 0.602; 32,000 x 1,280 (those images
x 4, jittered) k = 1,000 0.586 -> 0.617, 3,000 2.27 -> 2.19; 20,000 x 64 clusters k = 3,000 0.299 -> 0.273;
20,000 x 256 k = 3,000 0.590 -> 0.540 (256 throughout: k = 500 0.174, k = 1,000 0.212 s)."""
NUMPY_CANDIDATES = 256
"""Rows of the highest bounds a pass of :class:`NumpyDenseState` keeps as candidates for the next picks. With
plans (:data:`NUMPY_PLAN_ROWS`) the candidates take the picks a plan at a time, not one product per pick: 128 ->
256 rows, DIVERSITY alone, same picks, in process 8,000 x 1,280 real images k = 2,000 0.89 -> 0.82 s (3 rounds;
512: 0.84 s), in select() 100,000 x 64 k = 2,000 0.72 -> 0.67 s, 100,000 x 256 1.22 -> 1.13 s, 1,000,000 x 64
k = 200 4.9 -> 4.6 s (2 rounds each)."""
NUMPY_CLOSE_ROWS = 128
"""When every row waits (a pool went in lazily), the rows of highest bounds that catch up in full first (more
of them: more products of the pool; 256 rows took 1.24x the products of 128 in the lazy pool test)."""
NUMPY_PLAN_ROWS = 32
"""Candidates among which :meth:`NumpyDenseState.farthest` plans the picks after each one (:func:`plan_picks`):
the candidates take a plan's picks at once when it ends. 0 or 1: no plans. DIVERSITY alone, real images 8,000 x
1,280, k = 2,000: 1,879 picks from 90 plans; 0.96 -> 0.92 s a process (5 interleaved rounds; 128 candidates)."""

NUMPY_PREFILTER = 16
NUMPY_PREFILTER_SHARE = 0.5
"""From :data:`NUMPY_PREFILTER` vectors on, ``NumpyDenseState._improve`` first finds in float32 the rows some
vector may improve, and takes the float64 filter for those alone when they are at most this share. In process,
3 interleaved rounds, same picks: real images 8,000 after a pool of 20,000, k = 2,000, 2.45-2.56 -> 2.24-2.38 s;
8,000 without a pool unchanged (0.54-0.59 s)."""
NUMPY_CHUNK_ROWS = 1024
"""Rows per chunk of a :class:`NumpyDenseState` pass (its float64 bounds and temporaries: ~1 MiB each at 128
pending vectors; chunks of 8,192 rows left ~2 MiB temporaries in every pass thread's allocator arena)."""
NUMPY_DEFER_AHEAD = 2
"""A pass of :class:`NumpyDenseState` called for the next pick multiplies only the rows whose upper bound
reaches the distance the picks are expected to fall to within this many batches (the last batch's fall per pick,
extrapolated); the others wait, and catch up on every vector they missed once their bound is reached, if ever.
0: every pass multiplies every row."""
NUMPY_POOL_LAZY = 1
"""A pool inserted at once (:meth:`NumpyDenseState.insert_many`) goes in lazily: each row takes its first block,
then only the rows that could hold a pick take the rest, block by block, stopping once their bound is below the
picks' expected distance. 8,000 real-image candidates after 20,000, k = 2,000, in process: 2.9-3.1 s -> 1.8-2.1 s
(39 % of the products); 0: every row takes the whole pool at once."""
NUMPY_POOL_AHEAD = 0.5
"""After a lazy pool, the batches of the picks' fall a pass looks ahead (:data:`NUMPY_DEFER_AHEAD` otherwise): a
row that starts catching up takes every pool block down to that distance, so a distance too low costs most of the
pool for rows that never matter (same data: 0.5 1.8-2.0 s, 1 2.1-2.5 s, 0 = the last pick's distance 4.4 s)."""
NUMPY_BULK_BLOCK = 512
"""Vectors per product when :meth:`NumpyDenseState.insert_many` applies a pool at once."""
NUMPY_MERGE_ROWS = 64
NUMPY_MERGE_VECTORS = 2048
"""Fewer rows than NUMPY_MERGE_ROWS catching up take the history they missed in products of up to this many
vectors at once."""
NUMPY_MIN_WORK_PER_THREAD = 2**18
"""Matrix entries (rows x dimension, a batch of vectors each) per thread below which :class:`NumpyDenseState`
applies vectors on the calling thread."""
NUMPY_GATHER_SHARE = 0.75
"""A chunk of rows to multiply is gathered (copied) when it is less than this share of the row range it spans;
else the range is multiplied in place and the other rows skipped."""
_BLOCK_VALUES = 2**18  # values per block of gathered rows / float64 temporaries (2 MiB of float64)
NUMPY_SCAN_ROWS = 2**16
"""Rows per block of :class:`NumpyDenseState`'s whole-row scans (a pass' bounds, the rows it takes, the best lower
bound, the argmax, the candidates, a catch-up's work split): ~0.5 MiB temporaries a scan instead of 8 bytes a row
each. 80,000 / 320,000 x 64, k = 200, whole ``select`` processes: the peak grew 1.43-1.52 bytes per matrix byte
with whole-row temporaries (seven of 8 bytes a row at once inside a pass' catch-up), see docs/selection.md
"Memory"."""


def _block_rows(dim: int) -> int:
    """Rows per block of row gathers and float64 temporaries at dimension ``dim`` (~2 MiB whatever D; blocks
    of 4,096 rows were 40 MiB at D = 1,280, 1x an 8,000 x 1,280 matrix)."""
    return max(64, _BLOCK_VALUES // max(dim, 1))
_SEQ_ROWS = 64  # rows per block of sequential_dots (the products stay in cache: 2.6x faster than 4,096)
_SEQ_FEW = 4  # up to this many rows sequential_dots accumulates along D (1, 2, 4 rows x 1,280: 8 / 13 / 23 us
# against 24 / 31 / 34 us through the D x m layout; 82 against 57 us at 16 rows)


PROJECTION_RANK = 128
"""Principal directions of the lifted projection (:class:`LiftedProjection`)."""
PROJECTION_MIN_DIM = 256
"""From this dimension on :class:`NumpyDenseState` filters rows with the projection bound (below it a row's
exact distance costs little more than its bound)."""
PROJECTION_MIN_ROWS = 2048
"""... and from this many rows on (the projection costs a fixed ~10 ms)."""
PROJECTION_MIN_PICKS = 3_000
"""... and only for at least this many selected vectors (picks + preselected, the state's ``capacity``): the
basis and lift cost ~0.09 s at 8,000 x 1,280 (~7 passes' products) and the bound excludes few rows in the first
passes (13-30 %), 50-80 % from ~500 picks on. Real-image embeddings 8,000 x 1,280, 7 interleaved rounds, state and
picks: k = 800 0.30 s without vs 0.42 s with; 2,000 0.70 vs 0.75; 3,000 1.04 vs 1.00; 4,000 1.09 vs 0.98."""
PROJECTION_SLACK = 1e-4
"""Distance slack per vector (times its norm) added to the float32 lift's proven error (see
:class:`LiftedProjection`): it covers the basis' orthonormality, float64 rounding and float32 storage (~1e-7).
A test breaks it on purpose (negative) and sees the picks change."""


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """float32 orthonormal columns spanning ``y``'s columns (dropping directions below 1e-6 of the largest
    singular value), from the eigenvectors of the small Gram matrix ``y^T y``: numpy's QR of the 2,048 x 136
    sample block worked on float64 copies and left ~6 MiB of freed heap resident each time."""
    w, v = np.linalg.eigh((y.T @ y).astype(np.float64))
    keep = w > max(float(w[-1]), 0.0) * 1e-12
    out: np.ndarray = y @ (v[:, keep] / np.sqrt(w[keep])).astype(np.float32)
    return out


_TRIM: Any = None


def release_freed_memory() -> None:
    """Hand the allocator's freed pages back to the system (glibc ``malloc_trim``; nothing elsewhere).

    glibc keeps freed heap memory resident until the top of its heap is free; the projection's and the
    passes' temporaries then stay in the peak RSS of a small wide selection (~10 MiB of 39 at 8,000 x 1280)."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


def _test_matrix(rows: int, cols: int, seed: int) -> np.ndarray:
    """A deterministic pseudo-random float32 matrix with entries in [-1, 1) (an integer hash of the entry's
    index): the range finder needs only a generic test matrix, not Gaussian entries."""
    h = np.arange(rows * cols, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(33)  # (splitmix64's finaliser)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    u = (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-23) - np.float32(1.0)
    return u.reshape(rows, cols)


class LiftedProjection:
    """Cheap exact lower bounds of distances: ``d(x, c) >= |z(x) - z(c)|`` with ``z(x) = (P^T x, rho(x))``.

    ``P`` (D x r) has orthonormal columns (the top principal directions of a sample of rows, randomized
    range finder with one power iteration, float64, orthonormalised by QR) and ``rho(x) = |x - P P^T x|``.
    Since ``|x - c|^2 = |P^T (x - c)|^2 + |r(x) - r(c)|^2`` and ``|r(x) - r(c)| >= |rho(x) - rho(c)|`` for
    the residual vectors ``r``, the lifted (r + 1)-D vectors are never farther apart than the D-D ones; with
    most of the energy in the first r directions (real image embeddings: 86 % in 128 of 1,280) the bound is
    close, and a row whose bound to every new pick exceeds its current nearest distance needs no D-D
    product at all.

    **Rounding.** ``P^T x`` is one float32 sgemm of the rows by ``P32`` (``P`` rounded to float32), ``rho``
    and the rest float64, the lifted vectors stored in float32 (``z``). Each stored vector is within ``eps(x)``
    (:meth:`lift`, per row) of the exact ``z`` of an exactly orthonormal ``P*``: every component of the
    float32 product errs by at most ``(gamma_D (1 + u) + u) |x|`` (any summation order: ``gamma_D |x| |P32_j|``
    by Cauchy-Schwarz; ``P32``'s rounding ``u |x|``; ``u = 2^-24``), so the vector ``P^T x`` by ``delta =
    sqrt(r) (gamma_D (1 + u) + u) |x|``; then ``| |u_c|^2 - |u*|^2 | <= (2 |u_c| + delta) delta = Delta`` and,
    both ``rho`` being non-negative square roots, ``|rho_c - rho*| <= min(sqrt(Delta), Delta / rho_c)``.
    ``PROJECTION_SLACK * |x|`` (1e-4) covers the rest: ``|P^T P - I| <= 1e-10`` is checked (so ``|P - P*| <=
    1e-10``), float64 rounding (~1e-12 |x|) and float32 storage (``2^-24 |z|``). At D = 1,280 ``eps`` is ~5e-3
    |x| (the float64 lift: ~4e-6 |x|, but 2.6 GFLOP of dgemm, 0.08 s); the bound excludes 49.6 % of the rows of
    a pass instead of 49.7 % (same picks). :meth:`thresholds` turns this into a proven test (see there).
    """

    def __init__(self, x: np.ndarray, sqn: np.ndarray, rank: int, seed: int = 0, sample: int = 2048,
                 threads: int = 1) -> None:
        n, dim = x.shape
        # A systematic row sample and a hashed test matrix, not numpy.random: loading numpy's random module
        # maps ~7 MiB of its libraries (0.18x an 8,000 x 1280 matrix) that no other part of a select needs.
        m = min(n, sample)
        idx = (np.arange(m, dtype=np.int64) * n + seed % max(n, 1)) // m if m else np.zeros(0, dtype=np.int64)
        # The range finder (S G, S^T Q, power iteration, SVD) only has to find good directions, so it runs in
        # float32 sgemm on the sample S (rows idx, gathered in blocks: S whole is 10 MiB at D = 1,280); the
        # proof needs only the final basis orthonormal in float64 (QR below) and the lift in float64.
        step = _block_rows(dim)
        blocks = [idx[a : a + step] for a in range(0, len(idx), step)]

        def s_times(m: np.ndarray) -> np.ndarray:  # S @ m
            return np.concatenate([x[b] @ m for b in blocks])

        def s_t_times(m: np.ndarray) -> np.ndarray:  # S^T @ m
            out = np.zeros((dim, m.shape[1]), dtype=np.float32)
            for a, b in zip(range(0, len(idx), step), blocks, strict=True):
                out += x[b].T @ m[a : a + len(b)]
            return out

        q = _orthonormal(s_times(_test_matrix(dim, rank + 8, seed)))
        q = _orthonormal(s_times(s_t_times(q)))  # one power iteration
        _, _, vt = np.linalg.svd(s_t_times(q).T, full_matrices=False)
        p, _ = np.linalg.qr(vt[:rank].T.astype(np.float64))
        rank = p.shape[1]  # (fewer where the sample spans fewer directions: rows of a lower rank)
        self.ok = bool(np.abs(p.T @ p - np.eye(rank)).max() <= 1e-10)
        self.p = p
        self.rank = rank
        release_freed_memory()  # (the basis' temporaries, before the lifted vectors are allocated)
        self.p32 = p.astype(np.float32)
        u = 2.0**-24
        gamma = (dim + 2) * u / (1.0 - (dim + 2) * u)
        self.lift_err = float(np.sqrt(rank) * (gamma * (1.0 + u) + u))  # (delta per unit of |x|)
        self.z = np.empty((n, rank + 1), dtype=np.float32)
        self.eps = np.empty(n)

        def lift_rows(lo_hi: tuple[int, int]) -> None:
            for a in range(lo_hi[0], lo_hi[1], step):
                e = min(lo_hi[1], a + step)
                self.z[a:e], self.eps[a:e] = self.lift(x[a:e], sqn[a:e])

        parts = even_shares(0, n, threads)
        if len(parts) == 1:
            lift_rows(parts[0])
        else:
            list(_pool(len(parts)).map(lift_rows, parts))
        self.zsq = np.einsum("ij,ij->i", self.z, self.z, dtype=np.float64)

    def lift(self, rows: np.ndarray, sqn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 lifted vectors of float32 ``rows`` with canonical squared norms ``sqn``, and each one's
        error bound ``eps`` (see the class' "Rounding")."""
        px = (rows @ self.p32).astype(np.float64)
        u2 = np.einsum("ij,ij->i", px, px)
        rho = np.sqrt(np.maximum(sqn - u2, 0.0))
        nx = np.sqrt(sqn)
        delta = self.lift_err * nx
        big = (2.0 * np.sqrt(u2) + delta) * delta
        with np.errstate(divide="ignore"):
            erho = np.minimum(np.sqrt(big), np.where(rho > 0.0, big / np.where(rho > 0.0, rho, 1.0), np.inf))
        eps = delta + erho + PROJECTION_SLACK * nx
        return np.concatenate([px, rho[:, None]], axis=1).astype(np.float32), eps

    def thresholds(self, d2: np.ndarray, eps: np.ndarray, eps_q: float, max_sq: float) -> np.ndarray:
        """Per row: a float32 lifted squared distance (``zsq_x + zsq_q - 2 z_x.z_q``, dot product in float32,
        any order) at or above this proves ``d(x, q)^2 >= d2 + 1e-9 max_sq``, i.e. the canonical distance
        cannot be strictly below ``d2``. Proof: by :func:`float32_margin` the exact ``|z^_x - z^_q|^2`` is
        at least the computed value minus ``m``, so ``|z^_x - z^_q| >= sqrt(d2 + tau) + eps_x + eps_q``, and
        ``|z_x - z_q| >= |z^_x - z^_q| - eps_x - eps_q`` (triangle inequality with the stored vectors' errors)
        bounds ``d(x, q)`` from below. ``inf`` rows (nothing selected yet) get ``inf``."""
        m = float32_margin(self.rank + 1, max_sq)
        t = np.sqrt(d2 + 1e-9 * max_sq) + (eps + eps_q)
        return t * t + m


def sequential_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products ``a[t] . b[t]`` of float32 ``a`` and float32/float64 ``b`` (same shape), as
    float64 products summed in order 0…D-1 (the canonical order; the same bits as the compiled kernels).

    The products are laid out D x m (C order) and reduced over the outer axis: numpy then adds whole rows in
    order (pairwise summation only applies along the contiguous axis); 4x faster than
    ``np.add.accumulate`` along the rows, which writes every partial sum (in blocks of :data:`_SEQ_ROWS` rows that
    stay in cache). Tested bit for bit."""
    m, d = a.shape
    out = np.zeros(m)
    if d == 0:
        return out
    if m <= _SEQ_FEW:  # (a few rows, the lazy canonical values of most picks: accumulate is 1.5-3x faster there)
        return np.add.accumulate(np.multiply(a, b, dtype=np.float64), axis=1)[:, -1]
    for s in range(0, m, _SEQ_ROWS):
        e = min(m, s + _SEQ_ROWS)
        # At least 2 columns: with one, numpy would reduce along the contiguous axis (pairwise summation).
        prod = np.empty((d, max(e - s, 2)))
        np.multiply(a[s:e].T, b[s:e].T, out=prod[:, : e - s], dtype=np.float64)  # (float64 products: exact)
        if e - s == 1:
            prod[:, 1] = prod[:, 0]
        out[s:e] = np.add.reduce(prod, axis=0)[: e - s]
    return out


def canonical_sqnorms_np(x: np.ndarray) -> np.ndarray:
    """:func:`canonical_sqnorms` in numpy (the same bits, :func:`sequential_dots`), the rows split over the
    selection's threads (8,000 x 1280: 40 ms on one)."""
    n = len(x)
    threads = max(1, min(selection_threads(), x.size // MIN_WORK_PER_THREAD))
    if threads == 1:
        return sequential_dots(x, x)
    out = np.empty(n)

    def part(a_b: tuple[int, int]) -> None:
        a, b = a_b
        out[a:b] = sequential_dots(x[a:b], x[a:b])

    list(_pool(threads).map(part, even_shares(0, n, threads)))
    return out


def work_cuts(blocks: Iterable[tuple[int, np.ndarray]], total: int, parts: int, n: int) -> list[int]:
    """Where to cut ``n`` positions into ``parts`` shares of about equal work: for each share boundary the first
    position whose running sum of work passes it (``np.searchsorted(np.cumsum(work), share, side="right")``),
    from ``blocks`` of (first position, that block's work), in order, without the whole running sum (8 bytes a
    row); ``total``: the sum of all the work."""
    if parts < 2:
        return []
    cut = np.full(parts - 1, n)
    shares, before = np.linspace(0, total, parts + 1)[1:-1], 0
    for a, work in blocks:
        run = np.cumsum(work, dtype=np.int64) + before
        here = (cut == n) & (shares < run[-1])
        cut[here] = np.searchsorted(run, shares[here], side="right") + a
        before = int(run[-1])
    return [int(c) for c in cut]


def plan_picks(xs: np.ndarray, sq: np.ndarray, d2: np.ndarray, rows: np.ndarray, first: int, top: float,
               margin: float, keys: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
               after: Callable[[int], float] | None = None) -> list[tuple[int, float, float]]:
    """The greedy picks after row ``first`` of a few rows near the top, as long as they are certain.

    ``xs``/``sq``/``d2``: the rows' float32 vectors, canonical squared norms and canonical squared distances to
    the selection (``d2`` is lowered in place); ``rows``: their indices (ties: the lowest); ``keys(d2, positions)``:
    their keys (None: the distance itself). Row ``first`` is being picked; each next pick is the row of highest
    key once the earlier ones are applied (canonical distances: :func:`sequential_dots`, where a float32 product
    minus ``margin`` does not prove the pair apart), while its key is strictly above ``top``, a bound of every
    other row's key: no row outside can reach it first, its distances only shrink. ``after(position)``, called
    as each pick is taken (``first`` too), returns ``top`` from then on (a BALANCE's bonuses change with the
    picks; ``keys`` reads them).

    :returns: (index, key, d2) of each planned pick, in order (picks far apart rarely change each other's values:
        real-image embeddings 8,000 x 1,280, k = 2,000, dense greedy: 7.7 / 15 / 28 / 51 picks a plan among 8 /
        16 / 32 / 64 rows).
    """
    with blas_one_thread():
        dots = xs @ xs.T
    approx = (sq[:, None] + sq[None, :]) - 2.0 * dots.astype(np.float64)
    if keys is None and after is None and bool(np.all(rows[1:] > rows[:-1])):
        return _plan_distances(xs, sq, d2, rows, first, top, margin, approx)
    live = np.ones(len(rows), dtype=np.bool_)
    c = first
    plan = []
    while True:
        live[c] = False
        if after is not None:
            top = after(c)
        near = np.flatnonzero(live & (approx[:, c] - margin < d2))  # (the others: proven not nearer)
        if len(near):
            e = (sq[near] + sq[c]) - 2.0 * sequential_dots(xs[near], np.broadcast_to(xs[c], (len(near), xs.shape[1])))
            d2[near] = np.minimum(d2[near], np.where(e > 0.0, e, 0.0))
        cand = np.flatnonzero(live)
        if not len(cand):
            break
        kc = d2[cand] if keys is None else keys(d2[cand], cand)
        k = float(kc.max())
        if not k > top:
            break
        ties = cand[kc == k]
        c = int(ties[np.argmin(rows[ties])])
        plan.append((int(rows[c]), k, float(d2[c])))
    return plan


def _plan_distances(xs: np.ndarray, sq: np.ndarray, d2: np.ndarray, rows: np.ndarray, first: int, top: float,
                    margin: float, approx: np.ndarray) -> list[tuple[int, float, float]]:
    """:func:`plan_picks` where the keys are the distances and ``rows`` ascend: the planned rows' values set to -inf
    (never near, never the maximum), so each pick is one filter and one argmax (the first maximum: the lowest row).
    About half the numpy calls a pick (8,000 x 1,280, k = 2,000: 1,894 of the picks come from plans)."""
    v = d2.copy()
    c = first
    plan: list[tuple[int, float, float]] = []
    while True:
        v[c] = -np.inf
        near = np.flatnonzero(approx[:, c] - margin < v)  # (the others: proven not nearer)
        if len(near):
            e = (sq[near] + sq[c]) - 2.0 * sequential_dots(xs[near], np.broadcast_to(xs[c], (len(near), xs.shape[1])))
            v[near] = d2[near] = np.minimum(v[near], np.where(e > 0.0, e, 0.0))
        c = int(np.argmax(v))
        k = float(v[c])
        if not k > top:
            return plan
        plan.append((int(rows[c]), k, k))


_TOP_SAMPLED = 32  # (values per wanted row from which top_rows samples a threshold first)


def top_rows(hi: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` highest values of ``hi`` (all when there are fewer; ties: any of them), in no order.

    From :data:`_TOP_SAMPLED` x ``m`` values on, a threshold from a strided sample (~8 m values, about the 2 m-th
    highest) leaves ~2 m values for ``argpartition``; where fewer than ``m`` reach it, all of them go (the same
    rows either way). 256 of 65,536 / 1,000,000 values: 0.07 / 0.5 ms against 0.44 / 35 ms for ``argpartition``
    over all (the candidates of every dense pass of :class:`NumpyDenseState`)."""
    n = len(hi)
    if m >= n:
        return np.arange(n)
    if n >= _TOP_SAMPLED * m:
        sample = hi[:: n // (8 * m)]
        r = 2 * m * len(sample) // n + 1
        idx = np.flatnonzero(hi >= np.partition(sample, len(sample) - r)[len(sample) - r])
        if len(idx) >= m:
            return idx[np.argpartition(hi[idx], len(idx) - m)[len(idx) - m :]]
    return np.argpartition(hi, n - m)[n - m :]


def plan_rows(hi: np.ndarray, m: int, first: int, labels: np.ndarray | None = None, n_labels: int = 1
              ) -> tuple[np.ndarray, np.ndarray]:
    """The positions among which :func:`plan_picks` plans, ascending: the ``m`` highest bounds ``hi`` of each label
    (``labels``: one per position; None: one label) and ``first``, the pick (its bound below m others': their values
    are at most its own); and per label the highest bound of the other positions (-inf: none). (Masks, no
    ``np.unique`` / ``np.maximum.at``: those took 4x the time of a plan's rows, 130 us against 35.)"""
    keep = np.zeros(len(hi), dtype=np.bool_)
    by_label = [np.arange(len(hi))] if labels is None else [np.flatnonzero(labels == lab) for lab in range(n_labels)]
    for idx in by_label:  # (with a BALANCE the next picks come from whichever label's bonus rises: the best of each)
        keep[idx[top_rows(hi[idx], m)]] = True
    keep[first] = True
    outside = np.full(n_labels, -math.inf)
    for lab, idx in enumerate(by_label):
        rest = idx[~keep[idx]]
        if len(rest):
            outside[lab] = hi[rest].max()
    return np.flatnonzero(keep), outside


class NumpyDenseState:
    """:class:`FarthestPointState`'s dense mode in numpy and BLAS only (same canonical values and picks).

    Selected vectors wait in a batch of :data:`NUMPY_BATCH`; a pass applies the batch to every row (float32 sgemm,
    the :func:`float32_margin` filter). Between passes the :data:`NUMPY_CANDIDATES` farthest rows of the last
    pass (a contiguous copy) get every new vector at once; their best is the next pick when it beats every
    other row's last-pass value (an upper bound: values only decrease), else a pass runs. Rows are never
    permuted (``restore`` does nothing).

    **Lazy canonical values.** A row's distance is kept either canonical (``err = 0``) or as the float32
    value of its nearest selected vector (``own``) with ``err`` = that pass' :func:`float32_margin`: a pass
    stores the float32 value when it proves that one pending vector is strictly nearer than the row's old
    value and not farther than any other pending vector (both by more than the margins). The canonical value
    (``canonical(x, own)``, the minimum since ``own`` is a proven nearest) is computed only where a decision
    needs it: the row competes for the next pick, the margins overlap, or a caller reads distances. A row's
    distance improves ~ln(k) times during a selection; computing every one exactly in numpy (sequential float64
    sums over D) cost more than the sgemm passes at D = 1,280.

    **Projection bound** (D >= :data:`PROJECTION_MIN_DIM`, :data:`PROJECTION_MIN_PICKS`): a pass first computes
    :class:`LiftedProjection` lower bounds of each row's distance to the pending vectors ((r + 1)-D sgemm) and
    multiplies in full only the rows where some bound is below the row's value: late in a selection most rows
    are skipped.

    **Waiting rows** (:data:`NUMPY_DEFER_AHEAD`). Once picks come from :meth:`farthest`, a pass multiplies only
    the rows whose upper bound reaches the distance the picks are expected to fall to within the next batches;
    the others keep their value (an upper bound) and the number of selected vectors applied to them (``_epoch``, a
    prefix of the history ``_hown``). A waiting row catches up on every vector it missed, in one product per
    block of vectors, when a later pass expects the picks to reach its bound, or at once when its bound reaches
    the best lower bound of the up-to-date rows (it could hold the maximum); most rows far below the final
    distance never do. Any reader of one row's or every row's distance brings the rows it needs up to date.
    A catch-up stops at a span's end once the row's bound is below the pass' distance (its epoch: that end), so a
    pool inserted at once (:data:`NUMPY_POOL_LAZY`) reaches most rows only in part: a datapool's new candidates
    are mostly near what it selected before.
    """

    def __init__(self, x: np.ndarray, capacity: int = 1024, sqnorms: np.ndarray | None = None) -> None:
        self.capacity = capacity
        self.inserted: list[np.ndarray] = []  # preselected vectors (the history's owners -1 - index)
        self._ins_sq = np.zeros(64)  # squared norms of the inserted vectors (the first len(inserted))
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        n, dim = self.x.shape
        self.n, self.dim = n, dim
        if sqnorms is not None and len(sqnorms) != n:
            raise ValueError(f"sqnorms: {len(sqnorms)} values for {n} rows")
        # (canonical: the streamed read computes them with the same function, sequential_dots)
        self.sqn = canonical_sqnorms_np(self.x) if sqnorms is None else np.asarray(sqnorms, dtype=np.float64)
        self.max_sq = max(1.0, float(self.sqn.max()) if n else 1.0)
        self._d2 = np.full(n, np.inf)
        self._err = np.zeros(n)  # 0: _d2 canonical; else |_d2 - canonical(x, own)| <= _err
        # (int32: the numpy state takes n x k <= NUMPY_MAX_WORK rows and holds every vector it had, so rows, the
        # history and the pools stay far below 2^31; 8 bytes a row less than int64)
        self._own = np.zeros(n, dtype=np.int32)  # nearest selected vector: row >= 0, or -1 - inserted index
        self.sel = np.zeros(n, dtype=np.bool_)
        self.stats = np.zeros(5, dtype=np.int64)  # (as FarthestPointState; exact distances, members seen)
        self._pend32 = np.zeros((NUMPY_BATCH * NUMPY_BATCH_GROWTH, dim), dtype=np.float32)
        self._pend64 = np.zeros((NUMPY_BATCH * NUMPY_BATCH_GROWTH, dim))
        self._npend = 0
        self._cand = np.zeros(0, dtype=np.int64)  # candidate rows, ascending (argmax ties: lowest index)
        self._cx = np.zeros((0, dim), dtype=np.float32)
        self._cd2 = np.zeros(0)
        self._cerr = np.zeros(0)
        self._cown = np.zeros(0, dtype=np.int32)
        self._csqn = np.zeros(0)  # the candidates' squared norms and selected flags (kept per pick)
        self._csel = np.zeros(0, dtype=np.bool_)
        self._tail = np.inf
        self._c_at = 0  # the selected vectors applied to the candidates (a plan's picks wait: _cand_update)
        self._next: tuple[int, float] | None = (0, np.inf) if n else (-1, -1.0)
        # farthest()'s planned picks (row, d2), next last (NUMPY_PLAN_ROWS), valid while they are selected in turn:
        # the last one answered and the n_added expected at the next call
        self._plan: list[tuple[int, float]] = []
        self.plan_rows = NUMPY_PLAN_ROWS
        self._plan_last = (-1, -1)
        self.plans = self.planned = 0  # plans of more than one pick, and picks answered from them (logs, tests)
        self.dense_passes = 0
        self.n_added = 0
        threads = max(1, min(selection_threads(), n * max(dim, 1) // MIN_WORK_PER_THREAD))
        self._threads = threads  # (a pass' threads)
        self.proj: LiftedProjection | None = None
        if dim >= PROJECTION_MIN_DIM and n >= PROJECTION_MIN_ROWS and min(capacity, n) >= PROJECTION_MIN_PICKS:
            with blas_one_thread():  # (LAPACK's threads on a busy machine: 10x slower, measured)
                proj = LiftedProjection(self.x, self.sqn, min(PROJECTION_RANK, dim // 4), threads=threads)
            release_freed_memory()
            if proj.ok:
                self.proj = proj
                self._pz = np.zeros((64, proj.rank + 1), dtype=np.float32)  # the history's lifted vectors
                self._pzsq = np.zeros(64)
                self._peps = np.zeros(64)
            else:
                logger.warning("selection: projection basis not orthonormal enough; exact dense passes only")
        self.rows_exact = 0  # rows a pass multiplied in full (the projection bound could not exclude them)
        self._epoch = np.zeros(n, dtype=np.int32)  # selected vectors applied to each row (a prefix of the history)
        self._hown = np.zeros(64, dtype=np.int64)  # every selected vector in order (owner codes, as _own)
        self._hsq = np.zeros(64)
        self._flushed = 0  # the history applied to every up-to-date row (the pending vectors follow)
        self._passes: list[int] = []  # the history's length at the end of each pass (rows' epochs are among them)
        self._last = np.inf  # the squared distance of the last answer of farthest()
        self._marks: list[tuple[int, float]] = []  # (vectors added, distance of the last pick) at such passes
        self.rows_waited = 0  # rows x passes left waiting
        self._lazy_pool = False  # (a pool went in lazily: rows wait from the first picks on, projection or not)
        self._pools: list[tuple[int, np.ndarray]] = []  # (first history index, vectors) of pools inserted at once
        self._known: dict[int, float] = {}  # values a reader computed while n_added was _known_at (remember)
        self._known_at = -1
        # A reader that keeps its own order of the rows (NumpyLazyHeap) says which rows may wait at a pass: per
        # row, the squared distance below which it waits (instead of _wait_below's one value for every row).
        self.wait_rows: Callable[[], np.ndarray] | None = None

    def _margin(self, qsq: float) -> float:
        return float32_margin(self.dim, max(self.max_sq, qsq))

    @property
    def _batch(self) -> int:
        """Selected vectors a pass waits for (:data:`NUMPY_BATCH_GROW_AT`)."""
        return NUMPY_BATCH if self.n_added < NUMPY_BATCH_GROW_AT else NUMPY_BATCH * NUMPY_BATCH_GROWTH

    def _vectors(self, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 vectors and canonical squared norms of selected vectors ``own`` (see ``_own``)."""
        vecs = self.x[np.maximum(own, 0)]
        vsq = self.sqn[np.maximum(own, 0)]
        ins = np.flatnonzero(own < 0)
        if len(ins):
            k = -1 - own[ins]
            vecs[ins] = np.stack([self.inserted[j] for j in k])
            vsq[ins] = self._ins_sq[k]
        return vecs, vsq

    def _canonical(self, rows: np.ndarray, sqn: np.ndarray, d2: np.ndarray, err: np.ndarray, own: np.ndarray,
                   idx: np.ndarray | None = None) -> None:
        """Make the values of ``rows`` (or of ``rows[idx]``) canonical, in place."""
        lazy_all = np.flatnonzero(err > 0) if idx is None else idx[err[idx] > 0]
        step = _block_rows(self.dim) // 4  # (the rows and their owners' vectors gathered in blocks: every lazy row
        for a in range(0, len(lazy_all), step):  # at once was +42 MiB after an 8,000 x 1,280 selection)
            lazy = lazy_all[a : a + step]
            vecs, vsq = self._vectors(own[lazy])
            v = (sqn[lazy] + vsq) - 2.0 * sequential_dots(rows[lazy], vecs)
            d2[lazy] = np.where(v > 0.0, v, 0.0)
            err[lazy] = 0.0
        self.stats[1] += len(lazy_all)

    def _improve(self, rows: np.ndarray, sqn: np.ndarray, d2: np.ndarray, err: np.ndarray, own: np.ndarray,
                 dots: np.ndarray, vecs: np.ndarray, vsq: np.ndarray, vown: np.ndarray, skip: np.ndarray) -> None:
        """Lower the values of ``rows`` (in place) where one of the selected vectors ``vecs`` (in pick order, with
        canonical squared norms ``vsq`` and owner codes ``vown``) is strictly nearer; ``dots[:, t]`` are float32
        dot products of ``rows`` with ``vecs[t]``.

        From :data:`NUMPY_PREFILTER` vectors on, most rows gain nothing from them: a float32 row minimum of
        ``vsq - 2 dot`` (rounding below 2^-22 of 3 max_sq, covered by 2^-20 max_sq) proves that for them, and the
        float64 filter (:meth:`_improve_rows`) takes the others alone when they are few."""
        if dots.shape[1] >= NUMPY_PREFILTER and len(rows) > 1:
            f32 = dots * np.float32(-2.0)
            f32 += vsq.astype(np.float32)
            slack = self._margin(float(vsq.max())) + 2.0**-20 * max(self.max_sq, float(vsq.max()))
            keep = (f32.min(axis=1) + sqn) - slack < d2 + err
            keep &= ~skip
            if not keep.any():
                return
            if np.count_nonzero(keep) <= NUMPY_PREFILTER_SHARE * len(rows):
                k = np.flatnonzero(keep)
                dk, ek, ok = d2[k], err[k], own[k]
                self._improve_rows(rows[k], sqn[k], dk, ek, ok, dots[k], vecs, vsq, vown, np.zeros(len(k), np.bool_))
                d2[k], err[k], own[k] = dk, ek, ok
                return
        self._improve_rows(rows, sqn, d2, err, own, dots, vecs, vsq, vown, skip)

    def _improve_rows(self, rows: np.ndarray, sqn: np.ndarray, d2: np.ndarray, err: np.ndarray, own: np.ndarray,
                      dots: np.ndarray, vecs: np.ndarray, vsq: np.ndarray, vown: np.ndarray, skip: np.ndarray) -> None:
        """:meth:`_improve` by the float64 filter.

        A pair can hold the new minimum only when its float32 value minus the margin ``m`` is below both the
        row's value plus its error and the smallest float32 value plus ``m``. A row with exactly one such
        pair, whose value plus ``m`` is below the old value minus its error, takes the float32 value (error
        ``m``, owner that vector): it is proven strictly nearer than the old minimum and not farther than any
        other pending vector. Every other row with candidates gets canonical values (old and candidates)."""
        p = dots.shape[1]
        m = self._margin(float(vsq.max()))
        approx = (sqn[:, None] + vsq[None, :]) - 2.0 * dots.astype(np.float64)
        amin = approx.min(axis=1)
        maybe = approx - m < np.minimum(d2 + err, amin + m)[:, None]
        maybe[skip] = False
        if not maybe.any():  # (most single picks between passes improve no candidate)
            return
        count = maybe.sum(axis=1)
        sure = (count == 1) & (amin + m < d2 - err)
        if sure.any():
            s = np.flatnonzero(sure)
            d2[s] = amin[s]
            err[s] = m
            own[s] = vown[approx[s].argmin(axis=1)]
        amb = np.flatnonzero((count > 0) & ~sure)
        if not len(amb):
            return
        self._canonical(rows, sqn, d2, err, own, amb)
        r, t = np.nonzero(maybe[amb] & (approx[amb] - m < d2[amb, None]))
        if not len(r):
            return
        e = np.full((len(amb), p), np.inf)
        step = _block_rows(self.dim)  # (pairs in blocks: float64 vectors of thousands of pairs x D otherwise)
        for a in range(0, len(r), step):
            rb, tb = r[a : a + step], t[a : a + step]
            rows_r = amb[rb]
            v = (sqn[rows_r] + vsq[tb]) - 2.0 * sequential_dots(rows[rows_r], vecs[tb])
            e[rb, tb] = np.where(v > 0.0, v, 0.0)
        self.stats[1] += len(r)
        best = e.argmin(axis=1)  # first minimum: the earliest pick among equal values
        ev = e[np.arange(len(amb)), best]
        better = ev < d2[amb]
        d2[amb[better]] = ev[better]
        own[amb[better]] = vown[best[better]]

    def _add(self, q32: np.ndarray, qsq: float, pick: int) -> None:
        j = self._npend
        self._pend32[j] = q32
        self._pend64[j] = q32
        self._npend += 1
        h = self.n_added
        if h == len(self._hown):  # (the history grows by doubling)
            self._hown, self._hsq = _doubled(self._hown), _doubled(self._hsq)
            if self.proj is not None:
                self._pz, self._pzsq, self._peps = _doubled(self._pz), _doubled(self._pzsq), _doubled(self._peps)
        self._hown[h] = pick if pick >= 0 else -len(self.inserted)  # (insert appended the vector already)
        self._hsq[h] = qsq
        if self.proj is not None:
            if pick >= 0:
                self._pz[h] = self.proj.z[pick]
                self._pzsq[h] = self.proj.zsq[pick]
                self._peps[h] = self.proj.eps[pick]
            else:
                z, eps = self.proj.lift(q32[None, :], np.array([qsq]))
                self._pz[h] = z[0]
                self._pzsq[h] = float(np.dot(z[0].astype(np.float64), z[0].astype(np.float64)))
                self._peps[h] = float(eps[0])
        if pick >= 0:
            self._d2[pick] = 0.0
            self._err[pick] = 0.0
            self.sel[pick] = True
        self._next = None
        self.n_added += 1
        if self._npend >= self._batch:
            self._flush(self.wait_rows() if self.wait_rows is not None else self._wait_below())
        elif len(self._cand) and pick < 0:
            # Preselected vectors come before any pick: the candidates are dropped rather than improved by each
            # one (the next farthest() runs a pass; 20,000 inserted into 8,000 x 1,280 rows: ~0.8 s of 3.1 s)
            self._cand = np.zeros(0, dtype=np.int64)
        elif len(self._cand):  # (a pick: inserted vectors dropped the candidates above)
            c = int(np.searchsorted(self._cand, pick))
            if c < len(self._cand) and self._cand[c] == pick:
                self._csel[c] = True
            if not (self._plan and self._plan_last[0] == pick):  # (a plan's picks: at once when it ends)
                self._cand_update()

    def _cand_update(self) -> None:
        """Apply to the candidates the selected vectors they have not had (each pick's at once; a plan's when
        it ends)."""
        if self._c_at == self.n_added:
            return
        for _, vecs32, vecs, vsq, vown in self._history(self._c_at, self.n_added):
            with blas_one_thread():  # (OpenBLAS threads a 256 x D product)
                dots = self._cx @ vecs32.T
            self._improve(self._cx, self._csqn, self._cd2, self._cerr, self._cown, dots, vecs, vsq, vown, self._csel)
        self._c_at = self.n_added

    def _wait_below(self) -> float:
        """The squared distance below which rows may wait at the next pass (0: none wait): the last pick's
        distance minus :data:`NUMPY_DEFER_AHEAD` batches of its fall per pick since about one batch ago
        (:data:`NUMPY_POOL_AHEAD` after a lazy pool, and the last pick's distance itself until a fall over 32+
        picks is known). Only once :meth:`farthest` has answered a finite distance (a caller reading distances
        row by row never makes rows wait); with the projection bound only after a lazy pool."""
        if NUMPY_DEFER_AHEAD <= 0 or not np.isfinite(self._last) or (self.proj is not None and not self._lazy_pool):
            return 0.0
        now, s = self.n_added, float(np.sqrt(self._last))
        ref = next((m for m in reversed(self._marks) if m[0] <= now - self._batch), None)
        if ref is None and self._marks and self._marks[0][0] <= now - NUMPY_BATCH // 4:
            ref = self._marks[0]  # (a fall over fewer picks, the first ones' steep one, would say 0)
        self._marks.append((now, s))
        if ref is None or (self._lazy_pool and NUMPY_POOL_AHEAD == 0):  # (no fall measured yet: after a lazy
            return float(self._last) if self._lazy_pool else 0.0  # pool, the last pick's distance)
        fall = max(ref[1] - s, 0.0) / (now - ref[0])
        t = s - (NUMPY_POOL_AHEAD if self._lazy_pool else NUMPY_DEFER_AHEAD) * NUMPY_BATCH * fall
        return t * t if t > 0.0 else 0.0

    def _flush(self, wait_below: float | np.ndarray = 0.0) -> None:
        """A pass: the pending vectors, and every vector a waiting row missed, applied to each unselected row
        whose upper bound is at least ``wait_below`` (0: every row), then to each waiting row that could hold
        the maximum; then the next pick and the candidates. Per-row ``wait_below`` (:attr:`wait_rows`): the
        reader decides which rows it needs; no maximum, no candidates."""
        total = self.n_added
        need = self._rows_where(lambda a, b: self._bounds(a, b) >= (
            wait_below[a:b] if isinstance(wait_below, np.ndarray) else wait_below))
        self.rows_waited += self.n - int(np.count_nonzero(self.sel)) - len(need)
        self._catch_up(need, total, stop_below=wait_below)
        del need
        self._npend = 0
        if total > self._flushed:
            self._passes.append(total)
        self._flushed = total
        self.dense_passes += 1
        if isinstance(wait_below, np.ndarray):
            self._next, self._cand = None, np.zeros(0, dtype=np.int64)
            return
        self._close()
        self._next = self._argmax_all(total)
        self._candidates(total)

    def _scan(self) -> Iterator[tuple[int, int]]:
        """The rows in blocks of :data:`NUMPY_SCAN_ROWS` (whole-row scans: their temporaries per block)."""
        return ((a, min(a + NUMPY_SCAN_ROWS, self.n)) for a in range(0, self.n, NUMPY_SCAN_ROWS))

    def _rows_where(self, mask: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """Ascending positions of the rows where ``mask(a, b)`` (one block's booleans) holds (int64: int32 positions
        cost a conversion at every gather, 8,000 x 1,280 real images 0.35 -> 0.38 s)."""
        parts = [np.flatnonzero(mask(a, b)) + a for a, b in self._scan()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _bounds(self, a: int, b: int) -> np.ndarray:
        """Upper bounds of the canonical values of rows ``a`` to ``b`` (selected: -1, below all)."""
        hi = self._d2[a:b] + self._err[a:b]
        hi[self.sel[a:b]] = -1.0
        return hi

    def _argmax_all(self, total: int) -> tuple[int, float]:
        """:meth:`_argmax` of every row after a pass (history ``total``), block by block: (row, value) of the
        largest canonical value (lowest row on ties), or (-1, -1). Rows waiting (epoch below ``total``) only bound
        from above (:meth:`_close` brought up to date every one that could reach the best lower bound)."""
        d2, err, sel = self._d2, self._err, self.sel
        lo_max = -1.0
        for a, b in self._scan():
            lo = d2[a:b] - err[a:b]
            lo[sel[a:b] | (self._epoch[a:b] != total)] = -1.0
            lo_max = max(lo_max, float(lo.max()))
        contenders = self._rows_where(lambda a, b: self._bounds(a, b) >= lo_max)
        return self._best_canonical(self.x, self.sqn, d2, err, self._own, contenders, sel[contenders], contenders)

    def _candidates(self, total: int) -> None:
        """The candidates after a pass (history ``total``): the :data:`NUMPY_CANDIDATES` highest bounds of the
        up-to-date rows (each block's highest first, then the highest of those; ties: any of them), ascending,
        with copies of their vectors and values, and ``_tail``, the highest bound of every other row."""
        m = min(NUMPY_CANDIDATES, self.n)
        pos, val = [], []
        for a, b in self._scan():
            v = np.where((self._epoch[a:b] == total) | self.sel[a:b], self._bounds(a, b), -2.0)
            top = top_rows(v, m)
            pos.append(top + a)
            val.append(v[top])
        p, v = (np.concatenate(pos), np.concatenate(val)) if pos else (np.zeros(0, np.int64), np.zeros(0))
        if m < len(v):
            top = top_rows(v, m)
            p, v = p[top], v[top]
        self._cand = np.sort(p[v > -2.0])  # (-2: a waiting row; a selected up-to-date one is -1, a candidate)
        tail = -1.0
        for a, b in self._scan():
            hi = self._bounds(a, b)
            hi[self._cand[np.searchsorted(self._cand, a) : np.searchsorted(self._cand, b)] - a] = -np.inf
            tail = max(tail, float(hi.max()))
        self._tail = tail
        self._cx = self.x[self._cand]
        self._cd2 = self._d2[self._cand].copy()
        self._cerr = self._err[self._cand].copy()
        self._cown = self._own[self._cand].copy()
        self._csqn = self.sqn[self._cand]
        self._csel = self.sel[self._cand]
        self._c_at = total

    def _close(self) -> None:
        """Bring up to date every waiting row whose bound reaches the best lower bound of the up-to-date rows
        (such a row could hold the maximum), until none does. Needs no pending vectors."""
        d2, err, sel = self._d2, self._err, self.sel
        while True:
            waits, lo_max = False, -np.inf
            for a, b in self._scan():
                current = self._epoch[a:b] == self._flushed
                waits = waits or bool(np.any(~current & ~sel[a:b]))
                current &= ~sel[a:b]
                if current.any():
                    lo_max = max(lo_max, float((d2[a:b] - err[a:b])[current].max()))
            if not waits:
                return
            if lo_max == -np.inf:  # (every row waits, after a pool went in lazily: the highest bounds catch up in
                waiting = (self._epoch != self._flushed) & ~sel  # full first; once, so whole rows)
                hi = np.where(waiting, d2 + err, -np.inf)
                top = np.argsort(-hi, kind="stable")[:NUMPY_CLOSE_ROWS]
                self._catch_up(np.sort(top[waiting[top]]), self._flushed)
                continue
            def reaches(a: int, b: int, t: float = lo_max) -> np.ndarray:
                mask: np.ndarray = (self._epoch[a:b] != self._flushed) & ~sel[a:b] & (d2[a:b] + err[a:b] >= t)
                return mask

            late = self._rows_where(reaches)
            if not len(late):
                return
            # (a row whose bound falls below lo_max on the way cannot hold the maximum: it waits from there)
            self._catch_up(late, self._flushed, stop_below=lo_max if np.isfinite(lo_max) else 0.0)

    def _history(self, a: int, b: int, block: int = 0
                 ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Selected vectors ``a`` to ``b`` in blocks of :data:`NUMPY_BULK_BLOCK` (:data:`NUMPY_BATCH` from the
        pending ones on): (first index, float32 vectors, the same for the canonical sums, squared norms, owner
        codes); the pending ones straight from their buffers."""
        pend = self.n_added - self._npend
        block = block or (NUMPY_BULK_BLOCK if a < pend else self._batch)
        for s in range(a, b, block):
            e = min(b, s + block)
            if s >= pend:
                sl = slice(s - pend, e - pend)
                yield s, self._pend32[sl], self._pend64[sl], self._hsq[s:e], self._hown[s:e]
                continue
            own = self._hown[s:e]
            pool = next(((b0, q) for b0, q in self._pools if b0 <= s and e <= b0 + len(q)), None)
            if pool is not None:  # (a pool inserted at once: a view, no copy)
                vecs = pool[1][s - pool[0] : e - pool[0]]
            else:
                vecs, _ = self._vectors(own)
            yield s, vecs, vecs, self._hsq[s:e], own

    def _catch_up(self, rows: np.ndarray, total: int, stop_below: float | np.ndarray = 0.0) -> None:
        """Apply to each of ``rows`` (unselected, ascending) the selected vectors from its epoch to ``total``, on
        the pass threads (each takes a share of the rows through every span of the history they missed); a row
        whose bound falls below ``stop_below`` (one value, or one per row of the state) after a span waits from
        there (its epoch: that span's end)."""
        if not len(rows):
            return
        # The rows' first epoch and their work (vectors missed), block by block (whole-row int64 copies and sums
        # of every row were the peak of a 320,000-row selection)
        blocks = [(a, min(a + NUMPY_SCAN_ROWS, len(rows))) for a in range(0, len(rows), NUMPY_SCAN_ROWS)]
        a0, missed = total, 0
        for a, b in blocks:
            ep = self._epoch[rows[a:b]]
            a0, missed = min(a0, int(ep.min())), missed + total * (b - a) - int(ep.sum(dtype=np.int64))
        # The history between passes (an epoch is always a pass' end), each span applied at once to every row
        # that missed it.
        ends = [b for b in self._passes[bisect.bisect_right(self._passes, a0) :] if b < total] + [total]
        spans = list(zip([a0, *ends[:-1]], ends, strict=True))
        stops = isinstance(stop_below, np.ndarray) or stop_below > 0.0

        def below(group: np.ndarray) -> np.ndarray:
            """Whether each row of ``group`` has its bound below ``stop_below`` (in blocks of rows)."""
            out = np.empty(len(group), dtype=np.bool_)
            for a in range(0, len(group), NUMPY_SCAN_ROWS):
                g = group[a : a + NUMPY_SCAN_ROWS]
                t = stop_below[g] if isinstance(stop_below, np.ndarray) else stop_below
                out[a : a + NUMPY_SCAN_ROWS] = self._d2[g] + self._err[g] < t
            return out

        def part(lo_hi: tuple[int, int]) -> tuple[int, int]:
            sub = rows[lo_hi[0] : lo_hi[1]]
            sub_ep = self._epoch[sub]  # (a copy: fancy indexing)
            active = np.ones(len(sub), dtype=np.bool_)
            done = products = 0
            i = 0
            while i < len(spans):
                a, b = spans[i]
                take = active & (sub_ep <= a)
                count = int(np.count_nonzero(take))
                if not count:
                    i += 1
                    continue
                j = i
                few = count < NUMPY_MERGE_ROWS
                if few:
                    # Few rows: the next spans too, in products of up to NUMPY_MERGE_VECTORS vectors (a product per
                    # span of a few rows cost more in calls than in multiply-adds), up to where another row joins.
                    joins = set(sub_ep[active & (sub_ep > a)].tolist())  # (not np.unique: it imports numpy.ma, ~10 ms)
                    while (j + 1 < len(spans) and spans[j][1] not in joins
                           and spans[j + 1][1] - a <= NUMPY_MERGE_VECTORS):
                        j += 1
                    b = spans[j][1]
                i = j + 1
                every = count == len(sub)  # (every row of the share: no gathered copy of their positions)
                group = sub if every else sub[take]
                for h, vecs32, vecs, vsq, vown in self._history(a, b, NUMPY_MERGE_VECTORS if few else 0):
                    m = self._apply(group, h, vecs32, vecs, vsq, vown)
                    done += m
                    products += m * len(vsq)
                sub_ep[take] = b
                if stops:
                    if every:
                        active[below(group)] = False
                    else:
                        active[take] = ~below(group)  # (active there before)
            self._epoch[sub] = sub_ep  # (each thread its own rows)
            return done, products

        # Threads by the work (a row's missed vectors over a batch count as one row of a pass), split evenly by it
        work = missed * self.dim // NUMPY_BATCH
        threads = max(1, min(self._threads, work // NUMPY_MIN_WORK_PER_THREAD))
        cut = work_cuts(((a, total - self._epoch[rows[a:b]]) for a, b in blocks), missed, threads, len(rows))
        bounds = [0, *cut, len(rows)]
        parts = [(bounds[t], bounds[t + 1]) for t in range(threads)]
        with blas_one_thread():  # (BLAS' own threads on a busy machine: 1.5x the wall time, measured)
            # (numpy releases the GIL in sgemm and the ufuncs; the parts' rows are disjoint)
            counts = [part(parts[0])] if threads == 1 else list(_pool(self._threads).map(part, parts))
        self.rows_exact += sum(c[0] for c in counts)
        self.stats[3] += sum(c[1] for c in counts)

    def _apply(self, rows: np.ndarray, h: int, vecs32: np.ndarray, vecs: np.ndarray, vsq: np.ndarray,
               vown: np.ndarray) -> int:
        """Apply the selected vectors ``h, h + 1, …`` to ``rows`` (unselected, ascending) in chunks of
        :data:`NUMPY_CHUNK_ROWS`, each first filtered by the projection bound (when there is one); the rows
        multiplied."""
        x, sqn, d2, err, own = self.x, self.sqn, self._d2, self._err, self._own
        proj = self.proj
        nvec = len(vsq)
        max_sq = max(self.max_sq, float(vsq.max()))
        if proj is not None:
            pz = self._pz[h : h + nvec]
            peps = float(self._peps[h : h + nvec].max())
            pzsq32 = self._pzsq[h : h + nvec].astype(np.float32)
        # Rows gathered per product: ~2 MiB of float32 rows, float64 temporaries of at most _BLOCK_VALUES; each
        # block's Python and numpy calls hold the GIL the other pass threads need (8,000 x 1280, 2 threads: 0.91
        # -> 0.82 s in-process for blocks of 409 rows instead of 102, medians of 9)
        gather = max(32, min(2 * _BLOCK_VALUES // max(self.dim, 1), _BLOCK_VALUES // max(nvec, 1)))

        def chunk(g: np.ndarray) -> int:
            if proj is not None:
                # Rows whose lifted bound to every pending vector proves no strict improvement are done (the
                # row's value plus its error bounds its canonical value from above).
                # lb = zsq + pzsq - 2 zd < thr for some pending vector <=> max(2 zd - pzsq) > zsq - thr: the
                # left side in float32, in place (2 zd is exact; pzsq's and the difference's rounding are each
                # below 2^-24 of 2 max_sq, covered by lowering the right side by 2^-20 max_sq), instead of five
                # float64 (rows x pending) temporaries.
                zd = proj.z[g] @ pz.T
                zd *= np.float32(2.0)
                zd -= pzsq32
                thr = proj.thresholds(d2[g] + err[g], proj.eps[g], peps, max_sq)
                c = (proj.zsq[g] - thr) - 2.0**-20 * max_sq
                g = g[zd.max(axis=1) > c]
                if not len(g):
                    return 0
            lo, hi = int(g[0]), int(g[-1]) + 1
            if len(g) >= NUMPY_GATHER_SHARE * (hi - lo):  # most of the range: multiplied in place
                skip = np.ones(hi - lo, dtype=np.bool_)
                skip[g - lo] = False
                xs = x[lo:hi]
                self._improve(xs, sqn[lo:hi], d2[lo:hi], err[lo:hi], own[lo:hi], xs @ vecs32.T, vecs, vsq, vown,
                              skip)
                return hi - lo
            for a in range(0, len(g), gather):  # (rows gathered in blocks: 40 MiB at D = 1,280 whole)
                r = g[a : a + gather]
                xr, dr, er, orr = x[r], d2[r], err[r], own[r]
                self._improve(xr, sqn[r], dr, er, orr, xr @ vecs32.T, vecs, vsq, vown,
                              np.zeros(len(r), dtype=np.bool_))
                d2[r], err[r], own[r] = dr, er, orr
            return len(g)

        # Chunks of at most NUMPY_CHUNK_ROWS rows: a range of the matrix (multiplied in place) where the rows are
        # most of it, else that many rows gathered.
        done, i, chunk_rows = 0, 0, NUMPY_CHUNK_ROWS
        while i < len(rows):
            j = int(np.searchsorted(rows, rows[i] + chunk_rows, side="left"))
            if j - i < NUMPY_GATHER_SHARE * chunk_rows:
                j = min(len(rows), i + chunk_rows)
            done += chunk(rows[i:j])
            i = j
        return done

    def _argmax(self, rows: np.ndarray, sqn: np.ndarray, d2: np.ndarray, err: np.ndarray, own: np.ndarray,
                hi: np.ndarray, index: np.ndarray) -> tuple[int, float]:
        """(index[t], value) of the largest canonical value of the candidates' copies (lowest t on ties; ``hi <
        0``: selected), or (-1, -1). Only rows whose upper bound reaches the best lower bound get canonical values
        (every row after a pass: :meth:`_argmax_all`)."""
        if not len(hi):
            return -1, -1.0
        contenders = np.flatnonzero(hi >= np.where(hi < 0.0, -1.0, d2 - err).max())
        return self._best_canonical(rows, sqn, d2, err, own, contenders, hi[contenders] < 0.0, index[contenders])

    def _best_canonical(self, rows: np.ndarray, sqn: np.ndarray, d2: np.ndarray, err: np.ndarray, own: np.ndarray,
                        contenders: np.ndarray, selected: np.ndarray, names: np.ndarray) -> tuple[int, float]:
        """(``names[t]``, value) of the largest canonical value among ``contenders`` (their canonical values
        computed first; ``selected``: out; lowest t on ties), or (-1, -1): the last step of :meth:`_argmax` and
        :meth:`_argmax_all`."""
        if not len(contenders):
            return -1, -1.0
        self._canonical(rows, sqn, d2, err, own, contenders)
        keys = np.where(selected, -1.0, d2[contenders])
        t = int(np.argmax(keys))
        return (int(names[t]), float(keys[t])) if keys[t] >= 0.0 else (-1, -1.0)

    @property
    def d2(self) -> np.ndarray:
        """(N,) canonical squared distance of every candidate to its nearest selected vector."""
        self.sync()
        for a, b in self._scan():
            self._canonical(self.x, self.sqn, self._d2, self._err, self._own, np.flatnonzero(self._err[a:b] > 0) + a)
        return self._d2

    def max_d2(self) -> float:
        """The largest canonical squared distance (selected rows included): canonical values only for the
        rows whose upper bound reaches the best lower bound (reading every value canonically took 0.07 s of a
        0.5 s selection of 8,000 x 1280). After picks by :meth:`farthest` alone (a finite answer, no reader's own
        rows), its next answer: the plan or the candidates prove it without the pass over every row this took
        otherwise (19-48 ms after 2,000 picks of 8,000 x 1,280)."""
        if not self.n:
            return -1.0
        if self.wait_rows is None and np.isfinite(self._last):
            i, v = self.farthest()
            return v if i >= 0 else 0.0  # (every row selected: each at distance 0)
        if self._npend:
            self._flush(self.wait_rows() if self.wait_rows is not None else self._wait_below())
        self._close()  # (after a pass of a reader's own rows: the waiting rows that could hold the maximum)
        d2, err = self._d2, self._err  # (waiting rows' bounds are below the up-to-date rows' best lower bound)
        lo_max = max(float(np.where((self._epoch[a:b] == self._flushed) | self.sel[a:b], d2[a:b] - err[a:b],
                                    -1.0).max()) for a, b in self._scan())
        contenders = self._rows_where(lambda a, b: d2[a:b] + err[a:b] >= lo_max)
        self._canonical(self.x, self.sqn, d2, err, self._own, contenders)
        return float(self._d2[contenders].max())

    def sync(self) -> None:
        """Every row up to date (no pending vectors, no waiting rows)."""
        if self._npend or any(np.any((self._epoch[a:b] != self._flushed) & ~self.sel[a:b]) for a, b in self._scan()):
            self._flush()

    def select(self, i: int) -> None:
        self._add(self.x[i].copy(), float(self.sqn[i]), int(i))

    def insert(self, vec: np.ndarray) -> None:
        q = np.array(vec, dtype=np.float32, copy=True).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ValueError(f"preselected embedding has dimension {q.shape[1]}, candidates {self.dim}")
        qsq = float(canonical_sqnorms_np(q)[0])
        self.inserted.append(q[0])
        while len(self._ins_sq) < len(self.inserted):
            self._ins_sq = _doubled(self._ins_sq)
        self._ins_sq[len(self.inserted) - 1] = qsq
        self._add(q[0], qsq, -1)

    def insert_many(self, vecs: np.ndarray) -> None:
        """:meth:`insert` each row of ``vecs`` in order. Before any pick, from :data:`NUMPY_BATCH` vectors on,
        all at once: their norms and lifted vectors in one product each, then one pass in blocks of
        :data:`NUMPY_BULK_BLOCK` vectors, lazily (:data:`NUMPY_POOL_LAZY`: rows take the blocks they need, when
        they need them, by the farthest point's distance or :class:`NumpyLazyHeap`'s key level; the same values
        as one at a time wherever they are read). One at a time spent ~1.3 of
        4.3 s in per-vector work for 20,000 into 8,000 x 1,280 candidates. A float32 C-ordered ``vecs`` is kept
        by reference (the caller must not change it afterwards)."""
        q = np.ascontiguousarray(vecs, dtype=np.float32)  # (kept, not copied, when already so: never written)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"preselected embeddings have shape {q.shape}, candidates have dimension {self.dim}")
        if len(q) < NUMPY_BATCH or self.sel.any():
            for row in q:
                self.insert(row)
            return
        if self._npend:
            self._flush()
        qsq = canonical_sqnorms_np(q)
        h0, first = self.n_added, len(self.inserted)
        self.inserted.extend(q)  # (row views of q)
        self._pools.append((h0, q))
        while len(self._ins_sq) < len(self.inserted):
            self._ins_sq = _doubled(self._ins_sq)
        self._ins_sq[first : len(self.inserted)] = qsq
        while len(self._hown) < h0 + len(q):  # (the history grows by doubling)
            self._hown, self._hsq = _doubled(self._hown), _doubled(self._hsq)
            if self.proj is not None:
                self._pz, self._pzsq, self._peps = _doubled(self._pz), _doubled(self._pzsq), _doubled(self._peps)
        h1 = h0 + len(q)
        self._hown[h0:h1] = -1 - (first + np.arange(len(q)))
        self._hsq[h0:h1] = qsq
        if self.proj is not None:
            step = _block_rows(self.dim)
            for a in range(0, len(q), step):
                z, eps = self.proj.lift(q[a : a + step], qsq[a : a + step])
                self._pz[h0 + a : h0 + a + len(z)] = z
                z64 = z.astype(np.float64)
                self._pzsq[h0 + a : h0 + a + len(z)] = np.einsum("ij,ij->i", z64, z64)
                self._peps[h0 + a : h0 + a + len(z)] = eps
        self.n_added = h1
        self._next = None
        self._cand = np.zeros(0, dtype=np.int64)
        if NUMPY_POOL_LAZY and NUMPY_DEFER_AHEAD > 0:
            # Lazily: each row takes the pool's first block (a finite bound), then only the rows that could hold
            # the first pick take the rest; the others catch up block by block while the picks' distance falls
            # to their bound, and stop once below it (most rows near the pool never take most of it).
            self._passes.extend(range(h0 + NUMPY_BULK_BLOCK, h1, NUMPY_BULK_BLOCK))
            self._lazy_pool = True
            self._flush(np.inf)
        else:
            self._flush()

    def farthest(self) -> tuple[int, float]:
        if self._next is None and self._plan:
            last, added = self._plan_last
            if self.n_added == added and self.sel[last]:  # (the caller selected the last answer)
                self._next = self._plan.pop()
                self._plan_last = (self._next[0], self.n_added + 1)
                self.planned += 1
            else:
                self._plan = []
        if self._next is None:
            if len(self._cand):
                self._cand_update()
                hi = np.where(self._csel, -1.0, self._cd2 + self._cerr)
                i, v = self._argmax(self._cx, self._csqn, self._cd2, self._cerr, self._cown, hi, self._cand)
                if i >= 0 and v > self._tail:
                    self._next = (i, v)
                    if self.plan_rows > 1:
                        self._make_plan(i, hi)
            if self._next is None:
                self._flush(self._wait_below())
        assert self._next is not None
        if self._next[0] >= 0:
            self._last = self._next[1]
        return self._next

    def _make_plan(self, i: int, hi: np.ndarray) -> None:
        """Plan the picks after candidate row ``i`` (being answered) among the ``plan_rows``
        (:data:`NUMPY_PLAN_ROWS`) unselected candidates of highest bounds ``hi`` (selected: -1): :func:`plan_picks`,
        the bound outside them the other candidates' and the last pass' for every other row (``_tail``)."""
        live = np.flatnonzero(hi >= 0.0)
        if len(live) < 2:
            return
        c = int(np.flatnonzero(live == np.searchsorted(self._cand, i))[0])
        at, outside = plan_rows(hi[live], self.plan_rows, c)
        top = max(self._tail, float(outside[0]))
        live = live[at]
        self._canonical(self._cx, self._csqn, self._cd2, self._cerr, self._cown, live)
        plan = plan_picks(self._cx[live], self._csqn[live], self._cd2[live], self._cand[live],
                          int(np.flatnonzero(at == c)[0]), top, self._margin(float(self._csqn[live].max())))
        if plan:
            self.plans += 1
            self._plan = [(r, d) for r, _, d in reversed(plan)]
            self._plan_last = (i, self.n_added + 1)

    def remember(self, rows: np.ndarray, d2: np.ndarray) -> None:
        """Canonical squared distances of ``rows`` with every selected vector applied, computed by a reader
        (:class:`NumpyLazyHeap`'s front): :meth:`distance2` answers from them until the next pick."""
        if self._known_at != self.n_added:
            self._known_at, self._known = self.n_added, {}
        self._known.update(zip(rows.tolist(), d2.tolist(), strict=True))

    def distance2(self, i: int) -> float:
        if self._next is not None and self._next[0] == i:
            return self._next[1]
        if self._known_at == self.n_added and i in self._known:
            return self._known[i]
        self._canonical(self.x, self.sqn, self._d2, self._err, self._own, np.array([i]))
        d = float(self._d2[i])
        # the vectors this row has not had yet: the pending ones (and any it missed while waiting)
        for _, _, vecs, vsq, _ in self._history(self.n_added if self.sel[i] else int(self._epoch[i]), self.n_added):
            acc = sequential_dots(np.broadcast_to(self.x[i], vecs.shape), vecs)
            v = (self.sqn[i] + vsq) - 2.0 * acc
            d = min(d, float(np.where(v > 0.0, v, 0.0).min()))
        return d

    def restore(self) -> None:
        """Rows are never permuted: nothing to undo. The selection is over: the passes' freed temporaries go
        back to the system before the metrics allocate theirs (see :func:`release_freed_memory`)."""
        release_freed_memory()


AnyFarthestState = FarthestPointState | NumpyDenseState


HEAP_ROWS = 64
"""Rows :class:`NumpyLazyHeap` moves from its heaps into its front at once when a heap's top beats the front
(one product of them with the pending vectors). With plans (:data:`HEAP_PLAN_ROWS`), DIVERSITY x WEIGHTS, k =
2,000, real images 8,000 x 1,280, 5 interleaved rounds a process: 16 rows 1.03 s, 32 0.97 s, 64 0.95 s; after a
pool of 20,000 (3 rounds) 2.37, 2.35 and 2.47 s (2026-12-02). With :data:`HEAP_ROWS_LATE` (2026-12-06, in process,
idle machine, 5 interleaved rounds, the same picks; 32 / 64 / 96 / 128 rows): 8,000 x 1,280 480 / 438 / 440 /
431 ms, 40,000 x 1,280 1052 / 992 / 960 / 964 ms, 8,000 after 20,000 1439 / 1439 / 1454 / 1482 ms; with a BALANCE
of three classes too, 8,000 x 1,280: 806 / 749 / 745 ms."""

HEAP_ROWS_LATE = 32
"""Of the :data:`HEAP_ROWS` rows of a fill, those after this many stop at the first row that waits (its bound
behind the passes: it would lower the level and catch a band of waiting rows up, :meth:`NumpyLazyHeap._lower`):
it stays in its heap and the fill ends there. Extra rows pay where they are up to date; after a pool most rows
wait, and 64 rows without this stop took 1558 ms against 1439 ms (8,000 after 20,000, in process)."""

HEAP_FRONT = 256
"""Rows :class:`NumpyLazyHeap`'s front holds at most; beyond, those with the lowest bounds go back to the heaps."""

HEAP_PLAN_ROWS = 32
"""Rows of :class:`NumpyLazyHeap`'s front (the highest bounds, of each label) among which it plans the next
picks when it returns one: the picks that follow are those rows in their greedy order, one after the other, as
long as the next one's exact value beats every bound outside them (picks far apart rarely change each other's
values; a BALANCE's bonuses are counted as the plan goes). Real-image embeddings 8,000 x 1,280, k = 2,000, dense
greedy: 7.7 / 15 / 28 / 51 picks a plan with 8 / 16 / 32 / 64 rows. 0 or 1: no plans."""

HEAP_BAND_ROWS = 2048
HEAP_BAND_SHARE = 0.05
"""When a row whose state waits reaches the top of :class:`NumpyLazyHeap`, the waiting rows with the highest
bounds of their keys catch up with it, at least this many and this share of them (one catch-up of many rows
over the history they missed instead of one per surfacing row). In process, DIVERSITY x WEIGHTS, k = 2,000:
1,024 rows / 25 % took 2.7-2.9 s for real images 8,000 x 1,280 after 20,000 and 8.1 s for 60,000 x 1,280
clustered after 20,000 (each band caught 15,000 rows up on the whole pool); 2,048 / 5 % 2.8-3.0 s and 4.6 s
(the compiled state: 4.6 s); 100,000 x 256 after 20,000: 4.7 -> 2.7 s."""


def _key_np(d2: float, fixed: float, strength: float, has_div: bool) -> float:
    """:func:`_key` without numba (one value)."""
    if not has_div:
        return fixed
    return strength * 0.5 * math.log(min(max(d2 / 4.0, 1e-6), 1.0)) + fixed


class NumpyLazyHeap(_Heap):
    """:class:`LazyMaxHeap` (the same keys, argmax and ties) over a :class:`NumpyDenseState` or no state,
    without numba: a **front** of the rows near the top, kept with every selected vector applied, and one
    ``heapq`` of ``(-key, index)`` per label for the others (stored keys are upper bounds: distances only
    shrink).

    Each pick applies the new vector to the front's rows (one product of at most :data:`HEAP_FRONT` rows);
    the front's best is the rows' maximum once it beats the top of every heap (its key plus the label's
    bonus, lowest index on ties): only the rows whose bounds reach the best lower bound get canonical values.
    Else the :data:`HEAP_ROWS` best tops move into the front (their values: the state's, and the pending vectors
    in one product) and the front's lowest bounds go back when it is full. Recomputing the top rows of a heap
    from all pending vectors at every pick (each pick makes every stored key stale) took 0.2-0.3 ms a pick.

    **Waiting rows.** Keys start from the state's upper bounds (a pool taken lazily: each row has had its first
    block). The heap keeps a key level ``level``: at a pass (:attr:`NumpyDenseState.wait_rows`) only the rows
    whose bound's key reaches it take the batch, the others wait (most rows of a selection never come near the
    top: far below in distance or in weight). A waiting row that surfaces first gets the key of its current
    bound (no work: a tighter upper bound); where that is its stored key, the level falls to it, or lower to
    take in :data:`HEAP_BAND_ROWS` / :data:`HEAP_BAND_SHARE` of the waiting rows, and every waiting row whose
    bound's key reaches the new level catches up at once (a row whose bound falls below it on the way waits
    from there). Stored keys stay upper bounds whatever waits, so the picks are those of every row up to date.
    (Per row, each surfacing row caught up alone over many spans, this was measured slower: 3.1-3.5 s against
    1.7-1.9 s per process at 8,000 x 1,280, 27 s against 4.3 s after a pool of 20,000.) DIVERSITY x WEIGHTS had
    taken the compiled state and its heap whatever the input's size: numba's load alone is ~0.6 s of a process
    (real-image embeddings 8,000 x 1,280, k = 2,000: 2.7 s a process against 1.9 s for the float32 loop)."""

    def __init__(self, fixed: np.ndarray, state: NumpyDenseState | None, strength: float = 1.0,
                 labels: np.ndarray | None = None, n_labels: int = 1,
                 bonus_after: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        super().__init__(fixed, state, strength, labels, n_labels)
        n = len(fixed)
        self.state = state
        # The labels' bonuses once more picks of each label are counted (a BALANCE's ``bucket_bonus``; the last
        # label counts for no class): what plans need to know the bonuses of the picks that follow.
        self.bonus_after = bonus_after
        self.level = -math.inf  # rows whose bound's key is below it may wait at passes
        if state is not None:
            keys = self._keys(np.where(state.sel, 0.0, state._d2 + state._err), self.fixed)  # (upper bounds)
            if self.strength > 1e-6:  # (a vanishing strength: every key is its weight's; nothing to wait for)
                self.level = math.inf
                state.wait_rows = self._wait_rows
        else:
            keys = self.fixed
        self.heaps: list[list[tuple[float, int]]] = [[] for _ in range(self.n_labels)]
        for i, (lab, k) in enumerate(zip(self.labels.tolist(), keys.tolist(), strict=True)):
            self.heaps[lab].append((-k, i))
        for h in self.heaps:
            heapq.heapify(h)
        # The front: slots of rows (-1: free; a row taken frees its slot), their vectors and norms, values (d2,
        # err, own as the state's) with the history up to _f_at applied.
        dim = state.dim if state is not None else 0
        c = min(HEAP_FRONT + HEAP_ROWS, n)
        self.f_rows = np.full(c, -1, dtype=np.int64)
        self._fx = np.zeros((c, dim), dtype=np.float32)
        self._fsqn, self._fd2, self._ferr = np.zeros(c), np.full(c, np.inf), np.zeros(c)
        self._fown = np.zeros(c, dtype=np.int64)
        self._f_at = 0
        self.evaluated = self.returned = 0  # rows moved into the front, and back to the heaps (logs and tests)
        self.bands = self.band_rows = 0  # catch-ups of waiting rows, and their rows
        self.cut = 0  # fills ended at a waiting row (HEAP_ROWS_LATE)
        self._thr: tuple[float, np.ndarray] | None = None
        # Planned picks (row, value, d2, the labels' bonuses expected with it), next last, valid while the engine
        # takes them in turn: the last row returned and the number of selected vectors expected at the next call.
        self._plan: list[tuple[int, float, float, np.ndarray | None]] = []
        self.plan_rows = HEAP_PLAN_ROWS if self.n_labels == 1 or bonus_after is not None else 0
        self._plan_last = (-1, -1)
        self.plans = self.planned = 0  # plans of more than one pick, and picks returned from them (logs, tests)

    def _keys(self, d2: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """:func:`_key_np` of many rows (DIVERSITY)."""
        keys: np.ndarray = self.strength * 0.5 * np.log(np.clip(d2 / 4.0, 1e-6, 1.0)) + fixed
        return keys

    def _wait_rows(self) -> np.ndarray:
        """Per row, the squared distance below which its key is below ``level`` (it may wait): inf where even
        distance 2 stays below, 0 where every distance reaches it; a hair low (rows near it take the batch)."""
        if self._thr is None or self._thr[0] != self.level:
            with np.errstate(over="ignore", invalid="ignore"):
                e = np.exp(2.0 * (self.level - self.fixed) / self.strength)
            t = np.where(e > 1.0, np.inf, np.where(e <= 1e-6, 0.0, 4.0 * e * (1.0 - 1e-9)))
            self._thr = (self.level, t)
        return self._thr[1]

    def _late(self, i: int) -> bool:
        st = self.state
        assert st is not None
        return bool(st._epoch[i] != st._flushed and not st.sel[i])

    def _lower(self, key: float, row: int) -> None:
        """The level down to ``key`` (``row``'s: it must catch up) or to the key that takes in a band of the
        waiting rows, and every waiting row whose bound's key reaches it caught up (``row`` in full)."""
        st = self.state
        assert st is not None
        waiting = np.flatnonzero((st._epoch != st._flushed) & ~st.sel & ~self.taken)
        keys = self._keys(st._d2[waiting] + st._err[waiting], self.fixed[waiting])
        m = min(len(waiting), max(HEAP_BAND_ROWS, int(HEAP_BAND_SHARE * len(waiting))))
        level = key
        if m:
            level = min(level, float(np.partition(keys, len(keys) - m)[len(keys) - m]))
        self.level = level
        take = keys >= level
        take[np.searchsorted(waiting, row)] = True  # (its key computed one by one: maybe other rounding)
        rows = waiting[take]
        self.bands += 1
        self.band_rows += len(rows)
        st._catch_up(rows, st._flushed, stop_below=self._wait_rows())
        if self._late(row):  # (its bound fell below the level on the way; a hair, by rounding)
            st._catch_up(np.array([row]), st._flushed)

    def _apply(self, start: int, x: np.ndarray, sqn: np.ndarray, d2: np.ndarray, err: np.ndarray, own: np.ndarray,
               skip: np.ndarray) -> None:
        """Apply the selected vectors from ``start`` on to rows ``x`` (values ``d2, err, own``, in place)."""
        st = self.state
        assert st is not None
        for _, vecs32, vecs, vsq, vown in st._history(start, st.n_added):
            with blas_one_thread():  # (OpenBLAS threads a 256 x D product)
                dots = x @ vecs32.T
            st._improve(x, sqn, d2, err, own, dots, vecs, vsq, vown, skip)

    def _advance(self) -> None:
        """Apply to the front the vectors selected since it was last brought up to date."""
        st = self.state
        if st is None or self._f_at == st.n_added:
            return
        self._apply(self._f_at, self._fx, self._fsqn, self._fd2, self._ferr, self._fown, self._free())
        self._f_at = st.n_added

    def _free(self) -> np.ndarray:
        """The front's free slots (never used, or their row taken)."""
        rows = self.f_rows
        free: np.ndarray = (rows < 0) | self.taken[np.maximum(rows, 0)]
        return free

    def _front_best(self, bonus: np.ndarray) -> tuple[int, float, int]:
        """(row, value, front slot) of the front's best untaken row, or (-1, -inf, -1)."""
        alive = ~self._free()
        if not alive.any():
            return -1, -math.inf, -1
        rows = np.maximum(self.f_rows, 0)
        b = bonus[self.labels[rows]]
        st = self.state
        if st is None:
            vals = np.where(alive, self.fixed[rows] + b, -np.inf)
        else:
            d2, err = self._fd2, self._ferr
            hi = np.where(alive, self._keys(d2 + err, self.fixed[rows]) + b, -np.inf)
            lo = np.where(alive, self._keys(np.maximum(d2 - err, 0.0), self.fixed[rows]) + b, -np.inf)
            cont = np.flatnonzero(hi >= lo.max())
            st._canonical(self._fx, self._fsqn, d2, err, self._fown, cont)
            vals = np.full(len(rows), -np.inf)
            vals[cont] = self._keys(d2[cont], self.fixed[rows[cont]]) + b[cont]
        top = np.flatnonzero(vals == vals.max())
        t = int(top[np.argmin(rows[top])])  # (ties: the lowest index)
        return int(rows[t]), float(vals[t]), t

    def _top(self, lab: int, bonus: np.ndarray) -> tuple[float, int] | None:
        """(stored key plus bonus, -index) of heap ``lab``'s top untaken row (taken rows above it dropped), or
        None when it is empty: larger is better, ties to the lowest index."""
        h = self.heaps[lab]
        while h and self.taken[h[0][1]]:
            heapq.heappop(h)
        return (-h[0][0] + float(bonus[lab]), -h[0][1]) if h else None

    def _fill(self, bonus: np.ndarray) -> None:
        """Move the :data:`HEAP_ROWS` best heap tops (key plus bonus; after :data:`HEAP_ROWS_LATE` of them, up to the
        first that waits) into the front: a row first takes the key of
        its bound in the state (pushed back where lower: no product), and where it waits catches up with a band;
        then the pending vectors."""
        st = self.state
        moved: list[int] = []
        # (~120 pops a fill, half of them keys gone stale at a pass and pushed back: the loop reads the arrays with
        # item() and the one heap without the labels' comparison, 3.1 -> ~1.5 us a pop)
        heaps, taken, fixed, strength = self.heaps, self.taken, self.fixed, self.strength
        bonuses = bonus.tolist()
        pop, push = heapq.heappop, heapq.heappush
        while len(moved) < HEAP_ROWS:
            h = heaps[0]
            if len(heaps) == 1:
                while h and taken.item(h[0][1]):
                    pop(h)
                if not h:
                    break
            else:
                best: tuple[float, int] | None = None
                for lb, hl in enumerate(heaps):  # (the best top of any label: key plus bonus, the lowest index)
                    while hl and taken.item(hl[0][1]):
                        pop(hl)
                    if hl and (best is None or (-hl[0][0] + bonuses[lb], -hl[0][1]) > best):
                        best, h = (-hl[0][0] + bonuses[lb], -hl[0][1]), hl
                if best is None:
                    break
            neg, j = pop(h)
            if st is not None:
                # Its bound in the state (the last pass', or where it waits) first: lower, it goes back
                k = min(_key_np(st._d2.item(j) + st._err.item(j), fixed.item(j), strength, True), -neg)
                if k < -neg:
                    push(h, (-k, j))
                    continue
                if st._epoch.item(j) != st._flushed and not st.sel.item(j):  # (it waits: _late)
                    if len(moved) >= HEAP_ROWS_LATE:  # (it stays in its heap: the fill ends here)
                        push(h, (neg, j))
                        self.cut += 1
                        break
                    self._lower(k, j)
            moved.append(j)
        if not moved:
            return
        self.evaluated += len(moved)
        rows = np.asarray(moved, dtype=np.int64)
        self._advance()  # (the front and the new rows at the same point: the pending vectors)
        free = np.flatnonzero(self._free())
        if len(free) < len(rows):
            # The front full: the rows with the lowest bounds go back to their heaps (keys: upper bounds).
            used = np.flatnonzero(~self._free())
            fr = self.f_rows[used]
            keys = (self._keys(self._fd2[used] + self._ferr[used], self.fixed[fr]) if st is not None
                    else self.fixed[fr])
            # (ties: the highest indices go, the lowest would beat the front's best from the heap)
            go = np.lexsort((-fr, keys + bonus[self.labels[fr]]))[: len(rows) - len(free) + HEAP_ROWS]
            for j, k in zip(fr[go].tolist(), keys[go].tolist(), strict=True):
                heapq.heappush(self.heaps[int(self.labels[j])], (-k, j))
            out = used[go]
            self.f_rows[out] = -1
            self.returned += len(out)
            free = np.sort(np.concatenate([free, out]))
        slots = free[: len(rows)]
        self.f_rows[slots] = rows
        if st is None:
            return
        xr, sqn = st.x[rows], st.sqn[rows]
        d2, err, own = st._d2[rows], st._err[rows], st._own[rows]  # (copies: fancy indexing)
        self._apply(st._flushed, xr, sqn, d2, err, own, np.zeros(len(rows), dtype=np.bool_))
        self._fx[slots], self._fsqn[slots] = xr, sqn
        self._fd2[slots], self._ferr[slots], self._fown[slots] = d2, err, own

    def best(self, bonus: np.ndarray | None = None) -> tuple[int, float]:
        """(index, value) of the best unselected candidate, or (-1, -inf)."""
        st = self.state
        b = np.zeros(self.n_labels) if bonus is None else np.asarray(bonus, dtype=np.float64)
        if self._plan:
            last, added = self._plan_last
            want = self._plan[-1][3]
            # (the engine took the last one, and the bonuses are those the plan counted on)
            if st is not None and st.n_added == added and self.taken[last] and (want is None or
                                                                                 np.array_equal(want, b)):
                i, v, d2, _ = self._plan.pop()
                st.remember(np.array([i]), np.array([d2]))
                self._plan_last = (i, st.n_added + 1)
                self.planned += 1
                return i, v
            self._plan = []
        self._advance()
        while True:
            i, v, t = self._front_best(b)
            tops = [top for lab in range(self.n_labels) if (top := self._top(lab, b)) is not None]
            if not tops or (i >= 0 and max(tops) < (v, -i)):
                if i >= 0 and st is not None:
                    st.remember(np.array([i]), self._fd2[t : t + 1])
                    if self.plan_rows > 1:
                        self._make_plan(t, b)
                        self._plan_last = (i, st.n_added + 1)
                return i, v
            self._fill(b)

    def _make_plan(self, t: int, bonus: np.ndarray) -> None:
        """Plan the picks after the front's row in slot ``t`` (the pick being returned, with the labels' bonuses
        ``bonus``) among the ``plan_rows`` (:data:`HEAP_PLAN_ROWS`) front rows of highest bounds: see
        :func:`plan_picks`; the bound outside them: the heaps' tops and the front's other rows. With labels (a
        BALANCE) the best rows of each label (:func:`plan_rows`; the best 32 whatever their label gave 112 of 2,000
        picks from plans, 32 of each 1,857, real images 8,000 x 1,280, three classes); the plan counts each pick's
        class and asks :attr:`bonus_after` for the bonuses of the next pick (the engine must pass the same), and the
        bound outside is per label plus its bonus at that point."""
        st = self.state
        assert st is not None
        slots = np.flatnonzero(~self._free())
        if len(slots) < 2:
            return
        rows = self.f_rows[slots]
        hi = self._keys(self._fd2[slots] + self._ferr[slots], self.fixed[rows])
        c = int(np.flatnonzero(slots == t)[0])
        labs = self.labels[rows]
        at, outside = plan_rows(hi, self.plan_rows, c, labs if self.n_labels > 1 else None, self.n_labels)
        no_bonus = np.zeros(self.n_labels)
        for lab in range(self.n_labels):  # (and the heaps' tops)
            if (ht := self._top(lab, no_bonus)) is not None:
                outside[lab] = max(outside[lab], ht[0])
        top = float((outside + bonus).max())  # (with labels: after() from the first pick on)
        slots, labs = slots[at], labs[at]
        st._canonical(self._fx, self._fsqn, self._fd2, self._ferr, self._fown, slots)
        fixed = self.fixed[self.f_rows[slots]]
        now = bonus.copy()  # (the bonuses of the next pick, as the plan goes)
        counted = np.zeros(self.n_labels - 1)
        wants: list[np.ndarray | None] = []

        def after(pos: int) -> float:
            assert self.bonus_after is not None
            if labs[pos] < len(counted):  # (the last label counts for no class)
                counted[labs[pos]] += 1
            now[:] = self.bonus_after(counted)
            wants.append(now.copy())
            return float((outside + now).max())

        def keys(d2: np.ndarray, pos: np.ndarray) -> np.ndarray:
            k = self._keys(d2, fixed[pos])
            return k if self.n_labels == 1 else k + now[labs[pos]]

        plan = plan_picks(self._fx[slots], self._fsqn[slots], self._fd2[slots], self.f_rows[slots],
                          int(np.flatnonzero(at == c)[0]), top, st._margin(float(self._fsqn[slots].max())), keys,
                          after if self.n_labels > 1 else None)
        if plan:
            self.plans += 1
            if self.n_labels == 1:
                wants = [None] * len(plan)
            self._plan = [(i, v, d2, b) for (i, v, d2), b in zip(plan, wants, strict=False)][::-1]

    def summary(self) -> str:
        st = self.state
        text = (f"NumpyLazyHeap: {self.evaluated} rows into the front, {self.returned} back, {self.planned} picks "
                f"from {self.plans} plans")
        if st is not None:
            text += (f", {self.bands} catch-ups of waiting rows ({self.band_rows} rows), {self.cut} fills ended at a "
                     f"waiting row, rows x passes waited "
                     f"{st.rows_waited}, row x vector products {int(st.stats[3])}")
        return text


def _doubled(a: np.ndarray) -> np.ndarray:
    """``a`` with as many zero rows again after it (a growing history)."""
    return np.concatenate([a, np.zeros_like(a)])


def uses_numpy_state(n: int, dim: int, pool: int = 0, picks: int | None = None, alone: bool = True) -> bool:
    """Whether :func:`farthest_point_state` takes the numpy-only state for ``n`` candidates of ``dim``
    dimensions after ``pool`` preselected vectors, for ``picks`` picks (unknown: None), DIVERSITY ``alone`` or read
    by a heap (:data:`NUMPY_MAX_ROWS`, :data:`NUMPY_MAX_ROWS_HEAP` and :data:`NUMPY_MAX_ROWS_HEAP_WIDE`: read by a
    heap only, :data:`NUMPY_MAX_ROWS_WIDE`, :data:`NUMPY_POOL_WIDE`, :data:`NUMPY_MAX_WORK`: alone only)."""
    if n <= NUMPY_MAX_ROWS or (dim >= NUMPY_WIDE_DIM and (n <= NUMPY_MAX_ROWS_WIDE or pool >= NUMPY_POOL_WIDE)):
        return True
    if not alone:
        return n <= NUMPY_MAX_ROWS_HEAP or (dim >= NUMPY_HEAP_WIDE_DIM and n <= NUMPY_MAX_ROWS_HEAP_WIDE)
    return picks is not None and pool < NUMPY_POOL_WIDE and n * picks <= NUMPY_MAX_WORK


def warm_compiled_state() -> None:
    """Import numba and load the compiled state's first kernel from its on-disk cache (~1 CPU-second once per
    process, most of it the compiler's set-up on the first load; later kernels load in milliseconds). The
    ``select`` command calls it while the embeddings are still being read when the compiled state will take
    them, so that second is spent beside the read instead of after it."""
    canonical_sqnorms(np.zeros((1, 1), dtype=np.float32))  # (same signature as the state's: float32, 2-D, C)


def farthest_point_state(x: np.ndarray, capacity: int = 1024, pool: int = 0, alone: bool = True,
                         sqnorms: np.ndarray | None = None) -> AnyFarthestState:
    """The exact state for ``x`` (``pool``: the number of preselected vectors to be inserted, ``capacity`` minus
    it the picks wanted; ``alone``: DIVERSITY is the only objective, no heap reads the state): numpy-only where
    :func:`uses_numpy_state`, else the compiled one. ``sqnorms``: the rows' canonical squared norms when known
    (:class:`NumpyDenseState` takes them; the compiled state computes its own)."""
    n, dim = x.shape
    if uses_numpy_state(n, dim, pool, picks=max(capacity - pool, 0), alone=alone):
        return NumpyDenseState(x, capacity=capacity, sqnorms=sqnorms)
    return FarthestPointState(x, capacity=capacity)


def farthest_point_order(
    x: np.ndarray,
    n: int,
    *,
    preselected: np.ndarray | None = None,
    min_distance: float | None = None,
    progress_every: float = 10.0,
    state: AnyFarthestState | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Exact greedy farthest-point (k-center) order, lowest index on ties.

    :param x: (N, D) float32 candidates.
    :param n: number of picks wanted.
    :param preselected: (P, D) float32 vectors that count as already selected.
    :param min_distance: stop before a pick whose distance to the nearest selected is below this.
    :param progress_every: seconds between INFO progress logs.
    :param state: an existing state over ``x`` to continue (for metrics afterwards); new when omitted.
    :returns: (indices in pick order, distance of each pick to the nearest earlier-selected, stop reason).
    """
    if state is None:
        pool = 0 if preselected is None else len(preselected)
        state = farthest_point_state(x, capacity=n + pool, pool=pool)
    if preselected is not None:
        state.insert_many(preselected)  # (copied first: the state may permute state.x in place)
    picks: list[int] = []
    dists: list[float] = []
    reason = "n_reached"
    last_log = time.monotonic()
    while len(picks) < n:
        i, r2 = state.farthest()
        if i < 0:
            reason = "no_candidates_left"
            break
        d = float(np.sqrt(r2)) if np.isfinite(r2) else float("inf")
        if min_distance is not None and d < min_distance:
            reason = "minimum_distance"
            break
        picks.append(i)
        dists.append(d)
        state.select(i)
        if time.monotonic() - last_log > progress_every:
            last_log = time.monotonic()
            logger.info("farthest-point: %d/%d picks, current distance %.4f", len(picks), n, d)
    state.restore()
    logger.debug("farthest-point: groups visited %d, exact distances %d, moves %d, members seen %d, "
                 "float32 distances %d", *state.stats)
    return np.asarray(picks, dtype=np.int64), np.asarray(dists, dtype=np.float64), reason
