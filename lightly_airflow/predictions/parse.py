"""Parse one per-file prediction JSON against its task schema, collecting every problem.

A file is ``{"file_name": "subdir/img.png", "predictions": [singleton, ...]}``. Any problem makes the whole
file unusable (its scores stay null) but never raises: the caller reports ``(field, reason)`` per problem, each
reason ending with its fix (``… . Fix: …``, which the run report shows in its own column).
When a singleton has no ``probabilities`` (optional for every task type), its class probabilities are taken
as ``score`` (1 when absent) on its category and the rest spread evenly over the other categories, the
category never getting less than ``1 / C`` (:func:`_default_probabilities`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightly_airflow.lightly_dir import check_relative_file_name, same_frame
from lightly_airflow.predictions.schema import TaskSchema, is_int

PROBABILITY_SUM_TOLERANCE = 1e-2
#: A singleton's keys in Lightly's format (COCO results without ``image_id``).
KEYS = ("category_id", "probabilities", "score", "bbox", "segmentation", "keypoints")
#: Other names of those keys (Lightly's own camelCase API, detector outputs, singular/plural slips). Such a key where
#: its task type reads Lightly's key and the file lacks it is a problem that names the rename: read as absent,
#: ``probability`` made a classification one-hot (every uncertainty 0) and ``confidence`` a box without a score,
#: neither saying why. (Lightly's own prediction models refuse unknown keys: ``extra = "forbid"``.)
RENAMES = {
    "categoryId": "category_id", "category": "category_id", "class_id": "category_id", "label": "category_id",
    "label_id": "category_id", "class": "category_id", "cls": "category_id",
    "probability": "probabilities", "probs": "probabilities", "class_probabilities": "probabilities",
    "scores": "probabilities", "prob": "probabilities",
    "confidence": "score", "conf": "score", "objectness": "score",
    "box": "bbox", "bounding_box": "bbox", "boxes": "bbox", "xywh": "bbox",
    "mask": "segmentation", "rle": "segmentation", "segmentation_mask": "segmentation",
    "keypoint": "keypoints", "kps": "keypoints", "landmarks": "keypoints",
}
_READ_BY = {  # the keys each task type checks (the others are Lightly's too, and ignored by that type)
    "classification": ("category_id", "probabilities", "score"),
    "object-detection": ("category_id", "probabilities", "score", "bbox"),
    "semantic-segmentation": ("category_id", "probabilities", "score", "segmentation"),
    "instance-segmentation": ("category_id", "probabilities", "score", "bbox", "segmentation"),
    "keypoint-detection": ("category_id", "probabilities", "score", "bbox", "keypoints"),
}
#: Other tools' names of a file's ``predictions`` list (COCO's annotations, singular, detector outputs).
_PREDICTIONS_NAMES = ("prediction", "annotations", "preds", "detections", "objects", "results", "labels")
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number",
               type(None): "null"}


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
    #: keys of the file's predictions that Lightly's format does not have (COCO results' ``image_id``, ``area``, …),
    #: not read: the shard logs them per task
    ignored: Counter[str] = field(default_factory=Counter)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _categories(schema: TaskSchema) -> str:
    """The schema's categories by id, as the fix of a wrong vector names them (at most 10)."""
    pairs = [f"{i}: {n!r}" for i, n in zip(schema.category_ids, schema.category_names)]
    return "{" + ", ".join(pairs[:10]) + (", …" if len(pairs) > 10 else "") + "}"


