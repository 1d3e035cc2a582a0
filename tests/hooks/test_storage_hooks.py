"""Connections become StorageCredentials through the providers' hooks: a role is really assumed (moto STS),
a GCS service-account key file becomes the hook's service-account credentials for gcsfs and the key for
delta-rs, a wasb connection string reaches Azurite, and options we cannot honour are errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightly_airflow.hooks.storage import UnsupportedConnectionError, credentials_for
from lightly_airflow.storage import filesystem

ROLE = "arn:aws:iam::123456789012:role/lightly-curation"


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def test_aws_role_arn_is_assumed_and_its_credentials_reach_s3(s3_bucket, monkeypatch) -> None:
    creds = s3_bucket.credentials
    base = {"conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
            "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region}}
    plain = credentials_for(_connection(monkeypatch, "plain_s3", base))
    assert (plain.access_key_id, plain.session_token) == (creds.access_key_id, None)

    # The amazon provider never sends assume-role calls to the global endpoint_url: STS has its own.
    with_role = {**base, "extra": {**base["extra"], "role_arn": ROLE,
                                   "assume_role_kwargs": {"RoleSessionName": "lightly-test"},
                                   "service_config": {"sts": {"endpoint_url": creds.endpoint_url}}}}
    assumed = credentials_for(_connection(monkeypatch, "role_s3", with_role))
    # moto's STS hands out temporary credentials of the role: not the connection's own keys.
    assert assumed.session_token and assumed.access_key_id != creds.access_key_id
    assert assumed.access_key_id.startswith("ASIA")
    assert (assumed.endpoint_url, assumed.region) == (creds.endpoint_url, creds.region)
    assert "session_token" not in repr(assumed) and assumed.secret_access_key not in repr(assumed)
    # The assumed credentials are what the clients get, and they work against the store.
    fs, root = filesystem(f"{s3_bucket.uri}/x.txt", assumed)
    fs.pipe_file(root, b"hello")
    assert fs.cat_file(root) == b"hello"
    assert assumed.delta_options("s3")["AWS_SESSION_TOKEN"] == assumed.session_token


def test_aws_options_that_cannot_be_honoured_are_errors(monkeypatch) -> None:
    for extra, match in (({"verify": False}, "verify"), ({"config_kwargs": {"proxies": {"https": "p"}}}, "proxies"),
                         ({"service_config": {"s3": {"signer": "S3V4RestSigner"}}}, "signer"),
                         ({"aws_role": "x"}, "aws_role")):
        conn_id = _connection(monkeypatch, "odd_s3", {"conn_type": "aws", "login": "a", "password": "b", "extra": extra})
        with pytest.raises(UnsupportedConnectionError, match=match):
            credentials_for(conn_id)
    conn_id = _connection(monkeypatch, "ftp_conn", {"conn_type": "ftp", "host": "h"})
    with pytest.raises(UnsupportedConnectionError, match="'aws', 'google_cloud_platform' or 'wasb'"):
        credentials_for(conn_id)


def _service_account_key(email: str) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {
        "type": "service_account", "project_id": "lightly-test", "private_key_id": "0123456789abcdef",
        "private_key": pem, "client_email": email, "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_gcs_service_account_key_file_goes_through_the_hook(tmp_path: Path, monkeypatch) -> None:
    from google.oauth2 import service_account

    email = "curation@lightly-test.iam.gserviceaccount.com"
    key = _service_account_key(email)
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    conn_id = _connection(monkeypatch, "gcp_key_file", {
        "conn_type": "google_cloud_platform", "extra": {"key_path": str(key_file), "project": "lightly-test"}})
    creds = credentials_for(conn_id)
    assert isinstance(creds.google_credentials, service_account.Credentials)
    assert creds.google_credentials.service_account_email == email
    assert creds.project == "lightly-test"
    # gcsfs gets the hook's credentials object; delta-rs the key file.
    assert creds.fsspec_options("gs")["token"] is creds.google_credentials
    assert creds.delta_options("gs") == {"google_service_account": str(key_file)}
    assert "PRIVATE KEY" not in repr(creds)

    dict_conn = _connection(monkeypatch, "gcp_key_dict", {
        "conn_type": "google_cloud_platform", "extra": {"keyfile_dict": key, "project": "lightly-test"}})
    from_dict = credentials_for(dict_conn)
    assert from_dict.google_credentials.service_account_email == email
    assert json.loads(from_dict.delta_options("gs")["google_service_account_key"]) == key

    # Impersonation works for gcsfs (the hook's object) but delta-rs cannot use it: an error, not ambient.
    chain = _connection(monkeypatch, "gcp_chain", {"conn_type": "google_cloud_platform", "extra": {
        "key_path": str(key_file), "impersonation_chain": "target@lightly-test.iam.gserviceaccount.com"}})
    impersonated = credentials_for(chain)
    assert impersonated.fsspec_options("gs")["token"] is impersonated.google_credentials
    with pytest.raises(ValueError, match="impersonation_chain.*delta-rs"):
        impersonated.delta_options("gs")
    bad = _connection(monkeypatch, "gcp_odd", {"conn_type": "google_cloud_platform", "extra": {"key_pth": "x"}})
    with pytest.raises(UnsupportedConnectionError, match="key_pth"):
        credentials_for(bad)


def test_wasb_connection_string_reaches_azurite(azure_container, monkeypatch) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import emulators

    creds = azure_container.credentials
    conn_id = _connection(monkeypatch, "azurite", {"conn_type": "wasb", "extra": {
        "connection_string": emulators.azure_connection_string(creds.endpoint_url)}})
    got = credentials_for(conn_id)
    assert (got.account_name, got.account_key) == (creds.account_name, creds.account_key)
    assert got.endpoint_url.rstrip("/") == creds.endpoint_url.rstrip("/")
    fs, root = filesystem(f"{azure_container.uri}/y.txt", got)
    fs.pipe_file(root, b"azure")
    assert fs.cat_file(root) == b"azure"
    key_conn = _connection(monkeypatch, "wasb_key", {"conn_type": "wasb", "login": "acct", "password": "a2V5"})
    keyed = credentials_for(key_conn)
    assert (keyed.account_name, keyed.account_key, keyed.endpoint_url) == ("acct", "a2V5", None)


def test_unset_and_undefined_connections(monkeypatch) -> None:
    # A non-native DAG renders "{{ params.datasource_conn_id }}" of a null param as "None": unset, as the
    # sensor's query treats it (before, the task looked up a connection named 'None' and failed).
    for unset in (None, "", "  ", "None"):
        assert credentials_for(unset) is None
    monkeypatch.delenv("AIRFLOW_CONN_MISSING_S3", raising=False)
    with pytest.raises(UnsupportedConnectionError, match=r"'missing_s3' is not defined.*AIRFLOW_CONN_MISSING_S3"):
        credentials_for("missing_s3")
    with pytest.raises(UnsupportedConnectionError, match=r"'http_conn' has type 'http'.*use an 'aws'"):
        credentials_for(_connection(monkeypatch, "http_conn", {"conn_type": "http", "host": "example.com"}))


def test_lightly_folder_on_another_store_does_not_take_the_datasource_connection(monkeypatch, caplog) -> None:
    """``.lightly/`` without a connection of its own uses the datasource's: on the same store. On another store
    (an S3 datasource, ``.lightly/`` in a GCS bucket of the ML team) that connection cannot reach it; the
    environment's credentials do (logged), as they did before connections named their store."""
    from lightly_airflow.hooks.storage import lightly_credentials_for

    aws = _connection(monkeypatch, "lake", {"conn_type": "aws", "login": "AKIAEXAMPLE", "password": "s3cr3t-key",
                                            "extra": {"region_name": "eu-west-1"}})
    gcp = _connection(monkeypatch, "ml_gcs", {"conn_type": "google_cloud_platform",
                                              "extra": {"is_anonymous": True, "project": "ml"}})
    same = lightly_credentials_for(None, aws, "s3://lake/lightly-meta")
    assert (same.store, same.conn_id, same.access_key_id) == ("s3", "lake", "AKIAEXAMPLE")
    assert lightly_credentials_for(None, aws, None).conn_id == "lake"  # .lightly/ inside the datasource
    with caplog.at_level("INFO", logger="lightly_airflow.hooks.storage"):
        assert lightly_credentials_for(None, aws, "gs://ml-team/lightly") is None
    assert "gs://ml-team/lightly is not on the store of connection 'lake'" in caplog.text and "lightly_conn_id" in caplog.text
    own = lightly_credentials_for(gcp, aws, "gs://ml-team/lightly")
    assert (own.store, own.conn_id, own.anonymous) == ("gs", "ml_gcs", True)
    # The UI reads a run's images with the pool's connection unless the pool names a datasource_conn_id: a pool
    # on S3 with runs from GCS reads those with the environment's credentials (the aws connection cannot).
    import lightly_airflow.plugins.app  # noqa: F401 - (the routes module is imported by the app)
    from lightly_airflow.plugins.config import PoolSpec
    from lightly_airflow.plugins.routes import _source_credentials

    spec = PoolSpec(name="main", uri="s3://lake/pool", conn_id=aws)
    assert _source_credentials(spec, "gs://ml-team/images") is None
    assert _source_credentials(spec, "s3://lake/images").conn_id == "lake"
    named = PoolSpec(name="main", uri="s3://lake/pool", conn_id=aws, datasource_conn_id=gcp)
    assert _source_credentials(named, "gs://ml-team/images").conn_id == "ml_gcs"


