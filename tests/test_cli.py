"""The ``lightly-airflow`` console script: :func:`lightly_airflow.cli.console` around ``main``."""

import json
import subprocess
import sys
from importlib.metadata import entry_points

CODE = ("import gc, json, sys; from lightly_airflow.cli import console; sys.argv = ['lightly-airflow', *sys.argv[1:]]; "
        "rc = console(); print(json.dumps({'rc': rc, 'frozen': gc.get_freeze_count(), 'collecting': gc.isenabled()}))")


def run_console(*args: str) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stdout


def test_the_console_script_is_console():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "lightly-airflow"]
    assert script.value == "lightly_airflow.cli:console"


def test_console_returns_mains_exit_code_and_leaves_the_objects_to_the_process_end():
    result, stdout = run_console("recipe", "active-learning", "--task", "weather")
    assert result["rc"] == 0 and '"strategies"' in stdout  # (the recipe's config was printed)
    assert result["frozen"] > 1000  # (the interpreter's last collections skip them)
    assert result["collecting"]  # (off only while the command's modules were imported)
    result, _ = run_console("recipe", "active-learning", "--task", "weather", "--n-samples", "0")
    assert result["rc"] == 1
