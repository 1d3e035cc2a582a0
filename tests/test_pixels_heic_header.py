"""A HEIC photo's size comes from its header (``ispe``, turned by ``irot``): where only the size is needed (the UI's
boxes, ``pixels.upright_size``, a too-large file's reason) nothing is decoded. A file whose pictures are damaged
after an intact header shows it: its size is read, its pixels are not."""

from __future__ import annotations

import numpy as np
import pytest

from lightly_airflow import heif, pixels


def _phone_photo() -> bytes:
    """128 wide, 96 tall as shown; stored turned (96 wide, 128 tall) in 32 x 32 tiles with an ``irot`` of 90."""
    rng = np.random.default_rng(5)
    shown = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    return heif.encode_heic(np.ascontiguousarray(np.rot90(shown, -1)), rotation=90, tile=32, qp=30)


def test_the_size_of_a_heic_is_read_from_its_header_without_decoding() -> None:
    data = _phone_photo()
    at = data.index(b"mdat") + 4
    grid = at + 8  # (the grid item's own data, 8 bytes: its rows, columns and size)
    damaged = data[:grid] + bytes(len(data) - grid)  # every tile's HEVC data zeroed: the header intact
    with pytest.raises(Exception):  # noqa: B017 - libheif's error type varies
        pixels.open_image(damaged).load()
    assert pixels.upright_size(pixels.open_image(damaged)) == (128, 96)
    assert pixels._header(damaged) == ("HEIF", (128, 96))
    assert pixels.upright_size(pixels.open_image(data)) == pixels.display_rgb(pixels.open_image(data)).size
