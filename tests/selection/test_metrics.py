"""The selection metrics' coverage radius without a DIVERSITY state (``metrics._coverage``): every candidate's
distance to its nearest pick, the largest, on real and synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lightly_airflow.selection.metrics import COVERAGE_SAMPLE, _coverage, selection_metrics


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(x: np.ndarray, centres: np.ndarray) -> float:
    d = np.sqrt(((x.astype(np.float64)[:, None, :] - centres.astype(np.float64)[None, :, :]) ** 2).sum(axis=2))
    return float(d.min(axis=1).max())


def _shapes() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((8, 24))
    clustered = centres[rng.integers(0, 8, 1500)] + 0.1 * rng.standard_normal((1500, 24))
    return [
        ("digits", _unit(load_digits().data[:1200])),
        ("clustered", _unit(clustered)),
        ("duplicates", np.repeat(_unit(rng.standard_normal((300, 16))), 4, axis=0)),
        ("wide", _unit(rng.standard_normal((700, 1280)))),
    ]


@pytest.mark.parametrize("name,x", _shapes())
@pytest.mark.parametrize("k", [1, 7, 150, 600])
def test_coverage_is_the_largest_nearest_pick_distance(name: str, x: np.ndarray, k: int) -> None:
    picks = np.random.default_rng(k).choice(len(x), k, replace=False)
    assert _coverage(x, x[picks]) == pytest.approx(_brute(x, x[picks]), abs=1e-6)


def test_every_row_a_centre_covers_at_radius_zero_and_preselected_count() -> None:
    x = _shapes()[1][1][:300]
    assert _coverage(x, x) == pytest.approx(0.0, abs=1e-3)  # (float32 products: a row's own distance ~1e-4)
    pre = _unit(np.random.default_rng(9).standard_normal((5, x.shape[1])))
    got = selection_metrics(x, np.array([3, 40]), preselected=pre)["coverage_radius"]
    assert got == pytest.approx(_brute(x, np.concatenate([x[[3, 40]], pre])), abs=2e-6)  # (rounded to 6 places)
    assert len(x) <= COVERAGE_SAMPLE  # (the sampled path, above it, keeps the blockwise nearest)
