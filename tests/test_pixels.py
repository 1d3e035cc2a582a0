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


def _png16(values: np.ndarray, sbit: int | None = None) -> bytes:
    """A 16-bit PNG (grey ``(H, W)``, grey + alpha ``(H, W, 2)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)``) written chunk by chunk: Pillow can
    write neither ``sBIT`` nor 16-bit colour. Rows alternate the filters None, Sub and Up (byte-wise, as decoders
    undo them)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    h, w = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    raw = np.frombuffer(values.astype(">u2").tobytes(), np.uint8).reshape(h, -1).astype(np.int16)
    rows = []
    for y in range(h):
        kind = y % 3
        if kind == 1:  # Sub: minus the byte one pixel to the left
            row = raw[y] - np.concatenate([np.zeros(2 * channels, np.int16), raw[y][: -2 * channels]])
        elif kind == 2:  # Up: minus the byte above
            row = raw[y] - raw[y - 1]
        else:
            row = raw[y]
        rows.append(bytes([kind]) + (row % 256).astype(np.uint8).tobytes())
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + (chunk(b"sBIT", bytes([sbit] * channels)) if sbit else b"")
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def _ramp(top: int) -> np.ndarray:
    """A 64×64 horizontal ramp from 0 to ``top``."""
    return np.tile(np.linspace(0, top, 64).round().astype(np.uint16), (64, 1))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_12_bit_camera_data_in_a_16_bit_file_is_not_black_and_the_guess_is_noted(fmt: str) -> None:
    """An industrial/medical camera's 12-bit values (0..4095) in a 16-bit PNG/TIFF that states no bit depth were
    scaled by 255/65535: the brightest pixel came out 15 of 255, a nearly black picture for metrics, thumbnail and
    model. Now white is 4095, and since nothing in the file said so, the result notes the guess."""
    data = _encode(Image.fromarray(_ramp(4095)), fmt)
    result = inspect_image(data, f"cam.{fmt.lower()}")
    seen: list[Image.Image] = []
    inspect_image(data, f"cam.{fmt.lower()}", on_image=seen.append)
    pixels = np.asarray(seen[0])
    assert pixels.max() == 255 and 120 < pixels.mean() < 135
    np.testing.assert_array_equal(pixels, np.asarray(open_rgb(data)))
    assert [kind for kind, _ in result.notes] == ["bit_depth_guessed"]
    assert "12-bit" in result.notes[0][1] and "4095" in result.notes[0][1]


@pytest.mark.parametrize(
    ("values", "sbit", "brightest"),
    [
        (_ramp(1023), 10, 255),  # a 10-bit camera's raw values, sBIT 10: white is 1023 (the guess would say 4095)
        (_ramp(4095), 12, 255),  # 12-bit raw values, sBIT 12
        (_ramp(4095) << 4, 12, 255),  # the PNG standard's way: 12-bit values shifted to 16 bits, sBIT 12
        (_ramp(1023), None, 63),  # nothing stated: the 12-bit guess (a 10-bit image is a quarter bright)
        (_ramp(3500), 16, 13),  # sBIT 16 states the full range: a depth map in mm reaching 3.5 m is not stretched
    ],
)
def test_a_png_sbit_chunk_states_the_white(values: np.ndarray, sbit: int | None, brightest: int) -> None:
    data = _png16(values, sbit)
    result = inspect_image(data, "cam.png")
    shown = np.asarray(open_rgb(data))
    assert shown.max() == brightest
    assert bool(result.notes) == (sbit is None)


@pytest.mark.parametrize(("stated", "brightest"), [(1023, 255), (65535, 3)])
def test_a_tiff_max_sample_value_states_the_white(stated: int, brightest: int) -> None:
    data = _encode(Image.fromarray(_ramp(1023)), "TIFF", tiffinfo={281: stated})
    result = inspect_image(data, "cam.tiff")
    assert np.asarray(open_rgb(data)).max() == brightest and result.notes == ()


def test_a_float_tiff_of_values_0_to_1_is_not_black() -> None:
    """Normalised float images (``F`` TIFF, 0.0..1.0) were taken as 0..255: every pixel 0 or 1."""
    data = _encode(Image.fromarray((_ramp(1000) / 1000).astype(np.float32)), "TIFF")
    result = inspect_image(data, "depth.tiff")
    shown = np.asarray(open_rgb(data))
    assert shown.max() == 255 and 120 < shown.mean() < 135
    assert result.notes[0][0] == "bit_depth_guessed"


def test_true_16_bit_and_8_bit_images_are_unchanged() -> None:
    full = _encode(Image.fromarray(_ramp(65535)), "PNG")
    assert np.asarray(open_rgb(full)).max() == 255 and inspect_image(full, "a.png").notes == ()
    eight = _encode(Image.fromarray(_ramp(255).astype(np.uint8)), "PNG")
    assert np.asarray(open_rgb(eight)).max() == 255 and inspect_image(eight, "a.png").notes == ()


def test_a_jpeg_above_the_pixel_limit_is_decoded_reduced_not_called_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A satellite image or panorama above ``PIL.Image.MAX_IMAGE_PIXELS`` (a 20000×15000 JPEG is 300 Mpx; the
    limit 89.5 Mpx) was "corrupt: decompression bomb" in the metadata pass and in the model input. A JPEG decodes
    at 1/2, 1/4 or 1/8 scale for nothing: the metrics, thumbnail and model input come from the scale that fits
    the limit, ``width``/``height`` stay the stored (upright) size, and the result notes it. Here the limit is
    lowered to 10,000 pixels so a 400×300 photo stands in for the big one."""
    array = np.zeros((300, 400, 3), np.uint8)
    array[:, :200] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned: 300 wide, 400 tall
    data = _encode(Image.fromarray(array), "JPEG", quality=95, exif=exif.tobytes())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    seen: list[Image.Image] = []
    result = inspect_image(data, "pano.jpg", on_image=seen.append)
    assert result.ok, result.reason
    assert (result.metrics["width"], result.metrics["height"]) == (300, 400)
    assert seen[0].size == (75, 100)  # 1/4 scale (1/2 would be 30,000 pixels), upright
    assert 45 < result.metrics["luminance"] < 55
    assert [kind for kind, _ in result.notes] == ["decoded_reduced"] and "400x300" in result.notes[0][1]
    from lightly_airflow.embedding.images import decode_image

    assert decode_image(data, 64).shape == (64, 64, 3)


