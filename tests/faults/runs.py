"""A run's stages through the plain functions (what the DAG's tasks call), for the fault tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def prepare(source: Path, pool: Path, run_id: str, selection: dict, worker: dict | None = None,
            result: dict[str, Any] | None = None) -> list[str]:
    """List, embed, metadata and predictions of one run: its staging files, nothing committed.

    :param result: receives the listing's :class:`~lightly_airflow.pipeline.ListResult` under ``listed``.
    """
    from lightly_airflow.config import parse_selection_config, parse_worker_config
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.objects import objects_spec
    from lightly_airflow.pipeline import list_new
    from lightly_airflow.predictions import load_predictions_shard

    spec = objects_spec(parse_selection_config(selection), parse_worker_config(worker or {}))
    listed = list_new(NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{pool}"),
                      run_id=run_id, objects=spec)
    if result is not None:
        result["listed"] = listed
    for m in listed.manifests:
        embed_shard(m, device="cpu", num_workers=1)
        compute_metadata_shard(m)
        load_predictions_shard(m, lightly_uri=f"file://{source}")
    return listed.manifests
