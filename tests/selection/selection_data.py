"""Test data builders for the selection tests."""

import numpy as np
import pyarrow as pa


def clustered(n: int, d: int = 16, clusters: int = 8, intrinsic: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    basis = rng.normal(size=(clusters, intrinsic, d))
    lab = rng.integers(0, clusters, n)
    x = centres[lab] + np.einsum("ni,nid->nd", rng.normal(size=(n, intrinsic)) * 0.3, basis[lab])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def table_of(x: np.ndarray, **cols) -> pa.Table:
    data = {"key": [f"img_{i:05d}.png" for i in range(len(x))],
            "embedding": pa.array(list(x), type=pa.list_(pa.float32()))}
    data.update(cols)
    return pa.table(data)