def test_images_too_large_to_decode_say_so_with_their_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG (decoded whole) above the limit, and a JPEG above it even at 1/8 scale: corrupt, with the size, the
    limit and what to do, instead of Pillow's "could be decompression bomb DOS attack"."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    png = inspect_image(_encode(Image.new("RGB", (400, 300)), "PNG"), "pano.png")  # 12x the limit: Pillow's error
    assert not png.ok and "too large to decode: 400x300" in png.reason and "MAX_IMAGE_PIXELS" in png.reason
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    jpg = inspect_image(_encode(Image.new("RGB", (400, 300)), "JPEG"), "pano.jpg")  # 1/8: 50x38 > 1000
    assert not jpg.ok and "too large to decode: 400x300" in jpg.reason


def test_the_ui_shows_a_12_bit_png_as_the_passes_see_it(tmp_path: Path) -> None:  # grey and colour
    """The full image of a 16-bit PNG went to the browser as stored, which shows its high bytes: 12-bit camera data
    nearly black next to its (scaled) thumbnail. It is converted like a TIFF now, and its crops match."""
    data = _png16(_ramp(4095), 12)
    (tmp_path / "cam.png").write_bytes(data)
    served, content_type, size = read_image(str(tmp_path), "cam.png", None)
    shown = np.asarray(Image.open(io.BytesIO(served)).convert("RGB"))
    assert content_type == "image/png" and size == (64, 64)
    np.testing.assert_array_equal(shown, np.asarray(open_rgb(data)))
    crop = np.asarray(Image.open(io.BytesIO(read_crop(str(tmp_path), "cam.png", [32, 0, 32, 8], None))))
    assert crop.min() >= 127
    colour = _png16(_colour_ramp(4095))
    (tmp_path / "colour.png").write_bytes(colour)
    served, _, _ = read_image(str(tmp_path), "colour.png", None)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(served)).convert("RGB")), np.asarray(open_rgb(colour)))


