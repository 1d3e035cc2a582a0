"""Frame predictions a tool named ``<video>-<frame number>.json``, without Lightly's ``-<video extension>`` part
(``sub/clip-05.json`` for the frame ``sub/clip-05-mp4.png``), are not read (the names are Lightly's contract), but
each frame's problem names the file that exists and the name to give it, as for another zero-padding. Before,
every frame said only "no prediction file for task 't'"."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video


def test_frame_predictions_named_without_the_video_extension_are_named_with_the_fix(tmp_path: Path) -> None:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.pipeline import list_new
    from lightly_airflow.predictions import load_predictions_shard

    source = tmp_path / "bucket"
    make_scene_video(str(source / "sub" / "clip.mp4"), "coffee", 12, seed=1)  # 12 frames: 2 digits
    task = source / ".lightly" / "predictions" / "t"
    (task / "sub").mkdir(parents=True)
    (source / ".lightly" / "predictions" / "tasks.json").write_text(json.dumps(["t"]))
    (task / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}))
    for i in range(12):
        name = f"sub/clip-{i:02d}" if i % 2 else f"sub/clip-{i}"  # the extension left out, padded or not
        (task / f"{name}.json").write_text(json.dumps(
            {"file_name": f"{name}.png", "predictions": [{"category_id": 0, "probabilities": [0.7, 0.3]}]}))

    listed = list_new(NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{tmp_path / 'pool'}"),
                      run_id="r1")
    keys: list[str] = []
    reasons: dict[str, tuple[str, str]] = {}
    for manifest in listed.manifests:
        counts = load_predictions_shard(manifest, lightly_uri=f"file://{source}")
        keys += pq.read_table(manifest, columns=[C.KEY]).column(C.KEY).to_pylist()
        if counts["errors_uri"]:
            errors: pa.Table = pq.read_table(counts["errors_uri"])
            reasons.update({e[C.KEY]: (e["reason"], e["path"]) for e in errors.to_pylist()})
    assert sorted(keys) == [f"sub/clip-{i:02d}-mp4.png" for i in range(12)]
    assert set(reasons) == set(keys)
    reason, path = reasons["sub/clip-05-mp4.png"]
    assert path == ".lightly/predictions/t/sub/clip-05-mp4.json"
    assert (".lightly/predictions/t/sub/clip-05.json exists: its name lacks the video's extension; Lightly names a "
            "frame <video>-<frame number>-<video extension> (-mp4 here). Rename it to "
            ".lightly/predictions/t/sub/clip-05-mp4.json") in reason
    assert ".lightly/predictions/t/sub/clip-4.json exists: its name lacks the video's extension" in (
        reasons["sub/clip-04-mp4.png"][0])
    assert all("exists: its name lacks the video's extension" in r for r, _ in reasons.values())
