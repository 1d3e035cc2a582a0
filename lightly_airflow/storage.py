"""One place that turns credentials into client options for every store we read or write.

The core never sees Airflow connections: the Airflow layer (:mod:`lightly_airflow.hooks.storage`) builds
:class:`StorageCredentials` through the providers' own hooks (``S3Hook``, ``GCSHook``, ``WasbHook``), so
role assumption, profiles, key files and the like behave exactly as in every other Airflow task; inside a
GPU pod, :class:`StorageCredentials` is left empty and the clients fall back to ambient credentials
(environment variables, workload identity). The same credentials
object yields fsspec options (listing, images, staging Parquet) and delta-rs options (the datapool table); the rules
that keep adlfs and delta-rs on one Azure storage account are :mod:`lightly_airflow.storage_azure`'s.
Secrets never appear in ``repr`` and so never reach logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# gcsfs otherwise probes a gRPC endpoint for ~170 s before the first call.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

_PROTOCOLS = {
    "": "file",
    "file": "file",
    "local": "file",
    "s3": "s3",
    "s3a": "s3",
    "gs": "gs",
    "gcs": "gs",
    "az": "az",
    "abfs": "az",
    "abfss": "az",
}
#: what a message calls each store, and the Airflow connection type that reaches it
_STORE_NAMES = {"s3": "S3 (s3://)", "gs": "Google Cloud Storage (gs://)", "az": "Azure Blob Storage (az://, abfs://)",
                "file": "the local file system"}
_CONN_TYPES = {"s3": "aws", "gs": "google_cloud_platform", "az": "wasb"}
T = TypeVar("T")
R = TypeVar("R")
_SECRET_FIELDS = frozenset({"secret_access_key", "session_token", "token", "account_key", "connection_string", "sas_token",
                            "azure_client_secret"})


def protocol_of(uri: str) -> str:
    """The normalised store of a URI: ``file``, ``s3``, ``gs`` or ``az``.

    :param uri: a URI such as ``s3://bucket/prefix`` or a plain local path.
    :raises ValueError: for a scheme we do not support, naming the supported ones.
    """
    scheme = urlsplit(str(uri)).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter
        scheme = ""
    try:
        return _PROTOCOLS[scheme]
    except KeyError:
        raise ValueError(
            f"Unsupported URI scheme {scheme!r} in {uri!r}: use file://, s3://, gs://, az:// or abfs://."
        ) from None


#: Query parameters that carry a secret (SAS signatures, pre-signed URLs, tokens, keys).
_SECRET_QUERY = re.compile(
    r"(?:^|&)(?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|"
    r"x-goog-credential|token|access_token|sas|sas_token|key|account_key|secret|password|credential)=", re.I,
)


def masked_uri(uri: str) -> str:
    """``uri`` with a password in its user part and a query string that carries a secret shown as ``***``."""
    parts = urlsplit(str(uri))
    netloc = parts.netloc
    if "@" in netloc and ":" in netloc.rpartition("@")[0]:
        netloc = f"{netloc.rpartition('@')[0].partition(':')[0]}:***@{netloc.rpartition('@')[2]}"
    query = "?***" if parts.query and _SECRET_QUERY.search(parts.query) else (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{netloc}{parts.path}{query}" if parts.scheme else str(uri)


def secret_in_uri(uri: str) -> str | None:
    """Why ``uri`` carries a credential (a password in its user part, a signature or token in its query),
    naming the URI with the secret masked; ``None`` when it carries none.

    A credential in a storage URI would travel into every log line, XCom, rendered field, manifest, commit
    and report that names the URI, so the first task refuses it (credentials belong in a connection).
    ``abfs://container@account.dfs.core.windows.net`` (a user part without a password) is fine.
    """
    parts = urlsplit(str(uri))
    where = ""
    if "@" in parts.netloc and ":" in parts.netloc.rpartition("@")[0]:
        where = "a password in its user part"
    if parts.query and _SECRET_QUERY.search(parts.query):
        where = f"{where} and " if where else ""
        where += "a signature or token in its query string"
    if not where:
        return None
    return f"the URI {masked_uri(uri)} carries {where}"


def join_uri(base: str, *parts: str) -> str:
    """Join path parts onto a URI with ``/`` (no normalisation of ``..``; keys are validated elsewhere)."""
    out = str(base).rstrip("/")
    for part in parts:
        part = str(part).strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def local_path(uri: str) -> str:
    """The filesystem path of a ``file://`` (or ``local://``, in any case: :func:`protocol_of`) URI or plain path."""
    uri = str(uri)
    scheme, sep, rest = uri.partition("://")
    if sep and _PROTOCOLS.get(scheme.lower()) == "file":  # (``FILE:///x`` was read as ./FILE:/x)
        return rest
    return uri


