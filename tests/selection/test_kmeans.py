"""``selection.kmeans`` (TypiClust's clusters): the labels of the plain k-means++ and Lloyd formulas (in any block of
rows, over candidates read in place with the preselected after them), and its memory."""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs

from lightly_airflow.selection import kmeans as kmeans_module
from lightly_airflow.selection.kmeans import kmeans


def _reference(x: np.ndarray, k: int, seed: int | None, iterations: int = 100) -> np.ndarray:
    """k-means++ seeding from ``default_rng(seed)`` and Lloyd iterations, each step written as one expression over the
    float64 rows (the seeding's dot products by ``np.einsum``, each row's own sum: a BLAS matrix-vector product's bits
    change with the rows around a row and the threads)."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(0 if seed is None else seed)
    xd = x.astype(np.float64)
    sq = (xd**2).sum(axis=1)
    centres = np.empty((k, x.shape[1]))
    first = int(rng.integers(n))
    centres[0] = xd[first]
    d2 = np.maximum(sq - 2.0 * np.einsum("ij,j->i", xd, centres[0]) + sq[first], 0.0)
    for c in range(1, k):
        total = float(d2.sum())
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centres[c] = xd[i]
        d2 = np.minimum(d2, np.maximum(sq - 2.0 * np.einsum("ij,j->i", xd, centres[c]) + sq[i], 0.0))
    labels = np.full(n, -1)
    for _ in range(iterations):
        new = (sq[:, None] - 2.0 * xd @ centres.T + (centres**2).sum(axis=1)[None, :]).argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            if (labels == c).any():
                centres[c] = xd[labels == c].mean(axis=0)
    return labels


@pytest.mark.parametrize(("k", "seed"), [(1, 0), (10, 0), (10, 5), (40, None), (200, 3)])
def test_labels_are_the_formulas_on_real_data_and_on_ties(k: int, seed: int | None) -> None:
    """In one block, in blocks of 64 and 100 rows (the last padded), and over ``x[rows]`` then ``pre``."""
    digits = load_digits().data[:900].astype(np.float32)
    ties = np.repeat(np.random.default_rng(1).standard_normal((60, 8)).astype(np.float32), 3, axis=0)
    for x in (digits, ties):
        ref = _reference(x, k, seed)
        for block in (1024, 64, 100):
            assert np.array_equal(kmeans(x, k, seed, block=block), ref)
        rows, pre = np.arange(0, len(x) - 9), x[-9:]
        assert np.array_equal(kmeans(x, k, seed, rows=rows, pre=pre, block=100), ref)
        odd = np.arange(1, len(x), 2)
        assert np.array_equal(kmeans(x, k, seed, rows=odd, pre=pre), _reference(np.concatenate([x[odd], pre]), k, seed))


@pytest.mark.parametrize("block", [1024, 100])
def test_only_the_distances_that_can_change_a_result_are_computed(caplog: pytest.LogCaptureFixture,
                                                                  block: int) -> None:
    """Separated clusters: in the seeding, a new centre far from a row's nearest centre cannot come closer (triangle
    inequality, the rounding included); in the Lloyd passes, a row far nearer its centre than any other keeps its
    label (Hamerly's bounds). Most distances are not computed; the labels are still the formulas' bits."""
    x = make_blobs(n_samples=1200, centers=40, n_features=24, cluster_std=0.4, random_state=0)[0].astype(np.float32)
    with caplog.at_level(logging.DEBUG, logger="lightly_airflow.selection.kmeans"):
        labels = kmeans(x, 40, 0, block=block)
    assert np.array_equal(labels, _reference(x, 40, 0))
    [(seeded, of_seeding)] = [(r.args[2], r.args[3]) for r in caplog.records if "k-means++ seeding" in r.msg]
    [(assigned, of_passes)] = [(r.args[2], r.args[3]) for r in caplog.records if "Lloyd passes" in r.msg]
    assert (of_seeding, of_passes) == (1200 * 40, 3 * 1200)  # (every row each time, without the bounds)
    assert seeded < 0.6 * of_seeding and assigned < 0.5 * of_passes, (seeded, assigned)  # (~26,300; ~1,400)


def _wide(shape: str) -> np.ndarray:
    """2,400 x 256 float32 rows (the lifted bound's shape): ``spectrum``, a Gaussian whose variances decay as 0.81^j
    along random directions (as image embeddings: most of the distance in a few directions); ``tight``, 30 clusters
    1e-3 wide up to 10 from the origin, where a float32 lifted distance errs by more than the distances inside a
    cluster; ``rank 9``, rows of rank 9 (the basis has 9 directions, not 64)."""
    if shape == "rank 9":
        rng = np.random.default_rng(1)
        return (rng.standard_normal((2400, 9)) @ rng.standard_normal((9, 256))).astype(np.float32)
    if shape == "tight":
        x = make_blobs(n_samples=2400, centers=30, n_features=256, cluster_std=1e-3, center_box=(-10.0, 10.0),
                       random_state=0)[0]
        return x.astype(np.float32)
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.standard_normal((256, 256)))[0]
    return ((rng.standard_normal((2400, 256)) * 0.9 ** np.arange(256)) @ rotation).astype(np.float32)


@pytest.mark.parametrize("shape", ["spectrum", "tight", "rank 9"])
def test_the_seeding_screens_wide_rows_by_the_lifted_bound(caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    """From ``KMEANS_PROJECTION_MIN_CLUSTERS`` clusters on wide rows, a seed computes a row's distance only where
    the lifted bound (``LiftedProjection``, its rounding margins included) leaves it possibly below the row's d2:
    fewer than the triangle inequality alone, and the formulas' labels, in blocks on 2 threads and over ``x[rows]``
    then ``pre`` too. ``tight`` without the margins (``bound < d2``) keeps wrong d2 and picks other centres (checked
    by hand: the labels differ); ``tight`` and ``rank 9`` (30 and 9 directions) failed in ``LiftedProjection`` when
    its basis had fewer directions than asked."""
    x, k = _wide(shape), 64

    def seeded(**kw: object) -> tuple[np.ndarray, int]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="lightly_airflow.selection.kmeans"):
            labels = kmeans(x, k, 0, **kw)  # type: ignore[arg-type]
        [count] = [r.args[2] for r in caplog.records if "k-means++ seeding" in r.msg]
        return labels, count

    ref = _reference(x, k, 0)
    labels, lifted = seeded()
    assert np.array_equal(labels, ref)
    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "2")
    assert np.array_equal(seeded(block=256)[0], ref)
    rows, pre = np.arange(0, len(x) - 50), x[-50:]
    assert np.array_equal(seeded(rows=rows, pre=pre, block=256)[0], ref)
    some = np.flatnonzero(np.arange(len(x)) % 10 != 3)
    assert np.array_equal(seeded(rows=some, pre=pre)[0], _reference(np.concatenate([x[some], pre]), k, 0))
    monkeypatch.setattr(kmeans_module, "KMEANS_PROJECTION_MIN_CLUSTERS", k + 1)  # (the triangle inequality alone)
    labels, triangle = seeded()
    assert np.array_equal(labels, ref)
    assert lifted < 0.5 * triangle, (lifted, triangle)


def test_no_copy_of_the_rows_or_of_the_distances() -> None:
    """At the peak: at most 1.5x the float32 rows (one float64 block of 1,024 rows, a (block x clusters) distance
    block, a gathered chunk and a few n-vectors); the float64 copy of every row was 2x alone (3.4x in all)."""
    n, d, k = 3000, 64, 40
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    tracemalloc.start()
    try:
        kmeans(x, k, 0, iterations=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.5 * x.nbytes, (peak, x.nbytes)


@pytest.mark.parametrize("shape", ["spectrum", "tight", "rank 9", "repeated"])
def test_lloyd_passes_compute_a_row_s_lifted_candidates_only(caplog: pytest.LogCaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    """From ``KMEANS_CANDIDATES_MIN_CLUSTERS`` clusters with the seeding's lifted vectors, a Lloyd pass computes a row's
    distances only to its own centre and to the centres its lifted bound (``LiftedProjection``, its rounding margins
    included) leaves possibly nearer, and a row whose centre did not move only to the moved centres its bound leaves
    possibly nearer than its lower bound: a fraction of every centre's, and the formulas' labels, in blocks on 2 threads
    and over ``x[rows]`` then ``pre`` too; fewer rows in question than with Hamerly's widened bounds. ``repeated`` (40
    rows 60 times: 24 seeds repeat one, their centres coincide) decides its ties by the product of every centre.
    ``tight`` with the candidates chosen by ``bound < reach`` (no margins) takes other labels, and so do ``spectrum``
    and ``rank 9`` without the moved centres' check (``bound < -1.0``); ``repeated`` without the ties' product (``<=
    -1.0``) computes no row's product (all checked by hand)."""
    x, k = (np.repeat(_wide("spectrum")[:40], 60, axis=0) if shape == "repeated" else _wide(shape)), 64
    monkeypatch.setattr(kmeans_module, "KMEANS_CANDIDATES_MIN_CLUSTERS", k)

    def passes(**kw: object) -> tuple[np.ndarray, int, int, int]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="lightly_airflow.selection.kmeans"):
            labels = kmeans(x, k, 0, **kw)  # type: ignore[arg-type]
        [(rows, full, pairs)] = [(r.args[2], r.args[4], r.args[5]) for r in caplog.records if "Lloyd" in r.msg]
        return labels, rows, full, pairs

    ref = _reference(x, k, 0)
    labels, rows, full, pairs = passes()
    assert np.array_equal(labels, ref)
    assert pairs < 0.2 * rows * k, (pairs, rows)
    assert (full > 0) == (shape == "repeated"), full
    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "2")
    assert np.array_equal(passes(block=256)[0], ref)
    rows_, pre = np.arange(0, len(x) - 50), x[-50:]
    assert np.array_equal(passes(rows=rows_, pre=pre, block=256)[0], ref)
    monkeypatch.setattr(kmeans_module, "KMEANS_CANDIDATES_MIN_CLUSTERS", k + 1)  # (every centre's distance)
    labels, every, full, pairs = passes()
    assert np.array_equal(labels, ref)
    assert (full, pairs) == (every, 0)
    assert (rows < every) == (shape != "repeated"), (rows, every)  # (repeated: as many)
