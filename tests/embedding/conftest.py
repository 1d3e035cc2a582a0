"""Real images (scikit-image's bundled photos, numpy-made images, broken files) and manifest shards."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage import data

from lightly_airflow.columns import DATASOURCE_URI_METADATA_KEY, ETAG, KEY, MTIME, SIZE


def photos() -> list[tuple[str, np.ndarray]]:
    """scikit-image's bundled RGB and grey photos."""
    return [
        ("chelsea", data.chelsea()),
        ("coffee", data.coffee()),
        ("astronaut", data.astronaut()),
        ("rocket", data.rocket()),
        ("camera", data.camera()),
        ("coins", data.coins()),
    ]


def write_images(root: Path) -> list[str]:
    """Write photos as JPEG and PNG, a palette GIF, an RGBA PNG and some generated images; returns keys."""
    keys = []
    for name, array in photos():
        for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
            key = f"photos/{name}.{ext}"
            (root / "photos").mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / key, fmt)
            keys.append(key)
    rng = np.random.default_rng(0)
    (root / "gen").mkdir(parents=True, exist_ok=True)
    for i in range(4):
        array = rng.integers(0, 256, size=(40 + 10 * i, 70, 3), dtype=np.uint8)
        Image.fromarray(array).save(root / f"gen/noise_{i}.png")
        keys.append(f"gen/noise_{i}.png")
    rgba = np.dstack([data.astronaut()[::4, ::4], np.full((128, 128), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "gen/rgba.png")
    Image.fromarray(data.coffee()).convert("P").save(root / "gen/palette.gif")
    keys += ["gen/rgba.png", "gen/palette.gif"]
    return keys


def write_manifest(path: Path, datasource_uri: str, keys: list[str], root: Path | None = None) -> str:
    """A manifest shard (key, size, etag, mtime + datasource metadata) at ``path``; returns its URI."""
    sizes, etags = [], []
    for key in keys:
        file = (root / key) if root is not None else None
        blob = file.read_bytes() if file is not None and file.exists() else b""
        sizes.append(len(blob))
        etags.append(hashlib.md5(blob).hexdigest())
    table = pa.table(
        {
            KEY: pa.array(keys, pa.string()),
            SIZE: pa.array(sizes, pa.int64()),
            ETAG: pa.array(etags, pa.string()),
            MTIME: pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * len(keys), pa.timestamp("us", tz="UTC")),
        }
    ).replace_schema_metadata({DATASOURCE_URI_METADATA_KEY: json.dumps(datasource_uri)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return str(path)


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("datasource")
    return root, write_images(root)


@pytest.fixture()
def manifest(tmp_path: Path, image_root: tuple[Path, list[str]]) -> str:
    """A manifest shard in a staging layout over all good images."""
    root, keys = image_root
    return write_manifest(tmp_path / "pool/_staging/run/manifest/shard-00000.parquet", root.as_uri(), keys, root)


def broken_files(root: Path) -> list[str]:
    """A truncated JPEG, a zero-byte file, text named .jpg; returns their keys."""
    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, "JPEG")
    (root / "bad").mkdir(parents=True, exist_ok=True)
    (root / "bad/truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (root / "bad/empty.jpg").write_bytes(b"")
    (root / "bad/text.jpg").write_bytes(b"this is not an image\n" * 10)
    return ["bad/truncated.jpg", "bad/empty.jpg", "bad/text.jpg"]
