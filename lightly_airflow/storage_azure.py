"""The Azure rules of :mod:`lightly_airflow.storage`: which storage account adlfs (the files) and delta-rs (the
datapool table) read with a connection's credentials or the workers' ``AZURE_*`` environment, and the options that
make both read the same one, or the problem and its fix when they cannot.

adlfs and delta-rs (object_store) each read the environment their own way (adlfs 2026.8 takes
``AZURE_STORAGE_CONNECTION_STRING`` ahead of its options; delta-rs 1.6.6 fills every option left unset from
``AZURE_*`` variables): the rules here are what keeps them on one account, checked on Azurite. Only
:mod:`lightly_airflow.storage` calls them, through :class:`~lightly_airflow.storage.StorageCredentials`; this module
imports nothing heavier than the standard library (the storage module is imported by the UI and the DAG).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from lightly_airflow.storage import StorageCredentials

log = logging.getLogger("lightly_airflow.storage")  # (the storage module's: its messages, as before the split)

#: object_store's Azure switches delta-rs takes from the workers' environment (:func:`_environment_pins`)
_SWITCHES = ("AZURE_SKIP_SIGNATURE", "AZURE_STORAGE_USE_EMULATOR", "AZURE_USE_FABRIC_ENDPOINT")


def filled(creds: StorageCredentials) -> StorageCredentials:
    """``creds`` with account name/key/endpoint/SAS filled from its connection string, if one is given."""
    if not creds.connection_string:
        return creds
    parts = connection_string_parts(creds.connection_string)
    return replace(
        creds,
        account_name=creds.account_name or parts.get("AccountName"),
        account_key=creds.account_key or parts.get("AccountKey"),
        endpoint_url=creds.endpoint_url or parts.get("BlobEndpoint"),
        sas_token=creds.sas_token or parts.get("SharedAccessSignature"),
    )


def connection_string_parts(text: str) -> dict[str, str]:
    """An Azure connection string's ``Key=value`` parts."""
    return dict(p.split("=", 1) for p in text.split(";") if "=" in p)


def uri_account(uri: str) -> str | None:
    """The storage account an Azure URI names (``abfs://container@<account>.dfs.core.windows.net/…``), if any."""
    container, at, host = urlsplit(str(uri)).netloc.rpartition("@")
    return host.split(".", 1)[0] or None if at else None


def account_problem(creds: StorageCredentials, uri: str, shown: str, name: str) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``uri`` (``shown``: as messages show it, secrets masked) names another storage account
    than the one adlfs reads files of with ``creds`` (``name``: whose credentials, "connection 'x' is"): adlfs used
    that account and delta-rs the URI's, so files and table went apart without an error."""
    account = uri_account(uri)
    used = _adlfs_account(creds, name) if account else None
    if account and used and account != used[0]:
        return f"{shown} names the storage account {account!r} but {used[1]} for the account {used[0]!r}.", used[2]
    return None


def environment_problem(creds: StorageCredentials, uri: str, shown: str, name: str) -> tuple[str, str] | None:
    """``(problem, fix)`` when adlfs would read ``uri``'s (``shown``) files from no account or another account than the
    table's: adlfs 2026.8 (``AzureBlobFileSystem.do_connect``) takes the environment's
    ``AZURE_STORAGE_CONNECTION_STRING`` ahead of an account name with a token credential (delta-rs takes the
    account), and with no account at all fails with "Must provide either a connection_string or account_name
    with credentials!!" on the first task, naming neither the URI nor a fix. A URI that is only a protocol
    (``az://``) is not checked for an account."""
    az = filled(creds)
    env = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if env and az.account_name and "connection_string" not in adlfs_options(creds, uri):
        env_account = connection_string_parts(env).get("AccountName") or urlsplit(
            connection_string_parts(env).get("BlobEndpoint", "")).netloc.split(".", 1)[0]
        if env_account != az.account_name:
            return (f"{name} for the account {az.account_name!r} with a token credential, but adlfs (the files) "
                    "takes the environment's AZURE_STORAGE_CONNECTION_STRING (account "
                    f"{env_account or '<none named>'!r}) ahead of it, while delta-rs (the datapool table) takes "
                    "the connection's account.",
                    "unset AZURE_STORAGE_CONNECTION_STRING on the workers, or give the connection an account key "
                    "or SAS token (which adlfs is given ahead of the environment's).")
    container = urlsplit(str(uri)).netloc
    if not container or az.account_name or uri_account(uri) or env or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME"):
        return None
    path = urlsplit(str(uri)).path
    return (f"{shown} names no storage account, and neither a connection nor the environment gives one.",
            f"give it a wasb connection, name the account in the URI (abfs://{container}@<account>.dfs.core."
            f"windows.net{path}), or set AZURE_STORAGE_ACCOUNT_NAME on the workers.")


