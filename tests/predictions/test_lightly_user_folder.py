"""A Lightly Worker user's ``.lightly/predictions/`` as Lightly's "Prediction Format" docs write it (all five task
types, a video frame named ``<video>-<frame>-<ext>.json``), run through ``lightly-airflow predictions``: the scores
against values worked out by hand, and every malformed prediction counted and named with its key and its fix."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from metadata.conftest import make_manifest, write_tree

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.report.problems import split_fix

P = ".lightly/predictions/"
WEATHER = {"task_type": "classification", "categories": [{"id": 0, "name": "sunny"}, {"id": 1, "name": "clouded"},
                                                         {"id": 2, "name": "rainy"}]}
PEOPLE_CARS = {"task_type": "object-detection", "categories": [{"id": 0, "name": "person"}, {"id": 1, "name": "car"}]}
CARS = {"task_type": "semantic-segmentation", "categories": [{"id": 0, "name": "background"}, {"id": 1, "name": "car"}]}
PEOPLE = {"task_type": "instance-segmentation", "categories": [{"id": 0, "name": "person"}]}
POSE = {"task_type": "keypoint-detection", "categories": [
    {"id": 0, "name": "person", "keypointNames": ["nose", "left_eye", "right_eye"], "keypointSkeleton": [[0, 1]]}]}
SCHEMAS = {"weather": WEATHER, "det": PEOPLE_CARS, "seg": CARS, "inst": PEOPLE, "pose": POSE}
# The docs' encode() example, [[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1]] -> [2, 2, 1, 3, 3, 1], and its complement.
CAR_MASK, BACKGROUND_MASK = [2, 2, 1, 3, 3, 1], [0, 2, 2, 1, 3, 3, 1]
FRAME = "subdir/my_video-099-mp4.png"  # the docs' frame 99 of a 200-frame video


def h(*p: float) -> float:
    """Entropy in bits, normalised by the number of classes."""
    return float(-sum(x * np.log2(x) for x in p if x) / np.log2(len(p)))


def run_cli(tmp_path: Path, files: dict[str, object], keys: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    store = tmp_path / "lightly-bucket"  # .lightly/ in its own bucket, as the docs lay it out
    write_tree(store, {P + "tasks.json": list(SCHEMAS), **{f"{P}{t}/schema.json": s for t, s in SCHEMAS.items()},
                       **files})
    manifest = make_manifest(tmp_path, keys)
    assert main(["predictions", "--manifest", manifest, "--lightly-uri", str(store)]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_docs_folder_scores_as_worked_out_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    name = "subdir/image_1.png"
    files = {
        P + "weather/subdir/image_1.json": {"file_name": name, "predictions": [
            {"category_id": 0, "probabilities": [0.8, 0.1, 0.1]}]},
        P + "weather/image_0.json": {"file_name": "image_0.png", "predictions": [{"category_id": 2}]},  # optional probs
        P + "weather/subdir/my_video-099-mp4.json": {"file_name": FRAME, "predictions": [
            {"category_id": 1, "probabilities": [0.3, 0.5, 0.2]}]},
        P + "det/subdir/image_1.json": {"file_name": name, "predictions": [  # the docs' example, classes [person, car]
            {"category_id": 0, "bbox": [140, 100, 80, 90], "score": 0.8},
            {"category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9},
            {"category_id": 0, "bbox": [50, 60, 70, 80], "score": 0.5, "image_id": 1}]},  # a COCO result's key
        P + "seg/subdir/image_1.json": {"file_name": name, "predictions": [
            {"category_id": 0, "segmentation": BACKGROUND_MASK, "score": 0.8},
            {"category_id": 1, "segmentation": CAR_MASK, "score": 0.9}]},
        P + "inst/subdir/image_1.json": {"file_name": name, "predictions": [
            {"category_id": 0, "bbox": [2, 0, 2, 3], "segmentation": CAR_MASK, "score": 0.7},
            {"category_id": 0, "bbox": [0, 0, 1, 1], "segmentation": [0, 1, 11], "score": 0.9,
             "probabilities": [0.9]}]},
        P + "pose/subdir/image_1.json": {"file_name": name, "predictions": [
            {"category_id": 0, "keypoints": [10, 20, 0.9, 30, 40, 0.5, 0, 0, 0.7], "score": 0.8},
            {"keypoints": [5, 5, 0.2, 6, 6, 0.4, 7, 7, 0.6], "score": 0.6}]},  # (category_id optional: one category)
    }
    with caplog.at_level(logging.INFO, logger="lightly_airflow.predictions.shard"):
        result = run_cli(tmp_path, files, [name, "image_0.png", FRAME], capsys)
    ignored = [r.getMessage() for r in caplog.records if "does not have are not read" in r.getMessage()]
    assert len(ignored) == 1 and ignored[0].endswith(
        "task 'det': keys that Lightly's prediction format does not have are not read: 'image_id' in 1 predictions "
        "(e.g. .lightly/predictions/det/subdir/image_1.json)")
    assert (result["files"], result["with_predictions"], result["bad"]) == (3, 3, 0)
    assert result["derived_probabilities"] == {"weather": 1, "det": 3, "seg": 2, "inst": 1}
    rows = {r[C.KEY]: r for r in pq.read_table(result["output_uri"]).to_pylist()}

    def score(key: str, task: str, name: str) -> float:
        return rows[key][C.score_column(task, name)]

    # classification [0.8, 0.1, 0.1]: least confidence 0.2 / (1 - 1/3), margin 1 - (0.8 - 0.1)
    assert score(name, "weather", "uncertainty_least_confidence") == pytest.approx(0.3)
    assert score(name, "weather", "uncertainty_margin") == pytest.approx(0.3)
    assert score(name, "weather", "uncertainty_entropy") == pytest.approx(h(0.8, 0.1, 0.1))
    assert score(FRAME, "weather", "uncertainty_margin") == pytest.approx(1 - (0.5 - 0.3))
    assert score(FRAME, "weather", "uncertainty_least_confidence") == pytest.approx(0.5 / (2 / 3))
    assert score(FRAME, "weather", "uncertainty_entropy") == pytest.approx(h(0.3, 0.5, 0.2))
    assert rows["image_0.png"][C.class_distribution_column("weather")] == [0.0, 0.0, 1.0]  # only category_id: one-hot
    assert score("image_0.png", "weather", "uncertainty_entropy") == 0.0
    # detection: each box's score on its class, the rest on the other: [0.8, 0.2], [0.1, 0.9], [0.5, 0.5]
    assert score(name, "det", "uncertainty_least_confidence") == pytest.approx(1.0)  # the 0.5 box, max over boxes
    assert score(name, "det", "uncertainty_margin") == pytest.approx(1.0)
    assert score(name, "det", "objectness_least_confidence") == pytest.approx(1 - (0.8 + 0.9 + 0.5) / 3)
    assert score(name, "det", "object_frequency") == pytest.approx(1 + 0.25 + 1)  # raw: rescaled by the select task
    assert rows[name][C.class_distribution_column("det")] == pytest.approx([1.4, 1.6])
    assert rows[name][C.category_count_column("det", "person")] == 2
    assert rows[name][C.category_count_column("det", "car")] == 1
    # segmentation: 6 px at [0.8, 0.2] and 6 px at [0.1, 0.9], averaged per pixel
    assert score(name, "seg", "uncertainty_least_confidence") == pytest.approx((0.4 + 0.2) / 2)
    assert score(name, "seg", "uncertainty_margin") == pytest.approx((0.4 + 0.2) / 2)
    assert score(name, "seg", "uncertainty_entropy") == pytest.approx((h(0.8, 0.2) + h(0.1, 0.9)) / 2)
    assert rows[name][C.class_distribution_column("seg")] == pytest.approx([0.45, 0.55])
    # one category: [p] is the binary [p, 1 - p]; a score 0.7 box without probabilities is [0.7]
    assert score(name, "inst", "uncertainty_least_confidence") == pytest.approx(0.3 / 0.5)
    assert score(name, "inst", "objectness_least_confidence") == pytest.approx(1 - 0.8)
    assert score(name, "inst", "object_frequency") == pytest.approx(1.25)
    # keypoints: instance means 0.7 and 0.4
    assert score(name, "pose", "mean_uncertainty") == pytest.approx(1 - (0.7 + 0.4) / 2)
    assert rows[name][C.category_count_column("pose", "person")] == 2
    assert score("image_0.png", "pose", "mean_uncertainty") is None  # no file: null, reported as missing
    assert result["missing"] == 4 + 4  # image_0 and the frame have only the weather task


#: One malformed file per kind of problem a user brings, keyed by the image it is for: the file, then the
#: ``(field, the problem, its fix)`` reported. Each was a bare description before: what is wrong, but not what to do.
MALFORMED: dict[str, tuple[str, dict | list | str, list[tuple[str, str, str]]]] = {
    "percent.png": ("weather", {"file_name": "percent.png", "predictions": [
        {"category_id": 0, "probabilities": [80, 10, 10]}]},
        [("predictions[0].probabilities", "values must lie in [0, 1]", "divide each by 100")]),
    "logits.png": ("weather", {"file_name": "logits.png", "predictions": [
        {"category_id": 0, "probabilities": [2.1, -0.3, 0.4]}]},
        [("predictions[0].probabilities", "values must lie in [0, 1]", "apply softmax")]),
    "sigmoids.png": ("weather", {"file_name": "sigmoids.png", "predictions": [
        {"category_id": 0, "probabilities": [0.9, 0.7, 0.2]}]},
        [("predictions[0].probabilities", "sum to 1.8, not 1", "one task per class")]),
    "background.png": ("det", {"file_name": "background.png", "predictions": [
        {"category_id": 0, "bbox": [1, 2, 3, 4], "score": 0.8, "probabilities": [0.1, 0.7, 0.2]}]},
        [("predictions[0].probabilities", "has 3 values but the schema has 2 categories",
          "ordered by category id {0: 'person', 1: 'car'}")]),
    "binary.png": ("inst", {"file_name": "binary.png", "predictions": [
        {"category_id": 0, "bbox": [0, 0, 1, 1], "segmentation": [0, 12], "score": 0.7, "probabilities": [0.7, 0.3]}]},
        [("predictions[0].probabilities", "a task with one category takes [p]", "ordered by category id {0: 'person'}")]),
    "pose-probs.png": ("pose", {"file_name": "pose-probs.png", "predictions": [
        {"category_id": 0, "keypoints": [10, 20, 0.9], "score": 0.8, "probabilities": [1.5]}]},
        [("predictions[0].probabilities", "values must lie in [0, 1]", "apply softmax")]),
    "quoted.png": ("weather", {"file_name": "quoted.png", "predictions": [
        {"category_id": "1", "probabilities": [0.1, 0.8, 0.1]}]},
        [("predictions[0].category_id", "'1' is not an integer category id", "write 1 without quotes")]),
    "named.png": ("det", {"file_name": "named.png", "predictions": [{"category_id": "car", "bbox": [0, 0, 1, 1],
                                                                    "score": 0.5}]},
                  [("predictions[0].category_id", "'car' is not an integer category id", "write its id 1")]),
    "unknown.png": ("det", {"file_name": "unknown.png", "predictions": [{"category_id": 7, "bbox": [0, 0, 1, 1],
                                                                        "score": 0.5}]},
                    [("predictions[0].category_id", "unknown category id 7", 'add {"id": 7, "name": …}')]),
    "nocat.png": ("det", {"file_name": "nocat.png", "predictions": [{"bbox": [0, 0, 1, 1], "score": 0.5}]},
                  [("predictions[0].category_id", "is missing", "add \"category_id\"")]),
    "corners.png": ("det", {"file_name": "corners.png", "predictions": [  # [x0, y0, x1, y1]: the second box flips
        {"category_id": 0, "bbox": [50, 60, 70, 80], "score": 0.5},
        {"category_id": 0, "bbox": [50, 60, 10, -20], "score": 0.5}]},
        [("predictions[1].bbox", "width and height must not be negative", "[x0, y0, x1 - x0, y1 - y0]")]),
    "nobox.png": ("det", {"file_name": "nobox.png", "predictions": [{"category_id": 0, "score": 0.5}]},
                  [("predictions[0].bbox", "is missing", "[x, y, width, height] in pixels")]),
    "percent-score.png": ("det", {"file_name": "percent-score.png", "predictions": [
        {"category_id": 0, "bbox": [0, 0, 1, 1], "score": 87}]},
        [("predictions[0].score", "87 is not a score in [0, 1]", "divide it by 100")]),
    "two.png": ("weather", {"file_name": "two.png", "predictions": [{"category_id": 0}, {"category_id": 1}]},
                [("predictions", "expects exactly one prediction, found 2", "keep one prediction per image")]),
    "none.png": ("weather", {"file_name": "none.png", "predictions": []},
                 [("predictions", "expects exactly one prediction, found 0", "add the image's one prediction")]),
    "nopreds.png": ("det", {"file_name": "nopreds.png"}, [("predictions", "is missing", "([] for none)")]),
    "annotations.png": ("det", {"file_name": "annotations.png", "annotations": []},
                        [("predictions", "is missing; found 'annotations'", "rename 'annotations' to 'predictions'")]),
    "object.png": ("det", {"file_name": "object.png", "predictions": {"category_id": 0, "bbox": [0, 0, 1, 1],
                                                                      "score": 0.5}},
                   [("predictions", "must be a list, found an object", "a list of the image's predictions")]),
    "string.png": ("det", {"file_name": "string.png", "predictions": ["car"]},
                   [("predictions[0]", "must be an object, found a string", "write each prediction as an object")]),
    "toplist.png": ("det", [{"category_id": 0, "bbox": [0, 0, 1, 1], "score": 0.5}],
                    [("", "must be a JSON object with file_name and predictions, found a list",
                      'write {"file_name": "toplist.png", "predictions": [...]}')]),
    "moved.png": ("det", {"file_name": "input/moved.png", "predictions": []},
                  [("file_name", "does not match the file 'moved.png'", 'write "file_name": "moved.png"')]),
    "coco-rle.png": ("seg", {"file_name": "coco-rle.png", "predictions": [
        {"category_id": 1, "segmentation": {"size": [3, 4], "counts": "12"}, "score": 0.9}]},
        [("predictions[0].segmentation", "COCO RLE object", "starting with the count of 0s (0 when the first")]),
    "sizes.png": ("seg", {"file_name": "sizes.png", "predictions": [
        {"category_id": 0, "segmentation": [0, 12], "score": 0.9}, {"category_id": 1, "segmentation": [6, 10],
                                                                    "score": 0.9}]},
        [("predictions", "encode different image sizes ([12, 16] pixels)", "encode every mask over the whole image")]),
    "empty-mask.png": ("inst", {"file_name": "empty-mask.png", "predictions": [
        {"category_id": 0, "bbox": [0, 0, 1, 1], "segmentation": [0, 0], "score": 0.9}]},
        [("predictions[0].segmentation", "encodes an empty mask", "they sum to width × height")]),
    "nested.png": ("pose", {"file_name": "nested.png", "predictions": [
        {"category_id": 0, "keypoints": [[10, 20, 0.9], [30, 40, 0.5]], "score": 0.8}]},
        [("predictions[0].keypoints", "found a list of lists: flatten it", "one flat list of x, y, confidence")]),
    "flags.png": ("pose", {"file_name": "flags.png", "predictions": [
        {"category_id": 0, "keypoints": [10, 20, 2, 30, 40, 1], "score": 0.8}]},
        [("predictions[0].keypoints", "COCO visibility flags", "each confidence c in [0, 1]")]),
    # other tools' names of Lightly's keys: each was read as absent, 'probability' even as a one-hot prediction
    "typo.png": ("weather", {"file_name": "typo.png", "predictions": [
        {"category_id": 0, "probability": [0.4, 0.35, 0.25]}]},
        [("predictions[0].probability", "calls it 'probabilities'", "rename 'probability' to 'probabilities'")]),
    "camel.png": ("det", {"file_name": "camel.png", "predictions": [
        {"categoryId": 1, "bbox": [0, 0, 1, 1], "confidence": 0.6}]},
        [("predictions[0].categoryId", "calls it 'category_id'", "rename 'categoryId' to 'category_id'"),
         ("predictions[0].confidence", "calls it 'score'", "rename 'confidence' to 'score'")]),
    "mask.png": ("seg", {"file_name": "mask.png", "predictions": [{"category_id": 1, "mask": CAR_MASK, "score": 0.9}]},
                 [("predictions[0].mask", "calls it 'segmentation'", "rename 'mask' to 'segmentation'")]),
}


def test_every_malformed_prediction_is_counted_and_named_with_its_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    files = {f"{P}{task}/{key[:-4]}.json": obj for key, (task, obj, _) in MALFORMED.items()}
    files[P + "tasks.json"] = [*SCHEMAS, "forgotten", "weather"]  # a task without schema.json; one listed twice
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.predictions.shard"):
        result = run_cli(tmp_path, files, list(MALFORMED), capsys)
    # each task's rejected files are said where the run is watched: how many, and the first one's problem and fix
    per_task = Counter(task for task, _, _ in MALFORMED.values())
    warned = {r.getMessage().split(": ", 2)[1]: r.getMessage() for r in caplog.records
              if "prediction files have problems and are not read" in r.getMessage()}
    assert set(warned) == {f"task {t!r}" for t in per_task}
    for task, n in per_task.items():
        assert f"task {task!r}: {n} prediction files have problems and are not read" in warned[f"task {task!r}"]
        assert ". Fix: " in warned[f"task {task!r}"]
    assert (f"task 'seg': {per_task['seg']} prediction files have problems and are not read (their samples get no seg "
            "scores), e.g. .lightly/predictions/seg/coco-rle.json: predictions[0].segmentation must be a run-length "
            "encoding") in warned["task 'seg'"]
    assert (result["files"], result["bad"], result["with_predictions"]) == (len(MALFORMED), len(MALFORMED), 0)
    assert result["derived_probabilities"] == {}  # (the typo's file is rejected, not read as one-hot)
    rows = {r[C.KEY]: r for r in pq.read_table(result["output_uri"]).to_pylist()}
    assert rows["typo.png"][C.score_column("weather", "uncertainty_margin")] is None
    errors = pq.read_table(result["errors_uri"]).to_pylist()
    got = {(e[C.KEY], e["field"]): (e["reason"], e["path"]) for e in errors if
           not e["reason"].startswith("no prediction file")}
    expected = {(key, field): (problem, fix, f".lightly/predictions/{task}/{key[:-4]}.json")
                for key, (task, _, found) in MALFORMED.items() for field, problem, fix in found}
    expected[(".lightly/predictions/forgotten/schema.json", "")] = (
        "missing schema.json for task 'forgotten'", "or remove 'forgotten' from tasks.json",
        ".lightly/predictions/forgotten/schema.json")
    expected[(".lightly/predictions/tasks.json", "[6]")] = ("task 'weather' is listed twice", "list each task once",
                                                             ".lightly/predictions/tasks.json")
    assert set(got) == set(expected)
    for where, (problem, fix, path) in expected.items():
        reason, at = got[where]
        assert problem in reason, (where, reason)
        assert ". Fix: " in reason and fix in reason.split(". Fix: ", 1)[1], (where, reason)
        assert at == path, where
    # the run report's problems table shows each row's fix in its own column (report.problems.split_fix)
    assert all(split_fix("predictions", e["reason"])[1] for e in errors)
