"""Airflow connections -> :class:`~lightly_airflow.storage.StorageCredentials`, through the providers' hooks.

Every task, sensor, trigger and the UI plugin resolve a connection id here, at run time (never at DAG parse
time), so rotated keys are picked up and nothing secret is serialised. The credentials are built by the
providers' own hooks, as the providers' ``fs`` modules do (``airflow.providers.amazon.aws.fs.s3.get_fs``):

- ``aws``: ``S3Hook(aws_conn_id).get_credentials()`` — keys, session tokens, ``profile_name``, ``role_arn``
  with every ``assume_role_method`` (assume-role, SAML, web identity) and ``session_kwargs`` are resolved by
  the hook's session, so a role is really assumed; the S3 endpoint comes from ``endpoint_url`` or
  ``service_config.s3.endpoint_url`` and the region from the connection or the session.
- ``google_cloud_platform``: ``GCSHook(gcp_conn_id).get_credentials_and_project_id()`` — ``key_path``,
  ``keyfile_dict``, ``key_secret_name``, ``credential_config_file``, ``impersonation_chain`` or Application
  Default Credentials; gcsfs receives the hook's credentials object, delta-rs the service-account key.
- ``wasb``: ``WasbHook(wasb_conn_id).get_conn()`` — connection string, account key (``password``,
  ``shared_access_key``, ``account_key``), SAS token, service principal (``tenant_id``) or
  ``DefaultAzureCredential``, and ``anon`` (ours, adlfs' name) for a public container; adlfs and delta-rs
  receive what the hook's client authenticates with. Extras the hook fails on (``account_url``) or ignores
  (adlfs' ``account_name``, ``account_host``, …) and a host it replaces (a name without a dot) are refused.

An option we cannot honour is an error naming the connection, the option and the fix — never a silent fall
back to ambient credentials (the wrong account, or AccessDenied far from the cause).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from lightly_airflow.datasource.query import NewFilesQuery, QueryCredentials
from lightly_airflow.storage import StorageCredentials, masked_uri

log = logging.getLogger(__name__)

#: Connection types we can turn into storage credentials, by the provider hook that resolves them.
SUPPORTED_CONN_TYPES = ("aws", "google_cloud_platform", "wasb")

#: ``aws`` extras the hook's session resolves (credentials, role assumption, region, endpoint).
AWS_EXTRAS = frozenset({
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name", "profile_name",
    "role_arn", "assume_role_method", "assume_role_kwargs", "assume_role_with_saml",
    "assume_role_with_web_identity_federation", "assume_role_with_web_identity_federation_audience",
    "assume_role_with_web_identity_token_file", "session_kwargs", "endpoint_url", "service_config",
    "config_kwargs", "verify", "aws_account_id", "aws_iam_role",
    "requester_pays",  # (ours: a Requester Pays bucket; S3Hook ignores it)
})
#: ``config_kwargs`` (botocore ``Config``) entries that change nothing our S3 and Delta clients need.
AWS_HARMLESS_CONFIG = frozenset({"retries", "connect_timeout", "read_timeout", "max_pool_connections", "region_name"})
#: ``google_cloud_platform`` extras (with or without the ``extra__google_cloud_platform__`` prefix).
GCP_EXTRAS = frozenset({
    "key_path", "keyfile_dict", "key_secret_name", "key_secret_project_id", "credential_config_file",
    "impersonation_chain", "project", "scope", "num_retries", "is_anonymous", "quota_project_id",
    "endpoint_url", "requester_pays",
})


class UnsupportedConnectionError(ValueError):
    """A connection (or one of its options) that cannot be used to reach a store; names the fix."""


def credentials_for(conn_id: str | None) -> StorageCredentials | None:
    """Credentials of an Airflow connection (aws, google_cloud_platform, wasb); ``None`` for ambient ones.

    :param conn_id: the Airflow connection id, or ``None``/empty for the environment's credentials; a
        template that rendered nothing (``""``, ``"None"``) is unset too, as in :class:`NewFilesQuery`.
    :raises UnsupportedConnectionError: for an undefined connection, another connection type or an option
        we cannot honour.
    """
    conn_id = None if conn_id is None else str(conn_id).strip()
    if not conn_id or conn_id == "None":
        return None
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        env = f"AIRFLOW_CONN_{conn_id.upper()}"  # the name Airflow's environment-variable backend looks up
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r} is not defined. Fix: create it (Admin > Connections, or the environment "
            f"variable {env}='{{\"conn_type\": \"aws\", ...}}'), or leave the connection empty for ambient "
            "credentials."
        ) from None
    conn_type = conn.conn_type or ""
    if conn_type == "aws":
        return replace(aws_credentials(conn_id, conn.extra_dejson), store="s3", conn_id=conn_id)
    if conn_type in ("google_cloud_platform", "gcpssh", "gcp"):
        return replace(gcp_credentials(conn_id, conn.extra_dejson), store="gs", conn_id=conn_id)
    if conn_type == "wasb":
        return replace(wasb_credentials(conn_id, conn), store="az", conn_id=conn_id)
    raise UnsupportedConnectionError(
        f"Connection {conn_id!r} has type {conn_type!r}, which cannot be used for storage: use an 'aws', "
        "'google_cloud_platform' or 'wasb' connection."
    )


#: how a connection id becomes credentials: :func:`credentials_for`, or an operator's per-try cache of it
#: (:class:`~lightly_airflow.operators.base.ConnectionCredentials`)
Resolve = Callable[[str | None], StorageCredentials | None]


def lightly_credentials_for(lightly_conn_id: str | None, datasource_conn_id: str | None, lightly_uri: str | None,
                            datasource: StorageCredentials | None = None, *,
                            resolve: Resolve = credentials_for) -> StorageCredentials | None:
    """The ``.lightly/`` store's credentials: its own connection, else the datasource's (``datasource``, when
    already resolved) unless ``lightly_uri`` is on another store, which then uses the environment's credentials
    (logged by :func:`fallback_credentials`; give ``lightly_conn_id`` to choose one). ``resolve``: how a
    connection id is resolved (an operator's cache: each connection once per task try)."""
    if lightly_conn_id and str(lightly_conn_id).strip() not in ("", "None"):
        return resolve(lightly_conn_id)
    return fallback_credentials(datasource_conn_id, lightly_uri, datasource, own="lightly_conn_id", resolve=resolve)


def fallback_credentials(conn_id: str | None, uri: str | None, resolved: StorageCredentials | None = None, *,
                         own: str, resolve: Resolve = credentials_for) -> StorageCredentials | None:
    """The credentials of a connection used by default for ``uri`` (the datasource's for ``.lightly/``, the
    pool's for the UI's images): ``None`` (the environment's, logged) when ``uri`` is on another store, which
    that connection cannot reach. ``own`` names the parameter that gives ``uri`` a connection of its own."""
    fallback = resolved if resolved is not None else resolve(conn_id)
    if fallback is not None and uri and fallback.store_problem(uri, environment=False):
        log.info("%s is not on the store of connection %r: it uses the environment's credentials (set %s to use "
                 "a connection)", masked_uri(uri), fallback.conn_id, own)
        return None
    return fallback


def query_credentials(query: NewFilesQuery, resolve: Resolve = credentials_for) -> QueryCredentials:
    """The credentials of the stores a :class:`NewFilesQuery` reads, from its connection ids (resolved now, or by
    ``resolve``: an operator's per-try cache)."""
    datasource = resolve(query.datasource_conn_id)
    lightly = lightly_credentials_for(query.lightly_conn_id, query.datasource_conn_id, query.lightly_uri, datasource,
                                      resolve=resolve)
    return QueryCredentials(datasource=datasource, datapool=resolve(query.datapool_conn_id), lightly=lightly)


# ----------------------------------------------------------------------------------------------------- aws
def _check_aws_extras(conn_id: str, extra: Mapping[str, Any]) -> bool:
    """Refuse options we cannot pass on; returns whether requests are to be unsigned (anonymous)."""
    unknown = sorted(set(extra) - AWS_EXTRAS)
    if unknown:
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: extra option(s) {unknown} are not supported for storage access (supported: "
            f"{sorted(AWS_EXTRAS)}). Remove them or use a connection made for S3."
        )
    verify = extra.get("verify")
    if verify not in (None, True, "true", "True"):
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: verify={verify!r} cannot be honoured by the S3 and Delta clients. Fix: remove "
            "'verify' (install the CA certificate in the system trust store instead)."
        )
    config = dict(extra.get("config_kwargs") or {})
    unsigned = config.pop("signature_version", None) in ("unsigned", "UNSIGNED")
    s3 = dict((extra.get("service_config") or {}).get("s3") or {})
    addressing = (config.get("s3") or {}).get("addressing_style")
    if addressing in ("path", "auto", None):
        config.pop("s3", None)
    rest = sorted(set(config) - AWS_HARMLESS_CONFIG)
    if rest:
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: config_kwargs {rest} cannot be passed to the S3 and Delta clients. Fix: remove "
            "them from the connection's extra."
        )
    s3_rest = sorted(set(s3) - {"endpoint_url"})
    if s3_rest:
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: service_config.s3 {s3_rest} cannot be honoured (only endpoint_url is). Fix: "
            "remove them from the connection's extra."
        )
    return unsigned


