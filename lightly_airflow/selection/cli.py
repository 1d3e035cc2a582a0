"""``lightly-airflow select --samples S.parquet --config C.json|C.yaml|'{...}' [--preselected P.parquet] --out O.parquet``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.cli import non_negative_int, prepare_out
from lightly_airflow.config.load import config_source, invalid_config, load_config
from lightly_airflow.selection.arrays import embedding_width, from_numpy, read_embedding_rows, read_keys, string_array
from lightly_airflow.selection.kernels import uses_numpy_state

if TYPE_CHECKING:
    from lightly_airflow.config import SelectionConfig

logger = logging.getLogger(__name__)
METRICS_METADATA_KEY = "lightly.selection_metrics"
# The GIL's switch interval while the embeddings are read on a thread and this one imports: the reader's
# per-batch Python work waits at most this long for the importing thread (the default 5 ms made the overlap
# slower than no overlap under load, 2026-12-01).
READ_SWITCH_INTERVAL = 2e-4


def run(args: argparse.Namespace) -> int:
    """Run one selection offline and write the picks with the metrics as Parquet file metadata.

    Memory (docs/selection.md "Memory"): the embedding columns (candidates, preselected) are streamed into
    float32 matrices; of the other columns only those the config reads are loaded; the ``key`` column is not
    held while selecting (a null column stands in) and only the picks' keys are read afterwards, once the
    matrix is freed.
    """
    # Inline JSON, or a local or bucket file, JSON or YAML (a BOM or UTF-16 from Windows tools, as .lightly/).
    config_data = load_config(args.config, "--config")
    prepare_out(args.out)  # (before any work: a run must not fail at its end for its output's folder)
    # Relative dataset_id paths of query sets: from a local config file's folder, else from the current one.
    if config_source(args.config, "--config") == "local":
        from lightly_airflow.storage import local_path

        query_base: str | None = str(Path(local_path(args.config.strip())).parent)
    else:
        query_base = None
    samples_file = open_parquet(args.samples, "--samples")
    names = samples_file.schema_arrow.names
    n_rows = samples_file.metadata.num_rows
    pre_file = open_parquet(args.preselected, "--preselected") if args.preselected else None
    pre_names = [] if pre_file is None else pre_file.schema_arrow.names
    n_pre = 0 if pre_file is None else pre_file.metadata.num_rows
    dim = embedding_width(samples_file)  # (from the footer: which state will select, before anything is read)
    embeddings = None
    stop = threading.Event()
    with ThreadPoolExecutor(2) as reader:
        # The embedding columns are streamed into float32 matrices (the tables keep the other columns only).
        # The candidates' read starts on a thread before this one imports the engine and validates the config
        # (pydantic's models: ~0.2 s; Arrow's decoder releases the GIL) when the config may need it; the
        # validated config decides, and stops it when not. The config's errors still come first.
        early = None
        importing = threading.Event()
        if C.EMBEDDING in names and reads_embeddings(config_data):
            importing.set()
            # (the rows' norms for the numpy state where it may take them: the compiled one computes its own, and
            # at 250,000 x 64 computing them in the read slowed it, 1.65 -> 1.67 s)
            norms = dim is not None and uses_numpy_state(n_rows, dim, n_pre, alone=False)
            early = reader.submit(read_embedding_rows, args.samples, caller_busy=importing, stop=stop, sqnorms=norms)
        try:
            with _busy_beside_read(importing if early is not None else None):
                from lightly_airflow.config import ConfigError, parse_selection_config
                from lightly_airflow.config.selection import proportion_below_one
                from lightly_airflow.selection.engine import needs_embeddings, select
                from lightly_airflow.selection.inputs import config_columns
                from lightly_airflow.selection.queries import resolve_query_sets

                try:
                    config = parse_selection_config(config_data)
                except ConfigError as exc:  # (named by --config and its value, as load_config names them)
                    raise invalid_config("--config", args.config.strip(), exc) from None
        except BaseException:
            stop.set()
            raise
        wanted = config_columns(config.strategies, names)  # None: every column
        pre_read = None
        if needs_embeddings(config) and C.EMBEDDING in names:
            # The preselected file's on the second thread: one file's decode is serial (60,000 x 1,280 after
            # 20,000: 1.3-1.9 -> 1.0-1.1 s for both reads)
            if C.EMBEDDING in pre_names:
                pre_read = reader.submit(read_embedding_rows, args.preselected, what="preselected samples")
            if early is not None:  # (when the read is already done, the state would load the kernels anyway)
                _warm_beside_read(config, dim, n_rows, n_pre, importing)
            embeddings = early.result() if early is not None else read_embedding_rows(args.samples)
        else:
            stop.set()
        early = None  # (the future would keep the matrix alive after the selection frees it)
        pre_embeddings = None if pre_read is None else pre_read.result()
    columns = [c for c in (names if wanted is None else wanted) if not (embeddings is not None and c == C.EMBEDDING)]
    late_keys = wanted is not None and C.KEY in names
    if late_keys:
        samples = samples_file.read(columns=[c for c in columns if c != C.KEY])
        # A null column (no buffers) stands in for the keys; the picks are row indices, their keys read below.
        samples = samples.add_column(0, C.KEY, pa.nulls(n_rows))
    else:
        samples = samples_file.read(columns=columns)
    pre = None
    if pre_file is not None:
        keep = set(pre_names) if wanted is None else {C.KEY, C.EMBEDDING, *wanted}
        if pre_embeddings is not None:
            keep.discard(C.EMBEDDING)
        pre = pre_file.read(columns=[c for c in pre_names if c in keep])
    result = select(samples, config, preselected=pre, query_embeddings=resolve_query_sets(config, base=query_base),
                    seed=args.seed, embeddings=embeddings, preselected_embeddings=pre_embeddings,
                    keys=not late_keys)  # (late keys: no throwaway key list from the null stand-in)
    embeddings = samples = pre = pre_embeddings = None  # (the matrix is freed before the keys are read)
    if late_keys:
        result.keys = read_keys(args.samples, result.indices)
    table = result.pick_details if result.pick_details is not None else pa.table(
        {C.KEY: string_array(result.keys),
         C.PICK_RANK: from_numpy(np.arange(len(result.keys), dtype=np.int64))})
    if late_keys:
        table = table.set_column(table.schema.get_field_index(C.KEY), C.KEY, string_array(result.keys))
    table = table.replace_schema_metadata({METRICS_METADATA_KEY: json.dumps(result.metrics, sort_keys=True)})
    pq.write_table(table, args.out)
    logger.info("selected %d of %d samples (%s) -> %s", len(result.keys), n_rows, result.stop_reason, args.out)
    _warn_repeated_keys(result.keys, args.samples)
    below = proportion_below_one(config, n_rows)
    if below:
        logger.warning("%s", below)
    return 0


def open_parquet(path: str, option: str) -> pq.ParquetFile:
    """``path`` (the value of ``option``) opened as a Parquet file; a path that does not exist, a folder, an empty
    file or one that is not Parquet (a CSV renamed) is a ``ValueError`` naming the option, the path and the fix."""
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        p = Path(path)
        if not p.exists():
            problem = "does not exist"
        elif p.is_dir():
            problem = "is a folder, not a file"
        elif p.stat().st_size == 0:
            problem = "is empty (0 bytes)"
        else:
            problem = f"is not a Parquet file ({exc})"
        raise ValueError(f"{option} {path!r}: {problem}\nFix: give the path of a Parquet file (`lightly-airflow "
                         f"select --help` says under {option} which columns it holds)") from None


def _warn_repeated_keys(keys: list[str], samples: str) -> None:
    """A warning when picks share a key: ``--samples`` holds the same file more than once (a datapool's rows are one
    per file; the CLI reads only the picks' keys, so repeats that were not picked go unseen)."""
    from collections import Counter

    repeated = sorted(k for k, n in Counter(keys).items() if n > 1)
    if repeated:
        logger.warning("--samples %r holds %d key(s) more than once, and the picks include each of them twice or more "
                       "(%s): the selection counts them as different samples. Fix: drop the repeated rows (one row a "
                       "file), e.g. keep the latest row of each key", samples, len(repeated), ", ".join(repeated[:5])
                       + (", ..." if len(repeated) > 5 else ""))


def reads_embeddings(config: object) -> bool:
    """Whether a selection config, as loaded and not yet validated (no pydantic: the models import beside the read),
    has an ``EMBEDDINGS`` input on the images' own embeddings (one without ``task``): the early read's guess, which
    the validated config confirms or stops."""
    strategies = config.get("strategies") if isinstance(config, dict) else None
    return isinstance(strategies, list) and any(
        isinstance(e, dict) and isinstance(e.get("input"), dict) and e["input"].get("type") == "EMBEDDINGS"
        and e["input"].get("task") is None for e in strategies)


@contextmanager
def _busy_beside_read(busy: threading.Event | None) -> Iterator[None]:
    """This thread busy beside the candidates' early read (``busy``: the reader's ``caller_busy``; None: no read):
    the reader copies its batches as they come, and this thread's GIL switch interval is short meanwhile."""
    if busy is None:
        yield
        return
    switch_interval = sys.getswitchinterval()
    busy.set()
    sys.setswitchinterval(READ_SWITCH_INTERVAL)
    try:
        yield
    finally:
        busy.clear()
        sys.setswitchinterval(switch_interval)


def _warm_beside_read(config: SelectionConfig, dim: int | None, n_rows: int, n_pre: int,
                      importing: threading.Event) -> None:
    """While the candidates' embeddings are still being read: numba's import and first kernel load (~1
    CPU-second, :func:`~lightly_airflow.selection.kernels.warm_compiled_state`) when the selection will take
    the compiled state, instead of after the read. (1,000,000 x 64: docs/selection.md, "numba beside the
    read".)"""
    from lightly_airflow.selection.engine import expects_compiled_state
    from lightly_airflow.selection.kernels import warm_compiled_state

    if dim is None or not expects_compiled_state(config, n_rows, dim, n_pre):
        return
    logger.debug("select: numba's kernels load beside the read (the compiled state is expected for %d x %d)",
                 n_rows, dim)
    with _busy_beside_read(importing):
        warm_compiled_state()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``select`` subcommand."""
    p = subparsers.add_parser("select", help="run a Lightly selection config over a samples Parquet file")
    p.add_argument("--samples", required=True, help="samples Parquet (key, embedding, metadata.*, scores.*, ...)")
    p.add_argument("--config", required=True,
                   help="the selection config: inline JSON ({...}), or the path or URI (s3://, gs://, az://: the "
                   "environment's credentials) of a JSON or YAML (.yaml/.yml) file")
    p.add_argument("--preselected", help="Parquet of samples already selected (at least key, embedding)")
    p.add_argument("--out", required=True, help="output Parquet: key, pick_rank and the selection.* values of "
                   "each pick (why it was picked); metrics in file metadata")
    p.add_argument("--seed", type=non_negative_int, default=None, help="seed of RANDOM inputs without random_seed")
    p.set_defaults(func=run)
