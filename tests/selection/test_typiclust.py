"""TYPICALITY with ``clusters`` (TypiClust, Hacohen et al. 2022) on real data: exact against a slow pure-Python
reference on scikit-learn digits, k-means at a fixed point and deterministic given the seed, and on
scikit-image's faces vs non-faces a cold-start batch holding both classes (where TYPICALITY + DIVERSITY picks
non-faces only)."""

from __future__ import annotations

import logging
import math
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow.config import parse_selection_config
from lightly_airflow.selection import objectives, select
from lightly_airflow.selection.kmeans import kmeans
from lightly_airflow.selection.objectives import typicality, typiclust
from lightly_airflow.selection.recipes import active_learning_config


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data[:n].astype(np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), d.target[:n]


def _table(x: np.ndarray, rows: np.ndarray) -> pa.Table:
    return pa.table({"key": rows.astype(str), "embedding": pa.array(list(x[rows]))})


def _reference(pool: np.ndarray, labels: np.ndarray, n_cand: int, n: int, k: int) -> list[int]:
    """Slow TypiClust: loops over clusters and pairs, plain Python floats."""
    rows = [[float(v) for v in r] for r in pool]
    clusters: dict[int, list[int]] = {}
    for i, c in enumerate(labels.tolist()):
        clusters.setdefault(c, []).append(i)
    covered = {int(c) for c in labels[n_cand:]}

    def typ(i: int, members: list[int]) -> float:
        d = sorted(math.dist(rows[i], rows[j]) for j in members if j != i)[:k]
        return 1.0 / (1.0 + sum(d) / len(d)) if d else 1.0

    order = sorted((c for c in clusters if c not in covered), key=lambda c: (-len(clusters[c]), c))
    picks = []
    for c in order:
        cands = [i for i in clusters[c] if i < n_cand]
        if cands:
            picks.append(max(cands, key=lambda i: (typ(i, clusters[c]), -i)))
    return picks[:n]


def test_typiclust_picks_are_exact_against_a_slow_reference() -> None:
    x, _ = _digits(360)
    pre_rows, cand_rows = np.arange(12), np.arange(12, 360)
    cfg = {"n_samples": 10, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY", "clusters": True,
                                                       "num_nearest_neighbors": 5}}]}
    r = select(_table(x, cand_rows), cfg, preselected=_table(x, pre_rows), seed=3)
    pool = np.concatenate([x[cand_rows], x[pre_rows]])
    labels = kmeans(pool, 12 + 10, 3)
    assert r.indices.tolist() == _reference(pool, labels, len(cand_rows), 10, 5)
    assert r.metrics["objectives"]["strategies[0]"]["clusters"] == 22
    again = select(_table(x, cand_rows), cfg, preselected=_table(x, pre_rows), seed=3)
    assert again.indices.tolist() == r.indices.tolist()  # deterministic given the seed


def test_kmeans_reaches_a_fixed_point_and_follows_the_seed() -> None:
    x, y = _digits(500)
    labels = kmeans(x, 10, 0)
    centres = np.stack([x[labels == c].mean(axis=0) for c in range(10)])
    nearest = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert (nearest == labels).all()  # every sample in the cluster of its nearest centre
    assert (kmeans(x, 10, 0) == labels).all()
    assert not (kmeans(x, 10, 1) == labels).all()
    # Clusters of digits follow the digit: most of each cluster is one class.
    purity = sum(np.bincount(y[labels == c]).max() for c in range(10)) / len(y)
    assert purity > 0.6, purity


def test_typiclust_cold_start_picks_faces_and_non_faces() -> None:
    """skimage's lfw_subset (100 faces, 100 non-faces, pixel embeddings): TYPICALITY + DIVERSITY picks the
    spread-out non-faces only (test_recipes); the recipe's TypiClust (+ DIVERSITY 0.5) one typical sample of
    each large cluster: both."""
    import skimage.data

    imgs = np.asarray(skimage.data.lfw_subset(), dtype=np.float64).reshape(200, -1)
    is_face = np.repeat([True, False], 100)
    emb = (imgs / np.linalg.norm(imgs, axis=1, keepdims=True)).astype(np.float32)
    cfg = active_learning_config("cls", 10, cold="typiclust")
    assert parse_selection_config(cfg).strategies[0].strategy.clusters is True
    faces = []
    for seed in range(6):
        labelled = np.random.default_rng(seed).choice(200, 10, replace=False)
        rest = np.setdiff1d(np.arange(200), labelled)
        t = _table(emb, rest).append_column("scores.cls.uncertainty_margin", pa.array(np.zeros(len(rest))))
        r = select(t, cfg, preselected=_table(emb, labelled), seed=seed)
        assert r.metrics["inactive_strategies"] == ["strategies[2]", "strategies[3]"]  # the cold start ran
        faces.append(int(is_face[rest[r.indices]].sum()))
    assert all(2 <= f <= 8 for f in faces), faces
    with pytest.raises(ValueError, match="cold start"):
        active_learning_config("cls", cold="kmeans")


