"""Boxes of predictions and auto tasks, padding and clipping."""

from __future__ import annotations

import pytest

from lightly_airflow.objects.boxes import auto_task_boxes, crop_box, keypoint_bbox, prediction_boxes, tiling_boxes
from lightly_airflow.predictions.schema import parse_task_schema


def _schema(task_type: str):
    schema, problems = parse_task_schema("t", {"task_type": task_type, "categories": [{"id": 0, "name": "car"},
                                                                                      {"id": 5, "name": "bus"}]})
    assert schema is not None, problems
    return schema


def test_detection_instance_and_keypoint_boxes() -> None:
    det = {"file_name": "a.png", "predictions": [{"category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5}]}
    (box,) = prediction_boxes(det, _schema("object-detection"), "a.png")
    assert box.bbox == (1.0, 2.0, 3.0, 4.0) and box.category == "bus" and box.score == 0.5 and box.index == 0
    inst = {"file_name": "a.png", "predictions": [
        {"category_id": 0, "bbox": [0, 0, 2, 2], "score": 0.9, "segmentation": [0, 4, 12]}]}
    (box,) = prediction_boxes(inst, _schema("instance-segmentation"), "a.png")
    assert box.bbox == (0.0, 0.0, 2.0, 2.0) and box.category == "car"
    kp = {"file_name": "a.png", "predictions": [{"keypoints": [10, 20, 0.9, 30, 5, 0.8, 99, 99, 0.0]}]}
    (box,) = prediction_boxes(kp, _schema("keypoint-detection"), "a.png")
    assert box.bbox == (10.0, 5.0, 20.0, 15.0)  # the invisible keypoint (confidence 0) is left out
    assert keypoint_bbox([1, 1, 0, 3, 4, 0]) == (1.0, 1.0, 2.0, 3.0)  # none visible: all of them
    # A file with a problem gives no objects (the predictions stage reports it); classification has none.
    assert prediction_boxes({"predictions": [{"category_id": 9, "bbox": [0, 0, 1, 1], "score": 1}]},
                            _schema("object-detection"), "a.png") == []
    assert prediction_boxes({"predictions": [{"category_id": 0, "probabilities": [1, 0]}]},
                            _schema("classification"), "a.png") == []


def test_padding_rounds_outwards_and_clips() -> None:
    assert crop_box((10.2, 10.7, 20, 10), 0.0, 100, 100) == (10, 10, 21, 11)
    assert crop_box((10, 10, 20, 10), 0.1, 100, 100) == (9, 9, 22, 12)  # grown to 22 x 11; y 9.5..20.5 rounds out to 9..21
    assert crop_box((0, 0, 100, 50), 0.5, 100, 60) == (0, 0, 100, 60)  # clipped to the image
    assert crop_box((50, 50, 0, 0), 0.0, 100, 100) == (50, 50, 1, 1)  # at least one pixel


def test_padding_is_lightlys_total_growth() -> None:
    """Lightly's object-level docs: "a padding of X=0.1 will extend both width and height of all bounding boxes
    by 10 percent", i.e. half of it on each side. Padding used to grow each side by 10 percent (crops 20 %
    larger: 120 x 60 here)."""
    assert crop_box((20, 12.5, 100, 50), 0.1, 300, 200) == (15, 10, 110, 55)
    # Near the border: the 110 x 55 box (5, 2.5)-(115, 57.5) is clipped to the 200 x 57 image.
    assert crop_box((10, 5, 100, 50), 0.1, 200, 57) == (5, 2, 110, 55)
    assert crop_box((2, 2.5, 100, 50), 0.1, 200, 100) == (0, 0, 107, 55)  # 3 px of the left padding cut off


@pytest.mark.parametrize("overlap", [0.0, 0.2])
def test_tiling_covers_the_image(overlap: float) -> None:
    tiles = tiling_boxes("tiles", 2, 3, overlap, 300, 200)
    assert [t.index for t in tiles] == list(range(6))
    right = max(t.bbox[0] + t.bbox[2] for t in tiles)
    bottom = max(t.bbox[1] + t.bbox[3] for t in tiles)
    assert right == pytest.approx(300) and bottom == pytest.approx(200)
    w = tiles[0].bbox[2]
    assert tiles[1].bbox[0] == pytest.approx(w * (1 - overlap))  # neighbours overlap by overlap * tile size
    crops = auto_task_boxes({"type": "CROP", "name": "c", "bboxs": [[0.5, 0.25, 0.5, 0.5]]}, 200, 100)
    assert crops[0].bbox == (100.0, 25.0, 100.0, 50.0) and crops[0].category is None


def test_null_optional_fields_are_absent() -> None:
    """Lightly's singletons have optional ``probabilities`` (every type) and ``bbox``, ``category_id``, ``score``
    (keypoints); a writer that serialises a missing value as ``null`` (a dataclass, a ``dict.get``) means the
    same. Such files used to be rejected whole (``None`` is not a bbox / a category id / a probability list)."""
    det = {"file_name": "a.png", "predictions": [
        {"category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.75, "probabilities": None}]}
    (box,) = prediction_boxes(det, _schema("object-detection"), "a.png")
    assert box.bbox == (1.0, 2.0, 3.0, 4.0) and box.category == "bus"
    kp = {"file_name": "a.png", "predictions": [
        {"keypoints": [10, 20, 0.9, 30, 5, 0.8], "bbox": None, "category_id": None, "score": None}]}
    (box,) = prediction_boxes(kp, _schema("keypoint-detection"), "a.png")
    assert box.bbox == (10.0, 5.0, 20.0, 15.0) and box.category is None and box.score is None
    from lightly_airflow.predictions import parse_prediction_file

    parsed, problems = parse_prediction_file(det, _schema("object-detection"), "a.png")
    assert problems == [] and parsed.probabilities[0].tolist() == [0.25, 0.75]
