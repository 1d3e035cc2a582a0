"""``execution_mode: kubernetes`` with the run's connections set: the first task says the pods do not use them."""

from __future__ import annotations

import runpy
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "lightly_datapool.py"
KUBECONFIG = ("apiVersion: v1\nkind: Config\nclusters: [{name: lab, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
              "users: [{name: me, user: {token: t}}]\ncontexts: [{name: lab, context: {cluster: lab, user: me}}]\n"
              "current-context: lab\n")


def test_connections_the_pods_do_not_use_are_named_by_the_first_task(tmp_path, monkeypatch, capsys) -> None:
    """The pods read the stores with their own credentials: a run whose datasource connection holds, say, a MinIO
    endpoint had every pod fail after the listing with an access error, and nothing said the connection was
    left out."""
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "AIRFLOW_CONN_KUBERNETES_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(KUBECONFIG)
    module = runpy.run_path(str(DAG_FILE))
    dag = module["dag"]
    task = dag.get_task("wait_for_new_files")
    params = {"execution_mode": "kubernetes", "datasource_conn_id": "minio", "datapool_conn_id": None,
              "lightly_conn_id": None}
    capsys.readouterr()
    module["_check_execution_mode"]({"params": params, "dag": dag, "task": task})
    warnings = [line for line in capsys.readouterr().out.splitlines() if "[warning" in line]
    assert len(warnings) == 1 and "not with the Airflow connections datasource_conn_id='minio'" in warnings[0]
    # no connection, or local: nothing to say
    module["_check_execution_mode"]({"params": {**params, "datasource_conn_id": None}, "dag": dag, "task": task})
    module["_check_execution_mode"]({"params": {**params, "execution_mode": "local"}, "dag": dag, "task": task})
    assert "[warning" not in capsys.readouterr().out
