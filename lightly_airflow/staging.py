"""Deterministic paths of a run's staging area: ``<datapool>/_staging/<run>/<kind>/shard-NNNNN.parquet``.

Each task writes only files whose names derive from (run, kind, shard index), so a retried task overwrites
its own output and nothing else; the select task reads them all and is the only writer of the datapool.
"""

from __future__ import annotations

import hashlib
import re

from lightly_airflow.storage import join_uri

STAGING_DIR = "_staging"
MANIFEST = "manifest"
EMBEDDINGS = "embeddings"
METADATA = "metadata"
PREDICTIONS = "predictions"
ERRORS = "errors"
KINDS = (MANIFEST, EMBEDDINGS, METADATA, PREDICTIONS, ERRORS)


def run_slug(run_id: str) -> str:
    """A path-safe, unique folder name for an Airflow run id (``manual__2026-01-01T00:00:00+00:00``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_")[:80]
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def run_dir(datapool_uri: str, run_id: str) -> str:
    """The staging folder of one run."""
    return join_uri(datapool_uri, STAGING_DIR, run_slug(run_id))


def shard_uri(datapool_uri: str, run_id: str, kind: str, index: int) -> str:
    """The file of one shard of one kind (``manifest``, ``embeddings``, ``metadata``, ``predictions``, ``errors``)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown staging kind {kind!r}; allowed: {KINDS}.")
    return join_uri(run_dir(datapool_uri, run_id), kind, f"shard-{index:05d}.parquet")


def sibling_uri(manifest_uri: str, kind: str) -> str:
    """The output of ``kind`` for the shard whose manifest is ``manifest_uri`` (same run, same index)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown staging kind {kind!r}; allowed: {KINDS}.")
    head, _, name = manifest_uri.rstrip("/").rpartition("/")
    parent, _, folder = head.rpartition("/")
    if folder != MANIFEST:
        raise ValueError(f"{manifest_uri!r} is not a manifest shard (expected …/{MANIFEST}/shard-NNNNN.parquet).")
    return f"{parent}/{kind}/{name}"
