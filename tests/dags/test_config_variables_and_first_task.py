"""What a scheduled run uses comes from the deployment's variables (LIGHTLY_SELECTION_CONFIG, LIGHTLY_WORKER_CONFIG,
LIGHTLY_LIGHTLY_CONFIG), and the first task, not the trigger form's JSON schema, names a config's problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILE = DAGS / "lightly_datapool.py"
DIVERSE = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def _param_defaults(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Parse the DAG file in a fresh interpreter with ``env``; its three configs' Param defaults."""
    code = (
        "import json, runpy\n"
        f"dag = runpy.run_path({str(DAG_FILE)!r})['dag']\n"
        "print(json.dumps({k: dag.params[k] for k in ('selection_config', 'worker_config', 'lightly_config')}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    defaults = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
    return proc, defaults


def test_each_config_variable_sets_its_params_default(tmp_path) -> None:
    """Inline JSON, a JSON file by path or file:// URI, and a YAML file (as Lightly users keep them)."""
    selection = {"n_samples": 7, "strategies": [DIVERSE]}
    (tmp_path / "selection.yaml").write_text(
        "n_samples: 7\nstrategies:\n  - input: {type: EMBEDDINGS}\n    strategy: {type: DIVERSITY}\n")
    (tmp_path / "worker.json").write_text('\ufeff{"embeddings": "my_embeddings.csv"}')  # (a BOM: Notepad)
    (tmp_path / "lightly.yml").write_text("loader:\n  batch_size: 16\ncollate:\n  input_size: 96\n")

    proc, unset = _param_defaults({})
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert unset["worker_config"] == {} and unset["lightly_config"] == {}
    assert unset["selection_config"]["n_samples"] == 40  # the built-in default

    for env in [
        {"LIGHTLY_SELECTION_CONFIG": json.dumps(selection),
         "LIGHTLY_WORKER_CONFIG": str(tmp_path / "worker.json"),
         "LIGHTLY_LIGHTLY_CONFIG": str(tmp_path / "lightly.yml")},
        {"LIGHTLY_SELECTION_CONFIG": (tmp_path / "selection.yaml").as_uri(),
         "LIGHTLY_WORKER_CONFIG": '{"embeddings": "my_embeddings.csv"}',
         "LIGHTLY_LIGHTLY_CONFIG": '{"loader": {"batch_size": 16}, "collate": {"input_size": 96}}'},
    ]:
        proc, defaults = _param_defaults(env)
        assert proc.returncode == 0, (env, proc.stderr[-1500:])
        assert defaults == {
            "selection_config": selection,
            "worker_config": {"embeddings": "my_embeddings.csv"},
            "lightly_config": {"loader": {"batch_size": 16}, "collate": {"input_size": 96}},
        }, env


def test_a_bad_config_variable_stops_the_dag_from_loading_naming_it_the_json_path_and_the_fix(tmp_path) -> None:
    (tmp_path / "selection.yaml").write_text(
        "n_samples: '5'\nstrategies:\n  - input: {type: EMBEDDINGS}\n    strategy: {type: DIVERSITY, strength: '1'}\n")
    (tmp_path / "broken.yaml").write_text("n_samples: [5\n")
    for env, words in [
        ({"LIGHTLY_SELECTION_CONFIG": str(tmp_path / "selection.yaml")},
         ["LIGHTLY_SELECTION_CONFIG=", "strategies[0].strategy.strength: must be a finite number",
          "n_samples: must be a JSON integer", "Fix: correct the listed keys", "or unset LIGHTLY_SELECTION_CONFIG"]),
        ({"LIGHTLY_WORKER_CONFIG": '{"enable_trainng": false}'},
         ["LIGHTLY_WORKER_CONFIG=", "enable_trainng: unknown key", "Did you mean 'enable_training'?"]),
        ({"LIGHTLY_LIGHTLY_CONFIG": '{"loader": {"batch_size": "big"}}'},
         ["LIGHTLY_LIGHTLY_CONFIG=", "loader.batch_size"]),
        ({"LIGHTLY_LIGHTLY_CONFIG": str(tmp_path / "missing.yaml")},
         ["LIGHTLY_LIGHTLY_CONFIG=", "does not exist", "inline JSON"]),
        ({"LIGHTLY_SELECTION_CONFIG": str(tmp_path / "broken.yaml")}, ["LIGHTLY_SELECTION_CONFIG=", "not valid YAML"]),
        ({"LIGHTLY_WORKER_CONFIG": '{"embeddings": "x.csv",}'},
         ["LIGHTLY_WORKER_CONFIG=", "trailing comma"]),
    ]:
        proc, _ = _param_defaults(env)
        assert proc.returncode != 0, env
        for word in words:
            assert word in proc.stderr, (env, word, proc.stderr[-1500:])


@pytest.mark.slow
def test_a_scheduled_run_selects_with_the_configs_of_the_variables(airflow_db, tmp_path, monkeypatch) -> None:
    """No conf at all (a scheduled run): the selection config (a YAML file) and the worker config (inline JSON:
    a relevant-filenames file) of the variables decide what is processed and how much is selected."""
    import runpy

    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.demo import Batch, add_batch

    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    keys = sorted(add_batch(source, Batch("cam", (0, 12), ())))
    (source / ".lightly").mkdir(exist_ok=True)
    (source / ".lightly" / "relevant.txt").write_text("\n".join(keys[:8]) + "\n")
    (tmp_path / "selection.yaml").write_text(
        "n_samples: 3\nstrategies:\n  - input: {type: EMBEDDINGS}\n    strategy: {type: DIVERSITY}\n")
    for name, value in {
        "LIGHTLY_DATASOURCE_URI": source.as_uri(), "LIGHTLY_DATAPOOL_URI": pool_dir.as_uri(),
        "LIGHTLY_SELECTION_CONFIG": str(tmp_path / "selection.yaml"),
        "LIGHTLY_WORKER_CONFIG": '{"relevant_filenames_file": "relevant.txt"}',
    }.items():
        monkeypatch.setenv(name, value)
    dag = runpy.run_path(str(DAG_FILE))["dag"]
    assert dag.params["selection_config"]["n_samples"] == 3

    run = dag.test(logical_date=datetime(2027, 1, 1, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    table = Datapool(pool_dir.as_uri()).read(run_id=run.run_id)
    assert sorted(table.column(C.KEY).to_pylist()) == keys[:8]  # only the relevant files
    assert sum(table.column(C.SELECTED).to_pylist()) == 3       # the variable's n_samples, not the default 40


@pytest.mark.slow
def test_a_type_error_in_the_conf_reaches_the_first_task_which_names_its_json_path(
    airflow_db, dagbag, tmp_path, capfd
) -> None:
    """``"strength": "1"`` was refused by the trigger form's JSON schema ("'1' is not valid under any of the given
    schemas", no path); the form now takes any JSON object and the first task names the path and the fix."""
    import copy

    from test_lightly_datapool_run import BASE_CONF

    bad = {"n_samples": "5", "strategies": [{"input": {"type": "EMBEDDINGS"},
                                             "strategy": {"type": "DIVERSITY", "strength": "1"}}]}
    dag = dagbag.dags["lightly_datapool"]
    param = copy.deepcopy(dag.params.get_param("selection_config"))
    assert param.resolve(bad) == bad  # the form lets it through, to the first task
    assert param.schema["type"] == "object" and param.schema["title"] and param.description

    (tmp_path / "images").mkdir()
    conf = {**BASE_CONF, "datasource_uri": (tmp_path / "images").as_uri(),
            "datapool_uri": (tmp_path / "pool").as_uri(), "selection_config": bad}
    started = time.monotonic()
    run = copy.deepcopy(dag).test(run_conf=conf, logical_date=datetime(2027, 2, 1, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["wait_for_new_files"] == "failed", states
    assert states["list_new_files"] == "upstream_failed"
    assert time.monotonic() - started < 60
    logged = "".join(capfd.readouterr())  # (dag.test's task log goes to the console)
    assert "AirflowFailException: Parameter 'selection_config'" in logged
    assert "strategies[0].strategy.strength: must be a finite number" in logged
    assert "n_samples: must be a JSON integer" in logged and "Fix: correct the listed keys" in logged


@pytest.mark.slow
def test_a_kubernetes_run_without_configuration_fails_its_first_task_in_seconds(
    airflow_db, dagbag, tmp_path, capfd, monkeypatch
) -> None:
    """``execution_mode: kubernetes`` on a worker with no Kubernetes configuration failed every embed task after
    the listing, the metadata and the predictions ran (``ConfigException``, retried twice); now the first task."""
    import copy

    from test_lightly_datapool_run import BASE_CONF

    from lightly_airflow.demo import Batch, add_batch

    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "AIRFLOW_CONN_KUBERNETES_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # (no ~/.kube/config)
    source = tmp_path / "images"
    add_batch(source, Batch("cam", (0, 4), ()))
    conf = {**BASE_CONF, "datasource_uri": source.as_uri(), "datapool_uri": (tmp_path / "pool").as_uri(),
            "execution_mode": "kubernetes",
            "selection_config": {"n_samples": 2, "strategies": [
                {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}}
    started = time.monotonic()
    run = copy.deepcopy(dagbag.dags["lightly_datapool"]).test(run_conf=conf, logical_date=datetime(2027, 3, 1, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert time.monotonic() - started < 60
    assert states["wait_for_new_files"] == "failed", states
    assert states["list_new_files"] == "upstream_failed"
    assert states["compute_metadata"] != "success" and states["embed_kubernetes"] != "success"
    logged = "".join(capfd.readouterr())
    assert "AirflowFailException: Parameter 'execution_mode': 'kubernetes' runs the embed step in pods" in logged
    assert "KUBERNETES_SERVICE_HOST/PORT unset" in logged and "Fix: set execution_mode to 'local'" in logged

    # With a kubeconfig where the pod operator reads it, the same first-task check passes (no cluster contacted).
    import runpy

    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: lab, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: me, user: {token: t}}]\ncontexts: [{name: lab, context: {cluster: lab, user: me}}]\n"
        "current-context: lab\n")
    module = runpy.run_path(str(DAG_FILE))
    dag = module["dag"]
    context = {"params": {"execution_mode": "kubernetes"}, "dag": dag, "task": dag.get_task("wait_for_new_files")}
    module["_check_execution_mode"](context)
