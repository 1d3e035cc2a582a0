"""Fixtures: a local datasource, its .lightly/ folder and a manifest shard that points at them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lightly_airflow import columns as C


def encode(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise_image(seed: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def write_tree(root: Path, files: dict[str, bytes | str | object]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content))


def make_manifest(tmp_path: Path, keys: list[str], *, lightly_uri: str | None = None, datasource: Path | None = None) -> str:
    datasource = datasource or tmp_path / "bucket"
    table = pa.table(
        {
            C.KEY: pa.array(keys, pa.string()),
            C.SIZE: pa.array([0] * len(keys), pa.int64()),
            C.ETAG: pa.array([f"etag-{i}" for i in range(len(keys))], pa.string()),
            C.MTIME: pa.array([0] * len(keys), pa.timestamp("us", tz="UTC")),
        }
    )
    meta = {C.DATASOURCE_URI_METADATA_KEY.encode(): json.dumps(str(datasource)).encode()}
    if lightly_uri:
        meta[C.LIGHTLY_URI_METADATA_KEY.encode()] = json.dumps(lightly_uri).encode()
    table = table.replace_schema_metadata(meta)
    path = tmp_path / "pool" / "_staging" / "run-1" / "manifest" / "shard-00000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return str(path)


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    root.mkdir()
    return root
