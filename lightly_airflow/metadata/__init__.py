"""Computed metadata (``lightly.*``), corruption checks, exact duplicates and custom metadata.

Public API:

- :func:`compute_metadata_shard` — one manifest shard -> ``metadata/shard-NNNNN.parquet`` + error report;
- :func:`mark_duplicates` — mark exact duplicates across all shards of a run and against the datapool;
- :func:`inspect_image` / :func:`compute_metrics` — the per-image checks and metrics;
- :func:`parse_metadata_schema` — validate ``.lightly/metadata/schema.json``.
"""

from lightly_airflow.metadata.custom import MetadataField, parse_dot_path, parse_metadata_schema
from lightly_airflow.metadata.duplicates import find_duplicates, mark_duplicates
from lightly_airflow.metadata.metrics import METRICS, ImageResult, compute_metrics, inspect_image, laplacian_std
from lightly_airflow.metadata.shard import compute_metadata_shard
from lightly_airflow.staging import TooManyErrorsError

__all__ = [
    "METRICS",
    "ImageResult",
    "MetadataField",
    "TooManyErrorsError",
    "compute_metadata_shard",
    "compute_metrics",
    "find_duplicates",
    "inspect_image",
    "laplacian_std",
    "mark_duplicates",
    "parse_dot_path",
    "parse_metadata_schema",
]
