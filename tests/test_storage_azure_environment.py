"""The workers' ``AZURE_*`` variables do not change how the datapool table (delta-rs) uses a connection's credentials:
delta-rs 1.6.6 fills every object_store key its options leave unset from the environment (credentials excepted once
the options carry one), so a worker's ``AZURE_SKIP_SIGNATURE`` sent the table's requests unsigned, and its endpoint
variables would send them elsewhere than adlfs reads the files (:func:`lightly_airflow.storage_azure._environment_pins`)."""

from __future__ import annotations

import pytest

from lightly_airflow.datapool import Datapool
from lightly_airflow.storage import StorageCredentials


def test_an_environment_skip_signature_leaves_a_key_signing(azure_container, monkeypatch) -> None:  # noqa: ANN001
    """Checked on Azurite: the key's requests went unsigned and were refused ("AuthorizationFailure"). A credential the
    environment holds (``AZURE_STORAGE_TOKEN``) is left out by delta-rs itself once the connection gives one."""
    monkeypatch.setenv("AZURE_SKIP_SIGNATURE", "true")
    monkeypatch.setenv("AZURE_STORAGE_TOKEN", "not-a-token")
    assert Datapool(f"{azure_container.uri}/pool", azure_container.credentials).exists() is False


def test_an_environment_endpoint_is_pinned_to_the_connections_account(monkeypatch) -> None:
    """A connection without an endpoint reads files at ``https://<account>.blob.core.windows.net`` (adlfs): the table
    goes there too, not to the environment's ``AZURE_STORAGE_ENDPOINT`` or emulator."""
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:9/devstoreaccount1")
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    opts = StorageCredentials(account_name="acct", account_key="a2V5", store="az").delta_options("az://c/pool")
    assert opts["AZURE_STORAGE_ENDPOINT"] == "https://acct.blob.core.windows.net"
    assert opts["AZURE_STORAGE_USE_EMULATOR"] == "false"
    ambient = StorageCredentials().delta_options("az")  # (no connection: the environment is what it asks for)
    assert "AZURE_STORAGE_ENDPOINT" not in ambient and "AZURE_STORAGE_USE_EMULATOR" not in ambient


@pytest.mark.parametrize("variable", ["AZURE_SKIP_SIGNATURE", "AZURE_USE_FABRIC_ENDPOINT"])
def test_an_anonymous_connection_keeps_its_own_choice(variable: str, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(variable, "true")
    opts = StorageCredentials(account_name="acct", anonymous=True, store="az").delta_options("az://c/pool")
    assert opts.get("AZURE_SKIP_SIGNATURE") == "true" and opts.get("AZURE_USE_FABRIC_ENDPOINT", "false") == "false"


def test_the_azure_rules_are_imported_for_azure_alone() -> None:
    """:mod:`lightly_airflow.storage` (imported by the UI and the DAG) imports its Azure rules
    (:mod:`lightly_airflow.storage_azure`) when an Azure URI needs them, and they import no storage module (no
    cycle): a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys; import lightly_airflow.storage as s; azure = 'lightly_airflow.storage_azure'; "
            "assert azure not in sys.modules; s.StorageCredentials().store_problem('s3://b/x'); "
            "assert azure not in sys.modules; s.StorageCredentials().store_problem('az://c@a.dfs.core.windows.net/x'); "
            "assert azure in sys.modules; del sys.modules['lightly_airflow.storage'], sys.modules[azure]; "
            "import lightly_airflow.storage_azure; assert 'lightly_airflow.storage' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
