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
from lightly_airflow.cores import usable_cores
from lightly_airflow.datapool.rows import COMMIT_VERSION, storable_type, write_batches, writer_properties
from lightly_airflow.datapool.snapshot import INITIAL_TAG_COUNT, METADATA_KEY

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


class CompactionError(RuntimeError):
    """A small file's rows could not be merged (its rows or columns are not what the log says); the compaction
    is skipped and the pool left as it is."""


def _files(table: Any) -> list[dict[str, Any]]:
    """``path, size, rows, selected, mtime`` of each live data file (``path`` as the log writes it)."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    names = set(actions.column_names)
    cols = {"path": "path", "size": "size_bytes", "rows": "num_records", "selected": f"partition.{C.SELECTED}",
            "mtime": "modification_time"}
    rows = actions.select([c for c in cols.values() if c in names]).to_pylist()
    return [{k: row.get(c) for k, c in cols.items()} for row in rows]


def _is_small(f: dict[str, Any], options: CompactionOptions) -> bool:
    return f["size"] is not None and f["size"] < options.target_file_bytes // 2


def _count_small(files: list[dict[str, Any]], options: CompactionOptions) -> int:
    return sum(1 for f in files if _is_small(f, options))


def small_files(table: Any, options: CompactionOptions) -> int:
    """How many data files of ``table``'s loaded version are under half the target size (from the log alone)."""
    return _count_small(_files(table), options)


def _plan(files: list[dict[str, Any]], options: CompactionOptions) -> list[list[dict[str, Any]]]:
    """The small files to merge, per partition: oldest first (by the time they were written), at most twice the
    target size each, two or more."""
    budget = 2 * options.target_file_bytes
    groups = []
    for part in (True, False):
        small = sorted((f for f in files if f["selected"] is part and _is_small(f, options)),
                       key=lambda f: (f["mtime"] or 0, f["path"]))
        chosen: list[dict[str, Any]] = []
        total = 0
        for f in small:
            if chosen and total + f["size"] > budget:
                break
            chosen.append(f)
            total += f["size"]
        if len(chosen) >= 2:
            groups.append(chosen)
    return groups


#: Threads that decode the fetched small files: each file is decoded whole on one thread (pyarrow's own column
#: threads per file cost more than they save on files of a few rows), a few files at once.
DECODE_THREADS = min(4, usable_cores())