def test_typiclust_reads_the_rows_in_place_with_the_memory_of_one_cluster() -> None:
    """Candidates without an embedding are skipped in place (no copy of the others) and the preselected are not
    concatenated: the same picks and priorities as the table holding only the embedded candidates; at the peak 1.5x
    the float32 rows plus the within-cluster typicality's own buffers (two float32 blocks of the largest cluster,
    below 1,024 rows: one thread, and its k nearest a row); before: a float64 copy of the pool (2x) and the
    concatenation (1x)."""
    x, _ = _digits(400)
    pre_rows, cand_rows = np.arange(8), np.arange(8, 400)
    cfg = {"n_samples": 10, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY", "clusters": True}}]}
    whole = select(_table(x, cand_rows), cfg, preselected=_table(x, pre_rows), seed=2)
    holes = _table(x, cand_rows).to_pylist()
    for i in range(0, len(holes), 7):
        holes.insert(i, {"key": f"none{i}", "embedding": None})
    t = pa.Table.from_pylist(holes)
    r = select(t, cfg, preselected=_table(x, pre_rows), seed=2)
    keys = t.column("key").to_pylist()
    assert [keys[i] for i in r.indices] == [str(cand_rows[i]) for i in whole.indices]
    assert r.metrics["objectives"]["strategies[0]"]["clusters"] == 18

    g = np.random.default_rng(0).standard_normal((3000, 64)).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    tracemalloc.start()
    try:
        typiclust(g, g[:5].copy(), 10, 20, np.ones(len(g), dtype=bool), 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    largest = int(np.bincount(kmeans(g, 15, 0, pre=g[:5])).max())
    assert largest <= 1024  # (one block: one pair of blocks, on one thread)
    own = 2 * 4 * largest**2 + 8 * 20 * largest
    assert peak <= 1.5 * g.nbytes + own, (peak, g.nbytes, own)


def test_a_large_within_cluster_cost_is_logged_before_the_work_and_reported(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The report gives sum n_c² · D of the clusters; above ``TYPICLUST_LARGE`` one warning with the figure and the
    fix comes before the within-cluster typicality."""
    x, _ = _digits(300)
    cfg = active_learning_config("cls", 10)
    t = _table(x, np.arange(300)).append_column("scores.cls.uncertainty_margin", pa.array(np.zeros(300)))
    sizes = np.bincount(kmeans(x, 10, 4))
    cost = float((sizes.astype(np.float64) ** 2).sum()) * x.shape[1]
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.selection.objectives"):
        r = select(t, cfg, seed=4)
    assert r.metrics["objectives"]["strategies[0]"]["cluster_typicality_multiply_adds"] == cost
    assert not [m for m in caplog.messages if "TypiClust" in m]  # (small: silent)
    monkeypatch.setattr(objectives, "TYPICLUST_LARGE", cost)
    calls: list[str] = []
    monkeypatch.setattr(objectives, "typicality", lambda *a: (calls.append("typicality"), typicality(*a))[1])
    monkeypatch.setattr(objectives.logger, "warning",
                        lambda msg, *a: (calls.append(msg % a), logging.getLogger("x").warning(msg, *a))[1])
    again = select(t, cfg, seed=4)
    assert again.indices.tolist() == r.indices.tolist()
    line = calls[0]
    assert calls[1:] == ["typicality"] * 10, calls[:3]  # (the line before the work)
    assert f"{cost:.2g} multiply-adds" in line and "10 clusters of 300 samples x 64 dimensions" in line, line
    assert f"(the largest {int(sizes.max())})" in line and "--cold-start 0" in line and "20 labelled" in line, line
