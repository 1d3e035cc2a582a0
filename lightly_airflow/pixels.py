"""Pixel conversions shared by every pass that decodes images (metadata, embedding, object crops, the UI).

One rule for what an image *looks like*, so its metrics, thumbnail, model input, crops and the UI's boxes all
see the same pixels: turned upright by its EXIF orientation (as browsers and viewers show it), high-bit-depth
grayscale scaled to 8 bits (by the white the file states, else by a guess that is noted: :func:`white_point`), and
colours converted to sRGB by the image's embedded ICC profile (as a colour-managed browser shows a phone's Display
P3 photo or a print shop's Adobe RGB or CMYK file: :func:`to_srgb`), transparency composited on white (as a page
shows it). :func:`open_image` opens the bytes: it reads what Pillow
does not (a PNG's ``sBIT``) and can decode a JPEG above Pillow's pixel limit at a reduced scale.

A change of what any pass' pixels are raises ``columns.PIXEL_RULES_VERSION``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import re
import struct
import sys
import threading
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, UnidentifiedImageError

from lightly_airflow import heif
from lightly_airflow.jit import njit

heif.register()  # (HEIC photos open like any image; pi-heif loads on the first one)
logger = logging.getLogger(__name__)

try:
    from PIL import ImageCms
except ImportError:  # a Pillow built without littlecms2: profiles are ignored, and each such image says so
    ImageCms = None  # type: ignore[assignment]

HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
#: ``img.info`` key where :func:`open_image` puts a PNG's significant bits (its ``sBIT`` chunk; Pillow skips it).
SIGNIFICANT_BITS = "lightly_airflow.significant_bits"
#: ``img.info`` key of :func:`display_rgb`'s result when the white of a high-bit-depth image was guessed (nothing in
#: the file said it): the guess in words. The metadata pass logs and counts it (``bit_depth_guessed``).
WHITE_GUESS = "lightly_airflow.white_guess"
#: ``img.info`` key of :func:`display_rgb`'s result when the image's embedded ICC profile could not be applied (a
#: damaged or unsupported profile, one for other data than the image's): why, in words; its colours are the file's
#: values as they are (read as sRGB). The metadata pass logs and counts it (``colour_profile_ignored``).
PROFILE_IGNORED = "lightly_airflow.profile_ignored"
#: ``img.info`` key of :func:`display_rgb`'s result when a float image holds NaN or infinite values (a depth map's
#: or elevation model's "no data"), shown black: how many, in words. The metadata pass counts it (``no_data_pixels``).
NO_DATA = "lightly_airflow.no_data"
#: How an embedded profile's colours become sRGB. Perceptual: the default of browsers and image viewers, so a CMYK
#: or other table-based profile's gamut mapping is the one its maker tuned (relative colorimetric would clip
#: out-of-gamut colours to the nearest edge); for the matrix profiles of cameras and phones (Display P3, Adobe RGB,
#: ProPhoto) littlecms has no perceptual tables and uses relative colorimetric instead (out-of-gamut colours
#: clipped): the same pixels either way.
RENDERING_INTENT = "perceptual"
#: A profile whose transform moves no colour of an 18-level grid (18^3 colours; 256 greys) by more than this many
#: levels is sRGB (whatever its name: HP's, Apple's, Google's compact one, a camera's copy): such images are not
#: converted, at no cost per image.
SRGB_TOLERANCE = 1
#: Distinct profiles whose transform (or verdict: sRGB, unusable) is kept (a CMYK profile is up to a few MB).
PROFILE_CACHE = 16
#: Once one RGB profile has converted this many pixels of images of at least :data:`COLOUR_TABLE_MIN_PIXELS` in a
#: process (a metadata shard of phone photos: ~6 at 12 Mpx), its transform of every 8-bit colour is kept as a table
#: (:class:`_ColourTable`: 48 MiB, built in ~0.5 s) and such images look their colours up in it: the same values
#: as littlecms (the table is littlecms' own output). A 12 Mpx Display P3 JPEG: conversion 180 -> 40 ms (in
#: Pillow's memory, :func:`image_memory`), the metadata pass 249 -> 98 ms (without a profile 45 ms). 0: never.
COLOUR_TABLE_AFTER = 4 << 24
#: Smaller images (thumbnails and model input, decoded reduced; UI crops) always go through littlecms: the table
#: is for the metadata pass' full-size decodes, and a process that converts only small images never builds one.
COLOUR_TABLE_MIN_PIXELS = 1 << 20
COLOUR_TABLE_STRIP = 128  # rows of 4,096 colours littlecms converts at a time while a table is built
#: What :func:`display_rgb` passes :func:`to_srgb` for a profile Pillow found but set to ``None`` (a JPEG's APP2
#: pieces whose count is wrong, a PNG iCCP chunk that does not decompress; one :func:`open_image` cut out).
DAMAGED_PROFILE = b"damaged"
#: The image modes a profile's colours are converted from, by the profile's colour space (alpha kept aside):
#: grey images may carry an RGB profile too (their values are then R = G = B in it).
_PROFILE_SPACES = {"RGB": ("RGB",), "L": ("GRAY", "RGB"), "CMYK": ("CMYK",)}
#: ``img.info`` key where :func:`open_image` puts the stored ``(width, height)`` of a JPEG it set to decode at a
#: reduced scale because it has more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``.
FULL_SIZE = "lightly_airflow.full_size"
#: ``img.info`` key where :func:`open_image` keeps the bytes of a 16-bit colour PNG or TIFF (RGB, RGBA, and PNG grey
#: + alpha, which Pillow opens as RGBA): Pillow decodes only the high byte of each value (12-bit data: at most 15),
#: so :func:`display_rgb` decodes the low bytes too when the white is below 65535.
WIDE_COLOUR = "lightly_airflow.wide_colour"
PNG_LEVEL = 3
"""zlib level of the PNGs written for selected video frames and object crops (lossless at every level). Pillow's
default 6 spent most of a frame's export in compression. ``benchmarks/frame_png.py`` (H.264 pans across 17 of
scikit-image's photos, decoded and turned upright as the export does, 51 frames a size, one thread's CPU time,
2026-12-06): 640 x 360 level 6 164.0 KB in 39.8 ms a frame, level 3 +4 % bytes in 15.2 ms (2.6x as fast), level 1
+15 % in 10.3 ms; 1280 x 720 level 6 496.0 KB in 138.4 ms, level 3 +8 % in 52.8 ms (2.6x), level 1 +21 % in
36.4 ms."""
_NATIVE, _SWAPPED = ("L", "B") if sys.byteorder == "little" else ("B", "L")
#: Pillow's unpackers of 16-bit colour data (each value's high byte) and ones keeping the low byte instead: the
#: other byte order (a TIFF compressed with libtiff is unpacked in native order: ``;16N``), and for 16-bit grey +
#: alpha (PNG colour type 4, 4 bytes a pixel) the 8-bit RGBA unpacker, which keeps all 4 bytes: grey high, grey low,
#: alpha high, alpha low.
LOW_BYTES = {
    **{f"{m};16{a}": f"{m};16{b}" for m in ("RGB", "RGBA", "RGBX") for a, b in (("B", "L"), ("L", "B"))},
    **{f"{m};16N": f"{m};16{_SWAPPED}" for m in ("RGB", "RGBA", "RGBX")},
    "LA;16B": "RGBA",
}
#: TIFF tag BitsPerSample.
TIFF_BITS_PER_SAMPLE = 258
#: A progressive JPEG keeps every DCT coefficient in memory while it decodes, whatever the scale (a 20000x15000
#: one: 1.4 GB peak); above this many times ``PIL.Image.MAX_IMAGE_PIXELS`` it is refused, not decoded reduced.
PROGRESSIVE_LIMIT = 2
#: The 16-bit white of a guess when the largest value is at most this: 12-bit data (industrial and medical cameras).
TWELVE_BIT_WHITE = 4095
#: TIFF tags stating the largest sample value: SMaxSampleValue (341) and MaxSampleValue (281).
TIFF_MAX_SAMPLE_TAGS = ((341, "SMaxSampleValue"), (281, "MaxSampleValue"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Modes of premultiplied (associated) alpha and their straight-alpha modes, which :func:`display_rgb` composites.
#: Pillow opens a grey TIFF with associated alpha (ExtraSamples 1) as ``La``, and converts ``La`` to ``LA`` only: such
#: files were corrupt in every pass ("conversion from La to L not supported").
PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}
#: The colour transparent pixels are shown on (a page's background; what the UI's thumbnails show).
TRANSPARENT_BACKGROUND = (255, 255, 255, 255)
#: EXIF orientation tag, and the values that turn or mirror the picture (1 is "as stored").
ORIENTATION_TAG = 0x0112
TURNED = frozenset({2, 3, 4, 5, 6, 7, 8})
#: Orientations that swap width and height (quarter turns).
SWAPPED = frozenset({5, 6, 7, 8})


def _png_chunk(data: bytes, wanted: bytes) -> tuple[int, int] | None:
    """``(position, length)`` of a PNG's first ``wanted`` chunk before its image data, or ``None`` (also for data
    that is not a PNG)."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, cid = struct.unpack(">I4s", data[pos : pos + 8])
        if cid in (b"IDAT", b"IEND"):  # the ancillary chunks read here come before the image data
            return None
        if cid == wanted:
            return pos, length
        pos += 12 + length
    return None


