"""Object-level curation: objects from detection / instance-segmentation / keypoint predictions and from
``auto_tasks`` become crops that are embedded, selected on and written (docs/objects.md)."""

from __future__ import annotations

from lightly_airflow.objects.run import (
    commit_rows,
    load_run_objects,
    pool_objects,
    processed_later,
    record_crops,
    recorded_summary,
    report_figure,
    summary,
    with_object_metadata,
    write_crops,
)
from lightly_airflow.objects.spec import ObjectsSpec, objects_spec, read_spec, write_spec

__all__ = [
    "ObjectsSpec", "commit_rows", "load_run_objects", "objects_spec", "pool_objects", "processed_later", "read_spec",
    "record_crops", "recorded_summary", "report_figure", "summary", "with_object_metadata", "write_crops",
    "write_spec",
]
