"""Images as a demanding user's bucket holds them (session 62's audit): the model input (embed pass), the metrics
and thumbnail (metadata pass) see the same upright pixels, and a file one pass calls corrupt the other calls corrupt
too, with the same reason."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.embedding.images import ShardImages, decode_image, open_rgb
from lightly_airflow.metadata.metrics import inspect_image
from lightly_airflow.thumbnails import make_thumbnail


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _upright() -> np.ndarray:
    """A 90x60 picture no turn or mirror leaves alike: a gradient, a red block top left."""
    yy, xx = np.mgrid[0:60, 0:90]
    rgb = np.zeros((60, 90, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = xx * 255 // 89, yy * 255 // 59, 80
    rgb[:15, :20] = (255, 0, 0)
    return rgb


def _both_passes(tmp_path: Path, key: str, data: bytes) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """``(status, reason)`` of the embed pass' and the metadata pass' reading of one file."""
    (tmp_path / key).write_bytes(data)
    _, status, reason = ShardImages(str(tmp_path), [key], [0], input_size=32, batch_size=1)._load(key)
    result = inspect_image(data, key)
    return (status, reason), (C.STATUS_OK if result.ok else C.STATUS_CORRUPT, result.reason)


#: The turn that stores an upright picture so that EXIF orientation n shows it upright again.
STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
          7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "JPEG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_shows_the_same_upright_picture_in_every_pass(orientation: int, fmt: str) -> None:
    """All eight orientations, in the four formats that carry one: the metrics' width and height are the shown
    ones (90x60), and the metrics' picture, its thumbnail and the model input are the upright picture."""
    upright = Image.fromarray(_upright())
    turn = STORED[orientation]
    stored = upright if turn is None else upright.transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"tiffinfo": {0x0112: orientation}} if fmt == "TIFF" else {"exif": exif.tobytes()}
    data = _encode(stored, fmt, **options, **({"lossless": True} if fmt == "WEBP" else {}),
                   **({"quality": 95} if fmt == "JPEG" else {}))
    tolerance = 3 if fmt == "JPEG" else 0
    seen: list[Image.Image] = []
    result = inspect_image(data, f"photo.{fmt.lower()}", on_image=seen.append)
    assert result.ok and (result.metrics["width"], result.metrics["height"]) == (90, 60)
    assert np.abs(np.asarray(seen[0], dtype=int) - _upright()).mean() <= tolerance
    thumb = Image.open(io.BytesIO(make_thumbnail(seen[0])))
    assert thumb.size == (90, 60) and np.asarray(thumb)[2:12, 2:16, 0].min() > 200  # the red block top left
    model_input = decode_image(data, 64)
    expected = np.asarray(upright.resize((64, 64), Image.Resampling.BILINEAR), dtype=int)
    assert np.abs(model_input.astype(int) - expected).mean() <= tolerance


def test_a_png_with_a_damaged_data_stream_is_corrupt_in_both_passes(tmp_path: Path) -> None:
    """Reading the EXIF orientation decodes a PNG (Pillow's ``getexif``), and its decode error was taken for
    unreadable EXIF: the embed pass then embedded the half-decoded picture as ok while the metadata pass said
    corrupt."""
    noise = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    data = bytearray(_encode(Image.fromarray(noise), "PNG"))
    data[data.index(b"IDAT") + 200] ^= 0xFF  # (a byte inside the zlib stream)
    embed, metadata = _both_passes(tmp_path, "damaged.png", bytes(data))
    assert metadata[0] == C.STATUS_CORRUPT and "broken data stream" in (metadata[1] or "")
    assert embed[0] == C.STATUS_CORRUPT and "broken data stream" in (embed[1] or "")


@pytest.mark.parametrize(("key", "fmt", "fix"), [("photo.jpg", "PNG", "rename it to .png"),
                                                  ("scan.png", "WEBP", "rename it to .webp"),
                                                  ("Photo.JPG", "JPEG", None)])
def test_a_file_whose_format_its_extension_may_not_hold_is_corrupt_in_both_passes(
        tmp_path: Path, key: str, fmt: str, fix: str | None) -> None:
    """A ``.jpg`` holding a PNG was corrupt for the metadata pass (Lightly's rule) and embedded as ok; both say
    corrupt now, in the same words, with the fix."""
    embed, metadata = _both_passes(tmp_path, key, _encode(Image.fromarray(_upright()), fmt))
    if fix is None:
        assert embed == metadata == (C.STATUS_OK, None)
        return
    assert embed == metadata
    assert embed[0] == C.STATUS_CORRUPT and f"the file is {fmt}" in (embed[1] or "") and fix in (embed[1] or "")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # (Pillow's, under twice the limit)
