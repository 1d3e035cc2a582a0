"""Keep a long-lived pool fast to read: merge the small data files that run after run leaves.

Every committed run adds one data file per partition (``selected=true/`` and ``selected=false/``), so a pool
that a DAG grows hourly holds thousands of small files within weeks, and every read of the selected set, of
the known files (each listing's diff base) and of the tag counts opens all of them: on an S3 emulator a pool of
1,000 small runs took 19-27 s per read, 0.03-0.04 s after the files were merged (``benchmarks/datapool.py
--small-runs 1000``). After a commit the select task calls :func:`compact_if_due`: once the latest version holds
``min_small_files`` files under half the target size, their rows are rewritten as one file per partition, in
one version of its own (``operation: compact`` in the history) that must land exactly on the version it read.
Nothing is deleted: the merged files stay for time travel (the pool's retention,
:data:`~lightly_airflow.datapool.pool.DEFAULT_TABLE_CONFIGURATION`), so every earlier version still reads as it
did. A compaction that another writer beats (a run's commit, a hand-made tag, another compaction) is skipped
and logged: the next run's call does it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import unquote

from deltalake import CommitProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from lightly_airflow import columns as C
from lightly_airflow.datapool.reading import query, quote_ident
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.datapool.snapshot import METADATA_KEY

log = logging.getLogger(__name__)

#: ``operation`` of a compaction's commit in the pool's history.
COMPACT_OPERATION = "compact"


@dataclass(frozen=True)
class CompactionOptions:
    """When and how the select task merges small data files (:func:`compact_if_due`).

    :param mode: ``auto`` merges once enough small files gathered; ``off`` never (e.g. the pool is optimised by
        another engine on a schedule of its own).
    :param min_small_files: how many files under ``target_file_bytes / 2`` the latest version holds before a
        compaction (two per run: 50 is about 25 small runs).
    :param target_file_bytes: the size merged files are packed to; files of half this size or more are never
        rewritten.
    """

    mode: Literal["auto", "off"] = "auto"
    min_small_files: int = 50
    target_file_bytes: int = 32 * 2**20

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "off"):
            raise ValueError(f"compaction mode must be 'auto' or 'off', got {self.mode!r}.")
        if self.min_small_files < 2:
            raise ValueError(f"min_small_files must be at least 2, got {self.min_small_files!r}.")
        if self.target_file_bytes < 2**16:
            raise ValueError(f"target_file_bytes must be at least 64 KiB, got {self.target_file_bytes!r}.")


@dataclass(frozen=True)
class CompactionResult:
    """What a compaction did: ``version`` is its own pool version (``None`` when it was skipped: ``reason``)."""

    version: int | None
    files_removed: int = 0
    files_added: int = 0
    small_files: int = 0
    seconds: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _files(table: Any) -> list[dict[str, Any]]:
    """``path, size, rows, selected, lo, hi`` (``lo``/``hi``: the file's ``commit_version`` range when the log's
    statistics hold it) of each live data file."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    names = set(actions.column_names)
    cols = {"path": "path", "size": "size_bytes", "rows": "num_records", "selected": f"partition.{C.SELECTED}",
            "lo": f"min.{COMMIT_VERSION}", "hi": f"max.{COMMIT_VERSION}"}
    rows = actions.select([c for c in cols.values() if c in names]).to_pylist()
    return [{k: row.get(c) for k, c in cols.items()} for row in rows]


def _is_small(f: dict[str, Any], options: CompactionOptions) -> bool:
    return f["size"] is not None and f["size"] < options.target_file_bytes // 2


def _count_small(files: list[dict[str, Any]], options: CompactionOptions) -> int:
    return sum(1 for f in files if _is_small(f, options))


def small_files(table: Any, options: CompactionOptions) -> int:
    """How many data files of ``table``'s loaded version are under half the target size (from the log alone)."""
    return _count_small(_files(table), options)


