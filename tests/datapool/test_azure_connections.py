"""Azure (wasb) connections, in the shapes users write them, reach both Azure clients on Azurite: adlfs (files)
and delta-rs (the datapool table), with real writes and reads: an account key and a SAS token on ``az://`` and
``abfs://``, Azurite at a host name, and a public container read anonymously. (The shapes refused at once are in
tests/hooks/test_azure_connection_shapes.py.)"""

from __future__ import annotations

import base64
import json
import socket
from datetime import UTC, datetime, timedelta

import emulators  # (scripts/ is on sys.path: tests/conftest.py)
import pytest
from deltalake.exceptions import DeltaError

from lightly_airflow.datapool import Datapool, DatapoolUnreachableError
from lightly_airflow.hooks.storage import UnsupportedConnectionError, credentials_for
from lightly_airflow.storage import StorageCredentials, filesystem

from .conftest import commit_run, run_rows

ACCOUNT, KEY = emulators.AZURE_ACCOUNT, emulators.AZURE_KEY


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "wasb", **conn}))
    return conn_id


def _sas(container: str, **permissions: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(ACCOUNT, container, account_key=KEY, permission=ContainerSasPermissions(**permissions),
                                  expiry=datetime.now(UTC) + timedelta(hours=1))


def _commit_three_and_read(pool: Datapool, digits) -> None:  # noqa: ANN001
    """Three runs committed (delta-rs' third commit is the one a wrong Azurite mode failed) and read back."""
    for i in range(3):
        commit_run(pool, run_rows(digits, range(10 * i, 10 * i + 10), picks=[1]), f"manual__{i}")
    assert pool.version() == 3 and pool.read().num_rows == 30


def _file_roundtrip(uri: str, creds: StorageCredentials) -> None:
    fs, path = filesystem(f"{uri}/probe.txt", creds)
    fs.pipe_file(path, b"azure")
    assert fs.cat_file(path) == b"azure"


@pytest.mark.parametrize("scheme", ["az", "abfs"])
@pytest.mark.parametrize("shape", ["key", "sas"])
def test_key_and_sas_connections_reach_files_and_the_datapool(azure_container, monkeypatch, digits, shape: str,
                                                             scheme: str) -> None:
    """An account key (login, password, host) and a SAS token (``sas_token`` extra, host) at Azurite's endpoint:
    files through adlfs and three datapool commits through delta-rs, on ``az://`` and ``abfs://``. A read-only SAS
    then refuses the commit and a wrong key the read: delta-rs signs with the connection's token or key, not with
    Azurite's built-in key (which its emulator mode falls back to when it is given no credential)."""
    endpoint, container = azure_container.credentials.endpoint_url, azure_container.name
    conn = {"login": ACCOUNT, "host": endpoint}
    conn |= {"password": KEY} if shape == "key" else {"extra": {"sas_token": _sas(container, read=True, write=True,
                                                                                   delete=True, list=True, add=True,
                                                                                   create=True)}}
    creds = credentials_for(_connection(monkeypatch, f"azurite_{shape}", conn))
    assert (creds.account_name, creds.endpoint_url, creds.store) == (ACCOUNT, endpoint, "az")
    assert (creds.account_key, creds.sas_token is not None) == ((KEY, False) if shape == "key" else (None, True))
    uri = f"{scheme}://{container}/{shape}"
    _file_roundtrip(uri, creds)
    _commit_three_and_read(Datapool(f"{uri}/pool", creds), digits)

    reader = credentials_for(_connection(monkeypatch, "azurite_ro", {
        "login": ACCOUNT, "host": endpoint, "extra": {"sas_token": _sas(container, read=True, list=True)}}))
    assert Datapool(f"{uri}/pool", reader).read().num_rows == 30
    with pytest.raises((OSError, DeltaError), match="AuthorizationPermissionMismatch"):
        commit_run(Datapool(f"{uri}/pool", reader), run_rows(digits, range(40, 45), picks=[0]), "manual__ro")
    # (and a wrong key is refused: Azurite's built-in key is the right one, so only a wrong one shows that delta-rs
    # signs with the connection's key)
    wrong = credentials_for(_connection(monkeypatch, "azurite_wrong", {
        "login": ACCOUNT, "host": endpoint, "password": base64.b64encode(b"not the key" * 6).decode()}))
    with pytest.raises(DatapoolUnreachableError, match="rejected the credentials"):
        Datapool(f"{uri}/pool", wrong).read()


def _loopback_host_name() -> str:
    """A host name (not spelled as a loopback address) that resolves to 127.0.0.1, as a compose service
    ``azurite`` resolves to the emulator's container."""
    name = socket.gethostname()
    try:
        if name not in ("localhost", "") and socket.gethostbyname(name) == "127.0.0.1":
            return name
    except OSError:
        pass
    pytest.skip(f"this machine's host name {name!r} does not resolve to 127.0.0.1")


def test_azurite_at_a_host_name_takes_every_commit(azure_container, monkeypatch, digits) -> None:
    """Azurite at a host name (a compose service ``http://azurite:10000/devstoreaccount1``) in a connection
    string: delta-rs wrote versions 0 and 1 and failed every later commit with "Invalid table version: 1", as
    only loopback addresses put it in its emulator mode; Azurite's path-style endpoint does now."""
    endpoint = azure_container.credentials.endpoint_url.replace("127.0.0.1", _loopback_host_name())
    creds = credentials_for(_connection(monkeypatch, "azurite_named", {
        "extra": {"connection_string": emulators.azure_connection_string(endpoint)}}))
    assert creds.endpoint_url == endpoint
    uri = f"az://{azure_container.name}/named"
    _file_roundtrip(uri, creds)
    _commit_three_and_read(Datapool(f"{uri}/pool", creds), digits)


def test_a_public_container_is_read_anonymously(azure_container, monkeypatch, digits) -> None:
    """``anon: true`` (adlfs' extra, which ``WasbHook`` ignored: it went to ``DefaultAzureCredential``) reads a
    public container without credentials, through adlfs and delta-rs; writes are refused by the store."""
    from azure.storage.blob import BlobServiceClient

    endpoint, container = azure_container.credentials.endpoint_url, azure_container.name
    BlobServiceClient.from_connection_string(emulators.azure_connection_string(endpoint)).get_container_client(
        container).set_container_access_policy(signed_identifiers={}, public_access="container")
    owner = azure_container.credentials
    filesystem(f"az://{container}/pub/a.txt", owner)[0].pipe_file(f"{container}/pub/a.txt", b"public")
    commit_run(Datapool(f"az://{container}/pub/pool", owner), run_rows(digits, range(5), picks=[0]), "manual__0")

    anon = credentials_for(_connection(monkeypatch, "azurite_public", {
        "login": ACCOUNT, "host": endpoint, "extra": {"anon": True}}))
    assert anon.anonymous and anon.azure_credential is None and anon.account_key is None
    fs, path = filesystem(f"az://{container}/pub/a.txt", anon)
    assert fs.cat_file(path) == b"public"
    assert Datapool(f"az://{container}/pub/pool", anon).read().num_rows == 5
    with pytest.raises((OSError, DeltaError), match="privileges|AuthorizationFailure|NoAuthenticationInformation"):
        commit_run(Datapool(f"az://{container}/pub/pool", anon), run_rows(digits, range(5, 8), picks=[0]), "manual__1")
    with pytest.raises(UnsupportedConnectionError, match=r"'azurite_anon_key' \(wasb\): extra 'anon'.*password"):
        credentials_for(_connection(monkeypatch, "azurite_anon_key", {
            "login": ACCOUNT, "password": KEY, "host": endpoint, "extra": {"anon": True}}))


def test_an_abfs_uri_that_names_its_account(azure_container, monkeypatch, digits) -> None:
    """``abfs://container@<account>.dfs.core.windows.net/…`` (as Databricks and Synapse write it) works for files
    and the table. An account other than the connection's is an error naming both: adlfs wrote the files to the
    connection's account while delta-rs went to the URI's ("Generic MicrosoftAzure error")."""
    endpoint, container = azure_container.credentials.endpoint_url, azure_container.name
    creds = credentials_for(_connection(monkeypatch, "azurite_acct", {"login": ACCOUNT, "password": KEY,
                                                                      "host": endpoint}))
    uri = f"abfs://{container}@{ACCOUNT}.dfs.core.windows.net/full"
    _file_roundtrip(uri, creds)
    _commit_three_and_read(Datapool(f"{uri}/pool", creds), digits)
    other = f"abfss://{container}@otheraccount.dfs.core.windows.net/full/probe.txt"
    with pytest.raises(ValueError, match="names the storage account 'otheraccount' but connection 'azurite_acct' is "
                                         "for the account 'devstoreaccount1'.*Fix: give a connection for that account"):
        filesystem(other, creds)


def test_a_datapool_on_another_account_is_refused_when_opened(azure_container, monkeypatch) -> None:
    """The table too: ``Datapool`` on an ``abfss://…@otheraccount…`` URI with a connection for another account says
    so when opened (delta-rs answered its first read with "Generic MicrosoftAzure error")."""
    from lightly_airflow.datapool import DatapoolError

    creds = credentials_for(_connection(monkeypatch, "azurite_acct", {"login": ACCOUNT, "password": KEY,
                                                                      "host": azure_container.credentials.endpoint_url}))
    with pytest.raises(DatapoolError, match="datapool abfss://.*names the storage account 'otheraccount'.*Fix: give a "
                                            "connection for that account"):
        Datapool(f"abfss://{azure_container.name}@otheraccount.dfs.core.windows.net/pool", creds)
