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
# None: pydantic never scanned the installed distributions for plugins; a dict: it did
print(repr(os.environ.get("PYDANTIC_DISABLE_PLUGINS")), _loader._plugins is None, code)
"""


@pytest.mark.parametrize(("given", "expected", "scanned"), [(None, "'__all__'", False), ("", "''", True)])
def test_select_skips_pydantics_plugin_scan_unless_asked(tmp_path: Path, given: str | None, expected: str,
                                                          scanned: bool) -> None:
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(40)],
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 8)}),
                   tmp_path / "samples.parquet")
    (tmp_path / "config.json").write_text(json.dumps(
        {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if given is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = given
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "select", "--samples", str(tmp_path / "samples.parquet"),
         "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "picks.parquet")],
        env=env, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == [expected, str(not scanned), "0"], out.stderr[-2000:]
    assert pq.read_table(tmp_path / "picks.parquet").num_rows == 5
