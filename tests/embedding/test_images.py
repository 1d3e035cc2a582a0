"""Decoding: every image mode to RGB at the input size, JPEG draft decoding close to a full decode,
EXIF orientation, and the failures that mark a file corrupt."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from lightly_airflow.embedding import decode_image


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize(
    "img,fmt",
    [
        (Image.fromarray(data.chelsea()), "JPEG"),
        (Image.fromarray(data.camera()), "PNG"),  # L
        (Image.fromarray(data.coffee()).convert("P"), "GIF"),
        (Image.fromarray(np.dstack([data.astronaut(), np.full((512, 512), 200, np.uint8)]), "RGBA"), "PNG"),
        (Image.fromarray(data.coins()).convert("I;16"), "PNG"),
        (Image.fromarray(data.chelsea()).convert("CMYK"), "JPEG"),
        (Image.fromarray(data.rocket()), "WEBP"),
        (Image.fromarray(data.rocket()), "TIFF"),
    ],
)
def test_every_mode_decodes_to_rgb_of_the_input_size(img: Image.Image, fmt: str) -> None:
    out = decode_image(_encode(img, fmt), 48)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    assert out.std() > 5  # real content, not a blank


def test_jpeg_draft_decoding_matches_a_full_decode() -> None:
    blob = _encode(Image.fromarray(data.astronaut()), "JPEG", quality=92)
    fast = decode_image(blob, 64).astype(float)
    full = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), float)
    assert np.abs(fast - full).mean() < 6.0


def test_exif_orientation_is_applied() -> None:
    array = np.zeros((40, 80, 3), np.uint8)
    array[:, :40] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    blob = _encode(Image.fromarray(array), "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_image(blob, 32).mean(axis=2)
    assert out[:8].mean() > 200 and out[-8:].mean() < 50  # displayed: white on top


@pytest.mark.parametrize(
    "blob,match",
    [
        (b"", "empty"),
        (b"GIF89a" + b"\x00" * 10, None),
        (_encode(Image.fromarray(data.chelsea()), "PNG")[:5000], None),
    ],
)
def test_broken_files_raise(blob: bytes, match: str | None) -> None:
    with pytest.raises(Exception, match=match):
        decode_image(blob, 64)


def test_decompression_bombs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = _encode(Image.new("RGB", (400, 400)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises((Image.DecompressionBombWarning, Image.DecompressionBombError), match="exceeds limit|decompression bomb"):
        decode_image(blob, 64)


def test_decoding_threads_leave_the_process_warning_filters_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each decode turned Pillow's DecompressionBombWarning into an error with ``warnings.catch_warnings``, which is
    not thread-safe: the model input's decoding threads interleaved and left the "error" filter behind for the
    whole process (or lifted it while another thread decoded). The pixel limit is checked directly now, with the
    same refusal of an image above it."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from lightly_airflow.embedding.images import open_rgb

    blobs = [_encode(Image.new("RGB", (64 + i % 7, 48), (i, 0, 0)), "PNG") for i in range(64)]
    before = list(warnings.filters)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            assert all(img.size[1] == 48 for img in pool.map(open_rgb, blobs))
    assert list(warnings.filters) == before
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 40)  # above it, under twice it: refused all the same
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(Image.DecompressionBombError, match="exceeds limit"):
            open_rgb(blobs[0])
