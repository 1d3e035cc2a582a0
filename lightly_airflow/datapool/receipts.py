"""Commit receipts: a run's own record of the version it committed, outside the Delta log.

A Delta log alone cannot tell a *deleted* last log entry (damage: the pool silently reads as the version
before and the run's tag is lost) from an attempt killed before its log entry was written (harmless: the
retry commits the run): both leave the run's data files in no log entry. So right after its log entry is
written, a commit records ``<datapool>/_commits/<run slug>.json`` (``run_id``, ``version``, ``tag``,
``committed_at``); a retry that finds its commit writes a missing receipt. ``datapool check`` compares every
receipt with the log: a receipt whose version the log does not hold for that run is a deleted (or replaced)
log entry; data files of a run without receipt and without commit are a killed attempt.
"""

from __future__ import annotations

import json
import logging
import posixpath
from datetime import UTC, datetime
from typing import Any

from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, write_bytes

log = logging.getLogger(__name__)

RECEIPTS_DIR = "_commits"


def receipt_uri(datapool_uri: str, run_id: str) -> str:
    """``<datapool>/_commits/<run slug>.json`` (the slug of :func:`lightly_airflow.staging.run_slug`)."""
    from lightly_airflow.staging import run_slug

    return join_uri(datapool_uri, RECEIPTS_DIR, f"{run_slug(run_id)}.json")


def write_receipt(
    datapool_uri: str, credentials: StorageCredentials | None, *, run_id: str, version: int, tag: str | None,
) -> bool:
    """Record that ``run_id`` committed ``version``; idempotent (an equal receipt is not written again).

    A failure is logged, never raised: the commit it records has happened. :returns: whether a file was written.
    """
    uri = receipt_uri(datapool_uri, run_id)
    try:
        current = read_receipt(datapool_uri, run_id, credentials)
        if current is not None and current.get("run_id") == run_id and current.get("version") == version:
            return False
        body = {"run_id": run_id, "version": int(version), "tag": tag,
                "committed_at": datetime.now(UTC).isoformat(timespec="seconds")}
        write_bytes(json.dumps(body, sort_keys=True).encode(), uri, credentials)
        return True
    except Exception:  # noqa: BLE001 - the receipt only helps `datapool check`; the commit stands
        log.warning("Could not write the commit receipt %s of run %r (version %d); `datapool check` will treat "
                    "a later loss of its log entry as a killed attempt.", uri, run_id, version, exc_info=True)
        return False


def read_receipt(datapool_uri: str, run_id: str, credentials: StorageCredentials | None = None) -> dict[str, Any] | None:
    """The receipt of ``run_id``, or ``None``."""
    fs, path = filesystem(receipt_uri(datapool_uri, run_id), credentials)
    try:
        value = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None
    return value if isinstance(value, dict) else None


def read_receipts(datapool_uri: str, credentials: StorageCredentials | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every receipt of the pool as ``(uri, body)``; an unreadable receipt has the body ``{}``."""
    folder = join_uri(datapool_uri, RECEIPTS_DIR)
    fs, path = filesystem(folder, credentials)
    try:
        names = sorted(p for p in fs.ls(path, detail=False) if p.endswith(".json"))
    except FileNotFoundError:
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        uri = join_uri(folder, posixpath.basename(name))
        try:
            body = json.loads(fs.cat_file(name))
        except (ValueError, OSError):
            body = {}
        out.append((uri, body if isinstance(body, dict) else {}))
    return out
