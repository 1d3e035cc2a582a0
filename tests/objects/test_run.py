"""The select task's object steps: crop metadata per image, object rows to commit, task checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.config import parse_selection_config, parse_worker_config
from lightly_airflow.objects import commit_rows, objects_spec, with_object_metadata
from lightly_airflow.objects.demo_data import TASK, write_task
from lightly_airflow.objects.spec import check_object_level, check_tasks
from lightly_airflow.selection import select


def _objects() -> pa.Table:
    rows = []
    for parent, widths in (("a.png", [10, 30]), ("b.png", [5]), ("c.png", [])):
        for j, w in enumerate(widths):
            rows.append({C.KEY: C.object_id(parent, TASK, j), C.ETAG: "e", C.PARENT_KEY: parent, C.OBJECT_TASK: TASK,
                         C.OBJECT_INDEX: j, C.EMBEDDING: [1.0, float(j)],
                         **{C.lightly_metadata_column(m): float(w) for m in ("sharpness", "snr", "luminance", "width",
                            "height", "meanRed", "meanGreen", "meanBlue", "stdRed", "stdGreen", "stdBlue")}})
    return pa.Table.from_pylist(rows)


def test_crop_metadata_per_image_selects() -> None:
    images = pa.table({C.KEY: ["a.png", "b.png", "c.png"], C.STATUS: ["ok", "ok", "ok"],
                       C.EMBEDDING: [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]})
    rows = with_object_metadata(images, _objects(), (TASK,))
    col = C.object_metadata_column(TASK, "width")
    assert rows.column(col).to_pylist() == [20.0, 5.0, None]  # mean over the image's objects; none: null
    config = {"n_samples": 3, "strategies": [
        {"input": {"type": "METADATA", "key": f"objects.{TASK}.lightly.width"},
         "strategy": {"type": "THRESHOLD", "threshold": 8, "operation": "BIGGER"}},
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    assert select(rows, config).keys == ["a.png"]


def test_commit_rows_link_objects_of_ok_images() -> None:
    images = pa.table({C.KEY: ["a.png", "b.png"], C.STATUS: ["ok", "corrupt"]})
    rows = commit_rows(_objects(), images, {"a.png"})
    assert rows is not None
    assert rows.column(C.PARENT_KEY).to_pylist() == ["a.png", "a.png"]  # the corrupt image's objects are dropped
    assert rows.column(C.OBJECT_SELECTED).to_pylist() == [True, True]
    assert rows.column(C.SELECTED).to_pylist() == [False, False] and rows.column(C.PICK_RANK).null_count == 2


def test_spec_and_first_task_checks(tmp_path: Path) -> None:
    sel = parse_selection_config({"n_samples": 2, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}],
        "auto_tasks": [{"type": "TILING", "name": "tiles", "num_rows": 2, "num_cols": 2}]})
    worker = parse_worker_config({"object_level": {"padding": 0.2}, "crops": {"enable_upload_for_tasks": ["tiles"]}})
    spec = objects_spec(sel, worker)
    assert spec is not None and spec.tasks == (TASK,) and spec.padding == 0.2
    assert spec.all_tasks == (TASK, "tiles") and spec.uploads("tiles") and not spec.uploads(TASK)
    image_level = parse_selection_config({"n_samples": 2, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]})
    assert objects_spec(image_level, parse_worker_config({"object_level": {"padding": 0.2}})) is None
    # Listing a task for crops asks for its objects even when the selection is on images.
    assert objects_spec(image_level, parse_worker_config({"crops": {"enable_upload_for_tasks": [TASK]}})) is not None
    # ... but not with uploads off: the list has no effect (noted), and its tasks were cropped for nothing.
    off = parse_worker_config({"crops": {"enable_upload": False, "enable_upload_for_tasks": [TASK]}})
    assert objects_spec(image_level, off) is None
    assert off.notes() == [f'crops.enable_upload_for_tasks=["{TASK}"]: has no effect here, because '
                           "crops.enable_upload is false (no crop is written; these tasks are cropped only where an "
                           "EMBEDDINGS input names them)"]
    assert parse_worker_config({"crops": {"enable_upload_for_tasks": [TASK]}}).notes() == []
    problem = check_object_level(sel, parse_worker_config({"embeddings": "mine.csv"}))
    assert problem is not None and problem[0] == "worker_config.embeddings"

    write_task(tmp_path)
    assert check_tasks(spec, f"file://{tmp_path}") is None
    cls = tmp_path / ".lightly" / "predictions"
    (cls / "tasks.json").write_text(json.dumps([TASK, "weather"]))
    (cls / "weather").mkdir()
    (cls / "weather" / "schema.json").write_text(json.dumps({"task_type": "classification",
                                                            "categories": [{"id": 0, "name": "sun"}]}))
    wrong = objects_spec(parse_selection_config({"n_samples": 2, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": "weather"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "EMBEDDINGS", "task": "typo"}, "strategy": {"type": "TYPICALITY"}}]}), None)
    problem = check_tasks(wrong, f"file://{tmp_path}")
    assert problem is not None and problem[0] == "selection_config"
    assert "['weather', 'typo']" in problem[1] and "classification" in problem[1]


def test_check_tasks_names_the_schema_file_behind_a_crops_task(tmp_path: Path) -> None:
    """A task that only ``crops.enable_upload_for_tasks`` names is checked by the first task alone: when its
    schema.json is invalid (here the ``task_description`` key of Lightly's first prediction docs, then a
    trailing comma) or tasks.json does not parse, the message names that file and what is wrong with it
    (it used to say only that the task is not an object task of tasks.json)."""
    folder = tmp_path / ".lightly" / "predictions"
    (folder / "vehicles").mkdir(parents=True)
    (folder / "tasks.json").write_text(json.dumps(["vehicles"]))
    spec = objects_spec(parse_selection_config({"n_samples": 2, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}),
        parse_worker_config({"crops": {"enable_upload_for_tasks": ["vehicles"]}}))
    schema = folder / "vehicles" / "schema.json"
    schema.write_text(json.dumps({"task_description": "object-detection", "categories": [{"id": 0, "name": "car"}]}))
    param, problem, fix = check_tasks(spec, f"file://{tmp_path}")
    assert param == "worker_config.crops.enable_upload_for_tasks"
    assert ".lightly/predictions/vehicles/schema.json task_type: is missing; found 'task_description'" in problem
    assert "rename it to 'task_type'" in problem and fix.startswith("fix those files")
    schema.write_text('{"task_type": "object-detection", "categories": [{"id": 0, "name": "car"},]}')
    assert ".lightly/predictions/vehicles/schema.json: invalid JSON" in check_tasks(spec, f"file://{tmp_path}")[1]
    (folder / "tasks.json").write_text('["vehicles",]')  # the trailing comma of Lightly's docs example
    assert ".lightly/predictions/tasks.json: invalid JSON" in check_tasks(spec, f"file://{tmp_path}")[1]


@pytest.mark.parametrize("seed", [0])
def test_object_similarity_uses_the_best_object(seed: int) -> None:
    from lightly_airflow.objects.selection import object_set, object_similarity

    objs = object_set(["a.png", "b.png", "c.png"], _objects(), TASK)
    q = np.array([[0.0, 1.0]], np.float32)
    sim = object_similarity(objs, q)
    # a.png's second object [1, 1]/sqrt2 is closest to the query; c.png has no objects.
    d = np.linalg.norm(np.array([1, 1]) / np.sqrt(2) - q[0])
    assert sim[0] == pytest.approx(1 - d / 2) and sim[1] == pytest.approx(1 - np.sqrt(2) / 2) and sim[2] == 0.0


def test_object_level_task_name_must_be_an_embeddings_inputs_task(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                                    ) -> None:
    """Lightly Worker v2's ``object_level.task_name`` selected on that task's objects; here the task is named
    in the EMBEDDINGS input (LightlyOne's way). With no input naming it the run would select whole images, so
    the first task refuses it with the fix; with the input naming it, it passes, and is honoured: neither its log
    nor the report's notes (``WorkerConfig.notes``) list it as a key without effect."""
    from lightly_airflow.pipeline import ParamError, validate_params

    (tmp_path / "ds").mkdir()
    write_task(tmp_path / "ds")
    uris = {"datasource_uri": (tmp_path / "ds").as_uri(), "datapool_uri": (tmp_path / "pool").as_uri(),
            "lightly_uri": None}
    v2 = {"object_level": {"task_name": TASK}}
    images = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    with pytest.raises(ParamError) as info:
        validate_params(**uris, selection_config=images, worker_config=v2)
    message = str(info.value)
    assert "worker_config.object_level.task_name" in message and "whole images" in message
    assert f'"task": "{TASK}"' in message
    objects = {"n_samples": 2, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
    with caplog.at_level(logging.WARNING, logger="lightly_airflow"):
        worker = validate_params(**uris, selection_config=objects, worker_config=v2).worker
    assert worker.object_level.task_name == TASK and worker.notes() == []
    assert not [r for r in caplog.records if "object_level" in r.getMessage()], caplog.text


def test_object_metadata_keys_pass_the_first_task_when_the_run_crops_their_task(tmp_path: Path) -> None:
    """``objects.<task>.lightly.<metric>`` METADATA keys (the mean of a crop metric over the image's objects,
    docs/objects.md) were refused by the first task as custom metadata missing from schema.json. Now they pass
    when the run crops that task (an EMBEDDINGS input, an auto task or the crops' upload list) and the metric is
    a crop metric; otherwise the message names the key and the fix."""
    from lightly_airflow.pipeline import ParamError, validate_params

    (tmp_path / "ds").mkdir()
    write_task(tmp_path / "ds")
    predictions = tmp_path / "ds" / ".lightly" / "predictions"  # (a second object task, cropped for upload only)
    (predictions / "tiles").mkdir()
    (predictions / "tiles" / "schema.json").write_text(
        json.dumps({"task_type": "object-detection", "categories": [{"id": 0, "name": "tile"}]}))
    (predictions / "tasks.json").write_text(json.dumps([TASK, "tiles"]))
    uris = {"datasource_uri": (tmp_path / "ds").as_uri(), "datapool_uri": (tmp_path / "pool").as_uri(),
            "lightly_uri": None}

    def config(key: str) -> dict:
        return {"n_samples": 2, "strategies": [
            {"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}},
            {"input": {"type": "METADATA", "key": key}, "strategy": {"type": "WEIGHTS"}}]}

    validate_params(**uris, selection_config=config(f"objects.{TASK}.lightly.sharpness"))
    validate_params(**uris, selection_config=config("objects.tiles.lightly.width"),
                    worker_config={"crops": {"enable_upload_for_tasks": ["tiles"]}})
    for key, words in ((f"objects.{TASK}.lightly.sizeInBytes", "no object metadata key"),
                       ("objects.other.lightly.width", "does not crop")):
        with pytest.raises(ParamError) as info:
            validate_params(**uris, selection_config=config(key))
        assert key in str(info.value) and words in str(info.value)