def _read_rows(pool: Any, files: list[dict[str, Any]], schema: Any) -> Any:
    """The rows of ``files`` (one whole-file GET each, on :func:`~lightly_airflow.storage.map_io`'s threads,
    decoded on :data:`DECODE_THREADS`) as the pool's ``schema`` (files written before a column was added get
    nulls), in ``commit_version`` order.

    :raises CompactionError: a file's rows or columns are not what the log and the schema say.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lightly_airflow.storage import filesystem, join_uri, map_io, protocol_of

    def fetch(f: dict[str, Any]) -> bytes:
        fs, path = filesystem(join_uri(pool.uri, unquote(f["path"])), pool.credentials)
        # A range (the size from the log) is one GET: without it s3fs asks for the size first (HEAD).
        return bytes(fs.cat_file(path, start=0, end=int(f["size"])))

    def decode(job: tuple[dict[str, Any], bytes]) -> Any:
        f, body = job
        data = pq.ParquetFile(pa.BufferReader(body)).read(use_threads=False)
        if f["rows"] is not None and data.num_rows != int(f["rows"]):
            raise CompactionError(f"{f['path']} holds {data.num_rows} rows, its log entry says {f['rows']}")
        # The files a hand-made tag's MERGE wrote (delta-rs 1.6.6) say ``string_view``/``list<string_view>`` in their
        # Arrow schema where the runs' files say ``string``: the same Parquet strings, read as views. Combined as
        # read, every compaction after a hand-made tag failed ("incompatible types: string vs string_view"). Only
        # such representations are made plain here (``rows.storable_type``); a value of another type still stops it.
        data = data.cast(pa.schema([f.with_type(storable_type(f.type)) for f in data.schema], metadata=data.schema.metadata))
        # Delta keeps the partition value (``selected``) in the log, not in the file.
        return data.append_column(C.SELECTED, pa.repeat(pa.scalar(f["selected"], pa.bool_()), data.num_rows))

    # Fetched on many threads (a GET's latency; a local file is read where it is decoded), decoded on a few
    # (CPU: 16 threads fighting over two cores decoded 2,000 files of 60 columns at about half the speed).
    with ThreadPoolExecutor(max_workers=max(1, min(DECODE_THREADS, len(files))),
                            thread_name_prefix="lightly-decode") as decoders:
        if protocol_of(pool.uri) == "file":
            tables = list(decoders.map(lambda f: decode((f, fetch(f))), files))
        else:
            tables = list(decoders.map(decode, zip(files, map_io(fetch, files))))
    try:  # files written before a column was added lack it: nulls
        data = pa.concat_tables(tables, promote_options="permissive")
        rows = pa.table([data.column(field.name).cast(field.type) if field.name in data.column_names
                         else pa.nulls(data.num_rows, field.type) for field in schema], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise CompactionError(f"the small files' columns do not convert to the pool's schema: {exc}") from None
    return rows.take(pc.sort_indices(rows, [(COMMIT_VERSION, "ascending")]))


def _staged_files(rows: Any, partition_by: list[str], configuration: dict[str, str], options: CompactionOptions,
                  scratch: str) -> list[dict[str, Any]]:
    """Write ``rows`` as a Delta table of its own in the local folder ``scratch`` (so delta-rs packs the files and
    writes their statistics exactly as it does for the pool) and return that table's add actions."""
    import json

    write_deltalake(scratch, write_batches(rows), partition_by=partition_by or None, target_file_size=options.target_file_bytes,
                    configuration=configuration or None, writer_properties=writer_properties(rows.schema))
    with open(f"{scratch}/_delta_log/{0:020d}.json", encoding="utf-8") as log_file:
        return [entry["add"] for entry in map(json.loads, log_file) if "add" in entry]


