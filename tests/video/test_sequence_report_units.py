"""Sequence selection (``selected_sequence_length``) counts in two units: the engine selects sequences of L
consecutive frames, the run's rows are frames. Each figure of the report and of the selection's warning says its
unit and is right. Before, with predictions for 3 of 8 frames, the report said "1 of 9 ok samples have no value"
(1 sequence, 9 rows), "selected 6 … only 9 candidates" without saying that the 8 frames make only 2 complete
sequences, ``sequence_frames_left_out`` counted the image as a frame, and the warning "1 samples lack
'predictions…class_distribution'" counted sequences as samples and said no fix."""

from __future__ import annotations

import json
import logging
from html import unescape
from pathlib import Path

import pytest
from PIL import Image

from lightly_airflow.video.synthetic import make_scene_video

from .runs import run_once

COLUMN = "predictions.t.class_distribution"
CONFIG = {"n_samples": 9, "strategies": [
    {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
    {"input": {"type": "PREDICTIONS", "task": "t", "name": "CLASS_DISTRIBUTION"},
     "strategy": {"type": "BALANCE", "target": {"a": 0.5, "b": 0.5}}},
]}


def test_sequence_selection_reports_frames_and_sequences_each_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "bucket"
    make_scene_video(str(source / "clip.mp4"), "coffee", 8, seed=1)  # frames 0-7: windows 0-2, 3-5 (6, 7 in none)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(source / "photo.png")  # an image: in no sequence
    task = source / ".lightly" / "predictions" / "t"
    task.mkdir(parents=True)
    (source / ".lightly" / "predictions" / "tasks.json").write_text(json.dumps(["t"]))
    (task / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}))
    for i in (0, 1, 2):  # the first sequence has predictions; frames 3-7 (and the image) have none
        (task / f"clip-{i}-mp4.json").write_text(json.dumps(
            {"file_name": f"clip-{i}-mp4.png", "predictions": [{"category_id": 0, "probabilities": [0.7, 0.3]}]}))

    with caplog.at_level(logging.WARNING, logger="lightly_airflow.selection.objectives"):
        _, _, summary = run_once(f"file://{source}", f"file://{tmp_path / 'pool'}", "run1", config=CONFIG,
                                 selected_sequence_length=3)
    metrics = summary.metrics
    assert summary.candidates == 9 and summary.selected == 6
    assert metrics["sequences_available"] == 2 and metrics["sequences_selected"] == 2
    assert metrics["sequence_frames_left_out"] == 2  # frames 6 and 7, not the image
    assert metrics["sequence_images_left_out"] == 1
    assert metrics["missing_inputs"][COLUMN] == 1  # the engine's count: sequences
    # frames 3-7; of the columns the config reads only (frames have no metadata.lightly.sizeInBytes, by design)
    assert metrics["sequence_frames_missing_inputs"] == {COLUMN: 5}

    warning = next(r.getMessage() for r in caplog.records if COLUMN in r.getMessage())
    assert warning.startswith(f"selection: 1 sequences of 3 frames (5 frames of the candidates lack it; a sequence "
                              f"lacks it when all its frames do) lack '{COLUMN}'"), warning
    assert "Fix: the values come from .lightly/predictions/t/<sample name>.json (a video frame's: " in warning
    assert "e.g. .lightly/predictions/t/clip-007-mp4.json for frame 7 of clip.mp4" in warning

    page = unescape(Path(summary.report_uri.removeprefix("file://")).read_text())
    assert "<td>select 9 samples (frames: 3 sequences of 3 frames)</td><td>selected 6 frames (2 sequences of 3)</td>" in page
    assert ("only 9 candidate frames and images (ok, new, not selected before), which make 2 complete sequences of 3 "
            "consecutive frames (6 frames); 2 frames are in no complete sequence") in page
    assert "1 image (no video frame) cannot be in one" in page
    assert (f"<td>BALANCE on {COLUMN}</td><td>5 of 8 ok frames have no value (null or not finite); 1 of 2 candidate "
            "sequences of 3 frames have none in any frame") in page
    assert "ok samples have no value" not in page
