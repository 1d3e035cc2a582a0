"""Azure URIs and the storage account the clients use, on Azurite with real requests: adlfs (files) and delta-rs (the
datapool table) must read the same account, with a connection or with the environment's credentials, and a container
name Azure refuses is named with its fix."""

from __future__ import annotations

import emulators  # (scripts/ is on sys.path: tests/conftest.py)
import pytest

from lightly_airflow.datapool import Datapool, DatapoolError
from lightly_airflow.datasource import list_table
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.plugins.query import View
from lightly_airflow.storage import StorageCredentials, filesystem

ACCOUNT = emulators.AZURE_ACCOUNT
ENV = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME")


def _uri(container: str, account: str, path: str = "ds") -> str:
    return f"abfs://{container}@{account}.dfs.core.windows.net/{path}"


@pytest.fixture
def ambient(azure_container, monkeypatch):  # noqa: ANN001, ANN201
    """Azurite reached through the environment alone (``AZURE_STORAGE_CONNECTION_STRING``, which adlfs reads), one
    file written there under ``ds/`` through those ambient credentials."""
    for variable in ENV:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(ENV[0], emulators.azure_connection_string(azure_container.credentials.endpoint_url))
    fs, path = filesystem(f"{azure_container.uri}/ds/a.png")
    fs.pipe_file(path, b"png")
    return azure_container


@pytest.mark.emulator
def test_an_ambient_uri_of_another_account_is_refused(ambient) -> None:  # noqa: ANN001
    """No connection: adlfs reads the environment's account (Azurite's) whatever account the URI names, and delta-rs
    the URI's. The listing of ``abfs://c@otheracct…/ds`` returned Azurite's file (and a pool there would have been
    written to ``otheracct``): now refused, naming both accounts and the variable. The URI of the environment's
    account still lists (a real request)."""
    assert list_table(_uri(ambient.name, ACCOUNT)).num_rows == 1
    other = _uri(ambient.name, "otheracct")
    with pytest.raises(ValueError, match=r"'otheracct' but the environment's AZURE_STORAGE_CONNECTION_STRING .* "
                                         r"'devstoreaccount1'\. Fix: correct the URI, set AZURE_STORAGE_CONNECTION"):
        list_table(other)
    with pytest.raises(DatapoolError, match="names the storage account 'otheracct'"):
        Datapool(f"{other}/pool")


def test_the_environments_account_name_is_compared(monkeypatch) -> None:
    """Without a connection string adlfs takes ``AZURE_STORAGE_ACCOUNT_NAME``: a URI of another account is refused
    before any request; the same account, or a URI naming none, passes."""
    monkeypatch.delenv(ENV[0], raising=False)
    monkeypatch.setenv(ENV[1], "mine")
    ambient = StorageCredentials()
    problem = ambient.store_problem(_uri("c", "theirs"))
    assert problem and "'theirs' but the environment's AZURE_STORAGE_ACCOUNT_NAME" in problem[0]
    assert "set AZURE_STORAGE_ACCOUNT_NAME" in problem[1]
    assert ambient.store_problem(_uri("c", "mine")) is None and ambient.store_problem("az://c/ds") is None
    monkeypatch.delenv(ENV[1])
    assert ambient.store_problem(_uri("c", "theirs")) is None  # (no account anywhere: nothing to split from)


@pytest.mark.emulator
def test_a_connection_strings_account_is_compared(azure_container, monkeypatch) -> None:  # noqa: ANN001
    """A connection given as a connection string names its account only there: the URI of another account was listed
    from Azurite's account (a real request); now refused, naming the connection."""
    for variable in ENV:
        monkeypatch.delenv(variable, raising=False)
    fs, path = filesystem(f"{azure_container.uri}/ds/a.png", azure_container.credentials)
    fs.pipe_file(path, b"png")
    creds = StorageCredentials(connection_string=emulators.azure_connection_string(
        azure_container.credentials.endpoint_url), conn_id="azurite_string", store="az")
    assert list_table(_uri(azure_container.name, ACCOUNT), credentials=creds).num_rows == 1
    with pytest.raises(ValueError, match="'otheracct' but connection 'azurite_string' is for the account"):
        list_table(_uri(azure_container.name, "otheracct"), credentials=creds)


@pytest.mark.emulator
def test_the_ui_refuses_a_pool_of_another_account(azure_container) -> None:  # noqa: ANN001
    """The UI opened a pool with delta-rs' options for the protocol alone: a pool URI of another account failed with
    delta-rs' "Generic MicrosoftAzure error"; now the one check refuses it with the fix. The connection's own account
    still reaches delta-rs (no table there yet: a real request)."""
    creds = azure_container.credentials
    with pytest.raises(ValueError, match="names the storage account 'otheracct' but the credentials are for the "
                                         "account 'devstoreaccount1'. Fix: give a connection"):
        View(PoolSpec("p", _uri(azure_container.name, "otheracct", "pool")), credentials=creds)
    with pytest.raises(LookupError, match="has no versions yet"):
        View(PoolSpec("p", _uri(azure_container.name, ACCOUNT, "pool")), credentials=creds)


@pytest.mark.emulator
@pytest.mark.parametrize(("container", "code", "like"), [("Bad_Name", "InvalidResourceName", " (e.g. 'bad-name')"),
                                                        ("ab", "OutOfRangeInput", "")])
def test_a_container_name_azure_refuses_is_named(azure_container, container: str, code: str, like: str) -> None:  # noqa: ANN001
    """Azure refused the name (a character, its length) with its whole XML error, passed through the listing raw: now
    the URI, the container, Azure's code, its rules and a name that keeps them."""
    uri = f"az://{container}/ds"
    with pytest.raises(ValueError) as caught:
        list_table(uri, credentials=azure_container.credentials)
    assert str(caught.value) == (
        f"{uri} cannot be listed: {container!r} is not a valid Azure container name (Azure's {code}). Fix: name a "
        "container of 3 to 63 lowercase letters, digits and hyphens that begins and ends with a letter or digit, with "
        f"no two hyphens in a row{like}, in the datasource URI.")
    assert "<?xml" not in str(caught.value)
