"""HEIC/HEIF photos (the iPhone camera's format): listed by default and read by every pass through pi-heif, upright
and in sRGB. Before, ``.heic`` files were left out of the listing with a hint to convert them to JPEG: a phone's
camera roll yielded nothing. The files here are written by ``lightly_airflow.heif.encode_heic`` (libx265 through
PyAV) as an iPhone stores them in outline: the picture as the sensor saw it, a turn (``irot``), EXIF orientation 6,
a Display P3 profile."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from icc_profiles import display_p3
from PIL import Image, ImageCms

from lightly_airflow import columns as C
from lightly_airflow import heif
from lightly_airflow.metadata.metrics import inspect_image

#: Display P3 colours of the photo's top row (a red, a green, a blue, a skin tone); the bottom row is grey.
P3_PATCHES = [(180, 60, 60), (60, 180, 60), (40, 60, 200), (224, 172, 140)]


def _upright() -> np.ndarray:
    """The photo as a viewer shows it: 64 wide, 32 tall, four colour patches over a grey band."""
    top = np.concatenate([np.full((16, 16, 3), c, np.uint8) for c in P3_PATCHES], axis=1)
    return np.concatenate([top, np.full((16, 64, 3), 128, np.uint8)], axis=0)


def _iphone_heic() -> bytes:
    """The sensor's picture (the upright one turned clockwise: 32 wide, 64 tall) in a grid of tiles (2 x 4 of 16 x
    16; iPhones: 512 x 512), ``irot`` 90 degrees counter-clockwise, and the EXIF orientation (6) beside it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Apple"
    return heif.encode_heic(np.ascontiguousarray(np.rot90(_upright(), -1)), rotation=90, icc_profile=display_p3(),
                            exif=exif.tobytes(), tile=16)


def _srgb_patches() -> list[np.ndarray]:
    """The patches as a colour-managed viewer shows them (littlecms, Display P3 to sRGB)."""
    shown = ImageCms.profileToProfile(Image.fromarray(_upright()), ImageCms.ImageCmsProfile(io.BytesIO(display_p3())),
                                      ImageCms.createProfile("sRGB"), outputMode="RGB")
    arr = np.asarray(shown).astype(int)
    return [arr[8, 16 * i + 8] for i in range(len(P3_PATCHES))]


def _close(rgb: np.ndarray, want: np.ndarray, tol: int = 5) -> bool:
    return bool(np.abs(np.asarray(rgb, dtype=int)[:3] - want).max() <= tol)


def test_an_iphone_heic_photo_runs_through_every_pass_upright_and_in_srgb(tmp_path: Path) -> None:
    from lightly_airflow import pipeline, staging
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding.runner import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.plugins.media import image_size, read_crop, read_image
    from lightly_airflow.thumbnails import thumbnails_uri

    src, pool = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    (src / "IMG_0001.HEIC").write_bytes(_iphone_heic())
    png = io.BytesIO()
    Image.fromarray(_upright()).save(png, "PNG", icc_profile=display_p3())
    (src / "same.png").write_bytes(png.getvalue())
    want = _srgb_patches()
    assert not _close(want[0], np.array(P3_PATCHES[0]))  # (the profile matters: P3 values read as sRGB are off)

    listed = pipeline.list_new(NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool)), run_id="r1")
    (manifest,) = listed.manifests
    assert sorted(pq.read_table(manifest).column(C.KEY).to_pylist()) == ["IMG_0001.HEIC", "same.png"]
    assert listed.unsupported == 0

    counts = compute_metadata_shard(manifest)
    assert counts["ok"] == 2 and counts["corrupt"] == 0 and counts["thumbnails"] == 2
    meta = {r[C.KEY]: r for r in pq.read_table(staging.sibling_uri(manifest, staging.METADATA)).to_pylist()}
    heic, same = meta["IMG_0001.HEIC"], meta["same.png"]
    # upright once: turned by its irot and not again by the EXIF orientation (that would be 32 x 64)
    assert (heic[C.metadata_column("lightly.width")], heic[C.metadata_column("lightly.height")]) == (64, 32)
    for channel in ("meanRed", "meanGreen", "meanBlue"):  # sRGB values, as the PNG with the same profile
        assert abs(heic[C.metadata_column(f"lightly.{channel}")] - same[C.metadata_column(f"lightly.{channel}")]) < 2
    thumbs = {p.name: np.asarray(Image.open(p).convert("RGB")) for p in Path(thumbnails_uri(str(pool))).glob("*.jpg")}
    assert len(thumbs) == 2 and all(t.shape == (32, 64, 3) for t in thumbs.values())

    embedded = embed_shard(manifest, input_size=32, device="cpu", batch_size=2, num_workers=0)
    rows = {r[C.KEY]: r for r in pq.read_table(embedded["output_uri"]).to_pylist()}
    assert rows["IMG_0001.HEIC"][C.STATUS] == "ok"
    a, b = (np.asarray(rows[k][C.EMBEDDING]) for k in ("IMG_0001.HEIC", "same.png"))
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99  # the same picture to the model

    data, content_type, size = read_image(str(src), "IMG_0001.HEIC", None)  # browsers but Safari show no HEIC
    assert content_type == "image/jpeg" and size == (64, 32)  # (lossy already: a JPEG, not a 7-20 MB PNG)
    shown = np.asarray(Image.open(io.BytesIO(data)))
    assert shown.shape == (32, 64, 3)
    assert all(_close(shown[8, 16 * i + 8], w) for i, w in enumerate(want)), [shown[8, 16 * i + 8] for i in range(4)]
    assert _close(shown[24, 32], np.array([128, 128, 128]))
    assert image_size(str(src), "IMG_0001.HEIC", None) == (64, 32)
    crop = np.asarray(Image.open(io.BytesIO(read_crop(str(src), "IMG_0001.HEIC", [16, 0, 32, 16], None))))
    assert _close(crop[8, 8], want[1])  # the green patch: the box is in upright pixels


