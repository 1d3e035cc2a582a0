"""One check "are there new files?", shared by the sensor's poke and the deferrable trigger."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from lightly_airflow.datasource.query import KnownFiles, NewFilesQuery, QueryCredentials, find_new_files

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
    query: NewFilesQuery, credentials: QueryCredentials | None = None, *, known: KnownFiles | None = None
) -> NewFilesCheck:
    """List the datasource and count the files ``query`` says a run would process.

    :param query: what is new (the same query the list task runs).
    :param credentials: credentials of the datasource, datapool and ``.lightly/`` stores.
    :param known: how to read the pool's known files (default :func:`known.known_files`).
    """
    found = find_new_files(query, credentials, known=known)
    return NewFilesCheck(
        query.datasource_uri, found.listing.num_rows, found.files.num_rows, found.known_count, query.process_all
    )
