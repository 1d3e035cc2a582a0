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


@pytest.mark.parametrize("block", [7, 64, 256, 600, 5000])
@pytest.mark.parametrize("k", [1, 5, 599, 1000])
def test_typicality_is_the_definition_for_every_block_size(digits: np.ndarray, block: int, k: int) -> None:
    """Blocks narrower than k (7, 64 with k = 599) take every column; a row never counts itself."""
    np.testing.assert_allclose(typicality(digits, k, block=block), _by_definition(digits, k), rtol=0, atol=1e-6)


def test_duplicates_and_ties_are_counted_like_the_definition() -> None:
    """Small whole numbers (the products and norms exact in float32, so the formula is the definition to the last
    bit): many duplicate rows (distance 0) and equal distances within and across blocks."""
    x = np.random.default_rng(5).integers(0, 3, (450, 6)).astype(np.float32)
    assert len(np.unique(x, axis=0)) < 450
    for k in (1, 2, 3, 10, 40):
        for block in (16, 64, 450):
            np.testing.assert_allclose(typicality(x, k, block=block), _by_definition(x, k), rtol=0, atol=1e-12)


def test_the_screen_s_slack_keeps_every_column_that_may_be_among_the_nearest(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_take_nearest`` on screens that err by up to the bound of its docstring (9 x 2^-24 of the largest squared
    norm, here 1): the k smallest exact values of each row over two blocks, as a full sort finds them; without
    the slack the screens' errors leave columns out."""
    from lightly_airflow.selection import objectives

    rng = np.random.default_rng(3)
    m, width, k = 200, 300, 8
    sq_rows, sq_cols = rng.uniform(0.5, 1.0, m), rng.uniform(0.5, 1.0, (2, width))
    # exact squared distances crowded within a few errors of each other around each row's k-th
    p = (sq_rows[:, None] + sq_cols[:, None, :] - rng.uniform(0.2, 0.2 + 2e-5, (2, m, width))) / 2.0
    exact = (sq_rows[:, None] + sq_cols[:, None, :]) - 2.0 * p
    err = 9 * 2.0**-24
    screens = (exact + rng.uniform(-err, err, exact.shape)).astype(np.float32)
    expected = np.sort(np.concatenate([exact[0], exact[1]], axis=1), axis=1)[:, :k]

    def run(slack: float) -> np.ndarray:
        nearest = np.full((m, k), np.inf)
        for b in range(2):
            objectives._take_nearest(nearest, screens[b], p[b], sq_rows, sq_cols[b], slack, by_column=False)
        return np.sort(nearest, axis=1)

    np.testing.assert_array_equal(run(objectives.TYPICALITY_SLACK), expected)
    assert not np.array_equal(run(0.0), expected)


def test_memory_does_not_grow_with_the_rows_beyond_their_k_nearest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two block x block buffers and transients of a block, plus 8 bytes per row and neighbour: the old row
    blocks held 12 bytes per (block row, row), 3000 rows: ~18 MB at this block, 6000: ~36 MB. (One thread: two
    merges side by side overlap their transients as the scheduler has it.)"""
    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "1")
    rng = np.random.default_rng(0)
    peaks = []
    for n in (3000, 6000):
        x = rng.standard_normal((n, 16)).astype(np.float32)
        tracemalloc.start()
        try:
            typicality(x, 5, block=500)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] - peaks[0] <= 3000 * (5 * 8 + 64) + 100_000, peaks
    assert peaks[1] <= 8 * 500 * 500 * 4 + 6000 * 5 * 8 * 2, peaks


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 13])
def test_block_pairs_run_each_pair_once_and_pairs_running_together_share_no_block(n: int) -> None:
    from lightly_airflow.selection.objectives import block_pairs

    pairs = block_pairs(n)
    assert sorted(pairs) == [(i, j) for i in range(n) for j in range(i, n)]
    rounds = pairs[n:]  # (after each block with itself: rounds of n // 2 pairs, of (n - 1) // 2 when n is odd)
    size = n // 2
    for r in range(0, len(rounds), max(size, 1)):
        blocks = [b for pair in rounds[r : r + size] for b in pair]
        assert len(blocks) == len(set(blocks))


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_any_number_of_threads_gives_the_same_bits(digits: np.ndarray, threads: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small blocks (86 of 7 rows: 3,741 pairs) split over 1, 2 or 5 threads: the same values to the last bit
    as in pair order on one thread (a row's k nearest do not depend on the order its columns come in; the float32
    products do depend on the blocks' sizes, hence the same blocks)."""
    from lightly_airflow.selection import objectives

    monkeypatch.setattr(objectives, "selection_threads", lambda: 1)
    one = typicality(digits, 9, block=7)
    np.testing.assert_allclose(one, _by_definition(digits, 9), rtol=0, atol=1e-6)
    monkeypatch.setattr(objectives, "selection_threads", lambda: threads)
    np.testing.assert_array_equal(typicality(digits, 9, block=7), one)
