"""The lightly.* metrics and the corruption checks of one image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data as skdata

from lightly_airflow.metadata.metrics import METRICS, compute_metrics, inspect_image, laplacian_std

from .conftest import encode, noise_image


def test_laplacian_matches_hand_computed_value():
    # A single bright pixel in a 5x5 image: responses on the 3x3 valid region are 8*9 at the centre and -9
    # at its eight neighbours.
    g = np.zeros((5, 5), np.uint8)
    g[2, 2] = 9
    values = np.array([72.0] + [-9.0] * 8)
    assert laplacian_std(g) == pytest.approx(values.std())


def test_laplacian_of_a_ramp_is_zero_and_tiny_images_are_zero():
    ramp = np.tile(np.arange(20, dtype=np.uint8), (10, 1))
    assert laplacian_std(ramp) == 0.0
    assert laplacian_std(np.ones((2, 9), np.uint8)) == 0.0


def test_sharp_photo_beats_its_blurred_copy():
    photo = Image.fromarray(skdata.astronaut())
    blurred = photo.filter(ImageFilter.GaussianBlur(3))
    sharp = inspect_image(encode(np.asarray(photo)), "a.png").metrics
    soft = inspect_image(encode(np.asarray(blurred)), "b.png").metrics
    assert sharp["sharpness"] > 2 * soft["sharpness"]


def test_flat_image_has_higher_snr_than_noisy_one():
    flat = np.full((40, 40, 3), 120, np.uint8)
    flat[0, 0] = 121  # not perfectly flat, so std > 0
    noisy = np.clip(120 + np.random.default_rng(0).normal(0, 40, (40, 40, 3)), 0, 255).astype(np.uint8)
    m_flat = inspect_image(encode(flat), "f.png").metrics
    m_noisy = inspect_image(encode(noisy), "n.png").metrics
    assert m_flat["snr"] > 10 * m_noisy["snr"]
    assert m_noisy["sharpness"] > m_flat["sharpness"]
    constant = inspect_image(encode(np.full((8, 8, 3), 7, np.uint8)), "c.png").metrics
    assert constant["snr"] == 0.0 and constant["sharpness"] == 0.0


def test_metrics_hand_computed_on_two_colour_image():
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:, :2] = (255, 0, 0)
    rgb[:, 2:] = (0, 0, 255)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    m = compute_metrics(rgb, gray, 1234)
    assert set(m) == set(METRICS)
    assert (m["width"], m["height"], m["sizeInBytes"]) == (4, 2, 1234)
    assert m["meanRed"] == pytest.approx(127.5) and m["stdRed"] == pytest.approx(127.5)
    assert m["meanGreen"] == 0.0 and m["stdGreen"] == 0.0
    values = rgb.astype(float).ravel()
    assert m["snr"] == pytest.approx(values.mean() / values.std())
    assert m["luminance"] == pytest.approx((0.299 * 127.5 + 0.114 * 127.5) / 255 * 100)
    assert m["luminance"] == pytest.approx(gray.mean() / 255 * 100, abs=0.2)  # Pillow's L rounds per pixel


def test_grayscale_palette_alpha_and_16bit_images_decode():
    cam = skdata.camera()
    for img, key in (
        (Image.fromarray(cam), "g.png"),
        (Image.fromarray(cam).convert("P"), "p.gif"),
        (Image.fromarray(skdata.astronaut()).convert("RGBA"), "a.png"),
        (Image.fromarray(cam.astype(np.uint16) * 256), "h.tiff"),
    ):
        buf = io.BytesIO()
        img.save(buf, format={"png": "PNG", "gif": "GIF", "tiff": "TIFF"}[key.rsplit(".", 1)[1]])
        result = inspect_image(buf.getvalue(), key)
        assert result.ok, (key, result.reason)
        assert result.metrics["width"] == 512
        assert result.metrics["luminance"] > 10


@pytest.mark.parametrize(
    ("make", "key", "reason"),
    [
        (lambda png, jpg: b"", "e.png", "empty file"),
        (lambda png, jpg: b"not an image at all", "t.png", "not an image"),
        (lambda png, jpg: png, "wrong.jpg", "the file is PNG but its extension is .jpg"),
        (lambda png, jpg: jpg, "wrong.png", "the file is JPEG but its extension is .png"),
        (lambda png, jpg: png[: len(png) // 2], "half.png", "truncated"),
        (lambda png, jpg: jpg[: len(jpg) // 2], "half.jpg", "truncated"),
    ],
)
def test_corrupt_files_are_reported_with_reason(make, key, reason):
    arr = noise_image(1, (64, 64))
    result = inspect_image(make(encode(arr), encode(arr, "JPEG")), key)
    assert not result.ok
    assert reason in result.reason


def test_decompression_bomb_is_corrupt(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    result = inspect_image(encode(noise_image(2, (40, 40))), "bomb.png")
    assert not result.ok and "decompression bomb" in result.reason
    ok = inspect_image(encode(noise_image(2, (20, 20))), "small.png")
    assert ok.ok


def test_truncation_is_reported_even_if_someone_relaxed_pillow(monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    jpg = encode(noise_image(3, (64, 64)), "JPEG")
    result = inspect_image(jpg[: len(jpg) // 2], "t.jpg")
    assert not result.ok
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_unknown_extension_accepts_any_format():
    assert inspect_image(encode(noise_image(4)), "scan.xyz").ok


def _striped(photo: np.ndarray) -> np.ndarray:
    """``photo`` with its bottom third overwritten by fixed colour stripes, as a broken decode leaves them."""
    out = photo.copy()
    h = out.shape[0]
    colours = [(128, 128, 128), (0, 135, 0), (200, 40, 200), (90, 90, 90)]
    for i, y in enumerate(range(h - h // 3, h, 8)):
        out[y : y + 8] = colours[i % len(colours)]
    return out


@pytest.mark.parametrize("fmt,key", [("PNG", "x.png"), ("JPEG", "x.jpg")])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_uniform_row_ratio_is_the_share_of_striped_rows(fmt, key, name):
    """Lightly Worker 2.7's ``lightly.uniformRowRatio``: a photo whose bottom third is flat colour stripes
    scores ~1/3 (JPEG's ringing at the stripes' edges costs a few rows), the same photo clean ~0."""
    photo = np.ascontiguousarray(getattr(skdata, name)()[:, :, :3])
    clean = inspect_image(encode(photo, fmt, **({"quality": 90} if fmt == "JPEG" else {})), key).metrics
    broken = inspect_image(encode(_striped(photo), fmt, **({"quality": 90} if fmt == "JPEG" else {})), key).metrics
    assert clean["uniformRowRatio"] < 0.01
    assert broken["uniformRowRatio"] == pytest.approx(1 / 3, abs=0.04)
    assert "uniformRowRatio" in METRICS


def test_uniform_row_ratio_counts_rows_within_two_levels_and_letterbox_bars():
    rgb = np.random.default_rng(0).integers(0, 256, (10, 20, 3), dtype=np.uint8)
    rgb[0] = 0  # a letterbox bar: uniform, counted
    rgb[1] = 50
    rgb[1, ::2, 1] = 52  # green spans 2 levels: still uniform
    rgb[2] = 50
    rgb[2, 5, 2] = 53  # one pixel 3 levels off: not uniform
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    assert compute_metrics(rgb, gray, 0)["uniformRowRatio"] == pytest.approx(2 / 10)
