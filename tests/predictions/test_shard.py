"""load_predictions_shard on a .lightly/ folder with every task type and every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metadata.conftest import make_manifest, write_tree

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.metadata import TooManyErrorsError
from lightly_airflow.predictions import (
    finalize_prediction_scores,
    load_predictions_shard,
    parse_prediction_file,
    parse_task_schema,
)

P = ".lightly/predictions/"
KEYS = ["a.png", "sub/b.png", "c.png", "d.png"]
SCHEMAS = {
    "cls": {"task_type": "classification", "categories": [{"id": 0, "name": "cat"}, {"id": 4, "name": "dog"}]},
    "det": {"task_type": "object-detection", "categories": [{"id": 2, "name": "car"}, {"id": 7, "name": "bus"}]},
    "seg": {"task_type": "semantic-segmentation", "categories": [{"id": 0, "name": "bg"}, {"id": 1, "name": "road"}]},
    "inst": {"task_type": "instance-segmentation", "categories": [{"id": 1, "name": "person"}]},
    "kp": {"task_type": "keypoint-detection", "categories": [{"id": 0, "name": "person"}]},
}


def cls(name, cat, probs):
    return {"file_name": name, "predictions": [{"category_id": cat, "probabilities": probs}]}


@pytest.fixture
def lightly(tmp_path: Path) -> tuple[str, Path]:
    store = tmp_path / "lightly-store"  # .lightly/ lives apart from the images
    files: dict[str, object] = {P + "tasks.json": [*SCHEMAS, "no_schema", "bad name!"]}
    files.update({f"{P}{t}/schema.json": s for t, s in SCHEMAS.items()})
    files.update(
        {
            P + "cls/a.json": cls("a.png", 4, [0.25, 0.75]),
            P + "cls/sub/b.json": cls("sub/b.png", 0, [0.5, 0.5]),
            P + "cls/c.json": cls("c.png", 3, [0.5, 0.5]),  # unknown category id
            P + "cls/d.json": cls("d.png", 0, [0.5, 0.6]),  # does not sum to 1
            P + "det/a.json": {"file_name": "a.png", "predictions": [
                {"category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.8, "probabilities": [0.8, 0.2]},
                {"category_id": 2, "bbox": [1, 1, 5, 5], "score": 0.6, "probabilities": [0.6, 0.4]},
                {"category_id": 7, "bbox": [2, 2, 5, 5], "score": 0.9}]},
            P + "det/sub/b.json": {"file_name": "sub/b.png", "predictions": []},
            P + "det/c.json": {"file_name": "../c.png", "predictions": []},  # escapes the datasource
            P + "det/d.json": {"file_name": "d.png", "predictions": [{"category_id": 2, "bbox": [0, 0, -1, 5], "score": 0.5}]},
            P + "seg/a.json": {"file_name": "a.png", "predictions": [
                {"category_id": 0, "segmentation": [0, 6, 2], "score": 0.9, "probabilities": [0.9, 0.1]},
                {"category_id": 1, "segmentation": [6, 2], "score": 0.7, "probabilities": [0.3, 0.7]}]},
            P + "seg/sub/b.json": {"file_name": "sub/b.png", "predictions": [{"category_id": 1, "segmentation": [1, -2], "score": 0.5}]},
            P + "inst/a.json": {"file_name": "a.png", "predictions": [
                {"category_id": 1, "segmentation": [2, 2], "bbox": [0, 0, 2, 1], "score": 0.7}]},
            P + "kp/a.json": {"file_name": "a.png", "predictions": [{"keypoints": [1, 1, 0.8, 2, 2, 0.4], "score": 0.9}]},
            P + "kp/sub/b.json": {"file_name": "sub/b.png", "predictions": [{"keypoints": [1, 1]}]},
            P + "kp/c.json": b"\xff\xfe not utf8",
            P + "kp/d.json": "[1, 2",
        }
    )
    write_tree(store, files)
    return make_manifest(tmp_path, KEYS), store


def test_every_task_type_scored_and_every_problem_reported(lightly):
    manifest, store = lightly
    counts = load_predictions_shard(manifest, lightly_uri=str(store))
    assert counts["tasks"] == list(SCHEMAS)
    assert counts["bad"] == 3  # sub/b.png (seg, kp), c.png (cls, det, kp), d.png (cls, det, kp)
    table = pq.read_table(counts["output_uri"])
    assert json.loads(table.schema.metadata[C.CATEGORIES_METADATA_KEY.encode()]) == {
        t: [c["name"] for c in s["categories"]] for t, s in SCHEMAS.items()
    }
    rows = {r[C.KEY]: r for r in table.to_pylist()}
    a, b, c = rows["a.png"], rows["sub/b.png"], rows["c.png"]
    # classification: [0.25, 0.75] -> LC 0.5, margin 0.5
    assert a[C.score_column("cls", "uncertainty_least_confidence")] == pytest.approx(0.5)
    assert a[C.score_column("cls", "uncertainty_margin")] == pytest.approx(0.5)
    assert a[C.class_distribution_column("cls")] == [0.25, 0.75]
    assert a[C.category_count_column("cls", "dog")] == 1 and a[C.category_count_column("cls", "cat")] == 0
    assert b[C.score_column("cls", "uncertainty_entropy")] == pytest.approx(1.0)
    assert c[C.score_column("cls", "uncertainty_margin")] is None  # bad file: sample kept, score null
    assert c[C.class_distribution_column("cls")] is None
    # detection: third box has no probabilities -> [0.1, 0.9] from its score
    assert a[C.score_column("det", "uncertainty_least_confidence")] == pytest.approx(0.8)
    assert a[C.score_column("det", "objectness_least_confidence")] == pytest.approx(1 - (0.8 + 0.6 + 0.9) / 3)
    assert a[C.score_column("det", "object_frequency")] == pytest.approx(2.25)  # raw, rescaled by select
    np.testing.assert_allclose(a[C.class_distribution_column("det")], [1.5, 1.5], rtol=1e-6)
    assert (a[C.category_count_column("det", "car")], a[C.category_count_column("det", "bus")]) == (2, 1)
    assert b[C.score_column("det", "uncertainty_margin")] == 0.0  # no boxes
    assert b[C.category_count_column("det", "car")] == 0
    # semantic segmentation: 6 px at LC 0.2, 2 px at LC 0.6 -> 0.3
    assert a[C.score_column("seg", "uncertainty_least_confidence")] == pytest.approx(0.3)
    np.testing.assert_allclose(a[C.class_distribution_column("seg")], [0.75, 0.25], rtol=1e-6)
    assert a[C.score_column("inst", "objectness_least_confidence")] == pytest.approx(0.3)
    assert a[C.score_column("kp", "mean_uncertainty")] == pytest.approx(0.4)
    assert rows["d.png"][C.score_column("kp", "mean_uncertainty")] is None

    errors = pq.read_table(counts["errors_uri"]).to_pylist()
    found = {(e[C.KEY], e["path"].split("/")[2], e["field"]): e["reason"] for e in errors}

    def reason(key, task, field):
        return found[(key, task, field)]

    assert "missing schema.json" in reason(".lightly/predictions/no_schema/schema.json", "no_schema", "")
    assert "not a task name" in reason(".lightly/predictions/tasks.json", "tasks.json", "[6]")
    assert "unknown category id 3" in reason("c.png", "cls", "predictions[0].category_id")
    assert "sum to 1.1" in reason("d.png", "cls", "predictions[0].probabilities")
    assert ".." in reason("c.png", "det", "file_name")
    assert "negative" in reason("d.png", "det", "predictions[0].bbox")
    assert "run-length" in reason("sub/b.png", "seg", "predictions[0].segmentation")
    assert "[x1, y1, c1" in reason("sub/b.png", "kp", "predictions[0].keypoints")
    assert "UTF-8" in reason("c.png", "kp", "file")
    assert "invalid JSON" in reason("d.png", "kp", "file")
    assert "no prediction file" in reason("c.png", "seg", "file")
    assert all(e["stage"] == "predictions" for e in errors)


def test_max_error_fraction_and_cli(lightly, capsys):
    manifest, store = lightly
    with pytest.raises(TooManyErrorsError, match="3 of 4 files"):
        load_predictions_shard(manifest, lightly_uri=str(store), max_error_fraction=0.5)
    assert main(["predictions", "--manifest", manifest, "--lightly-uri", str(store)]) == 0
    assert json.loads(capsys.readouterr().out)["bad"] == 3
    assert main(["predictions", "--manifest", manifest, "--lightly-uri", str(store), "--max-error-fraction", "0.1"]) == 1


def test_no_tasks_json_gives_key_only_table(tmp_path):
    (tmp_path / "empty").mkdir()
    counts = load_predictions_shard(make_manifest(tmp_path, KEYS), lightly_uri=str(tmp_path / "empty"))
    assert pq.read_table(counts["output_uri"]).column_names == [C.KEY]
    assert counts["errors"] == 0


def test_finalize_rescales_object_frequency_across_shards():
    table = pa.table({C.KEY: ["a", "b", "c"], "scores.det.object_frequency": pa.array([2.25, None, 1.0]),
                      "scores.det.uncertainty_margin": [0.1, 0.2, 0.3]})
    out = finalize_prediction_scores(table)
    assert out.column("scores.det.object_frequency").to_pylist() == [pytest.approx(1.0), None, pytest.approx(0.9)]
    assert out.column("scores.det.uncertainty_margin").to_pylist() == [0.1, 0.2, 0.3]


def test_schema_validation_problems():
    assert parse_task_schema("t", {"task_type": "regression"})[0] is None
    schema, problems = parse_task_schema("t", {"task_type": "classification", "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]})
    assert schema is None and "not unique" in problems[0][1]
    schema, _ = parse_task_schema("t", {"task_type": "classification", "categories": [{"id": 9, "name": "z"}, {"id": 2, "name": "a"}]})
    assert schema.category_ids == (2, 9) and schema.category_names == ("a", "z")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["file_name", "predictions", "category_id", "probabilities", "score", "bbox", "segmentation",
                         "keypoints", "x", "probability", "categoryId", "confidence", "box", "mask", "annotations",
                         "counts"]), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(obj=json_values, task=st.sampled_from(list(SCHEMAS)))
def test_malformed_prediction_files_never_crash(obj, task):
    schema, _ = parse_task_schema(task, SCHEMAS[task])
    preds, problems = parse_prediction_file(obj, schema, "a.png")
    assert (preds is None) == bool(problems)
    for f, reason in problems:
        assert isinstance(f, str) and isinstance(reason, str) and reason
        assert ". Fix: " in reason, (f, reason)  # every problem says what to do (the report's fix column)


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()), schema=json_values)
def test_malformed_files_never_crash_a_shard(tmp_path_factory, payload, schema):
    tmp = tmp_path_factory.mktemp("fuzz")
    write_tree(tmp / "s", {P + "tasks.json": ["cls", "other"], P + "cls/schema.json": SCHEMAS["cls"],
                           P + "other/schema.json": schema, P + "cls/a.json": payload, P + "other/a.json": payload})
    counts = load_predictions_shard(make_manifest(tmp, ["a.png"]), lightly_uri=str(tmp / "s"))
    assert counts["files"] == 1


def test_lightly_docs_examples_verbatim(tmp_path):
    """The examples of Lightly's prediction-format docs (datasource_predictions.rst: tasks.json, the weather
    schema, the classification, object-detection and semantic-segmentation files; ``[...]`` boxes and RLEs
    filled in), scored by hand."""
    weather = {"task_type": "classification", "categories": [{"id": 0, "name": "sunny"}, {"id": 1, "name": "clouded"},
                                                             {"id": 2, "name": "rainy"}]}
    files = {
        P + "tasks.json": ["classification_weather", "object_detection", "semantic_segmentation_cars"],
        P + "classification_weather/schema.json": weather,
        P + "classification_weather/subdir/image_1.json": {
            "file_name": "subdir/image_1.png", "predictions": [{"category_id": 0, "probabilities": [0.8, 0.1, 0.1]}]},
        P + "object_detection/schema.json": {"task_type": "object-detection", "categories": [
            {"id": 0, "name": "person"}, {"id": 1, "name": "car"}]},
        P + "object_detection/subdir/image_1.json": {"file_name": "subdir/image_1.png", "predictions": [
            {"category_id": 0, "bbox": [140, 100, 80, 90], "score": 0.8, "probabilities": [0.2, 0.8]},
            {"category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9, "probabilities": [0.9, 0.1]},
            {"category_id": 0, "bbox": [30, 30, 20, 20], "score": 0.5, "probabilities": [0.6, 0.4]}]},
        P + "semantic_segmentation_cars/schema.json": {"task_type": "semantic-segmentation", "categories": [
            {"id": 0, "name": "background"}, {"id": 1, "name": "car"}, {"id": 2, "name": "tree"}]},
        # the docs' encode() example mask [[0,0,1,1],[0,1,1,1],[0,0,0,1]] and its complement's first row
        P + "semantic_segmentation_cars/subdir/image_1.json": {"file_name": "subdir/image_1.png", "predictions": [
            {"category_id": 0, "segmentation": [2, 2, 1, 3, 3, 1], "score": 0.8, "probabilities": [0.15, 0.8, 0.05]},
            {"category_id": 1, "segmentation": [0, 2, 10], "score": 0.9, "probabilities": [0.02, 0.08, 0.9]}]},
    }
    write_tree(tmp_path / "s", files)
    counts = load_predictions_shard(make_manifest(tmp_path, ["subdir/image_1.png"]), lightly_uri=str(tmp_path / "s"))
    assert (counts["with_predictions"], counts["bad"], counts["errors"]) == (1, 0, 0)
    (row,) = pq.read_table(counts["output_uri"]).to_pylist()
    got = {k.split(".", 1)[1]: v for k, v in row.items() if k.startswith(("scores.", "predictions."))}
    h = -(0.8 * np.log2(0.8) + 2 * 0.1 * np.log2(0.1)) / np.log2(3)
    assert got["classification_weather.uncertainty_least_confidence"] == pytest.approx(0.2 / (2 / 3))
    assert got["classification_weather.uncertainty_margin"] == pytest.approx(0.3)
    assert got["classification_weather.uncertainty_entropy"] == pytest.approx(h)
    # boxes: least confidence 0.4, 0.2, 0.8 -> max 0.8; objectness 1 - mean(0.8, 0.9, 0.5); 2 persons + 1 car
    assert got["object_detection.uncertainty_least_confidence"] == pytest.approx(0.8)
    assert got["object_detection.objectness_least_confidence"] == pytest.approx(1 - 2.2 / 3)
    assert got["object_detection.object_frequency"] == pytest.approx(1.25 + 1.0)
    np.testing.assert_allclose(got["object_detection.class_distribution"], [1.7, 1.3], rtol=1e-6)
    # segments of 6 and 2 px (12 px images): least confidence 0.3 and 0.15, area-weighted
    assert got["semantic_segmentation_cars.uncertainty_least_confidence"] == pytest.approx((6 * 0.3 + 2 * 0.15) / 8)
    assert got["semantic_segmentation_cars.category_count.car"] == 1


def test_predictions_without_probabilities_keep_their_category_on_top(tmp_path):
    """Lightly's COCO conversion script writes ``"score": ann.get("score", 0)`` and labelformat ``"score": 0.0``
    for labels; probabilities are optional for classification too. The vector made for a prediction without
    probabilities never favours another category than its own (it used to put 0 on it and 1/(C-1) on the
    others, so BALANCE on CLASS_DISTRIBUTION counted every label as the other classes), and a classification
    without probabilities is scored instead of rejected."""
    cats = [{"id": 1, "name": "person", "supercategory": "human"}, {"id": 2, "name": "car", "supercategory": "v"},
            {"id": 3, "name": "bus", "supercategory": "v"}]  # COCO categories, as the script copies them
    files = {
        P + "tasks.json": ["coco", "weather"],
        P + "coco/schema.json": {"task_type": "object-detection", "categories": cats},
        P + "coco/a.json": {"file_name": "a.png", "predictions": [
            {"category_id": 1, "bbox": [10.5, 20.0, 30.25, 40.0], "score": 0},
            {"category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.2},
            {"category_id": 3, "bbox": [1, 1, 5, 5], "score": 0.9}]},
        P + "weather/schema.json": {"task_type": "classification", "categories": [{"id": 0, "name": "sunny"},
                                                                                  {"id": 1, "name": "rainy"}]},
        P + "weather/a.json": {"file_name": "a.png", "predictions": [{"category_id": 1}]},
        P + "weather/b.json": {"file_name": "b.png", "predictions": [{"category_id": 0, "score": 0.75}]},
    }
    write_tree(tmp_path / "s", files)
    schema, _ = parse_task_schema("coco", files[P + "coco/schema.json"])
    parsed, problems = parse_prediction_file(files[P + "coco/a.json"], schema, "a.png")
    assert problems == []
    for index, probs in zip(parsed.category_index, parsed.probabilities, strict=True):
        assert probs[index] == probs.max() and probs.sum() == pytest.approx(1.0)
    counts = load_predictions_shard(make_manifest(tmp_path, ["a.png", "b.png"]), lightly_uri=str(tmp_path / "s"))
    assert counts["bad"] == 0 and counts["with_predictions"] == 2
    rows = {r[C.KEY]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    a, b = rows["a.png"], rows["b.png"]
    third = 1 / 3  # scores 0 and 0.2 are below 1/3: uniform; 0.9 -> [0.05, 0.05, 0.9]
    np.testing.assert_allclose(a[C.class_distribution_column("coco")], [2 * third + 0.05, 2 * third + 0.05,
                                                                         2 * third + 0.9], rtol=1e-6)
    assert a[C.score_column("coco", "uncertainty_least_confidence")] == pytest.approx(1.0)
    assert a[C.score_column("coco", "objectness_least_confidence")] == pytest.approx(1 - 1.1 / 3)
    assert a[C.class_distribution_column("weather")] == [0.0, 1.0]
    assert a[C.score_column("weather", "uncertainty_margin")] == pytest.approx(0.0)
    assert b[C.class_distribution_column("weather")] == [0.75, 0.25]
    assert b[C.score_column("weather", "uncertainty_least_confidence")] == pytest.approx(0.5)


def test_a_missing_or_null_score_is_named(tmp_path):
    schema, _ = parse_task_schema("det", SCHEMAS["det"])
    for pred in ({"category_id": 2, "bbox": [0, 0, 1, 1]}, {"category_id": 2, "bbox": [0, 0, 1, 1], "score": None}):
        parsed, problems = parse_prediction_file({"file_name": "a.png", "predictions": [pred]}, schema, "a.png")
        assert parsed is None and problems == [
            ("predictions[0].score", "is missing or null: this task type needs a score in [0, 1] per prediction. "
                                     "Fix: add \"score\": the model's confidence in the prediction (for a label "
                                     "without one, 1)")]


def test_coco_keypoint_visibility_flags_are_named():
    schema, _ = parse_task_schema("kp", SCHEMAS["kp"])
    obj = {"file_name": "a.png", "predictions": [{"keypoints": [10, 20, 2, 0, 0, 0, 30, 40, 1], "score": 1.0}]}
    parsed, problems = parse_prediction_file(obj, schema, "a.png")
    assert parsed is None and len(problems) == 1 and "COCO visibility flags 0/1/2" in problems[0][1]
    obj["predictions"][0]["keypoints"][2] = 1.5  # not flags: no hint
    assert "COCO" not in parse_prediction_file(obj, schema, "a.png")[1][0][1]


def test_prediction_files_under_another_name_are_named_with_the_fix(tmp_path):
    """Lightly names a video frame's predictions ``<video>-<frame zero-padded to len(str(n_frames))>-<ext>.json``
    and an image's ``<key without extension>.json``; a file that a tool named otherwise is reported with the
    name Lightly expects and the fix, not as a bare "missing", and is not read."""
    schema = {"task_type": "classification", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}
    frames = [f"videos/clip-{i:03d}-mp4.png" for i in range(40)]  # a 200-frame video: 3 digits
    keys = [*frames, "videos/long-00007-mov.png", "IMG_1.JPG", "day1/cam/x.png", "lower/IMG_2.png", "gone.png"]
    files: dict[str, object] = {P + "tasks.json": ["t"], P + "t/schema.json": schema}
    files.update({f"{P}t/videos/clip-{i}-mp4.json": cls(k, 0, [0.5, 0.5]) for i, k in enumerate(frames)})  # unpadded
    files[P + "t/videos/long-007-mov.json"] = cls("videos/long-00007-mov.png", 0, [0.5, 0.5])  # too little padding
    files[P + "t/IMG_1.jpg.json"] = cls("IMG_1.JPG", 0, [0.5, 0.5])  # extension kept, in another case
    files[P + "t/x.json"] = cls("day1/cam/x.png", 0, [0.5, 0.5])  # subfolders missing
    files[P + "t/lower/img_2.json"] = cls("lower/IMG_2.png", 0, [0.5, 0.5])  # lower-cased by a tool
    store = tmp_path / "store"
    write_tree(store, files)
    counts = load_predictions_shard(make_manifest(tmp_path, keys), lightly_uri=str(store))
    assert counts["missing"] == len(keys) and counts["misnamed"] == len(keys) - 1 and counts["with_predictions"] == 0
    reasons = {e[C.KEY]: (e["reason"], e["path"]) for e in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert len(reasons) == len(keys)
    reason, path = reasons["videos/clip-007-mp4.png"]
    assert path == ".lightly/predictions/t/videos/clip-007-mp4.json"
    assert (".lightly/predictions/t/videos/clip-7-mp4.json exists: its frame number is written with 1 digit; "
            "Lightly zero-pads it to the number of digits of the video's frame count (3 here). "
            "Rename it to .lightly/predictions/t/videos/clip-007-mp4.json") in reason
    assert all("exists: its frame number" in reasons[k][0] for k in frames)  # past the probed sample too
    assert ".lightly/predictions/t/videos/long-007-mov.json exists" in reasons["videos/long-00007-mov.png"][0]
    assert "t/IMG_1.jpg.json exists: its name keeps the image's extension" in reasons["IMG_1.JPG"][0]
    assert "t/x.json exists: it lies at the top of the task folder, not in the image's folder day1/cam/" in (
        reasons["day1/cam/x.png"][0])
    assert "t/lower/img_2.json exists: its name differs in case" in reasons["lower/IMG_2.png"][0]
    assert reasons["gone.png"][0] == "no prediction file for task 't'"


def test_a_few_predictions_cost_few_extra_reads(tmp_path, monkeypatch):
    """Predictions for a few images only (the rest legitimately have none): other names are probed for a
    sample of the missing files, not for each of them."""
    from lightly_airflow.lightly_dir import LightlyDir

    schema = {"task_type": "classification", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}
    keys = [f"d/e/img-{i:04d}.png" for i in range(300)]
    files: dict[str, object] = {P + "tasks.json": ["t"], P + "t/schema.json": schema,
                                P + "t/d/e/img-0000.json": cls(keys[0], 0, [0.5, 0.5])}
    store = tmp_path / "store"
    write_tree(store, files)
    reads: list[int] = []
    real = LightlyDir.read_many
    monkeypatch.setattr(LightlyDir, "read_many", lambda self, rels: reads.append(len(rels)) or real(self, rels))
    counts = load_predictions_shard(make_manifest(tmp_path, keys), lightly_uri=str(store))
    assert counts["missing"] == 299 and counts["misnamed"] == 0 and counts["with_predictions"] == 1
    assert reads[0] == 300 and sum(reads[1:]) <= 16 * 5  # 16 sampled keys x (2 extension cases, 1 case, 2 folders)


def test_one_category_probability_is_binary_as_in_lightly(tmp_path):
    """A binary classifier's task with one category (``defect``) and a sigmoid output ``"probabilities": [0.7]``:
    Lightly's ScorerClassification reads one column as the binary ``[p, 1 - p]``; it is not a vector that fails
    to sum to 1."""
    schema = {"task_type": "classification", "categories": [{"id": 1, "name": "defect"}]}
    files = {P + "tasks.json": ["defect"], P + "defect/schema.json": schema,
             P + "defect/a.json": cls("a.png", 1, [0.7]), P + "defect/b.json": cls("b.png", 1, [1.0]),
             P + "defect/c.json": cls("c.png", 1, [1.2])}
    write_tree(tmp_path / "s", files)
    counts = load_predictions_shard(make_manifest(tmp_path, ["a.png", "b.png", "c.png"]), lightly_uri=str(tmp_path / "s"))
    assert (counts["with_predictions"], counts["bad"]) == (2, 1)  # c.png: 1.2 is no probability
    rows = {r[C.KEY]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    a, b = rows["a.png"], rows["b.png"]
    assert a[C.score_column("defect", "uncertainty_least_confidence")] == pytest.approx(0.3 / 0.5)
    assert a[C.score_column("defect", "uncertainty_margin")] == pytest.approx(1 - (0.7 - 0.3))
    assert a[C.score_column("defect", "uncertainty_entropy")] == pytest.approx(-(0.7 * np.log2(0.7) + 0.3 * np.log2(0.3)))
    assert a[C.class_distribution_column("defect")] == pytest.approx([0.7])
    assert b[C.score_column("defect", "uncertainty_margin")] == 0.0


@pytest.mark.parametrize("rle", [{"size": [2, 3], "counts": [1, 2, 3]}, {"size": [2, 3], "counts": "0123"}])
def test_a_coco_rle_object_is_named_with_the_conversion(rle):
    """pycocotools writes ``{"size": [h, w], "counts": ...}`` (column-major runs, often compressed); Lightly's
    ``segmentation`` is the flat list of a row-major mask's runs: the reason says how to convert."""
    schema, _ = parse_task_schema("seg", SCHEMAS["seg"])
    obj = {"file_name": "a.png", "predictions": [{"category_id": 1, "segmentation": rle, "score": 0.9}]}
    preds, problems = parse_prediction_file(obj, schema, "a.png")
    assert preds is None
    ((field, reason),) = problems
    assert field == "predictions[0].segmentation"
    assert "COCO RLE object" in reason and "pycocotools.mask.decode" in reason and "row-major" in reason