@dataclass(frozen=True)
class StorageCredentials:
    """Endpoint and credentials for one store, independent of the client library.

    :param endpoint_url: custom endpoint (an emulator, MinIO, a private link); ``http://`` allows plain HTTP.
    :param region: AWS region.
    :param access_key_id: AWS access key id.
    :param secret_access_key: AWS secret key.
    :param session_token: AWS session token.
    :param anonymous: unsigned requests (public buckets, emulators).
    :param project: GCP project.
    :param token: GCP service-account key as a JSON string or a path to a key file.
    :param account_name: Azure storage account name.
    :param account_key: Azure storage account key.
    :param connection_string: Azure connection string (overrides name/key/endpoint).
    :param sas_token: Azure SAS token.
    :param google_credentials: a ``google.auth`` credentials object (what ``GCSHook.get_credentials()``
        returns), handed to gcsfs as its ``token``; not serialised by :meth:`to_dict`.
    :param azure_credential: an Azure ``TokenCredential`` (service principal, managed identity), handed to
        adlfs as its ``credential``; not serialised.
    :param azure_tenant_id: a service principal's tenant (with ``azure_client_id`` and ``azure_client_secret``): what
        delta-rs authenticates with (``azure_credential`` is an object it cannot take), and adlfs without the object.
    :param azure_client_id: the service principal's application (client) id.
    :param azure_client_secret: its client secret.
    :param azure_authority_host: the Microsoft Entra ID authority its tokens come from (``https://login.microsoftonline.us``
        in Azure Government; the wasb connection's ``client_secret_auth_config`` ``authority``), ``None`` for
        azure.identity's default (``AZURE_AUTHORITY_HOST``, else the public cloud's), which delta-rs takes likewise.
    :param delta_problem: why delta-rs (the datapool table) cannot use these credentials, when it cannot
        (e.g. an impersonation chain): :meth:`delta_options` raises it instead of silently going ambient.
    :param store: the store the credentials are for (``s3``, ``gs``, ``az``: the connection's type);
        using them for another store's URI is an error (:meth:`store_problem`), never silently ambient.
    :param conn_id: the Airflow connection they came from (named in messages).
    :param requester_pays: a Requester Pays bucket (many open datasets): S3 requests carry ``x-amz-request-payer:
        requester``, GCS requests ``userProject=<project>`` (the project billed); without, every request is refused.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    anonymous: bool = False
    project: str | None = None
    token: str | None = field(default=None, repr=False)
    account_name: str | None = None
    account_key: str | None = field(default=None, repr=False)
    connection_string: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    google_credentials: Any = field(default=None, repr=False, compare=False, metadata={"object": True})
    azure_credential: Any = field(default=None, repr=False, compare=False, metadata={"object": True})
    azure_tenant_id: str | None = None
    azure_client_id: str | None = None
    azure_client_secret: str | None = field(default=None, repr=False)
    azure_authority_host: str | None = None
    delta_problem: str | None = None
    store: str | None = None
    conn_id: str | None = None
    requester_pays: bool = False

    def to_dict(self) -> dict[str, Any]:
        """All set plain fields, secrets included (for passing to a subprocess or pod env, never to logs);
        credential objects are not serialisable and left out."""
        return {
            f.name: getattr(self, f.name) for f in fields(self)
            if not f.metadata.get("object") and getattr(self, f.name) not in (None, False)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StorageCredentials:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        data = dict(data or {})
        known = {f.name for f in fields(cls) if not f.metadata.get("object")}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown storage credential keys {unknown}; allowed: {sorted(known)}.")
        return cls(**data)

    def __repr__(self) -> str:
        """The set, non-secret fields; an endpoint URL's password or signed query shows as ``***``."""
        shown = ", ".join(
            f"{f.name}={masked_uri(v)!r}" if f.name == "endpoint_url" else f"{f.name}={v!r}"
            for f in fields(self) if f.repr and (v := getattr(self, f.name)) not in (None, False)
        )
        return f"StorageCredentials({shown})"

    def store_problem(self, uri: str, *, environment: bool = True, reach: bool = True) -> tuple[str, str] | None:
        """``(problem, fix)`` when these credentials cannot reach ``uri`` (a connection of one cloud given for
        another's URI: its options would be dropped and the client would go ambient, then fail as "does not
        exist"; a connection's own endpoint that answers no connection: :meth:`endpoint_problem`), else ``None``. A
        local path needs no credentials (a connection given for one is unused). ``environment=False`` leaves out what
        the environment causes (:func:`storage_azure.environment_problem`, the network): whether the URI is another
        place than the credentials', which environment credentials might reach instead. ``reach=False`` leaves out
        the endpoint (building options makes no request)."""
        protocol = _PROTOCOLS.get(protocol_of(uri), "file")
        name = f"connection {self.conn_id!r} is" if self.conn_id else "the credentials are"
        if protocol == "az":  # (the Azure rules are imported for Azure alone: the UI and the DAG import this module)
            from lightly_airflow import storage_azure

            if problem := storage_azure.account_problem(self, uri, masked_uri(uri), name):
                return problem
        if self.store is not None and protocol not in ("file", self.store):
            return (f"{masked_uri(uri)} is on {_STORE_NAMES[protocol]} but {name} for {_STORE_NAMES[self.store]}.",
                    f"give it a connection of type {_CONN_TYPES[protocol]!r}, or no connection for the environment's "
                    "credentials.")
        if protocol == "az" and environment and (
                problem := storage_azure.environment_problem(self, uri, masked_uri(uri), name)):  # (imported above)
            return problem
        return self.endpoint_problem(uri) if environment and reach and protocol != "file" else None

    def endpoint_problem(self, uri: str) -> tuple[str, str] | None:
        """``(problem, fix)`` when the connection's own endpoint (``endpoint_url``, an Azure connection string's
        ``BlobEndpoint``: an emulator, MinIO, a private link) for ``uri`` accepts no TCP connection within
        :data:`ENDPOINT_TIMEOUT_S`, else ``None`` (also for the stores' own endpoints, and behind a proxy, which the
        clients connect through). One connection per endpoint and process: a reached endpoint is not asked again.
        With nothing listening there, the clients said only "connection refused", after their retries: s3fs in
        9 s, object_store (the datapool) in 3 to 27 s, gcsfs in 35 s and adlfs in 87 s (measured 2026-12-07)."""
        protocol, endpoint = protocol_of(uri), self.endpoint_url
        if protocol == "az":
            from lightly_airflow.storage_azure import filled

            endpoint = filled(self).endpoint_url
        if not endpoint:
            return None
        reason = _unreachable(endpoint)
        if reason is None:
            return None
        whose = f"connection {self.conn_id!r} points" if self.conn_id else "the credentials point"
        return (f"{masked_uri(uri)} cannot be reached: {whose} {_STORE_NAMES[protocol]} at the endpoint "
                f"{masked_uri(endpoint)}, where {reason}.",
                f"{_ENDPOINT_FIXES[protocol]}, or start the store there (an emulator, MinIO).")

    def check_uri(self, uri: str, *, reach: bool = True) -> None:
        """Raise :meth:`store_problem` for ``uri`` (a URI, or ``<protocol>://``) as a ``ValueError`` naming the fix."""
        problem = self.store_problem(uri, reach=reach)
        if problem:
            raise ValueError(f"{problem[0]} Fix: {problem[1]}")

    def _checked_protocol(self, where: str) -> str:
        """The store of ``where`` (a protocol, ``az``, or a URI), checked by :meth:`check_uri` (no request): a URI
        whole (an Azure URI's account included), a protocol for its store alone."""
        if "://" not in where:
            where = f"{_PROTOCOLS.get(where, where)}://"
        self.check_uri(where, reach=False)
        return protocol_of(where)

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint_url and self.endpoint_url.startswith("http://"))

    def fsspec_options(self, where: str) -> dict[str, Any]:
        """Keyword arguments for the fsspec filesystem (s3fs, gcsfs, adlfs) of ``where``: a protocol or a URI.

        :raises ValueError: for credentials of another store, or a URI they cannot reach (:meth:`store_problem`).
        """
        protocol = self._checked_protocol(where)
        if protocol == "s3":
            opts: dict[str, Any] = {}
            if self.anonymous:
                opts["anon"] = True
            if self.access_key_id:
                opts["key"] = self.access_key_id
            if self.secret_access_key:
                opts["secret"] = self.secret_access_key
            if self.session_token:
                opts["token"] = self.session_token
            if self.requester_pays:
                opts["requester_pays"] = True
            client_kwargs = {}
            if self.endpoint_url:
                client_kwargs["endpoint_url"] = self.endpoint_url
            if self.region:
                client_kwargs["region_name"] = self.region
            if client_kwargs:
                opts["client_kwargs"] = client_kwargs
            return opts
        if protocol == "gs":
            opts = {}
            if self.endpoint_url:
                opts["endpoint_url"] = self.endpoint_url
            if self.project:
                opts["project"] = self.project
            if self.requester_pays:
                opts["requester_pays"] = True  # (gcsfs bills ``project``: userProject on every request)
            if self.anonymous:
                opts["token"] = "anon"
            elif self.google_credentials is not None:
                opts["token"] = self.google_credentials
            elif self.token:
                opts["token"] = _gcp_token(self.token)
            return opts
        if protocol == "az":
            from lightly_airflow.storage_azure import adlfs_options

            return adlfs_options(self, where)
        return {}

    def delta_options(self, where: str) -> dict[str, str]:
        """delta-rs ``storage_options`` for ``where``, a protocol or a table's URI (all values strings, as delta-rs
        expects). Give the URI where there is one: an Azure URI naming another account than the files' is refused
        here with the fix, where delta-rs said only "Generic MicrosoftAzure error".

        :raises ValueError: when these credentials cannot be expressed for delta-rs (``delta_problem``), are for
            another store, or cannot reach the URI (:meth:`store_problem`).
        """
        protocol = self._checked_protocol(where)
        if self.delta_problem and protocol != "file":
            raise ValueError(self.delta_problem)
        opts: dict[str, str] = {}
        if protocol == "s3":
            for key, value in (
                ("AWS_ACCESS_KEY_ID", self.access_key_id),
                ("AWS_SECRET_ACCESS_KEY", self.secret_access_key),
                ("AWS_SESSION_TOKEN", self.session_token),
                ("AWS_REGION", self.region),
                ("AWS_ENDPOINT_URL", self.endpoint_url),
            ):
                if value:
                    opts[key] = value
            if self.anonymous:
                opts["AWS_SKIP_SIGNATURE"] = "true"
            if self.requester_pays:
                opts["AWS_REQUEST_PAYER"] = "true"
            if self.allow_http:
                opts["AWS_ALLOW_HTTP"] = "true"
        elif protocol == "gs":
            if self.endpoint_url:
                opts["google_base_url"] = self.endpoint_url
            if self.anonymous:
                opts["google_skip_signature"] = "true"
            elif self.token:
                key = "google_service_account_key" if self.token.lstrip().startswith("{") else "google_service_account"
                opts[key] = self.token
            if self.allow_http:
                opts["allow_http"] = "true"
        elif protocol == "az":
            from lightly_airflow.storage_azure import delta_options

            opts = delta_options(self)
        return opts