def png_significant_bits(data: bytes) -> int | None:
    """The significant bits a PNG's ``sBIT`` chunk states (the largest over its channels), or ``None``."""
    found = _png_chunk(data, b"sBIT")
    if found is None:
        return None
    pos, length = found
    bits = data[pos + 8 : pos + 8 + min(length, 4)]
    return max(bits) if bits else None


def png_without_iccp(data: bytes) -> bytes | None:
    """A PNG's bytes without its ``iCCP`` chunk (its embedded colour profile), or ``None`` when it has none."""
    return png_without(data, (b"iCCP",))


def png_without(data: bytes, kinds: tuple[bytes, ...]) -> bytes | None:
    """A PNG's bytes without its chunks of ``kinds`` before its image data, or ``None`` when it has none (also for
    data that is not a PNG)."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos, kept = len(PNG_SIGNATURE), [PNG_SIGNATURE]
    while pos + 8 <= len(data):
        length, cid = struct.unpack(">I4s", data[pos : pos + 8])
        if cid in (b"IDAT", b"IEND"):
            break
        if cid not in kinds:
            kept.append(data[pos : pos + 12 + length])
        pos += 12 + length
    stripped = b"".join(kept) + data[pos:]
    return stripped if len(stripped) < len(data) else None


#: Ancillary PNG chunks Pillow refuses a whole PNG over, dropped in turn until it opens (the picture does not depend
#: on them): its colour profile (an unknown compression method, a profile over 1 MB), then noted as damaged
#: (:func:`display_rgb`); its compressed text (a zTXt or iTXt chunk over ``PngImagePlugin.MAX_TEXT_CHUNK``, 1 MB
#: unpacked: an editor's XMP or Photoshop packet, an image generator's workflow), which no pass reads; both. Such a
#: PNG was corrupt ("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK"). Chunks after the image data
#: are read while it decodes: one there still fails the file.
REFUSED_PNG_CHUNKS = ((b"iCCP",), (b"zTXt", b"iTXt"), (b"iCCP", b"zTXt", b"iTXt"))


def _open_without_refused_chunks(data: bytes) -> tuple[Image.Image, bytes] | None:
    """A PNG Pillow refused, opened without its :data:`REFUSED_PNG_CHUNKS`, and the bytes it was opened from;
    ``None`` when none of them is the cause (or the bytes are no PNG)."""
    for kinds in REFUSED_PNG_CHUNKS:
        stripped = png_without(data, kinds)
        if stripped is None:
            continue
        try:
            img = Image.open(io.BytesIO(stripped))
        except (UnidentifiedImageError, ValueError):
            continue
        if b"iCCP" in kinds and _png_chunk(data, b"iCCP") is not None:
            img.info["icc_profile"] = None
        return img, stripped
    return None


#: TIFF Photometric and Compression values by name (the common ones; others are given as numbers).
TIFF_PHOTOMETRIC = {0: "WhiteIsZero", 1: "BlackIsZero", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK", 6: "YCbCr",
                    8: "CIELab", 32844: "LogL", 32845: "LogLuv", 34892: "LinearRaw"}
TIFF_COMPRESSION = {1: "none", 5: "LZW", 7: "JPEG", 8: "Deflate", 32946: "Deflate", 32773: "PackBits",
                    34887: "LERC", 34925: "LZMA", 50000: "Zstd", 50001: "WebP", 50002: "JPEG XL"}


def tiff_layout(data: bytes) -> str | None:
    """A TIFF's first image's layout in words (samples, bits, photometric, compression, planar), read from its
    header alone; ``None`` for bytes that are no TIFF or whose header is unreadable."""
    if data[:4] not in (b"II*\0", b"MM\0*"):
        return None
    order = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
        tags: dict[int, list[int]] = {}
        for i in range(min(count, 256)):
            tag, kind, n, value = struct.unpack(order + "HHI4s", data[ifd + 2 + 12 * i : ifd + 14 + 12 * i])
            if kind not in (3, 4) or tag not in (258, 259, 262, 277, 284, 339):
                continue
            fmt = order + ("H" if kind == 3 else "I") * min(n, 8)
            size = struct.calcsize(fmt)
            if n * (2 if kind == 3 else 4) <= 4:
                raw = value[:size]
            else:
                (at,) = struct.unpack(order + "I", value)
                raw = data[at : at + size]
            tags[tag] = list(struct.unpack(fmt, raw))
    except (struct.error, ValueError):
        return None
    samples = (tags.get(277) or [1])[0]
    bits = sorted(set(tags.get(258) or [1]))
    photometric = (tags.get(262) or [-1])[0]
    compression = (tags.get(259) or [1])[0]
    kind = {1: "unsigned", 2: "signed", 3: "float"}.get((tags.get(339) or [1])[0], "other")
    words = [f"{samples} sample{'s' if samples != 1 else ''} per pixel of {'/'.join(map(str, bits))} bits ({kind})",
             f"photometric {TIFF_PHOTOMETRIC.get(photometric, photometric if photometric >= 0 else 'missing')}",
             f"compression {TIFF_COMPRESSION.get(compression, compression)}"]
    if (tags.get(284) or [1])[0] == 2:
        words.append("planar")
    return ", ".join(words)


def not_an_image(data: bytes) -> str:
    """Why bytes that Pillow cannot identify are no image, in words a user can act on: what the bytes are when
    that is plain (a web page or a store's error saved under the image's name, a Git LFS pointer, HEIC, SVG,
    PDF, text), else Pillow's "unknown format"."""
    head = data[:1024]
    layout = tiff_layout(data)
    if layout:
        return (f"not an image Pillow can read: the file is a TIFF ({layout}) that Pillow cannot open: a layout it "
                "has no reader for (e.g. 16-bit grey with alpha) or a damaged file; convert it, e.g. to PNG or to a "
                "TIFF of 8/16-bit grey or 8/16-bit RGB/RGBA")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in heif.HEIF_BRANDS:
            return heif.unreadable(data)
        return (f"not an image Pillow can read: the file is ISO media (brand {brand.decode('latin-1')!r}: a video, "
                "or an AVIF/HEIF image this Pillow cannot decode)")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    what = None
    if text.startswith(b"version https://git-lfs"):
        what = "a Git LFS pointer, not the image (the data set was copied without its LFS objects). Fix: run `git lfs pull`"
    elif text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:256]:
        what = "an HTML page (a web server's error or login page saved under the image's name?)"
    elif b"<svg" in text[:512]:
        what = "an SVG drawing (vector graphics are not decoded). Fix: convert it to PNG"
    elif b"<error>" in text[:256]:
        code = re.search(rb"<code>([^<]{1,64})</code>", head, re.IGNORECASE)
        what = ("an XML error document" + (f" ({code.group(1).decode('latin-1')})" if code else "")
                + ", an object store's error response saved under the image's name")
    elif text.startswith(b"%pdf"):
        what = "a PDF document"
    elif text.startswith((b"{", b"[")):
        what = "JSON text"
    elif text and all(32 <= c < 127 or c in (9, 10, 13) for c in text[:256]):
        what = f"text ({bytes(text[:40]).decode('ascii', 'replace')!r}…)"
    if what is None:
        return "not an image Pillow can identify (unreadable or unknown format)"
    return f"not an image: the file is {what}"


