"""The DAG folder imports cleanly: no import errors, no deprecation warnings from Airflow imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_dag_folder_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    dag = dagbag.dags.get("lightly_datapool")
    assert dag is not None
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert set(dag.params.keys()) >= {
        "datasource_uri", "lightly_uri", "datapool_uri", "process_all", "selection_config", "tag_name",
        "execution_mode",
    }
    assert {t.task_id for t in dag.tasks} == {
        "wait_for_new_files", "list_new_files", "choose_execution_mode", "embed_local", "embed_kubernetes", "compute_metadata",
        "load_predictions", "select_and_commit",
    }


def test_dag_file_raises_no_deprecation_warnings() -> None:
    # A fresh interpreter, so warnings from imports are not hidden by modules other tests imported first.
    code = (
        "import warnings, runpy\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "warnings.filterwarnings('ignore', category=DeprecationWarning, module='(?!airflow|lightly_airflow).*')\n"
        f"runpy.run_path({str(DAGS / 'lightly_datapool.py')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
