"""Selection speed: our exact DIVERSITY vs the straightforward exact loop, and DIVERSITY+WEIGHTS+BALANCE.

Usage: python benchmarks/selection.py [--n 1000000] [--d 64] [--k 10000]
Data: clustered unit vectors with low intrinsic dimension (like image embeddings). The straightforward loop
does one full float64 matrix-vector pass per pick (exact up to ~1e-16), keeps the running minimum and takes
the first argmax.
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
    a = ap.parse_args()
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
        t = time.perf_counter()
        base = straightforward(x, a.k)
        t_base = time.perf_counter() - t
        print(f"straightforward exact loop: {t_base:.1f} s; speed-up {t_base / t_ours:.1f}x; "
              f"identical selection: {bool(np.array_equal(base, ours))}")


if __name__ == "__main__":
    main()