def _probabilities(value: Any, schema: TaskSchema, where: str, problems: list[tuple[str, str]]) -> np.ndarray | None:
    c = schema.num_categories
    fix = f"Fix: write one probability per category of schema.json, ordered by category id {_categories(schema)}"
    if not isinstance(value, list):
        problems.append((where, f"must be a list of {c} probabilities ordered by category id, found "
                                f"{_json_type(value)}. {fix}"))
        return None
    if len(value) != c:
        if c == 1:  # a binary classifier's [p, 1 - p]
            extra = " (a task with one category takes [p], its probability, read as [p, 1 - p])"
        elif len(value) == c + 1:
            extra = " (one more than the categories: a background column? Lightly has none unless schema.json lists it)"
        else:
            extra = ""
        problems.append((where, f"has {len(value)} values but the schema has {c} categories{extra}. {fix}"))
        return None
    numbers = [_number(v) for v in value]
    if any(v is None for v in numbers):
        problems.append((where, f"must contain only numbers (found {_json_type(value[numbers.index(None)])}). {fix}"))
        return None
    p = np.asarray(numbers, np.float64)
    finite = p[~np.isnan(p)]
    if np.isinf(finite).any() or (finite < 0).any() or (finite > 1).any():
        if not np.isinf(finite).any() and (finite >= 0).all() and abs(float(finite.sum()) - 100.0) <= 1.0:
            how = "Fix: they look like percentages (they sum to 100): divide each by 100"
        else:
            how = ("Fix: give probabilities, not raw model outputs: apply softmax to logits (a single binary "
                   "output: sigmoid)")
        problems.append((where, f"values must lie in [0, 1]. {how}"))
        return None
    total = float(finite.sum())
    # One category: ``[p]`` is a binary classifier's probability of it, as Lightly's scorers read one column
    # (``[p, 1 - p]``), so it need not sum to 1.
    if c > 1 and abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        problems.append((where, f"sum to {total:.6g}, not 1 (tolerance {PROBABILITY_SUM_TOLERANCE}). Fix: give one "
                                "distribution over the schema's categories (softmax over all of them, or divide each "
                                "by their sum); independent per-class sigmoids are no distribution: one task per "
                                "class, each with one category"))
        return None
    return p


def _category(value: Any, schema: TaskSchema, where: str, problems: list[tuple[str, str]]) -> int | None:
    ids = list(schema.category_ids)
    shown = ids if len(ids) <= 20 else ids[:20] + ["…"]
    if value is None:
        problems.append((where, f"is missing. Fix: add \"category_id\": the predicted category's id, one of "
                                f"schema.json's ids {shown}"))
        return None
    if not is_int(value):
        if isinstance(value, str) and value.strip().isdigit():
            how = f"write {value.strip()} without quotes"
        elif isinstance(value, float) and value.is_integer():
            how = f"write {int(value)}, without a decimal point"
        elif isinstance(value, str) and value in schema.category_names:
            how = f"write its id {schema.category_ids[schema.category_names.index(value)]}, not its name"
        else:
            how = f"use one of schema.json's ids {shown}"
        problems.append((where, f"{value!r} is not an integer category id"[:200] + f". Fix: {how}"))
        return None
    index = schema.index_of.get(value)
    if index is None:
        problems.append((where, f"unknown category id {value}; schema.json has ids {shown}. Fix: use one of them, or "
                                f"add {{\"id\": {value}, \"name\": …}} to schema.json's categories"))
    return index


def _score(value: Any, where: str, problems: list[tuple[str, str]], required: bool) -> float | None:
    if value is None and not required:
        return None
    if value is None:
        problems.append((where, "is missing or null: this task type needs a score in [0, 1] per prediction. Fix: add "
                                "\"score\": the model's confidence in the prediction (for a label without one, 1)"))
        return None
    v = _number(value)
    if v is None or math.isnan(v) or not 0.0 <= v <= 1.0:
        how = ("it looks like a percentage: divide it by 100" if v is not None and 1.0 < v <= 100.0
               else "write the confidence as a number in [0, 1]")
        problems.append((where, f"{value!r} is not a score in [0, 1]"[:200] + f". Fix: {how}"))
        return None
    return v


_BBOX_FIX = "Fix: write \"bbox\": [x, y, width, height] in pixels from the top-left corner (COCO's box format)"


def _bbox(value: Any, where: str, problems: list[tuple[str, str]]) -> bool:
    if value is None:
        problems.append((where, f"is missing. {_BBOX_FIX}"))
        return False
    parsed = [_number(v) for v in value] if isinstance(value, list) else []
    numbers = [v for v in parsed if v is not None and math.isfinite(v)]
    if len(parsed) != 4 or len(numbers) != 4:
        problems.append((where, f"must be [x, y, width, height] in pixels, found {value!r}"[:200] + f". {_BBOX_FIX}"))
        return False
    if numbers[2] < 0 or numbers[3] < 0:
        problems.append((where, f"width and height must not be negative, found {value!r}"[:200] + f". {_BBOX_FIX}: "
                                "corners [x0, y0, x1, y1] become [x0, y0, x1 - x0, y1 - y0]"))
        return False
    return True


_RLE_FIX = ("Fix: encode the binary mask as Lightly's docs show: the lengths of the alternating runs of 0s and 1s "
            "over the row-major mask, starting with the count of 0s (0 when the first pixel is 1)")


