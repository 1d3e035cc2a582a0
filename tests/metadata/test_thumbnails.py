"""Thumbnails are made by the metadata shard from the image it decodes, once per ok sample, next to the datapool."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.datapool import sample_id
from lightly_airflow.metadata import compute_metadata_shard
from lightly_airflow.thumbnails import (
    MAX_SIDE,
    REDUCING_GAP,
    datapool_of_manifest,
    make_thumbnail,
    read_thumbnail,
    thumbnail_name,
)

from .conftest import encode, make_manifest, noise_image, write_tree


def test_shard_writes_one_small_jpeg_per_ok_image(tmp_path: Path) -> None:
    big = np.zeros((600, 900, 3), dtype=np.uint8)
    big[:, :450] = (255, 0, 0)  # left half red: the thumbnail is the picture, not a placeholder
    files = {
        "a/big.png": encode(big),
        "b/small.jpg": encode(noise_image(1, (40, 30)), "JPEG"),
        "c/broken.png": b"\x89PNG\r\n\x1a\nnot really",
    }
    write_tree(tmp_path / "bucket", files)
    manifest = make_manifest(tmp_path, sorted(files))
    pool = datapool_of_manifest(manifest)
    assert pool == str(tmp_path / "pool")
    counts = compute_metadata_shard(manifest)
    assert counts["thumbnails"] == 2 and counts["thumbnails_failed"] == 0 and counts["corrupt"] == 1
    rows = pq.read_table(counts["output_uri"]).to_pylist()
    ids = {r[C.KEY]: sample_id(r[C.KEY], r[C.ETAG]) for r in rows}
    written = sorted(p.name for p in (tmp_path / "pool" / "_thumbnails").iterdir())
    assert written == sorted(thumbnail_name(ids[k]) for k in ("a/big.png", "b/small.jpg"))
    img = Image.open(io.BytesIO(read_thumbnail(pool, ids["a/big.png"])))
    assert img.format == "JPEG" and img.size == (MAX_SIDE, round(MAX_SIDE * 600 / 900))
    r, g, b = img.convert("RGB").getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60
    assert Image.open(io.BytesIO(read_thumbnail(pool, ids["b/small.jpg"]))).size == (30, 40)  # never enlarged
    assert read_thumbnail(pool, ids["c/broken.png"]) is None


def test_no_thumbnails_outside_a_datapool_or_when_disabled(tmp_path: Path) -> None:
    write_tree(tmp_path / "bucket", {"x.png": encode(noise_image(2))})
    manifest = make_manifest(tmp_path, ["x.png"])
    assert compute_metadata_shard(manifest, thumbnails_uri="")["thumbnails"] == 0
    assert not (tmp_path / "pool" / "_thumbnails").exists()
    assert datapool_of_manifest("s3://b/somewhere/manifest/shard-00000.parquet") is None


@pytest.mark.parametrize("bad", ["../x", "a" * 31, "A" * 32, "0" * 32 + "/x", ""])
def test_only_sample_ids_name_thumbnails(bad: str) -> None:
    with pytest.raises(ValueError):
        thumbnail_name(bad)


def test_make_thumbnail_keeps_aspect_and_mode() -> None:
    img = Image.new("L", (1000, 100), 128)
    out = Image.open(io.BytesIO(make_thumbnail(img)))
    assert out.size == (MAX_SIDE, 26)


@pytest.mark.parametrize("size", [(4032, 3024), (3024, 4032), (2000, 77), (77, 2000), (257, 256), (300, 1),
                                  (999, 333), (255, 255)])
def test_make_thumbnail_is_image_thumbnail_without_copying_the_picture(size: tuple[int, int]) -> None:
    """The thumbnail is ``Image.thumbnail``'s (with the project's reducing gap), byte for byte, made without that
    method's copy of the full picture (for a 12-Mpx photo 47 -> 12 ms); the decoded picture is left as it was."""
    rng = np.random.default_rng(size[0] * 7 + size[1])
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    before = np.asarray(img).copy()
    reference = img.copy()
    reference.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    out = io.BytesIO()
    reference.save(out, format="JPEG", quality=85)
    assert make_thumbnail(img) == out.getvalue()
    np.testing.assert_array_equal(np.asarray(img), before)


def test_thumbnails_of_pools_written_before_are_webp_and_still_served(tmp_path: Path) -> None:
    from lightly_airflow.thumbnails import read_thumbnail_typed

    sid = "0" * 32
    folder = tmp_path / "pool" / "_thumbnails"
    folder.mkdir(parents=True)
    assert read_thumbnail_typed(str(tmp_path / "pool"), sid) is None
    legacy = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(legacy, format="WEBP")
    (folder / f"{sid}.webp").write_bytes(legacy.getvalue())
    assert read_thumbnail_typed(str(tmp_path / "pool"), sid) == (legacy.getvalue(), "image/webp")
    (folder / thumbnail_name(sid)).write_bytes(make_thumbnail(Image.new("RGB", (8, 8))))  # the JPEG wins
    data, content_type = read_thumbnail_typed(str(tmp_path / "pool"), sid)
    assert content_type == "image/jpeg" and Image.open(io.BytesIO(data)).format == "JPEG"
