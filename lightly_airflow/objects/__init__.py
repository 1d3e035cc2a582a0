"""Object-level curation: objects from detection / instance-segmentation / keypoint predictions and from
``auto_tasks`` become crops that are embedded, selected on and written (docs/objects.md).

The names load their module on first use (PEP 562), as :mod:`lightly_airflow.metadata`'s do: an ``embed`` process
imports ``objects.shard``, and the package's imports had pulled the select task's ``objects.run`` with it
(``pyarrow.compute``: 0.03 s of CPU a shard).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    **dict.fromkeys(("commit_rows", "load_run_objects", "pool_objects", "processed_later", "record_crops",
                     "recorded_summary", "report_figure", "summary", "with_object_metadata", "write_crops"),
                    "lightly_airflow.objects.run"),
    **dict.fromkeys(("ObjectsSpec", "objects_spec", "read_spec", "write_spec"), "lightly_airflow.objects.spec"),
}

__all__ = [
    "ObjectsSpec", "commit_rows", "load_run_objects", "objects_spec", "pool_objects", "processed_later", "read_spec",
    "record_crops", "recorded_summary", "report_figure", "summary", "with_object_metadata", "write_crops",
    "write_spec",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(import_module(_HOMES[name]), name)  # (imported once)
    return value