def rle_area(value: Any, where: str, problems: list[tuple[str, str]]) -> tuple[int, int] | None:
    """``(foreground pixels, total pixels)`` of an RLE (alternating 0/1 run lengths, starting with 0s)."""
    if value is None:
        problems.append((where, f"is missing. {_RLE_FIX}"))
        return None
    if not isinstance(value, list) or not value or not all(is_int(v) and v >= 0 for v in value):
        hint = ""
        if isinstance(value, dict) and "counts" in value:  # pycocotools' {"size": [h, w], "counts": ...}
            hint = (" (found a COCO RLE object with 'counts': COCO's runs go down the columns and may be compressed; "
                    "decode it with pycocotools.mask.decode and write the runs of the row-major mask, starting with "
                    "the count of 0s)")
        problems.append((where, "must be a run-length encoding: a non-empty list of non-negative integers" + hint
                         + f". {_RLE_FIX}"))
        return None
    ones = sum(value[1::2])
    total = sum(value)
    if total == 0:
        problems.append((where, "encodes an empty mask (all run lengths are 0). Fix: write the runs over all of the "
                                "image's pixels (they sum to width × height)"))
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


def _check_file_name(file_name: Any, key: str, problems: list[tuple[str, str]]) -> None:
    """``file_name`` (optional) must be the image's key, relative to the datasource root (a video frame's in
    any of Lightly's frame formats: :func:`~lightly_airflow.lightly_dir.same_frame`)."""
    if file_name is None or file_name == key or (isinstance(file_name, str) and same_frame(file_name, key)):
        return
    fix = f". Fix: write \"file_name\": {json.dumps(key)}"
    problem = check_relative_file_name(file_name)
    if problem:
        problems.append(("file_name", f"{file_name!r} {problem}"[:200] + fix))
        return
    hint = ""
    if file_name.lower() == key.lower():
        hint = ": it differs in case only, and names are case-sensitive"
    elif file_name.endswith("/" + key):
        hint = f": file_name is relative to the datasource root, so drop the leading {file_name[: -len(key)]!r}"
    elif key.endswith("/" + file_name):
        hint = f": file_name is relative to the datasource root, so write the file's folders {key[: -len(file_name)]!r} too"
    problems.append(("file_name", f"{file_name!r} does not match the file {key!r}{hint}"[:250] + fix))


