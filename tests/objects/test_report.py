"""The report's objects figure (``objects.report.objects_png``) of a run with many objects."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.objects.report import objects_png


def test_the_figure_reads_only_the_drawn_images_objects(tmp_path: Path) -> None:
    """The figure draws at most 8 picked images, but every object row of the run became a Python dict first
    (140,000 objects: 1.2 s of the select task); now only the drawn images' rows do. The figure is the same as
    the figure of those rows alone."""
    rng = np.random.default_rng(0)
    picked = [f"img_{i:04d}.png" for i in range(3)]
    for key in picked:
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / key)
    n_images, per_image = 2000, 30
    parents = np.repeat(np.array([f"img_{i:04d}.png" for i in range(n_images)]), per_image)
    boxes = [[int(x), int(y), 10, 8] for x, y in zip(rng.integers(0, 70, len(parents)), rng.integers(0, 52, len(parents)),
                                                    strict=True)]
    rows = pa.table({C.PARENT_KEY: parents, C.OBJECT_TASK: ["cars"] * len(parents),
                     C.OBJECT_INDEX: pa.array(np.tile(np.arange(per_image), n_images), pa.int64()),
                     C.OBJECT_CROP_BOX: pa.array(boxes, pa.list_(pa.int64()))})
    uri = f"file://{tmp_path}"
    only = rows.filter(pa.compute.is_in(rows.column(C.PARENT_KEY), pa.array(picked)))
    expected = objects_png(only, picked, uri)  # (also imports what drawing needs before measuring)
    tracemalloc.start()
    try:
        figure = objects_png(rows, [*picked, "gone.png"], uri)  # (an image without object rows is skipped)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak >> 20} MiB of Python objects for a figure of 3 images"  # was 24 MiB
    assert figure is not None and figure == expected
    assert Image.open(io.BytesIO(figure)).height == 22 + 3 * (128 + 4 + 8)  # the legend, one strip per picked image
