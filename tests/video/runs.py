"""One run through the plain functions (what the DAG's tasks call), for the video tests."""

from __future__ import annotations

from typing import Any

DIVERSITY = {"n_samples": 100, "strategies": [{"input": {"type": "EMBEDDINGS"},
                                               "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.1}}]}


def run_once(source_uri: str, pool_uri: str, run_id: str, *, config: Any = DIVERSITY, process_all: bool = False,
             creds: Any = None, **kwargs: Any) -> tuple[Any, list[dict[str, Any]], Any]:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.datasource.query import QueryCredentials
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard
    from lightly_airflow.storage import read_parquet

    query = NewFilesQuery(datasource_uri=source_uri, datapool_uri=pool_uri, process_all=process_all)
    listed = list_new(query, run_id=run_id, min_shard_size=20,
                      credentials=QueryCredentials(datasource=creds, datapool=creds, lightly=creds))
    reuse = read_parquet(listed.reuse_uri, creds) if listed.reuse_uri else None
    counts = []
    for m in listed.manifests:
        counts.append(embed_shard(m, device="cpu", reuse=reuse, num_workers=1, credentials=creds))
        compute_metadata_shard(m, credentials=creds)
        load_predictions_shard(m, lightly_uri=source_uri, credentials=creds)
    summary = select_and_commit(datapool_uri=pool_uri, run_id=run_id, dag_id="t", manifests=listed.manifests,
                                selection_config=config, datapool_credentials=creds, datasource_credentials=creds,
                                lightly_credentials=creds, **kwargs)
    return listed, counts, summary
