"""``lightly-airflow predictions --manifest URI --lightly-uri URI [--output URI]``."""

from __future__ import annotations

import argparse
import json


def _run(args: argparse.Namespace) -> int:
    from lightly_airflow.lightly_dir import check_lightly_option
    from lightly_airflow.predictions.shard import load_predictions_shard

    check_lightly_option(args.lightly_uri)

    result = load_predictions_shard(
        args.manifest, args.output, lightly_uri=args.lightly_uri, max_error_fraction=args.max_error_fraction
    )
    print(json.dumps(result))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``predictions`` command (ambient credentials: environment variables, workload identity)."""
    parser = subparsers.add_parser(
        "predictions",
        help="read .lightly/predictions for one shard and write scores, class distributions and category counts",
        description="Load and score the predictions of one manifest shard and write them as staging Parquet.",
    )
    parser.add_argument("--manifest", required=True, help="manifest shard URI (…/manifest/shard-NNNNN.parquet)")
    parser.add_argument("--lightly-uri", required=True, help="folder holding .lightly/")
    parser.add_argument("--output", default=None, help="output URI (default: the shard's predictions/ sibling)")
    parser.add_argument("--max-error-fraction", type=float, default=None, help="fail when more of the files are bad")
    parser.set_defaults(func=_run)
