"""``lightly-airflow embed``: embed one manifest shard (the command the GPU pod runs; local mode runs the
same :func:`~lightly_airflow.embedding.embed_shard`).

Credentials are ambient (environment variables, workload identity). With ``--xcom-return`` (or when
``/airflow/xcom`` exists, as in a KubernetesPodOperator pod with ``do_xcom_push``) the counts and the
output URI are written as a small JSON pointer to ``/airflow/xcom/return.json``; never the data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

XCOM_DIR = "/airflow/xcom"
XCOM_FILE = "return.json"
DEVICES = ("auto", "cpu", "cuda")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive integer")
    return number


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be 0 or a positive integer")
    return number


def _device(value: str) -> str:
    if value in DEVICES or value.startswith("cuda:"):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not one of auto, cpu, cuda, cuda:N")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``embed`` (shared with the pod operator's argument builder through its tests)."""
    parser.add_argument("--manifest", required=True, help="manifest shard URI (…/manifest/shard-NNNNN.parquet)")
    parser.add_argument("--output", default=None, help="output URI (default: the shard's embeddings/ sibling)")
    parser.add_argument("--model", default="efficientnet-lite0", help="efficientnet-lite0 (default), resnet-18 … resnet-152")
    parser.add_argument("--input-size", type=_positive, default=64, help="square input side in pixels (default 64)")
    parser.add_argument("--weights", default=None, help="state-dict URI (required for the ResNets)")
    parser.add_argument("--dim", type=_positive, default=None, help="output dimension (default: the model's)")
    parser.add_argument("--device", type=_device, default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=_positive, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--num-workers", type=_non_negative, default=None, help="decoding workers (default: from the cores)")
    parser.add_argument("--loader", choices=("auto", "processes", "threads"), default="auto",
                        help="decode in DataLoader processes or threads (auto: processes on a GPU, threads on a CPU)")
    parser.add_argument("--reuse", default=None, help="Parquet of known embeddings (key, etag, embedding) of the same model")
    parser.add_argument("--embeddings-csv", default=None, help="Lightly custom embeddings CSV to use instead of a model")
    parser.add_argument("--xcom-return", action="store_true", help=f"write the result pointer to {XCOM_DIR}/{XCOM_FILE}")
    parser.add_argument("--xcom-path", default=os.path.join(XCOM_DIR, XCOM_FILE), help=argparse.SUPPRESS)


def register(subparsers: Any) -> None:
    """Add the ``embed`` subcommand to the ``lightly-airflow`` parser."""
    parser = subparsers.add_parser(
        "embed", help="embed the images of one manifest shard",
        description="Embed the images of one manifest shard into an embeddings Parquet file.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the embed command; prints the counts as one JSON line on stdout."""
    from lightly_airflow.embedding.runner import embed_shard
    from lightly_airflow.storage import read_parquet

    reuse = read_parquet(args.reuse) if args.reuse else None
    counts = embed_shard(
        args.manifest,
        args.output,
        model=args.model,
        input_size=args.input_size,
        weights_uri=args.weights,
        dim=args.dim,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        reuse=reuse,
        embeddings_csv=args.embeddings_csv,
        loader=args.loader,
    )
    xcom_dir = os.path.dirname(args.xcom_path)
    if args.xcom_return or os.path.isdir(xcom_dir):
        os.makedirs(xcom_dir, exist_ok=True)
        with open(args.xcom_path, "w", encoding="utf-8") as f:
            json.dump(counts, f)
    print(json.dumps(counts), file=sys.stdout, flush=True)
    return 0