#: (codes in a store's error, what happened, the fix: one for all stores, or ``{store: its fix}`` with ``""`` for a
#: store not known): S3, Azure and GCS as object_store (delta-rs), s3fs, adlfs and gcsfs word them; the first that
#: matches names the problem. Checked against moto, fake-gcs-server and Azurite (2026-12-07): a missing bucket or
#: container, a wrong key or SAS (Azurite says "AuthorizationFailure ... Server failed to authenticate the request",
#: where Azure says "AuthenticationFailed"), and no Azure account at all. A wrong endpoint (refused connections after
#: object_store's 10 retries) is named before any request (:meth:`StorageCredentials.endpoint_problem`). A code ending
#: in a space is shown with the word after it: fake-gcs-server answers a missing bucket with HTTP 500 "no bucket named
#: <bucket>" (words no other answer of it or of GCS carries; GCS says NoSuchBucket), which the datapool raised raw.
_STORE_ERRORS: tuple[tuple[tuple[str, ...], str, str | dict[str, str]], ...] = (
    (("Unable to locate credentials",),  # (botocore's NoCredentialsError, which s3fs raised as it was)
     "no AWS credentials were found (no connection is given, and the workers' environment has none)",
     "give it an 'aws' connection, or the workers credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
     "AWS_PROFILE or a role); for a public bucket, a connection with config_kwargs {\"signature_version\": "
     "\"unsigned\"}"),
    (("Account must be specified",),  # (object_store, given no account by the connection, the URI or the environment)
     "no Azure storage account is named (not by the connection, the URI or the workers' environment)",
     "give it a wasb connection with the account, name the account in the URI (abfs://<container>@<account>.dfs.core."
     "windows.net/<path>), or set AZURE_STORAGE_ACCOUNT_NAME (or AccountName in AZURE_STORAGE_CONNECTION_STRING) on "
     "the workers"),
    (("NoSuchBucket", "ContainerNotFound", "The specified bucket does not exist", "no bucket named "),
     "its bucket (or container) does not exist",
     {"az": "create the container, or correct the URI (a datapool's table is created by its first commit; its "
            "container is not)",
      "": "create the bucket, or correct the URI (a datapool's table is created by its first commit; its bucket is "
          "not)"}),
    (("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AuthenticationFailed",
      "Server failed to authenticate the request", "401 Unauthorized", "invalid_grant"),
     "the store rejected the credentials",
     {"s3": "check the access key id and secret (and session token) of the aws connection, or the environment's AWS "
            "credentials when none is given",
      "gs": "check the service-account key of the google_cloud_platform connection (not revoked, of this project), or "
            "the workers' Application Default Credentials when none is given",
      "az": "check the account key or SAS token of the wasb connection (a SAS token: not expired, signed for this "
            "account), or the workers' AZURE_STORAGE_* variables when none is given",
      "": "check the keys or token of the connection (or the environment's credentials when none is given)"}),
    (("AccessDenied", "AuthorizationFailure", "AuthorizationPermissionMismatch", "403 Forbidden", "does not have storage."),
     "access was denied",
     {"s3": "give the connection's identity s3:ListBucket on the bucket and s3:GetObject, s3:PutObject and "
            "s3:DeleteObject on its objects, or use another connection",
      "gs": "give the connection's service account storage.objects.list, get, create and delete on the bucket (the "
            "Storage Object Admin role, roles/storage.objectAdmin), or use another connection",
      "az": "give the connection's identity the Storage Blob Data Contributor role on the container, or a SAS token "
            "with read, write, delete and list permissions (sp=rwdl), or use another connection",
      "": "give the connection's identity list, read, write and delete on the bucket (or container), or use another "
          "connection"}),
)
#: how object_store (delta-rs), s3fs, gcsfs and adlfs name their store in an error, for one raised without its URI
_ERROR_STORES = (("Generic S3 error", "s3"), ("botocore", "s3"), ("Generic GCS error", "gs"),
                 ("googleapis.com", "gs"), ("MicrosoftAzure", "az"), ("azure.core", "az"))


