"""Computed metadata (``lightly.*``), corruption checks, exact duplicates and custom metadata.

Public API:

- :func:`compute_metadata_shard` — one manifest shard -> ``metadata/shard-NNNNN.parquet`` + error report;
- :func:`mark_duplicates` — mark exact duplicates across all shards of a run and against the datapool;
- :func:`inspect_image` / :func:`compute_metrics` — the per-image checks and metrics;
- :func:`parse_metadata_schema` — validate ``.lightly/metadata/schema.json``.

The names load their module on first use (PEP 562): importing a submodule does not import the others. An
``embed`` process imports ``metadata.kernels`` (through ``video.quality``) for its frames' pixel sums, and the
package's imports had pulled the whole metadata shard with it (custom metadata, duplicates, the predictions
shard): 0.02 s of CPU of the 0.20 s an embed shard spends importing its video, objects and datasource modules.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightly_airflow.metadata.custom import MetadataField, parse_dot_path, parse_metadata_schema
    from lightly_airflow.metadata.duplicates import find_duplicates, mark_duplicates
    from lightly_airflow.metadata.metrics import (
        METRICS,
        ImageResult,
        compute_metrics,
        inspect_image,
        laplacian_std,
    )
    from lightly_airflow.metadata.shard import compute_metadata_shard
    from lightly_airflow.staging import TooManyErrorsError

_HOMES = {
    "MetadataField": "lightly_airflow.metadata.custom",
    "parse_dot_path": "lightly_airflow.metadata.custom",
    "parse_metadata_schema": "lightly_airflow.metadata.custom",
    "find_duplicates": "lightly_airflow.metadata.duplicates",
    "mark_duplicates": "lightly_airflow.metadata.duplicates",
    "METRICS": "lightly_airflow.metadata.metrics",
    "ImageResult": "lightly_airflow.metadata.metrics",
    "compute_metrics": "lightly_airflow.metadata.metrics",
    "inspect_image": "lightly_airflow.metadata.metrics",
    "laplacian_std": "lightly_airflow.metadata.metrics",
    "compute_metadata_shard": "lightly_airflow.metadata.shard",
    "TooManyErrorsError": "lightly_airflow.staging",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(import_module(_HOMES[name]), name)  # (imported once)
    return value
