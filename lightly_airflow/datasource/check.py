"""One check "are there new files?", shared by the sensor's poke, the deferrable trigger and the event trigger.

:func:`main` runs one check in a child process (what the trigger does, so
that the listing's work — S3 XML pages parsed while holding the GIL, Arrow tables of every key — never runs
in the triggerer that all deferred tasks share): it reads ``{"query": …, "credentials": …, "digest": …, "announced": …}`` as JSON on
stdin and writes the :class:`NewFilesCheck` (or ``{"error": "<type>: <message>"}``) as JSON on stdout; its
log goes to stderr.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
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
    #: announces a set of new files once, and again only when it holds files it did not announce
    digest: str = ""
    #: those files as :func:`encode_hashes` of their :func:`file_hashes` ("" when not asked for, or more than
    #: :data:`MAX_HASHED_FILES`)
    files: str = ""
    #: how many of them are not in the ``announced`` set the check was given (-1: none given)
    unannounced: int = -1

    def to_dict(self) -> dict[str, object]:
        """The fields (the event trigger's only when asked for: the sensor's XCom has the five others)."""
        out = asdict(self)
        for name, unset in (("digest", ""), ("files", ""), ("unannounced", -1)):
            if out[name] == unset:
                del out[name]
        return out


#: Up to this many new files the event trigger remembers the announced set file by file (8 bytes each in the
#: asset's state store, ~213 kB of text at most); above it, by its digest alone.
MAX_HASHED_FILES = 20_000


def file_hashes(files: pa.Table) -> np.ndarray:
    """Sorted unique 64-bit hashes (BLAKE2b) of the files' key, content identity and size."""
    keys, etags, sizes = (files.column(c).to_pylist() for c in (KEY, ETAG, SIZE))
    out = np.fromiter((int.from_bytes(hashlib.blake2b(f"{k}\x00{e}\x00{s}".encode(), digest_size=8).digest(), "little")
                       for k, e, s in zip(keys, etags, sizes, strict=True)), dtype=np.uint64, count=len(keys))
    return np.unique(out)


def encode_hashes(hashes: np.ndarray) -> str:
    """:func:`file_hashes` as text (base64 of their little-endian bytes)."""
    return base64.b64encode(np.ascontiguousarray(hashes, dtype="<u8").tobytes()).decode()


def decode_hashes(text: str) -> np.ndarray:
    """The hashes :func:`encode_hashes` wrote."""
    return np.frombuffer(base64.b64decode(text), dtype="<u8").astype(np.uint64)


def files_digest(files: pa.Table, hashes: np.ndarray | None = None) -> str:
    """SHA-256 (hex) of the files' :func:`file_hashes` ("" for no files; ``hashes``: those already computed):
    the same new files give the same digest in every process, whatever their order; a file added, removed or
    changed gives another."""
    if not files.num_rows:
        return ""
    hashes = file_hashes(files) if hashes is None else hashes
    return hashlib.sha256(np.ascontiguousarray(hashes, dtype="<u8").tobytes()).hexdigest()


def check_new_files(
    query: NewFilesQuery, credentials: QueryCredentials | None = None, *, known: KnownFiles | None = None,
    digest: bool = False, announced: str | None = None,
) -> NewFilesCheck:
    """List the datasource and count the files ``query`` says a run would process.

    :param query: what is new (the same query the list task runs).
    :param credentials: credentials of the datasource, datapool and ``.lightly/`` stores.
    :param known: how to read the pool's known files (default :func:`known.known_files`).
    :param digest: also compute the :func:`files_digest` of those files and, up to :data:`MAX_HASHED_FILES` of
        them, the :func:`file_hashes` it is made of (~0.15 s per 100,000 files: asked only by the event trigger).
    :param announced: :func:`encode_hashes` of the files announced before: count those not among them.
    """
    # (every poke: each warning once; a file the pool records as missing, e.g. unreadable, is not new to a check,
    # which would start a run at every poke while it stays so: the next run that starts retries it)
    found = find_new_files(query, credentials, known=known, repeated=True, retry_missing=False)
    digest_text, files, unannounced = "", "", -1
    if (digest or announced) and found.files.num_rows:
        hashes = file_hashes(found.files)
        digest_text = files_digest(found.files, hashes) if digest else ""
        if len(hashes) <= MAX_HASHED_FILES:
            files = encode_hashes(hashes) if digest else ""
            if announced:
                unannounced = int(np.count_nonzero(~np.isin(hashes, decode_hashes(announced))))
    return NewFilesCheck(
        query.datasource_uri, found.listing.num_rows, found.files.num_rows, found.known_count, query.process_all,
        digest_text, files, unannounced,
    )


def hash_cache_path(root: str) -> str | None:
    """Where checks in child processes keep the content hashes of the local datasource folder ``root`` from one
    poke to the next (:func:`~lightly_airflow.datasource.listing.load_hashes`): a file per folder (resolved), in a
    folder of the temporary directory only this user may use; ``None`` when that folder is not this user's alone
    (logged: the files are hashed every check) or there is no owner to check (Windows)."""
    import stat
    import tempfile

    if not hasattr(os, "getuid"):
        return None
    folder = os.path.join(tempfile.gettempdir(), f"lightly-airflow-hashes-{os.getuid()}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        logger.warning("not caching content hashes in %s (%s): every check hashes the datasource's files again",
                       folder, exc)
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        logger.warning("not caching content hashes in %s: it is not a folder of this user's alone (mode %o); every "
                       "check hashes the datasource's files again", folder, stat.S_IMODE(info.st_mode))
        return None
    return os.path.join(folder, hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:32] + ".parquet")


@contextlib.contextmanager
def hashes_kept(datasource_uri: str) -> Iterator[None]:
    """Around a check in a process of its own (the trigger's child, a rescheduled sensor's poke): start with the
    local datasource's content hashes the check before kept (:func:`hash_cache_path`), keep this check's after it
    (a cache that cannot be written is logged: the next check hashes again); nothing for an object store (its
    listing carries the etags). A new process each poke read every file of the datasource again."""
    from lightly_airflow.datasource.listing import load_hashes, save_hashes
    from lightly_airflow.storage import filesystem, protocol_of

    root = filesystem(datasource_uri)[1] if protocol_of(datasource_uri) == "file" else None
    cache = hash_cache_path(root) if root is not None else None
    if cache:
        load_hashes(cache)
    yield
    if cache and root is not None:
        try:
            save_hashes(cache, (root, os.path.realpath(root)))
            _remove_unused(os.path.dirname(cache))
        except OSError as exc:
            logger.warning("content-hash cache %s cannot be written (%s): the next check hashes every file", cache, exc)


#: A datasource's kept hashes no check used for this long are removed (a folder no longer watched).
UNUSED_HASHES_SECONDS = 7 * 86_400


def _remove_unused(folder: str) -> None:
    import time

    for entry in os.scandir(folder):
        if entry.name.endswith(".parquet") and entry.stat().st_mtime < time.time() - UNUSED_HASHES_SECONDS:
            os.unlink(entry.path)


def main() -> int:
    """The child-process entry point (see the module's docstring)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        payload = json.loads(sys.stdin.read())
        query = NewFilesQuery.from_dict(payload["query"])
        with hashes_kept(query.datasource_uri):
            result = check_new_files(
                query, QueryCredentials.from_dict(payload.get("credentials") or {}),
                digest=bool(payload.get("digest")), announced=payload.get("announced") or None,
            )
    except Exception as exc:  # noqa: BLE001 - reported to the trigger, which fails the sensor with it
        logger.exception("new-file check failed")
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result.to_dict()))
    return 0