def _sixteen_bit_colour(img: Image.Image, data: bytes) -> bool:
    """A PNG or TIFF with 16 bits per colour sample, which Pillow opens as 8-bit RGB or RGBA (:data:`WIDE_COLOUR`)."""
    if img.mode not in ("RGB", "RGBA"):
        return False
    if img.format == "PNG":
        return len(data) > 24 and data[24] == 16  # IHDR bit depth
    if img.format == "TIFF":
        bits = getattr(img, "tag_v2", {}).get(TIFF_BITS_PER_SAMPLE)
        bits = bits if isinstance(bits, tuple) else (bits,)
        return bool(bits) and all(b == 16 for b in bits)
    return False


#: Pillow's largest block of image memory inside :func:`image_memory` (its default 16 MiB splits a 12 Mpx RGB
#: picture, 48 MiB, into three): an image up to this size is one block, which :func:`pixel_array` reads in place.
ONE_BLOCK_BYTES = 1 << 30
#: Freed blocks :func:`image_memory` keeps per thread: a metadata image takes four Pillow images (the decode, the
#: thumbnail's reduction, its resize, its JPEG's copy); with fewer kept, a small one took the big cached block
#: (shrunk by realloc) and the next decode faulted a fresh one in (12 Mpx in the shard, 1 thread: 85 ms with 1 or 2
#: kept, 58 with 4).
BLOCKS_PER_THREAD = 4
_PIL_CORE: Any = Image.core  # type: ignore[attr-defined]  # (Pillow's C module: its memory settings)
_MEMORY_LOCK = threading.Lock()
_MEMORY_SCOPES: list[tuple[int, int]] = []  # one entry per open scope; the first holds Pillow's own settings


@contextlib.contextmanager
def image_memory(threads: int) -> Iterator[None]:
    """While a pass decodes whole images on ``threads`` threads (metadata): each image is one block of Pillow's
    memory (:func:`pixel_array` reads it in place, no 27 ms copy at 12 Mpx) and up to :data:`BLOCKS_PER_THREAD`
    freed blocks a thread are kept for the next images (a fresh 48 MiB block cost ~20 ms of page faults per 12 Mpx
    decode: glibc maps blocks above 32 MiB anew each time; the kept ones are what the threads held at once anyway). Pillow's settings (process-wide) come back when the last scope ends, which frees
    the kept blocks. A 12 Mpx JPEG's metadata pass: 71 -> 45 ms."""
    with _MEMORY_LOCK:
        try:
            size, kept = _PIL_CORE.get_block_size(), _PIL_CORE.get_blocks_max()
            _PIL_CORE.set_block_size(max(size, ONE_BLOCK_BYTES))
            _PIL_CORE.set_blocks_max(max(kept, BLOCKS_PER_THREAD * threads))
            _MEMORY_SCOPES.append((size, kept))
            scoped = True
        except (AttributeError, ValueError):  # (a Pillow without these: pixel_array copies)
            scoped = False
    try:
        yield
    finally:
        if scoped:
            with _MEMORY_LOCK:
                original = _MEMORY_SCOPES[0]
                _MEMORY_SCOPES.pop()
                if not _MEMORY_SCOPES:
                    _PIL_CORE.set_block_size(original[0])
                    _PIL_CORE.set_blocks_max(original[1])


_TRUNCATION_LOCK = threading.Lock()
_TRUNCATION_SCOPES: list[bool] = []  # one entry per open scope; the first holds the process' own setting


@contextlib.contextmanager
def truncation_refused() -> Iterator[None]:
    """While a pass decodes: a truncated file is an error, whatever another library in the process set
    (``ImageFile.LOAD_TRUNCATED_IMAGES``: Pillow then fills the missing rows with grey and calls the file whole).
    The setting is off while any scope is open on any thread, and comes back when the last one ends (a thread that
    restored it on its own would lift it while another thread still decodes). The metadata pass refused truncated
    files this way, the embed pass embedded them as ok."""
    with _TRUNCATION_LOCK:
        _TRUNCATION_SCOPES.append(bool(ImageFile.LOAD_TRUNCATED_IMAGES))
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        with _TRUNCATION_LOCK:
            original = _TRUNCATION_SCOPES[0]
            _TRUNCATION_SCOPES.pop()
            if not _TRUNCATION_SCOPES:
                ImageFile.LOAD_TRUNCATED_IMAGES = original


def pixel_array(img: Image.Image) -> np.ndarray:
    """An RGB image's pixels as a uint8 array without a copy where Pillow allows: its own memory, 4 bytes a pixel
    (``(H, W, 4)``, the fourth byte padding), read through the Arrow C interface when the image is one block
    (decoded inside :func:`image_memory`, or small); else ``np.asarray`` (``(H, W, 3)``, a copy: 27 ms at 12
    Mpx, a third of the metadata pass of a 12 Mpx JPEG). Read-only; the array keeps the image's memory alive."""
    if img.mode == "RGB" and img.width and img.height:
        import pyarrow as pa

        try:
            values = pa.array(img).values  # (zero-copy: FixedSizeList<uint8>[4] over Pillow's block)
        except (ValueError, TypeError, AttributeError):  # (not one block, or a Pillow without Arrow support)
            pass
        else:
            buffer = values.buffers()[1]
            if len(values) == img.width * img.height * 4 and buffer is not None:
                flat: np.ndarray = np.frombuffer(buffer, dtype=np.uint8, count=len(values), offset=values.offset)
                return flat.reshape(img.height, img.width, 4)
    return np.asarray(img)


