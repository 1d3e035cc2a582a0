"""What the datapool already holds: the one place the datasource layer asks the datapool."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from lightly_airflow.storage import StorageCredentials

logger = logging.getLogger(__name__)


def known_files(datapool_uri: str, credentials: StorageCredentials | None = None) -> pa.Table | None:
    """``key, etag`` (and ``content_hash``, ``status``) of every file the datapool knows
    (:meth:`Snapshot.known_files <lightly_airflow.datapool.snapshot.Snapshot.known_files>`, by the one rule
    :func:`~lightly_airflow.datapool.snapshot.known_rows`); ``None`` when the pool does not exist yet (its first run
    processes everything).

    A datapool that cannot be read is an error, never "every file is new": treating a broken installation
    (or an unreadable pool) as an empty pool would silently reprocess and re-select the whole datasource.

    :param datapool_uri: the datapool (a Delta table).
    :param credentials: credentials of the datapool's store.
    :raises ImportError: when the datapool package cannot be imported (a broken installation).
    """
    from lightly_airflow.datapool import Datapool

    pool = Datapool(datapool_uri, credentials)
    if not pool.exists():
        logger.info("datapool %s does not exist yet: every file is new", datapool_uri)
        return None
    return pool.known_files()


def pool_files(snapshot: Any, datasource_uri: str) -> pa.Table | None:
    """``key, file, selected`` of the pool's image and video-frame samples whose latest row a run of
    ``datasource_uri`` committed (``file``: the sample's file in that datasource, a frame's video; ``selected``:
    the key is in ``initial-tag``); ``None`` when the pool records no run of that datasource root. One read of
    the pool's key columns.

    Object rows are left out (their image is a sample of its own), as are rows of commits that recorded no
    datasource or another one (their keys are relative to another root), and keys the pool knows no file of by
    :func:`~lightly_airflow.datapool.snapshot.known_rows` (a tombstone: a key a moved file took over,
    ``datapool.moves``, accounted for, not gone; a frame a replaced video no longer has, no sample).

    :param snapshot: the pool version the run reads (:class:`~lightly_airflow.datapool.Snapshot`).
    """
    import pyarrow.compute as pc

    from lightly_airflow import columns as C
    from lightly_airflow.datapool.export import datasource_versions
    from lightly_airflow.datapool.rows import COMMIT_VERSION
    from lightly_airflow.datapool.snapshot import initial_tag_mask, known_rows, latest_per_key

    versions = datasource_versions(snapshot.history(), datasource_uri)  # (runs that spelled it otherwise too)
    if not versions:
        return None
    present = snapshot.column_names()
    wanted = [C.KEY, *(c for c in (C.VIDEO, C.PARENT_KEY, C.SELECTED, C.TAGS, C.ETAG, C.STATUS, C.STATUS_REASON)
                      if c in present)]
    rows = snapshot.select(wanted, "", extra=(C.KEY, COMMIT_VERSION))
    chosen = pa.array([], pa.string())
    if C.SELECTED in rows.column_names and C.TAGS in rows.column_names and C.ETAG in rows.column_names:
        # initial-tag as Snapshot.selected(): a selected row no newer version of its file or tombstone replaced
        chosen = rows.column(C.KEY).filter(initial_tag_mask(rows))
    rows = latest_per_key(rows)
    mine = pc.is_in(rows.column(COMMIT_VERSION), value_set=pa.array(versions, rows.schema.field(COMMIT_VERSION).type))
    if C.PARENT_KEY in rows.column_names:
        mine = pc.and_(mine, pc.is_null(rows.column(C.PARENT_KEY)))
    rows = known_rows(rows.filter(mine))  # (no tombstone: a key a move ended is accounted for, not gone)
    keys = rows.column(C.KEY).cast(pa.string())
    files = keys if C.VIDEO not in rows.column_names else pc.coalesce(rows.column(C.VIDEO).cast(pa.string()), keys)
    selected = pc.is_in(keys, value_set=pc.unique(chosen).cast(pa.string()))
    return pa.table({C.KEY: keys, "file": files, C.SELECTED: selected})
