"""Tags made by hand (the UI's filters, a lasso on the map): one datapool commit like any other.

A tag is stored where run tags live, in the rows' ``tags`` list: :func:`create_tag` appends the name to the
chosen rows in one Delta MERGE whose commit metadata says ``operation: "tag"`` with the tag, the number of
samples, who made it and how (the filter). So a hand-made tag is a new pool version: time travel shows the pool
before and after it, nothing else in any row changes, and the files it replaced stay readable (the pool keeps
every version, :data:`~lightly_airflow.datapool.pool.DEFAULT_TABLE_CONFIGURATION`).

Rows are named by ``(sample_id, commit_version)``: the exact row of the exact run, so a sample processed again
later is tagged only in the row the user saw.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

from lightly_airflow import columns as C
from lightly_airflow.datapool.errors import ConcurrentCommitError, DatapoolError, TagExistsError
from lightly_airflow.datapool.pool import Datapool, validate_tag
from lightly_airflow.datapool.reading import quote_literal
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.datapool.snapshot import HAND_MADE_TAG_OPERATION, INITIAL_TAG_COUNT

log = logging.getLogger(__name__)

#: ``operation`` of a hand-made tag's commit (``history()`` shows it).
TAG_OPERATION = HAND_MADE_TAG_OPERATION
#: Most rows one tag may name (a bigger set is better made by a run).
MAX_TAG_ROWS = 5_000_000
#: Tries of a hand-made tag whose commit another writer (a run, a compaction) beats: each reads the pool again.
TAG_ATTEMPTS = 3


def hand_made_tags(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hand-made tags in a pool's ``history()``: ``name, run_id (None), version, count, made_by, source``."""
    out = []
    for entry in history:
        if entry.get("operation") == TAG_OPERATION and entry.get("tag"):
            counts = entry.get("counts") or {}
            out.append({
                "name": entry["tag"], "run_id": None, "version": entry["version"],
                "count": entry.get("selected") if entry.get("selected") is not None else counts.get("tagged"),
                "made_by": counts.get("made_by"), "source": (entry.get("config") or {}).get("source"),
            })
    return out


def _table(pool: Datapool) -> DeltaTable:
    try:
        return DeltaTable(pool._table_uri, storage_options=pool._options)
    except Exception as exc:  # noqa: BLE001 - named for the user
        raise DatapoolError(f"No datapool at {pool.uri}: {exc}") from None


