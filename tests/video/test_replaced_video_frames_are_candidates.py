"""A video replaced under its name by another recording of the same length: its frames keep the names of the
former version's frames, and those the pool selected before are new content all the same. They are candidates
of the run that processes the new version (and of a later ``process_all``), compared with what the pool selected.
Before, a frame was "selected before" by its name alone: the new version's frames named like frames selected
before were left out of the run's candidates, and of every later run's, ``process_all`` included."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video

from .runs import run_once

CONFIG = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_frames_of_a_replaced_video_named_like_selected_frames_are_candidates(tmp_path: Path) -> None:
    from lightly_airflow.datapool import Datapool

    source, pool_dir = tmp_path / "bucket", tmp_path / "pool"
    make_scene_video(str(source / "clip.mp4"), "coffee", 12, seed=1)
    make_scene_video(str(source / "other.mp4"), "chelsea", 12, seed=2)
    _, _, s1 = run_once(f"file://{source}", f"file://{pool_dir}", "run1", config=CONFIG)
    pool = Datapool(f"file://{pool_dir}")
    first = pool.read(run_id="run1")
    picked = first.filter(pc.fill_null(first.column(C.SELECTED), False))
    clip_picked = [k for k, v in zip(picked.column(C.KEY).to_pylist(), picked.column(C.VIDEO).to_pylist())
                   if v == "clip.mp4"]
    assert s1.selected == 6 and clip_picked  # frames of clip.mp4 among the picks

    make_scene_video(str(source / "clip.mp4"), "rocket", 12, seed=3)  # another recording, the same 12 frame names
    listed2, _, s2 = run_once(f"file://{source}", f"file://{pool_dir}", "run2", config=CONFIG)
    assert listed2.new == 12
    assert s2.candidates == 12, s2.candidates  # every frame of the new version, also those named like picks
    assert s2.pool_selected_before == 6
    second = pool.read(run_id="run2")
    mine = second.filter(pc.equal(second.column(C.RUN_ID), "run2"))
    assert mine.num_rows == 12 and set(mine.column(C.VIDEO).to_pylist()) == {"clip.mp4"}
    assert set(mine.column(C.KEY).to_pylist()) >= set(clip_picked)
    assert s2.selected == 6  # (12 new candidates: n_samples is reached)
