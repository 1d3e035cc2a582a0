"""The report's objects figure (``objects.report.objects_png``) as a reader sees it: every task's box and crop outline
is 3:1 on the figure's white (WCAG 1.4.11), the tasks' colours stay apart for deuteranopia and protanopia, and a
legend above the rows says which colour is which task. Measured on the PNG's pixels."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
from colour_vision import VISIONS, WHITE, contrast, distance
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.objects.report import objects_png

TASKS = ["cars", "dogs", "faces", "people", "signs", "trees"]
GREY = (128, 128, 128)


def _figure(tmp_path: Path) -> np.ndarray:
    """Two grey 200x120 pictures, each with one object of each of six tasks."""
    picked = ["a.png", "b.png"]
    for key in picked:
        Image.new("RGB", (200, 120), GREY).save(tmp_path / key)
    rows = pa.table({
        C.PARENT_KEY: [k for k in picked for _ in TASKS], C.OBJECT_TASK: TASKS * 2,
        C.OBJECT_INDEX: pa.array(list(range(6)) * 2, pa.int64()),
        C.OBJECT_CROP_BOX: pa.array([[5 + 32 * i, 10 + 10 * (i % 2), 28, 40] for i in range(6)] * 2, pa.list_(pa.int64())),
    })
    png = objects_png(rows, picked, f"file://{tmp_path}")
    assert png is not None
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _colours(pixels: np.ndarray) -> list[tuple[float, ...]]:
    """The colours of the pixels other than the white ground and the grey pictures, most frequent first."""
    values, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    drawn = [(tuple(float(v) for v in c), n) for c, n in zip(values, counts, strict=True)
             if tuple(c) not in (WHITE, GREY)]
    return [c for c, _ in sorted(drawn, key=lambda cn: -cn[1])]


def _runs(row: np.ndarray, colours: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """The colours of ``colours`` along a row of pixels, left to right, each run once."""
    out: list[tuple[float, ...]] = []
    for p in row:
        colour = tuple(float(v) for v in p)
        if colour in colours and (not out or out[-1] != colour):
            out.append(colour)
    return out


def test_box_colours_are_3_to_1_on_white_and_apart_for_colour_blind_readers(tmp_path: Path) -> None:
    """Before: yellow #f1c40f 1.66:1, green #2ecc71 2.10:1 and teal #1abc9c 2.41:1 on the white strip, blue
    #3498db and purple #9b59b6 12.3 apart (CIE76) for deuteranopia."""
    strips = _figure(tmp_path)[22:]  # (below the legend: boxes on the pictures, crops outlined on white)
    colours = _colours(strips)
    assert len(colours) == 6, colours  # one per task, nothing else drawn
    low = [(c, round(contrast(c, WHITE), 2)) for c in colours if contrast(c, WHITE) < 3]
    assert not low, f"under 3:1 on white: {low}"
    for name, vision in VISIONS.items():
        close = [(a, b, round(distance(a, b, vision), 1)) for a, b in itertools.combinations(colours, 2)
                 if distance(a, b, vision) < 20]
        assert not close, f"{name}: {close}"


def test_a_legend_says_which_colour_is_which_task(tmp_path: Path) -> None:
    """Before: nothing in the figure (nor the report's page) said which colour is which task. The legend's swatches
    are the boxes' colours in the order of the sorted task names, the order of the crops (outlined in their task's
    colour) after each picture."""
    pixels = _figure(tmp_path)
    legend, strips = pixels[:22], pixels[22:]
    colours = _colours(strips)
    crops = _runs(strips[0], colours)  # (the crops' top outlines, the strip's first row)
    assert len(crops) == len(TASKS) == len(set(crops))
    assert _runs(legend[11], colours) == crops  # (the swatches' middle row; its text is dark grey)