def test_a_float_depth_map_with_no_data_pixels_is_not_black() -> None:
    """One NaN ("no data", common in depth maps and elevation models) made the largest value NaN, so the white
    fell through to 65535 and the whole picture was black (luminance 0)."""
    depth = (_ramp(1000) / 1000).astype(np.float32)
    depth[:4] = np.nan
    data = _encode(Image.fromarray(depth), "TIFF")
    shown = np.asarray(open_rgb(data))
    assert shown[:4].max() == 0 and shown[4:].max() == 255
    assert inspect_image(data, "depth.tiff").metrics["luminance"] > 40


NOT_IMAGES = {
    "error.jpg": (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>nginx</body></html>",
                  "an HTML page"),
    "s3.jpg": (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied'
               b"</Message></Error>", "XML error document (AccessDenied)"),
    "lfs.png": (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a21\nsize 1234567\n", "Git LFS pointer"),
    "IMG_0001.HEIC": (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(200), "HEIC/HEIF"),
    "logo.png": (b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>', "SVG"),
}


def test_files_that_are_no_image_say_what_they_are_in_both_passes(tmp_path: Path) -> None:
    """An error page or an S3 error saved under a .jpg name, a Git LFS pointer, an iPhone HEIC's first bytes (then
    zeros: libheif cannot read it) or an SVG were "not an image Pillow can identify (unreadable or unknown format)" in the metadata
    pass and "UnidentifiedImageError: cannot identify image file" in the image pass: nothing to act on."""
    from lightly_airflow.embedding.images import ShardImages

    for key, (data, what) in NOT_IMAGES.items():
        (tmp_path / key).write_bytes(data)
        result = inspect_image(data, key)
        assert not result.ok and what in result.reason, (key, result.reason)
    keys = list(NOT_IMAGES)
    batch = ShardImages(str(tmp_path), keys, list(range(len(keys))), input_size=32, batch_size=len(keys))[0]
    assert batch.status == ["corrupt"] * len(keys)
    for key, reason in zip(keys, batch.reasons):
        assert reason is not None and NOT_IMAGES[key][1] in reason, (key, reason)


def test_a_reason_that_knows_its_fix_marks_it_for_the_report() -> None:
    """The fixes of an SVG, a Git LFS pointer and an image over Pillow's bomb guard were in the reason's text without
    the "Fix:" marker: the report's fix column (``split_fix``) missed them and the metadata pass added its generic
    "replace the file" after them."""
    from lightly_airflow.pixels import too_large_to_decode
    from lightly_airflow.report.problems import split_fix

    reasons = {"logo.png": inspect_image(NOT_IMAGES["logo.png"][0], "logo.png").reason,
               "lfs.png": inspect_image(NOT_IMAGES["lfs.png"][0], "lfs.png").reason,
               "big.png": too_large_to_decode(30_000, 20_000, 178_956_970, "PNG")}
    fixes = {key: split_fix("metadata", reason or "")[1] for key, reason in reasons.items()}
    assert fixes == {"logo.png": "convert it to PNG", "lfs.png": "run `git lfs pull`",
                     "big.png": "raise the limit in the workers if they have the memory, or store the image as JPEG "
                                "or in tiles"}, fixes


def _colour_ramp(top: int) -> np.ndarray:
    """A 64×64 RGB picture: red rises left to right, green top to bottom, blue is the mean of both (0..``top``)."""
    red = _ramp(top).astype(np.uint32)
    return np.dstack([red, red.T, (red + red.T) // 2]).astype(np.uint16)


@pytest.mark.parametrize("sbit", [None, 12])
def test_12_bit_colour_in_a_16_bit_png_is_not_black(sbit: int | None) -> None:
    """Pillow decodes a 16-bit colour PNG to the high byte of each value: 12-bit colour data (0..4095) came out
    0..15 of 255 in metrics, thumbnail and model input. The low bytes are decoded too now when the white (stated
    by sBIT, or guessed) is below 65535, and the colours are scaled like grey ones."""
    values = _colour_ramp(4095)
    data = _png16(values, sbit)
    seen: list[Image.Image] = []
    result = inspect_image(data, "cam.png", on_image=seen.append)
    shown = np.asarray(seen[0])
    np.testing.assert_array_equal(shown, np.asarray(open_rgb(data)))
    expected = (values.astype(np.float64) * 255 / 4095).astype(np.uint8)
    np.testing.assert_array_equal(shown, expected)
    assert [kind for kind, _ in result.notes] == ([] if sbit else ["bit_depth_guessed"])


def test_16_bit_colour_with_transparency_and_true_16_bit_colour() -> None:
    rgba = np.dstack([_colour_ramp(4095), np.full((64, 64), 65535, np.uint16)])
    rgba[:8, :, 3] = 0  # transparent top rows: white, as everywhere
    shown = np.asarray(open_rgb(_png16(rgba)))
    assert shown[:8].min() == 255 and shown[8:, -1, 0].min() == 255  # the rest scaled to full brightness
    full = _colour_ramp(65535)  # 16-bit data: Pillow's own high bytes, one decode
    shown = np.asarray(open_rgb(_png16(full)))
    np.testing.assert_array_equal(shown, (full >> 8).astype(np.uint8))


def _tiff16(values: np.ndarray, big_endian: bool = False, deflate: bool = False, max_sample: int | None = None) -> bytes:
    """A 16-bit RGB ``(H, W, 3)``, RGBA ``(H, W, 4)`` or grey + alpha ``(H, W, 2)`` TIFF, one strip, written tag by tag (Pillow cannot write 16-bit
    colour): uncompressed (Pillow's own reader) or Deflate (read through libtiff), either byte order."""
    import struct
    import zlib

    order = ">" if big_endian else "<"
    h, w, channels = values.shape
    photometric = 2 if channels >= 3 else 1
    strip = values.astype(order + "u2").tobytes()
    strip = zlib.compress(strip) if deflate else strip
    tags = [(256, 3, [w]), (257, 3, [h]), (258, 3, [16] * channels), (259, 3, [8 if deflate else 1]),
            (262, 3, [photometric]),
            (273, 4, [0]), (277, 3, [channels]), (278, 3, [h]), (279, 4, [len(strip)]), (284, 3, [1])]
    tags += [(338, 3, [2])] if channels in (2, 4) else []  # unassociated alpha
    tags += [(281, 3, [max_sample] * channels)] if max_sample else []
    tags.sort()
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * len(tags) + 4
    extra, entries = b"", b""
    strip_at = extra_at + sum(2 * len(v) for _, kind, v in tags if kind == 3 and len(v) > 2)
    for tag, kind, vals in tags:
        vals = [strip_at] if tag == 273 else vals
        packed = struct.pack(order + ("H" if kind == 3 else "I") * len(vals), *vals)
        if len(packed) > 4:
            entries += struct.pack(order + "HHII", tag, kind, len(vals), extra_at + len(extra))
            extra += packed
        else:
            entries += struct.pack(order + "HHI", tag, kind, len(vals)) + packed.ljust(4, b"\0")
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(order + "I", ifd_at)
    return head + struct.pack(order + "H", len(tags)) + entries + struct.pack(order + "I", 0) + extra + strip


@pytest.mark.parametrize(("big_endian", "deflate"), [(False, False), (True, False), (False, True)])
def test_12_bit_colour_in_a_16_bit_tiff_is_not_black(big_endian: bool, deflate: bool) -> None:
    """A 16-bit colour TIFF (a machine-vision or microscope camera's RGB) kept only the high byte of each value:
    12-bit data came out 0..15 of 255. It is decoded with the low bytes now, as 16-bit colour PNGs are."""
    values = _colour_ramp(4095)
    data = _tiff16(values, big_endian, deflate)
    seen: list[Image.Image] = []
    result = inspect_image(data, "cam.tiff", on_image=seen.append)
    shown = np.asarray(seen[0])
    np.testing.assert_array_equal(shown, np.asarray(open_rgb(data)))
    np.testing.assert_array_equal(shown, (values.astype(np.float64) * 255 / 4095).astype(np.uint8))
    assert [kind for kind, _ in result.notes] == ["bit_depth_guessed"]
    full = _colour_ramp(65535)  # true 16-bit colour: unchanged (the high bytes)
    np.testing.assert_array_equal(np.asarray(open_rgb(_tiff16(full, big_endian, deflate))), (full >> 8).astype(np.uint8))


@pytest.mark.parametrize(("compression", "byteorder", "tile"),
                         [(None, "<", None), (None, ">", (16, 16)), ("zlib", "<", None), ("zlib", ">", (16, 16))])
def test_a_planar_16_bit_colour_tiff_is_decoded_plane_by_plane(
        tmp_path: Path, compression: str | None, byteorder: str, tile: tuple[int, int] | None) -> None:
    """A 16-bit RGB TIFF with each colour in its own plane (PlanarConfiguration 2: tifffile's
    ``planarconfig='separate'``, microscope software) was decoded by Pillow with an 8-bit unpacker when uncompressed
    (half of each plane, high and low bytes side by side: a garbled picture) and by its high bytes when
    compressed (12-bit data near-black). Each plane is decoded as 16 bits now and scaled as a chunky TIFF's: the
    metadata pass, the model input and the UI see the picture a viewer shows."""
    tifffile = pytest.importorskip("tifffile")
    from lightly_airflow.embedding.images import ShardImages

    def planar(values: np.ndarray) -> bytes:
        out = io.BytesIO()
        tifffile.imwrite(out, np.ascontiguousarray(values.transpose(2, 0, 1)), planarconfig="separate",
                         photometric="rgb", compression=compression, byteorder=byteorder, tile=tile, rowsperstrip=5)
        return out.getvalue()

    values = _colour_ramp(4095)
    data = planar(values)
    want = (values.astype(np.float64) * 255 / 4095).astype(np.uint8)
    seen: list[Image.Image] = []
    result = inspect_image(data, "cam.tif", on_image=seen.append)
    np.testing.assert_array_equal(np.asarray(seen[0]), want)
    np.testing.assert_array_equal(np.asarray(open_rgb(data)), want)
    assert [kind for kind, _ in result.notes] == ["bit_depth_guessed"]
    (tmp_path / "cam.tif").write_bytes(data)
    batch = ShardImages(str(tmp_path), ["cam.tif"], [0], input_size=64, batch_size=1)[0]
    assert batch.status == ["ok"]
    full = _colour_ramp(65535)  # true 16-bit colour: its high bytes, not a garbled picture
    np.testing.assert_array_equal(np.asarray(open_rgb(planar(full))), (full >> 8).astype(np.uint8))


def test_a_16_bit_colour_tiff_max_sample_value_and_alpha() -> None:
    """14-bit colour with MaxSampleValue 16383 stated (high bytes up to 63, above the 12-bit guess) is scaled by
    the stated white; the alpha of a 16-bit RGBA TIFF still composites on white."""
    values = _colour_ramp(16383)
    shown = np.asarray(open_rgb(_tiff16(values, max_sample=16383)))
    np.testing.assert_array_equal(shown, (values.astype(np.float64) * 255 / 16383).astype(np.uint8))
    rgba = np.dstack([_colour_ramp(4095), np.full((64, 64), 65535, np.uint16)])
    rgba[:8, :, 3] = 0
    shown = np.asarray(open_rgb(_tiff16(rgba)))
    assert shown[:8].min() == 255 and shown[8:, -1, 0].min() == 255


def test_a_tiff_pillow_cannot_open_says_its_layout_in_both_passes(tmp_path: Path) -> None:
    """A 16-bit grey + alpha TIFF (Pillow has no reader for it) was "not an image Pillow can identify (unreadable
    or unknown format)", though it is a TIFF: the reason now says so, with its layout and what to convert it to."""
    from lightly_airflow.embedding.images import ShardImages

    data = _tiff16(np.dstack([_ramp(4095), np.full((64, 64), 65535, np.uint16)]))
    reason = inspect_image(data, "scan.tif").reason
    assert reason is not None and "a TIFF (2 samples per pixel of 16 bits (unsigned), photometric BlackIsZero" in reason
    assert "convert it" in reason
    (tmp_path / "scan.tif").write_bytes(data)
    batch = ShardImages(str(tmp_path), ["scan.tif"], [0], input_size=32, batch_size=1)[0]
    assert batch.status == ["corrupt"] and "a TIFF (2 samples" in (batch.reasons[0] or "")


def test_12_bit_grey_with_alpha_in_a_16_bit_png_is_not_black() -> None:
    """A 16-bit grey + alpha PNG (Pillow opens it as RGBA from each value's high byte) showed 12-bit data 0..15 of
    255; transparent pixels stay white."""
    grey = _ramp(4095)
    alpha = np.full((64, 64), 65535, np.uint16)
    alpha[:8] = 0
    shown = np.asarray(open_rgb(_png16(np.dstack([grey, alpha]), sbit=12)))
    assert shown[:8].min() == 255
    expected = (grey[8:].astype(np.float64) * 255 / 4095).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(shown[8:, :, channel], expected)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "TIFF"])
def test_an_animated_or_multi_page_image_is_its_first_frame_and_says_so(fmt: str) -> None:
    """An animated GIF/WebP/PNG or a multi-page TIFF (a scan, a microscope stack) was silently its first frame."""
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    seen: list[Image.Image] = []
    result = inspect_image(data, f"clip.{fmt.lower()}", on_image=seen.append)
    assert np.asarray(seen[0])[0, 0, 0] > 240 and np.asarray(seen[0])[0, 0, 1] < 20  # red: the first frame
    assert [kind for kind, _ in result.notes] == ["first_frame_only"] and fmt in result.notes[0][1]
    single = _encode(frames[1], fmt)
    assert inspect_image(single, f"still.{fmt.lower()}").notes == ()


def test_a_phones_mpo_is_its_photo_without_a_note() -> None:
    """An MPO's further images are a phone's depth or gain maps, not frames of the sample."""
    data = _encode(Image.new("RGB", (40, 30), "red"), "MPO", save_all=True, append_images=[Image.new("RGB", (40, 30))])
    result = inspect_image(data, "photo.jpg")
    assert result.ok and result.notes == () and result.metrics["meanRed"] > 240


def test_the_ui_shows_a_jpeg_above_the_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its thumbnail and metrics exist (decoded reduced), but the UI's full image was "cannot be decoded:
    DecompressionBombError": the browser gets the JPEG as stored, with its stored, upright size."""
    array = np.zeros((300, 400, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(array), "JPEG", exif=exif.tobytes())
    (tmp_path / "pano.jpg").write_bytes(data)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    assert read_image(str(tmp_path), "pano.jpg", None) == (data, "image/jpeg", (300, 400))
    assert image_size(str(tmp_path), "pano.jpg", None) == (300, 400)


def test_a_progressive_jpeg_far_above_the_pixel_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A progressive JPEG holds all its coefficients in memory at any decode scale (a 20000×15000 one: 1.4 GB peak
    against 1.0 GB baseline), so one far above the limit (a 65535×65535 one would need ~13 GB) is refused with
    what to do; up to twice the limit it is decoded reduced like a baseline one."""
    photo = Image.fromarray(np.zeros((300, 400, 3), np.uint8))
    progressive = _encode(photo, "JPEG", progressive=True)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)  # 12x
    result = inspect_image(progressive, "pano.jpg")
    assert not result.ok and "progressive JPEG" in result.reason and "baseline" in result.reason
    assert inspect_image(_encode(photo, "JPEG"), "pano.jpg").ok  # baseline: decoded reduced
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 70_000)  # 1.7x
    assert inspect_image(progressive, "pano.jpg").ok


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_an_rgb_or_grey_png_with_a_transparent_colour_shows_it_on_white(mode: str) -> None:
    """An 8-bit RGB or grey PNG with a tRNS chunk (one colour transparent: what oxipng or pngcrush write for an
    RGBA picture whose alpha is only on or off) was decoded with that colour opaque; viewers show it transparent,
    and palette PNGs with tRNS were already composited on white. Now these are too, in every pass."""
    array = np.zeros((32, 48, 3), np.uint8)
    array[:, :24] = (220, 40, 40)
    array[:, 24:] = (10, 200, 10)
    img = Image.fromarray(array).convert(mode)
    key = img.getpixel((0, 0))
    out = io.BytesIO()
    img.save(out, "PNG", transparency=key)
    data = out.getvalue()
    want = np.asarray(img.convert("RGB")).copy()
    want[:, :24] = 255
    seen: list[Image.Image] = []
    result = inspect_image(data, "icon.png", on_image=seen.append)
    assert result.reason is None
    np.testing.assert_array_equal(np.asarray(seen[0]), want)
    np.testing.assert_array_equal(np.asarray(open_rgb(data)), want)


def test_the_metadata_pass_threads_leave_the_warning_filters_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata pass made Pillow's DecompressionBombWarning an error with ``warnings.catch_warnings`` (not
    thread-safe): its threads left the "error" filter behind for the whole process. An image above the limit is
    refused by its size as before, with the same words."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    blobs = []
    for i in range(64):
        out = io.BytesIO()
        Image.new("RGB", (64 + i % 7, 48), (i, 0, 0)).save(out, "PNG")
        blobs.append(out.getvalue())
    before = list(warnings.filters)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            assert all(r.reason is None for r in pool.map(lambda b: inspect_image(b, "a.png"), blobs))
    assert list(warnings.filters) == before
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 40)  # above it, under twice it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        reason = inspect_image(blobs[0], "a.png").reason
    assert reason is not None and reason.startswith("too large to decode: 64x48")


def test_the_metadata_pass_reads_pillow_s_memory_in_place_with_the_same_metrics() -> None:
    """A 12 Mpx photo's metadata pass spent a third of its time copying Pillow's pixels into numpy. Inside
    ``image_memory`` (the metadata shard's threads) an image is one block of Pillow's memory and the metrics read it
    in place, 4 bytes a pixel; outside, a picture above Pillow's 16 MiB blocks is copied as before. The metrics are
    the same either way, and Pillow's settings come back when the last scope ends."""
    from lightly_airflow.metadata.metrics import _metrics_of_image, compute_metrics
    from lightly_airflow.pixels import display_rgb, image_memory, open_image, pixel_array

    core = Image.core
    settings = (core.get_block_size(), core.get_blocks_max())
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, size=(75, 101, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(base).resize((2501, 1801), Image.Resampling.BICUBIC))  # 18 MB as RGBX
    big = big.copy()
    big[100:140] = (30, 200, 90)  # uniform rows
    data = _encode(Image.fromarray(big), "JPEG", quality=92)
    decoded = display_rgb(open_image(data, fit=True))
    copied = pixel_array(decoded)
    assert copied.shape == (1801, 2501, 3)  # (three Pillow blocks: copied)
    gray = np.asarray(decoded.convert("L"))
    expected = compute_metrics(np.asarray(decoded), gray, len(data))
    with image_memory(3):
        assert (core.get_block_size(), core.get_blocks_max()) == (max(settings[0], 1 << 30), max(settings[1], 12))
        with image_memory(2):
            inside = display_rgb(open_image(data, fit=True))
            view = pixel_array(inside)
        assert core.get_blocks_max() == max(settings[1], 12)  # (the outer scope still holds)
        assert view.shape == (1801, 2501, 4) and not view.flags.writeable
        assert np.array_equal(view[..., :3], copied)
        assert _metrics_of_image(inside, len(data)) == expected
        small = Image.fromarray(base)
        assert pixel_array(small).shape == (75, 101, 4)  # (small images are one block anyway)
    assert (core.get_block_size(), core.get_blocks_max()) == settings
    assert _metrics_of_image(decoded, len(data)) == expected
    assert expected["uniformRowRatio"] > 0.005  # (some of the uniform band survives the JPEG)


def test_a_float_image_with_no_data_pixels_says_how_many_are_shown_black() -> None:
    """A float TIFF (a depth map, an elevation model) whose "no data" is NaN or infinite: those pixels are black, as
    before, and the metadata pass now notes how many (``no_data_pixels``); an all-NaN one was a black picture with
    no word."""
    values = np.linspace(0.0, 1.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    values[:8] = np.nan
    values[8, :4] = np.inf
    result = inspect_image(_encode(Image.fromarray(values, "F"), "TIFF"), "depth.tif")
    notes = dict(result.notes)
    assert notes["no_data_pixels"] == "516 of its 3,072 pixels are NaN or infinite (no data), shown black"
    blank = inspect_image(_encode(Image.fromarray(np.full((8, 8), np.nan, np.float32), "F"), "TIFF"), "nodata.tif")
    assert dict(blank.notes)["no_data_pixels"].endswith("shown black: the whole picture")
    fine = inspect_image(_encode(Image.fromarray(np.ones((8, 8), np.float32), "F"), "TIFF"), "ones.tif")
    assert "no_data_pixels" not in dict(fine.notes)
