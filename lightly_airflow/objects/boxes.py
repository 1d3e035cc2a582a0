"""Objects of one image: boxes of object-detection, instance-segmentation and keypoint predictions, and the
synthetic boxes of ``auto_tasks`` (TILING grids, fixed CROP boxes); padding and clipping to crop boxes.

A prediction file is used only when it parses cleanly (:func:`~lightly_airflow.predictions.parse.
parse_prediction_file`, the same check the predictions stage reports problems with), so an object exists
exactly when the image's scores and class counts count it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lightly_airflow.predictions.parse import parse_prediction_file
from lightly_airflow.predictions.schema import TaskSchema

#: Task types whose predictions are objects (semantic segmentation has none).
OBJECT_TASK_TYPES = ("object-detection", "instance-segmentation", "keypoint-detection")


@dataclass(frozen=True)
class ObjectBox:
    """One object of an image.

    :param task: the prediction or auto task.
    :param index: its position in the prediction file (or the tile/box number of an auto task).
    :param bbox: ``(x, y, width, height)`` in pixels, as predicted (top-left origin).
    :param category: category name (``None`` for auto tasks, and for keypoints without ``category_id`` of a task
        with several categories: :attr:`TaskSchema.implied_index <lightly_airflow.predictions.TaskSchema.implied_index>`).
    :param score: the prediction's score (``None`` when absent).
    :param from_keypoints: the box is the extent of the prediction's keypoints (:func:`keypoint_bbox`: a keypoint
        prediction without ``bbox``), computed here as ``[x0, y0, x1 - x0, y1 - y0]``: it cannot be corners given
        for a width and a height, so the corner-format check (``shard.corner_looking``) leaves it out.
    """

    task: str
    index: int
    bbox: tuple[float, float, float, float]
    category: str | None = None
    score: float | None = None
    from_keypoints: bool = False


def keypoint_bbox(keypoints: list[float]) -> tuple[float, float, float, float]:
    """Bounding box of the keypoints with confidence > 0 (of all of them when none has)."""
    xs, ys, cs = keypoints[0::3], keypoints[1::3], keypoints[2::3]
    seen = [(x, y) for x, y, c in zip(xs, ys, cs, strict=True) if c > 0] or list(zip(xs, ys, strict=True))
    x0, x1 = min(p[0] for p in seen), max(p[0] for p in seen)
    y0, y1 = min(p[1] for p in seen), max(p[1] for p in seen)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def prediction_boxes(obj: Any, schema: TaskSchema, key: str,
                     problems: list[tuple[str, str]] | None = None) -> list[ObjectBox]:
    """The objects of one parsed prediction file; ``[]`` when the file has problems (the predictions stage reports
    each; they are added to ``problems`` as ``(field, problem)`` for the object pass to count) or the task type
    has no objects."""
    if schema.task_type not in OBJECT_TASK_TYPES:
        return []
    parsed, found = parse_prediction_file(obj, schema, key)
    if parsed is None or found:
        if problems is not None:
            problems.extend(found)
        return []
    out: list[ObjectBox] = []
    for i, pred in enumerate(obj["predictions"]):
        cid = pred.get("category_id")
        index = schema.index_of.get(cid) if cid is not None else schema.implied_index
        category = None if index is None else schema.category_names[index]
        score = pred.get("score")
        score = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None
        derived = schema.task_type == "keypoint-detection" and pred.get("bbox") is None
        if derived:
            bbox = keypoint_bbox([float(v) for v in pred["keypoints"]])
        else:
            x, y, w, h = (float(v) for v in pred["bbox"])
            bbox = (x, y, w, h)
        out.append(ObjectBox(schema.name, i, bbox, category, score, from_keypoints=derived))
    return out


def tiling_boxes(name: str, num_rows: int, num_cols: int, overlap: float, width: int, height: int) -> list[ObjectBox]:
    """A ``num_rows`` x ``num_cols`` grid covering the image; neighbouring tiles overlap by ``overlap`` times
    the tile size (``tile = size / (n - (n - 1) * overlap)``), row by row from the top left."""
    tw = width / (num_cols - (num_cols - 1) * overlap)
    th = height / (num_rows - (num_rows - 1) * overlap)
    out = []
    for r in range(num_rows):
        for c in range(num_cols):
            out.append(ObjectBox(name, r * num_cols + c, (c * tw * (1 - overlap), r * th * (1 - overlap), tw, th)))
    return out


def auto_task_boxes(task: dict[str, Any], width: int, height: int) -> list[ObjectBox]:
    """The synthetic objects of one ``auto_tasks`` entry on an image of ``width`` x ``height`` pixels."""
    name = str(task["name"])
    if task["type"] == "TILING":
        return tiling_boxes(name, int(task["num_rows"]), int(task["num_cols"]), float(task.get("overlap") or 0.0),
                            width, height)
    return [
        ObjectBox(name, i, (b[0] * width, b[1] * height, b[2] * width, b[3] * height))
        for i, b in enumerate(task["bboxs"])
    ]


def inside_image(bbox: tuple[float, float, float, float], width: int, height: int) -> bool:
    """Whether a box covers any area of the image. A box wholly outside it or only touching its border
    (predictions made at another resolution or for another image), or of zero width or height (a degenerate
    prediction, a keypoint instance with one visible keypoint), has no pixel of an object."""
    x, y, w, h = bbox
    return min(x + w, width) - max(x, 0.0) > 0 and min(y + h, height) - max(y, 0.0) > 0


#: Pixels a predicted box may reach past the image's edge before it counts as clipped (``overflows``): detectors
#: round or pad their boxes by a fraction of a pixel (``640.0001`` on a 640-pixel image), which is no problem.
EDGE_TOLERANCE = 1.0


def overflows(bbox: tuple[float, float, float, float], width: int, height: int) -> bool:
    """Whether a box reaches more than :data:`EDGE_TOLERANCE` pixels past an edge of the image: its crop is clipped
    to the image, so the object is cut (a box predicted at another resolution, or corners given as ``w, h``)."""
    x, y, w, h = bbox
    t = EDGE_TOLERANCE
    return x < -t or y < -t or x + w > width + t or y + h > height + t


def fits_as_corners(bbox: tuple[float, float, float, float], width: int, height: int) -> bool:
    """Whether ``[x, y, w, h]`` also reads as corners ``[x0, y0, x1, y1]`` of a box inside the image (``w > x``,
    ``h > y``, both corners within it): true of every box of a file written in the corner format (Pascal VOC,
    torchvision's ``boxes``) where Lightly's format has a width and a height."""
    x0, y0, x1, y1 = bbox
    t = EDGE_TOLERANCE
    return -t <= x0 < x1 <= width + t and -t <= y0 < y1 <= height + t


def crop_box(bbox: tuple[float, float, float, float], padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixels cropped for a box: its width and height each grow by ``padding`` times themselves, half on
    each side (Lightly: "a padding of X=0.1 will extend both width and height of all bounding boxes by 10
    percent"), the result is rounded outwards to whole pixels and clipped to the image; at least one pixel
    wide and high. Returns ``(x, y, w, h)``.

    The edges are clipped before they are rounded: a finite box whose padded edge overflows to infinity (a
    ``1e308`` width, which JSON and the prediction check allow) raised ``OverflowError`` in the rounding, and the
    image lost every object, counted as an unreadable image."""
    x, y, w, h = bbox
    px, py = padding * w / 2, padding * h / 2
    x0 = math.floor(max(0.0, min(width - 1.0, x - px)))
    y0 = math.floor(max(0.0, min(height - 1.0, y - py)))
    x1 = max(x0 + 1, math.ceil(min(float(width), x + w + px)))
    y1 = max(y0 + 1, math.ceil(min(float(height), y + h + py)))
    return (x0, y0, x1 - x0, y1 - y0)
