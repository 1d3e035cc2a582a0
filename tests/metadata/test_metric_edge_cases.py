"""Every computed metric is finite on the images a THRESHOLD meets at its edges (docs/metadata-and-predictions.md:
a NaN would fail every comparison, an inf pass every BIGGER one): one pixel, one grey, 20000×2 and 2×20000, fully
transparent, 16-bit grey, palette and 1-bit."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from lightly_airflow.metadata import inspect_image

CHECKER = (np.indices((16, 16)).sum(0) % 2 * 255).astype(np.uint8)


@pytest.mark.parametrize(("image", "sharpness", "snr"), [
    (Image.new("RGB", (1, 1), (10, 20, 30)), 0.0, None),  # one pixel: its three channels still differ
    (Image.new("L", (1, 1), 0), 0.0, 0.0),
    (Image.new("RGB", (64, 64), (128, 128, 128)), 0.0, 0.0),  # one grey: Lightly's filter gave it 30.8
    (Image.new("L", (20000, 2), 5), 0.0, 0.0),
    (Image.new("L", (2, 20000), 5), 0.0, 0.0),
    (Image.new("RGBA", (8, 8), (0, 0, 0, 0)), 0.0, 0.0),  # on white: one grey
    (Image.fromarray((np.indices((16, 16)).sum(0) * 2000).astype(np.uint16)), None, None),
    (Image.fromarray(CHECKER).convert("P"), 1020.0, 1.0),
    (Image.fromarray(CHECKER > 0), 1020.0, 1.0),
])
def test_metrics_are_finite_on_edge_images(image, sharpness, snr):
    result = inspect_image(_png(image), "x.png")
    assert result.ok, result.reason
    assert result.metrics is not None
    assert all(math.isfinite(v) for v in result.metrics.values()), result.metrics
    if sharpness is not None:
        assert result.metrics["sharpness"] == sharpness
    if snr is not None:
        assert result.metrics["snr"] == pytest.approx(snr)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()
