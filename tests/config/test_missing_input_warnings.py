"""A BALANCE class whose samples all lack another strategy's input is reported with the cause and the fix
(the demo's photos have no digits prediction, so their 20 % target silently ended at 0 %)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.config import parse_selection_config
from lightly_airflow.demo import SELECTION_CONFIG
from lightly_airflow.pipeline import selection_warnings
from lightly_airflow.selection import select


def _candidates(n_digits: int = 60, n_photos: int = 15, photo_scores: bool = False) -> pa.Table:
    rng = np.random.default_rng(0)
    n = n_digits + n_photos
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    margin = [float(v) for v in rng.uniform(size=n_digits)] + [
        float(v) if photo_scores else None for v in rng.uniform(size=n_photos)]
    return pa.table({
        C.KEY: [f"f{i:03d}.png" for i in range(n)],
        C.EMBEDDING: pa.array(emb.tolist(), pa.list_(pa.float32())),
        C.score_column("digits", "uncertainty_margin"): pa.array(margin, pa.float64()),
        C.metadata_column("lightly.sharpness"): pa.array([5.0] * n),
        C.metadata_column("source"): ["digits"] * n_digits + ["photos"] * n_photos,
    })


def test_the_demo_balance_miss_is_explained() -> None:
    config = parse_selection_config(SELECTION_CONFIG)
    table = _candidates()
    result = select(table, config)
    warnings = selection_warnings(table, config, result.metrics)
    assert result.metrics["missing_inputs"][C.score_column("digits", "uncertainty_margin")] == 15
    assert len(warnings) == 1, warnings
    text = warnings[0]
    assert "strategies[3] BALANCE: class 'photos'" in text and "target 20%" in text
    assert "All 15 of its candidates lack" in text and "strategies[1], WEIGHTS" in text and "Fix:" in text


def test_no_warning_when_the_balance_target_is_met() -> None:
    config = parse_selection_config(SELECTION_CONFIG)
    table = _candidates(photo_scores=True)
    result = select(table, config)
    assert selection_warnings(table, config, result.metrics) == []
