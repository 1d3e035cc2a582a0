"""Writing manifest shards: the run's files to process, as deterministic Parquet shards in the staging area.

Their paths, schema metadata and the one reader (:func:`lightly_airflow.staging.read_manifest`) live in
:mod:`lightly_airflow.staging`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import staging
from lightly_airflow.columns import KEY, MANIFEST_COLUMNS
from lightly_airflow.datasource.records import MANIFEST_SCHEMA
from lightly_airflow.storage import StorageCredentials, filesystem, protocol_of, write_parquet

logger = logging.getLogger(__name__)

_SHARD_NAME = re.compile(r"^shard-(\d{5,})\.parquet$")


def shard_count(rows: int, *, max_shards: int = 1024, min_shard_size: int = 256) -> int:
    """How many shards ``rows`` files make: each holds at least ``min_shard_size`` (unless the run is smaller)
    and there are never more than ``max_shards`` (Airflow's ``max_map_length`` is 1024)."""
    if rows <= 0:
        return 0
    return max(1, min(max_shards, rows // min_shard_size))


def write_manifests(
    files: pa.Table,
    datapool_uri: str,
    run_id: str,
    *,
    datasource_uri: str,
    lightly_uri: str | None = None,
    credentials: StorageCredentials | None = None,
    max_shards: int = 1024,
    min_shard_size: int = 256,
    pool_embedding: dict[str, Any] | None = None,
) -> list[str]:
    """Write ``files`` as manifest shards ``<datapool>/_staging/<run>/manifest/shard-NNNNN.parquet``.

    Rows are sorted by key and split evenly, so a retried task writes byte-identical files; shards with a
    higher index left by an earlier attempt are removed.

    :param files: rows with ``key, size, etag, mtime`` (the output of :func:`new_files`), and for video frames
        ``video, frame_index, frame_pts, frame_seconds, video_problem`` (``video.listing.expand_videos``):
        a long video's frames are split over shards like any rows (frame ranges).
    :param datapool_uri: the datapool whose staging area receives the shards.
    :param run_id: the Airflow run id.
    :param datasource_uri: where the files live (recorded in the schema metadata for the stages).
    :param lightly_uri: where ``.lightly/`` lives; ``None`` records ``datasource_uri``.
    :param credentials: credentials of the datapool's store.
    :param max_shards: the most shards to write.
    :param min_shard_size: the fewest rows per shard before the run is split further.
    :param pool_embedding: ``{"model", "dim"}`` of the datapool (``None``: a new pool): the embed tasks refuse
        another model before embedding (``Manifest.check_embedding``).
    :returns: the shard URIs in index order (empty when ``files`` is empty).
    :raises ValueError: for bad sizes, missing columns or duplicate keys.
    """
    if max_shards < 1 or min_shard_size < 1:
        raise ValueError(f"max_shards ({max_shards}) and min_shard_size ({min_shard_size}) must be at least 1.")
    if not datasource_uri:
        raise ValueError("datasource_uri is empty: pass the datasource the manifest's keys are relative to.")
    protocol_of(datasource_uri)
    if lightly_uri:
        protocol_of(lightly_uri)
    missing = [c for c in MANIFEST_COLUMNS if c not in files.column_names]
    if missing:
        raise ValueError(f"Cannot write manifests: columns {missing} are missing (have {files.column_names}).")
    table = pa.Table.from_arrays(
        [files.column(c).cast(MANIFEST_SCHEMA.field(c).type) for c in MANIFEST_COLUMNS], schema=MANIFEST_SCHEMA
    )
    # Video frame rows (video.listing.expand_videos) carry their video, frame index, pts and problem.
    from lightly_airflow.video.listing import VIDEO_FIELDS

    for f in VIDEO_FIELDS:
        if f.name in files.column_names:
            table = table.append_column(f, files.column(f.name).cast(f.type))
    if table.num_rows > 1:
        table = table.take(pc.sort_indices(table, sort_keys=[(KEY, "ascending")]))
    if pc.count_distinct(table.column(KEY)).as_py() != table.num_rows:
        raise ValueError("Cannot write manifests: the file list has duplicate keys; pass one row per file.")
    table = table.replace_schema_metadata(staging.manifest_schema_metadata(datasource_uri, lightly_uri, pool_embedding))
    count = shard_count(table.num_rows, max_shards=max_shards, min_shard_size=min_shard_size)
    from lightly_airflow.video.listing import shard_bounds

    bounds = shard_bounds(table, count)  # even, except that a video that cannot seek is not split
    count = len(bounds) - 1
    fs, _ = filesystem(datapool_uri, credentials)
    uris = []
    for index in range(count):
        start, stop = bounds[index], bounds[index + 1]
        uri = staging.shard_uri(datapool_uri, run_id, staging.MANIFEST, index)
        write_parquet(table.slice(start, stop - start), uri, credentials)
        uris.append(uri)
    _remove_stale(fs, datapool_uri, run_id, count, credentials)
    logger.info("wrote %d manifest shards (%d files) for run %s", count, table.num_rows, run_id)
    return uris


def _remove_stale(fs: Any, datapool_uri: str, run_id: str, count: int, credentials: StorageCredentials | None) -> None:
    folder = staging.shard_uri(datapool_uri, run_id, staging.MANIFEST, 0).rsplit("/", 1)[0]
    _, path = filesystem(folder, credentials)
    try:
        fs.invalidate_cache(path)
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return
    for name in names:
        match = _SHARD_NAME.match(name.rstrip("/").rsplit("/", 1)[-1])
        if match and int(match.group(1)) >= count:
            logger.info("removing stale manifest shard %s from an earlier attempt", name)
            fs.rm_file(name)
