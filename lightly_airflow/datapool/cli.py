"""``lightly-airflow datapool history|tags|show|export|check|compact|vacuum URI``: inspect and hand off a datapool.

Credentials: the ambient ones (environment variables, workload identity), or ``--storage-options`` with a
:class:`~lightly_airflow.storage.StorageCredentials` dict as JSON (``{"endpoint_url": ..., "access_key_id": ...}``).
Machine-readable formats (``--format json``) print exactly one JSON document on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import datetime
from typing import Any, TextIO

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.cli import non_negative_int, prepare_out
from lightly_airflow.datapool.errors import DatapoolError
from lightly_airflow.datapool.export import EXPORT_FORMATS, export_records, render
from lightly_airflow.datapool.pool import Datapool
from lightly_airflow.storage import StorageCredentials, filesystem

DEFAULT_SHOW_COLUMNS = [C.KEY, C.RUN_ID, C.TAGS, C.SELECTED, C.STATUS]
SHOW_FORMATS = ("table", "json", "csv", "parquet")
_MAX_CELL = 48


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``datapool`` and its subcommands to the ``lightly-airflow`` parser."""
    parser = subparsers.add_parser("datapool", help="inspect a datapool: history, tags, rows, exports")
    sub = parser.add_subparsers(dest="datapool_command", metavar="SUBCOMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("uri", metavar="URI", help="the datapool table (local path, s3://, gs://, az://, abfs://)")
        p.add_argument("--storage-options", metavar="JSON", default=None,
                       help="credentials as a JSON StorageCredentials dict (default: ambient credentials)")

    history = sub.add_parser("history", help="one line per version: run, tag, counts")
    common(history)
    history.add_argument("--format", choices=("table", "json"), default="table")
    history.set_defaults(func=_history)

    tags = sub.add_parser("tags", help="the pool's tags with their runs and sample counts")
    common(tags)
    tags.add_argument("--format", choices=("table", "json"), default="table")
    tags.set_defaults(func=_tags)

    show = sub.add_parser("show", help="rows of a snapshot or a tag")
    common(show)
    show.add_argument("--tag", help="only rows carrying this tag")
    show.add_argument("--version", type=int, help="read this pool version")
    show.add_argument("--run", help="read the snapshot this run committed")
    show.add_argument("--columns", help=f"comma-separated columns, or 'all' (default: {','.join(DEFAULT_SHOW_COLUMNS)})")
    show.add_argument("--format", choices=SHOW_FORMATS, default="table")
    show.add_argument("--out", help="output file (required for --format parquet; default stdout)")
    show.add_argument("--limit", type=non_negative_int, default=None, help="at most this many rows (table format: 50)")
    show.set_defaults(func=_show)

    export = sub.add_parser("export", help="a tag's files for labelling tools")
    common(export)
    export.add_argument("--tag", required=True, help="the tag to export (a run's tag or initial-tag)")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="list",
                        help="list: one URI per line (an object store's raw key, file:// percent-encoded); csv: "
                             "uri,key,sample_id,run_id,tag,pick_rank; label-studio: Label Studio tasks JSON (image "
                             "URIs in the schemes its cloud storages resolve: s3://, gs://, azure-blob://); coco: "
                             "COCO images JSON; filenames: Lightly's file names, each key relative to its datasource "
                             "as it is, one per line (lightly-download's <tag>.txt); labelbox: Labelbox data rows JSON "
                             "(row_data, global_key, media_type; warns about URIs Labelbox cannot fetch)")
    export.add_argument("--datasource-uri", help="datasource root the keys are relative to (default: recorded by the run)")
    export.add_argument("--lightly-uri", help="where .lightly/ lives (default: the datasource); selected video "
                        "frames are exported as their PNGs in .lightly/frames/")
    export.add_argument("--out", help="output file (default stdout)")
    export.add_argument("--check-files", action="store_true",
                        help="check now that each exported file still exists (one request per file on object "
                             "stores; without it, the datasource's latest listing says which are gone)")
    export.add_argument("--viewable-copies", metavar="URI",
                        help="write a copy a browser shows of each exported HEIC/HEIF (as JPEG) and TIFF (as PNG) image, "
                        "and an upright copy of each JPEG/PNG/WebP turned by an orientation only its XMP packet gives "
                        "(a browser shows it on its side; costs one ranged read of each one's head), under this folder "
                        "(any store) and export the copies' URIs; kept while the source is unchanged")
    export.add_argument("--copies-storage-options", help="JSON credentials of the --viewable-copies store (default: "
                        "the datasource's)")
    export.add_argument("--datasource-storage-options", help="JSON credentials of the datasource's store for "
                        "--check-files (default: --storage-options)")
    export.set_defaults(func=_export)

    check = sub.add_parser("check", help="verify the log: continuity, damaged entries, data files, tags vs commits")
    common(check)
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.set_defaults(func=_check)

    compact = sub.add_parser("compact", help="merge the small data files runs left (the select task does it when due)")
    common(compact)
    compact.add_argument("--force", action="store_true",
                         help="merge whatever can be merged, even below --min-small-files")
    compact.add_argument("--min-small-files", type=int, default=None,
                         help="merge only when the latest version holds this many small files (default: 50)")
    compact.add_argument("--target-mb", type=int, default=None, help="size merged files are packed to (default: 32)")
    compact.add_argument("--format", choices=("table", "json"), default="table")
    compact.set_defaults(func=_compact)

    vacuum = sub.add_parser("vacuum", help="limit time travel to N days and delete what only older versions, killed "
                            "writes and finished runs' staging folders hold")
    common(vacuum)
    vacuum.add_argument("--keep-days", type=int, required=True,
                        help="days of time travel to keep (at least 1); older versions may become unreadable")
    vacuum.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    vacuum.add_argument("--staging-days", type=int, default=None,
                        help="remove an uncommitted run's _staging/ folder once its newest file is this old "
                             "(default: --keep-days)")
    vacuum.add_argument("--format", choices=("table", "json"), default="table")
    vacuum.set_defaults(func=_vacuum)


def _pool(args: argparse.Namespace) -> Datapool:
    creds = None
    if args.storage_options:
        try:
            creds = StorageCredentials.from_dict(json.loads(args.storage_options))
        except json.JSONDecodeError as exc:
            raise ValueError(f"--storage-options is not valid JSON: {exc}") from None
    pool = Datapool(args.uri, creds)
    if not pool.exists():
        raise no_pool_error(args.uri, creds)
    return pool


def no_pool_error(uri: str, credentials: StorageCredentials | None) -> DatapoolError:
    """The error for a URI that holds no Delta log: whether anything is there, the pools one folder below it (a
    parent folder given by mistake: one listing, then one look into each of its first 20 folders) and the fix."""
    from lightly_airflow.datapool.check import missing_log_finding
    from lightly_airflow.storage import join_uri

    fs, path = filesystem(uri, credentials)
    try:
        entries = fs.ls(path, detail=True) if fs.isdir(path) else None
    except OSError:
        entries = None
    if entries is None:
        return DatapoolError(f"No datapool at {uri}: nothing is there. Fix: give the datapool_uri the DAG commits to "
                             "(a pool appears with its first run's commit).")
    folders = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory"][:20]
    pools = [join_uri(uri, f) for f in sorted(folders) if fs.isdir(f"{path.rstrip('/')}/{f}/_delta_log")]
    if not pools:  # no pool at all, or one whose log was deleted (`datapool check` says the same)
        return DatapoolError(f"No datapool at {uri}: {missing_log_finding(fs, path.rstrip('/'), uri).message.rstrip('.')}.")
    return DatapoolError(f"No datapool at {uri}: the folder holds no Delta log (_delta_log/). It holds the "
                         f"datapool(s) {', '.join(pools[:5])}: give one of them.")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(_jsonable(value))
    elif isinstance(value, float):
        value = f"{value:.6g}"
    elif isinstance(value, datetime):
        value = value.isoformat(timespec="seconds")
    text = str(value)
    return text if len(text) <= _MAX_CELL or isinstance(value, _Whole) else text[: _MAX_CELL - 1] + "…"


def _print_table(records: list[dict[str, Any]], columns: list[str], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


class _Whole(str):
    """A table cell printed whole (a vacuum's line in the history)."""


def _history(args: argparse.Namespace) -> int:
    from lightly_airflow.datapool.reclaim import delta_vacuums, describe_vacuum, vacuum_history

    pool = _pool(args)
    entries = pool.history()
    # A vacuum adds no version (its record is in _vacuum/): shown after the version that was the latest then.
    # Delta's own VACUUM run by hand (no record): after its VACUUM END, with the versions it may have cost.
    vacuums = sorted(vacuum_history(pool.uri, pool.credentials) + delta_vacuums(entries),
                     key=lambda v: str(v.get("started_at")))
    after: dict[int, list[dict[str, Any]]] = {}
    for v in vacuums:
        version = v.get("version")
        at = max((e["version"] for e in entries if isinstance(version, int) and e["version"] <= version), default=None)
        if at is not None:
            after.setdefault(at, []).append(v)
    if args.format == "json":
        for e in entries:
            if e["version"] in after:
                e["vacuums"] = after[e["version"]]
        print(json.dumps(_jsonable(entries)))
        return 0
    from lightly_airflow.review import review_short
    from lightly_airflow.run_origin import RunOrigin

    rows: list[dict[str, Any]] = []
    for e in entries:
        e["counts"] = e["counts"] or None
        e["started_by"] = RunOrigin.from_dict(e["started_by"]).short() if e.get("started_by") else None
        e["review"] = review_short(e.get("review"))
        rows.append(e)
        rows.extend({"timestamp": v.get("started_at"), "operation": "vacuum", "counts": _Whole(describe_vacuum(v))}
                    for v in after.get(e["version"], []))
    reviewed = ["review"] if any(e.get("review") for e in entries) else []  # (a column only where runs were reviewed)
    _print_table(rows, ["version", "timestamp", "operation", "run_id", "dag_id", "tag", "started_by", *reviewed, "rows",
                        "selected", "counts"])
    return 0


def _tags(args: argparse.Namespace) -> int:
    tags = _pool(args).tags()
    if args.format == "json":
        print(json.dumps(tags))
        return 0
    _print_table(tags, ["name", "run_id", "version", "count"])
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.format == "parquet" and not args.out:
        raise ValueError("--format parquet needs --out FILE (Parquet is binary).")
    if args.out:
        prepare_out(args.out, f"the output {args.format} file")
    pool = _pool(args)
    if args.columns in ("all", "*"):
        columns = None
    elif args.columns:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    else:
        columns = DEFAULT_SHOW_COLUMNS
    table = pool.read(version=args.version, run_id=args.run, tag=args.tag, columns=columns)
    if args.tag and table.num_rows == 0:  # (never an empty table without a word: stderr keeps stdout one document)
        print(_empty_tag_note(pool, args.tag, args.version, args.run), file=sys.stderr)
    limit = args.limit if args.limit is not None else (50 if args.format == "table" else None)
    shown = table if limit is None else table.slice(0, limit)
    if args.format == "parquet":
        import pyarrow.parquet as pq

        fs, path = filesystem(args.out, None)
        with fs.open(path, "wb") as f:
            pq.write_table(shown, f)
        print(f"wrote {shown.num_rows} rows to {args.out}", file=sys.stderr)
        return 0
    with _output(args.out) as out:
        if args.format == "json":
            out.write(json.dumps(_jsonable(shown.to_pylist())) + "\n")
        elif args.format == "csv":
            _write_csv(shown, out)
        else:
            _print_table(shown.to_pylist(), shown.column_names, out)
            if shown.num_rows < table.num_rows:
                print(f"({shown.num_rows} of {table.num_rows} rows; use --limit)", file=sys.stderr)
    return 0


def _empty_tag_note(pool: Datapool, tag: str, version: int | None, run: str | None) -> str:
    """Why ``show --tag`` found no rows: the tag was made after the version read, or it holds none."""
    made = next((t["version"] for t in pool.tags() if t["name"] == tag), None)
    read = version if run is None else pool.committed_version(run)
    if made is not None and read is not None and tag != C.INITIAL_TAG and read < made:
        return (f"Tag {tag!r} holds no rows in version {read} of {pool.uri}: it was made at version {made} (read "
                f"--version {made} or later).")
    return f"Tag {tag!r} holds no rows in {pool.uri} (a run that selected none has its tag all the same)."


def _write_csv(table: pa.Table, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for record in table.to_pylist():
        writer.writerow([
            "" if v is None else json.dumps(_jsonable(v)) if isinstance(v, (list, dict)) else
            v.isoformat() if isinstance(v, datetime) else v
            for v in record.values()
        ])


class _output:
    """stdout, or a local file for ``--out``."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def __enter__(self) -> TextIO:
        self.handle = open(self.path, "w", encoding="utf-8", newline="") if self.path else sys.stdout  # noqa: SIM115
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.path:
            self.handle.close()


def _export(args: argparse.Namespace) -> int:
    if args.out:
        prepare_out(args.out, f"the {args.format} export file")
    pool = _pool(args)
    source = args.datasource_storage_options or args.storage_options
    try:
        source_creds = StorageCredentials.from_dict(json.loads(source)) if source else None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--datasource-storage-options is not valid JSON: {exc}") from None
    try:
        copies_creds = (StorageCredentials.from_dict(json.loads(args.copies_storage_options))
                        if args.copies_storage_options else source_creds)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--copies-storage-options is not valid JSON: {exc}") from None
    copies = args.viewable_copies
    if copies and "://" not in copies:
        copies = os.path.abspath(copies)
    records = export_records(pool, args.tag, datasource_uri=args.datasource_uri, lightly_uri=args.lightly_uri,
                             check_files=args.check_files, datasource_credentials=source_creds,
                             viewable_copies=copies, copies_credentials=copies_creds)
    with _output(args.out) as out:
        out.write(render(records, args.tag, args.format, pool=pool))
    if args.out:
        print(f"wrote {len(records)} entries of tag {args.tag!r} to {args.out}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    """Exit 0 when the pool is sound (warnings allowed), 1 when it has errors."""
    from lightly_airflow.datapool.check import check_pool

    creds = None
    if args.storage_options:
        creds = StorageCredentials.from_dict(json.loads(args.storage_options))
    findings = check_pool(args.uri, creds)
    errors = [f for f in findings if f.level == "error"]
    if args.format == "json":
        print(json.dumps({"ok": not errors, "findings": [f.to_dict() for f in findings]}))
    else:
        for f in findings:
            print(f"{f.level.upper()}: {f.path}: {f.message}")
        print(f"{args.uri}: {'OK' if not errors else 'DAMAGED'} ({len(errors)} errors, "
              f"{len(findings) - len(errors)} warnings)")
    return 1 if errors else 0


def _compact(args: argparse.Namespace) -> int:
    from lightly_airflow.datapool.compaction import CompactionOptions, compact

    given = {"min_small_files": args.min_small_files,
             "target_file_bytes": None if args.target_mb is None else args.target_mb * 2**20}
    result = compact(_pool(args), CompactionOptions(**{k: v for k, v in given.items() if v is not None}),
                     force=args.force)
    if args.format == "json":
        print(json.dumps(result.to_dict()))
    elif result.version is None:
        print(f"{args.uri}: not compacted ({result.reason}).")
    else:
        print(f"{args.uri}: {result.files_removed} files merged into {result.files_added} as version "
              f"{result.version} in {result.seconds:.1f} s; earlier versions still read their own files.")
    return 0


def _vacuum(args: argparse.Namespace) -> int:
    from lightly_airflow.datapool.reclaim import vacuum

    result = vacuum(_pool(args), args.keep_days, dry_run=args.dry_run, staging_days=args.staging_days)
    if args.format == "json":
        print(json.dumps(_jsonable(result.to_dict())))
        return 0
    verb = "would delete" if result.dry_run else "deleted"
    rows = [{"what": f.reason, "path": f.path, "bytes": f.bytes} for f in result.files]
    rows += [{"what": f"staging ({s.reason})", "path": s.path, "bytes": s.bytes} for s in result.staging]
    if rows:
        _print_table(rows, ["what", "bytes", "path"])
    lost = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in result.unreadable) or "none"
    print(f"{args.uri}: {verb} {result.files_deleted} data files ({result.bytes_deleted} bytes) and "
          f"{len(result.staging)} staging folders ({result.staging_bytes} bytes); kept {result.keep_days} days "
          f"(cutoff {result.cutoff.isoformat(timespec='seconds')}); versions that {'would' if result.dry_run else 'can'} "
          f"no longer be read: {lost}.")
    return 0