def aws_credentials(conn_id: str, extra: Mapping[str, Any]) -> StorageCredentials:
    """``S3Hook``'s session credentials (after role assumption, profiles, …), region and S3 endpoint."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    unsigned = _check_aws_extras(conn_id, extra)
    pays = _requester_pays(conn_id, extra.get("requester_pays", False))
    if pays and unsigned:
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: requester_pays needs signed requests (the bucket owner bills your account), "
            "but config_kwargs.signature_version is unsigned. Fix: give the connection credentials.")
    hook = S3Hook(aws_conn_id=conn_id)
    config = hook.conn_config
    endpoint = config.get_service_endpoint_url(service_name="s3")
    session = hook.get_session()
    region = config.region_name or session.region_name
    if unsigned:
        return StorageCredentials(anonymous=True, endpoint_url=endpoint, region=region)
    if pays:
        log.info("Connection %r: requests to S3 say the requester pays (requester_pays)", conn_id)
    found = session.get_credentials()  # resolves keys, profile, role assumption (an STS call) as the hook does
    if found is None:
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r} resolves to no AWS credentials (no keys, profile, role or ambient credentials). "
            "Fix: give keys or a role_arn, or set config_kwargs.signature_version='unsigned' for a public bucket."
        )
    frozen = found.get_frozen_credentials()  # one consistent snapshot of refreshable credentials
    _mask(frozen.secret_key, frozen.token)
    if config.role_arn:
        log.info("Connection %r: assumed role %s (%s)", conn_id, config.role_arn, config.assume_role_method or "assume_role")
    return StorageCredentials(
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        session_token=frozen.token or None,
        region=region,
        endpoint_url=endpoint,
        requester_pays=pays,
    )


def _requester_pays(conn_id: str, value: Any) -> bool:
    """Our own connection extra ``requester_pays`` (a Requester Pays bucket), strictly a boolean."""
    if value not in (True, False, None, "true", "false", "True", "False"):
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: requester_pays={value!r} is not a boolean. Fix: set it to true or false.")
    return value in (True, "true", "True")


def _mask(*secrets: str | None) -> None:
    """Keep secrets out of task logs, as ``S3Hook.get_credentials`` does."""
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


# ----------------------------------------------------------------------------------------------------- gcp
def gcp_credentials(conn_id: str, extra: Mapping[str, Any]) -> StorageCredentials:
    """``GCSHook``'s credentials object and project; the service-account key for delta-rs when there is one."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    prefix = "extra__google_cloud_platform__"
    names = {k.removeprefix(prefix) for k in extra}
    unknown = sorted(names - GCP_EXTRAS)
    if unknown:
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: extra option(s) {unknown} are not supported for storage access (supported: "
            f"{sorted(GCP_EXTRAS)})."
        )

    def pick(name: str) -> Any:
        return extra.get(name) or extra.get(f"{prefix}{name}")

    endpoint = pick("endpoint_url")
    pays = _requester_pays(conn_id, pick("requester_pays"))
    if pick("is_anonymous"):
        if pays:
            raise UnsupportedConnectionError(
                f"Connection {conn_id!r}: requester_pays bills a project, which anonymous requests cannot. Fix: give "
                "the connection credentials and a project.")
        return StorageCredentials(anonymous=True, project=pick("project"), endpoint_url=endpoint)
    hook = GCSHook(gcp_conn_id=conn_id)
    credentials, project = hook.get_credentials_and_project_id()
    if pays and not (project or pick("project")):
        raise UnsupportedConnectionError(
            f"Connection {conn_id!r}: requester_pays bills a project, and the connection resolves to none. Fix: set "
            "the connection's project.")
    key_path, keyfile = pick("key_path"), pick("keyfile_dict")
    token: str | None = None
    if keyfile:
        token = keyfile if isinstance(keyfile, str) else json.dumps(keyfile)
    elif key_path:
        token = str(key_path)
    kind = type(credentials).__module__ + "." + type(credentials).__name__
    delta_problem = None
    impersonated = bool(pick("impersonation_chain"))
    if (token is None or impersonated) and not _is_default_credentials(extra, prefix):
        delta_problem = (
            f"Connection {conn_id!r} authenticates with {kind} ({_gcp_method(pick)}), which the datapool table "
            "(delta-rs) cannot use. Fix: give the datapool's connection a service-account key (key_path or "
            "keyfile_dict), or no connection for ambient credentials."
        )
    if impersonated:
        token = None  # the key is the impersonator's, not the identity the connection asks for
    ambient = token is None and delta_problem is None
    return StorageCredentials(
        project=project or pick("project"),
        token=token,
        google_credentials=None if ambient else credentials,
        endpoint_url=endpoint,
        delta_problem=delta_problem,
        requester_pays=pays,
    )


