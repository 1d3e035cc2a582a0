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


def two_videos_proposed(tmp_path: Any, config: Any, run_id: str = "manual__v") -> tuple[Any, Any, Any, Any]:
    """Two 31-frame videos (``a.mp4``, ``b.mp4``) in ``tmp_path/src``, proposed for review by run ``run_id`` in
    sequences of 3 frames (``selected_sequence_length``) into ``tmp_path/pool``: (source, pool, listed, proposal)."""
    from lightly_airflow.review import Review
    from lightly_airflow.video.synthetic import make_scene_video

    source, pool = tmp_path / "src", tmp_path / "pool"
    source.mkdir()
    make_scene_video(str(source / "a.mp4"), "coffee", 31, seed=0)
    make_scene_video(str(source / "b.mp4"), "astronaut", 31, seed=1)
    listed, _, proposed = run_once(f"file://{source}", f"file://{pool}", run_id, config=config,
                                   review=Review("propose"), selected_sequence_length=3)
    return source, pool, listed, proposed
