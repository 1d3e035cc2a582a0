"""Embedded ICC colour profiles (``lightly_airflow.pixels.to_srgb``): an iPhone's Display P3 photo, a print shop's
Adobe RGB or CMYK file, a scanner's grey were decoded as if their values were sRGB (washed out or shifted next to
the original in a colour-managed browser, other colours for the model). Every pass now sees them in sRGB."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from icc_profiles import (
    P3_PRIMARIES,
    SRGB_PRIMARIES,
    adobe_rgb,
    display_p3,
    gamma_curve,
    grey_profile,
    hp_srgb,
    press_cmyk,
    rgb_to_xyz,
    srgb_curve,
)
from PIL import Image, ImageCms

from lightly_airflow import pixels
from lightly_airflow.embedding.images import decode_image, open_rgb, open_rgb_for_boxes
from lightly_airflow.metadata.metrics import inspect_image
from lightly_airflow.metadata.shard import NOTE_KINDS
from lightly_airflow.pixels import display_rgb, open_image
from lightly_airflow.plugins.media import image_size, read_crop, read_image
from lightly_airflow.thumbnails import make_thumbnail

#: P3 colours of a photo: a red, a green, a blue, a skin tone, a grey, white, the saturated red.
P3_PATCHES = [(180, 60, 60), (60, 180, 60), (40, 60, 200), (224, 172, 140), (128, 128, 128), (255, 255, 255),
              (255, 0, 0)]


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _patches(colours: list[tuple[int, ...]], side: int = 16, mode: str = "RGB") -> Image.Image:
    """One flat ``side`` x ``side`` square per colour, side by side."""
    row = np.concatenate([np.full((side, side, len(c)), c, np.uint8) for c in colours], axis=1)
    return Image.fromarray(row if len(colours[0]) > 1 else row[..., 0], mode)


def _centres(img: Image.Image, n: int, side: int = 16) -> list[tuple[int, ...]]:
    arr = np.asarray(img.convert("RGB"))
    return [tuple(int(v) for v in arr[side // 2, i * side + side // 2]) for i in range(n)]


def _lcms(img: Image.Image, icc: bytes, mode: str) -> Image.Image:
    """What littlecms itself makes of ``img``'s values in the profile (perceptual, to its sRGB)."""
    return ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
                                     renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode=mode)


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055) * 255


def _p3_to_srgb_by_hand(rgb: tuple[int, int, int]) -> np.ndarray:
    """Display P3 to sRGB by the published primaries (same D65 white, same tone curve), not by littlecms."""
    v = np.array(rgb) / 255
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return _srgb_encode(np.linalg.solve(rgb_to_xyz(SRGB_PRIMARIES), rgb_to_xyz(P3_PRIMARIES) @ linear))