def _adlfs_account(creds: StorageCredentials, name: str) -> tuple[str, str, str] | None:
    """``(account, whose it is: "<name> is", the fix for a URI naming another)``: the storage account adlfs reads
    files of with these credentials, ``None`` when none is named. A connection's account (its connection string's
    ``AccountName`` counted); with none, adlfs 2026.8 (``AzureBlobFileSystem.__init__``) takes the environment's
    ``AZURE_STORAGE_CONNECTION_STRING`` before its ``AZURE_STORAGE_ACCOUNT_NAME``. delta-rs takes the URI's
    account whatever the environment says, so an ambient URI of another account split files and table."""
    own = filled(creds).account_name
    if own:
        return own, name, "give a connection for that account, or correct the URI."
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    variable = "AZURE_STORAGE_CONNECTION_STRING" if conn else "AZURE_STORAGE_ACCOUNT_NAME"
    account = connection_string_parts(conn).get("AccountName") if conn else os.environ.get(variable)
    if not account:
        return None
    return (account, f"the environment's {variable} (adlfs reads the files with it when no connection names an "
            "account) is", f"correct the URI, set {variable} for that account, or give a wasb connection for it.")


def adlfs_options(creds: StorageCredentials, where: str) -> dict[str, Any]:
    """adlfs' options for ``where`` (a protocol or a URI, whose account is used when nothing else names one).

    A connection's account key, SAS token or anonymous access is given as a connection string: adlfs 2026.8
    takes the environment's ``AZURE_STORAGE_CONNECTION_STRING`` ahead of every other option it is given, so with
    ``account_name`` and ``account_key`` it listed the environment's account while delta-rs wrote the table to
    the connection's (checked on Azurite). A token credential cannot go into one (:func:`environment_problem`)."""
    az = filled(creds)
    if az.connection_string:
        return {"connection_string": az.connection_string}
    endpoint = az.endpoint_url or (f"https://{az.account_name}.blob.core.windows.net" if az.account_name else None)
    if endpoint and az.account_name and az.account_key:
        scheme = "http" if az.allow_http else "https"
        return {
            "connection_string": f"DefaultEndpointsProtocol={scheme};AccountName={az.account_name};"
            f"AccountKey={az.account_key};BlobEndpoint={endpoint};"
        }
    if endpoint and az.sas_token:  # (a SAS at a custom endpoint: the same, with the token; without it adlfs
        # reached <account>.blob.core.windows.net, not the connection's endpoint)
        return {"connection_string": f"BlobEndpoint={endpoint};SharedAccessSignature={az.sas_token.lstrip('?')};"}
    if endpoint and az.anonymous:  # (a public container: no credential at all)
        return {"connection_string": f"BlobEndpoint={endpoint};"}
    opts: dict[str, Any] = {}
    if az.endpoint_url:  # a token credential or anonymous access at a custom endpoint: adlfs' account_host
        host = az.endpoint_url.rstrip("/").removeprefix("https://")
        if host != az.endpoint_url.rstrip("/"):
            opts["account_host"] = host
        else:
            log.warning("Azure endpoint %s: adlfs reaches a custom http endpoint only with an account key, a "
                        "SAS token or anonymously; a token credential goes to the account's public endpoint",
                        az.endpoint_url)
    account = az.account_name or (uri_account(where) if "://" in where else None)
    if account:  # (the URI's, for ambient credentials: the account delta-rs reads the table of)
        opts["account_name"] = account
    if az.azure_credential is not None:
        opts["credential"] = az.azure_credential
    elif az.azure_client_id and az.azure_authority_host:  # (adlfs builds a service principal's credential for the
        # public cloud's authority alone)
        from azure.identity.aio import ClientSecretCredential

        opts["credential"] = ClientSecretCredential(az.azure_tenant_id or "", az.azure_client_id,
                                                    az.azure_client_secret or "", authority=az.azure_authority_host)
    elif az.azure_client_id:  # (a service principal sent to a pod: adlfs builds its credentials)
        opts.update(client_id=az.azure_client_id, client_secret=az.azure_client_secret,
                    tenant_id=az.azure_tenant_id)
    opts.update((k, v) for k, v in (("account_key", az.account_key), ("sas_token", az.sas_token),
                                    ("anon", az.anonymous)) if v)
    return opts


