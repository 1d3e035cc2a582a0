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


HEAP_PROBE = """
import os, resource, sys
import numpy as np
from lightly_airflow.cli import heap_for_temporaries  # (a light module: no numpy / Arrow imports first)
set_ = heap_for_temporaries() if sys.argv[1] == "set" else False
faults = []
for _ in range(3):  # an 8 MiB temporary, made, touched and freed three times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(2**20)
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(set_, *faults)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
@pytest.mark.parametrize(("mode", "env"), [("set", {}), ("default", {}), ("set", {"MALLOC_ARENA_MAX": "2"}),
                                           ("set", {"MALLOC_TRIM_THRESHOLD_": "1000000"})])
def test_select_keeps_freed_temporaries_on_the_heap(mode: str, env: dict[str, str]) -> None:
    # glibc's defaults map a block above 128 KiB afresh and unmap it when freed (a page fault per page of each
    # 8 MiB temporary) until a first large free raises its limits; the select process starts with them raised: the
    # second temporary of the same size takes no new page. A MALLOC_*_ variable of the user's is left alone.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], env={**environ, **env}, capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()
    applied = mode == "set" and "MALLOC_TRIM_THRESHOLD_" not in env
    assert out[0] == str(applied)
    first, second, third = (int(v) for v in out[1:])
    assert first >= 256, out  # (every page of the first block is new, either way: 4 KiB pages or numpy's huge ones)
    if applied:
        assert second <= first // 10 and third <= first // 10, out
    else:
        assert second >= first // 2, out  # (the block mapped afresh, or heap pages touched for the first time)


@pytest.mark.parametrize("numpy_state", [True, False])
def test_select_sets_the_heap_where_the_numpy_state_selects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           numpy_state: bool) -> None:
    # The select command raises glibc's limits before its read where the numpy state will select (from the
    # file's footer), not where the compiled one does (numba's blocks would stay in the heap: +16 MiB).
    from lightly_airflow.cli import main
    from lightly_airflow.selection import cli as select_cli
    from lightly_airflow.selection import kernels

    x = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(300)],
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 8)}),
                   tmp_path / "samples.parquet")
    (tmp_path / "config.json").write_text(json.dumps(
        {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    calls: list[str] = []
    monkeypatch.setattr(select_cli, "heap_for_temporaries", lambda: calls.append("heap") or True)
    if not numpy_state:
        for name in ("NUMPY_MAX_ROWS", "NUMPY_MAX_ROWS_HEAP", "NUMPY_MAX_ROWS_HEAP_WIDE", "NUMPY_MAX_ROWS_WIDE",
                     "NUMPY_MAX_WORK"):
            monkeypatch.setattr(kernels, name, -1)
    assert main(["select", "--samples", str(tmp_path / "samples.parquet"), "--config", str(tmp_path / "config.json"),
                 "--out", str(tmp_path / "picks.parquet")]) == 0
    assert calls == (["heap"] if numpy_state else [])
    assert pq.read_table(tmp_path / "picks.parquet").num_rows == 5
