"""A task's ``schema.json`` with several problems lists them all at once, each at its JSON path with its fix, in
the predictions task's problems and in the first task's config check. Before, a schema without ``task_type`` read
"task_type: None is not one of [...]", and a category without ``name`` in the same file was only reported after
that was fixed (one problem per run)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video

SCHEMA = {"categories": [{"id": 0, "name": "car"}, {"id": 1}, {"id": -2, "name": ""}]}  # no task_type, no name …


def _bucket(tmp_path: Path) -> Path:
    source = tmp_path / "bucket"
    make_scene_video(str(source / "clip.mp4"), "coffee", 4, seed=1)
    task = source / ".lightly" / "predictions" / "t"
    task.mkdir(parents=True)
    (source / ".lightly" / "predictions" / "tasks.json").write_text(json.dumps(["t"]))
    (task / "schema.json").write_text(json.dumps(SCHEMA))
    for i in range(4):
        (task / f"clip-{i}-mp4.json").write_text(json.dumps(
            {"file_name": f"clip-{i}-mp4.png", "predictions": [{"category_id": 0, "probabilities": [0.7, 0.3]}]}))
    return source


def test_every_problem_of_a_schema_json_is_listed_with_its_path_and_fix(tmp_path: Path) -> None:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.pipeline import list_new
    from lightly_airflow.predictions import load_predictions_shard

    source = _bucket(tmp_path)
    listed = list_new(NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{tmp_path / 'pool'}"),
                      run_id="r1")
    (manifest,) = listed.manifests
    counts = load_predictions_shard(manifest, lightly_uri=f"file://{source}")
    assert counts["tasks"] == []  # the task is skipped …
    rows = [r for r in pq.read_table(counts["errors_uri"]).to_pylist() if r[C.KEY].endswith("schema.json")]
    got = {r["field"]: r["reason"] for r in rows}  # … and every problem of its schema.json is said, at once
    assert list(got) == ["task_type", "categories[1].name", "categories[2].id", "categories[2].name"]
    assert all(r[C.KEY] == ".lightly/predictions/t/schema.json" for r in rows)
    # (what became of the task before the fix: after it, the report's fix column ended "(task 't' is skipped)")
    assert got["task_type"] == ("is missing (task 't' is skipped). Fix: add \"task_type\": one of ['classification', "
                                "'object-detection', 'semantic-segmentation', 'instance-segmentation', "
                                "'keypoint-detection']")
    assert "None" not in got["task_type"]
    assert got["categories[1].name"].startswith("is missing (task 't' is skipped). Fix: add \"name\"")
    assert "-2 is not a non-negative integer (task 't' is skipped). Fix:" in got["categories[2].id"]
    assert "'' is not a non-empty string (task 't' is skipped). Fix:" in got["categories[2].name"]


def test_the_config_check_names_every_problem_of_the_schema_json(tmp_path: Path) -> None:
    from lightly_airflow.config import parse_selection_config
    from lightly_airflow.config.inputs import check_config_inputs

    source = _bucket(tmp_path)
    cfg = parse_selection_config({"n_samples": 2, "strategies": [
        {"input": {"type": "SCORES", "task": "t", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}}]})
    problems = check_config_inputs(cfg, source.as_uri())
    assert {path for path, _, _ in problems} == {"strategies[0].input.task"}
    got = {problem: fix for _, problem, fix in problems}  # one row a problem, each with its own fix, one each
    where = ".lightly/predictions/t/schema.json: "
    assert list(got) == [where + "task_type is missing", where + "categories[1].name is missing",
                         where + "categories[2].id -2 is not a non-negative integer",
                         where + "categories[2].name '' is not a non-empty string"]
    assert got[where + "task_type is missing"].startswith('add "task_type": one of')
    assert got[where + "categories[1].name is missing"].startswith('add "name"')
    assert not any("Fix:" in problem + fix for problem, fix in got.items())