def create_tag(
    pool: Datapool, name: str, rows: pa.Table, *, made_by: str | None = None, source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tag the given rows with ``name`` in one new pool version.

    :param pool: the datapool.
    :param name: the new tag (:data:`~lightly_airflow.datapool.pool.TAG_PATTERN`, not an existing tag nor ``initial-tag``).
    :param rows: ``sample_id`` and ``commit_version`` of the rows to tag (duplicates are ignored).
    :param made_by: the user, recorded in the commit.
    :param source: how the set was chosen (e.g. ``{"filter": {...}, "version": 7}``), recorded in the commit.
    :returns: ``{"tag", "version", "count"}`` of the new commit.
    :raises TagExistsError: the name is taken (by a run or by hand).
    :raises DatapoolError: bad name, no rows, rows that are not in the pool.
    """
    validate_tag(name)
    for column in (C.SAMPLE_ID, COMMIT_VERSION):
        if column not in rows.column_names:
            raise DatapoolError(f"create_tag needs the columns sample_id and commit_version; {column!r} is missing.")
    wanted = pa.table({
        C.SAMPLE_ID: rows.column(C.SAMPLE_ID).cast(pa.string()),
        COMMIT_VERSION: rows.column(COMMIT_VERSION).cast(pa.int64()),
    }).group_by([C.SAMPLE_ID, COMMIT_VERSION]).aggregate([])
    if wanted.num_rows == 0:
        raise DatapoolError(f"Tag {name!r} would be empty: choose at least one sample.")
    if wanted.num_rows > MAX_TAG_ROWS:
        raise DatapoolError(f"Tag {name!r} would hold {wanted.num_rows} rows; at most {MAX_TAG_ROWS} can be tagged at once.")
    for attempt in range(1, TAG_ATTEMPTS + 1):
        table = _table(pool)
        snap = pool.snapshot_of(table)
        for entry in snap.history():
            if entry.get("tag") == name:
                raise TagExistsError(
                    f"Tag {name!r} already exists in {pool.uri} (version {entry['version']}); choose another name."
                )
        try:
            metrics = _merge_tag(table, name, wanted, made_by, source, snap.recorded_initial_tag_count())
            break
        except CommitFailedError:  # delta-rs says only "Failed to commit transaction: 0"
            if attempt < TAG_ATTEMPTS:  # the rows are named by (sample_id, commit_version): the same rows after it
                log.info("Tag %r: a run or a compaction committed to %s meanwhile (now version %s); tagging "
                         "again (attempt %d of %d).", name, pool.uri, pool.version(), attempt + 1, TAG_ATTEMPTS)
                continue
            raise ConcurrentCommitError(
                f"Tag {name!r} was not made: runs or compactions committed to {pool.uri} (now version "
                f"{pool.version()}) while it was being written, {TAG_ATTEMPTS} times. Nothing was tagged; make "
                "the tag again.",
                read_version=int(table.version()), current_version=pool.version(),
            ) from None
    updated = int(metrics.get("num_target_rows_updated", 0))
    version = int(table.version())  # the MERGE loaded its own version
    if updated != wanted.num_rows:
        log.warning("Tag %r: %d of %d chosen rows were found in %s.", name, updated, wanted.num_rows, pool.uri)
    log.info("Tagged %d rows of %s as %r (version %d, by %s).", updated, pool.uri, name, version, made_by)
    return {"tag": name, "version": version, "count": updated}


def _merge_tag(table: DeltaTable, name: str, wanted: pa.Table, made_by: str | None,
               source: dict[str, Any] | None, initial_tag_count: int | None) -> dict[str, Any]:
    """One MERGE appending ``name`` to the ``tags`` of the ``wanted`` rows; it must land on ``table``'s version.
    ``initial_tag_count``: the count ``table``'s version recorded, recorded again (the name is never ``initial-tag``
    and no row's ``selected`` changes: initial-tag holds what it held); ``None`` records none."""
    meta = {
        "operation": TAG_OPERATION, "tag": name, "run_id": None, "dag_id": None, "selected": wanted.num_rows,
        "rows": wanted.num_rows, "counts": {"tagged": wanted.num_rows, "made_by": made_by},
        "config": {"source": source or {}}, "created_at": datetime.now(UTC).isoformat(),
    }
    if initial_tag_count is not None:
        meta[INITIAL_TAG_COUNT] = initial_tag_count
    tags = f"t.{C.TAGS}"
    return dict(
        table.merge(
            source=wanted, predicate=f"t.{C.SAMPLE_ID} = s.{C.SAMPLE_ID} AND t.{COMMIT_VERSION} = s.{COMMIT_VERSION}",
            source_alias="s", target_alias="t",
            commit_properties=CommitProperties(custom_metadata={"lightly": meta}, max_commit_retries=0),
        )
        .when_matched_update({C.TAGS: f"array_append({tags}, {quote_literal(name)})"})
        .execute()
    )


_RUN_ID = re.compile(r"^(?P<kind>[a-z_]+)__(?P<date>\d{4}-\d{2}-\d{2})T(?P<hh>\d{2}):(?P<mm>\d{2})")


def readable_tag(run_id: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A run's default tag, readable and unique: ``scheduled-2026-03-01-00:00`` from
    ``scheduled__2026-03-01T00:00:00+00:00`` (the run's logical date), ``-2``, ``-3``... when taken.

    Run ids of another shape fall back to :func:`~lightly_airflow.datapool.pool.default_tag`.
    """
    from lightly_airflow.datapool.pool import default_tag

    m = _RUN_ID.match(run_id)
    base = f"{m['kind'].replace('_', '-')}-{m['date']}-{m['hh']}:{m['mm']}" if m else default_tag(run_id)
    name, n = base, 1
    while name in taken or name == C.INITIAL_TAG:
        n += 1
        name = f"{base}-{n}"
    return name
