"""A run's rows built from scikit-learn's digits: embeddings, metrics, custom metadata, predictions, picks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C


@dataclass
class Run:
    rows: pa.Table
    preselected: pa.Table
    config: dict[str, Any]
    summary: dict[str, Any]
    statuses: list[str]
    picked_keys: list[str]  # in pick order


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def farthest_points(x: np.ndarray, k: int, start: int = 0) -> list[int]:
    """Plain greedy k-center picks (the selection the report is asked to show)."""
    picks = [start]
    d = np.linalg.norm(x - x[start], axis=1)
    for _ in range(k - 1):
        i = int(np.argmax(d))
        picks.append(i)
        d = np.minimum(d, np.linalg.norm(x - x[i], axis=1))
    return picks


def make_run(n: int | None = None, n_select: int = 60) -> Run:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images, digits.target
    centres = np.stack([digits.data[labels == c].mean(axis=0) for c in range(10)])
    if n is not None:
        images, labels = images[:n], labels[:n]
    n = len(labels)
    flat = images.reshape(n, -1)
    emb = _unit(flat)
    keys = [f"digits/{labels[i]}/{i:04d}.png" for i in range(n)]
    if n > 7:
        keys[7] = "<script>.png"  # a corrupt file: listed in the not-ok table
    statuses = [C.STATUS_OK] * n
    reasons: list[str | None] = [None] * n
    for i in range(7, n, 211):
        statuses[i], reasons[i] = C.STATUS_CORRUPT, "image file is truncated <EOF>"
    for i in range(11, n, 307):
        statuses[i], reasons[i] = C.STATUS_DUPLICATE, f"same content as {keys[0]}"
    ok = np.flatnonzero(np.array(statuses) == C.STATUS_OK)
    picks = [int(ok[j]) for j in farthest_points(emb[ok], min(n_select, len(ok)))]
    rank = [None] * n
    for r, i in enumerate(picks):
        rank[i] = r
    # Image metrics computed from the 8x8 pixels: mean (luminance), Laplacian spread (sharpness), size.
    lap = (images[:, 1:-1, 1:-1] * 4 - images[:, :-2, 1:-1] - images[:, 2:, 1:-1]
           - images[:, 1:-1, :-2] - images[:, 1:-1, 2:])
    # Soft class distributions from the distance to each class's mean image.
    logits = -np.linalg.norm(flat[:, None, :] - centres[None], axis=2) / 8.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    rows = pa.table({
        C.KEY: keys,
        C.STATUS: statuses,
        C.STATUS_REASON: pa.array(reasons, pa.string()),
        C.EMBEDDING: pa.array(list(emb), pa.list_(pa.float32())),
        C.lightly_metadata_column("luminance"): flat.mean(axis=1),
        C.lightly_metadata_column("sharpness"): lap.reshape(n, -1).std(axis=1),
        C.lightly_metadata_column("width"): pa.array(np.full(n, 8), pa.int64()),
        C.metadata_column("digit"): [str(v) for v in labels],
        C.class_distribution_column("cls"): pa.array(list(probs.astype(np.float32)), pa.list_(pa.float32())),
        C.SELECTED: [r is not None for r in rank],
        C.PICK_RANK: pa.array(rank, pa.int64()),
    }).replace_schema_metadata({C.CATEGORIES_METADATA_KEY.encode(): b'{"cls": ["zero","one","two","three",'
                                b'"four","five","six","seven","eight","nine"]}'})
    pre_idx = np.arange(0, n, 50)
    preselected = pa.table({
        C.KEY: [f"earlier/{i:04d}.png" for i in pre_idx],
        C.EMBEDDING: pa.array(list(_unit(flat[pre_idx] + 0.5)), pa.list_(pa.float32())),
        C.metadata_column("digit"): [str(v) for v in labels[pre_idx]],
    })
    config = {"n_samples": n_select, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "METADATA", "key": "digit"}, "strategy": {"type": "BALANCE", "target": {"0": 0.5, "1": 0.2}}},
        {"input": {"type": "PREDICTIONS", "task": "cls", "name": "CLASS_DISTRIBUTION"},
         "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}},
    ]}
    summary = {"run_id": "manual__2026-01-01", "tag": "run-1", "processed": n, "selected": len(picks),
               "metrics": {"stop_reason": "n_samples reached",
                           "nearest_neighbor_distance": {"min": 0.21, "mean": 0.43}, "coverage_radius": 0.61}}
    return Run(rows, preselected, config, summary, statuses, [keys[i] for i in picks])


@pytest.fixture(scope="session")
def digits_run() -> Run:
    return make_run()