@pytest.mark.parametrize("side", [150, 110])  # 2.25x the limit (Pillow's error), 1.21x (under Pillow's error)
def test_a_decompression_bomb_has_the_same_reason_in_both_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    """The embed pass gave Pillow's words ("exceeds limit of 20000 pixels": twice the limit, no fix) where the
    metadata pass named the size, the limit and the fix."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    embed, metadata = _both_passes(tmp_path, "pano.png", _encode(Image.new("RGB", (side, side)), "PNG"))
    assert embed == metadata
    assert embed[0] == C.STATUS_CORRUPT and f"{side}x{side}" in (embed[1] or "") and "Fix: raise the limit" in (embed[1] or "")


def _with_associated_alpha(tiff: bytes) -> bytes:
    """A little-endian TIFF with its ExtraSamples set to 1 (associated alpha: colours premultiplied)."""
    data = bytearray(tiff)
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd:ifd + 2])
    for at in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if struct.unpack("<H", data[at:at + 2])[0] == 338:
            data[at + 8:at + 10] = struct.pack("<H", 1)
            return bytes(data)
    raise AssertionError("the TIFF has no ExtraSamples")


def test_a_grey_tiff_with_premultiplied_alpha_is_shown_on_white(tmp_path: Path) -> None:
    """Pillow opens grey with associated alpha as ``La``, which it converts to ``LA`` only: the file was corrupt in
    both passes ("conversion from La to L not supported"). It is its straight-alpha picture on white now."""
    grey = _upright()[..., 1]
    alpha = np.where(np.mgrid[0:60, 0:90][0] < 30, 255, 128).astype(np.uint8)
    premultiplied = (grey.astype(int) * alpha // 255).astype(np.uint8)
    data = _with_associated_alpha(_encode(Image.fromarray(np.dstack([premultiplied, alpha]), "LA"), "TIFF"))
    assert Image.open(io.BytesIO(data)).mode == "La"
    straight = _encode(Image.fromarray(np.dstack([grey, alpha]), "LA"), "TIFF")
    embed, metadata = _both_passes(tmp_path, "mask.tif", data)
    assert embed == metadata == (C.STATUS_OK, None)
    np.testing.assert_allclose(decode_image(data, 64), decode_image(straight, 64), atol=2)
    assert np.asarray(decode_image(data, 64))[-1].min() > 120  # the half-transparent rows: on white, not black


@pytest.mark.parametrize(("mode", "top", "words"), [("I", 89000, "values above 65535 show white"),
                                                    ("F", 50000.0, "32-bit float"), ("I;16", 50000, None)])
def test_a_32_bit_image_scaled_by_a_guessed_white_says_so(mode: str, top: float, words: str | None) -> None:
    """A 32-bit integer or float TIFF's values above 4095 were scaled by 65535 (those above it clipped to white)
    with no word said, as if 65535 were its container's white; a 16-bit image's white is its container's."""
    ramp = np.linspace(0, top, 60 * 90).reshape(60, 90)
    dtype = {"I": np.int32, "F": np.float32, "I;16": np.uint16}[mode]
    data = _encode(Image.fromarray(ramp.astype(dtype)), "TIFF")
    result = inspect_image(data, "depth.tif")
    assert result.ok
    notes = dict(result.notes)
    if words is None:
        assert "bit_depth_guessed" not in notes
    else:
        assert "16-bit values guessed" in notes["bit_depth_guessed"] and words in notes["bit_depth_guessed"]


