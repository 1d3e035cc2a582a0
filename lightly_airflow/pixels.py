"""Pixel conversions shared by every pass that decodes images (metadata, embedding, object crops, the UI).

One rule for what an image *looks like*, so its metrics, thumbnail, model input, crops and the UI's boxes all
see the same pixels: turned upright by its EXIF orientation (as browsers and viewers show it), high-bit-depth
grayscale scaled to 8 bits, and transparency composited on white (as a page shows it).

A change of what any pass' pixels are raises ``columns.PIXEL_RULES_VERSION``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
#: The colour transparent pixels are shown on (a page's background; what the UI's thumbnails show).
TRANSPARENT_BACKGROUND = (255, 255, 255, 255)
#: EXIF orientation tag, and the values that turn or mirror the picture (1 is "as stored").
ORIENTATION_TAG = 0x0112
TURNED = frozenset({2, 3, 4, 5, 6, 7, 8})
#: Orientations that swap width and height (quarter turns).
SWAPPED = frozenset({5, 6, 7, 8})


def eight_bit(img: Image.Image) -> Image.Image:
    """A high-bit-depth grayscale image (16-bit PNG/TIFF: modes :data:`HIGH_BIT_DEPTH_MODES`) scaled to 8-bit
    ``L`` (values above 255 mean a 16-bit range: times 255 / 65535); other images as they are. Pillow's
    ``convert`` would clip every value above 255 to white."""
    if img.mode not in HIGH_BIT_DEPTH_MODES:
        return img
    arr = np.asarray(img, dtype=np.float64)
    scale = 255.0 / 65535.0 if arr.size and float(arr.max()) > 255 else 1.0
    return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")


def orientation(img: Image.Image) -> int:
    """The image's EXIF orientation (1..8; 1 when it has none or an invalid one)."""
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - an unreadable EXIF block shows the picture as stored
        return 1
    return value if isinstance(value, int) and value in TURNED else 1


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned by its EXIF orientation, as viewers show it (the same object when it needs no turn, so a
    full-size decode is not copied for nothing)."""
    if orientation(img) == 1:
        return img
    return ImageOps.exif_transpose(img)


def upright_size(img: Image.Image) -> tuple[int, int]:
    """Width and height as shown (EXIF orientation applied), from the header alone: nothing is decoded.

    Pillow's TIFF reader reports a TIFF's size upright already (and turns its pixels when it loads them)."""
    w, h = img.size
    return (h, w) if img.format != "TIFF" and orientation(img) in SWAPPED else (w, h)


def display_rgb(img: Image.Image) -> Image.Image:
    """The RGB image as it is shown: upright (:func:`upright`), high bit depths scaled (:func:`eight_bit`),
    transparency composited on :data:`TRANSPARENT_BACKGROUND`. Every pass that reads an image's pixels uses it."""
    img = eight_bit(upright(img))
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, TRANSPARENT_BACKGROUND), img)
    return img.convert("RGB")
