"""One rule for what an image looks like (``lightly_airflow.pixels``): the metadata pass (metrics and the UI
thumbnail), the image pass, object crops and the UI's pictures and boxes all see the same upright,
8-bit, transparency-on-white pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightly_airflow.embedding.images import open_rgb
from lightly_airflow.metadata.metrics import inspect_image
from lightly_airflow.plugins.media import image_size, read_crop, read_image


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _phone_photo(orientation: int = 6) -> bytes:
    """A landscape-stored 80×40 JPEG, left half white, tagged to be shown turned (6: 90° clockwise)."""
    array = np.zeros((40, 80, 3), np.uint8)
    array[:, :40] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(Image.fromarray(array), "JPEG", exif=exif.tobytes(), quality=95)


def _metadata_view(data: bytes, key: str) -> tuple[dict, np.ndarray]:
    seen: list[Image.Image] = []
    result = inspect_image(data, key, on_image=seen.append)
    assert result.ok, result.reason
    return result.metrics, np.asarray(seen[0])


def test_a_phone_photo_is_upright_for_its_metrics_and_thumbnail() -> None:
    """EXIF orientation 6: shown 40 wide and 80 tall, white on top. The thumbnail (made from the metadata pass'
    decode) and ``lightly.width``/``height`` were the stored, sideways picture."""
    metrics, pixels = _metadata_view(_phone_photo(), "phone.jpg")
    assert (metrics["width"], metrics["height"]) == (40, 80)
    assert pixels.shape == (80, 40, 3)
    assert pixels[:30].mean() > 200 and pixels[-30:].mean() < 50
    np.testing.assert_array_equal(pixels, np.asarray(open_rgb(_phone_photo())))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_the_same_white_for_metrics_model_input_and_crops(mode: str) -> None:
    """A logo on a transparent background: the metadata pass composited it on black, the image pass and the
    object crops on white, so an image's luminance and its crops' disagreed."""
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[8:24, 12:36] = (200, 30, 30, 255)  # an opaque red box, the rest fully transparent
    img = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        img = img.convert("LA")
    elif mode == "P":
        img = img.convert("P")
        img.info["transparency"] = img.getpixel((0, 0))
    data = _encode(img, "PNG", **({"transparency": img.info["transparency"]} if mode == "P" else {}))
    metrics, pixels = _metadata_view(data, "logo.png")
    np.testing.assert_array_equal(pixels, np.asarray(open_rgb(data)))
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert metrics["luminance"] > 70  # mostly white background (on black it was ~ 10)


def test_16_bit_grayscale_is_scaled_the_same_way_everywhere() -> None:
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    data = _encode(Image.fromarray(ramp), "TIFF")
    _, pixels = _metadata_view(data, "scan.tiff")
    np.testing.assert_array_equal(pixels, np.asarray(open_rgb(data)))
    assert 0 < pixels.mean() < 255 and pixels.max() < 255  # scaled, not clipped to white


def test_the_ui_draws_boxes_on_the_upright_picture_and_cuts_crops_from_it(tmp_path: Path) -> None:
    """The UI scaled predicted boxes by the stored (sideways) size from the header and cut object crops from the
    stored picture, while the crops were embedded from the upright one."""
    (tmp_path / "phone.jpg").write_bytes(_phone_photo())
    assert image_size(str(tmp_path), "phone.jpg", None) == (40, 80)
    assert read_image(str(tmp_path), "phone.jpg", None)[2] == (40, 80)
    crop = np.asarray(Image.open(io.BytesIO(read_crop(str(tmp_path), "phone.jpg", [0, 0, 40, 30], None))))
    assert crop.shape == (30, 40, 3)
    np.testing.assert_array_equal(crop, np.asarray(open_rgb(_phone_photo()))[:30, :40])
    assert crop.mean() > 200  # the top of the upright photo is white


def test_a_tiff_with_an_orientation_is_served_upright_to_the_browser(tmp_path: Path) -> None:
    """TIFFs are converted to PNG for the browser (which would not turn them): upright, as the passes see them."""
    array = np.zeros((40, 80, 3), np.uint8)
    array[:, :40] = 255
    exif = Image.Exif()
    exif[0x0112] = 8  # 90° counter-clockwise: the white left half goes to the bottom
    (tmp_path / "scan.tiff").write_bytes(_encode(Image.fromarray(array), "TIFF", exif=exif.tobytes()))
    data, content_type, size = read_image(str(tmp_path), "scan.tiff", None)
    shown = np.asarray(Image.open(io.BytesIO(data)))
    assert content_type == "image/png" and size == (40, 80) and shown.shape == (80, 40, 3)
    assert shown[-30:].mean() > 200 and shown[:30].mean() < 50
