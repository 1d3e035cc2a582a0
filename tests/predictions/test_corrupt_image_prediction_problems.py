"""A file the metadata task finds corrupt (an image that cannot be decoded) is no sample: the predictions task,
which runs beside it and cannot know, reports its missing prediction file, and the run's problems file leaves that
row out (it sent the user to write a prediction file for a file that has to be replaced); a readable image without
its prediction file stays a problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from lightly_airflow.storage import read_parquet

CONFIG = {"n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_a_corrupt_images_missing_prediction_file_is_no_problem(tmp_path: Path) -> None:
    from video.runs import run_once

    source = tmp_path / "bucket"
    source.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(source / name)
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))  # a PNG signature, then nothing
    task = source / ".lightly" / "predictions" / "t"
    task.mkdir(parents=True)
    (source / ".lightly" / "predictions" / "tasks.json").write_text(json.dumps(["t"]))
    (task / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": 0, "name": "x"}, {"id": 1, "name": "y"}]}))
    (task / "a.json").write_text(json.dumps(
        {"file_name": "a.png", "predictions": [{"category_id": 0, "probabilities": [0.6, 0.4]}]}))

    _, _, summary = run_once(f"file://{source}", f"file://{tmp_path / 'pool'}", "r1", config=CONFIG)
    assert summary.problems_uri
    problems = read_parquet(summary.problems_uri).to_pylist()
    missing = sorted(p["key"] for p in problems if str(p["reason"]).startswith("no prediction file"))
    assert missing == ["b.png"], problems  # (not broken.png: corrupt, reported as such)
    assert any(p["key"] == "broken.png" and p["stage"] == "metadata" for p in problems)  # (its own problem)