def test_a_display_p3_photo_is_sRGB_in_every_pass(tmp_path: Path) -> None:
    """An iPhone JPEG (Display P3): the metadata metrics, the thumbnail, the model input and the object pass' crops
    all had the P3 values read as sRGB (a P3 red 180,60,60 is sRGB 196,47,54). The UI's crop is the same sRGB
    pixels (it was the P3 values with the profile attached)."""
    icc = display_p3()
    raw = _patches(P3_PATCHES)
    png = _encode(raw, "PNG", icc_profile=icc)  # lossless: the exact values
    want = _centres(_lcms(raw, icc, "RGB"), len(P3_PATCHES))
    got = _centres(display_rgb(open_image(png)), len(P3_PATCHES))
    assert got == want
    for colour, value in zip(P3_PATCHES, got):  # littlecms agrees with the maths of the primaries
        assert np.abs(np.array(value) - _p3_to_srgb_by_hand(colour)).max() <= 1.5, (colour, value)
    assert got[0] == (196, 47, 54) and got[0] != P3_PATCHES[0]
    assert got[4:7] == [(128, 128, 128), (255, 255, 255), (255, 0, 0)]  # greys and white stay; red clips

    jpeg = _encode(raw, "JPEG", icc_profile=icc, quality=95)
    decoded = Image.open(io.BytesIO(jpeg))
    want_jpeg = np.asarray(_lcms(decoded.convert("RGB"), icc, "RGB"))
    seen: list[Image.Image] = []
    result = inspect_image(jpeg, "IMG_0001.jpg", on_image=seen.append)
    assert result.ok and result.notes == ()
    np.testing.assert_array_equal(np.asarray(seen[0]), want_jpeg)
    assert abs(result.metrics["meanRed"] - want_jpeg[..., 0].mean()) < 1e-6
    thumb = np.asarray(Image.open(io.BytesIO(make_thumbnail(seen[0]))), dtype=int)
    assert np.abs(thumb[8, 8] - np.array(want[0])).max() <= 4  # the thumbnail JPEG's own loss only
    np.testing.assert_array_equal(np.asarray(open_rgb(jpeg)), want_jpeg)  # model input and objects' crops
    np.testing.assert_array_equal(np.asarray(open_rgb_for_boxes(jpeg)[0]), want_jpeg)
    model = decode_image(jpeg, 112)  # the encoder's square input: 7 patches of 16 wide, stretched to 112 tall
    assert np.abs(model.astype(int)[56, 8] - np.array(want[0])).max() <= 4
    (tmp_path / "IMG_0001.jpg").write_bytes(jpeg)
    crop = np.asarray(Image.open(io.BytesIO(read_crop(str(tmp_path), "IMG_0001.jpg", [0, 0, 16, 16], None))))
    np.testing.assert_array_equal(crop, want_jpeg[:, :16])


@pytest.mark.parametrize("icc", [hp_srgb(), ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
                                 grey_profile(srgb_curve(), "Grey with the sRGB curve")],
                         ids=["hp-srgb", "lcms-srgb", "grey-srgb-curve"])
def test_an_srgb_profile_changes_no_value(icc: bytes) -> None:
    """sRGB profiles (HP's in most camera JPEGs; Apple's and Google's) leave every value as stored, at no cost:
    the decode is returned as it is (a guard: passes with and without the conversion)."""
    rng = np.random.default_rng(1)
    grey = icc[16:20] == b"GRAY"
    arr = rng.integers(0, 256, (24, 24) if grey else (24, 24, 3), dtype=np.uint8)
    img = open_image(_encode(Image.fromarray(arr), "PNG", icc_profile=icc))
    img.load()
    shown = display_rgb(img)
    np.testing.assert_array_equal(np.asarray(shown), np.asarray(img.convert("RGB")))
    if not grey:
        assert shown is img


@pytest.mark.parametrize("damage", ["garbage", "truncated", "cmyk-profile-on-rgb"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_broken_or_unfitting_profile_keeps_the_values_and_says_so(damage: str, fmt: str, tmp_path: Path) -> None:
    """A damaged profile (cut short by a tool that rewrote the JPEG's APP2 segments, bytes of something else) or one
    for other data (a CMYK profile left on an RGB file) never fails the file: its values are shown as stored, and
    the metadata pass notes it (``colour_profile_ignored``) as it notes a guessed bit depth."""
    icc = {"garbage": b"\x00\x01junk" * 40, "truncated": display_p3()[:300],
           "cmyk-profile-on-rgb": press_cmyk()}[damage]
    raw = _patches(P3_PATCHES[:4])
    data = _encode(raw, fmt, icc_profile=icc, **({"quality": 95} if fmt == "JPEG" else {}))
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    seen: list[Image.Image] = []
    key = "photo.jpg" if fmt == "JPEG" else "photo.png"
    result = inspect_image(data, key, on_image=seen.append)
    assert result.ok, result.reason
    assert [kind for kind, _ in result.notes] == ["colour_profile_ignored"]
    words = result.notes[0][1]
    assert ("for CMYK data but the image is RGB" if damage.startswith("cmyk") else "ICC profile") in words
    assert "colour_profile_ignored" in NOTE_KINDS
    np.testing.assert_array_equal(np.asarray(seen[0]), stored)
    np.testing.assert_array_equal(np.asarray(open_rgb(data)), stored)
    (tmp_path / key).write_bytes(data)
    crop = np.asarray(Image.open(io.BytesIO(read_crop(str(tmp_path), key, [0, 0, 16, 16], None))))
    np.testing.assert_array_equal(crop, stored[:, :16])


def test_a_cmyk_jpeg_is_converted_through_its_profile() -> None:
    """A print shop's CMYK JPEG: Pillow's naive conversion makes 100 % cyan RGB 0,255,255 (a screen cyan no press
    prints) and the paper pure white; through the file's profile it is the press' cyan, as Photoshop and browsers
    show it. A CMYK JPEG without a profile is converted as before."""
    icc = press_cmyk()
    inks = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255), (128, 64, 0, 32)]
    raw = _patches(inks, mode="CMYK")
    data = _encode(raw, "JPEG", icc_profile=icc, quality=95)
    stored = Image.open(io.BytesIO(data))
    assert stored.mode == "CMYK"
    want = np.asarray(_lcms(stored.copy(), icc, "RGB"))
    seen: list[Image.Image] = []
    result = inspect_image(data, "flyer.jpg", on_image=seen.append)
    assert result.ok and result.notes == ()
    np.testing.assert_array_equal(np.asarray(seen[0]), want)
    np.testing.assert_array_equal(np.asarray(open_rgb(data)), want)
    cyan = _centres(seen[0], len(inks))[1]
    assert cyan[0] < 20 and 120 < cyan[1] < 180 and cyan[2] > 190  # the press cyan, not 0,255,255
    plain = _encode(raw, "JPEG", quality=95)
    np.testing.assert_array_equal(np.asarray(open_rgb(plain)), np.asarray(Image.open(io.BytesIO(plain)).convert("RGB")))


