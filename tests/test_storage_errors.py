"""Store errors that a configuration causes are named with the fix in the words of the store that raised them
(:func:`lightly_airflow.storage.describe_store_error`), provoked on the emulators where they can be: a missing bucket
on moto, a missing container, a wrong key and a SAS without the list permission on Azurite, and a pool with no Azure
account at all. fake-gcs-server checks no credentials, so a GCS refusal is the text object_store raises for one."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import emulators  # (scripts/ is on sys.path: tests/conftest.py)
import pytest

from lightly_airflow.datapool import Datapool, DatapoolUnreachableError
from lightly_airflow.storage import describe_store_error

# What delta-rs 1.6.6 (object_store) raises for a GCS bucket the service account may not list (its XML API's 403).
GCS_DENIED = (
    "Generic GCS error: Error performing list request: Error performing GET https://storage.googleapis.com/b?list-type"
    "=2&prefix=pool%2F_delta_log%2F - Server returned non-2xx status code: 403 Forbidden: <?xml version='1.0' "
    "encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>Access denied.</Message><Details>sa@p.iam."
    "gserviceaccount.com does not have storage.objects.list access to the Google Cloud Storage bucket.</Details>"
    "</Error>"
)


def test_a_pool_with_no_azure_account_names_the_pool_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment's connection string names no account (a SAS alone): delta-rs said only "Generic
    MicrosoftAzure error: Account must be specified", through ``exists()`` and opening the pool alike."""
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "SharedAccessSignature=sv=2022-11-02&sig=x")
    pool = Datapool("az://frames/pool")
    for call in (pool.exists, pool.version):
        with pytest.raises(DatapoolUnreachableError, match=r"az://frames/pool cannot be reached: no Azure storage "
                           r"account is named .* Fix: .*AZURE_STORAGE_ACCOUNT_NAME"):
            call()


def test_azurite_refusals_get_azure_fixes(azure_container) -> None:  # noqa: ANN001
    """A wrong account key is rejected credentials (Azurite: "AuthorizationFailure ... Server failed to authenticate
    the request", which was "access denied" with S3 permissions as the fix); a SAS that may not list is denied, with
    Azure's role and SAS permissions as the fix; a missing container asks for a container."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    creds, uri = azure_container.credentials, f"{azure_container.uri}/pool"
    wrong = replace(creds, account_key=base64.b64encode(b"not the key" * 6).decode())
    with pytest.raises(DatapoolUnreachableError, match=r"rejected the credentials .* Fix: check the account key or "
                       r"SAS token of the wasb connection"):
        Datapool(uri, wrong).exists()
    sas = generate_container_sas(emulators.AZURE_ACCOUNT, azure_container.name, account_key=emulators.AZURE_KEY,
                                 permission=ContainerSasPermissions(read=True),
                                 expiry=datetime.now(UTC) + timedelta(hours=1))
    read_only = replace(creds, account_key=None, sas_token=sas)
    with pytest.raises(DatapoolUnreachableError, match=r"access was denied .*Storage Blob Data Contributor.*sp=rwdl") \
            as denied:
        Datapool(uri, read_only).exists()
    assert "s3:" not in str(denied.value)
    with pytest.raises(DatapoolUnreachableError, match=r"Fix: create the container, or correct the URI"):
        Datapool(f"{azure_container.uri}-gone/pool", creds).exists()


def test_a_missing_s3_bucket_asks_for_a_bucket(s3_bucket) -> None:  # noqa: ANN001
    with pytest.raises(DatapoolUnreachableError, match=r"\(NoSuchBucket\)\. Fix: create the bucket, or correct"):
        Datapool(f"{s3_bucket.uri}-gone/pool", s3_bucket.credentials).exists()


def test_a_denied_gcs_bucket_names_gcs_permissions_not_s3_ones() -> None:
    """The fix follows the pool's URI, or without one the store the error names ("Generic GCS error")."""
    for uri in ("gs://b/pool", None):
        what, fix = describe_store_error(OSError(GCS_DENIED), uri) or ("", "")
        assert what.startswith("access was denied") and "storage.objects.list" in fix and "s3:" not in fix, fix
    assert "s3:ListBucket" in (describe_store_error(OSError(GCS_DENIED.replace("GCS", "S3")), "s3://b/pool") or "")[1]


def test_a_missing_bucket_on_fake_gcs_server_is_named(gcs_bucket) -> None:  # noqa: ANN001
    """fake-gcs-server answers a request to a missing bucket with HTTP 500 "no bucket named <bucket>", which the
    datapool (object_store) raised as it was, after 10 retries: now the pool names the bucket and the fix. (gcsfs, for
    the files, says FileNotFoundError and is named by the listing.)"""
    uri = f"{gcs_bucket.uri}-gone/pool"
    with pytest.raises(DatapoolUnreachableError, match=rf"^The datapool {uri} cannot be reached: its bucket \(or "
                       rf"container\) does not exist \(no bucket named {gcs_bucket.name}-gone\)\. Fix: create the "
                       r"bucket, or correct the URI"):
        Datapool(uri, gcs_bucket.credentials).exists()
    assert Datapool(f"{gcs_bucket.uri}/pool", gcs_bucket.credentials).exists() is False  # (the bucket is there)
