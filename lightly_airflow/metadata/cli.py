"""``lightly-airflow metadata --manifest URI [--output URI] [--lightly-uri URI]``."""

from __future__ import annotations

import argparse
import json

from lightly_airflow.cli import positive_int


def _run(args: argparse.Namespace) -> int:
    from lightly_airflow.lightly_dir import check_lightly_option
    from lightly_airflow.metadata.shard import compute_metadata_shard

    check_lightly_option(args.lightly_uri)

    result = compute_metadata_shard(
        args.manifest,
        args.output,
        lightly_uri=args.lightly_uri,
        max_error_fraction=args.max_error_fraction,
        num_workers=args.num_workers,
    )
    print(json.dumps(result))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``metadata`` command (ambient credentials: environment variables, workload identity)."""
    parser = subparsers.add_parser(
        "metadata",
        help="compute lightly.* metadata, corruption status, content hashes and custom metadata of one shard",
        description="Compute metadata for one manifest shard and write it as staging Parquet.",
    )
    parser.add_argument("--manifest", required=True, help="manifest shard URI (…/manifest/shard-NNNNN.parquet)")
    parser.add_argument("--output", default=None, help="output URI (default: the shard's metadata/ sibling)")
    parser.add_argument("--lightly-uri", default=None, help="folder holding .lightly/ (default: from the manifest)")
    parser.add_argument("--max-error-fraction", type=float, default=None, help="fail when more of the files are bad")
    parser.add_argument("--num-workers", type=positive_int, default=None,
                        help="decoding threads, at least 1 (default: min(4, the cores))")
    parser.set_defaults(func=_run)
