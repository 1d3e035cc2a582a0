"""Selection speed: our exact DIVERSITY vs the straightforward exact loop, and DIVERSITY+WEIGHTS+BALANCE.

Usage: python benchmarks/selection.py [--n 1000000] [--d 64] [--k 10000] [--baseline-picks 300]
Data: clustered unit vectors with low intrinsic dimension (like image embeddings). The straightforward loop
does one full float64 matrix-vector pass per pick (exact up to ~1e-16), keeps the running minimum and takes
the first argmax. Its cost per pick is constant, so when ``--baseline-picks`` < k it is timed on that prefix
and extrapolated linearly (said in the output) and the selections are compared on that prefix; a full
comparison runs at ``--verify-n`` / ``--verify-k``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from lightly_airflow.selection import select
from lightly_airflow.selection.kernels import farthest_point_order


def clustered(n: int, d: int, clusters: int = 100, intrinsic: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    basis = rng.normal(size=(clusters, intrinsic, d)).astype(np.float32)
    lab = rng.integers(0, clusters, n)
    x = centres[lab]
    coef = (rng.normal(size=(n, intrinsic)) * 0.3).astype(np.float32)
    for j in range(intrinsic):
        x += coef[:, j : j + 1] * basis[lab, j]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def straightforward(x: np.ndarray, k: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    sq = (x64 * x64).sum(axis=1)
    d2 = np.full(len(x), np.inf)
    picks = []
    for _ in range(k):
        i = int(np.argmax(d2))
        picks.append(i)
        d2 = np.minimum(d2, np.maximum(sq + sq[i] - 2.0 * (x64 @ x64[i]), 0.0))
        d2[picks] = -1.0
    return np.asarray(picks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--baseline-picks", type=int, default=0, help="time the loop on this prefix (0: all k)")
    ap.add_argument("--verify-n", type=int, default=100_000)
    ap.add_argument("--verify-k", type=int, default=1_000)
    a = ap.parse_args()
    farthest_point_order(clustered(2000, a.d), 10)  # load the compiled kernels (numba cache) before timing
    x = clustered(a.n, a.d)
    print(f"N={a.n} D={a.d} k={a.k} (clustered, intrinsic dim 6); machine shared, 2 CPU cores")
    t = time.perf_counter()
    ours, _, _ = farthest_point_order(x, a.k)
    t_ours = time.perf_counter() - t
    print(f"ours DIVERSITY: {t_ours:.1f} s")
    rng = np.random.default_rng(1)
    table = pa.table({"key": [str(i) for i in range(a.n)],
                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), a.d),
                      "scores.cls.uncertainty_margin": rng.random(a.n),
                      "metadata.weather": rng.choice(["sunny", "cloudy", "rainy", "snow"], a.n)})
    cfg = {"n_samples": a.k, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "weather"},
         "strategy": {"type": "BALANCE", "target": {"sunny": 0.4, "cloudy": 0.3, "rainy": 0.2}}}]}
    t = time.perf_counter()
    r = select(table, cfg)
    t_comb = time.perf_counter() - t
    print(f"ours DIVERSITY+WEIGHTS+BALANCE: {t_comb:.1f} s ({t_comb / t_ours:.2f}x DIVERSITY alone), "
          f"{len(r.indices)} picks")
    if not a.skip_baseline:
        kb = a.baseline_picks if 0 < a.baseline_picks < a.k else a.k
        t = time.perf_counter()
        base = straightforward(x, kb)
        t_base = (time.perf_counter() - t) * a.k / kb
        how = f"timed on the first {kb} picks, extrapolated linearly to {a.k}" if kb < a.k else "full run"
        print(f"straightforward exact loop: {t_base:.1f} s ({how}); speed-up {t_base / t_ours:.1f}x; "
              f"identical selection{' on that prefix' if kb < a.k else ''}: "
              f"{bool(np.array_equal(base, ours[:kb]))}")
        if kb < a.k and a.verify_n:
            xv = clustered(a.verify_n, a.d, seed=1)
            t = time.perf_counter()
            ov, _, _ = farthest_point_order(xv, a.verify_k)
            t_ov = time.perf_counter() - t
            t = time.perf_counter()
            bv = straightforward(xv, a.verify_k)
            t_bv = time.perf_counter() - t
            print(f"full comparison at N={a.verify_n} k={a.verify_k}: ours {t_ov:.1f} s, loop {t_bv:.1f} s, "
                  f"identical selection: {bool(np.array_equal(bv, ov))}")


if __name__ == "__main__":
    main()