@pytest.mark.parametrize("damage", ["picture-cut", "header-only", "structure"])
def test_a_damaged_heic_is_one_corrupt_sample_that_says_why(damage: str, tmp_path: Path) -> None:
    """A HEIC cut short in its picture (a copy interrupted) or in its boxes is one corrupt sample with a reason a
    user can act on, in both passes; the good photo beside it is processed."""
    from lightly_airflow.embedding.images import ShardImages

    whole = _iphone_heic()
    data = {"picture-cut": whole[: len(whole) - 600], "header-only": whole[:40],
            "structure": whole[:24] + bytes(len(whole) - 24)}[damage]
    result = inspect_image(data, "IMG_0002.HEIC")
    assert not result.ok
    reason = result.reason or ""
    assert "HEIC/HEIF" in reason and "truncated or damaged" in reason and "Invalid input" in reason, reason  # libheif's
    (tmp_path / "IMG_0002.HEIC").write_bytes(data)
    (tmp_path / "IMG_0001.HEIC").write_bytes(whole)
    keys = ["IMG_0001.HEIC", "IMG_0002.HEIC"]
    batch = ShardImages(str(tmp_path), keys, [0, 1], input_size=32, batch_size=2)[0]
    assert batch.status == ["ok", "corrupt"], batch.reasons
    assert batch.reasons[1], batch.reasons


def test_heic_left_out_by_a_list_of_extensions_says_how_to_list_it(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    """A Lightly-style list of extensions (no HEIC) leaves the phone photos out: the listing says they decode and
    how to list them (it said to convert them to JPEG)."""
    from lightly_airflow import pipeline
    from lightly_airflow.datasource import NewFilesQuery

    src, pool = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    (src / "IMG_0001.HEIC").write_bytes(_iphone_heic())
    Image.new("RGB", (8, 8)).save(src / "ref.jpg")
    caplog.set_level(logging.INFO, logger="lightly_airflow.datasource.listing")
    query = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool), extensions=["png", "jpg"])
    listed = pipeline.list_new(query, run_id="r1")
    assert listed.unsupported == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("which this plugin decodes" in w and "extensions=[..., 'heic']" in w for w in warnings), warnings


def test_the_heif_reader_loads_only_when_a_heif_file_is_opened() -> None:
    """pi-heif (~24 ms to import) is not loaded by opening other images; its plugin replaces the lazy factory on
    the first HEIF file (a fresh process: this one may have opened HEIC files already)."""
    import subprocess
    import sys

    code = (
        "import io, sys\n"
        "from PIL import Image\n"
        "import lightly_airflow.pixels\n"
        "buf = io.BytesIO(); Image.new('RGB', (4, 4)).save(buf, 'PNG'); Image.open(io.BytesIO(buf.getvalue())).load()\n"
        "print('pi_heif' in sys.modules)\n"
        "from lightly_airflow.heif import encode_heic\n"
        "import numpy as np\n"
        "img = Image.open(io.BytesIO(encode_heic(np.zeros((16, 16, 3), np.uint8))))\n"
        "print('pi_heif' in sys.modules, img.format, img.size, type(img).__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["False", "True HEIF (16, 16) pi_heif.as_plugin"], out