def compact(pool: Any, options: CompactionOptions | None = None, *, force: bool = False) -> CompactionResult:
    """Merge the latest version's small files into one new version when due (``force``: whenever two or more
    files of a partition can be merged). Raises what delta-rs raises, e.g. ``CommitFailedError`` when another
    writer committed meanwhile: see :func:`compact_if_due`.

    The chosen files are read whole (one GET each), their rows written by delta-rs into a local scratch table
    (files packed to the target size, the log's statistics as delta-rs writes them) and copied into the pool's
    partition folders; one commit then adds them and removes exactly the chosen files (``dataChange: false``,
    as OPTIMIZE does), and must land on the version it read (``max_commit_retries=0``). Neither Delta's OPTIMIZE
    (delta-rs 1.6.6 lands two concurrent OPTIMIZEs of the same files both, and the pool then holds every row
    twice: measured, 50 rows read as 100) nor an overwrite with a predicate (it reads the predicate's column of
    every file of the pool) is used.

    :param pool: a :class:`~lightly_airflow.datapool.Datapool`.
    """
    import tempfile

    import pyarrow as pa
    from deltalake.transaction import AddAction, RemoveAction

    from lightly_airflow.storage import filesystem, join_uri, map_io, protocol_of

    options = options or CompactionOptions()
    table = pool._open()
    if table is None:
        return CompactionResult(None, reason="no pool")
    unsupported = sorted(set(table.protocol().reader_features or []) & {"deletionVectors", "columnMapping"})
    if unsupported:  # the files alone do not hold the rows as the log defines them
        return CompactionResult(None, reason=f"the table uses {', '.join(unsupported)} (written by another engine): "
                                             "compact it there")
    files = _files(table)
    n_small = _count_small(files, options)
    if not force and (options.mode == "off" or n_small < options.min_small_files):
        why = "off" if options.mode == "off" else f"{n_small} small files, fewer than {options.min_small_files}"
        return CompactionResult(None, small_files=n_small, reason=why)
    started = time.perf_counter()
    groups = _plan(files, options)
    if not groups:
        return CompactionResult(None, small_files=n_small, reason="nothing to merge")
    chosen = [f for group in groups for f in group]
    schema = pa.schema(table.schema().to_arrow())
    partition_by = list(table.metadata().partition_columns)
    rows = _read_rows(pool, chosen, schema)
    version = int(table.version()) + 1
    # ``counts`` show in the history (CLI, UI); ``rows``/``selected`` stay unset: no sample was processed.
    n_rows = rows.num_rows
    meta = {"operation": COMPACT_OPERATION, "version": version, "target_file_bytes": options.target_file_bytes,
            "counts": {"files_merged": len(chosen), "rows_moved": n_rows}}
    carried = pool.snapshot_of(table).recorded_initial_tag_count()
    if carried is not None:  # the same rows: initial-tag holds what it held (none recorded before: none now)
        meta[INITIAL_TAG_COUNT] = carried
    skipping = {k: v for k, v in table.metadata().configuration.items() if k.startswith("delta.dataSkipping")}
    with tempfile.TemporaryDirectory(prefix="lightly-compaction-") as scratch:
        staged = _staged_files(rows, partition_by, skipping, options, scratch)
        del rows

        def upload(add: dict[str, Any]) -> None:
            fs, path = filesystem(join_uri(pool.uri, unquote(add["path"])), pool.credentials)
            if protocol_of(pool.uri) == "file":
                fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(f"{scratch}/{unquote(add['path'])}", path)

        try:
            map_io(upload, staged)
            now = int(time.time() * 1000)
            actions: list[Any] = [
                AddAction(add["path"], int(add["size"]), add["partitionValues"], int(add["modificationTime"]),
                          False, add.get("stats") or "")
                for add in staged
            ]
            actions += [
                RemoveAction(f["path"], False, now, int(f["size"]),
                             {C.SELECTED: "true" if f["selected"] else "false"} if partition_by else None)
                for f in chosen
            ]
            table.create_write_transaction(
                actions, mode="append", schema=table.schema(), partition_by=partition_by or None,
                commit_properties=CommitProperties(custom_metadata={METADATA_KEY: meta}, max_commit_retries=0),
            )
        except BaseException:
            _remove_quietly(pool, [add["path"] for add in staged])
            raise
    seconds = round(time.perf_counter() - started, 3)
    log.info("Compacted %s: %d small files (%d rows) merged into %d as version %d (%.1f s); earlier versions "
             "still read their own files.", pool.uri, len(chosen), n_rows, len(staged),
             version, seconds)
    return CompactionResult(version, len(chosen), len(staged), n_small, seconds)


def _remove_quietly(pool: Any, paths: list[str]) -> None:
    """Delete the files a compaction copied in before its commit failed (nothing references them)."""
    from lightly_airflow.storage import filesystem, join_uri

    for relative in paths:
        fs, path = filesystem(join_uri(pool.uri, unquote(relative)), pool.credentials)
        try:
            if fs.exists(path):
                fs.rm_file(path)
        except OSError as exc:  # an unreferenced file costs space only
            log.warning("Could not remove %s after a failed compaction: %s", path, exc)


def compact_if_due(pool: Any, options: CompactionOptions | None = None) -> CompactionResult:
    """:func:`compact` after a run's commit, never failing the run: a conflict with another writer or an error
    of the store is logged as a warning and skipped (the next run's call tries again)."""
    try:
        return compact(pool, options)
    except (CommitFailedError, CompactionError, DeltaError, OSError) as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        log.warning("Compaction of %s skipped (%s): the run is committed; the next run compacts instead.",
                    pool.uri, reason)
        return CompactionResult(None, reason=f"skipped: {reason}")


__all__ = ["COMPACT_OPERATION", "CompactionError", "CompactionOptions", "CompactionResult", "compact", "compact_if_due", "small_files"]