def describe_store_error(exc: BaseException, uri: str | None = None) -> tuple[str, str] | None:
    """``(what happened, fix)`` for a store error that a configuration causes (a missing bucket, rejected or
    insufficient credentials, no Azure account), else ``None`` (a transient or unknown error: shown as it is).

    :param uri: what was read or written: its store picks the fix (S3 permissions are no fix for a ``gs://`` bucket);
        without it, the store the error names, else a fix in every store's words.
    """
    text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    store = _error_store(text, uri)
    for codes, what, fix in _STORE_ERRORS:
        for code in codes:
            if code in str(exc):
                return f"{what} ({_shown_code(code, str(exc))})", fix if isinstance(fix, str) else fix.get(store, fix[""])
    return None


def _shown_code(code: str, text: str) -> str:
    """``code`` as a message shows it: one ending in a space with the word after it in the error's ``text`` (the
    bucket of fake-gcs-server's "no bucket named <bucket>", before its XML's ``</Message>``)."""
    if not code.endswith(" "):
        return code.rstrip(".")
    word = text.partition(code)[2].split("<")[0].split()
    return code + word[0] if word else code.strip()


def _error_store(text: str, uri: str | None) -> str:
    """The store (``s3``, ``gs``, ``az``) of ``uri``, else the one a store error's ``text`` names, else ``""``."""
    if uri is not None:
        try:
            return protocol_of(uri)
        except ValueError:
            pass
    return next((store for marker, store in _ERROR_STORES if marker in text), "")