def open_image(data: bytes, draft: int | None = None, fit: bool = False) -> Image.Image:
    """Open encoded bytes (header only; nothing decoded yet) the way every pass must: a 16-bit PNG's ``sBIT`` in
    ``img.info[SIGNIFICANT_BITS]``; ``draft``: a JPEG may be decoded at a reduced DCT scale, never below this side.

    ``fit``: a JPEG with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a satellite image, a panorama, a 100 Mpx
    camera) is set to decode at the smallest scale 1/2, 1/4 or 1/8 that fits the limit, with its stored size in
    ``img.info[FULL_SIZE]``, instead of being refused as a decompression bomb (only for passes whose pixels are not
    read in the stored size's coordinates: metrics, thumbnails, model input).

    :raises Exception: what Pillow raises for bytes it cannot open (``DecompressionBombError`` for too many pixels).
    """
    if data[:3] == b"\xff\xd8\xff" and (fit or draft):
        try:  # without Image.open's pixel check: the draft below decides the decoded size
            img: Image.Image = JpegImagePlugin.jpeg_factory(io.BytesIO(data))
        except (SyntaxError, OSError, ValueError, IndexError, TypeError, struct.error):
            img = Image.open(io.BytesIO(data))  # Pillow's own error (or another reader) for a broken JPEG
        else:
            _draft_jpeg(img, draft, fit)
        return img
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, ValueError):
        opened = _open_without_refused_chunks(data)  # (a PNG refused over its profile or its text)
        if opened is None:
            raise
        img, data = opened
    if img.format == "PNG" and (img.mode in HIGH_BIT_DEPTH_MODES or _sixteen_bit_colour(img, data)):
        bits = png_significant_bits(data)
        if bits:
            img.info[SIGNIFICANT_BITS] = bits
    if _sixteen_bit_colour(img, data):
        img.info[WIDE_COLOUR] = data
    if img.format in ("JPEG", "MPO") and draft:
        img.draft("RGB", (draft, draft))
    return img


class TooLargeImage(Image.DecompressionBombError):
    """:func:`open_image`'s refusal of a JPEG too large even at a reduced scale; its words name the fix."""


def too_large(w: int, h: int, limit: int) -> str:
    """The start of every "too large to decode" reason (:func:`too_large_to_decode` adds why for other formats)."""
    return (f"too large to decode: {w}x{h} = {w * h / 1e6:.0f} Mpx is more than PIL.Image.MAX_IMAGE_PIXELS "
            f"({limit / 1e6:.1f} Mpx)")


def too_large_to_decode(w: int, h: int, limit: int, fmt: str) -> str:
    """Why an image of ``w`` x ``h`` pixels in Pillow format ``fmt`` above ``limit`` is not decoded, with the fix."""
    return (f"{too_large(w, h, limit)}, Pillow's decompression bomb guard (a {fmt} this large must be decoded whole, "
            "about 3 bytes per pixel; JPEGs are decoded at a reduced scale instead). Fix: raise the limit in the "
            "workers if they have the memory, or store the image as JPEG or in tiles")


def decode_problem(exc: BaseException) -> str:
    """Why a file a decoder failed on is corrupt, the same words in every pass (the embed pass wrote
    ``OSError: …``, the metadata pass ``truncated image: …``): ``truncated image: …`` when the data ends early, else
    ``cannot decode image: …``, with the decoder's first line without object addresses (reruns write the same
    files); a WebP libwebp cannot start on (Pillow: "could not create decoder object", a cut or damaged file) is
    named so."""
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", (str(exc).splitlines() or [""])[0]) or type(exc).__name__
    if "could not create decoder object" in text:
        return f"truncated or damaged WebP ({text}): upload the complete file again"
    truncated = "truncated" in text.lower() or isinstance(exc, EOFError)
    return f"{'truncated image' if truncated else 'cannot decode image'}: {text}"[:300]


def bomb_reason(data: bytes, exc: Exception) -> str:
    """The reason of a file refused as a decompression bomb (``exc``, Pillow's or :class:`TooLargeImage`), the
    same in every pass: its size read from the header, the limit and what to do. Pillow's own words named twice the
    limit ("exceeds limit of 178956970 pixels", its error's threshold) and no fix."""
    if isinstance(exc, TooLargeImage):
        return str(exc)
    header = _header(data)
    limit = Image.MAX_IMAGE_PIXELS
    if header is not None and limit:
        return too_large_to_decode(*header[1], limit, header[0])
    return f"decompression bomb: {exc}"


def _header(data: bytes) -> tuple[str, tuple[int, int]] | None:
    """Format and stored size from the header through Pillow's readers, without ``Image.open``'s pixel check (for
    the message of an image refused for its size)."""
    Image.init()
    for fmt, (factory, accept) in list(Image.OPEN.items()):
        if accept is not None and accept(data[:16]) is not True:
            continue
        try:
            w, h = factory(io.BytesIO(data), "").size
            return fmt, (w, h)
        except Exception:  # noqa: BLE001 - not this format
            continue
    return None


#: Pillow format names each file extension may hold; any other is "wrong type for its extension", which Lightly's
#: worker reports as corrupt (lightly-compat.md §5), in every pass that decodes images (:func:`wrong_extension`).
EXTENSION_FORMATS: dict[str, frozenset[str]] = {
    "jpg": frozenset({"JPEG", "MPO"}),
    "jpeg": frozenset({"JPEG", "MPO"}),
    "jpe": frozenset({"JPEG", "MPO"}),
    "png": frozenset({"PNG"}),
    "bmp": frozenset({"BMP", "DIB"}),
    "gif": frozenset({"GIF"}),
    "tif": frozenset({"TIFF"}),
    "tiff": frozenset({"TIFF"}),
    "webp": frozenset({"WEBP"}),
    **{ext: frozenset({heif.FORMAT}) for ext in heif.HEIF_EXTENSIONS},
    "avif": frozenset({"AVIF"}),
}


def extension(key: str) -> str:
    """The extension of a key's file name, lower case, without the dot (``""`` when it has none)."""
    name = key.rsplit("/", 1)[-1]
    return name.rpartition(".")[2].lower() if "." in name else ""


def wrong_extension(fmt: str | None, key: str) -> str | None:
    """Why a file that Pillow reads as ``fmt`` is corrupt under ``key``'s extension, with the fix; ``None`` when its
    extension may hold that format or is none of :data:`EXTENSION_FORMATS`'. The metadata and embed passes both
    refuse such a file (the embed pass embedded a ``.jpg`` holding a PNG that the metadata pass called corrupt)."""
    ext = extension(key)
    allowed = EXTENSION_FORMATS.get(ext)
    fmt = fmt or "unknown"
    if allowed is None or fmt in allowed:
        return None
    right = next((e for e, formats in EXTENSION_FORMATS.items() if fmt in formats), None)
    fix = (f"rename it to .{right}" if right else
           f"convert it to the format of its extension (this plugin lists no extension for {fmt})")
    return f"wrong type for its extension: the file is {fmt} but its extension is .{ext}; {fix}"