@pytest.mark.parametrize("bits", [8, 16])
def test_a_grey_image_with_a_grey_profile_is_converted(bits: int) -> None:
    """A scanner's grey PNG with a linear grey profile (gamma 1.0): its mid grey 128 is sRGB 188, not 128; the same
    for 16-bit grey (scaled to 8 bits first). Still grey (R = G = B)."""
    icc = grey_profile(gamma_curve(1.0), "Linear grey")
    ramp = np.tile(np.arange(0, 256, 1, dtype=np.uint16), (8, 1))
    arr = ramp.astype(np.uint8) if bits == 8 else (ramp * 257).astype(np.uint16)
    data = _encode(Image.fromarray(arr), "PNG", icc_profile=icc)
    seen: list[Image.Image] = []
    result = inspect_image(data, "scan.png", on_image=seen.append)
    assert result.ok and result.notes == ()
    shown = np.asarray(seen[0]).astype(int)
    want = np.asarray(_lcms(Image.fromarray(ramp.astype(np.uint8)), icc, "RGB")).astype(int)
    np.testing.assert_array_equal(shown, want)
    assert shown[0, 128].tolist() == [188, 188, 188] and (shown[..., 0] == shown[..., 2]).all()
    np.testing.assert_array_equal(np.asarray(open_rgb(data)), shown)


def test_transparency_is_composited_after_the_conversion() -> None:
    """An Adobe RGB PNG with alpha (a product cut-out) and a grey PNG whose transparent colour (tRNS) has a grey
    profile: colours converted, then put on white as before; the keyed colour is still transparent."""
    icc = adobe_rgb()
    rgba = np.zeros((16, 32, 4), np.uint8)
    rgba[:, :16] = (40, 160, 60, 255)
    rgba[:, 16:] = (40, 160, 60, 0)
    data = _encode(Image.fromarray(rgba, "RGBA"), "PNG", icc_profile=icc)
    shown = np.asarray(open_rgb(data))
    converted = np.asarray(_lcms(Image.fromarray(rgba[..., :3]), icc, "RGB"))
    np.testing.assert_array_equal(shown[:, :16], converted[:, :16])
    assert converted[0, 0].tolist() != [40, 160, 60]
    assert (shown[:, 16:] == 255).all()

    grey_icc = grey_profile(gamma_curve(1.0), "Linear grey")
    grey = np.full((8, 16), 128, np.uint8)
    grey[:, 8:] = 7
    keyed = _encode(Image.fromarray(grey), "PNG", icc_profile=grey_icc, transparency=7)
    shown = np.asarray(open_rgb(keyed))
    assert shown[0, 0].tolist() == [188, 188, 188] and (shown[:, 8:] == 255).all()

    # With a damaged profile the transparent colour is still transparent (it was dropped with the profile).
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 30)
    damaged = _undecompressable_iccp(_encode(Image.fromarray(rgb), "PNG", icc_profile=display_p3(),
                                             transparency=(0, 0, 0)))
    result = inspect_image(damaged, "icon.png")
    assert [kind for kind, _ in result.notes] == ["colour_profile_ignored"]
    shown = np.asarray(open_rgb(damaged))
    assert shown[0, 0].tolist() == [200, 30, 30] and (shown[:, 8:] == 255).all()


