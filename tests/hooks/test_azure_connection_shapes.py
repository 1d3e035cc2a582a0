"""Azure (wasb) connection shapes that ``WasbHook`` fails on or silently ignores (and would then reach another
account, endpoint or identity) fail at once, naming the connection, the extra (or host) and the fix. (The shapes
that work are written and read on Azurite in tests/datapool/test_azure_connections.py.)"""

from __future__ import annotations

import json

import emulators  # (scripts/ is on sys.path: tests/conftest.py)
import pytest

from lightly_airflow.hooks.storage import UnsupportedConnectionError, credentials_for

ACCOUNT, KEY = emulators.AZURE_ACCOUNT, emulators.AZURE_KEY


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "wasb", **conn}))
    return conn_id


def test_shapes_the_hook_fails_on_or_ignores_are_named_with_the_fix(azure_endpoint, monkeypatch) -> None:
    """Each failed or reached somewhere else (measured before: TypeError from BlobServiceClient, or the public
    cloud at <account>.blob.core.windows.net with the emulator's key, or the default identity); now the first
    task says which connection, which extra (or host) and what to write instead."""
    sas = "sv=2024-08-04&sr=c&sp=rl&sig=abc%3D"
    cases = [
        ({"login": ACCOUNT, "password": KEY, "extra": {"account_url": azure_endpoint}},
         r"extra 'account_url'.*got multiple values.*Fix: put the account URL in the connection's host"),
        ({"extra": {"account_url": azure_endpoint, "sas_token": sas}}, r"extra 'account_url'"),
        ({"login": ACCOUNT, "extra": {"credential": KEY}}, r"extra 'credential'.*Fix: give the key as the password"),
        ({"login": ACCOUNT, "password": KEY, "extra": {"extra__wasb__account_url": azure_endpoint}},
         r"extra 'account_url' is not read by WasbHook.*Fix: put the account URL in the connection's host"),
        ({"login": ACCOUNT, "extra": {"sas_token": f"{azure_endpoint}?{sas}"}},
         rf"extra 'sas_token' is an http:// URL.*Fix: set the connection's host to {azure_endpoint} and sas_token"),
        ({"extra": {"account_name": ACCOUNT, "account_key": KEY}},
         r"extra 'account_name' is not read by WasbHook.*Fix: set the connection's login"),
        ({"login": ACCOUNT, "password": KEY, "extra": {"account_host": "127.0.0.1:10000"}}, r"extra 'account_host'"),
        ({"login": ACCOUNT, "extra": {"client_id": "app", "client_secret": "s"}}, r"extra 'client_id'.*tenant_id"),
        ({"login": ACCOUNT, "extra": {"workload_identity_client_id": "app"}}, r"extra 'workload_identity_client_id'"),
        ({"login": ACCOUNT, "extra": {"managed_identity_client_id": "mi"}},
         r"extra 'managed_identity_client_id'.*only together with 'workload_identity_tenant_id'"),
        ({"login": ACCOUNT, "password": KEY, "host": azure_endpoint.replace("127.0.0.1", "localhost")},
         r"its host http://localhost:\d+/devstoreaccount1 is not used by WasbHook.*Fix: give the endpoint in a "
         r"connection_string extra"),
        ({"login": ACCOUNT, "extra": {"anon": "yes"}}, r"extra 'anon'='yes' is not a boolean"),
        ({"login": ACCOUNT, "password": KEY, "host": "localhost:10000/devstoreaccount1"},
         r"its host localhost\S* is not used by WasbHook"),
    ]
    for i, (conn, match) in enumerate(cases):
        conn_id = _connection(monkeypatch, f"odd_wasb_{i}", conn)
        with pytest.raises(UnsupportedConnectionError, match=rf"Connection '{conn_id}' \(wasb\): {match}"):
            credentials_for(conn_id)
    # the same account at a host the hook keeps, and login and account_name agreeing, are fine
    same = _connection(monkeypatch, "same_wasb", {"login": ACCOUNT, "password": KEY, "host": azure_endpoint,
                                                  "extra": {"account_name": ACCOUNT}})
    assert credentials_for(same).endpoint_url == azure_endpoint
    bare = _connection(monkeypatch, "bare_wasb", {"login": ACCOUNT, "password": KEY, "host": ACCOUNT})
    assert credentials_for(bare).endpoint_url is None  # (the hook's <login>.blob.core.windows.net, as it means)
