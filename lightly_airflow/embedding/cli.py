"""``lightly-airflow embed``: embed one manifest shard (the command the GPU pod runs; local mode runs the
same :func:`~lightly_airflow.embedding.embed_shard`).

The options are :class:`~lightly_airflow.embedding.options.EmbedOptions`' (one flag per field). Credentials
are ambient (environment variables, workload identity). With ``--xcom-return`` (or when ``/airflow/xcom``
exists, as in a KubernetesPodOperator pod with ``do_xcom_push``) the counts and the output URI are written as
a small JSON pointer to ``/airflow/xcom/return.json``; never the data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from lightly_airflow.embedding.options import EmbedOptions, add_arguments


def register(subparsers: Any) -> None:
    """Add the ``embed`` subcommand to the ``lightly-airflow`` parser."""
    parser = subparsers.add_parser(
        "embed", help="embed the images and video frames of one manifest shard",
        description="Embed the images of one manifest shard into an embeddings Parquet file.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the embed command; prints the counts as one JSON line on stdout."""
    from lightly_airflow.embedding.runner import embed_shard

    counts = embed_shard(args.manifest, args.output, EmbedOptions.from_args(args))
    xcom_dir = os.path.dirname(args.xcom_path)
    if args.xcom_return or os.path.isdir(xcom_dir):
        os.makedirs(xcom_dir, exist_ok=True)
        with open(args.xcom_path, "w", encoding="utf-8") as f:
            json.dump(counts, f)
    print(json.dumps(counts), file=sys.stdout, flush=True)
    return 0
