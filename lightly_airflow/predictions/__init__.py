"""Predictions from ``.lightly/predictions/``: task schemas, per-file parsing, scorers, class distributions.

Public API:

- :func:`load_predictions_shard` — one manifest shard -> ``predictions/shard-NNNNN.parquet`` + error report;
- :func:`finalize_prediction_scores` — rescale ``object_frequency`` across all shards of a run;
- scorers: :func:`score_classification`, :func:`score_object_detection`,
  :func:`score_semantic_segmentation`, :func:`score_keypoint_detection`, :func:`rescale_object_frequency`.
"""

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
