"""Sequence selection's one row per window: the window's mean embedding (normalised) from Arrow's buffers, the same
bits as the former list of Python floats per frame (which took ~56 kB a frame: 2.6 GB for 40,000 frames of 1,280)."""

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.selection.sequences import _sequence_table, sequence_windows


def _reference_means(rows: list, windows: list[list[int]]) -> np.ndarray:
    emb = np.stack([np.asarray(v, dtype=np.float32) for v in rows])
    means = np.stack([emb[w].mean(axis=0) for w in windows])
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return means / np.where(norms > 0, norms, 1.0)


@pytest.mark.parametrize("value_type", [pa.float32(), pa.float64()])
@pytest.mark.parametrize("list_of", ["list", "fixed"])
def test_window_means_from_buffers_equal_those_of_python_lists(value_type, list_of):
    rng = np.random.default_rng(5)
    n, d = 600, 24
    x = rng.standard_normal((n, d)).astype(np.float64 if value_type == pa.float64() else np.float32)
    typ = pa.list_(value_type) if list_of == "list" else pa.list_(value_type, d)
    emb = pa.chunked_array([pa.array(list(x[:250]), typ), pa.array(list(x[250:]), typ)])  # (two chunks)
    table = pa.table({C.KEY: [f"v{i // 200}-{i % 200:06d}-mp4.png" for i in range(n)],
                      C.VIDEO: [f"v{i // 200}.mp4" for i in range(n)],
                      C.FRAME_INDEX: pa.array([i % 200 for i in range(n)], pa.int64()), C.EMBEDDING: emb})
    windows, left = sequence_windows(table, 7)
    assert len(windows) == 3 * (200 // 7) and left == 3 * (200 % 7)
    got = np.stack(_sequence_table(table, windows).column(C.EMBEDDING).to_numpy(zero_copy_only=False))
    assert np.array_equal(got, _reference_means(emb.to_pylist(), windows))