ENDPOINT_TIMEOUT_S = 5.0
"""Seconds a connection's own endpoint may take to accept a TCP connection (:meth:`StorageCredentials.endpoint_problem`):
a reachable endpoint accepts within a round trip (loopback: under a millisecond); one that drops the packets is named
after this, where the clients waited out their own connect timeouts and retries."""
_REACHED: set[tuple[str, int]] = set()
#: the fix for an endpoint that cannot be reached, in the words of its store's Airflow connection
_ENDPOINT_FIXES = {"s3": "correct the endpoint_url extra (host and port) of the aws connection",
                   "gs": "correct the endpoint_url extra (host and port) of the google_cloud_platform connection",
                   "az": "correct the endpoint of the wasb connection (host and port of its host, or of BlobEndpoint in "
                         "its connection string)"}


def _unreachable(endpoint: str) -> str | None:
    """Why ``endpoint`` accepts no TCP connection (refused, a host name that does not resolve, no answer within
    :data:`ENDPOINT_TIMEOUT_S`), else ``None``; a reached endpoint is remembered for the process."""
    parts = urlsplit(endpoint)
    try:
        host, port = parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:  # (a port that is no number: the clients' own error names it)
        return None
    if not host or (host, port) in _REACHED or _proxied(parts.scheme, host):
        return None
    import socket

    try:
        socket.create_connection((host, port), timeout=ENDPOINT_TIMEOUT_S).close()
    except ConnectionRefusedError:
        return f"nothing listens on {host}:{port} (connection refused)"
    except socket.gaierror as exc:
        return f"the host name {host!r} does not resolve ({exc.strerror or exc})"
    except TimeoutError:
        return f"{host}:{port} did not answer within {ENDPOINT_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"connecting to {host}:{port} failed ({exc.strerror or exc})"
    _REACHED.add((host, port))
    return None


