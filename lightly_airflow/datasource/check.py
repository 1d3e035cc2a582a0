"""One check "are there new files?", shared by the sensor's poke, the deferrable trigger and the event trigger.

:func:`main` runs one check in a child process (what the trigger does, so
that the listing's work — S3 XML pages parsed while holding the GIL, Arrow tables of every key — never runs
in the triggerer that all deferred tasks share): it reads ``{"query": …, "credentials": …, "digest": …}`` as JSON on
stdin and writes the :class:`NewFilesCheck` (or ``{"error": "<type>: <message>"}``) as JSON on stdout; its
log goes to stderr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import asdict, dataclass

import pyarrow as pa

from lightly_airflow.columns import ETAG, KEY, SIZE
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
    #: :func:`files_digest` of the files a run would process ("" when none or not asked for): the event trigger
    #: announces a set of new files once, and again only when it changed
    digest: str = ""

    def to_dict(self) -> dict[str, object]:
        """The fields (``digest`` only when there is one: the sensor's XCom has the five others)."""
        out = asdict(self)
        if not self.digest:
            del out["digest"]
        return out


def files_digest(files: pa.Table) -> str:
    """SHA-256 (hex) of the files' keys, content identities and sizes, in key order ("" for no files): the same
    new files give the same digest in every process; a file added, removed or changed gives another."""
    if not files.num_rows:
        return ""
    import pyarrow.compute as pc

    t = files.select([KEY, ETAG, SIZE]).sort_by(KEY)
    rows = pc.binary_join_element_wise(t[KEY], t[ETAG], pc.cast(t[SIZE], pa.string()), "\x00")
    h = hashlib.sha256()
    for chunk in rows.chunks:
        if not len(chunk):
            continue
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(chunk)], pa.int32()), chunk), "\n")
        h.update(joined[0].as_buffer())
        h.update(b"\n")
    return h.hexdigest()


def check_new_files(
    query: NewFilesQuery, credentials: QueryCredentials | None = None, *, known: KnownFiles | None = None,
    digest: bool = False,
) -> NewFilesCheck:
    """List the datasource and count the files ``query`` says a run would process.

    :param query: what is new (the same query the list task runs).
    :param credentials: credentials of the datasource, datapool and ``.lightly/`` stores.
    :param known: how to read the pool's known files (default :func:`known.known_files`).
    :param digest: also compute :func:`files_digest` of those files (0.1 s per 100,000 of them: asked only by
        the event trigger).
    """
    found = find_new_files(query, credentials, known=known)
    return NewFilesCheck(
        query.datasource_uri, found.listing.num_rows, found.files.num_rows, found.known_count, query.process_all,
        files_digest(found.files) if digest else "",
    )


def main() -> int:
    """The child-process entry point (see the module's docstring)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        payload = json.loads(sys.stdin.read())
        result = check_new_files(
            NewFilesQuery.from_dict(payload["query"]), QueryCredentials.from_dict(payload.get("credentials") or {}),
            digest=bool(payload.get("digest")),
        )
    except Exception as exc:  # noqa: BLE001 - reported to the trigger, which fails the sensor with it
        logger.exception("new-file check failed")
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result.to_dict()))
    return 0