def _renamed(pred: dict[str, Any], task_type: str, where: str, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """``pred`` with each key of :data:`RENAMES` read under Lightly's name where its task type reads that key and
    the file lacks it, each such key a problem naming the rename (the rest of the singleton is checked as it would
    read renamed, so every problem shows at once)."""
    out = pred
    for other, ours in RENAMES.items():
        if other in pred and ours not in pred and ours in _READ_BY[task_type]:
            problems.append((f"{where}.{other}", f"is not a key of Lightly's prediction format, which calls it {ours!r} "
                                                 f"(the file is not read). Fix: rename {other!r} to {ours!r}"))
            out = {**out, ours: pred[other]}
    return out


_KEYPOINTS_FIX = ("Fix: write the instance's keypoints as one flat list of x, y, confidence triples "
                  "[x1, y1, c1, x2, y2, c2, ...] with each confidence c in [0, 1]")


def _keypoint_instance(pred: dict[str, Any], schema: TaskSchema, where: str, problems: list[tuple[str, str]],
                       out: FilePredictions) -> None:
    kps = pred.get("keypoints")
    numbers = [_number(v) for v in kps] if isinstance(kps, list) else []
    if not numbers or len(numbers) % 3 or any(v is None or not math.isfinite(v) for v in numbers):
        hint = " (found a list of lists: flatten it)" if isinstance(kps, list) and kps and isinstance(kps[0], list) \
            else ""
        problems.append((f"{where}.keypoints", f"must be a non-empty list [x1, y1, c1, x2, y2, c2, ...]{hint}. "
                                               f"{_KEYPOINTS_FIX}"))
        return
    conf = np.asarray(numbers[2::3], np.float64)
    if (conf < 0).any() or (conf > 1).any():
        hint = (" (COCO visibility flags 0/1/2 are not confidences: write 0 for unlabelled and 1 for labelled "
                "keypoints)") if set(conf.tolist()) <= {0.0, 1.0, 2.0} else ""
        problems.append((f"{where}.keypoints", f"keypoint confidences must lie in [0, 1]{hint}. {_KEYPOINTS_FIX}"))
        return
    n_before = len(problems)
    if pred.get("bbox") is not None:
        _bbox(pred["bbox"], f"{where}.bbox", problems)
    _score(pred.get("score"), f"{where}.score", problems, required=False)
    if pred.get("probabilities") is not None and schema.num_categories:  # (checked; keypoint scores do not use them)
        _probabilities(pred["probabilities"], schema, f"{where}.probabilities", problems)
    # category_id is optional here: without it, a task of one category (a pose schema's "person") counts the
    # instance as that category (it counted in no category_count column: a CATEGORY_COUNT input saw 0 everywhere)
    index = schema.implied_index
    if pred.get("category_id") is not None and schema.num_categories:
        index = _category(pred["category_id"], schema, f"{where}.category_id", problems)
    if len(problems) == n_before:
        out.keypoint_confidence.append(float(conf.mean()))
        if index is not None:
            out.category_index.append(index)


def _singleton(pred: dict[str, Any], schema: TaskSchema, where: str, problems: list[tuple[str, str]],
               out: FilePredictions, segment_totals: set[int]) -> None:
    """One classification, box or segment: checked, and added to ``out`` when it has no problem."""
    task_type = schema.task_type
    n_before = len(problems)
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
        return
    if probs is None:
        probs = _default_probabilities(index, score if score is not None else 1.0, schema)
        out.derived += 1
    out.category_index.append(index)
    out.probabilities.append(probs)
    out.scores.append(score if score is not None else float(np.nanmax(probs)))
    out.areas.append(float(area) if area is not None else 0.0)


def parse_prediction_file(obj: Any, schema: TaskSchema, key: str) -> tuple[FilePredictions | None, list[tuple[str, str]]]:
    """Parse one file's predictions for ``schema``'s task.

    Every problem says what is wrong and ends with its fix (``Fix: …``).

    :param obj: the parsed JSON.
    :param schema: the task's schema.
    :param key: the image's key (``file_name`` must name it).
    :returns: the predictions (``None`` when the file has any problem) and the problems.
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(obj, dict):
        return None, [("", f"must be a JSON object with file_name and predictions, found {_json_type(obj)}. Fix: "
                           f"write {{\"file_name\": {json.dumps(key)}, \"predictions\": [...]}}")]
    _check_file_name(obj.get("file_name"), key, problems)
    preds = obj.get("predictions")
    if preds is None:
        other = next((k for k in _PREDICTIONS_NAMES if isinstance(obj.get(k), list)), None)
        problems.append(("predictions", "is missing" + (" (null)" if "predictions" in obj else "")
                         + (f"; found {other!r}. Fix: rename {other!r} to 'predictions'" if other else
                            ". Fix: add \"predictions\": the list of the image's predictions ([] for none)")))
        return None, problems
    if not isinstance(preds, list):
        problems.append(("predictions", f"must be a list, found {_json_type(preds)}. Fix: write \"predictions\": "
                                        "[...], a list of the image's predictions (one object each)"))
        return None, problems
    task_type = schema.task_type
    if task_type == "classification" and len(preds) != 1:
        how = ("add the image's one prediction {\"category_id\": …, \"probabilities\": […]}" if not preds else
               "keep one prediction per image (its probabilities cover every category)")
        problems.append(("predictions", f"classification expects exactly one prediction, found {len(preds)}. "
                                        f"Fix: {how}"))
        return None, problems
    out = FilePredictions()
    segment_totals: set[int] = set()
    for i, pred in enumerate(preds):
        where = f"predictions[{i}]"
        if not isinstance(pred, dict):
            problems.append((where, f"must be an object, found {_json_type(pred)}. Fix: write each prediction as an "
                                    "object, e.g. {\"category_id\": 0, ...} with the keys of its task type"))
            continue
        out.ignored.update(k for k in pred if k not in KEYS and k not in RENAMES)
        pred = _renamed(pred, task_type, where, problems)
        if task_type == "keypoint-detection":
            _keypoint_instance(pred, schema, where, problems, out)
        else:
            _singleton(pred, schema, where, problems, out, segment_totals)
    if len(segment_totals) > 1:
        problems.append(("predictions", f"segmentation masks encode different image sizes ({sorted(segment_totals)} "
                                        "pixels). Fix: encode every mask over the whole image (width × height "
                                        "pixels)"))
    return (None if problems else out), problems