def test_requester_pays_reaches_every_s3_request(s3_bucket, monkeypatch, tmp_path: Path) -> None:
    """A Requester Pays bucket (many of AWS's open datasets) refuses requests without ``x-amz-request-payer``: the
    connection's ``requester_pays`` puts it on the listing, the lifecycle read, file reads and the Delta pool's
    requests (counted on the wire by a proxy in front of moto, which does not enforce it)."""
    import sys

    import pyarrow as pa

    from lightly_airflow.datasource import list_table, read_bytes
    from lightly_airflow.datasource.expiration import read_lifecycle

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from datapool.counting_proxy import counting_proxy

    creds = s3_bucket.credentials
    filesystem(f"{s3_bucket.uri}/ds/a.png", creds)[0].pipe_file(f"{s3_bucket.name}/ds/a.png", b"x")
    with counting_proxy(creds) as (proxied, requests):
        conn = {"conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
                "extra": {"endpoint_url": proxied.endpoint_url, "region_name": creds.region, "requester_pays": True}}
        paying = credentials_for(_connection(monkeypatch, "rp_s3", conn))
        assert paying.requester_pays and paying.to_dict()["requester_pays"] is True
        requests.reset()
        assert list_table(f"{s3_bucket.uri}/ds", credentials=paying).column("key").to_pylist() == ["a.png"]
        assert read_bytes(f"{s3_bucket.uri}/ds", "a.png", paying) == b"x"
        from deltalake import DeltaTable, write_deltalake

        write_deltalake(f"{s3_bucket.uri}/pool", pa.table({"a": [1]}), storage_options=paying.delta_options("s3"))
        assert DeltaTable(f"{s3_bucket.uri}/pool", storage_options=paying.delta_options("s3")).version() == 0
        seen = requests.reset()
        del seen["GET log entry"]  # (a sub-count of "GET log")
        paid = sum(n for k, n in seen.items() if k.endswith("requester pays"))
        assert paid == sum(n for k, n in seen.items() if not k.endswith("requester pays")) > 5, seen
        assert {"LIST", "GET", "LIST log", "GET log", "PUT log"} <= set(seen)
        # (a bucket's lifecycle is its owner's to read: GetBucketLifecycleConfiguration takes no RequestPayer)
        read_lifecycle(f"{s3_bucket.uri}/ds", paying)
        assert requests.reset() == {"GET": 1}
        # without the option, none carry it
        plain = credentials_for(_connection(monkeypatch, "plain_rp", {**conn, "extra": {**conn["extra"],
                                                                                        "requester_pays": False}}))
        list_table(f"{s3_bucket.uri}/ds", credentials=plain)
        assert not any(k.endswith("requester pays") for k in requests.reset())
    bad = {**conn, "extra": {"endpoint_url": creds.endpoint_url, "requester_pays": "yes"}}
    with pytest.raises(UnsupportedConnectionError, match="requester_pays='yes' is not a boolean"):
        credentials_for(_connection(monkeypatch, "bad_rp", bad))


