"""Lightly's documented prediction files (tests/lightly_doc_examples.py) read by the predictions step."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lightly_doc_examples import (
    CLASSIFICATION_ONLY_CATEGORY,
    CLASSIFICATION_SCHEMA,
    DETECTION_PREDICTION,
    DETECTION_SCHEMA,
)
from metadata.conftest import make_manifest, write_tree

from lightly_airflow import columns as C
from lightly_airflow.predictions import load_predictions_shard

P = ".lightly/predictions/"


def test_predictions_without_probabilities_are_counted_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``probabilities`` is optional in Lightly's format; a prediction without them gets them from its ``score``
    (one-hot without a score), which makes a classification's uncertainty scores 0. That was silent: no count,
    no log line, while a WEIGHTS strategy on those scores could tell no sample apart."""
    store = tmp_path / "store"
    write_tree(store, {P + "tasks.json": ["weather", "det", "full"],
                       P + "weather/schema.json": CLASSIFICATION_SCHEMA, P + "det/schema.json": DETECTION_SCHEMA,
                       P + "full/schema.json": DETECTION_SCHEMA,
                       P + "weather/subdir/image_1.json": CLASSIFICATION_ONLY_CATEGORY,
                       P + "det/subdir/image_1.json": DETECTION_PREDICTION,
                       P + "full/subdir/image_1.json": {**DETECTION_PREDICTION,
                                                         "predictions": DETECTION_PREDICTION["predictions"][:2]}})
    manifest = make_manifest(tmp_path, ["subdir/image_1.png"])
    with caplog.at_level(logging.INFO, logger="lightly_airflow.predictions.shard"):
        counts = load_predictions_shard(manifest, lightly_uri=str(store))
    assert counts["bad"] == 0 and counts["errors"] == 0
    assert counts["derived_probabilities"] == {"weather": 1, "det": 1}  # (task "full" gave every box its own)
    said = {(r.levelno, r.getMessage().split(": ", 2)[1]) for r in caplog.records if "have no 'probabilities'" in r.getMessage()}
    assert said == {(logging.WARNING, "task 'weather'"), (logging.INFO, "task 'det'")}
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "1 predictions (e.g. .lightly/predictions/weather/subdir/image_1.json) have no 'probabilities'" in warning
    assert "Fix: write 'probabilities' (one per category, ordered by id)" in warning
    table = pq.read_table(counts["output_uri"])
    assert table.column(C.score_column("weather", "uncertainty_margin")).to_pylist() == [0.0]  # what the line warns of
