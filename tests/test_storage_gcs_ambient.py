"""gcsfs given no credentials looks for them on the worker and, finding none, goes on anonymously without a word:
the first read of a private bucket is then "access denied", far from the cause. On fake-gcs-server with a real
listing: the anonymous fallback is logged once, naming the URI and the fix; credentials that say anonymous are not."""

from __future__ import annotations

import logging

import pytest

from lightly_airflow import storage
from lightly_airflow.storage import StorageCredentials, filesystem


@pytest.mark.emulator
def test_an_anonymous_fallback_is_logged_once(gcs_bucket, monkeypatch, tmp_path, caplog) -> None:  # noqa: ANN001
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # (no gcloud credentials)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # (no metadata server: refused at once)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_bucket.credentials.endpoint_url)
    monkeypatch.setattr(storage, "_ANONYMOUS_GCS_LOGGED", set())
    import gcsfs

    gcsfs.GCSFileSystem.clear_instance_cache()
    caplog.set_level(logging.WARNING, logger="lightly_airflow.storage")
    fs, path = filesystem(f"{gcs_bucket.uri}/ds")
    assert fs.find(path) == []  # (a real request, anonymous)
    filesystem(f"{gcs_bucket.uri}/other")
    warnings = [r.getMessage() for r in caplog.records if "read anonymously" in r.getMessage()]
    assert warnings == [f"{gcs_bucket.uri}/ds is read anonymously (public buckets only): no connection is given and no "
                        "Google credentials were found on this worker. Fix: give it a google_cloud_platform "
                        "connection, or the workers Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, "
                        "workload identity)"]
    caplog.clear()
    filesystem(f"{gcs_bucket.uri}/ds", StorageCredentials(anonymous=True, endpoint_url=gcs_bucket.credentials.endpoint_url))
    assert not [r for r in caplog.records if "read anonymously" in r.getMessage()]
