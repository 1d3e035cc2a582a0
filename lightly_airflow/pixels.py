"""Pixel conversions shared by the passes that decode images (metadata, embedding, object crops)."""

from __future__ import annotations

import numpy as np
from PIL import Image

HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def eight_bit(img: Image.Image) -> Image.Image:
    """A high-bit-depth grayscale image (16-bit PNG/TIFF: modes :data:`HIGH_BIT_DEPTH_MODES`) scaled to 8-bit
    ``L`` (values above 255 mean a 16-bit range: times 255 / 65535); other images as they are. Pillow's
    ``convert`` would clip every value above 255 to white."""
    if img.mode not in HIGH_BIT_DEPTH_MODES:
        return img
    arr = np.asarray(img, dtype=np.float64)
    scale = 255.0 / 65535.0 if arr.size and float(arr.max()) > 255 else 1.0
    return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