def test_the_ui_serves_a_cmyk_tiff_and_crops_of_a_transparent_p3_png_in_srgb(tmp_path: Path) -> None:
    """The UI converts TIFFs to PNG: a CMYK TIFF came as naive RGB (cyan 0,255,255) tagged with its CMYK profile,
    which no browser applies to RGB data. A crop of a P3 PNG with alpha was composited on white and lost its
    profile (P3 values shown as sRGB). (Crops of plain RGB images kept their profile in the PNG and looked right
    in a colour-managed browser; now they are sRGB like everything else.)"""
    icc = press_cmyk()
    (tmp_path / "flyer.tiff").write_bytes(_encode(_patches([(255, 0, 0, 0)], mode="CMYK"), "TIFF", icc_profile=icc))
    data, content_type, _ = read_image(str(tmp_path), "flyer.tiff", None)
    served = Image.open(io.BytesIO(data))
    assert content_type == "image/png" and served.mode == "RGB"
    assert _centres(served, 1) == _centres(_lcms(_patches([(255, 0, 0, 0)], mode="CMYK"), icc, "RGB"), 1)
    assert _centres(served, 1)[0][1] < 200  # the press cyan, not 0,255,255
    assert served.info.get("icc_profile") in (None, b"") or b"CMYK" not in served.info["icc_profile"][:20]

    p3 = display_p3()
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:] = (180, 60, 60, 255)
    (tmp_path / "logo.png").write_bytes(_encode(Image.fromarray(rgba, "RGBA"), "PNG", icc_profile=p3))
    crop = Image.open(io.BytesIO(read_crop(str(tmp_path), "logo.png", [0, 0, 8, 8], None)))
    assert crop.getpixel((4, 4)) == (196, 47, 54) and not crop.info.get("icc_profile")


def _damaged_container(fmt: str) -> bytes:
    """A P3 JPEG whose APP2 profile pieces claim a count they do not have, or a PNG whose iCCP chunk's compressed
    profile is not valid deflate data (Pillow then sets the profile to None and says nothing)."""
    data = _encode(_patches(P3_PATCHES[:2]), fmt, icc_profile=display_p3(), **({"quality": 95} if fmt == "JPEG" else {}))
    if fmt == "JPEG":
        at = data.index(b"ICC_PROFILE\0") + 12
        return data[:at + 1] + bytes((2,)) + data[at + 2:]  # piece 1 of 2, and no piece 2
    return _undecompressable_iccp(data)


def _undecompressable_iccp(data: bytes) -> bytes:
    """A PNG's bytes with its iCCP chunk's profile replaced by invalid deflate data."""
    import struct
    import zlib

    at = data.index(b"iCCP") - 4
    (length,) = struct.unpack(">I", data[at:at + 4])
    name = data[at + 8:at + 8 + length].index(b"\0")
    body = data[at + 8:at + 8 + name + 2] + zlib.compress(display_p3())[:2] + b"\xff" * 64  # invalid deflate block
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return data[:at] + chunk + data[at + 12 + length:]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_profile_pillow_cannot_put_together_is_noted(fmt: str) -> None:
    """A JPEG profile split over APP2 segments whose piece count is wrong (an editor rewrote the segments) and a PNG
    iCCP chunk that does not decompress: Pillow drops the profile without a word; the file is kept with its stored
    values and the note says the profile is damaged."""
    data = _damaged_container(fmt)
    opened = Image.open(io.BytesIO(data))
    assert "icc_profile" in opened.info and opened.info["icc_profile"] is None
    result = inspect_image(data, "photo." + fmt.lower(), on_image=None)
    assert result.ok, result.reason
    assert [kind for kind, _ in result.notes] == ["colour_profile_ignored"] and "damaged" in result.notes[0][1]
    np.testing.assert_array_equal(np.asarray(open_rgb(data)), np.asarray(opened.convert("RGB")))


