"""``execution_mode: kubernetes`` without a Kubernetes configuration fails the first task in seconds (it failed in
every embed task, after the listing, the metadata and the predictions, with ``ConfigException``, retried twice).
No cluster exists here: a kubeconfig is only read, never used to connect."""

from __future__ import annotations

import json
import time

import pytest

from lightly_airflow.operators.embed import check_kubernetes_config
from lightly_airflow.pipeline import ParamError

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: me, user: {token: not-a-secret}}]
contexts: [{name: lab, context: {cluster: lab, user: me}}]
current-context: lab
"""


@pytest.fixture
def no_kubernetes(monkeypatch, tmp_path):
    """No in-cluster environment, no kubeconfig in the (temporary) home, no kubernetes_default connection."""
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "AIRFLOW_CONN_KUBERNETES_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_no_configuration_is_refused_naming_every_source_tried_and_the_fix(no_kubernetes) -> None:
    started = time.monotonic()
    with pytest.raises(ParamError) as err:
        check_kubernetes_config()
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert err.value.param == "execution_mode"
    assert "the connection 'kubernetes_default' (no in_cluster, kube_config_path or kube_config set)" in message
    assert "in-cluster (KUBERNETES_SERVICE_HOST/PORT unset)" in message
    assert f"the default kubeconfig '{no_kubernetes}/.kube/config'" in message
    assert "ConfigException" in message
    assert "Fix: set execution_mode to 'local'" in message and "give the Airflow connection 'kubernetes_default'" in message


def test_a_kubeconfig_the_operator_would_read_passes(no_kubernetes, tmp_path, monkeypatch) -> None:
    # The default location (~/.kube/config).
    (no_kubernetes / ".kube").mkdir()
    (no_kubernetes / ".kube" / "config").write_text(KUBECONFIG)
    assert check_kubernetes_config() == f"the default kubeconfig '{no_kubernetes}/.kube/config'"
    (no_kubernetes / ".kube" / "config").unlink()
    # The connection's kube_config_path, and the operator's config_file.
    other = tmp_path / "lab-kubeconfig.yaml"
    other.write_text(KUBECONFIG)
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(other)}}))
    assert check_kubernetes_config() == f"the kubeconfig file '{other}'"
    monkeypatch.delenv("AIRFLOW_CONN_KUBERNETES_DEFAULT")
    assert check_kubernetes_config(config_file=str(other)) == f"the kubeconfig file '{other}'"
    # A kubeconfig that names no cluster is refused with the kubernetes client's reason.
    other.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ParamError, match=r"tried the kubeconfig file .*ConfigException"):
        check_kubernetes_config(config_file=str(other))


def test_in_cluster_settings_without_the_pod_environment_and_a_missing_connection_are_named(
    no_kubernetes, monkeypatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"in_cluster": True}}))
    with pytest.raises(ParamError, match=r"tried in-cluster \(KUBERNETES_SERVICE_HOST/PORT unset\)"):
        check_kubernetes_config()
    with pytest.raises(ParamError, match=r"the Airflow connection 'k8s_lab', which cannot be read"):
        check_kubernetes_config(kubernetes_conn_id="k8s_lab")