@pytest.mark.parametrize(("file_name", "hint"), [
    ("sub/IMG_1.jpg", "differs in case only"),
    ("input/sub/IMG_1.JPG", "drop the leading 'input/'"),
    ("IMG_1.JPG", "write the file's folders 'sub/' too"),
])
def test_a_file_name_that_nearly_matches_says_how(file_name, hint):
    """``file_name`` written relative to the bucket instead of the datasource root, without the image's folders,
    or by a tool that lower-cases extensions: the reason says what differs."""
    schema, _ = parse_task_schema("cls", SCHEMAS["cls"])
    preds, problems = parse_prediction_file(cls(file_name, 0, [0.5, 0.5]), schema, "sub/IMG_1.JPG")
    assert preds is None
    ((field, reason),) = problems
    assert field == "file_name" and "does not match the file 'sub/IMG_1.JPG'" in reason and hint in reason


def test_frame_predictions_numbered_from_one_are_named_with_the_fix(tmp_path):
    """A tool that numbered a video's frames from 1 (ffmpeg's image sequences do) wrote ``clip-01-mp4.json`` for
    Lightly's frame 0, ``clip-02-mp4.json`` for frame 1, …: every file parses and is read for the frame after the
    one it describes, so each box lands on the wrong frame, and only frame 0 was reported, as a bare "no
    prediction file". Frame 0's problem now names the likely cause and the fix; a video whose frame 0 simply has
    no file (frame 1 has none either) stays a bare "missing"."""
    schema = {"task_type": "object-detection", "categories": [{"id": 0, "name": "car"}]}
    clip = [f"cams/clip-{i:02d}-mp4.png" for i in range(12)]  # a 12-frame video
    other = [f"other-{i}-mkv.png" for i in range(3)]
    files: dict[str, object] = {P + "tasks.json": ["det"], P + "det/schema.json": schema}
    for i in range(1, 13):  # numbered from 1: frame 12 does not exist
        files[f"{P}det/cams/clip-{i:02d}-mp4.json"] = {"file_name": f"cams/clip-{i:02d}-mp4.png", "predictions": [
            {"category_id": 0, "bbox": [i, 0, 5, 5], "score": 0.9}]}
    files[P + "det/other-2-mkv.json"] = {"file_name": "other-2-mkv.png", "predictions": []}
    store = tmp_path / "store"
    write_tree(store, files)
    counts = load_predictions_shard(make_manifest(tmp_path, clip + other), lightly_uri=str(store))
    reasons = {e[C.KEY]: e["reason"] for e in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert set(reasons) == {"cams/clip-00-mp4.png", "other-0-mkv.png", "other-1-mkv.png"}
    assert reasons["cams/clip-00-mp4.png"].startswith(
        "no prediction file for task 'det', but frame 1 has one (.lightly/predictions/det/cams/clip-01-mp4.json): "
        "Lightly numbers a video's frames from 0")
    assert "rename every file to its frame number minus one" in reasons["cams/clip-00-mp4.png"]
    assert reasons["other-0-mkv.png"] == "no prediction file for task 'det'"


def test_a_prediction_file_past_a_videos_last_frame_is_reported(tmp_path, caplog):
    """A 12-frame video has frames 0 to 11; a tool that counted 13 (another decoder) or numbered from 1 wrote
    ``clip-12-mp4.json`` too. No sample has that name, so the file was never read and nothing said so. The
    manifest now carries each video's frame count: the shard holding a video's last frame looks for the file of
    the frame after it, and reports it with the frame number, the count and the fix, once, however the video's
    frames are split over shards; a video whose files stop at its last frame has no such row."""
    import logging

    from lightly_airflow.datasource.manifest import write_manifests
    from lightly_airflow.video.listing import expand_videos
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    src = tmp_path / "src"
    (src / "cams").mkdir(parents=True)
    n = {"cams/clip.mp4": write_video(str(src / "cams" / "clip.mp4"), scene_frames(scene("coffee"), 12, (64, 48))),
         "walk.mp4": write_video(str(src / "walk.mp4"), scene_frames(scene("astronaut"), 5, (64, 48)))}
    assert n == {"cams/clip.mp4": 12, "walk.mp4": 5}
    schema = {"task_type": "object-detection", "categories": [{"id": 0, "name": "car"}]}
    files: dict[str, object] = {P + "tasks.json": ["det"], P + "det/schema.json": schema}
    for i in range(13):  # one past the end
        files[f"{P}det/cams/clip-{i:02d}-mp4.json"] = {"file_name": f"cams/clip-{i:02d}-mp4.png", "predictions": []}
    for i in range(5):  # exactly the video's frames
        files[f"{P}det/walk-{i}-mp4.json"] = {"file_name": f"walk-{i}-mp4.png", "predictions": []}
    write_tree(src, files)
    listed = pa.table({C.KEY: list(n), C.SIZE: [1, 1], C.ETAG: ["e1", "e2"],
                       C.MTIME: pa.array([None, None], pa.timestamp("us", tz="UTC"))})
    frames = expand_videos(listed, f"file://{src}")
    assert set(frames.column(C.VIDEO_FRAMES).to_pylist()) == {12, 5}
    uris = write_manifests(frames, f"file://{tmp_path / 'pool'}", "r1", datasource_uri=f"file://{src}",
                           max_shards=3, min_shard_size=1)
    assert len(uris) == 3  # clip's 12 frames over several shards
    past_end, rows = 0, []
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.predictions.shard"):
        for uri in uris:
            counts = load_predictions_shard(uri)
            assert counts["bad"] == counts["missing"] == 0
            past_end += counts["past_end"]
            rows += pq.read_table(counts["errors_uri"]).to_pylist()
    assert past_end == 1
    (row,) = rows
    file = ".lightly/predictions/det/cams/clip-12-mp4.json"
    assert (row[C.KEY], row["field"], row["path"]) == (file, "file", file)  # (not the video's key: a corrupt row's)
    assert row["reason"].startswith(
        "prediction file .lightly/predictions/det/cams/clip-12-mp4.json of task 'det' is for frame 12, but video "
        "'cams/clip.mp4' has 12 frames (0 to 11, as PyAV decodes them)")
    assert "rename every file of this video to its frame number minus one" in row["reason"]
    said = [r.getMessage() for r in caplog.records if "past their end" in r.getMessage()]
    assert len(said) == 1 and "clip-12-mp4.json for frame 12 of 'cams/clip.mp4', which has 12 frames" in said[0]

    # a manifest written before the frame counts existed: the check is not made, and the log says so
    old = write_manifests(frames.drop_columns([C.VIDEO_FRAMES]), f"file://{tmp_path / 'pool'}", "r2",
                          datasource_uri=f"file://{src}", max_shards=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.predictions.shard"):
        assert load_predictions_shard(old[0])["past_end"] == 0
    assert any("are not looked for" in r.getMessage() for r in caplog.records)