def test_cielab_and_ycbcr_tiffs_with_a_profile() -> None:
    """A CIELab TIFF (Photoshop's Lab mode) carries the Lab profile: its values are device-independent and Pillow
    converts them itself, so there is nothing to note (it was noted as an ignored profile). A YCbCr TIFF's profile
    describes the RGB its values encode: converted (it was ignored)."""
    lab = ImageCms.profileToProfile(Image.new("RGB", (16, 16), (200, 40, 40)), ImageCms.createProfile("sRGB"),
                                    ImageCms.createProfile("LAB"), outputMode="LAB")
    data = _encode(lab, "TIFF")
    assert Image.open(io.BytesIO(data)).info.get("icc_profile")
    result = inspect_image(data, "lab.tif")
    assert result.ok and result.notes == ()
    assert np.abs(np.array(open_rgb(data).getpixel((4, 4))) - (200, 40, 40)).max() <= 2

    ycc = Image.new("RGB", (16, 16), P3_PATCHES[0]).convert("YCbCr")
    data = _encode(ycc, "TIFF", icc_profile=display_p3())
    result = inspect_image(data, "ycc.tif")
    assert result.ok and result.notes == ()
    want = _lcms(ycc.convert("RGB"), display_p3(), "RGB").getpixel((4, 4))
    assert open_rgb(data).getpixel((4, 4)) == want and np.abs(np.array(want) - (196, 47, 54)).max() <= 3


@pytest.mark.parametrize("chunk", ["unknown-compression", "over-1-MB"])
def test_a_png_pillow_refuses_over_its_icc_chunk_is_read_without_it(chunk: str, tmp_path: Path) -> None:
    """Pillow refuses a whole PNG whose iCCP chunk names an unknown compression method or holds a profile larger
    than 1 MB: the file was corrupt ("not an image Pillow can identify", "Decompressed data too large") over its
    profile. Now its picture is read without the profile, noted, in the passes and the UI's crop."""
    import os
    import struct
    import zlib

    picture = _encode(_patches(P3_PATCHES[:2]), "PNG")
    body = (b"x\0\x01" + zlib.compress(display_p3()) if chunk == "unknown-compression"
            else b"big\0\0" + zlib.compress(os.urandom(64) + bytes(1 << 20)))
    at = picture.index(b"IDAT") - 4
    data = (picture[:at] + struct.pack(">I", len(body)) + b"iCCP" + body
            + struct.pack(">I", zlib.crc32(b"iCCP" + body)) + picture[at:])
    with pytest.raises((OSError, ValueError)):  # what Pillow itself does
        Image.open(io.BytesIO(data))
    want = np.asarray(Image.open(io.BytesIO(picture)).convert("RGB"))
    seen: list[Image.Image] = []
    result = inspect_image(data, "photo.png", on_image=seen.append)
    assert result.ok, result.reason
    assert [kind for kind, _ in result.notes] == ["colour_profile_ignored"] and "damaged" in result.notes[0][1]
    np.testing.assert_array_equal(np.asarray(seen[0]), want)
    np.testing.assert_array_equal(np.asarray(open_rgb(data)), want)
    (tmp_path / "photo.png").write_bytes(data)
    crop = np.asarray(Image.open(io.BytesIO(read_crop(str(tmp_path), "photo.png", [0, 0, 16, 16], None))))
    np.testing.assert_array_equal(crop, want[:, :16])
    assert image_size(str(tmp_path), "photo.png", None) == (32, 16)  # the UI draws predicted boxes on it


