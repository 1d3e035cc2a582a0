"""A video without a decodable frame (junk bytes under ``.mp4``) is one ``corrupt`` row keyed by the video, whose
reason names the fix (the embed task's). It is not a sample: before, the predictions task also gave it "no
prediction file for task 't'" with the path ``.lightly/predictions/t/broken.json``, and the metadata task looked
for its metadata file and sent the user to rename ``broken.mp4.json``: problems about a file that should not
exist, for a video that has to be replaced anyway."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video


def test_a_corrupt_video_gets_no_missing_prediction_or_metadata_file_problem(tmp_path: Path) -> None:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new
    from lightly_airflow.predictions import load_predictions_shard

    source = tmp_path / "bucket"
    make_scene_video(str(source / "clip.mp4"), "coffee", 6, seed=1)  # frames clip-0-mp4.png … clip-5-mp4.png
    (source / "broken.mp4").write_bytes(os.urandom(4000))
    lightly = source / ".lightly"
    task = lightly / "predictions" / "t"
    task.mkdir(parents=True)
    (lightly / "predictions" / "tasks.json").write_text(json.dumps(["t"]))
    (task / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}))
    for i in range(5):  # frame 5 has none: a true missing file, still reported
        (task / f"clip-{i}-mp4.json").write_text(json.dumps(
            {"file_name": f"clip-{i}-mp4.png", "predictions": [{"category_id": 0, "probabilities": [0.7, 0.3]}]}))
    (lightly / "metadata").mkdir()
    (lightly / "metadata" / "schema.json").write_text(json.dumps(
        [{"name": "Weather", "path": "weather", "defaultValue": "sunny", "valueDataType": "CATEGORICAL_STRING"}]))
    (lightly / "metadata" / "broken.mp4.json").write_text(json.dumps(
        {"file_name": "broken.mp4", "type": "video", "metadata": {"weather": "rain"}}))

    listed = list_new(NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{tmp_path / 'pool'}"),
                      run_id="r1")
    keys: list[str] = []
    problems: list[dict[str, str]] = []
    counts = []
    for manifest in listed.manifests:
        keys += pq.read_table(manifest, columns=[C.KEY]).column(C.KEY).to_pylist()
        for got in (load_predictions_shard(manifest, lightly_uri=f"file://{source}"),
                    compute_metadata_shard(manifest, lightly_uri=f"file://{source}")):
            counts.append(got)
            if got["errors_uri"]:
                problems += pq.read_table(got["errors_uri"]).to_pylist()
    assert "broken.mp4" in keys  # the corrupt row
    assert [p for p in problems if p[C.KEY] == "broken.mp4"] == [], problems
    missing = [p for p in problems if "no prediction file" in p["reason"]]
    assert [p[C.KEY] for p in missing] == ["clip-5-mp4.png"]
    assert sum(c.get("missing", 0) for c in counts if "with_predictions" in c) == 1
