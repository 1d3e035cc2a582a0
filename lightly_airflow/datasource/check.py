"""One check "are there new files?", shared by the sensor's poke and the deferrable trigger.

:func:`main` runs one check in a child process (what the trigger does, so
that the listing's work — S3 XML pages parsed while holding the GIL, Arrow tables of every key — never runs
in the triggerer that all deferred tasks share): it reads ``{"query": …, "credentials": …}`` as JSON on
stdin and writes the :class:`NewFilesCheck` (or ``{"error": "<type>: <message>"}``) as JSON on stdout; its
log goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
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


def main() -> int:
    """The child-process entry point (see the module's docstring)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        payload = json.loads(sys.stdin.read())
        result = check_new_files(
            NewFilesQuery.from_dict(payload["query"]), QueryCredentials.from_dict(payload.get("credentials") or {})
        )
    except Exception as exc:  # noqa: BLE001 - reported to the trigger, which fails the sensor with it
        logger.exception("new-file check failed")
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result.to_dict()))
    return 0