def _with_ranges(pool: Any, files: list[dict[str, Any]]) -> None:
    """Fill in ``lo``/``hi`` from each file's Parquet footer where the log has no statistics for the column
    (Delta keeps them for the first 32 columns only, and ``commit_version`` comes late): one footer read each."""
    import pyarrow.parquet as pq

    from lightly_airflow.storage import filesystem, join_uri, map_io

    def footer(f: dict[str, Any]) -> None:
        fs, path = filesystem(join_uri(pool.uri, unquote(f["path"])), pool._credentials)
        with fs.open(path, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
        column = meta.schema.to_arrow_schema().get_field_index(COMMIT_VERSION)
        stats = [meta.row_group(i).column(column).statistics for i in range(meta.num_row_groups)] if column >= 0 else []
        if stats and all(st is not None and st.has_min_max for st in stats):
            f["lo"], f["hi"] = min(int(st.min) for st in stats), max(int(st.max) for st in stats)

    map_io(footer, [f for f in files if f["lo"] is None or f["hi"] is None])


def _plan(files: list[dict[str, Any]], options: CompactionOptions) -> tuple[str, int, int]:
    """The predicate over ``selected`` and ``commit_version`` ranges matching the rows of the small files to merge
    (per partition, oldest first, at most twice the target size each), how many files and how many rows those
    are; ``("", 0, 0)`` when nothing can be merged. Every run's rows sit in one file per partition, so the ranges
    name whole files; :func:`compact` checks that the predicate matches no other file's rows."""
    budget = 2 * options.target_file_bytes
    clauses, n_files, n_rows = [], 0, 0
    for part in (True, False):
        small = sorted((f for f in files if f["selected"] is part and _is_small(f, options)
                        and f["lo"] is not None and f["hi"] is not None and f["rows"] is not None),
                       key=lambda f: (int(f["lo"]), int(f["hi"]), f["path"]))
        chosen: list[dict[str, Any]] = []
        total = 0
        for f in small:
            if chosen and total + f["size"] > budget:
                break
            chosen.append(f)
            total += f["size"]
        if len(chosen) < 2:
            continue
        spans: list[list[int]] = []  # the chosen files' ranges, joined where they touch (consecutive runs)
        for f in chosen:
            if spans and int(f["lo"]) <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], int(f["hi"]))
            else:
                spans.append([int(f["lo"]), int(f["hi"])])
        ranges = " OR ".join(f"{quote_ident(COMMIT_VERSION)} BETWEEN {lo} AND {hi}" for lo, hi in spans)
        clauses.append(f"({quote_ident(C.SELECTED)} = {'true' if part else 'false'} AND ({ranges}))")
        n_files += len(chosen)
        n_rows += sum(int(f["rows"]) for f in chosen)
    return " OR ".join(clauses), n_files, n_rows


def compact(pool: Any, options: CompactionOptions | None = None, *, force: bool = False) -> CompactionResult:
    """Merge the latest version's small files into one new version when due (``force``: whenever two or more
    files of a partition can be merged). Raises what delta-rs raises, e.g. ``CommitFailedError`` when another
    writer committed meanwhile: see :func:`compact_if_due`.

    The merge is a Delta overwrite of exactly the merged files' rows (``replaceWhere`` on their
    ``commit_version`` ranges) that must land on the version it read: Delta's OPTIMIZE is not used because
    delta-rs 1.6.6 lands two concurrent OPTIMIZEs of the same files both, and the pool then holds every row
    twice (measured: 50 rows read as 100).

    :param pool: a :class:`~lightly_airflow.datapool.Datapool`.
    """
    options = options or CompactionOptions()
    table = pool._open()
    if table is None:
        return CompactionResult(None, reason="no pool")
    files = _files(table)
    n_small = _count_small(files, options)
    if not force and (options.mode == "off" or n_small < options.min_small_files):
        why = "off" if options.mode == "off" else f"{n_small} small files, fewer than {options.min_small_files}"
        return CompactionResult(None, small_files=n_small, reason=why)
    started = time.perf_counter()
    _with_ranges(pool, [f for f in files if _is_small(f, options)])
    predicate, n_files, n_rows = _plan(files, options)
    if not predicate:
        return CompactionResult(None, small_files=n_small, reason="nothing to merge")
    rows = query(table, f"SELECT * FROM pool WHERE {predicate} ORDER BY {quote_ident(COMMIT_VERSION)}")
    if rows.num_rows != n_rows:  # a larger file holds versions in the merged span (e.g. one run's big file)
        log.info("Compaction of %s skipped: the %d small files hold %d rows, their versions %d (other files "
                 "share them).", pool.uri, n_files, n_rows, rows.num_rows)
        return CompactionResult(None, small_files=n_small, reason="the small files share versions with others")
    version = int(table.version()) + 1
    # ``counts`` show in the history (CLI, UI); ``rows``/``selected`` stay unset: no sample was processed.
    meta = {"operation": COMPACT_OPERATION, "version": version, "target_file_bytes": options.target_file_bytes,
            "counts": {"files_merged": n_files, "rows_moved": rows.num_rows}}
    write_deltalake(
        table, rows, mode="overwrite", predicate=predicate,
        partition_by=table.metadata().partition_columns or None,
        target_file_size=options.target_file_bytes,
        commit_properties=CommitProperties(custom_metadata={METADATA_KEY: meta}, max_commit_retries=0),
    )
    added = len(table.file_uris()) - (len(files) - n_files)  # the write loaded its own version into ``table``
    seconds = round(time.perf_counter() - started, 3)
    log.info("Compacted %s: %d small files (%d rows) merged into %d as version %d (%.1f s); earlier versions "
             "still read their own files.", pool.uri, n_files, rows.num_rows, added, version, seconds)
    return CompactionResult(version, n_files, added, n_small, seconds)


def compact_if_due(pool: Any, options: CompactionOptions | None = None) -> CompactionResult:
    """:func:`compact` after a run's commit, never failing the run: a conflict with another writer or an error
    of the store is logged as a warning and skipped (the next run's call tries again)."""
    try:
        return compact(pool, options)
    except (CommitFailedError, DeltaError, OSError) as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        log.warning("Compaction of %s skipped (%s): the run is committed; the next run compacts instead.",
                    pool.uri, reason)
        return CompactionResult(None, reason=f"skipped: {reason}")


__all__ = ["COMPACT_OPERATION", "CompactionOptions", "CompactionResult", "compact", "compact_if_due", "small_files"]