def test_truncated_files_are_corrupt_in_both_passes_when_another_library_relaxed_pillow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ImageFile.LOAD_TRUNCATED_IMAGES`` set by another library in the process (a user's plugin in the Airflow
    worker that runs the embed task in local mode): the metadata pass still said truncated, the embed pass embedded
    the grey-filled picture as ok. Both refuse it now, on many threads at once, and leave the setting as it was."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    noise = Image.fromarray(np.random.default_rng(4).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    files = {}
    for i in range(24):
        fmt = ("JPEG", "PNG")[i % 2]
        whole = _encode(noise, fmt)
        files[f"{i:02d}.{fmt.lower()}"] = whole[: len(whole) // 2] if i % 3 else whole
    for key, data in files.items():
        (tmp_path / key).write_bytes(data)
    dataset = ShardImages(str(tmp_path), sorted(files), list(range(len(files))), input_size=32, batch_size=1)
    with ThreadPoolExecutor(6) as pool:
        embedded = dict(zip(sorted(files), pool.map(dataset._load, sorted(files))))
        inspected = dict(zip(sorted(files), pool.map(lambda k: inspect_image(files[k], k), sorted(files))))
    for i, key in enumerate(sorted(files)):
        want = C.STATUS_CORRUPT if i % 3 else C.STATUS_OK
        assert embedded[key][1] == want and inspected[key].ok == (want == C.STATUS_OK), key
        if want == C.STATUS_CORRUPT:
            assert "truncated" in (embedded[key][2] or "") and "truncated" in (inspected[key].reason or "")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_the_truncation_guard_holds_until_the_last_decoding_thread_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads' scopes ending in the order they began: the first one's end must not lift the guard while the
    second still decodes (the metadata pass restored the setting per decode, so it could)."""
    from PIL import ImageFile

    from lightly_airflow.pixels import truncation_refused

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    first, second = truncation_refused(), truncation_refused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    second.__exit__(None, None, None)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_a_png_with_more_than_1_mb_of_compressed_text_is_read_with_its_profile(tmp_path: Path) -> None:
    """Pillow refuses a whole PNG over a zTXt/iTXt chunk that unpacks to more than 1 MB (an XMP packet, an image
    generator's workflow): it was corrupt in both passes. Its picture is read without that text now, and its
    colour profile (Adobe RGB here) still applies: the same pixels as the file without the text."""
    from icc_profiles import adobe_rgb
    from PIL import PngImagePlugin

    picture = Image.fromarray(_upright())
    text = PngImagePlugin.PngInfo()
    text.add_text("workflow", "{" + "x" * 1_500_000 + "}", zip=True)
    data = _encode(picture, "PNG", pnginfo=text, icc_profile=adobe_rgb())
    embed, metadata = _both_passes(tmp_path, "generated.png", data)
    assert embed == metadata == (C.STATUS_OK, None)
    result = inspect_image(data, "generated.png")
    assert result.notes == ()  # (the profile applied, not ignored)
    plain = _encode(picture, "PNG", icc_profile=adobe_rgb())
    np.testing.assert_array_equal(decode_image(data, 64), decode_image(plain, 64))
    assert np.abs(decode_image(plain, 64).astype(int) - decode_image(_encode(picture, "PNG"), 64)).max() > 10


def _png16(values: np.ndarray, transparent: tuple[int, ...]) -> bytes:
    """A 16-bit grey (``(h, w)``) or RGB (``(h, w, 3)``) PNG whose tRNS chunk makes ``transparent`` transparent
    (``()``: no tRNS chunk)."""
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    h, w = values.shape[:2]
    raw = b"".join(b"\0" + values[r].astype(">u2").tobytes() for r in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2 if values.ndim == 3 else 0, 0, 0, 0)
    trns = chunk(b"tRNS", struct.pack(f">{len(transparent)}H", *transparent)) if transparent else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + trns + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("grey", [False, True])
def test_a_16_bit_png_s_transparent_colour_is_shown_on_white(grey: bool) -> None:
    """A 16-bit PNG whose tRNS chunk names a transparent colour (an optimiser's way of storing an on/off alpha):
    its pixels of that colour were shown as stored (here near-black) while 8-bit PNGs' were on white. Matched in
    16 bits: a colour one level off stays opaque."""
    values = np.zeros((8, 8, 3), np.uint16)
    values[:4], values[4:], values[4, 4] = (300, 5, 7), (40000, 20000, 10000), (301, 5, 7)
    if grey:
        values = values[..., 0]
    data = _png16(values, (300,) if grey else (300, 5, 7))
    seen: list[Image.Image] = []
    result = inspect_image(data, "mask.png", on_image=seen.append)
    shown = np.asarray(seen[0])
    assert result.ok and shown[:4].min() == 255  # the transparent colour: white
    assert shown[4, 4].max() < 5  # one level off: opaque
    np.testing.assert_array_equal(shown[4:], np.asarray(open_rgb(_png16(values, ())))[4:])  # the others as before
    np.testing.assert_array_equal(decode_image(data, 8), shown)


@pytest.mark.parametrize(("key", "fmt", "words"), [("cut.jpg", "JPEG", "truncated image: "),
                                                   ("cut.png", "PNG", "truncated image: "),
                                                   ("cut.webp", "WEBP", "truncated or damaged WebP (")])
def test_a_cut_file_has_the_same_reason_in_both_passes(tmp_path: Path, key: str, fmt: str, words: str) -> None:
    """One reason per decoder failure (``pixels.decode_problem``): the embed pass said ``OSError: …`` where the
    metadata pass said ``truncated image: …``, and a cut WebP was Pillow's "could not create decoder object"."""
    noise = Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    whole = _encode(noise, fmt)
    embed, metadata = _both_passes(tmp_path, key, whole[: len(whole) // 2])
    assert embed == metadata and embed[0] == C.STATUS_CORRUPT and (embed[1] or "").startswith(words), (embed, metadata)
