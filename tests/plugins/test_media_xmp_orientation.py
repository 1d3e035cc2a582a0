"""The UI's full image of a picture turned by an orientation only its XMP packet gives: browsers read EXIF's tag
only and showed it as stored, while its thumbnail, its size (the boxes' coordinates) and every pass turn it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pixels_xmp_orientation import files

from lightly_airflow import pixels
from lightly_airflow.plugins.media import read_image


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_the_ui_sends_a_turned_copy_of_a_picture_turned_by_xmp_alone(tmp_path: Path, ext: str) -> None:
    made = files()
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    data, kind, size = read_image(tmp_path.as_uri(), f"xmp.{ext}", None)
    assert size == (64, 96)
    assert data != made[f"xmp.{ext}"] and kind in ("image/png", "image/jpeg")
    sent = Image.open(io.BytesIO(data))
    assert sent.size == (64, 96) and pixels.orientation(sent) == 1  # (a browser shows it as sent)
    np.testing.assert_array_equal(np.asarray(sent.convert("RGB")),
                                  np.asarray(pixels.display_rgb(pixels.open_image(made[f"exif.{ext}"]))))
    # a picture turned by EXIF goes as it is: the browser turns it
    assert read_image(tmp_path.as_uri(), f"exif.{ext}", None)[0] == made[f"exif.{ext}"]
