"""Selection quality metrics (issue item 7), computed blockwise: never an N×N or k×N matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from lightly_airflow.selection.kernels import AnyFarthestState, blas_one_thread

COVERAGE_SAMPLE = 100_000


def _sqnorms(m: np.ndarray, block_values: int) -> np.ndarray:
    """float64 squared norms of the rows of ``m``, in blocks of about ``block_values`` entries (no float64
    copy of ``m``: 2,000 picks x 1280 took two 20 MiB temporaries)."""
    out = np.empty(len(m))
    step = max(1, block_values // max(m.shape[1], 1))
    for s in range(0, len(m), step):
        out[s : s + step] = (m[s : s + step].astype(np.float64) ** 2).sum(axis=1)
    return out


def _nearest(a: np.ndarray, b: np.ndarray, *, exclude_self: bool = False, block_values: int = 2**18) -> np.ndarray:
    """Distance of every row of ``a`` to its nearest row of ``b`` (rows of a in blocks of about ``block_values``
    distances and entries: 2 MiB of float64 however many rows b has, ~6 MiB with the temporaries; 4,096 rows x
    10,000 picks took 1.2 GB, blocks of 2**21 values ~48 MiB, more than a 20,000 x 64 selection's own state)."""
    out = np.empty(len(a))
    bn = _sqnorms(b, block_values)
    block = max(16, min(block_values // max(len(b), 1), block_values // max(a.shape[1], 1)))
    for s in range(0, len(a), block):
        ab = a[s : s + block]
        d2 = _sqnorms(ab, block_values)[:, None] + bn[None, :] - 2.0 * (ab @ b.T)
        if exclude_self:
            r = np.arange(len(ab))
            d2[r, s + r] = np.inf
        out[s : s + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def selection_metrics(
    x: np.ndarray | None,
    indices: np.ndarray,
    *,
    state: AnyFarthestState | None = None,
    preselected: np.ndarray | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Nearest-neighbour distance among the selected (min/mean) and the coverage radius.

    Per-objective figures (mean weights, BALANCE target vs achieved …) are each objective's own report.

    :param x: (N, D) normalised candidate embeddings, or None when the config used none.
    :param indices: selected rows of ``x`` in pick order.
    :param state: the diversity state after the selection (gives the exact coverage radius).
    :param preselected: (P, D) embeddings already in the pool (count as selected for coverage).
    """
    with blas_one_thread():  # hundreds of small sgemm calls: BLAS' threads took 5-10x longer (10,000 picks:
        return _metrics(x, indices, state, preselected, seed)  # 2.8-5.2 s vs 0.44-0.6 s, load 4, measured)


def _metrics(x: np.ndarray | None, indices: np.ndarray, state: AnyFarthestState | None,
             preselected: np.ndarray | None, seed: int | None) -> dict[str, Any]:
    m: dict[str, Any] = {}
    if x is not None and len(indices) >= 2:
        sel = x[indices]
        nn = _nearest(sel, sel, exclude_self=True)
        m["nn_distance_min"] = round(float(nn.min()), 6)
        m["nn_distance_mean"] = round(float(nn.mean()), 6)
    if x is not None and len(x) and (len(indices) or (preselected is not None and len(preselected))):
        if state is not None:
            m["coverage_radius"] = round(float(np.sqrt(max(state.max_d2(), 0.0))), 6)
        else:
            centres = x[indices] if preselected is None else np.concatenate([x[indices], preselected])
            rows = np.arange(len(x))
            if len(x) > COVERAGE_SAMPLE:
                rows = np.sort(np.random.default_rng(seed).choice(len(x), COVERAGE_SAMPLE, replace=False))
                m["coverage_radius_sample_size"] = COVERAGE_SAMPLE
            m["coverage_radius"] = round(float(_nearest(x[rows], centres).max()), 6)
    return m
