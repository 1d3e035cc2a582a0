"""Parse one per-file prediction JSON against its task schema, collecting every problem.

A file is ``{"file_name": "subdir/img.png", "predictions": [singleton, ...]}``. Any problem makes the whole
file unusable (its scores stay null) but never raises: the caller reports ``(field, reason)`` per problem.
When a singleton has no ``probabilities`` (optional for every task type), its class probabilities are taken
as ``score`` (1 when absent) on its category and the rest spread evenly over the other categories, the
category never getting less than ``1 / C`` (:func:`_default_probabilities`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightly_airflow.lightly_dir import check_relative_file_name
from lightly_airflow.predictions.schema import TaskSchema, is_int

PROBABILITY_SUM_TOLERANCE = 1e-2


@dataclass
class FilePredictions:
    """The usable content of one prediction file (one entry per object/segment/instance)."""

    category_index: list[int] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    areas: list[float] = field(default_factory=list)
    keypoint_confidence: list[float] = field(default_factory=list)
    #: predictions without ``probabilities``, whose class probabilities come from ``score`` (:func:`_default_probabilities`)
    derived: int = 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _probabilities(value: Any, schema: TaskSchema, where: str, problems: list[tuple[str, str]]) -> np.ndarray | None:
    c = schema.num_categories
    if not isinstance(value, list):
        problems.append((where, f"must be a list of {c} probabilities ordered by category id"))
        return None
    if len(value) != c:
        problems.append((where, f"has {len(value)} values but the schema has {c} categories"))
        return None
    numbers = [_number(v) for v in value]
    if any(v is None for v in numbers):
        problems.append((where, "must contain only numbers"))
        return None
    p = np.asarray(numbers, np.float64)
    finite = p[~np.isnan(p)]
    if np.isinf(finite).any() or (finite < 0).any() or (finite > 1).any():
        problems.append((where, "values must lie in [0, 1]"))
        return None
    total = float(finite.sum())
    # One category: ``[p]`` is a binary classifier's probability of it, as Lightly's scorers read one column
    # (``[p, 1 - p]``), so it need not sum to 1.
    if c > 1 and abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        problems.append((where, f"sum to {total:.6g}, not 1 (tolerance {PROBABILITY_SUM_TOLERANCE})"))
        return None
    return p


def _category(value: Any, schema: TaskSchema, where: str, problems: list[tuple[str, str]]) -> int | None:
    if not is_int(value):
        problems.append((where, f"{value!r} is not an integer category id"[:300]))
        return None
    index = schema.index_of.get(value)
    if index is None:
        ids = list(schema.category_ids)
        shown = ids if len(ids) <= 20 else ids[:20] + ["…"]
        problems.append((where, f"unknown category id {value}; schema.json has ids {shown}"))
    return index


def _score(value: Any, where: str, problems: list[tuple[str, str]], required: bool) -> float | None:
    if value is None and not required:
        return None
    if value is None:
        problems.append((where, "is missing or null: this task type needs a score in [0, 1] per prediction"))
        return None
    v = _number(value)
    if v is None or math.isnan(v) or not 0.0 <= v <= 1.0:
        problems.append((where, f"{value!r} is not a score in [0, 1]"[:300]))
        return None
    return v


def _bbox(value: Any, where: str, problems: list[tuple[str, str]]) -> bool:
    parsed = [_number(v) for v in value] if isinstance(value, list) else []
    numbers = [v for v in parsed if v is not None and math.isfinite(v)]
    if len(parsed) != 4 or len(numbers) != 4:
        problems.append((where, "must be [x, y, width, height] in pixels"))
        return False
    if numbers[2] < 0 or numbers[3] < 0:
        problems.append((where, "width and height must not be negative"))
        return False
    return True


def rle_area(value: Any, where: str, problems: list[tuple[str, str]]) -> tuple[int, int] | None:
    """``(foreground pixels, total pixels)`` of an RLE (alternating 0/1 run lengths, starting with 0s)."""
    if not isinstance(value, list) or not value or not all(is_int(v) and v >= 0 for v in value):
        hint = ""
        if isinstance(value, dict) and "counts" in value:  # pycocotools' {"size": [h, w], "counts": ...}
            hint = (" (found a COCO RLE object with 'counts': COCO's runs go down the columns and may be compressed; "
                    "decode it with pycocotools.mask.decode and write the runs of the row-major mask, starting with "
                    "the count of 0s)")
        problems.append((where, "must be a run-length encoding: a non-empty list of non-negative integers" + hint))
        return None
    ones = sum(value[1::2])
    total = sum(value)
    if total == 0:
        problems.append((where, "encodes an empty mask (all run lengths are 0)"))
        return None
    return ones, total


def _default_probabilities(index: int, score: float, schema: TaskSchema) -> np.ndarray:
    """The class probabilities of a prediction without ``probabilities``: ``score`` on its category, the rest
    spread evenly, but never less on its category than on any other (``category_id`` *is* the predicted
    class): a score below ``1 / C`` -- e.g. the ``"score": 0`` that Lightly's COCO conversion script and
    labelformat write for labels -- gives the uniform vector, not one that favours the other categories.

    One category: ``[score]``, read as a binary classifier's ``[p, 1 − p]`` like given probabilities (Lightly's
    ``ObjectDetectionOutput.from_scores`` makes ``[score, 1 − score]``), floored at 1/2 by the rule above. It was
    ``[1]``, so a one-class detector's boxes all scored 0 on the three uncertainties, whatever their score."""
    c = schema.num_categories
    if c == 1:
        return np.array([max(score, 0.5)])
    if c < 1:
        return np.ones(c)
    if score <= 1.0 / c:
        return np.full(c, 1.0 / c)
    p = np.full(c, (1.0 - score) / (c - 1))
    p[index] = score
    return p


