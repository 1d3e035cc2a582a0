"""The report's picture of object-level runs: each selected image with its objects' boxes, and the crops.

One row per selected image (in pick order, at most ``max_images``): the image scaled to ``height`` pixels with
every object's cropped box outlined (colour per task, named in a legend above the rows), followed by the crops
themselves at the same scale. Each image is decoded once.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.colours import task_colours
from lightly_airflow.storage import StorageCredentials

log = logging.getLogger(__name__)

#: the legend's text (12.6:1 on white)
LEGEND_TEXT = "#333333"
#: the selected images :func:`objects_png` draws at most (the report's note says so)
FIGURE_IMAGES = 8
#: the crops per image it draws at most
FIGURE_CROPS = 12


def objects_png(
    object_rows: pa.Table, picked: list[str], datasource_uri: str, credentials: StorageCredentials | None = None,
    *, max_images: int = FIGURE_IMAGES, height: int = 128, max_crops: int = FIGURE_CROPS, lightly_uri: str | None = None,
    lightly_credentials: StorageCredentials | None = None, frames: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes | None:
    """A PNG of the selected images with their objects as boxes and crops; ``None`` without selected objects.
    Video frames (``frames``: their rows by key) are read as the UI shows them (``crops.parent_reader``)."""
    from PIL import Image, ImageDraw

    from lightly_airflow.embedding.images import open_rgb_for_boxes
    from lightly_airflow.objects.crops import parent_reader
    from lightly_airflow.pixels import scale_box

    # Only the drawn images' rows become Python objects (not every object of the run: 140,000 rows took 1.2 s).
    parents = object_rows.column(C.PARENT_KEY)
    with_objects = set(pc.unique(parents.filter(pc.is_in(parents, pa.array(picked, pa.string())))).to_pylist())
    keys = [k for k in picked if k in with_objects][:max_images]
    if not keys:
        return None
    by_parent: dict[str, list[dict[str, Any]]] = {}
    drawn = object_rows.select([C.PARENT_KEY, C.OBJECT_TASK, C.OBJECT_INDEX, C.OBJECT_CROP_BOX])
    for row in drawn.filter(pc.is_in(parents, pa.array(keys, pa.string()))).to_pylist():
        by_parent.setdefault(row[C.PARENT_KEY], []).append(row)
    # (each task's own colour, as on the UI's pages; among all the run's tasks: two of one colour part as there)
    run_tasks = pc.unique(object_rows.column(C.OBJECT_TASK)).drop_null().to_pylist()
    colour = task_colours((r[C.OBJECT_TASK] for k in keys for r in by_parent[k]), run_tasks)
    read = parent_reader(datasource_uri, lightly_uri, frames or {}, credentials, lightly_credentials or credentials)
    strips = []
    for key in keys:
        try:
            img, shown = open_rgb_for_boxes(read(key))
        except Exception:  # noqa: BLE001 - a missing picture is logged, the figure goes on
            log.warning("report: cannot read %r for the objects figure", key)
            continue
        scale = height / img.height
        thumb = img.resize((max(1, round(img.width * scale)), height))
        draw = ImageDraw.Draw(thumb)
        crops: list[tuple[Any, str]] = []
        for obj in sorted(by_parent[key], key=lambda r: (r[C.OBJECT_TASK], r[C.OBJECT_INDEX])):
            x, y, w, h = scale_box(tuple(obj[C.OBJECT_CROP_BOX]), img.size, shown)  # a JPEG decoded reduced
            corners = (x * scale, y * scale, (x + w) * scale - 1, (y + h) * scale - 1)
            # a white line just outside the box: the colour carries 4.5:1 on light pictures, the white on dark ones
            draw.rectangle((corners[0] - 1, corners[1] - 1, corners[2] + 1, corners[3] + 1), outline="white")
            draw.rectangle(corners, outline=colour[obj[C.OBJECT_TASK]], width=2)
            if len(crops) < max_crops:
                crop = img.crop((x, y, x + w, y + h))
                s = min(height / crop.height, 2 * height / crop.width)
                crops.append((crop.resize((max(1, round(crop.width * s)), max(1, round(crop.height * s)))),
                              colour[obj[C.OBJECT_TASK]]))
        width = thumb.width + sum(c.width + 6 for c, _ in crops) + 12
        strip = Image.new("RGB", (width, height + 4), (255, 255, 255))
        strip.paste(thumb, (0, 2))
        x0 = thumb.width + 12
        for crop, col in crops:
            strip.paste(crop, (x0, 2))
            ImageDraw.Draw(strip).rectangle((x0 - 2, 0, x0 + crop.width + 1, 3 + crop.height), outline=col, width=2)
            x0 += crop.width + 6
        strips.append(strip)
    if not strips:
        return None
    legend = legend_strip(colour)
    canvas = Image.new("RGB", (max(p.width for p in [legend, *strips]), legend.height + sum(p.height + 8 for p in strips)),
                       (255, 255, 255))
    canvas.paste(legend, (0, 0))
    top = legend.height
    for strip in strips:
        canvas.paste(strip, (0, top))
        top += strip.height + 8
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def legend_strip(colour: Mapping[str, str], height: int = 22) -> Any:
    """The figure's legend: ``Box colour = task:`` then a swatch and the name of each task (the figure alone did
    not say which colour is which task)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)  # (Pillow's bitmap font where FreeType is missing: no anchors there)
    items = [("Box colour = task:", None), *((t, c) for t, c in colour.items())]
    widths = [round(font.getlength(text)) + (18 if c else 0) + 14 for text, c in items]
    strip = Image.new("RGB", (sum(widths) + 6, height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    top, bottom = font.getbbox("Box colour")[1::2]
    x = 4
    for (text, c), width in zip(items, widths, strict=True):
        if c:
            draw.rectangle((x, 5, x + 12, 17), fill=c)
        draw.text((x + (18 if c else 0), (height - bottom - top) // 2), text, fill=LEGEND_TEXT, font=font)
        x += width
    return strip
