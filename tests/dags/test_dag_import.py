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
    # (a store's passing error while the sensor waits fails its try, NewFilesCheckError: retried like every task)
    assert dag.get_task("wait_for_new_files").retries == 2


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


def _load_dag(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    code = (
        "import runpy\n"
        f"dag = runpy.run_path({str(DAGS / 'lightly_datapool.py')!r})['dag']\n"
        "print([dag.get_task(t).partial_kwargs.get('weights_uri') for t in ('embed_local', 'embed_kubernetes')])\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})


def test_a_bad_deployment_variable_stops_the_dag_from_loading_naming_it() -> None:
    """The embed tasks are mapped (built only when a run expands them): an unknown LIGHTLY_EMBEDDING_MODEL failed
    every run's embed tasks after its listing and metadata; now the DAG does not load, and says why."""
    for env, words in [
        ({"LIGHTLY_EMBEDDING_MODEL": "efficientnet-lit0"}, "LIGHTLY_EMBEDDING_MODEL='efficientnet-lit0'"),
        ({"LIGHTLY_EMBEDDING_DIM": "5000"}, "feature dimension 1280"),
        ({"LIGHTLY_EMBEDDING_INPUT_SIZE": "abc"}, "LIGHTLY_EMBEDDING_INPUT_SIZE='abc' is invalid"),
        ({"LIGHTLY_EMBEDDING_MODEL": "resnet-50"}, "needs weights_uri"),
        ({"LIGHTLY_LIVE_PHOTO_VIDEOS": "maybe"}, "LIGHTLY_LIVE_PHOTO_VIDEOS='maybe' is invalid"),
        ({"LIGHTLY_POKE_INTERVAL_S": "5m"}, "LIGHTLY_POKE_INTERVAL_S='5m' is invalid"),
        ({"LIGHTLY_SCHEDULE": "new_files"}, "LIGHTLY_SCHEDULE='new_files' is invalid"),
        ({"LIGHTLY_SCHEDULE": "@dialy"}, "or new-files (runs when new files land)"),
        ({"LIGHTLY_REVIEW": "yes please"}, "LIGHTLY_REVIEW='yes please' is invalid"),
        ({"LIGHTLY_REVIEW_TIMEOUT_H": "3 days"}, "LIGHTLY_REVIEW_TIMEOUT_H='3 days' is invalid: hours"),
        ({"LIGHTLY_REVIEW_TIMEOUT_H": "-1"}, "LIGHTLY_REVIEW_TIMEOUT_H=-1 is invalid"),
        ({"LIGHTLY_REVIEWERS": "alice,:bob"}, "LIGHTLY_REVIEWERS='alice,:bob' is invalid"),
    ]:
        proc = _load_dag(env)
        assert proc.returncode != 0 and words in proc.stderr, (env, proc.stderr[-1500:])
    # A ResNet with its weights (e.g. a fine-tuned backbone) loads, both embed tasks take them.
    proc = _load_dag({"LIGHTLY_EMBEDDING_MODEL": "resnet-50", "LIGHTLY_EMBEDDING_WEIGHTS": "s3://models/r50.pth"})
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip().splitlines()[-1] == "['s3://models/r50.pth', 's3://models/r50.pth']"


def test_trigger_form_takes_any_json_object_and_the_first_task_names_the_problem(dagbag) -> None:
    """The form's schema says only "a JSON object" (a JSON-schema error names no path: "'1' is not valid under
    any of the given schemas"); the first task checks the config and names each problem's JSON path."""
    import copy

    import pytest
    from airflow.sdk.exceptions import ParamValidationError

    from lightly_airflow.pipeline import ParamError, validate_params

    param = copy.deepcopy(dagbag.dags["lightly_datapool"].params.get_param("selection_config"))
    good = {"proportion_samples": 0.2, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.1}},
        {"input": {"type": "METADATA", "key": "lightly.sharpness"},
         "strategy": {"type": "THRESHOLD", "threshold": 5, "operation": "BIGGER_EQUAL"}},
    ]}
    assert param.resolve(good) == good
    with pytest.raises(ParamValidationError):
        param.resolve(["not", "an", "object"])
    for config, words in [
        ({"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSTY"}}]},
         "strategies[0].strategy: invalid type"),
        ({"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"},
                                          "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 5.0}}]},
         "stopping_condition_minimum_distance"),
        ({"n_samples": "5", "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]},
         "n_samples: must be a JSON integer"),
    ]:
        assert param.resolve(config) == config
        with pytest.raises(ParamError, match="Parameter 'selection_config'") as err:
            validate_params(datasource_uri=DAGS.as_uri(), datapool_uri="file:///tmp/pool", lightly_uri=None,
                            selection_config=config)
        assert words in str(err.value) and "Fix:" in str(err.value)
    for name in ("worker_config", "lightly_config"):
        other = copy.deepcopy(dagbag.dags["lightly_datapool"].params.get_param(name))
        assert other.schema["type"] == "object" and other.schema["title"] and other.description
        assert other.resolve({"num_threads": "4"}) == {"num_threads": "4"}  # checked by the first task


def test_a_review_timeout_discards_an_unanswered_proposal_never_commits_it() -> None:
    import os

    code = (
        "import runpy\n"
        f"dag = runpy.run_path({str(DAGS / 'lightly_datapool.py')!r})['dag']\n"
        "t = dag.get_task('review_selection')\n"
        "print(t.response_timeout, t.defaults, t.options, t.assigned_users)\n"
    )
    env = {**os.environ, "LIGHTLY_REVIEW": "true", "LIGHTLY_REVIEW_TIMEOUT_H": "72", "LIGHTLY_REVIEWERS": "alice, 7:bob"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip().splitlines()[-1] == (
        "3 days, 0:00:00 ['Discard'] ['Commit', 'Discard'] [{'id': 'alice', 'name': 'alice'}, {'id': '7', 'name': 'bob'}]")
