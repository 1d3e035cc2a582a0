"""``lightly-airflow report --rows ROWS.parquet --out DIR [--summary S.json] [--config C.json|C.yaml|'{...}']``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from lightly_airflow import columns as C
from lightly_airflow.config.errors import read_config_text

logger = logging.getLogger(__name__)


def _load_json(path: str | None, what: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(read_config_text(Path(path), f"--{what}"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--{what} {path!r} does not exist; pass the JSON file the run wrote.") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--{what} {path!r} is not valid JSON ({exc}); fix or omit it.") from None
    if not isinstance(data, dict):
        raise ValueError(f"--{what} {path!r} must hold a JSON object, got {type(data).__name__}.")
    return data


def _load_config(value: str | None) -> dict[str, Any]:
    """The selection config as ``select --config`` reads it: inline JSON, or a local or bucket file (the
    environment's credentials), JSON or YAML, checked (every problem with its JSON path and the fix)."""
    if value is None:
        return {}
    from lightly_airflow.config import load_config, parse_selection_config

    return load_config(value, "--config", parse_selection_config)


def _read_table(uri: str, what: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lightly_airflow.storage import filesystem

    fs, path = filesystem(uri, None)
    if not fs.exists(path):
        raise FileNotFoundError(f"--{what} {uri!r} does not exist; pass a Parquet file of the run's rows.")
    with fs.open(path, "rb") as f:
        try:
            return pq.read_table(f)
        except pa.ArrowInvalid as exc:  # (an empty file, a CSV renamed .parquet)
            raise ValueError(f"--{what} {uri!r} is not a Parquet file ({exc}); pass a Parquet file of the run's "
                             "rows.") from None


def _run(args: argparse.Namespace) -> int:
    from lightly_airflow.report import write_report

    rows = _read_table(args.rows, "rows")
    if not {C.SELECTED, C.PICK_RANK} & set(rows.column_names):  # (a samples file given for the run's rows)
        logger.warning("--rows %r has neither %r nor %r: the report shows no picks. Fix: pass the run's rows (the "
                       "select task's rows, or select --out's picks)", args.rows, C.SELECTED, C.PICK_RANK)
    preselected = _read_table(args.preselected, "preselected") if args.preselected else None
    summary = _load_json(args.summary, "summary")
    config = _load_config(args.config)
    uri = write_report(rows, out_uri=args.out, summary=summary, config=config, preselected=preselected,
                       max_points=args.max_points)
    print(uri)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` command (ambient credentials: environment variables, workload identity)."""
    parser = subparsers.add_parser(
        "report",
        help="render a run's selection report (index.html + PNG plots) from its rows",
        description="Write index.html and PNG plots that show what a run selected and why.",
    )
    parser.add_argument("--rows", required=True, help="Parquet file of the run's rows (key, status, selected, …)")
    parser.add_argument("--out", required=True, help="output folder (local path or s3://, gs://, az:// URI)")
    parser.add_argument("--summary", default=None, help="JSON file with the run summary (counts, metrics)")
    parser.add_argument("--config", default=None,
                        help="the run's selection config (BALANCE charts), as select --config takes it: inline JSON "
                        "({...}), or the path or URI (s3://, gs://, az://: the environment's credentials) of a JSON "
                        "or YAML (.yaml/.yml) file")
    parser.add_argument("--preselected", default=None, help="Parquet file of samples selected by earlier runs")
    parser.add_argument("--max-points", type=int, default=20000, help="points on the embedding map (default 20000)")
    parser.set_defaults(func=_run)
