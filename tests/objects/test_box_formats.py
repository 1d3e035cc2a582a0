"""Box formats users bring where Lightly's prediction format has ``[x, y, w, h]`` in pixels, and boxes cut at the
image's edge (session 63 audit): each is counted, logged with the fix and noted in the run summary, never a
silent crop of something else."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightly_airflow import columns as C

from .test_user_boxes import _box, _run


def _images(source: Path, *keys: str) -> None:
    source.mkdir()
    for i, key in enumerate(keys):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / key)


def test_boxes_given_as_corners_are_counted_and_named_with_the_fix(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A file of Pascal VOC corners ``[x0, y0, x1, y1]`` read as ``[x, y, w, h]`` gives boxes that reach past the
    right or bottom edge: they were clipped to the image without a word (the run summary had no count of clipped
    boxes at all). Now the clipped boxes are counted, the image whose boxes all read as corners inside it is
    flagged, and the log and the summary's notes give the fix. A pixel box that overflows (not readable as
    corners: w < x) is counted clipped, not flagged; boxes within a pixel of the edge are not clipped."""
    source = tmp_path / "src"
    _images(source, "corners.png", "pixels.png", "overflow.png")
    preds = {"corners.png": [_box([30, 20, 60, 45]), _box([5, 5, 20, 15])],  # (30,20)-(60,45), (5,5)-(20,15)
             "pixels.png": [_box([40, 30, 20, 15]), _box([2, 2, 10, 10]), _box([0, 0, 64.5, 48.4])],
             "overflow.png": [_box([50, 40, 30, 20])]}
    caplog.set_level(logging.WARNING, logger="lightly_airflow.objects.shard")
    counts = _run(source, tmp_path / "pool", preds)
    assert counts["objects"] == 6 and counts["boxes_outside_image"] == 0
    assert (counts["boxes_clipped"], counts["images_with_corner_looking_boxes"]) == (2, 1)
    got = {(r[C.PARENT_KEY], r[C.OBJECT_INDEX]): r[C.OBJECT_CROP_BOX] for r in counts["rows"].to_pylist()}
    assert got[("corners.png", 0)] == [30, 20, 34, 28]  # (as predicted, clipped: the contract is [x, y, w, h])
    summary = counts["summary"]
    assert (summary["boxes_clipped"], summary["images_with_corner_looking_boxes"]) == (2, 1)
    assert any("2 predicted boxes reach more than a pixel past" in n for n in summary["notes"])
    assert any(n.startswith("1 images have boxes of a task that look like corners") and "[x0, y0, x1 - x0, y1 - y0]"
               in n for n in summary["notes"])
    text = caplog.text
    assert "1 images of" in text and "'corners.png', task 'det'" in text and "process_all" in text
    assert "2 of 6 predicted boxes" in text


def test_boxes_inside_their_image_give_no_notes(tmp_path: Path) -> None:
    """Pixel boxes inside the image, one touching each edge, are neither clipped nor flagged: no count, no note."""
    source = tmp_path / "src"
    _images(source, "a.png")
    counts = _run(source, tmp_path / "pool", {"a.png": [_box([0, 0, 64, 48]), _box([10, 10, 54, 38])]})
    assert counts["objects"] == 2 and counts["boxes_clipped"] == counts["images_with_corner_looking_boxes"] == 0
    assert "notes" not in counts["summary"] and "boxes_clipped" not in counts["summary"]