def _proxied(scheme: str, host: str) -> bool:
    """Whether the environment's proxy variables (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) route requests to
    ``host`` through a proxy, as botocore, aiohttp and object_store do: then the host may be out of a direct
    connection's reach while the clients reach it."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    return bool(proxies.get(scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host)


def _gcp_token(token: str) -> Any:
    if token.lstrip().startswith("{"):
        import json

        return json.loads(token)
    return token


def filesystem(uri: str, credentials: StorageCredentials | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and the in-store path for ``uri``.

    :param uri: ``file://``, ``s3://``, ``gs://``, ``az://``/``abfs://`` URI or a local path.
    :param credentials: endpoint and secrets; ``None`` means ambient credentials.
    """
    import fsspec

    protocol = protocol_of(uri)
    creds = credentials or StorageCredentials()
    if protocol == "file":
        fs = fsspec.filesystem("file")
        return fs, os.path.abspath(local_path(uri))
    creds.check_uri(uri)
    options = creds.fsspec_options(uri)  # (the URI whole: an Azure URI's account reaches adlfs)
    fs_protocol = {"s3": "s3", "gs": "gcs", "az": "abfs"}[protocol]
    fs = fsspec.filesystem(fs_protocol, **options)
    if protocol == "gs" and "token" not in options:
        _log_anonymous_gcs(fs, uri)
    # ``place``'s spelling: an Azure ``container@account.dfs.core.windows.net`` is its container (adlfs uses the
    # connection's account; another account in the URI is refused above). With the account left in the path, adlfs
    # read one file but keyed a batch read (``fs.cat``) by ``container/…``, so every file of a run was missing, and
    # the listing sent List Blobs to a container named ``container@account.dfs.core.windows.net``.
    return fs, place(uri).partition("://")[2]


_ANONYMOUS_GCS_LOGGED: set[str] = set()


def _log_anonymous_gcs(fs: Any, uri: str) -> None:
    """Warn (once per bucket and process) when gcsfs, given no credentials, found none on the worker either and went
    on anonymously (its last fallback after gcloud, Application Default Credentials and the metadata server): without
    a word, a private bucket's files were then "access denied" and a public one was read while the table (delta-rs)
    found no credentials."""
    bucket = place(uri).partition("://")[2].partition("/")[0]
    if getattr(getattr(fs, "credentials", None), "method", None) != "anon" or bucket in _ANONYMOUS_GCS_LOGGED:
        return
    _ANONYMOUS_GCS_LOGGED.add(bucket)
    log.warning("%s is read anonymously (public buckets only): no connection is given and no Google credentials were "
                "found on this worker. Fix: give it a google_cloud_platform connection, or the workers Application "
                "Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, workload identity)", masked_uri(uri))