def parse_prediction_file(obj: Any, schema: TaskSchema, key: str) -> tuple[FilePredictions | None, list[tuple[str, str]]]:
    """Parse one file's predictions for ``schema``'s task.

    :param obj: the parsed JSON.
    :param schema: the task's schema.
    :param key: the image's key (``file_name`` must name it).
    :returns: the predictions (``None`` when the file has any problem) and the problems.
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(obj, dict):
        return None, [("", f"must be a JSON object with file_name and predictions, found {type(obj).__name__}")]
    file_name = obj.get("file_name")
    if file_name is not None:
        problem = check_relative_file_name(file_name)
        if problem:
            problems.append(("file_name", f"{file_name!r} {problem}"[:300]))
        elif file_name != key:
            hint = ""
            if file_name.lower() == key.lower():
                hint = ": it differs in case only, and names are case-sensitive"
            elif file_name.endswith("/" + key):
                hint = (f": file_name is relative to the datasource root, so drop the leading "
                        f"{file_name[: -len(key)]!r}")
            elif key.endswith("/" + file_name):
                hint = f": file_name is relative to the datasource root, so write the file's folders {key[: -len(file_name)]!r} too"
            problems.append(("file_name", f"{file_name!r} does not match the file {key!r}{hint}"[:300]))
    preds = obj.get("predictions")
    if not isinstance(preds, list):
        problems.append(("predictions", f"must be a list, found {type(preds).__name__}"))
        return None, problems
    task_type = schema.task_type
    if task_type == "classification" and len(preds) != 1:
        problems.append(("predictions", f"classification expects exactly one prediction, found {len(preds)}"))
        return None, problems
    out = FilePredictions()
    segment_totals: set[int] = set()
    for i, pred in enumerate(preds):
        where = f"predictions[{i}]"
        if not isinstance(pred, dict):
            problems.append((where, f"must be an object, found {type(pred).__name__}"))
            continue
        n_before = len(problems)
        if task_type == "keypoint-detection":
            kps = pred.get("keypoints")
            numbers = [_number(v) for v in kps] if isinstance(kps, list) else []
            if not numbers or len(numbers) % 3 or any(v is None or not math.isfinite(v) for v in numbers):
                problems.append((f"{where}.keypoints", "must be a non-empty list [x1, y1, c1, x2, y2, c2, ...]"))
                continue
            conf = np.asarray(numbers[2::3], np.float64)
            if (conf < 0).any() or (conf > 1).any():
                hint = (" (COCO visibility flags 0/1/2 are not confidences: write 0 for unlabelled and 1 for labelled "
                        "keypoints)") if set(conf.tolist()) <= {0.0, 1.0, 2.0} else ""
                problems.append((f"{where}.keypoints", f"keypoint confidences must lie in [0, 1]{hint}"))
                continue
            if pred.get("bbox") is not None:
                _bbox(pred["bbox"], f"{where}.bbox", problems)
            _score(pred.get("score"), f"{where}.score", problems, required=False)
            index = None
            if pred.get("category_id") is not None and schema.num_categories:
                index = _category(pred["category_id"], schema, f"{where}.category_id", problems)
            if len(problems) == n_before:
                out.keypoint_confidence.append(float(conf.mean()))
                if index is not None:
                    out.category_index.append(index)
            continue
        index = _category(pred.get("category_id"), schema, f"{where}.category_id", problems)
        score = _score(pred.get("score"), f"{where}.score", problems, required=task_type != "classification")
        probs = None
        if pred.get("probabilities") is not None:  # optional (null = absent) for every task type, as in Lightly's format
            probs = _probabilities(pred.get("probabilities"), schema, f"{where}.probabilities", problems)
        if task_type in ("object-detection", "instance-segmentation"):
            _bbox(pred.get("bbox"), f"{where}.bbox", problems)
        area = None
        if task_type in ("semantic-segmentation", "instance-segmentation"):
            rle = rle_area(pred.get("segmentation"), f"{where}.segmentation", problems)
            if rle is not None:
                area = rle[0]
                segment_totals.add(rle[1])
        if len(problems) != n_before or index is None:
            continue
        if probs is None:
            probs = _default_probabilities(index, score if score is not None else 1.0, schema)
            out.derived += 1
        out.category_index.append(index)
        out.probabilities.append(probs)
        out.scores.append(score if score is not None else float(np.nanmax(probs)))
        out.areas.append(float(area) if area is not None else 0.0)
    if len(segment_totals) > 1:
        problems.append(("predictions", f"segmentation masks encode different image sizes ({sorted(segment_totals)} pixels)"))
    return (None if problems else out), problems
