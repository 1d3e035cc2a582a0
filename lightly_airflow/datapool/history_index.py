"""The pool's history in segments beside the log, so a new process reads it in a few requests, not one per run.

A Delta log holds one commit file per version and the history (runs, tags, counts) lives only in those files:
a pool that an hourly DAG grew for a year has ~8,760 of them, and every new process (each select task, the UI
server after a restart) read them all (one GET each on object stores). After its commit a run writes the entries
committed since the last segment, once ``EVERY`` versions gathered, as ``<pool>/_history/<first>-<last>.json``
(written whole, never changed). A reader takes the contiguous segments from version 0, then reads from the log
only the entries after them, and the last segment's last entry again: it must equal the log's, else (a pool made
anew at the same place, a last entry deleted and committed anew) the segments are not used and the log is read
whole. A missing or unreadable segment only costs the reads it would have saved. Nothing here is a source of
truth: ``datapool check`` and every commit read the Delta log itself.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, map_io, write_bytes

log = logging.getLogger(__name__)

#: Folder of the segments, beside the Delta log (``datapool check`` skips folders starting with ``_``).
INDEX_DIR = "_history"
#: Versions a segment holds (a run writes one once this many gathered after the last).
EVERY = 100
_SEGMENT = re.compile(r"^(\d{20})-(\d{20})\.json$")
#: The last version the segments of each pool hold, as this process last saw them (read, listed or written): a
#: commit then knows without a LIST of ``_history/`` that no segment is due. Another process's newer segment only
#: makes the next listing come sooner; a value at or above the committed version (a pool made anew) is ignored.
_known_end: dict[str, int] = {}


def _segments(uri: str, credentials: StorageCredentials | None) -> list[tuple[int, int, str]]:
    """``(first, last, path)`` of each segment, by ``first``; empty when there are none."""
    fs, root = filesystem(join_uri(uri, INDEX_DIR), credentials)
    try:
        names = [posixpath.basename(str(p).rstrip("/")) for p in fs.ls(root, detail=False)]
    except FileNotFoundError:
        return []
    out = [(int(m.group(1)), int(m.group(2)), f"{root}/{n}") for n in names if (m := _SEGMENT.match(n))]
    return sorted(out)


def _encode(entry: dict[str, Any]) -> dict[str, Any]:
    ts = entry.get("timestamp")
    return {**entry, "timestamp": ts.isoformat() if isinstance(ts, datetime) else None}


def _decode(entry: dict[str, Any]) -> dict[str, Any]:
    ts = entry.get("timestamp")
    return {**entry, "timestamp": datetime.fromisoformat(ts) if isinstance(ts, str) else None}


def _log_entry(fs: Any, root: str, version: int) -> dict[str, Any] | None:
    """The history entry of one log file (its ``commitInfo``), or ``None`` when it is missing or has none."""
    from lightly_airflow.datapool.snapshot import history_entry

    try:
        text = fs.cat_file(f"{root}/_delta_log/{version:020d}.json")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith(b'{"commitInfo"'):
            return history_entry(json.loads(line)["commitInfo"], version)
    return None


def read_segments(uri: str, credentials: StorageCredentials | None, top: int) -> list[dict[str, Any]]:
    """The entries of the contiguous segments from version 0 up to ``top`` (oldest first; empty: none usable).
    Each segment's last entry is compared with its log file (one GET each, in parallel): a segment another pool
    at the same place left behind is not used."""
    from lightly_airflow.datapool.snapshot import same_entry

    chain: list[tuple[int, int, str]] = []
    for first, last, path in _segments(uri, credentials):
        if last > top:
            break
        if first != (chain[-1][1] + 1 if chain else 0):
            break  # a gap: only what is contiguous from version 0 counts
        chain.append((first, last, path))
    if not chain:
        return []
    fs, root = filesystem(uri, credentials)
    try:
        texts = map_io(fs.cat_file, [path for _, _, path in chain])
        parts = [[_decode(e) for e in json.loads(text)] for text in texts]
        logged = map_io(lambda last: _log_entry(fs, root.rstrip("/"), last), [last for _, last, _ in chain])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.info("History segments of %s not used (%s): the log is read instead.", uri, exc)
        return []
    for (first, last, _), part, entry in zip(chain, parts, logged):
        if [e.get("version") for e in part] != list(range(first, last + 1)) or entry is None \
                or not same_entry(part[-1], entry):
            log.info("History segment %d..%d of %s is not the log's: the log is read instead.", first, last, uri)
            return []
    _known_end[uri] = chain[-1][1]
    return [e for part in parts for e in part]


def write_due_segment(
    uri: str, credentials: StorageCredentials | None, version: int, history: Callable[[], list[dict[str, Any]]],
) -> str | None:
    """After the commit of ``version``: write the entries since the last segment as one, once :data:`EVERY`
    gathered (``history``: reads the pool's whole history, oldest first; called only then). Never raises: a
    segment is only a shortcut (logged when it cannot be written)."""
    if version + 1 < EVERY:
        return None  # a young pool: not even a listing
    known = _known_end.get(uri)
    if known is not None and known < version and version - known < EVERY:
        return None  # the segments this process read or wrote end less than EVERY versions ago: no listing
    try:
        segments = _segments(uri, credentials)
        start = segments[-1][1] + 1 if segments else 0
        if version - start + 1 < EVERY:
            if segments:
                _known_end[uri] = segments[-1][1]
            return None
        if segments and not read_segments(uri, credentials, version):
            # Left by another pool at the same place, or damaged: replaced, from version 0.
            fs, _ = filesystem(uri, credentials)
            for _first, _last, path in segments:
                fs.rm_file(path)
            start = 0
        part = [_encode(e) for e in history() if start <= e["version"] <= version]
        if [e["version"] for e in part] != list(range(start, version + 1)):
            return None
        target = join_uri(uri, INDEX_DIR, f"{start:020d}-{version:020d}.json")
        write_bytes(json.dumps(part, separators=(",", ":")).encode(), target, credentials)
        _known_end[uri] = version
        log.info("History of %s: versions %d..%d written as one segment (%s).", uri, start, version, target)
        return target
    except Exception as exc:  # noqa: BLE001 - the commit stands; readers read the log instead
        log.warning("History segment of %s not written (%s): readers read the log instead.", uri, exc)
        return None


__all__ = ["EVERY", "INDEX_DIR", "read_segments", "write_due_segment"]
