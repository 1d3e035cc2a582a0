"""What a ``lightly-airflow`` process does before its command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

PROBE = """
import os, sys
from lightly_airflow.cli import main
code = main(sys.argv[1:])
from pydantic.plugin import _loader
from threadpoolctl import threadpool_info
# None: pydantic never scanned the installed distributions for plugins; a dict: it did
print(repr(os.environ.get("PYDANTIC_DISABLE_PLUGINS")), _loader._plugins is None, code)
# OpenBLAS' idle-thread timeout and its threads (the variable keeps them: only their busy wait is shorter)
print(repr(os.environ.get("OPENBLAS_THREAD_TIMEOUT")),
      max(i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"))
"""


def _select(tmp_path: Path, env: dict[str, str]) -> list[list[str]]:
    """A ``select`` of 5 of 40 samples in a fresh process under ``env``; the PROBE's lines, split."""
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(40)],
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 8)}),
                   tmp_path / "samples.parquet")
    (tmp_path / "config.json").write_text(json.dumps(
        {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "select", "--samples", str(tmp_path / "samples.parquet"),
         "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "picks.parquet")],
        env=env, capture_output=True, text=True, check=True, timeout=120)
    assert pq.read_table(tmp_path / "picks.parquet").num_rows == 5
    return [line.split() for line in out.stdout.splitlines()]


@pytest.mark.parametrize(("given", "expected", "scanned"), [(None, "'__all__'", False), ("", "''", True)])
def test_select_skips_pydantics_plugin_scan_unless_asked(tmp_path: Path, given: str | None, expected: str,
                                                          scanned: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if given is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = given
    assert _select(tmp_path, env)[0] == [expected, str(not scanned), "0"]


@pytest.mark.parametrize(("given", "expected"), [(None, "'4'"), ("28", "'28'")])
def test_openblas_threads_sleep_at_once_unless_set(tmp_path: Path, given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS",
                                                            "OMP_NUM_THREADS")}
    if given is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = given
    timeout, threads = _select(tmp_path, env)[1]
    assert timeout == expected
    # BLAS keeps its threads (TYPICALITY's products use them; OpenBLAS caps their count on large machines): only
    # the idle wait changed.
    assert int(threads) == 1 if len(os.sched_getaffinity(0)) == 1 else int(threads) > 1
