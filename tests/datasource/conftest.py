"""A datasource on each of the four stores, behind one small interface the tests write and delete through."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from datapool.conftest import digits  # noqa: F401 - the session fixture (the datapool tests' rows)
from PIL import Image

from lightly_airflow.storage import StorageCredentials, filesystem

STORES = ("local", "s3", "gcs", "azure")


@dataclass
class Store:
    """A datasource root on one store (the test's own prefix inside a fresh bucket)."""

    kind: str
    uri: str
    credentials: StorageCredentials | None

    @property
    def fs(self) -> Any:
        return filesystem(self.uri, self.credentials)[0]

    def path(self, key: str) -> str:
        return f"{filesystem(self.uri, self.credentials)[1]}/{key}"

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if self.kind == "local":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
        else:
            self.fs.pipe_file(path, data)

    def delete(self, key: str) -> None:
        self.fs.rm_file(self.path(key))


def png_bytes(seed: int, size: int = 8) -> bytes:
    """A small real PNG whose pixels depend on ``seed``."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Store:
    """The same datasource test on local disk, moto (S3), fake-gcs-server (GCS) and Azurite (Azure)."""
    kind = request.param
    if kind == "local":
        root = tmp_path / "datasource"
        root.mkdir()
        return Store(kind, f"file://{root}", None)
    bucket = request.getfixturevalue({"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}[kind])
    return Store(kind, f"{bucket.uri}/datasource", bucket.credentials)