def test_a_grey_image_with_an_rgb_profile_is_its_grey_in_that_space() -> None:
    """A grey image that kept the Adobe RGB profile of the colour photo it was made from: its values are R = G = B
    in Adobe RGB (gamma 2.2), shown through it (they were read as sRGB: the darks too light)."""
    icc = adobe_rgb()
    ramp = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1))
    data = _encode(Image.fromarray(ramp, "L"), "PNG", icc_profile=icc)
    shown = np.asarray(open_rgb(data)).astype(int)
    want = np.asarray(_lcms(Image.fromarray(ramp, "L").convert("RGB"), icc, "RGB")).astype(int)
    np.testing.assert_array_equal(shown, want)
    assert np.abs(shown[..., 0] - shown[..., 2]).max() <= 1  # still grey
    assert shown[0, 2, 0] < ramp[0, 2] - 5  # 16 in gamma 2.2 is sRGB 7 or so


def test_many_pixels_of_one_profile_go_through_its_colour_table_with_littlecms_values(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard of phone photos converts the same profile over and over: past ``COLOUR_TABLE_AFTER`` pixels the
    profile's transform of every colour is a table, and images look their colours up in it. Every value is the one
    littlecms gives the image itself (the table's blocked index maps each colour back to its own entry), only for
    the profile it was built for (an Adobe RGB image after the P3 table: its own transform), and alpha and a
    greyscale image with the profile keep their paths."""
    tables = pixels._ColourTable()
    monkeypatch.setattr(pixels, "_COLOUR_TABLES", tables)
    monkeypatch.setattr(pixels, "COLOUR_TABLE_AFTER", 3 * 128 * 128)
    monkeypatch.setattr(pixels, "COLOUR_TABLE_MIN_PIXELS", 64 * 64)
    rng = np.random.default_rng(7)
    p3, adobe = display_p3(), adobe_rgb()

    def noise(side: int, channels: int = 3) -> np.ndarray:
        return rng.integers(0, 256, size=(side, side, channels), dtype=np.uint8)

    for _ in range(3):  # (three images of 128 x 128 pixels reach the mark: the table is built after the third)
        img = Image.fromarray(noise(128))
        img.info["icc_profile"] = p3
        assert np.array_equal(np.asarray(display_rgb(img)), np.asarray(_lcms(img, p3, "RGB")))
    small = Image.fromarray(noise(60))  # (below the size for the table: not counted)
    small.info["icc_profile"] = adobe
    for _ in range(20):
        assert np.array_equal(np.asarray(display_rgb(small)), np.asarray(_lcms(small, adobe, "RGB")))
    assert tables.builds == 1 and tables.table is not None and tables.table[0] == p3 and adobe not in tables.converted
    # Random colours (all over the cube) and a smooth gradient with every level of each channel.
    ramp = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), axis=-1).astype(np.uint8)
    gradient = np.concatenate([ramp, ramp[..., :1][::-1]], axis=-1)
    for arr in (noise(300), gradient):
        img = Image.fromarray(arr)
        img.info["icc_profile"] = p3
        assert np.array_equal(np.asarray(display_rgb(img)), np.asarray(_lcms(img, p3, "RGB")))
    other = Image.fromarray(noise(64))
    other.info["icc_profile"] = adobe
    assert np.array_equal(np.asarray(display_rgb(other)), np.asarray(_lcms(other, adobe, "RGB")))
    rgba = Image.fromarray(noise(64, 4), "RGBA")
    rgba.info["icc_profile"] = p3
    expected = Image.fromarray(np.asarray(_lcms(rgba.convert("RGB"), p3, "RGB")))
    expected.putalpha(rgba.getchannel("A"))
    on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, pixels.TRANSPARENT_BACKGROUND), expected)
    assert np.array_equal(np.asarray(display_rgb(rgba)), np.asarray(on_white.convert("RGB")))
    grey = Image.fromarray(noise(64)[..., 0], "L")
    grey.info["icc_profile"] = p3
    assert np.array_equal(np.asarray(display_rgb(grey)), np.asarray(_lcms(grey.convert("RGB"), p3, "RGB")))
    assert tables.builds == 1
