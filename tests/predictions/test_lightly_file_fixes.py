"""Problems of a user's ``.lightly/`` files, read from real folders: each ends with its fix (the run report's fix
column, ``report.problems.split_fix``), a video frame's ``file_name`` in Lightly's jpg frame format is the frame's,
and a keypoint instance without ``category_id`` has one category for the predictions and the objects alike."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from metadata.conftest import make_manifest, write_tree

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import LightlyDir, parse_json_bytes
from lightly_airflow.objects.boxes import prediction_boxes
from lightly_airflow.predictions import load_predictions_shard
from lightly_airflow.predictions.parse import parse_prediction_file
from lightly_airflow.predictions.shard import load_tasks
from lightly_airflow.report.problems import split_fix
from lightly_airflow.staging import ProblemLog

P = ".lightly/predictions/"
CLS = {"task_type": "classification", "categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]}


def _prediction(key: str) -> dict[str, object]:
    return {"file_name": key, "predictions": [{"category_id": 1, "probabilities": [0.2, 0.8]}]}


def _problems(tmp_path: Path, keys: list[str]) -> tuple[dict[str, object], dict[str, str]]:
    counts = load_predictions_shard(make_manifest(tmp_path, keys), lightly_uri=str(tmp_path / "store"))
    rows = pq.read_table(counts["errors_uri"]).to_pylist() if counts.get("errors_uri") else []
    return counts, {r[C.KEY]: r["reason"] for r in rows}


def test_json_and_encoding_problems_end_with_their_fix_and_keep_their_place(tmp_path: Path) -> None:
    """They read "invalid JSON: Expecting ',' delimiter at line 1 column 44", "…; save it as UTF-8" and "…: remove
    that comma": the report's fix column was empty for every one."""
    good = json.dumps(_prediction("a.png"))
    write_tree(tmp_path / "store", {
        P + "tasks.json": '["cls", "broken"]', P + "cls/schema.json": CLS,
        P + "broken/schema.json": '{"task_type": "classification",\n "categories": [],\n}',
        P + "cls/a.json": good.replace('"predictions":', '"predictions"'),  # a missing colon
        P + "cls/b.json": good.replace("a.png", "b\xe9.png").encode("latin-1"),  # (the name saved as Latin-1)
        P + "cls/c.json": good.replace("a.png", "c.png")[:-1] + ",}",
        P + "cls/d.json": '{"file_name": "d.png", "predictions": [[[[' * 20_000,
    })
    _, reasons = _problems(tmp_path, ["a.png", "b.png", "c.png", "d.png"])
    fixes = {key: split_fix("predictions", reason) for key, reason in reasons.items()}
    assert all(fix for _problem, fix in fixes.values()), reasons
    assert all(reason.count("Fix:") == 1 for reason in reasons.values()), reasons
    problem, fix = fixes["a.png"]
    assert problem.startswith("invalid JSON: Expecting ':' delimiter at line 1 column 38 near '…png\", ")
    assert '"predictions" [' in problem and fix.startswith("correct the JSON there")
    assert fixes["b.png"] == ("not UTF-8 text (invalid continuation byte at byte 16)", "save it as UTF-8")
    assert fixes["c.png"] == ("invalid JSON: a trailing comma before '}' at line 1 column 88 (JSON allows none) near "
                              "'…_id\": 1, \"probabilities\": [0.2, 0.8]}],}'", "remove that comma")
    assert fixes["d.png"] == ("invalid JSON: nested too deeply", "write the file with fewer nested lists and objects")
    # the schema.json that cannot be read says what became of the task before its fix, not after it
    assert fixes[".lightly/predictions/broken/schema.json"] == (
        "invalid JSON: a trailing comma before '}' at line 2 column 18 (JSON allows none) near '\"categories\": [],' "
        "(task 'broken' is skipped)", "remove that comma")


def test_a_frame_named_in_lightlys_jpg_frame_format_is_the_frame(tmp_path: Path) -> None:
    """A Lightly Worker run with ``output_image_format: jpg`` names its frames ``my_video-099-mp4.jpg``;
    predictions made on them were rejected as naming another file. The file's own name (no extension) finds it;
    an image's other extension, or another frame, is still a mismatch."""
    frame, other, image = "v/my_video-099-mp4.png", "v/my_video-100-mp4.png", "img.png"
    write_tree(tmp_path / "store", {
        P + "tasks.json": '["cls"]', P + "cls/schema.json": CLS,
        P + "cls/v/my_video-099-mp4.json": _prediction("v/my_video-099-mp4.jpg"),
        P + "cls/v/my_video-100-mp4.json": _prediction("v/my_video-101-mp4.jpg"),
        P + "cls/img.json": _prediction("img.jpg"),
    })
    counts, reasons = _problems(tmp_path, [frame, other, image])
    assert counts["with_predictions"] == 1
    assert sorted(reasons) == [image, other]
    assert reasons[image].startswith("'img.jpg' does not match the file 'img.png'"), reasons[image]


def test_a_keypoint_without_category_id_has_the_same_category_for_predictions_and_objects(tmp_path: Path) -> None:
    pose = {"task_type": "keypoint-detection", "categories": [{"id": 3, "name": "person"}]}
    both = {"task_type": "keypoint-detection", "categories": [{"id": 0, "name": "person"}, {"id": 1, "name": "dog"}]}
    instance = {"keypoints": [10, 10, 0.9, 30, 40, 0.8], "score": 0.9}
    write_tree(tmp_path / "store", {
        P + "tasks.json": '["pose", "both"]', P + "pose/schema.json": pose, P + "both/schema.json": both,
        P + "pose/a.json": {"file_name": "a.png", "predictions": [instance]},
        P + "both/a.json": {"file_name": "a.png", "predictions": [instance, {**instance, "category_id": 1}]},
    })
    folder = LightlyDir(str(tmp_path / "store"))
    got = {}
    for schema in load_tasks(folder, ProblemLog("predictions")):
        obj = parse_json_bytes(folder.read_bytes(f"predictions/{schema.name}/a.json") or b"", "a.json")
        parsed, problems = parse_prediction_file(obj, schema, "a.png")
        assert parsed is not None and not problems
        counted = [schema.category_names[i] for i in parsed.category_index]
        cropped = [box.category for box in prediction_boxes(obj, schema, "a.png")]
        got[schema.name] = (counted, cropped)
    assert got == {"pose": (["person"], ["person"]), "both": (["dog"], [None, "dog"])}
