"""The storage account an Azure URI is read from, with or without a wasb connection, when the environment says
otherwise or says nothing: adlfs (files) and delta-rs (the datapool table) read one account, or the first task fails
at once naming the URI, what is missing and the fix. Real adlfs requests on Azurite where Azurite can show it; a
service principal's token request for delta-rs goes to a local stand-in for Microsoft Entra ID (Azurite checks no
Entra tokens over http)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import emulators  # (scripts/ is on sys.path: tests/conftest.py)
import pytest

from lightly_airflow import storage_azure
from lightly_airflow.datapool import Datapool, DatapoolError
from lightly_airflow.datasource import list_table
from lightly_airflow.hooks.storage import credentials_for
from lightly_airflow.storage import StorageCredentials, filesystem

ENV = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
       "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CLIENT_ID")


@pytest.fixture(autouse=True)
def _no_azure_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ENV:
        monkeypatch.delenv(variable, raising=False)


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "wasb", **conn}))
    return conn_id


def test_no_account_anywhere_fails_at_once_naming_the_uri_and_the_fix() -> None:
    """No connection, no AZURE_STORAGE_* variable and a URI naming no account: adlfs failed with "unable to connect to
    account for Must provide either a connection_string or account_name with credentials!!" (no URI, no fix); now the
    listing and the datapool name the URI and the three ways to give an account, before any request."""
    started = time.monotonic()
    fix = (r"Fix: give it a wasb connection, name the account in the URI \(abfs://cont@<account>\.dfs\.core\.windows"
           r"\.net/ds\), or set AZURE_STORAGE_ACCOUNT_NAME on the workers\.")
    with pytest.raises(ValueError, match=rf"^az://cont/ds names no storage account, and neither a connection nor the "
                                         rf"environment gives one\. {fix}"):
        list_table("az://cont/ds")
    with pytest.raises(DatapoolError, match=r"datapool az://cont/pool names no storage account"):
        Datapool("az://cont/pool")
    assert time.monotonic() - started < 5
    # a URI naming the account gives adlfs that account (the one delta-rs reads), with ambient credentials
    fs, path = filesystem("abfs://cont@named.dfs.core.windows.net/ds")
    assert (fs.account_name, path) == ("named", "cont/ds")


@pytest.mark.emulator
def test_the_environments_connection_string_reaches_the_table_too(azure_container, monkeypatch) -> None:  # noqa: ANN001
    """Workers with only AZURE_STORAGE_CONNECTION_STRING (adlfs' variable) and URIs naming no account: the files were
    read, but delta-rs does not read that variable and the pool failed with "Generic MicrosoftAzure error: Account
    must be specified". Now the table is written to the account and container the files are read from (real writes
    and reads on Azurite)."""
    import deltalake
    import pyarrow as pa

    monkeypatch.setenv(ENV[0], emulators.azure_connection_string(azure_container.credentials.endpoint_url))
    fs, path = filesystem(f"{azure_container.uri}/ds/a.png")
    fs.pipe_file(path, b"png")
    assert list_table(f"{azure_container.uri}/ds").num_rows == 1
    pool = Datapool(f"{azure_container.uri}/pool")
    assert not pool.exists()
    ambient = StorageCredentials().delta_options(f"{azure_container.uri}/pool")
    deltalake.write_deltalake(f"{azure_container.uri}/pool", pa.table({"a": [1]}), storage_options=ambient)
    assert pool.exists() and pool.version() == 0
    assert fs.find(f"{azure_container.name}/pool/_delta_log")  # (where the files are: the same container)


@pytest.mark.emulator
def test_a_connections_account_key_wins_over_the_environments_connection_string(azure_container, monkeypatch) -> None:  # noqa: ANN001
    """A connection of account 'keyacct' (key in the password, Azure's own endpoint) while the workers'
    AZURE_STORAGE_CONNECTION_STRING names Azurite: adlfs took the environment's string ahead of the account name and
    key it was given and reached Azurite (its listing returned Azurite's file), while delta-rs wrote the table to
    'keyacct'. Now adlfs is given the connection as a connection string: its client is the connection's account."""
    fs, path = filesystem(f"{azure_container.uri}/ds/a.png", azure_container.credentials)
    fs.pipe_file(path, b"png")
    monkeypatch.setenv(ENV[0], emulators.azure_connection_string(azure_container.credentials.endpoint_url))
    creds = credentials_for(_connection(monkeypatch, "key_wasb", {"login": "keyacct", "password": emulators.AZURE_KEY}))
    fs, _ = filesystem(f"{azure_container.uri}/ds", creds)
    assert fs.service_client.url == "https://keyacct.blob.core.windows.net/"
    assert creds.delta_options(f"{azure_container.uri}/pool")["AZURE_STORAGE_ACCOUNT_NAME"] == "keyacct"
    # the environment's own string still reaches Azurite when no connection is given (a real listing)
    assert list_table(f"{azure_container.uri}/ds").num_rows == 1


@pytest.mark.emulator
def test_a_token_credential_connection_with_another_environment_account_is_refused(azure_container, monkeypatch) -> None:  # noqa: ANN001
    """A service principal connection for 'spacct' cannot be handed to adlfs as a connection string: adlfs read
    the environment's AZURE_STORAGE_CONNECTION_STRING instead and listed Azurite's devstoreaccount1 (a real listing:
    one file) while delta-rs would write the table to 'spacct'. Now refused, naming both accounts and the fix."""
    fs, path = filesystem(f"{azure_container.uri}/ds/a.png", azure_container.credentials)
    fs.pipe_file(path, b"png")
    monkeypatch.setenv(ENV[0], emulators.azure_connection_string(azure_container.credentials.endpoint_url))
    creds = credentials_for(_connection(monkeypatch, "sp_env_wasb", {
        "login": "app-id", "password": "secret", "host": "https://spacct.blob.core.windows.net",
        "extra": {"tenant_id": "tenant-id"}}))
    refused = (r"connection 'sp_env_wasb' is for the account 'spacct' with a token credential, but adlfs \(the files\) "
               r"takes the environment's AZURE_STORAGE_CONNECTION_STRING \(account 'devstoreaccount1'\) ahead of it.*"
               r"Fix: unset AZURE_STORAGE_CONNECTION_STRING on the workers")
    with pytest.raises(ValueError, match=refused):
        list_table(f"{azure_container.uri}/ds", credentials=creds)
    with pytest.raises(DatapoolError, match=refused):
        Datapool(f"{azure_container.uri}/pool", creds)


class _Authority(http.server.BaseHTTPRequestHandler):
    """A stand-in for Microsoft Entra ID's token endpoint: records each request and refuses it."""

    seen: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.seen.append((self.path, body))
        answer = json.dumps({"error": "invalid_client", "error_description": "test authority"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def authority() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Authority)
    seen: list[tuple[str, str]] = []
    server.RequestHandlerClass = type("Authority", (_Authority,), {"seen": seen})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_service_principal_reaches_delta_rs(authority, monkeypatch) -> None:  # noqa: ANN001
    """A service principal connection (tenant_id, login = client id, password = secret) was refused for the datapool
    ("authenticates with ClientSecretCredential, which the datapool table (delta-rs) cannot use"): delta-rs 1.6.6
    takes the three as options, and asks the tenant's token endpoint with this client id and secret (a local
    stand-in for Entra ID: the authority host is the one option added here). With a client_secret_auth_config key
    delta-rs has no counterpart for, it is still refused, naming the key and the fix."""
    import deltalake

    creds = credentials_for(_connection(monkeypatch, "sp_wasb", {
        "login": "app-id", "password": "the-secret", "host": "https://spacct.blob.core.windows.net",
        "extra": {"tenant_id": "tenant-id"}}))
    options = creds.delta_options("az://cont/pool")
    url, seen = authority
    with pytest.raises(OSError, match="token request"):
        deltalake.DeltaTable("az://cont/pool", storage_options={**options, "AZURE_AUTHORITY_HOST": url,
                                                                "AZURE_ALLOW_HTTP": "true"})
    assert [path for path, _ in seen] == ["/tenant-id/oauth2/v2.0/token"]
    assert "client_id=app-id&client_secret=the-secret&" in seen[0][1]
    assert "the-secret" not in repr(creds)
    assert StorageCredentials.from_dict(creds.to_dict()).delta_options("az") == options  # (sent to a pod: the same)
    configured = credentials_for(_connection(monkeypatch, "sp_config_wasb", {
        "login": "app-id", "password": "the-secret", "host": "https://spacct.blob.core.windows.net",
        "extra": {"tenant_id": "tenant-id", "client_secret_auth_config": {"authority": "login.example",
                                                                          "additionally_allowed_tenants": ["*"]}}}))
    with pytest.raises(ValueError, match=r"ClientSecretCredential and client_secret_auth_config "
                                         r"\['additionally_allowed_tenants'\], which the datapool table \(delta-rs\) "
                                         r"cannot use\. Fix: .*remove \['additionally_allowed_tenants'\] from "
                                         r"client_secret_auth_config \(delta-rs takes its 'authority' alone\)"):
        configured.delta_options("az")


def test_a_service_principals_authority_reaches_delta_rs_and_a_pods_adlfs(monkeypatch) -> None:  # noqa: ANN001
    """client_secret_auth_config {"authority": ...} (ClientSecretCredential's keyword: Azure Government's, China's or
    Azure Stack's Entra ID) was refused for the datapool; delta-rs takes it as its authority host, so the table's token
    request goes where the files' credential asks (here a local listener: azure.identity allows https authorities
    alone, so delta-rs' TLS handshake arriving there is the proof), and a pod's adlfs credential asks it too."""
    import deltalake

    monkeypatch.delenv("AZURE_AUTHORITY_HOST", raising=False)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        creds = credentials_for(_connection(monkeypatch, "gov_wasb", {
            "login": "app-id", "password": "the-secret", "host": "https://govacct.blob.core.usgovcloudapi.net",
            "extra": {"tenant_id": "tenant-id", "client_secret_auth_config": {"authority": host}}}))
        options = creds.delta_options("az://cont/pool")
        assert options["AZURE_AUTHORITY_HOST"] == f"https://{host}" == creds.azure_credential._authority
        listener.settimeout(20)
        asked: list[bytes] = []

        def answer() -> None:  # (then nothing listens: delta-rs' retries are refused at once)
            conn, _ = listener.accept()
            with conn:
                asked.append(conn.recv(5))
            listener.close()

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(OSError):
            deltalake.DeltaTable("az://cont/pool", storage_options=options)
        thread.join(20)
    assert asked and asked[0][:1] == b"\x16"  # (a TLS handshake: the token request, at the connection's authority)
    in_pod = StorageCredentials.from_dict(creds.to_dict())
    assert in_pod.delta_options("az") == options
    # (adlfs itself builds a service principal's credential without an authority: the pod's is built here)
    assert storage_azure.adlfs_options(in_pod, "az")["credential"]._client._authority == f"https://{host}"


@pytest.mark.emulator
def test_an_environment_account_key_does_not_override_a_connections_sas_for_the_table(azure_container, monkeypatch) -> None:  # noqa: ANN001
    """delta-rs reads AZURE_STORAGE_ACCOUNT_KEY from the environment and takes it ahead of the connection's SAS token:
    with a worker's key of another account the table's first request was refused ("The operation lacked the
    necessary privileges"), far from the cause. Now the datapool names the variable and the fix; without it the
    SAS writes the table (real writes on Azurite)."""
    import datetime

    import deltalake
    import pyarrow as pa
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(emulators.AZURE_ACCOUNT, azure_container.name, account_key=emulators.AZURE_KEY,
                                 permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True,
                                                                    add=True, create=True),
                                 expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
    creds = StorageCredentials(account_name=emulators.AZURE_ACCOUNT, sas_token=sas, store="az", conn_id="sas_wasb",
                               endpoint_url=azure_container.credentials.endpoint_url)
    monkeypatch.setenv(ENV[2], "AAAA" + emulators.AZURE_KEY[4:])
    with pytest.raises(ValueError, match=r"^Connection 'sas_wasb' authenticates with a SAS token, but the workers' "
                                         r"environment sets AZURE_STORAGE_ACCOUNT_KEY, which the datapool table "
                                         r"\(delta-rs\) takes ahead of it\. Fix: unset AZURE_STORAGE_ACCOUNT_KEY"):
        deltalake.write_deltalake(f"{azure_container.uri}/pool", pa.table({"a": [1]}),
                                  storage_options=creds.delta_options(f"{azure_container.uri}/pool"))
    monkeypatch.delenv(ENV[2])
    deltalake.write_deltalake(f"{azure_container.uri}/pool", pa.table({"a": [1]}),
                              storage_options=creds.delta_options(f"{azure_container.uri}/pool"))
    assert Datapool(f"{azure_container.uri}/pool", creds).version() == 0


@pytest.mark.emulator
def test_lightly_dir_does_not_fall_back_to_the_environment_it_clashes_with(azure_container, monkeypatch) -> None:  # noqa: ANN001
    """``.lightly/`` on the datasource's store uses the datasource's connection; it falls back to the environment's
    credentials only for a URI on another store. A token-credential connection whose account the environment's
    AZURE_STORAGE_CONNECTION_STRING overrides is refused for it as for the files, not swapped for that very
    environment (which would read another account than the connection names)."""
    from lightly_airflow.hooks.storage import lightly_credentials_for

    monkeypatch.setenv(ENV[0], emulators.azure_connection_string(azure_container.credentials.endpoint_url))
    conn_id = _connection(monkeypatch, "sp_lightly_wasb", {
        "login": "app-id", "password": "secret", "host": "https://spacct.blob.core.windows.net",
        "extra": {"tenant_id": "tenant-id"}})
    creds = lightly_credentials_for(None, conn_id, "az://cont/.lightly")
    assert creds is not None and creds.conn_id == conn_id
    with pytest.raises(ValueError, match="takes the environment's AZURE_STORAGE_CONNECTION_STRING"):
        filesystem("az://cont/.lightly", creds)
    assert lightly_credentials_for(None, conn_id, "s3://bucket/.lightly") is None  # (another store: the environment's)