def delta_uri(uri: str) -> str:
    """The table URI delta-rs expects (absolute local path, ``s3://``, ``gs://``, ``az://``).

    An Azure URI that names its account keeps it: delta-rs 1.6.6 (object_store) reads ``az://c@<account>.dfs.core.
    windows.net/x`` (and ``.blob.core.windows.net``) as container ``c`` of that account, the place adlfs reads as
    ``az://c/x`` with the connection's account (:func:`filesystem`; another account is refused by
    :meth:`StorageCredentials.store_problem`). Checked on Azurite, 2026-12-07: tables written at ``abfs://``,
    ``abfss://`` and ``az://c@devstoreaccount1.dfs.core.windows.net/x`` all lie under ``c/x`` (a run's pool at
    ``abfss://``: ``tests/datasource/test_azure_account_uris.py``). An account without a host suffix (``abfss://c@acct/x``)
    is refused by delta-rs ("URL did not match any known pattern") although adlfs reads its files."""
    protocol = protocol_of(uri)
    if protocol == "file":
        return os.path.abspath(local_path(uri))
    parts = urlsplit(str(uri))
    scheme = {"s3": "s3", "gs": "gs", "az": "az"}[protocol]
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def place(uri: str) -> str:
    """One spelling of the folder ``uri`` names, the same for every spelling this module reads as the same files: the
    one comparison of two datasource (or other) roots, ``place(a) == place(b)``.

    The store is :func:`protocol_of`'s (``gcs://`` is ``gs://``, ``s3a://`` ``s3://``, ``abfs://``/``abfss://``
    ``az://``, ``S3://`` ``s3://``); a local path is made absolute and normalised as :func:`filesystem` opens it
    (``/x/./y/``, ``file:///x/y`` and ``FILE:///x//y`` are ``file:///x/y``); an Azure ``container@account…`` is its
    container (adlfs reads it with the connection's account, and a URI naming another account is refused:
    :meth:`StorageCredentials.store_problem`); a bucket's prefix loses its trailing ``/``. Inside a bucket prefix
    ``.`` and empty segments stay: object keys are literal (``s3://b/./x`` reads the keys under ``./x/``), and so
    is the bucket's case (``S3://Bucket`` is another bucket).

    :raises ValueError: for a scheme no store here reads (:func:`protocol_of`).
    """
    protocol = protocol_of(uri)
    if protocol == "file":
        return "file://" + os.path.abspath(local_path(uri))
    parts = urlsplit(str(uri))
    bucket = parts.netloc.partition("@")[0] if protocol == "az" and "@" in parts.netloc else parts.netloc
    return f"{protocol}://{bucket}{parts.path.rstrip('/')}"


def place_key(uri: str) -> str:
    """:func:`place`, or, for a URI of a scheme no store here reads, the URI as written without a trailing ``/``:
    what two URIs are compared by (recorded datasources, a pool against its asset, a watcher's query)."""
    try:
        return place(uri)
    except ValueError:
        return str(uri).rstrip("/")


IO_THREADS = 16
"""Reads :func:`map_io` runs at once: small files on an object store wait on round trips, not on the CPU."""


