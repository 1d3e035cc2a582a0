"""Which of some modules a ``lightly-airflow`` command loads, run in a fresh interpreter (an import made by another
test of this process would hide one the command makes): the start-up tests' one probe."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable

PROBE = """
import json, sys
from lightly_airflow.cli import main
watched = json.loads(sys.argv[1])
code = main(sys.argv[2:])
print(json.dumps([code, sorted(m for m in watched if m in sys.modules)]))
"""


def modules_loaded(watched: Iterable[str], *args: str) -> list[str]:
    """The modules of ``watched`` loaded once ``lightly-airflow <args>`` ran (it must exit 0)."""
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(watched)), *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    code, modules = json.loads(out.stdout.splitlines()[-1])
    assert code == 0
    return list(modules)
