"""Test-wide set-up: an isolated Airflow home, and the storage emulators as fixtures.

Emulator endpoints come from ``LIGHTLY_TEST_{S3,GCS,AZURE}_ENDPOINT`` (``.ci/run`` starts them with
``scripts/emulators.py``); when a variable is missing, the fixture starts that emulator for the session and
stops it afterwards, so ``pytest tests/...`` works on its own too.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Airflow reads its configuration at import time: isolate it before anything imports airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="lightly-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# The example DAG's sensor waits this long for new files before it skips a run (hours in production).
os.environ.setdefault("LIGHTLY_WAIT_FOR_NEW_FILES_S", "4")
os.environ.setdefault("LIGHTLY_POKE_INTERVAL_S", "1")
# dag.test() syncs the configured DAG bundle to the database: point it at the project's DAG folder.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parent.parent / "dags"))
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
# A signing key of the length HS512 wants (Airflow's generated one is shorter and warns on every token).
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", uuid.uuid4().hex + uuid.uuid4().hex)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import emulators  # noqa: E402

from lightly_airflow.storage import StorageCredentials  # noqa: E402


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket/container on an emulator: its root URI and the credentials that reach it."""

    uri: str
    credentials: StorageCredentials
    name: str


def _endpoint(name: str) -> Iterator[str]:
    env = emulators.ENV_VARS[name]
    if os.environ.get(env):
        yield os.environ[env]
        return
    emu = emulators.STARTERS[name]()
    try:
        yield emu.endpoint
    finally:
        emulators.stop_pid(emu.pid)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    yield from _endpoint("s3")


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    yield from _endpoint("gcs")


@pytest.fixture(scope="session")
def azure_endpoint() -> Iterator[str]:
    yield from _endpoint("azure")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Bucket:
    """An empty S3 bucket on moto."""
    import boto3

    name = _unique("lightly")
    boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    creds = StorageCredentials(
        endpoint_url=s3_endpoint, access_key_id="test", secret_access_key="test", region="us-east-1"
    )
    return Bucket(f"s3://{name}", creds, name)


@pytest.fixture
def gcs_bucket(gcs_endpoint: str) -> Bucket:
    """An empty GCS bucket on fake-gcs-server."""
    import json
    import urllib.request

    name = _unique("lightly")
    req = urllib.request.Request(
        f"{gcs_endpoint}/storage/v1/b?project=test", data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - loopback emulator
    creds = StorageCredentials(endpoint_url=gcs_endpoint, anonymous=True, project="test")
    return Bucket(f"gs://{name}", creds, name)


@pytest.fixture
def azure_container(azure_endpoint: str) -> Bucket:
    """An empty Azure Blob container on Azurite."""
    from azure.storage.blob import BlobServiceClient

    name = _unique("lightly")
    conn = emulators.azure_connection_string(azure_endpoint)
    BlobServiceClient.from_connection_string(conn).create_container(name)
    creds = StorageCredentials(
        account_name=emulators.AZURE_ACCOUNT, account_key=emulators.AZURE_KEY, endpoint_url=azure_endpoint
    )
    return Bucket(f"az://{name}", creds, name)
