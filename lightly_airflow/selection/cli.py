"""``lightly-airflow select --samples S.parquet --config C.json [--preselected P.parquet] --out O.parquet``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.config import parse_selection_config
from lightly_airflow.selection.engine import needs_embeddings, select
from lightly_airflow.selection.inputs import from_numpy, read_embedding_rows, string_array
from lightly_airflow.selection.queries import resolve_query_sets

logger = logging.getLogger(__name__)
METRICS_METADATA_KEY = "lightly.selection_metrics"


def run(args: argparse.Namespace) -> int:
    """Run one selection offline and write the picks with the metrics as Parquet file metadata."""
    config_path = Path(args.config)
    config = parse_selection_config(config_path.read_text())
    samples_file = pq.ParquetFile(args.samples)
    columns = samples_file.schema_arrow.names
    embeddings = None
    if needs_embeddings(config) and C.EMBEDDING in columns:
        # The embedding column streamed into one float32 matrix; the table keeps the other columns only.
        embeddings = read_embedding_rows(args.samples)
        columns = [c for c in columns if c != C.EMBEDDING]
    samples = samples_file.read(columns=columns)
    pre = pq.ParquetFile(args.preselected).read() if args.preselected else None
    result = select(samples, config, preselected=pre, query_embeddings=resolve_query_sets(config, base=str(config_path.parent)),
                    seed=args.seed, embeddings=embeddings)
    table = result.pick_details if result.pick_details is not None else pa.table(
        {C.KEY: string_array(result.keys),
         C.PICK_RANK: from_numpy(np.arange(len(result.keys), dtype=np.int64))})
    table = table.replace_schema_metadata({METRICS_METADATA_KEY: json.dumps(result.metrics, sort_keys=True)})
    pq.write_table(table, args.out)
    logger.info("selected %d of %d samples (%s) -> %s", len(result.keys), samples.num_rows, result.stop_reason,
                args.out)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``select`` subcommand."""
    p = subparsers.add_parser("select", help="run a Lightly selection config over a samples Parquet file")
    p.add_argument("--samples", required=True, help="samples Parquet (key, embedding, metadata.*, scores.*, ...)")
    p.add_argument("--config", required=True, help="selection config JSON file")
    p.add_argument("--preselected", help="Parquet of samples already selected (at least key, embedding)")
    p.add_argument("--out", required=True, help="output Parquet: key, pick_rank and the selection.* values of "
                   "each pick (why it was picked); metrics in file metadata")
    p.add_argument("--seed", type=int, default=None, help="seed of RANDOM inputs without random_seed")
    p.set_defaults(func=run)