def delta_options(creds: StorageCredentials) -> dict[str, str]:
    """delta-rs ``storage_options`` (object_store's ``AZURE_*`` keys) for ``creds``, with what the workers'
    environment would change undone (:func:`_environment_pins`).

    :raises ValueError: when the environment's account key would override the connection's credentials
        (:func:`_check_environment_key`).
    """
    az = filled(_with_environment_string(creds))
    _check_environment_key(creds, az)
    opts = {key: value for key, value in (("AZURE_STORAGE_ACCOUNT_NAME", az.account_name),
                                          ("AZURE_STORAGE_ACCOUNT_KEY", az.account_key),
                                          ("AZURE_STORAGE_SAS_TOKEN", az.sas_token)) if value}
    if az.azure_client_id and not (az.account_key or az.sas_token):  # a service principal
        opts.update(AZURE_CLIENT_ID=az.azure_client_id, AZURE_CLIENT_SECRET=az.azure_client_secret or "",
                    AZURE_TENANT_ID=az.azure_tenant_id or "")
        if az.azure_authority_host:
            opts["AZURE_AUTHORITY_HOST"] = az.azure_authority_host
    if az.anonymous:  # (a public container: unsigned requests; else object_store asks for a managed identity)
        opts["AZURE_SKIP_SIGNATURE"] = "true"
    if az.endpoint_url and _is_path_style(az.endpoint_url):
        # Azurite: with a custom endpoint, delta-rs (object_store) writes versions 0 and 1 and then fails
        # every later commit with "Invalid table version: 1"; its emulator mode works. Emulator mode
        # takes the blob URL only from the environment, so point it at this endpoint (process-wide).
        # Azurite is told by its path-style URL (http://host:10000/<account>: Azure's own endpoints name the
        # account in the host), not by a loopback host: at a compose service name (http://azurite:10000/...)
        # the third commit failed.
        opts["AZURE_STORAGE_USE_EMULATOR"] = "true"
        parts = urlsplit(az.endpoint_url)
        os.environ["AZURITE_BLOB_STORAGE_URL"] = f"{parts.scheme}://{parts.netloc}"
    elif az.endpoint_url:
        opts["AZURE_STORAGE_ENDPOINT"] = az.endpoint_url
    if az.allow_http:
        opts["AZURE_ALLOW_HTTP"] = "true"
    opts.update(_environment_pins(az, opts))
    return opts


def _with_environment_string(creds: StorageCredentials) -> StorageCredentials:
    """``creds``, or for ambient ones (no account, no connection string) the environment's
    ``AZURE_STORAGE_CONNECTION_STRING``, which adlfs reads for the files and delta-rs 1.6.6 (object_store) does not:
    a table at ``az://c/pool`` failed with "Generic MicrosoftAzure error: Account must be specified" while the
    files of ``az://c/ds`` were read (checked on Azurite). A URI of another account is refused
    (:func:`account_problem`)."""
    env = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if env and not (creds.account_name or creds.connection_string or creds.azure_credential or creds.azure_client_id):
        return replace(creds, connection_string=env)
    return creds


def _check_environment_key(creds: StorageCredentials, az: StorageCredentials) -> None:
    """Refuse a SAS token or service principal when the workers' environment sets an account key: delta-rs 1.6.6
    (object_store) reads ``AZURE_STORAGE_*`` variables too and takes a key ahead of both, so the table's requests
    were signed with the environment's key, and refused ("The operation lacked the necessary privileges",
    checked on Azurite) or made as another identity than the connection's; no option given to it undoes that."""
    if az.account_key or not (az.sas_token or az.azure_client_id):
        return
    keys = [v for v in ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_MASTER_KEY")
            if os.environ.get(v)]
    if keys:
        name = f"Connection {creds.conn_id!r}" if creds.conn_id else "The credentials"
        raise ValueError(f"{name} authenticates with {'a SAS token' if az.sas_token else 'a service principal'}, "
                         f"but the workers' environment sets {', '.join(keys)}, which the datapool table (delta-rs) "
                         f"takes ahead of it. Fix: unset {', '.join(keys)} on the workers, or give the connection "
                         "the account key.")


def _environment_pins(az: StorageCredentials, opts: dict[str, str]) -> dict[str, str]:
    """Options that undo what the workers' ``AZURE_*`` variables would change for a connection's credentials (a key,
    SAS token, service principal or anonymous access; ambient ones are the environment's). delta-rs 1.6.6
    (``AzureConfigHelper``) fills every object_store key the options leave unset from the environment, credentials
    left out once the options hold one (so ``AZURE_STORAGE_TOKEN``, ``AZURE_STORAGE_SAS_KEY``, ``AZURE_CLIENT_*``
    and ``AZURE_FEDERATED_TOKEN_FILE`` changed nothing, checked on Azurite 2026-12-07) but not the others: with
    ``AZURE_SKIP_SIGNATURE=true`` every request of the table went unsigned and was refused, and with
    ``AZURE_STORAGE_ENDPOINT`` a connection without an endpoint read its table there (an Azurite), not at the
    account's endpoint where adlfs reads the files (``AZURE_STORAGE_USE_EMULATOR`` and ``AZURE_USE_FABRIC_ENDPOINT``
    move it likewise). An account key there is refused (:func:`_check_environment_key`): object_store takes it ahead
    of a SAS token or service principal."""
    if not (az.account_key or az.sas_token or az.azure_client_id or az.anonymous):
        return {}
    env = {k for k in (*_SWITCHES, "AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT") if os.environ.get(k)}
    pins = {k: "false" for k in _SWITCHES if k in env and k not in opts}
    if env & {"AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"} and az.account_name and not (
            {"AZURE_STORAGE_ENDPOINT", "AZURE_STORAGE_USE_EMULATOR"} & set(opts)):
        pins["AZURE_STORAGE_ENDPOINT"] = f"https://{az.account_name}.blob.core.windows.net"  # (adlfs' default)
    return pins


def _is_path_style(url: str) -> bool:
    """An endpoint that names the account in its path (Azurite's layout), not in its host as Azure's do."""
    return bool(urlsplit(url).path.strip("/"))