def _is_default_credentials(extra: Mapping[str, Any], prefix: str) -> bool:
    """No key, secret, config file or impersonation: the hook uses Application Default Credentials."""
    keys = ("key_path", "keyfile_dict", "key_secret_name", "credential_config_file", "impersonation_chain")
    return not any(extra.get(k) or extra.get(f"{prefix}{k}") for k in keys)


def _gcp_method(pick: Any) -> str:
    for name in ("impersonation_chain", "credential_config_file", "key_secret_name"):
        if pick(name):
            return name
    return "application default credentials"


# ---------------------------------------------------------------------------------------------------- wasb
def _wasb_extras_problem(conn: Any, extra: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(problem, fix)`` for an extra the way users write it (adlfs' and ``BlobServiceClient``'s names, which the
    provider's ``abfs://`` file system reads) that ``WasbHook`` fails on, or ignores and then reaches another
    account, endpoint or identity than the connection names; ``None`` when there is none. Every wasb task with
    the connection would do the same, so it is refused here, before any store is touched."""
    get = _wasb_getter(extra)
    clashes = {"account_url": "put the account URL in the connection's host (Account URL)",
               "credential": "give the key as the password, or a sas_token or connection_string extra"}
    for name, fix in clashes.items():
        if extra.get(name):
            return (f"extra {name!r} is passed by WasbHook to BlobServiceClient next to its own {name} (from the "
                    "connection's host and login, password or token extras): TypeError 'got multiple values'",
                    f"{fix}, and remove the {name!r} extra")
    sas = get("sas_token")
    if isinstance(sas, str) and sas.startswith("http://"):
        url = urlsplit(sas)
        return ("extra 'sas_token' is an http:// URL, which WasbHook takes for a bare token (it reads a SAS URL only "
                f"when it starts with https://) and sends to https://{conn.login or '<login>'}.blob.core.windows.net/",
                f"set the connection's host to {url.scheme}://{url.netloc}{url.path} and sas_token to the token alone "
                "(the part after '?')")
    ignored = {
        **clashes,  # (as extra__wasb__account_url: not read)
        "account_name": "set the connection's login to the account name",
        "account_host": "set the connection's host to the account URL (https://<account_host>)",
        "client_id": "for a service principal set tenant_id, the login to the client id and the password to the "
                     "client secret",
        "client_secret": "for a service principal set tenant_id, the login to the client id and the password to the "
                         "client secret",
        "workload_identity_client_id": "set AZURE_CLIENT_ID on the workers (workload identity reads it), or "
                                       "managed_identity_client_id with workload_identity_tenant_id",
    }
    for name, fix in ignored.items():
        value = get(name)
        if value and not (name == "account_name" and value == conn.login):
            return (f"extra {name!r} is not read by WasbHook: the connection would reach another account, endpoint or "
                    "identity than it names", f"{fix}, and remove the {name!r} extra")
    if get("managed_identity_client_id") and not get("workload_identity_tenant_id"):
        return ("extra 'managed_identity_client_id' is used by WasbHook only together with 'workload_identity_tenant_id' "
                "(alone it is ignored, and the default identity is used)",
                "add workload_identity_tenant_id, or remove managed_identity_client_id")
    return _wasb_anon_problem(conn, get)


def _wasb_getter(extra: Mapping[str, Any]) -> Any:
    """An extra's value as ``WasbHook`` reads it: bare, else with the ``extra__wasb__`` prefix."""
    return lambda name: extra.get(name) or extra.get(f"extra__wasb__{name}")


def _wasb_anon_problem(conn: Any, get: Any) -> tuple[str, str] | None:
    """``anon`` (ours, adlfs' name) must be a boolean, and cannot go with a key or token (which it would drop)."""
    anon = get("anon")
    if anon in (None, False, "false", "False"):
        return None
    if anon not in (True, "true", "True"):
        return f"extra 'anon'={anon!r} is not a boolean", "set it to true (a public container) or false"
    given = [n for n in ("connection_string", "shared_access_key", "sas_token", "account_key", "tenant_id") if get(n)]
    if conn.password or given:
        return (f"extra 'anon' (anonymous requests to a public container) goes with {given or ['a password']}, which "
                "it would leave unused", "remove 'anon', or the key or token")
    return None


def _wasb_host_problem(conn: Any, client_url: str) -> tuple[str, str] | None:
    """``(problem, fix)`` when the connection's host is a URL that ``WasbHook`` replaced: it takes a host name
    without a dot (``localhost``, a compose service ``azurite``) for an Active Directory id and goes to
    ``https://<login>.blob.core.windows.net/`` instead — the public cloud, silently (an Azurite connection on
    ``http://localhost:10000/devstoreaccount1`` sent the emulator's key there)."""
    host = str(conn.host or "")
    given = urlsplit(host if "://" in host else f"https://{host}")
    if not (given.port or given.path.strip("/") or "://" in host) or given.netloc == urlsplit(client_url).netloc:
        return None  # (a bare name is what the hook means to replace: an Active Directory id or the account)
    return (f"its host {masked_uri(host)} is not used by WasbHook (a host name without a dot is taken for an Active "
            f"Directory id): it would reach {urlsplit(client_url).scheme}://{urlsplit(client_url).netloc}/ instead",
            "give the endpoint in a connection_string extra (e.g. 'DefaultEndpointsProtocol=http;AccountName=<login>;"
            f"AccountKey=<key>;BlobEndpoint={given.scheme}://{given.netloc}{given.path};', or with "
            "'SharedAccessSignature=<token>' for a SAS), or a host name with a dot (127.0.0.1 for localhost)")


def wasb_credentials(conn_id: str, conn: Any) -> StorageCredentials:
    """What ``WasbHook``'s client authenticates with: account key, SAS, a token credential, or nothing for a
    public container (the ``anon`` extra: ``WasbHook(public_read=True)``).

    :raises UnsupportedConnectionError: for an extra or a host that the hook fails on or does not use
        (:func:`_wasb_extras_problem`, :func:`_wasb_host_problem`).
    """
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    get = _wasb_getter(conn.extra_dejson or {})
    problem = _wasb_extras_problem(conn, conn.extra_dejson or {})
    if problem is None:
        # (``anon`` also reaches BlobServiceClient(**extra), which ignores it: only the client's URL and credential
        # are used)
        client = WasbHook(wasb_conn_id=conn_id, public_read=get("anon") in (True, "true", "True")).get_conn()
        problem = None if get("connection_string") else _wasb_host_problem(conn, client.url)
    if problem is not None:
        raise UnsupportedConnectionError(f"Connection {conn_id!r} (wasb): {problem[0]}. Fix: {problem[1]}.")
    return _client_credentials(conn_id, client, conn)


def _client_credentials(conn_id: str, client: Any, conn: Any) -> StorageCredentials:
    """The account, endpoint and credential of a ``BlobServiceClient`` made by ``WasbHook`` from ``conn``."""
    from azure.core.credentials import AzureSasCredential
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    parts = urlsplit(client.url)
    endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
    default_host = f"{client.account_name}.blob.core.windows.net"
    endpoint_url = None if parts.netloc == default_host else endpoint
    credential = client.credential
    base: dict[str, Any] = {"account_name": client.account_name, "endpoint_url": endpoint_url}
    if credential is None:
        if parts.query:  # a SAS URL
            return StorageCredentials(sas_token=parts.query, **base)
        return StorageCredentials(anonymous=True, **base)
    account_key = getattr(credential, "account_key", None)
    if account_key:
        return StorageCredentials(account_key=account_key, **base)
    if isinstance(credential, AzureSasCredential):
        return StorageCredentials(sas_token=credential.signature, **base)
    if isinstance(credential, DefaultAzureCredential):
        # The same chain delta-rs walks (environment, workload identity, managed identity): ambient for it.
        return StorageCredentials(azure_credential=credential, **base)
    config = (conn.extra_dejson or {}).get("client_secret_auth_config") or {}
    unmapped = sorted(set(config) - {"authority"}) if isinstance(config, dict) else ["<not a mapping>"]
    if isinstance(credential, ClientSecretCredential) and not unmapped:
        # A service principal (tenant_id, login = client id, password = secret): delta-rs 1.6.6 takes the three as
        # azure_client_id, azure_client_secret and azure_tenant_id, and client_secret_auth_config's authority
        # (ClientSecretCredential's keyword: a sovereign cloud's or Azure Stack's Entra ID) as its authority host (its
        # token request checked against a local authority: tests/hooks/test_azure_accounts.py).
        authority = str(config["authority"]).rstrip(" /") if config.get("authority") else None
        return StorageCredentials(azure_credential=credential, azure_tenant_id=_wasb_getter(conn.extra_dejson)("tenant_id"),
                                  azure_client_id=conn.login, azure_client_secret=conn.password,
                                  azure_authority_host=authority if not authority or "://" in authority
                                  else f"https://{authority}", **base)  # (azure.identity's default scheme)
    configured = (f" and client_secret_auth_config {unmapped}" if isinstance(credential, ClientSecretCredential)
                  else "")
    return StorageCredentials(
        azure_credential=credential,
        delta_problem=(
            f"Connection {conn_id!r} authenticates with {type(credential).__name__}{configured}, which the datapool "
            "table (delta-rs) cannot use. Fix: give the datapool's connection an account key or SAS token, "
            + (f"remove {unmapped} from client_secret_auth_config (delta-rs takes its 'authority' alone), "
               if configured else "a service principal, ")
            + "or no connection for ambient (workload identity) credentials."
        ),
        **base,
    )
