"""Verify a datapool's Delta log without trusting it: ``lightly-airflow datapool check URI``.

delta-rs reports a damaged log as a raw native error ("Kernel error: Json error …" with a backtrace) and a
deleted last log entry not at all: the pool silently reads as the version before, so a run's tag vanishes.
:func:`check_pool` reads the log files itself and reports, each naming the file and the way to recover:

* ``error``: a log entry that is not valid JSON lines, a gap in the version numbers, a data file the log
  adds that is missing, a run commit whose application transaction does not match its version, a tag whose
  commit is missing.
* ``error``: a commit receipt (``_commits/<run>.json``, :mod:`lightly_airflow.datapool.receipts`) whose run
  the log does not hold at that version: its log entry was deleted (a rolled-back tag) or replaced.
* ``warning``: data files no log entry references, grouped by the run that wrote them. A worker killed
  before its log entry was written leaves such files and no receipt: harmless, its retry commits the run.
  The same files *with* a receipt (or, for pools older than receipts, with the run's report, which is written
  only after a commit) are a deleted log entry: an error.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.storage import StorageCredentials, filesystem, map_io

LOG_DIR = "_delta_log"
#: The group of unreferenced files that hold rows of several versions (:mod:`~lightly_airflow.datapool.compaction`).
COMPACTION_ORPHANS = "(compaction)"
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT_FILE = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")
RECOVERY = (
    "Restore the file from the store's versioning or a backup. If it is the LAST log entry and cannot be "
    "restored, move it away: the pool then reads as the version before; delete that run's receipt "
    "(_commits/<run>.json) and clear the run from its first task: it processes and commits its files again."
)


@dataclass(frozen=True)
class Finding:
    """One problem of a pool: ``level`` is ``error`` or ``warning``; ``path`` the file concerned."""

    level: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _read_entry(fs: Any, path: str) -> list[dict[str, Any]]:
    """The actions of one commit file; raises ``ValueError`` naming the line that is not JSON."""
    actions = []
    text = fs.cat_file(path).decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise ValueError(f"line {number} is not a JSON object")
        actions.append(value)
    if not actions:
        raise ValueError("it is empty")
    return actions


def log_problems(uri: str, credentials: StorageCredentials | None = None) -> list[Finding]:
    """Structural problems of the log alone (parse errors and gaps): what :class:`Datapool` names when
    delta-rs fails to load the table. Cheap: one LIST and one GET per log entry."""
    findings, _ = _scan_log(uri, credentials)
    return findings


def missing_log_finding(fs: Any, root: str, uri: str) -> Finding:
    """The finding for a location without ``_delta_log/``: a pool whose log was deleted when data files or commit
    receipts of a pool are there (one listing of each partition folder and ``_commits/``), else no pool at all."""
    left = {name: len(fs.ls(f"{root}/{name}", detail=False)) if fs.isdir(f"{root}/{name}") else 0
            for name in ("selected=true", "selected=false", "_commits")}
    if not any(left.values()):
        return Finding("error", f"{uri}/{LOG_DIR}/", "the Delta log folder does not exist: this is no datapool (nothing "
                                                     "of one is here). Fix: check the URI (a datapool's folder holds "
                                                     "_delta_log/)")
    return Finding("error", f"{uri}/{LOG_DIR}/", (
        f"the Delta log folder does not exist, yet {left['selected=true'] + left['selected=false']} data file(s) "
        f"and {left['_commits']} commit receipt(s) of a datapool are here: the log was deleted and every version "
        "with it. Restore _delta_log/ from the store's versioning or a backup; the data files alone cannot be "
        "read as the pool's versions."))


def _scan_log(
    uri: str, credentials: StorageCredentials | None
) -> tuple[list[Finding], dict[int, list[dict[str, Any]]]]:
    fs, root = filesystem(uri, credentials)
    log_dir = f"{root.rstrip('/')}/{LOG_DIR}"
    try:
        names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(log_dir, detail=False))
    except FileNotFoundError:
        return [missing_log_finding(fs, root.rstrip("/"), uri)], {}
    versions = sorted(int(m.group(1)) for n in names if (m := _COMMIT_FILE.match(n)))
    checkpoints = sorted(int(m.group(1)) for n in names if (m := _CHECKPOINT_FILE.match(n)))
    findings: list[Finding] = []
    entries: dict[int, list[dict[str, Any]]] = {}
    if not versions:
        return [Finding("error", f"{uri}/{LOG_DIR}/", "the log holds no commit files")], {}
    first = versions[0]
    if first != 0 and not any(c >= first - 1 for c in checkpoints):
        findings.append(Finding(
            "error", f"{uri}/{LOG_DIR}/{0:020d}.json",
            f"the log starts at version {first} without a checkpoint before it: earlier entries were deleted. {RECOVERY}",
        ))
    for prev, cur in zip(versions, versions[1:]):
        if cur != prev + 1:
            missing = ", ".join(f"{v:020d}.json" for v in range(prev + 1, min(cur, prev + 4)))
            findings.append(Finding(
                "error", f"{uri}/{LOG_DIR}/{prev + 1:020d}.json",
                f"versions {prev + 1}..{cur - 1} are missing from the log ({missing}…): the log is not continuous. "
                f"{RECOVERY}",
            ))
    def read(version: int) -> list[dict[str, Any]] | ValueError:
        try:
            return _read_entry(fs, f"{log_dir}/{version:020d}.json")
        except ValueError as exc:
            return exc

    # One GET per entry, on map_io's threads: a pool an hourly DAG grew for a year has ~8,760 of them.
    for v, read_back in zip(versions, map_io(read, versions), strict=True):
        if isinstance(read_back, ValueError):
            findings.append(Finding("error", f"{uri}/{LOG_DIR}/{v:020d}.json",
                                    f"log entry {v} is damaged: {read_back}. {RECOVERY}"))
        else:
            entries[v] = read_back
    return findings, entries


def check_pool(uri: str, credentials: StorageCredentials | None = None) -> list[Finding]:
    """Every problem of the pool at ``uri`` (empty: the pool is sound). See the module docstring."""
    findings, entries = _scan_log(uri, credentials)
    if not entries:
        return findings
    fs, root = filesystem(uri, credentials)
    root = root.rstrip("/")
    added: set[str] = set()
    removed: set[str] = set()
    committed_runs: dict[str, int] = {}
    for version, actions in sorted(entries.items()):
        info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        meta = info.get("lightly")
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError:
                meta = None
        meta = meta if isinstance(meta, dict) else {}
        for action in actions:
            if "add" in action:
                added.add(str(action["add"]["path"]))
            if "remove" in action:
                removed.add(str(action["remove"]["path"]))
            txn = action.get("txn")
            if isinstance(txn, dict) and str(txn.get("appId", "")).startswith("lightly-airflow/run/"):
                run_id = str(txn["appId"]).removeprefix("lightly-airflow/run/")
                committed_runs[run_id] = version
                if int(txn.get("version", -1)) != version:
                    findings.append(Finding(
                        "error", f"{uri}/{LOG_DIR}/{version:020d}.json",
                        f"run {run_id!r} records version {txn.get('version')} but is log entry {version}: the log "
                        f"was renumbered or copied. {RECOVERY}",
                    ))
        if meta.get("run_id") and meta.get("run_id") not in committed_runs:
            findings.append(Finding(
                "error", f"{uri}/{LOG_DIR}/{version:020d}.json",
                f"the commit of run {meta['run_id']!r} (tag {meta.get('tag')!r}) lacks its application transaction.",
            ))
    live = added - removed
    from urllib.parse import unquote

    for rel in sorted(live):
        if not fs.exists(f"{root}/{unquote(rel)}"):
            findings.append(Finding(
                "error", f"{uri}/{unquote(rel)}",
                "a data file the log references is missing: reads of the pool fail. Restore it from the store's "
                "versioning or a backup.",
            ))
    # Data files the log does not reference, grouped by the run that wrote them.
    on_disk = [p for p in fs.find(root) if "/_delta_log/" not in p and p.endswith(".parquet")
               and not posixpath.relpath(p, root).startswith(("_", "."))]
    orphans: dict[tuple[str, int], list[str]] = {}
    for path in on_disk:
        rel = posixpath.relpath(path, root)
        if rel in live or rel in added:
            continue
        try:
            with fs.open(path, "rb") as f:
                table = pq.read_table(f, columns=[C.RUN_ID, "commit_version"])
            run_id = str(table.column(C.RUN_ID)[0].as_py()) if table.num_rows else "?"
            version = int(table.column("commit_version")[0].as_py()) if table.num_rows else -1
            if len(table.column("commit_version").unique()) > 1:  # rows of several runs: a compaction's file
                run_id, version = COMPACTION_ORPHANS, -1
        except Exception:  # noqa: BLE001 - a half-written file of a killed attempt
            run_id, version = "?", -1
        orphans.setdefault((run_id, version), []).append(f"{uri}/{rel}")
    latest = max(entries)
    lost_runs = _check_receipts(uri, credentials, committed_runs, entries, latest, findings)
    for (run_id, version), paths in sorted(orphans.items()):
        if run_id in lost_runs:
            continue  # named by its receipt's error
        if run_id == COMPACTION_ORPHANS:
            findings.append(Finding(
                "warning", paths[0],
                f"{len(paths)} data file(s) no log entry references, each holding rows of several runs: a "
                "compaction killed before its commit (harmless: those rows are still in the files the log "
                "references; the next run compacts again); `lightly-airflow datapool vacuum URI --keep-days N` deletes "
                "them once N days old.",
            ))
            continue
        if run_id in committed_runs or run_id == "?":
            findings.append(Finding(
                "warning", paths[0],
                f"{len(paths)} data file(s) no log entry references (an attempt of run {run_id!r} killed before its "
                "commit; the run is committed elsewhere or the file is unreadable): harmless; `lightly-airflow datapool "
                "vacuum URI --keep-days N` deletes them once N days old.",
            ))
        elif _has_report(uri, credentials, run_id):
            # Pools committed before receipts existed: a run's report is written only after its commit.
            findings.append(Finding(
                "error", paths[0],
                f"{len(paths)} data file(s) of run {run_id!r} written for version {version} are in no log entry, yet "
                f"the run has a report, which is written only after a commit: its log entry {version} was deleted "
                f"(the log ends at version {latest}; the run's tag is lost). {RECOVERY}",
            ))
        else:
            findings.append(Finding(
                "warning", paths[0],
                f"{len(paths)} data file(s) of run {run_id!r} written for version {version} are in no log entry, and "
                "the run has no commit receipt: an attempt killed before its commit (harmless, nothing was "
                "committed or lost). Fix: none needed if the run's select task was retried and succeeded; if it "
                "failed for good, clear that task and it commits the run. `lightly-airflow datapool vacuum URI "
                "--keep-days N` deletes the unreferenced files once N days old.",
            ))
    return findings


def _has_report(uri: str, credentials: StorageCredentials | None, run_id: str) -> bool:
    from lightly_airflow.staging import reports_dir

    fs, path = filesystem(reports_dir(uri, run_id), credentials)
    return bool(fs.exists(f"{path}/index.html"))


def _check_receipts(
    uri: str, credentials: StorageCredentials | None, committed_runs: dict[str, int],
    entries: dict[int, list[dict[str, Any]]], latest: int, findings: list[Finding],
) -> set[str]:
    """Compare every commit receipt with the log (:mod:`lightly_airflow.datapool.receipts`); return the runs
    whose committed version the log lost."""
    from lightly_airflow.datapool.receipts import read_receipts

    lost: set[str] = set()
    for receipt, body in read_receipts(uri, credentials):
        run_id, version, tag = body.get("run_id"), body.get("version"), body.get("tag")
        if not isinstance(run_id, str) or not isinstance(version, int):
            findings.append(Finding("warning", receipt, "an unreadable commit receipt; delete it."))
            continue
        found = committed_runs.get(run_id)
        if found == version:
            continue
        if found is not None:
            findings.append(Finding(
                "error", receipt,
                f"run {run_id!r} committed version {version} but the log has it at version {found}: the log was "
                f"renumbered or copied. {RECOVERY}",
            ))
            continue
        lost.add(run_id)
        entry = f"{uri}/{LOG_DIR}/{version:020d}.json"
        if version > latest:
            where = f"the log ends at version {latest}, so log entry {version} was deleted"
        elif version in entries:
            where = (f"log entry {version} now holds another commit, so the run's entry was deleted and the version "
                     "committed again by another run")
        else:
            where = f"log entry {version} is missing"
        findings.append(Finding(
            "error", entry,
            f"run {run_id!r} committed version {version} (tag {tag!r}; receipt {receipt}) but no log entry holds "
            f"it: {where}. The pool silently reads without the run and its tag. Fix: restore {entry} from the "
            "store's versioning or a backup; if it cannot be restored, delete the receipt and clear the run from "
            "its first task: it processes and commits its files again (the pool no longer knows them).",
        ))
    return lost
