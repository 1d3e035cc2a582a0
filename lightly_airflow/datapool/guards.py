"""Checks the first task runs so a run that cannot commit fails in seconds, not after an hour of embedding.

* :func:`check_pool_location`: a datapool inside (or equal to) the datasource would list its own report
  images, thumbnails and Parquet files as samples in the next run; a datasource inside the pool would list
  the pool. Both are refused.
* :func:`check_tag_available`: the run's tag must be a valid name, not ``initial-tag`` and not used by
  another run of the pool (the commit would refuse it after all the work).
"""

from __future__ import annotations

import os
import posixpath

from lightly_airflow.datapool.errors import DatapoolError, TagExistsError
from lightly_airflow.datapool.pool import Datapool, check_tag_free, default_tag, validate_tag
from lightly_airflow.storage import StorageCredentials, local_path, protocol_of


def _location(uri: str) -> tuple[str, str]:
    """``(protocol + bucket, normalised path)`` of a URI for containment checks (local paths resolved)."""
    protocol = protocol_of(uri)
    if protocol == "file":
        return "file", os.path.realpath(local_path(uri))
    _, _, rest = str(uri).partition("://")
    bucket, _, path = rest.partition("/")
    return f"{protocol}://{bucket}", posixpath.normpath("/" + path)


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def check_pool_location(datasource_uri: str, datapool_uri: str) -> None:
    """Refuse a datapool equal to, inside, or containing the datasource.

    :raises DatapoolError: naming both locations and the fix.
    """
    (src_store, src), (pool_store, pool) = _location(datasource_uri), _location(datapool_uri)
    if src_store != pool_store:
        return
    if _inside(pool, src):
        where = "is the datasource itself" if pool == src else "lies inside the datasource"
        raise DatapoolError(
            f"datapool_uri {datapool_uri!r} {where} ({datasource_uri!r}): the next run would list the pool's "
            "own reports, thumbnails and Parquet files as samples. Put the datapool outside the datasource "
            "(e.g. a sibling folder or another bucket prefix)."
        )
    if _inside(src, pool):
        raise DatapoolError(
            f"datasource_uri {datasource_uri!r} lies inside the datapool {datapool_uri!r}: the run would list the "
            "pool's files as samples. Point the datasource at the folder of your images."
        )


def check_tag_available(
    datapool_uri: str, tag: str | None, run_id: str, credentials: StorageCredentials | None = None,
) -> str:
    """The run's tag name, checked against the pool as the commit will check it; return it.

    A tag the same run already committed is fine (a retry or a re-run of a committed run).
    :raises DatapoolError: an invalid name or ``initial-tag``.
    :raises TagExistsError: another run of the pool uses the tag.
    """
    name = validate_tag(tag) if tag else default_tag(run_id)
    pool = Datapool(datapool_uri, credentials)
    if not pool.exists():
        return name
    snap = pool.snapshot()
    if snap.committed_version(run_id) is not None:
        return name
    try:
        check_tag_free(snap, name)
    except TagExistsError as exc:
        hint = "" if tag else " (derived from the run id; pass tag_name)"
        raise TagExistsError(f"{exc}{hint}") from None
    return name
