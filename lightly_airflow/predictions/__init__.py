"""Predictions from ``.lightly/predictions/``: task schemas, per-file parsing, scorers, class distributions.

Public API:

- :func:`load_predictions_shard` — one manifest shard -> ``predictions/shard-NNNNN.parquet`` + error report;
- :func:`finalize_prediction_scores` — rescale ``object_frequency`` across all shards of a run;
- scorers: :func:`score_classification`, :func:`score_object_detection`,
  :func:`score_semantic_segmentation`, :func:`score_keypoint_detection`, :func:`rescale_object_frequency`.

The names load their module on first use (PEP 562): importing a submodule does not import the others. An
``embed`` process imports ``predictions.parse`` (through ``objects.boxes``), and the package's imports had
pulled the predictions shard with it (staging, video.past_end, pyarrow.compute).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightly_airflow.predictions.parse import parse_prediction_file
    from lightly_airflow.predictions.schema import TASK_TYPES, TaskSchema, parse_task_schema, parse_tasks
    from lightly_airflow.predictions.scorers import (
        rescale_object_frequency,
        score_classification,
        score_keypoint_detection,
        score_object_detection,
        score_semantic_segmentation,
        scores_for_task_type,
    )
    from lightly_airflow.predictions.shard import finalize_prediction_scores, load_predictions_shard

_HOMES = {
    "parse_prediction_file": "lightly_airflow.predictions.parse",
    "TASK_TYPES": "lightly_airflow.predictions.schema",
    "TaskSchema": "lightly_airflow.predictions.schema",
    "parse_task_schema": "lightly_airflow.predictions.schema",
    "parse_tasks": "lightly_airflow.predictions.schema",
    "rescale_object_frequency": "lightly_airflow.predictions.scorers",
    "score_classification": "lightly_airflow.predictions.scorers",
    "score_keypoint_detection": "lightly_airflow.predictions.scorers",
    "score_object_detection": "lightly_airflow.predictions.scorers",
    "score_semantic_segmentation": "lightly_airflow.predictions.scorers",
    "scores_for_task_type": "lightly_airflow.predictions.scorers",
    "finalize_prediction_scores": "lightly_airflow.predictions.shard",
    "load_predictions_shard": "lightly_airflow.predictions.shard",
}

__all__ = [
    "TASK_TYPES",
    "TaskSchema",
    "finalize_prediction_scores",
    "load_predictions_shard",
    "parse_prediction_file",
    "parse_task_schema",
    "parse_tasks",
    "rescale_object_frequency",
    "score_classification",
    "score_keypoint_detection",
    "score_object_detection",
    "score_semantic_segmentation",
    "scores_for_task_type",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(import_module(_HOMES[name]), name)  # (imported once)
    return value
