"""``lightly-airflow list URI``: list a datasource the way a run would (filters, relevant filenames)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lightly_airflow.datasource.records import DEFAULT_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from lightly_airflow.storage import StorageCredentials


def register(subparsers: Any) -> None:
    """Add the ``list`` subcommand to the ``lightly-airflow`` parser."""
    parser = subparsers.add_parser(
        "list", help="list a datasource's files (key, size, etag, mtime)",
        description="List the files of a datasource (s3://, gs://, az://, abfs://, file:// or a path) with the "
        "filters a run applies: supported extensions, no .lightly/, an optional relevant-filenames file.",
    )
    parser.add_argument("uri", help="datasource root, e.g. s3://bucket/images or ./images")
    parser.add_argument("--relevant-filenames", metavar="FILE", default=None,
                        help="a relevant-filenames file (local path or URI; same credentials as the datasource)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default: aligned columns) or json (one object per line)")
    parser.add_argument("--extensions", default=None,
                        help="comma-separated extensions (default: images,videos; '*' = all)")
    parser.add_argument("--credentials", metavar="JSON_FILE", default=None,
                        help="a JSON file of storage credentials (StorageCredentials fields); default: ambient")
    parser.set_defaults(func=run)


def _extensions(value: str | None) -> tuple[str, ...]:
    if not value:
        return DEFAULT_EXTENSIONS
    out: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if part.lower() == "images":
            out.extend(IMAGE_EXTENSIONS)
        elif part.lower() == "videos":
            out.extend(VIDEO_EXTENSIONS)
        elif part:
            out.append(part)
    return tuple(out)


def run(args: argparse.Namespace) -> int:
    """List the datasource to stdout; prints a summary line to stderr."""
    from lightly_airflow.datasource.listing import list_files
    from lightly_airflow.storage import filesystem

    credentials = None
    if args.credentials:
        try:
            with open(args.credentials, encoding="utf-8") as fh:
                credentials = StorageCredentials.from_dict(json.load(fh))
        except (OSError, ValueError) as exc:  # (missing, a folder, not JSON, unknown keys)
            raise ValueError(f"--credentials {args.credentials!r}: {exc}") from None
    relevant = None
    if args.relevant_filenames:
        from lightly_airflow.config.errors import decode_user_text

        fs, path = filesystem(args.relevant_filenames, credentials)
        try:  # (a BOM or UTF-16 from Windows tools, read as a run reads .lightly/ files)
            relevant = decode_user_text(fs.cat_file(path))
        except (OSError, ValueError) as exc:  # (missing, a folder, not text)
            raise ValueError(f"--relevant-filenames {args.relevant_filenames!r}: {exc}") from None
    count = total = 0
    out = sys.stdout
    stats: dict[str, Any] = {}
    listed: list[Any] = []  # (key and size of each file: the Live Photo clips among them are named below)
    skipped: list[tuple[str, str]] = []  # (logged by list_files; not named again as missing below)
    for batch in list_files(args.uri, credentials=credentials, relevant_filenames=relevant,
                            extensions=_extensions(args.extensions), stats=stats, skipped=skipped):
        listed.append(batch.select(["key", "size"]))
        for row in batch.to_pylist():
            count += 1
            total += row["size"]
            mtime = row["mtime"].isoformat() if row["mtime"] is not None else None
            if args.format == "json":
                out.write(json.dumps({**row, "mtime": mtime}, ensure_ascii=False) + "\n")
            else:
                out.write(f"{row['size']:>12}  {mtime or '-':<32}  {row['etag']:<71}  {row['key']}\n")
    print(f"{count} files, {total} bytes in {args.uri}", file=sys.stderr)
    if stats.get("os_files"):
        print(f"{stats['os_files']} OS or tool metadata files skipped (not samples), e.g. "
              + ", ".join(repr(k) for k in stats["os_files_examples"]), file=sys.stderr)
    if skipped:  # (the listing's warning named the plain rename; one onto a listed file would overwrite it)
        import pyarrow as pa

        from lightly_airflow.datasource.listing import clashing_renames

        keys = [batch.column("key") for batch in listed]
        for key, reason in clashing_renames(skipped, pa.concat_arrays(keys) if keys else pa.array([], pa.string())):
            print(f"skipped: {key!r}: {reason}", file=sys.stderr)
    if relevant is not None:
        _say_unmatched(relevant, listed, args.relevant_filenames, stats.pop("relevant_near", None), skipped)
    if listed:
        import pyarrow as pa

        from lightly_airflow.datasource.live_photos import clips_note, live_photo_clips

        clips = live_photo_clips(pa.Table.from_batches(listed))
        if clips.count:
            print(f"of these, {clips_note(clips.count, clips.examples, listing=True)}", file=sys.stderr)
    return 0


def _say_unmatched(relevant: str, listed: list[Any], name: str, near: dict[str, str] | None,
                   skipped: list[tuple[str, str]]) -> None:
    """Name the files ``--relevant-filenames`` lists by name that the datasource lacks (as a run reports them): the
    command printed the files it found and nothing of those it did not."""
    import pyarrow as pa

    from lightly_airflow.datasource.query import unmatched_relevant

    table = pa.Table.from_batches(listed) if listed else pa.table({"key": pa.array([], pa.string())})
    missing = unmatched_relevant(relevant, table, name, False, near, skipped)
    for key, reason in missing[:10]:
        print(f"not listed: {key!r}: {reason}", file=sys.stderr)
    if len(missing) > 10:
        print(f"… and {len(missing) - 10} more files {name} lists by name", file=sys.stderr)
