"""What the datapool already holds: the one place the datasource layer asks the datapool."""

from __future__ import annotations

import logging

import pyarrow as pa

from lightly_airflow.storage import StorageCredentials

logger = logging.getLogger(__name__)


def known_files(datapool_uri: str, credentials: StorageCredentials | None = None) -> pa.Table | None:
    """``key, etag`` (and ``content_hash``) of every file the datapool has processed; ``None`` when the pool
    does not exist yet (its first run processes everything).

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
