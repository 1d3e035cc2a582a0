"""A file the pool records as ``missing`` (it vanished between the listing and its read) is processed again when a
later run lists it: its missing row kept the listed etag, against which the file put back unchanged was "unchanged"
for good (only process_all reached it). A sensor's check still does not count it (a file that stays unreadable would
start a run at every poke)."""

from __future__ import annotations

import shutil
from pathlib import Path

from datasource.helpers import SELECTION, image_adder, run_pipeline
from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datasource import NewFilesQuery, find_new_files


def _run_losing(src: Path, pool_dir: Path, key: str, aside: Path) -> None:
    """One run whose file ``key`` is moved to ``aside`` after the listing, before the stages read it."""
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard

    listed = list_new(NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool_dir}"), run_id="r1")
    shutil.move(src / key, aside)
    for m in listed.manifests:
        embed_shard(m, device="cpu", num_workers=1)
        compute_metadata_shard(m)
        load_predictions_shard(m, lightly_uri=f"file://{src}")
    select_and_commit(datapool_uri=f"file://{pool_dir}", run_id="r1", dag_id="d", manifests=listed.manifests,
                      selection_config=SELECTION)


def test_a_file_put_back_after_it_vanished_is_processed_again(tmp_path: Path) -> None:
    from lightly_airflow.datasource.check import check_new_files

    src, pool_dir, aside = tmp_path / "src", tmp_path / "pool", tmp_path / "aside.png"
    image_adder(src)(*(f"img{i}.png" for i in range(5)))
    _run_losing(src, pool_dir, "img2.png", aside)
    pool = Datapool(f"file://{pool_dir}")
    known = pool.known_files().to_pylist()
    assert {r[C.KEY]: r[C.STATUS] for r in known}["img2.png"] == C.STATUS_MISSING
    shutil.move(aside, src / "img2.png")  # put back, the same bytes
    query = NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool_dir}")
    assert find_new_files(query).files.column(C.KEY).to_pylist() == ["img2.png"]
    assert check_new_files(query).new == 0  # (a sensor's check: not new)
    summary, _ = run_pipeline(src, pool_dir, "r2")
    assert summary.processed == 1
    latest = {r[C.KEY]: r[C.STATUS] for r in pool.known_files().to_pylist()}
    assert latest["img2.png"] == C.STATUS_OK
    assert find_new_files(query).files.num_rows == 0  # processed now: unchanged from here on


def test_a_video_put_back_as_its_longer_former_version_is_processed_again(tmp_path: Path) -> None:
    """The frames a shorter replacement no longer has got tombstones (status missing) with the former etag: through
    them the former version was "known", and the video put back as it was never processed again (the pool's live
    frames are the shorter version's)."""
    from video.runs import run_once

    from lightly_airflow.video.synthetic import make_scene_video

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    everything = {"n_samples": 8, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    make_scene_video(str(src / "clip.mp4"), "astronaut", 8, seed=1)
    former = (src / "clip.mp4").read_bytes()
    run_once(f"file://{src}", f"file://{pool_dir}", "r1", config=everything)
    make_scene_video(str(src / "clip.mp4"), "rocket", 4, seed=7)  # replaced by a shorter, different video
    run_once(f"file://{src}", f"file://{pool_dir}", "r2", config=everything)
    (src / "clip.mp4").write_bytes(former)  # put back as it was
    query = NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool_dir}")
    assert find_new_files(query).files.column(C.KEY).to_pylist() == ["clip.mp4"]