def _draft_jpeg(img: Image.Image, draft: int | None, fit: bool) -> None:
    w, h = img.size
    limit = Image.MAX_IMAGE_PIXELS
    needed = 1
    if limit and w * h > limit:
        fits = [s for s in (2, 4, 8) if -(-w // s) * -(-h // s) <= limit]
        if not fit or not fits:
            raise TooLargeImage(f"{too_large(w, h, limit)} even when decoded at 1/8 scale")
        if (img.info.get("progressive") or img.info.get("progression")) and w * h > PROGRESSIVE_LIMIT * limit:
            raise TooLargeImage(
                f"{too_large(w, h, limit)} by more than {PROGRESSIVE_LIMIT}x, and a progressive JPEG is held "
                "whole in memory while it decodes, at any scale (about 3 bytes per pixel). Save it as a baseline "
                "JPEG (decoded reduced in little memory) or raise the limit if the workers have the memory")
        needed = fits[0]
    scale = needed
    if draft:
        scale = max(scale, next(s for s in (8, 4, 2, 1) if s <= max(1, min(w // draft, h // draft))))
    if scale > 1:
        img.draft("RGB", (w // scale, h // scale))
    if needed > 1:
        img.info[FULL_SIZE] = (w, h)


def white_point(img: Image.Image, largest: float) -> tuple[float, str | None]:
    """The value a high-bit-depth image shows as white, and the guess in words when nothing in the file said it.

    Stated: a PNG's ``sBIT`` of n bits (values up to 2^n - 1 are the camera's raw values: white 2^n - 1; larger
    ones are shifted to 16 bits as the PNG standard says: white (2^n - 1) << (16 - n)), a TIFF's SMaxSampleValue or
    MaxSampleValue. Else, by the largest value: up to 255 (8-bit data, white 255), up to 4095 (12-bit data, white
    4095), float data in 0..1 (white 1.0) are guesses; larger values are the container's 16 bits (white 65535), a
    guess too in a 32-bit integer or float image (values above 65535 show white).
    """
    bits = img.info.get(SIGNIFICANT_BITS)
    if isinstance(bits, int) and 0 < bits <= 16:  # 16: the full range, stated
        top = (1 << bits) - 1
        return float(top if largest <= top else top << (16 - bits)), None
    tags = getattr(img, "tag_v2", None) or {}
    for tag, _name in TIFF_MAX_SAMPLE_TAGS:
        value = tags.get(tag)
        if isinstance(value, tuple):
            value = max(value) if value else None
        if isinstance(value, (int, float)) and 0 < value <= 65535:
            return float(value), None
    if img.mode == "F" and 0 < largest <= 1.0:
        return 1.0, f"float values 0..1 guessed to be black..white (largest value {largest:.3g})"
    if largest <= 0:
        return 255.0, None
    if largest <= 255:
        return 255.0, f"8-bit values guessed: largest value {largest:g} in a {img.mode} image, shown unscaled"
    if largest <= TWELVE_BIT_WHITE:
        return float(TWELVE_BIT_WHITE), (
            f"12-bit values guessed: largest value {largest:g} in a {img.mode} image with no PNG sBIT or TIFF "
            "MaxSampleValue, scaled by 255/4095")
    if img.mode == "F" or (img.mode == "I" and _tiff_bits(img) > 16):
        # 65535 is no container's white here: a 32-bit integer or float image's values up to it (and beyond, which
        # show white) were scaled by it with no word said.
        return 65535.0, (
            f"16-bit values guessed: largest value {largest:g} in a 32-bit {'float' if img.mode == 'F' else 'integer'}"
            " image with no TIFF MaxSampleValue, scaled by 255/65535"
            + (" (values above 65535 show white)" if largest > 65535 else ""))
    return 65535.0, None


def _tiff_bits(img: Image.Image) -> int:
    """A TIFF's largest BitsPerSample (0 for other images)."""
    bits = (getattr(img, "tag_v2", None) or {}).get(TIFF_BITS_PER_SAMPLE)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max((int(b) for b in bits if isinstance(b, int)), default=0)


def _stated_below_full(img: Image.Image) -> bool:
    """Whether the file states a white below 65535 (a PNG's ``sBIT`` under 16 bits, a TIFF's MaxSampleValue)."""
    bits = img.info.get(SIGNIFICANT_BITS)
    if isinstance(bits, int) and 0 < bits < 16:
        return True
    tags = getattr(img, "tag_v2", None) or {}
    for tag, _name in TIFF_MAX_SAMPLE_TAGS:
        value = tags.get(tag)
        value = max(value) if isinstance(value, tuple) and value else value
        if isinstance(value, (int, float)) and 0 < value < 65535:
            return True
    return False


#: TIFF tags of a one-plane grey IFD that :func:`_tiff_planes` copies from a planar image's (width, length,
#: compression, rows per strip, predictor, tile width and length); it writes the layout and the plane's offsets.
_PLANE_TAGS = (256, 257, 259, 278, 317, 322, 323)
#: TIFF tags of the strips' or tiles' offsets and byte counts (each plane's after the one before in a planar TIFF).
_PLANE_OFFSETS = (273, 279, 324, 325)


def _tiff_planes(img: Image.Image) -> np.ndarray | None:
    """A planar 16-bit colour TIFF's (PlanarConfiguration 2: each colour its own plane, as tifffile and microscope
    software write them) 16-bit values, ``(h, w, samples)``; ``None`` for any other image. Pillow decodes such a
    file wrong: uncompressed, with an 8-bit unpacker (half of each plane, high and low bytes side by side),
    compressed, by each value's high byte (12-bit data: 0..15). Each plane is decoded on its own, as the 16-bit
    grey image a new IFD appended to the bytes describes (its compression and predictor as they are)."""
    tags = getattr(img, "tag_v2", None)
    data = img.info.get(WIDE_COLOUR)
    if img.format != "TIFF" or not tags or tags.get(284) != 2 or not isinstance(data, bytes) or data[2:4] not in (
            b"*\0", b"\0*"):
        return None  # not planar, or a BigTIFF (its 8-byte offsets): Pillow's decode stands
    order = "<" if data[:2] == b"II" else ">"
    n = int(tags.get(277, 1))
    planes = []
    for k in range(n):
        ifd = {t: (4, [int(v) for v in (tags[t] if isinstance(tags[t], tuple) else (tags[t],))])
               for t in _PLANE_TAGS if t in tags}
        for t in _PLANE_OFFSETS:
            if t in tags:
                values = [int(v) for v in tags[t]]
                per = len(values) // n
                ifd[t] = (4, values[k * per:(k + 1) * per])
        ifd.update({258: (3, [16]), 262: (3, [1]), 277: (3, [1]), 284: (3, [1])})
        at = len(data) + (len(data) & 1)
        extra_at = at + 2 + 12 * len(ifd) + 4
        entries, extra = b"", b""
        for tag in sorted(ifd):
            kind, values = ifd[tag]
            packed = struct.pack(order + ("H" if kind == 3 else "I") * len(values), *values)
            if len(packed) > 4:
                entries += struct.pack(order + "HHII", tag, kind, len(values), extra_at + len(extra))
                extra += packed
            else:
                entries += struct.pack(order + "HHI", tag, kind, len(values)) + packed.ljust(4, b"\0")
        one = bytearray(data.ljust(at, b"\0")) + struct.pack(order + "H", len(ifd)) + entries + bytes(4) + extra
        one[4:8] = struct.pack(order + "I", at)
        with Image.open(io.BytesIO(bytes(one))) as plane:
            if plane.mode not in ("I;16", "I;16B", "I;16L") or plane.size != img.size:
                return None
            planes.append(np.asarray(plane).astype(np.uint16))
    return np.stack(planes, axis=2)


def _wide_colour(img: Image.Image) -> Image.Image:
    """A loaded 16-bit colour PNG or TIFF (:data:`WIDE_COLOUR`) scaled to 8 bits by its :func:`white_point` (alpha
    as Pillow decodes it). Pillow's own 8 bits (each value's high byte) stand when the white is 65535."""
    planar = _tiff_planes(img)
    if planar is not None:
        return _scaled(img, planar[..., :3].astype(np.float64), (planar[..., 3:] >> 8).astype(np.uint8))
    high = np.asarray(img)
    key = img.info.get("transparency") if img.mode == "RGB" else None  # (a PNG's tRNS colour, in 16 bits)
    if key is None and not _stated_below_full(img) and (high.size == 0 or int(high[..., :3].max()) >= 16):
        return img  # values above 4095: 16-bit data, whose high bytes are its 8 bits
    low_img = Image.open(io.BytesIO(img.info[WIDE_COLOUR]))
    rawmodes = [t.args if isinstance(t.args, str) else (t.args or ("",))[0] for t in low_img.tile]
    if not rawmodes or any(r not in LOW_BYTES for r in rawmodes) or len(set(rawmodes)) != 1:
        return img  # a layout with no low-byte unpacker (planar TIFF): Pillow's high bytes
    # The same decode with another unpacker keeps each value's low byte (LOW_BYTES).
    low_img.tile = [t._replace(args=LOW_BYTES[r] if isinstance(t.args, str) else (LOW_BYTES[r], *(t.args or ())[1:]))
                    for t, r in zip(low_img.tile, rawmodes)]
    low = np.asarray(low_img)
    if low.shape != high.shape:
        return img
    if rawmodes[0] == "LA;16B":  # grey high, grey low, alpha high, alpha low: the grey's 16 bits in every channel
        values = np.repeat(low[..., :1].astype(np.float64) * 256 + low[..., 1:2], 3, axis=2)
    else:
        values = high[..., :3].astype(np.float64) * 256 + low[..., :3]
    alpha = high[..., 3:]
    if isinstance(key, tuple) and len(key) == 3:  # the transparent colour matched in 16 bits, as alpha
        alpha = np.where((values == np.asarray(key, np.float64)).all(axis=2, keepdims=True), 0, 255).astype(np.uint8)
    return _scaled(img, values, alpha)


def _scaled(img: Image.Image, values: np.ndarray, alpha: np.ndarray) -> Image.Image:
    """16-bit colour ``values`` as 8-bit RGB, or RGBA with ``alpha`` (``(h, w, 1)``; ``(h, w, 0)``: none): Pillow's 8
    bits (the high bytes) when nothing states a white below 65535 and a value is above 4095, else scaled by the
    :func:`white_point`."""
    if not _stated_below_full(img) and values.size and values.max() > TWELVE_BIT_WHITE:
        white, guess = 65535.0, None
        rgb = (values.astype(np.uint16) >> 8).astype(np.uint8)
    else:
        white, guess = white_point(img, float(values.max()) if values.size else 0.0)
        rgb = np.clip(values * (255.0 / white), 0, 255).astype(np.uint8)
    out = Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA") if alpha.shape[-1] else Image.fromarray(rgb)
    out.info = {k: v for k, v in img.info.items() if k not in (WIDE_COLOUR, "transparency")}  # (its EXIF orientation)
    if guess:
        out.info[WHITE_GUESS] = guess
    return out


def eight_bit(img: Image.Image, source: Image.Image | None = None) -> Image.Image:
    """A high-bit-depth grayscale image (16-bit PNG/TIFF, 32-bit and float TIFF: modes
    :data:`HIGH_BIT_DEPTH_MODES`) scaled to 8-bit ``L`` by its :func:`white_point` (read from ``source``, the
    image as opened, when ``img`` was turned from it), a guess noted in ``info[WHITE_GUESS]``; other images as
    they are. Not-a-number values of a float image are black. Pillow's ``convert`` would clip every value above
    255 to white. A 16-bit PNG's transparent grey (its tRNS chunk) is matched in 16 bits: ``LA``."""
    if img.mode not in HIGH_BIT_DEPTH_MODES:
        return img
    arr = np.asarray(img, dtype=np.float64)
    no_data = 0
    if img.mode == "F":  # NaN (a depth map's or elevation model's "no data") and infinities are black
        finite = np.isfinite(arr)
        no_data = int(arr.size - np.count_nonzero(finite))
        arr = np.where(finite, arr, 0.0)
    white, guess = white_point(source if source is not None else img, float(arr.max()) if arr.size else 0.0)
    out = Image.fromarray(np.clip(arr * (255.0 / white), 0, 255).astype(np.uint8), "L")
    key = img.info.get("transparency")
    if isinstance(key, int) and not isinstance(key, bool):
        out.putalpha(Image.fromarray(np.where(arr == key, 0, 255).astype(np.uint8), "L"))
    if guess:
        out.info[WHITE_GUESS] = guess
    if no_data:  # (an all-NaN TIFF was a black picture, unsaid)
        out.info[NO_DATA] = (f"{no_data:,} of its {arr.size:,} pixels are NaN or infinite (no data), shown black"
                             + (": the whole picture" if no_data == arr.size else ""))
    return out


def orientation(img: Image.Image) -> int:
    """The image's EXIF orientation (1..8; 1 when it has none or an invalid one); without an EXIF Orientation tag,
    the ``tiff:Orientation`` of its XMP packet, which Pillow's ``getexif`` reads in its place
    (:func:`orientation_only_in_xmp`).

    A PNG is decoded first, outside the ``try``: Pillow's ``getexif`` decodes a PNG (its ``eXIf`` chunk may follow
    the pixels), and a damaged one's error (a broken zlib stream) was taken for unreadable EXIF and swallowed; the
    decode that followed then found nothing left to do and gave a half-decoded picture, which the embed pass and the
    object crops used as an ok image while the metadata pass, which decodes before it turns, said corrupt."""
    if img.format == "PNG":
        img.load()
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - an unreadable EXIF block shows the picture as stored
        return 1
    return value if isinstance(value, int) and value in TURNED else 1


def orientation_only_in_xmp(img: Image.Image) -> bool:
    """Whether ``img`` is turned (:func:`orientation`) by an orientation its XMP packet alone gives (``tiff:Orientation``
    in a JPEG's APP1 XMP or a PNG's ``XML:com.adobe.xmp`` text, no EXIF Orientation tag), as some editors write.

    Pillow reads it (``getexif`` falls back to the XMP packet), so every pass turns such a picture, as desktop viewers
    do (Windows' photo metadata, Adobe's and digiKam's readers; Pillow's ``ImageOps.exif_transpose``); browsers read
    EXIF's tag only and show it as stored: the UI sends a turned copy of it (``browser_copy``) instead of the file."""
    if orientation(img) == 1 or not (img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")):
        return False
    tags = getattr(img, "tag_v2", None)  # (a TIFF's own tags: Pillow keeps no EXIF bytes of it in its info)
    if tags is not None and ORIENTATION_TAG in tags:
        return False
    try:
        exif = stored_exif(img)
    except Exception:  # noqa: BLE001 - an unreadable EXIF block holds no orientation Pillow read
        return True
    return exif is None or ORIENTATION_TAG not in exif


def stored_exif(img: Image.Image) -> Image.Exif | None:
    """The EXIF block ``img``'s file stores (``info["exif"]``), loaded; None without one. A damaged block raises
    Pillow's error (each caller decides what it means)."""
    raw = img.info.get("exif")
    if not raw:
        return None
    exif = Image.Exif()
    exif.load(raw)
    return exif


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned by its EXIF orientation, as viewers show it (the same object when it needs no turn, so a
    full-size decode is not copied for nothing)."""
    if orientation(img) == 1:
        return img
    return ImageOps.exif_transpose(img)


def upright_size(img: Image.Image) -> tuple[int, int]:
    """Width and height as shown (EXIF orientation applied), from the header alone: nothing is decoded.

    Pillow's TIFF reader reports a TIFF's size upright already (and turns its pixels when it loads them). A JPEG
    :func:`open_image` set to decode reduced has its stored size."""
    w, h = img.info.get(FULL_SIZE) or img.size
    return (h, w) if img.format != "TIFF" and orientation(img) in SWAPPED else (w, h)


def scale_box(box: tuple[int, int, int, int], decoded: tuple[int, int],
              shown: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box ``(x, y, w, h)`` in the shown image's pixels (``shown``: its full width and height) as the region of a
    decode of size ``decoded`` (a JPEG above the pixel limit decoded reduced): rounded outwards, clipped, at least
    one pixel. The same box when the decode is full size."""
    if tuple(decoded) == tuple(shown):
        return box
    x, y, w, h = box
    sx, sy = decoded[0] / shown[0], decoded[1] / shown[1]
    x0 = max(0, min(decoded[0] - 1, math.floor(x * sx)))
    y0 = max(0, min(decoded[1] - 1, math.floor(y * sy)))
    x1 = max(x0 + 1, min(decoded[0], math.ceil((x + w) * sx)))
    y1 = max(y0 + 1, min(decoded[1], math.ceil((y + h) * sy)))
    return (x0, y0, x1 - x0, y1 - y0)


@functools.lru_cache(maxsize=PROFILE_CACHE)
def _srgb_transform(icc: bytes, mode: str) -> tuple[Any, str | None]:
    """The transform of a profile's ``mode`` (``RGB``, ``L``, ``CMYK``) data to sRGB: ``(transform, None)``;
    ``(None, None)`` when the profile is sRGB (:data:`SRGB_TOLERANCE`); ``(None, why)`` when it cannot be used.
    Built and tested once per distinct profile bytes and mode (3 ms for a matrix profile, 25 ms for a CMYK one)."""
    if ImageCms is None:
        return None, "the installed Pillow has no littlecms2 (PIL.ImageCms), which applies colour profiles"
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except Exception as exc:  # noqa: BLE001 - littlecms' words for a damaged or truncated profile
        return None, f"the embedded ICC profile ({len(icc)} bytes) is unreadable: {exc}"
    try:
        name = (ImageCms.getProfileDescription(profile) or "").strip()[:80]
    except Exception:  # noqa: BLE001 - no description: the profile is still usable
        name = ""
    label = f"the embedded ICC profile {name!r}" if name else "the embedded ICC profile"
    space = (profile.profile.xcolor_space or "").strip()
    if space not in _PROFILE_SPACES[mode]:
        return None, f"{label} is for {space or 'unknown'} data but the image is {mode}"
    in_mode = "RGB" if space == "RGB" else mode
    try:
        transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), in_mode, "RGB",
                                            getattr(ImageCms.Intent, RENDERING_INTENT.upper()))
        if in_mode == "CMYK":
            return transform, None
        levels = np.arange(0, 256, 15, dtype=np.uint8)
        if in_mode == "RGB":
            grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(1, -1, 3)
            sample = Image.fromarray(grid, "RGB")
        else:
            grid = np.repeat(np.arange(256, dtype=np.uint8).reshape(1, -1, 1), 3, axis=2)
            sample = Image.fromarray(grid[..., 0], "L")
        moved = np.abs(np.asarray(transform.apply(sample), dtype=np.int16) - grid).max()
    except Exception as exc:  # noqa: BLE001 - a profile littlecms reads but cannot convert from (a device link, …)
        return None, f"{label} cannot convert to sRGB: {exc}"
    return (None if moved <= SRGB_TOLERANCE else transform), None


def to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """``img`` (grey, RGB or CMYK, with or without alpha; a palette image as its colours) with its colours converted
    from the ICC profile ``icc`` to sRGB (:data:`RENDERING_INTENT`), alpha kept: RGB or RGBA. The same object when
    there is no profile or it is sRGB. A profile that cannot be applied leaves the values as they are, noted in
    ``info[PROFILE_IGNORED]`` (never an error: a file is not lost over its profile)."""
    if not icc:
        return img
    if icc is DAMAGED_PROFILE or not isinstance(icc, (bytes, bytearray)):
        return _profile_ignored(img, "the embedded ICC profile is damaged (a JPEG's profile pieces that do not add "
                                "up, a PNG's iCCP chunk Pillow cannot read)")
    if img.mode in ("P", "PA", "1") or (img.mode in ("L", "RGB") and "transparency" in img.info):
        # a palette's colours; a transparent colour (PNG tRNS) as alpha
        img = img.convert({"1": "L", "L": "LA"}.get(img.mode, "RGBA"))
    if img.mode == "LAB":  # device-independent values (a CIELab TIFF): Pillow's own conversion, no profile needed
        return img
    if img.mode in ("YCbCr", "HSV"):  # the profile describes the RGB these values encode
        img = img.convert("RGB")
    colour_mode = {"RGBA": "RGB", "RGBX": "RGB", "LA": "L", "La": "L", "RGBa": "RGB"}.get(img.mode, img.mode)
    if colour_mode not in _PROFILE_SPACES:
        return _profile_ignored(img, f"the embedded ICC profile is not applied to a {img.mode} image")
    transform, why = _srgb_transform(bytes(icc), colour_mode)
    if transform is None:
        return img if why is None else _profile_ignored(img, why)
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    colour = img if img.mode == colour_mode else img.convert(colour_mode)
    if colour_mode == "L" and transform.input_mode == "RGB":  # a grey image with an RGB profile: R = G = B
        colour = colour.convert("RGB")
    try:
        out = _COLOUR_TABLES.apply(bytes(icc), transform, colour)
    except Exception as exc:  # noqa: BLE001 - never seen; the file still counts with its raw values
        return _profile_ignored(img, f"converting by the embedded ICC profile failed: {exc}")
    out.info = {k: v for k, v in img.info.items() if k not in ("icc_profile", "transparency")}
    if alpha is not None:
        out.putalpha(alpha)
    return out


@njit(cache=True, nogil=True)
def _look_up_colours(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``table[block index of rgb[i, j]]`` (:func:`_block_order`) of each pixel of a C-contiguous ``(H, W, 3)`` or
    RGBX ``(H, W, 4)`` uint8 image, as an RGBX ``(H, W, 4)`` image (the fourth byte 0)."""
    h, w = rgb.shape[0], rgb.shape[1]
    out = np.zeros((h, w, 4), np.uint8)
    for i in range(h):
        for j in range(w):
            r, g, b = np.int64(rgb[i, j, 0]), np.int64(rgb[i, j, 1]), np.int64(rgb[i, j, 2])
            k = ((((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3)) << 9) | ((r & 7) << 6) | ((g & 7) << 3) | (b & 7)
            out[i, j, 0] = table[k, 0]
            out[i, j, 1] = table[k, 1]
            out[i, j, 2] = table[k, 2]
    return out


def _from_rgbx(rgbx: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """An RGB image over the memory of an RGBX ``(H, W, 4)`` uint8 array (Pillow's own layout) without a copy where
    Pillow reads Arrow (``Image.fromarrow``), else through ``Image.fromarray`` (31 ms at 12 Mpx)."""
    try:
        import pyarrow as pa

        return Image.fromarrow(pa.FixedSizeListArray.from_arrays(pa.array(rgbx.reshape(-1)), 4), "RGB", size)
    except (AttributeError, ValueError, TypeError):
        return Image.fromarray(np.ascontiguousarray(rgbx[..., :3]), "RGB")


def _block_order(first: int, rows: int) -> np.ndarray:
    """Rows ``first`` to ``first + rows`` of a ``(4096, 4096, 3)`` image of every 8-bit RGB colour once, in blocks
    of 8 x 8 x 8 neighbouring colours (index: the high 5 bits of R, G, B, then the low 3): a photo's neighbouring
    pixels look up nearby entries (in R, G, B order a 12 Mpx photo took 78 ms, in blocks 66 ms; littlecms 196 ms).
    Row ``y`` holds blocks ``8 y`` to ``8 y + 7``."""
    index = np.arange(first * 4096, (first + rows) * 4096, dtype=np.int64)
    high, low = index >> 9, index & 511
    grid = np.empty((rows * 4096, 3), dtype=np.uint8)
    grid[:, 0] = ((high >> 10) << 3) | (low >> 6)
    grid[:, 1] = (((high >> 5) & 31) << 3) | ((low >> 3) & 7)
    grid[:, 2] = ((high & 31) << 3) | (low & 7)
    return grid.reshape(rows, 4096, 3)


class _ColourTable:
    """Per process, the transform of every 8-bit colour by one RGB profile (:data:`COLOUR_TABLE_AFTER`): the pixels
    each profile converted, the table of the last one past the mark (one at a time: 48 MiB), and a lock (the
    metadata pass converts on several threads; one builds, the others convert through littlecms meanwhile)."""

    def __init__(self) -> None:
        self.converted: dict[bytes, int] = {}
        self.table: tuple[bytes, np.ndarray] | None = None
        self.building = threading.Lock()
        self.builds = 0

    def apply(self, icc: bytes, transform: Any, colour: Image.Image) -> Image.Image:
        """``transform.apply(colour)``, through the table when ``icc`` has one (RGB to RGB only)."""
        large = (COLOUR_TABLE_AFTER > 0 and colour.width * colour.height >= COLOUR_TABLE_MIN_PIXELS
                 and colour.mode == "RGB" and transform.input_mode == "RGB" and transform.output_mode == "RGB")
        table = self.table
        if large and table is not None and table[0] == icc:
            # (12 Mpx: the lookup 36 ms, in and out of Pillow's memory in place; littlecms 180 ms)
            return _from_rgbx(_look_up_colours(pixel_array(colour), table[1]), colour.size)
        result = cast(Image.Image, transform.apply(colour))
        if large:
            seen = self.converted[icc] = self.converted.get(icc, 0) + colour.width * colour.height
            if seen >= COLOUR_TABLE_AFTER and self.building.acquire(blocking=False):
                try:
                    if self.table is None or self.table[0] != icc:
                        self.table = None  # (the old one's 48 MiB go before the new one's)
                        built = np.empty((1 << 24, 3), dtype=np.uint8)
                        for first in range(0, 4096, COLOUR_TABLE_STRIP):  # (strips: ~2 MiB at a time in Pillow)
                            strip = Image.fromarray(_block_order(first, COLOUR_TABLE_STRIP), "RGB")
                            built[first * 4096 : (first + COLOUR_TABLE_STRIP) * 4096] = np.asarray(
                                transform.apply(strip)).reshape(-1, 3)
                        self.table = (icc, built)
                        self.converted.pop(icc, None)
                        self.builds += 1
                finally:
                    self.building.release()
        return result


_COLOUR_TABLES = _ColourTable()


def _profile_ignored(img: Image.Image, why: str) -> Image.Image:
    """A copy of ``img`` with its values as they are (read as sRGB), the profile dropped, ``why`` noted."""
    out = img.copy()
    out.info.pop("icc_profile", None)
    out.info[PROFILE_IGNORED] = f"{why}; its values are shown as stored (as sRGB)"
    return out


#: Formats browsers show as they are (the UI sends them unchanged).
BROWSER_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
#: Lossily coded formats browsers do not all show (HEIC: only Safari): their browser copies are JPEG of
#: :data:`LOSSY_QUALITY` (a 12 Mpx iPhone photo as PNG took 2.4 s to encode and 7-20 MB, as JPEG 26 ms and ~1 MB);
#: other formats' (TIFF, 16-bit PNG) are PNG, lossless.
LOSSY_FORMATS = {"HEIF", "AVIF"}
LOSSY_QUALITY = 92


def browser_copy(img: Image.Image, fmt: str | None = None, note: str | None = None, *, keep_exif: bool = False
                 ) -> tuple[bytes, str]:
    """``img`` (from :func:`open_image`) as a browser shows it (:func:`display_rgb`: upright, 8-bit sRGB), encoded
    as ``fmt`` (``JPEG`` or ``PNG``; default: JPEG when ``img`` was lossily coded, :data:`LOSSY_FORMATS`, else PNG),
    with ``note`` as its comment (JPEG ``COM``, PNG ``tEXt`` ``Comment``, both near the file's start). The UI's full
    image and an export's viewable copies (``datapool.export``) are made here: the same pixels.

    :param keep_exif: a JPEG carries ``img``'s EXIF (:func:`upright_exif`: camera, capture time, GPS …).
    :returns: ``(bytes, content type)``.
    """
    fmt = fmt or ("JPEG" if img.format in LOSSY_FORMATS else "PNG")
    out = io.BytesIO()
    rgb = display_rgb(img)
    if fmt == "JPEG":
        exif = upright_exif(img) if keep_exif else None
        rgb.save(out, format="JPEG", quality=LOSSY_QUALITY, **({"comment": note.encode()} if note else {}),
                 **({"exif": exif} if exif else {}))
        return out.getvalue(), "image/jpeg"
    info = None
    if note:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Comment", note)
    rgb.save(out, format="PNG", pnginfo=info)
    return out.getvalue(), "image/png"


def upright_exif(img: Image.Image) -> bytes | None:
    """``img``'s EXIF (the camera, the capture time, GPS: IFD0 and its Exif and GPS IFDs) for a copy with upright
    pixels: the orientation set to 1 (the copy is turned already; a viewer must not turn it again) and no
    thumbnail. None without EXIF, or EXIF that cannot be read (the copy is made without it, logged)."""
    try:
        exif = stored_exif(img)
        if exif is None:
            return None
        exif.get_ifd(0x8769)  # (loaded, so written back: the Exif IFD, with the capture time)
        exif.get_ifd(0x8825)  # (the GPS IFD)
        exif[ORIENTATION_TAG] = 1
        return exif.tobytes()
    except Exception as exc:  # noqa: BLE001 - a damaged EXIF block never stops a copy
        logger.warning("EXIF of a %s image could not be read, its copy is made without it: %s", img.format, exc)
        return None


def display_rgb(img: Image.Image) -> Image.Image:
    """The RGB image as it is shown: upright (:func:`upright`), high bit depths scaled (:func:`eight_bit`), colours
    converted to sRGB by an embedded ICC profile (:func:`to_srgb`), transparency composited on
    :data:`TRANSPARENT_BACKGROUND`. Every pass that reads an image's pixels uses it."""
    icc = img.info.get("icc_profile")
    if icc is None and "icc_profile" in img.info:  # Pillow found one but could not put it together
        icc = DAMAGED_PROFILE
    # An 8-bit grey or RGB PNG's transparent colour (its tRNS chunk: optimisers such as oxipng write it for an
    # RGBA picture whose alpha is all on or off), which viewers show as transparent.
    keyed = img.mode in ("L", "RGB") and "transparency" in img.info and WIDE_COLOUR not in img.info
    if WIDE_COLOUR in img.info:
        img = _wide_colour(img)
    img = eight_bit(upright(img), source=img)
    if img.mode in PREMULTIPLIED:
        img = img.convert(PREMULTIPLIED[img.mode])
    if icc:
        converted = to_srgb(img, icc)
        keyed = keyed and "transparency" in converted.info  # a transparent colour is alpha after a conversion
        img = converted
    if img.mode == "RGB" and not keyed:
        return img
    notes = {k: img.info[k] for k in (WHITE_GUESS, PROFILE_IGNORED, NO_DATA) if img.info.get(k)}
    if img.mode in ("RGBA", "LA", "PA") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, TRANSPARENT_BACKGROUND), img)
    img = img.convert("RGB")
    img.info.update(notes)
    return img
