"""TYPICALITY's values (``objectives.typicality``): the definition on real data, any block size, and the memory
of a block (docs/selection.md "How it is fast")."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lightly_airflow.selection.objectives import typicality


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    x = load_digits().data[:600].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _by_definition(x: np.ndarray, k: int) -> np.ndarray:
    """``1 / (1 + mean distance to the k nearest other rows)`` from float64 differences, row by row."""
    xd = x.astype(np.float64)
    out = np.empty(len(x))
    for i, row in enumerate(xd):
        d = np.sqrt(((xd - row) ** 2).sum(axis=1))
        d[i] = np.inf
        out[i] = 1.0 / (1.0 + np.sort(d)[: min(k, len(x) - 1)].mean())
    return out


@pytest.mark.parametrize("block", [1, 7, 256, 600, 5000])
@pytest.mark.parametrize("k", [1, 5, 599, 1000])
def test_typicality_is_the_definition_for_every_block_size(digits: np.ndarray, block: int, k: int) -> None:
    np.testing.assert_allclose(typicality(digits, k, block=block), _by_definition(digits, k), rtol=0, atol=1e-6)


def test_a_block_holds_its_product_and_its_distances_only() -> None:
    """12 bytes per (row of the block, row) at the peak: the float32 product and the float64 distances, written in
    place (the expression form held ~32: five block-sized temporaries and a partitioned copy)."""
    x = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)
    tracemalloc.start()
    try:
        typicality(x, 5, block=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 13 * 1000 * 3000, peak / (1000 * 3000)


def test_a_block_s_rows_shrink_as_the_rows_grow(monkeypatch: pytest.MonkeyPatch, digits: np.ndarray) -> None:
    """At most TYPICALITY_BLOCK_ENTRIES entries a block whatever the row count (here scaled down to 600 x 50):
    the same values, and the peak stays within the bound."""
    from lightly_airflow.selection import objectives

    monkeypatch.setattr(objectives, "TYPICALITY_BLOCK_ENTRIES", 600 * 50)
    tracemalloc.start()
    try:
        got = typicality(digits, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(got, _by_definition(digits, 5), rtol=0, atol=1e-6)
    assert peak <= 13 * 600 * 50 + 200_000, peak