def test_gcs_requester_pays_bills_the_project_on_every_request(gcs_bucket, monkeypatch, tmp_path: Path) -> None:
    """A GCS Requester Pays bucket needs ``userProject`` on each request: the connection's ``requester_pays``
    reaches gcsfs (listing, the lifecycle read, file reads), counted on the wire in front of fake-gcs-server."""
    import sys
    from dataclasses import replace

    from lightly_airflow.datasource import list_table, read_bytes
    from lightly_airflow.datasource.expiration import read_lifecycle

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from datapool.counting_proxy import counting_proxy

    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(_service_account_key("rp@lightly-test.iam.gserviceaccount.com")))
    conn = {"conn_type": "google_cloud_platform", "extra": {"key_path": str(key_file), "project": "lightly-test",
                                                             "requester_pays": True}}
    parsed = credentials_for(_connection(monkeypatch, "gcp_rp", conn))
    assert parsed.requester_pays and parsed.fsspec_options("gs")["requester_pays"] is True
    anon = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "requester_pays": True}}
    with pytest.raises(UnsupportedConnectionError, match="requester_pays bills a project"):
        credentials_for(_connection(monkeypatch, "gcp_rp_anon", anon))

    creds = gcs_bucket.credentials  # (fake-gcs takes no real sign-in: the emulator's anonymous credentials)
    filesystem(f"{gcs_bucket.uri}/ds/a.png", creds)[0].pipe_file(f"{gcs_bucket.name}/ds/a.png", b"x")
    with counting_proxy(creds) as (proxied, requests):
        paying = replace(proxied, requester_pays=True)
        requests.reset()
        assert list_table(f"{gcs_bucket.uri}/ds", credentials=paying).column("key").to_pylist() == ["a.png"]
        read_lifecycle(f"{gcs_bucket.uri}/ds", paying)
        assert read_bytes(f"{gcs_bucket.uri}/ds", "a.png", paying) == b"x"
        seen = requests.reset()
        paid = sum(n for k, n in seen.items() if k.endswith("requester pays"))
        assert paid == sum(n for k, n in seen.items() if not k.endswith("requester pays")) >= 3, seen
