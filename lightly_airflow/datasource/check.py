"""One check "are there new files?", shared by the sensor's poke and the deferrable trigger."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass

import pyarrow as pa

from lightly_airflow.datasource import known as known_module
from lightly_airflow.datasource.diff import new_files
from lightly_airflow.datasource.listing import list_files
from lightly_airflow.datasource.records import IMAGE_EXTENSIONS, MANIFEST_SCHEMA
from lightly_airflow.storage import StorageCredentials

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewFilesCheck:
    """The outcome of one check; small enough for XCom and trigger events."""

    datasource_uri: str
    listed: int
    new: int
    known: int
    process_all: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_new_files(
    datasource_uri: str,
    datapool_uri: str,
    *,
    credentials: StorageCredentials | None = None,
    datapool_credentials: StorageCredentials | None = None,
    relevant_filenames: str | None = None,
    extensions: Collection[str] = IMAGE_EXTENSIONS,
    policy: str = "content",
    process_all: bool = False,
    known: Callable[[str, StorageCredentials | None], pa.Table | None] | None = None,
) -> NewFilesCheck:
    """List the datasource and count the files the datapool has not processed.

    :param datasource_uri: the datasource root.
    :param datapool_uri: the datapool to compare against.
    :param credentials: credentials of the datasource's store.
    :param datapool_credentials: credentials of the datapool's store.
    :param relevant_filenames: text of a relevant-filenames file.
    :param extensions: file extensions to list.
    :param policy: ``content`` or ``key`` (see :func:`new_files`).
    :param process_all: count every listed file as new.
    :param known: how to read the pool's known files (default :func:`known.known_files`).
    """
    table = pa.Table.from_batches(
        list(list_files(datasource_uri, credentials=credentials, relevant_filenames=relevant_filenames,
                        extensions=extensions)),
        schema=MANIFEST_SCHEMA,
    )
    if process_all:
        return NewFilesCheck(datasource_uri, table.num_rows, table.num_rows, 0, True)
    pool = (known or known_module.known_files)(datapool_uri, datapool_credentials)
    fresh = new_files(table, pool, policy=policy)
    result = NewFilesCheck(datasource_uri, table.num_rows, fresh.num_rows, 0 if pool is None else pool.num_rows, False)
    logger.info("new-file check of %s: %s", datasource_uri, result)
    return result