def map_io(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]`` on up to :data:`IO_THREADS` threads, in ``items``' order. The first
    item's error (in that order) is raised and the calls not yet started are cancelled."""
    workers = min(IO_THREADS, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lightly-io")
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def read_parquet(uri: str, credentials: StorageCredentials | None = None, *, missing_ok: bool = False) -> Any:
    """Read one Parquet file from any store.

    :param uri: the file.
    :param credentials: endpoint and secrets of its store.
    :param missing_ok: return ``None`` for a missing file instead of raising ``FileNotFoundError``.
    """
    import pyarrow.parquet as pq

    fs, path = filesystem(uri, credentials)
    try:
        with fs.open(path, "rb") as f:
            return pq.ParquetFile(f).read()  # (pq.read_table imports pyarrow.dataset and pandas: ~0.3-1 s)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise FileNotFoundError(f"Parquet file {uri!r} does not exist.") from None


def write_parquet(table: Any, uri: str, credentials: StorageCredentials | None = None, *,
                  row_group_size: int | None = None) -> str:
    """Write ``table`` to ``uri`` as one file that appears whole, overwriting: a retried task replaces its own
    output and nothing else. Local files go through a temporary file and a rename; object stores get one
    upload, which is atomic there.

    :param row_group_size: rows per row group (default pyarrow's, 1 Mi rows): smaller lets a reader that wants
        some keys of a file sorted by key fetch only the row groups holding them (:func:`staging.read_staging`).
    :returns: ``uri``.
    """
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    # Page checksums (CRC32, ~0.02 s per 37 MB): staging.read_staging verifies them; without, bytes changed
    # inside a zstd page mostly decode to other values (keys, embeddings) without any error.
    pq.write_table(table, buffer, compression="zstd", write_page_checksum=True,
                   use_dictionary=dictionary_columns(table.schema), row_group_size=row_group_size)
    return write_bytes(buffer.getvalue(), uri, credentials)


def dictionary_columns(schema: Any) -> list[str] | bool:
    """The Parquet leaf columns of Arrow ``schema`` worth dictionary encoding (``use_dictionary`` of
    ``pyarrow.parquet.write_table``): all but floating-point values inside lists (embeddings, boxes' scores),
    which are nearly all distinct; their dictionary page overflows and the writer falls back to plain pages
    after having built it. 8,000 x 1,280 float32 embeddings, zstd: written in 0.26 s instead of 0.33 s, read in
    0.17 s instead of 0.33 s, the same 16 MiB (medians of 5, 2026-12-06). True when nothing is left out."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = io.BytesIO()  # (the Parquet leaves and their types as the writer lays them out)
    # (no rows at all, not schema.empty_table(): that builds each column with pa.array([]), which imports pandas:
    # 0.2-0.3 s of every shard task, whose own columns are built without it, lightly_airflow.arrow)
    pq.write_table(pa.Table.from_batches([], schema=schema), empty)
    leaves = pq.ParquetFile(pa.BufferReader(empty.getvalue())).metadata.schema
    columns = [leaves.column(i) for i in range(len(leaves))]
    keep = [c.path for c in columns if not (c.physical_type in ("FLOAT", "DOUBLE") and c.max_repetition_level > 0)]
    return True if len(keep) == len(columns) else keep


def write_bytes(data: bytes, uri: str, credentials: StorageCredentials | None = None) -> str:
    """Write ``data`` to ``uri`` so the file appears whole, overwriting (a temporary file and a rename locally:
    :func:`write_local`; one atomic upload on object stores): a retry replaces its own file and a reader never sees
    half of one.

    :returns: ``uri``.
    """
    fs, path = filesystem(uri, credentials)
    if protocol_of(uri) == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_local(data, path)
    else:
        fs.pipe_file(path, data)
    return uri


#: The suffix of the temporary file a local write goes through (:func:`write_local`): one name per target.
TEMPORARY_SUFFIX = ".tmp"


def write_local(data: bytes, path: str) -> None:
    """Write ``data`` to the local file ``path`` (its folder exists) through ``<path>.tmp`` and a rename, so the file
    appears whole.

    One temporary name per target, not a random one: a write killed before its rename (a SIGKILLed or OOM-killed
    task) leaves at most that one file, and the next write of the target (its retry, the next export or crop run)
    takes it over; a random name left one more file per killed attempt, forever, in the folders that outlive a run
    (crops, export copies, thumbnails; a run's staging folder goes with it). Writers of one target at once take
    turns on the temporary file by an exclusive ``flock`` (which the kernel drops when its holder dies); a writer
    whose lock comes after the file was renamed into place opens the name again. On a file system that refuses
    locks, each write goes through a name of its own (as before: a killed one's file stays)."""
    import fcntl

    tmp = path + TEMPORARY_SUFFIX
    while True:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # (no locks here: the shared name is not safe for writers at once)
                import uuid

                own = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
                own_fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                os.close(fd)
                fd, tmp = own_fd, own
            else:
                try:
                    current = os.path.samestat(os.fstat(fd), os.stat(tmp))
                except FileNotFoundError:
                    current = False
                if not current:  # (renamed into place, or removed, by the writer before us)
                    continue
            try:
                os.ftruncate(fd, 0)
                with open(fd, "wb", closefd=False) as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                raise
            return
        finally:
            os.close(fd)
