"""One rule of which files the pool knows (``datapool.snapshot.known_rows``), for the run's listing and the new-file
check alike: a video put back to its former version after a shorter one replaced it is new to both.

Before, the check (sensor, event trigger) took ``Snapshot.known_files`` as it was, which left out only a move's
tombstones, while the listing also left out every ``missing`` row (``datasource.known.without_missing``): the
former version's frames that the replacement lacked are tombstones keeping the former etag, so the check called the
restored video known (0 new: no run started) while a run's listing processed it (1 new). The gone files' count
(``datasource.known.pool_files``) had a third copy of the rule, which left out only a move's tombstones: a deleted
video counted its tombstones as gone samples."""

from __future__ import annotations

import shutil
from pathlib import Path

from video.runs import run_once

from datasource.test_gone import gone_of
from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datasource import check_new_files, find_new_files
from lightly_airflow.datasource.query import NewFilesQuery
from lightly_airflow.video.synthetic import make_scene_video

CONFIG = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_a_video_put_back_to_its_former_version_is_new_to_the_check_and_the_listing(tmp_path: Path) -> None:
    src, pool_dir = tmp_path / "bucket", tmp_path / "pool"
    make_scene_video(str(src / "clip.mp4"), "astronaut", 8, seed=1)
    shutil.copy(src / "clip.mp4", tmp_path / "former.mp4")
    run_once(f"file://{src}", f"file://{pool_dir}", "r1", config=CONFIG)
    make_scene_video(str(src / "clip.mp4"), "rocket", 4, seed=7)  # replaced by a shorter video: 4 tombstones
    run_once(f"file://{src}", f"file://{pool_dir}", "r2", config=CONFIG)
    snap = Datapool(f"file://{pool_dir}").snapshot()
    latest = snap.select([C.KEY, C.STATUS_REASON], "")
    assert sum(str(r or "").startswith("superseded:") for r in latest.column(C.STATUS_REASON).to_pylist()) == 4
    assert len(snap.known_files()) == 4  # (the frames the pool holds: the tombstones are no known files)

    (src / "clip.mp4").unlink()  # gone: its samples are the 4 frames the pool holds, not the 4 tombstones too
    gone = gone_of(src, pool_dir)
    assert (gone.keys, gone.samples) == (["clip.mp4"], 4)

    shutil.copy(tmp_path / "former.mp4", src / "clip.mp4")  # put back, same bytes: the former etag
    query = NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool_dir}")
    assert find_new_files(query).files.column(C.KEY).to_pylist() == ["clip.mp4"]
    assert check_new_files(query).new == 1  # (was 0: the check took the tombstones' former etag as known)
