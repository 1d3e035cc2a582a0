"""Reclaim the storage of a long-lived pool: limit time travel to ``keep_days`` and delete what only older
versions, killed writes and finished runs' staging folders still hold (``lightly-airflow datapool vacuum``).

A pool keeps every version readable (:data:`~lightly_airflow.datapool.pool.DEFAULT_TABLE_CONFIGURATION`), so the
files a compaction or a hand-made tag replaced stay forever, as do the data files of writes killed before their
commit and the ``_staging/<run>/`` folders of runs that failed for good. :func:`vacuum` deletes, with Delta VACUUM
semantics:

* data files the table **removed** more than ``keep_days`` ago (the remove action's ``deletionTimestamp``);
* data files **no log entry references** whose last modification is more than ``keep_days`` ago (a killed write;
  an in-flight run's files are unreferenced until its commit, hence ``keep_days >= 1``);
* ``_staging/<run>/`` folders of committed runs (a receipt in ``_commits/``, an hour old) and folders whose newest
  file is more than ``staging_days`` old.

It never deletes a file the latest version references, nor one that a version committed after the cutoff needs
(Delta's rule: such a file was removed after the cutoff). A data file is deleted only when both delta-rs' own
plan (``DeltaTable.vacuum(dry_run=True, full=True)``) and this module's replay of the log choose it, and a vacuum
of a log that ``datapool check`` finds damaged is refused. Folders starting with ``_`` or ``.`` (``_delta_log``,
``_commits``, ``_history``, ``_reports``, ``_vacuum``) are never touched by the data-file part.

delta-rs' VACUUM itself is not used to delete: in 1.6.6 it commits two versions per vacuum (``VACUUM START`` and
``VACUUM END``, no data change), which make every run that read the pool before them fail its commit with
:class:`~lightly_airflow.datapool.errors.ConcurrentCommitError` and select again, and show as two noise entries in
every history. Instead each vacuum is recorded beside the log as ``<pool>/_vacuum/<time>.json`` (written before
the first delete: ``cutoff``, ``keep_days``, the versions that lose files, counts and bytes when done), and a read
of such a version fails with :func:`unreadable_version_error` instead of delta-rs' "file not found".
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from lightly_airflow.datapool.errors import DatapoolError, MissingDataFileError
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, map_io, write_bytes

log = logging.getLogger(__name__)

#: Folder of the vacuum records, beside the Delta log.
VACUUM_DIR = "_vacuum"
#: A committed run's staging folder is removed once its receipt is this old (its report may still read it).
COMMITTED_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class DeletedFile:
    """A data file a vacuum deletes: ``path`` relative to the pool, ``reason`` ``removed`` (by the table, at
    ``removed_version``) or ``unreferenced`` (no log entry holds it)."""

    path: str
    bytes: int
    reason: str
    removed_version: int | None = None


@dataclass(frozen=True)
class StagingFolder:
    """A ``_staging/<run>/`` folder a vacuum removes: ``reason`` ``committed`` or ``stale``."""

    path: str
    bytes: int
    files: int
    reason: str


@dataclass(frozen=True)
class VacuumResult:
    """What :func:`vacuum` deleted (or, with ``dry_run``, would delete).

    :param unreadable: ``[first, last]`` version ranges that can no longer be read (they referenced deleted files).
    :param kept: files delta-rs planned to delete that this module kept, each with the reason.
    :param already_gone: files delta-rs planned to delete that no longer exist (an earlier vacuum deleted them).
    :param record: the ``_vacuum/`` record written (``None`` for a dry run or when nothing was deleted).
    """

    uri: str
    keep_days: int
    staging_days: int
    dry_run: bool
    cutoff: datetime
    version: int
    files: list[DeletedFile] = field(default_factory=list)
    staging: list[StagingFolder] = field(default_factory=list)
    unreadable: list[list[int]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    already_gone: int = 0
    record: str | None = None
    seconds: float = 0.0

    @property
    def files_deleted(self) -> int:
        return len(self.files)

    @property
    def bytes_deleted(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def staging_bytes(self) -> int:
        return sum(s.bytes for s in self.staging)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cutoff"] = self.cutoff.isoformat(timespec="seconds")
        out.update(files_deleted=self.files_deleted, bytes_deleted=self.bytes_deleted,
                   staging_bytes=self.staging_bytes)
        return out


def _mtime(info: dict[str, Any]) -> datetime | None:
    """The last modification of a listed object (local, S3, GCS, Azure listings name it differently)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "mtime_ns"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value / 1e9 if key == "mtime_ns" else value, tz=UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _check_days(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatapoolError(f"{name} must be a whole number of days, got {value!r}.")
    if value < 1:
        raise DatapoolError(
            f"{name} must be at least 1 day, got {value}: a run's data files (and its staging files) are written "
            "before its commit and referenced by no log entry until then, so a shorter window could delete the "
            "files of a run that is committing right now."
        )
    return value


def _replay(entries: dict[int, list[dict[str, Any]]], top: int) -> tuple[set[str], dict[str, int], dict[str, tuple[int, int]]]:
    """``live`` paths at ``top``, the version each path was added in, and ``(version, deletionTimestamp ms)`` of
    each path's removal, from the log entries 0..top (paths unquoted, as stored)."""
    live: set[str] = set()
    added: dict[str, int] = {}
    removed: dict[str, tuple[int, int]] = {}
    for version in sorted(v for v in entries if v <= top):
        actions = entries[version]
        committed = next((a["commitInfo"].get("timestamp") for a in actions if "commitInfo" in a), None)
        for action in actions:
            if "add" in action:
                path = unquote(str(action["add"]["path"]))
                live.add(path)
                added[path] = version
                removed.pop(path, None)
            elif "remove" in action:
                path = unquote(str(action["remove"]["path"]))
                live.discard(path)
                stamp = action["remove"].get("deletionTimestamp") or committed or 0
                removed[path] = (version, int(stamp))
    return live, added, removed


def _ranges(versions: list[tuple[int, int]]) -> list[list[int]]:
    """Merge ``[first, last]`` version ranges."""
    out: list[list[int]] = []
    for first, last in sorted(versions):
        if last < first:
            continue
        if out and first <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return out


def vacuum(
    pool: Any, keep_days: int, *, dry_run: bool = False, staging_days: int | None = None,
) -> VacuumResult:
    """Delete what only versions older than ``keep_days`` need (see the module docstring).

    :param pool: a :class:`~lightly_airflow.datapool.Datapool`.
    :param keep_days: days of time travel to keep (at least 1).
    :param dry_run: list what would be deleted, delete nothing, record nothing.
    :param staging_days: age of the newest file of an uncommitted run's staging folder before it is removed
        (default: ``keep_days``; at least 1).
    :raises DatapoolError: no pool, a bad number of days, a damaged log, or delta-rs' plan naming a live file.
    """
    from lightly_airflow.datapool.check import _scan_log

    keep_days = _check_days("keep_days", keep_days)
    staging_days = _check_days("staging_days", keep_days if staging_days is None else staging_days)
    started = time.perf_counter()
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=keep_days)
    cutoff_ms = int(cutoff.timestamp() * 1000)
    table = pool._open()
    if table is None:
        raise DatapoolError(f"No datapool at {pool.uri}: nothing to vacuum.")
    top = int(table.version())
    findings, entries = _scan_log(pool.uri, pool.credentials)
    errors = [f for f in findings if f.level == "error"]
    if errors or top not in entries:
        where = "; ".join(f"{f.path}: {f.message}" for f in errors[:2]) or f"log entry {top} is missing"
        raise DatapoolError(f"Not vacuuming {pool.uri}: its log is damaged ({where}). Run `lightly-airflow datapool "
                            "check` and repair it first; a vacuum decides from the log what is safe to delete.")
    live, added, removed = _replay(entries, top)
    from_delta = {unquote(str(p)) for p in table.get_add_actions(flatten=True).column("path").to_pylist()}
    if from_delta != live:
        raise DatapoolError(f"Not vacuuming {pool.uri}: the log's files at version {top} ({len(live)}) are not the "
                            f"ones delta-rs loads ({len(from_delta)}); run `lightly-airflow datapool check`.")

    # delta-rs' plan (Delta VACUUM semantics, FULL: expired removals and unreferenced files by modification time).
    planned = sorted(unquote(str(p)) for p in table.vacuum(
        retention_hours=keep_days * 24, dry_run=True, enforce_retention_duration=False, full=True,
    ))
    fs, root = filesystem(pool.uri, pool.credentials)
    root = root.rstrip("/")
    fs.invalidate_cache(root)
    listed = {posixpath.relpath(p, root): info for p, info in fs.find(root, detail=True).items()} if planned else {}
    files: list[DeletedFile] = []
    kept: list[str] = []
    lost: list[tuple[int, int]] = []
    gone = 0
    for path in planned:
        info = listed.get(path)
        top_dir = path.split("/", 1)[0]
        if path in live:  # never: delta-rs' plan and the log disagree
            raise DatapoolError(f"Not vacuuming {pool.uri}: delta-rs planned to delete {path}, which version {top} "
                                "references. Nothing was deleted; please report this.")
        if top_dir.startswith(("_", ".")) or not path.endswith(".parquet"):
            kept.append(f"{path}: not a data file (delta-rs' FULL vacuum would delete it)")
        elif info is None:
            gone += 1  # delta-rs 1.6.6 plans every expired removal again, also those an earlier vacuum deleted
        elif path in removed:
            version, stamp = removed[path]
            if stamp >= cutoff_ms:
                kept.append(f"{path}: removed at version {version}, after the cutoff")
                continue
            files.append(DeletedFile(path, int(info.get("size") or 0), "removed", version))
            lost.append((added.get(path, 0), version - 1))
        elif path in added:
            kept.append(f"{path}: referenced by version {added[path]}")
        else:
            mtime = _mtime(info)
            if mtime is None or mtime >= cutoff:
                kept.append(f"{path}: unreferenced but modified {mtime} (after the cutoff)")
                continue
            files.append(DeletedFile(path, int(info.get("size") or 0), "unreferenced"))
    for note in kept:
        log.warning("Vacuum of %s keeps %s.", pool.uri, note)
    staging = _staging_plan(pool, now, staging_days)
    result = VacuumResult(pool.uri, keep_days, staging_days, dry_run, cutoff, top, files, staging, _ranges(lost), kept,
                          already_gone=gone)
    if dry_run or not (files or staging):
        return _done(result, started)

    record_uri = join_uri(pool.uri, VACUUM_DIR, f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.json")
    record: dict[str, Any] = {
        "started_at": now.isoformat(timespec="seconds"), "cutoff": cutoff.isoformat(timespec="seconds"),
        "keep_days": keep_days, "staging_days": staging_days, "version": top, "unreadable": result.unreadable,
        "status": "started",
    }
    # Every range any vacuum made unreadable, and every vacuum's summary (the history shows them), so a reader
    # needs only the newest record (one LIST, one GET).
    earlier = newest_record(pool.uri, pool.credentials)
    record["lost"] = list((earlier or {}).get("lost") or []) + [
        {"first": first, "last": last, "vacuum": record["started_at"], "keep_days": keep_days,
         "cutoff": record["cutoff"]} for first, last in result.unreadable
    ]
    earlier_vacuums = vacuum_history(pool.uri, pool.credentials, earlier) if earlier is not None else []
    record["vacuums"] = [*earlier_vacuums, _summary(record)]
    # Written first: a vacuum killed midway has still told readers which versions may have lost files.
    write_bytes(json.dumps(record).encode(), record_uri, pool.credentials)

    def delete(f: DeletedFile) -> None:
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile (another vacuum)
            fs.rm_file(f"{root}/{f.path}")

    map_io(delete, files)
    for folder in staging:
        sfs, spath = filesystem(folder.path, pool.credentials)
        with contextlib.suppress(FileNotFoundError):
            sfs.rm(spath, recursive=True)
    record.update(status="completed", files_deleted=result.files_deleted, bytes_deleted=result.bytes_deleted,
                  staging_folders=len(staging), staging_bytes=result.staging_bytes,
                  finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
    record["vacuums"][-1] = _summary(record)
    write_bytes(json.dumps(record).encode(), record_uri, pool.credentials)
    log.info("Vacuumed %s (kept %d days): %d data files (%d bytes) and %d staging folders (%d bytes) deleted; "
             "versions %s can no longer be read.", pool.uri, keep_days, result.files_deleted, result.bytes_deleted,
             len(staging), result.staging_bytes, result.unreadable or "none")
    return _done(replace(result, record=record_uri), started)


def _done(result: VacuumResult, started: float) -> VacuumResult:
    return replace(result, seconds=round(time.perf_counter() - started, 3))


def _staging_plan(pool: Any, now: datetime, staging_days: int) -> list[StagingFolder]:
    """The ``_staging/<run>/`` folders to remove: a committed run's (receipt older than :data:`COMMITTED_GRACE`)
    and those whose newest file is older than ``staging_days``."""
    from lightly_airflow.datapool.receipts import RECEIPTS_DIR
    from lightly_airflow.staging import STAGING_DIR

    fs, root = filesystem(join_uri(pool.uri, STAGING_DIR), pool.credentials)
    fs.invalidate_cache(root)
    try:
        folders = [i["name"] for i in fs.ls(root, detail=True) if i.get("type") == "directory"]
    except FileNotFoundError:
        return []
    rfs, rroot = filesystem(join_uri(pool.uri, RECEIPTS_DIR), pool.credentials)
    try:
        receipts = {posixpath.basename(i["name"].rstrip("/")): _mtime(i) for i in rfs.ls(rroot, detail=True)}
    except FileNotFoundError:
        receipts = {}
    stale = now - timedelta(days=staging_days)
    out: list[StagingFolder] = []
    for folder in sorted(folders):
        name = posixpath.basename(str(folder).rstrip("/"))
        found = fs.find(folder, detail=True)
        size = sum(int(i.get("size") or 0) for i in found.values())
        newest = max((m for i in found.values() if (m := _mtime(i)) is not None), default=None)
        receipt = receipts.get(f"{name}.json")
        uri = join_uri(pool.uri, STAGING_DIR, name)
        if f"{name}.json" in receipts and (receipt is None or receipt < now - COMMITTED_GRACE):
            out.append(StagingFolder(uri, size, len(found), "committed"))
        elif newest is None or newest < stale:
            out.append(StagingFolder(uri, size, len(found), "stale"))
    return out


def _record_names(uri: str, credentials: StorageCredentials | None) -> tuple[Any, list[str]]:
    fs, root = filesystem(join_uri(uri, VACUUM_DIR), credentials)
    fs.invalidate_cache(root)  # fsspec keeps listings per process: a long-lived one (the UI) must see new vacuums
    try:
        return fs, sorted(str(p) for p in fs.ls(root, detail=False) if str(p).endswith(".json"))
    except FileNotFoundError:
        return fs, []


def _read_record(fs: Any, name: str, uri: str) -> dict[str, Any] | None:
    try:
        body = json.loads(fs.cat_file(name))
    except (OSError, ValueError) as exc:
        log.warning("Vacuum record %s of %s is unreadable (%s).", name, uri, exc)
        return None
    return body if isinstance(body, dict) else None


def vacuum_records(uri: str, credentials: StorageCredentials | None = None) -> list[dict[str, Any]]:
    """Every vacuum record of the pool, oldest first (an unreadable record is skipped with a warning)."""
    fs, names = _record_names(uri, credentials)
    return [body for name in names if (body := _read_record(fs, name, uri)) is not None]


def newest_record(uri: str, credentials: StorageCredentials | None = None) -> dict[str, Any] | None:
    """The newest readable vacuum record: its ``lost`` names every version range any vacuum made unreadable."""
    fs, names = _record_names(uri, credentials)
    for name in reversed(names):
        body = _read_record(fs, name, uri)
        if body is not None:
            return body
    return None


_SUMMARY_KEYS = ("started_at", "finished_at", "cutoff", "keep_days", "version", "unreadable", "status",
                 "files_deleted", "bytes_deleted", "staging_folders", "staging_bytes")


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in _SUMMARY_KEYS}


def vacuum_history(
    uri: str, credentials: StorageCredentials | None = None, record: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A summary of every vacuum of the pool, oldest first (``started_at``, ``version``: the latest version
    then, ``files_deleted``, ``bytes_deleted``, ``unreadable``, ``status``...): from the newest record
    (``record`` when already read), which carries them all; records older than that field are read one by one."""
    record = newest_record(uri, credentials) if record is None else record
    if record is None:
        return []
    vacuums = record.get("vacuums")
    if isinstance(vacuums, list):
        return [v for v in vacuums if isinstance(v, dict)]
    return [_summary(r) for r in vacuum_records(uri, credentials)]


def _size(n: Any) -> str:
    n = int(n or 0)
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def describe_vacuum(summary: dict[str, Any]) -> str:
    """One line for a history: ``vacuum: 25 files, 0.2 MB deleted, versions 1–12 unreadable (kept 30 days)``."""
    ranges = [r for r in summary.get("unreadable") or [] if isinstance(r, list) and len(r) == 2]
    versions = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in ranges)
    if summary.get("by") == "Delta VACUUM":  # :func:`delta_vacuums`: its own versions, no _vacuum/ record
        lost = f"versions {versions} may be unreadable" if ranges else "every version still readable"
        hours = summary.get("retention_hours")
        kept = f"retention {hours:g} hours" if isinstance(hours, (int, float)) else "retention unknown"
        if summary.get("status") != "completed":
            return (f"Delta VACUUM interrupted ({versions_text(summary)}, no VACUUM END): files may be partly "
                    f"deleted, {lost} ({kept})")
        return (f"Delta VACUUM ({versions_text(summary)}, run outside lightly-airflow): "
                f"{summary.get('files_deleted') or 0} files, {_size(summary.get('bytes_deleted'))} deleted, {lost} "
                f"({kept})")
    lost = f"versions {versions} unreadable" if ranges else "every version still readable"
    kept = f"kept {summary.get('keep_days')} days"
    if summary.get("status") != "completed":
        return (f"vacuum interrupted (started {str(summary.get('started_at'))[:19]}): files may be partly deleted, "
                f"{lost.replace('unreadable', 'may be unreadable')} ({kept})")
    staging = (f", {summary.get('staging_folders')} staging folders ({_size(summary.get('staging_bytes'))})"
               if summary.get("staging_folders") else "")
    return (f"vacuum: {summary.get('files_deleted') or 0} files, {_size(summary.get('bytes_deleted'))} deleted"
            f"{staging}, {lost} ({kept})")


def lost_ranges(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``lost`` entries of a vacuum record (``first``, ``last``, ``vacuum``, ``keep_days``, ``cutoff``):
    every version range any vacuum made unreadable."""
    return [r for r in (record or {}).get("lost") or []
            if isinstance(r, dict) and isinstance(r.get("first"), int) and isinstance(r.get("last"), int)]


def lost_range(lost: list[dict[str, Any]], version: int) -> dict[str, Any] | None:
    """The entry of ``lost`` (:func:`lost_ranges`) that holds ``version``, or ``None``."""
    return next((r for r in lost if r["first"] <= version <= r["last"]), None)


def unreadable_version_error(
    uri: str, credentials: StorageCredentials | None, version: int, *, lost: list[dict[str, Any]] | None = None,
) -> DatapoolError | None:
    """The error for reading ``version`` when a vacuum deleted files it needs, else ``None`` (one LIST of
    ``_vacuum/`` and, when there is a record, one GET; none when ``lost`` (:func:`lost_ranges`) is given)."""
    if lost is None:
        lost = lost_ranges(newest_record(uri, credentials))
    hit = lost_range(lost, version)
    if hit is None:
        return None
    return DatapoolError(
        f"Version {version} of {uri} can no longer be read: the vacuum of {str(hit.get('vacuum'))[:10]} kept "
        f"{hit.get('keep_days')} days of history (until {hit.get('cutoff')}) and deleted data files this version "
        f"needs. The oldest readable version after it is {max(int(r.get('last', 0)) for r in lost) + 1}; "
        "`lightly-airflow datapool history` lists the versions."
    )


# ------------------------------------------------------------------------------------------------ Delta's VACUUM
#: What Delta's own VACUUM (Spark's ``VACUUM``, delta-rs' ``DeltaTable.vacuum``) commits: a version before it
#: deletes (``operationMetrics``: ``numFilesToDelete``, ``sizeOfDataToDelete``; ``operationParameters``: the
#: retention) and one after (``numDeletedFiles``). It writes no ``_vacuum/`` record.
DELTA_VACUUM_START, DELTA_VACUUM_END = "VACUUM START", "VACUUM END"
#: Commits that never remove a data file: the pool's creation and VACUUM's own (a run's commit, which has a
#: ``run_id``, only appends).
_KEEPS_FILES = frozenset({"create", "CREATE TABLE", DELTA_VACUUM_START, DELTA_VACUUM_END})


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _may_remove(entry: dict[str, Any]) -> bool:
    """Whether a history entry may have removed data files (a compaction, a hand-made tag, Delta's OPTIMIZE or
    DELETE...); a run's commit only appends."""
    return entry.get("run_id") is None and entry.get("operation") not in _KEEPS_FILES


def delta_vacuums(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each VACUUM that Delta itself ran on the pool (:data:`DELTA_VACUUM_START` / :data:`DELTA_VACUUM_END` in
    ``history``, entries as ``Datapool.history()``), oldest first, as a summary shaped like
    :func:`vacuum_history`'s plus ``by`` (``"Delta VACUUM"``), ``versions`` (its START and END versions; END is
    ``None`` for one that did not finish) and ``retention_hours``; ``version`` is the last of them.

    ``unreadable``: the versions that may have lost files. Delta deletes the files that a commit removed before
    its cutoff (the START's time less the retention), so every version before the last commit that removed files
    before the cutoff may read a deleted file, and that commit and every later one read theirs. Without the log's
    remove actions this is an upper bound (a version that read none of the removed files still reads); nothing
    when Delta says it had no file to delete."""
    entries = sorted(history, key=lambda e: int(e["version"]))
    first = 1 if entries and entries[0]["version"] == 0 and entries[0].get("operation") == "create" else 0
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        if entry.get("operation") != DELTA_VACUUM_START:
            continue
        start = int(entry["version"])
        end = None
        for later in entries[i + 1:]:
            if later.get("operation") == DELTA_VACUUM_START:
                break
            if later.get("operation") == DELTA_VACUUM_END:
                end = later
                break
        params: dict[str, Any] = entry.get("parameters") or {}
        retention = _int(params.get("specifiedRetentionMillis"))
        if retention is None:
            retention = _int(params.get("defaultRetentionMillis"))
        retention = retention or 0  # unknown (an entry read before the parameters were kept): the strictest
        counts = entry.get("counts") or {}
        started: datetime | None = entry.get("timestamp")
        cutoff = None if started is None else started - timedelta(milliseconds=retention)
        unreadable: list[list[int]] = []
        if _int(counts.get("numFilesToDelete")) != 0 and cutoff is not None:  # Spark writes "6", delta-rs 6
            removing = [int(e["version"]) for e in entries[:i] if e.get("timestamp") is not None
                        and e["timestamp"] <= cutoff and _may_remove(e)]
            if removing and max(removing) - 1 >= first:
                unreadable = [[first, max(removing) - 1]]
        end_counts = (end or {}).get("counts") or {}
        finished = (end or {}).get("timestamp")
        out.append({
            "by": "Delta VACUUM", "versions": [start, None if end is None else int(end["version"])],
            "version": start if end is None else int(end["version"]),
            "started_at": None if started is None else started.isoformat(timespec="seconds"),
            "finished_at": None if finished is None else finished.isoformat(timespec="seconds"),
            "cutoff": None if cutoff is None else cutoff.isoformat(timespec="seconds"),
            "retention_hours": round(retention / 3_600_000, 2), "unreadable": unreadable,
            "status": "completed" if end is not None else "started",
            "files_deleted": _int(end_counts.get("numDeletedFiles", counts.get("numFilesToDelete"))),
            "bytes_deleted": _int(counts.get("sizeOfDataToDelete")),
        })
    return out


def delta_lost_ranges(vacuums: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``lost`` entries (as :func:`lost_ranges`) of Delta's own VACUUMs (:func:`delta_vacuums`), each with
    ``by`` and ``versions``."""
    return [{"first": a, "last": b, "vacuum": v["started_at"], "cutoff": v["cutoff"], "by": v["by"],
             "versions": v["versions"], "retention_hours": v["retention_hours"]}
            for v in vacuums for a, b in v["unreadable"]]


def versions_text(summary: dict[str, Any]) -> str:
    """``version 5`` / ``versions 5–6``: the log versions a Delta VACUUM wrote (``summary["versions"]``)."""
    start, end = (list(summary.get("versions") or []) + [None, None])[:2]
    return f"version {start}" if end is None else f"versions {start}–{end}"


def _pool_path(path: str) -> str:
    """A data file as delta-rs names it (``tmp/pool/selected=true/part-0.parquet``), from its partition on."""
    parts = path.strip("/").split("/")
    at = next((i for i, p in enumerate(parts) if "=" in p), len(parts) - 1)
    return "/".join(parts[at:])


def missing_file_error(
    uri: str, missing: MissingDataFileError, latest: int | None, history: list[dict[str, Any]],
) -> MissingDataFileError:
    """What to say when reading a version found a data file gone (``missing``: a
    :class:`~lightly_airflow.datapool.errors.MissingDataFileError`): for an old version, the Delta VACUUM after it
    that deleted the file (from ``history``) and the oldest version still readable; for the latest, damage. The
    same type, so a caller that falls back on a :class:`DatapoolError` (an unknown column) can let it through."""
    version, path = int(missing.version), _pool_path(str(missing.path))
    log.info("Reading version %d of %s: %s", version, uri, missing.detail)

    def error(message: str) -> MissingDataFileError:
        return MissingDataFileError(missing.path, version, missing.detail, message)

    if latest is None or version >= latest:
        return error(
            f"Version {version} of {uri} (the latest) cannot be read: its data file {path} is missing. Run "
            f"`lightly-airflow datapool check {uri}`; it names every missing file and how to recover."
        )
    # A VACUUM never deletes a file of the version that was the latest when it started (START - 1).
    after = [v for v in delta_vacuums(history) if v["versions"][0] - 1 > version]
    hit = next((v for v in after if lost_range(delta_lost_ranges([v]), version) is not None), None)
    vac = hit or (after[-1] if after else None)
    if vac is None:
        return error(
            f"Version {version} of {uri} can no longer be read: its data file {path} was deleted outside "
            f"lightly-airflow (no VACUUM is in the log after it). Read a later version (the latest is {latest}); "
            "`lightly-airflow datapool history` lists them."
        )
    oldest = (max(last for _, last in vac["unreadable"]) + 1) if hit is not None else vac["versions"][0] - 1
    return error(
        f"Version {version} of {uri} can no longer be read: Delta's own VACUUM ({versions_text(vac)} of the "
        f"log, {str(vac['started_at'])[:10]}, run outside lightly-airflow with a retention of "
        f"{vac['retention_hours']:g} hours) deleted its data file {path}. The oldest readable version after it is "
        f"{oldest}; `lightly-airflow datapool history` lists the versions. (`lightly-airflow datapool vacuum` "
        "records what it deletes, so the history and the UI name such versions before they are read.)"
    )


__all__ = ["DELTA_VACUUM_END", "DELTA_VACUUM_START", "VACUUM_DIR", "DeletedFile", "StagingFolder", "VacuumResult", "delta_lost_ranges",
           "delta_vacuums", "describe_vacuum", "versions_text", "missing_file_error", "lost_range", "lost_ranges",
           "newest_record", "unreadable_version_error", "vacuum", "vacuum_history", "vacuum_records"]
