"""Live Photos (an iPhone photo and its ~3-second motion clip, a ``.MOV`` of the same name beside it): the photo
is the sample, the clip is not processed as a video of ~90 near-identical frames; counted, named and reported,
never new (the sensor does not wake for it), and processed as a video when ``live_photo_videos`` asks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lightly_airflow.datasource import NewFilesQuery
from lightly_airflow.datasource.live_photos import LIVE_PHOTO_MAX_BYTES, live_photo_clips

SELECTION = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_a_clip_is_a_short_video_beside_a_listed_photo_of_the_same_name() -> None:
    rows = {
        "roll/IMG_0001.HEIC": 2_000_000, "roll/IMG_0001.MOV": 3_000_000,     # iPhone: HEIC + MOV
        "roll/IMG_0002.JPG": 2_000_000, "roll/IMG_0002.mov": 3_000_000,      # "Most Compatible": JPG + MOV
        "takeout/IMG_0003.heic": 2_000_000, "takeout/IMG_0003.MP4": 3_000_000,  # Google Takeout: HEIC + MP4
        "posters/clip.jpg": 50_000, "posters/clip.mp4": 3_000_000,           # a video's poster: not a Live Photo
        "drone/flight.jpg": 50_000, "drone/flight.mov": LIVE_PHOTO_MAX_BYTES + 1,  # too long for a Live Photo
        "other/IMG_0001.MOV": 3_000_000,                                      # another folder's photo is not its own
        "roll/IMG_0004.MOV": 3_000_000, "roll/img_0004.heic": 2_000_000,     # the name's case differs
        "roll/IMG_0005.MOV": 3_000_000, "roll/IMG_0005.png": 2_000_000,      # a screenshot is no Live Photo
        "roll/IMG_0006.HEIC.MOV": 3_000_000, "roll/IMG_0006.HEIC": 2_000_000,  # not the same name
        ".MOV": 10, "roll/.mov": 10,
    }
    listing = pa.table({"key": list(rows), "size": list(rows.values())})
    clips = live_photo_clips(listing)
    hit = [k for k, h in zip(rows, clips.mask.to_pylist()) if h]
    assert hit == ["roll/IMG_0001.MOV", "roll/IMG_0002.mov", "takeout/IMG_0003.MP4"]
    assert clips.count == 3
    assert clips.examples == [("roll/IMG_0001.MOV", "roll/IMG_0001.HEIC"), ("roll/IMG_0002.mov", "roll/IMG_0002.JPG"),
                              ("takeout/IMG_0003.MP4", "takeout/IMG_0003.heic")]
    no_videos = pa.table({"key": ["a.jpg", "b.heic"], "size": [1, 1]})
    assert live_photo_clips(no_videos).count == 0 and live_photo_clips(no_videos).mask.to_pylist() == [False, False]


def test_the_query_option_is_a_boolean() -> None:
    with pytest.raises(ValueError, match="live_photo_videos='yes' is not a boolean"):
        NewFilesQuery(datasource_uri="file:///d", datapool_uri="file:///p", live_photo_videos="yes")  # type: ignore[arg-type]
    query = NewFilesQuery(datasource_uri="file:///d", datapool_uri="file:///p", live_photo_videos=True)
    assert NewFilesQuery.from_dict(query.to_dict()) == query


def test_the_photo_is_the_sample_and_its_clip_is_reported_never_new(tmp_path: Path) -> None:
    from lightly_airflow.datasource import check_new_files
    from lightly_airflow.demo import Batch, add_batch
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.staging import read_manifest
    from lightly_airflow.video.synthetic import make_scene_video

    source, pool = tmp_path / "roll", tmp_path / "pool"
    keys = add_batch(source, Batch("b", (0, 4), ("chelsea",)), live_photos=True)
    clip = "b/photos/chelsea-full.MOV"
    assert (source / clip).is_file() and "b/photos/chelsea-full.HEIC" in keys and clip not in keys
    frames = make_scene_video(str(source / "clips" / "walk.mov"), "coffee", 8)  # a video of its own
    query = NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{pool}")

    listed = list_new(query, run_id="r1")
    assert listed.live_photo_clips == 1 and listed.new == len(keys) + frames and listed.new_files == len(keys) + 1
    tables = [read_manifest(m).table for m in listed.manifests]
    listed_keys = [k for t in tables for k in t.column("key").to_pylist()]
    videos = [v for t in tables for v in t.column("video").to_pylist()]
    assert clip not in videos and clip not in listed_keys and "b/photos/chelsea-full.HEIC" in listed_keys
    assert videos.count("clips/walk.mov") == frames
    for m in listed.manifests:
        embed_shard(m, device="cpu", num_workers=1)
        compute_metadata_shard(m)
    summary = select_and_commit(datapool_uri=f"file://{pool}", run_id="r1", dag_id="t", manifests=listed.manifests,
                                selection_config=SELECTION)
    assert summary.processed == len(keys) + frames and summary.corrupt == 0
    assert summary.listing["live_photo_clips"] == 1
    assert summary.listing["live_photo_clips_examples"] == [[clip, "b/photos/chelsea-full.HEIC"]]
    page = Path(summary.report_uri.removeprefix("file://")).read_text()
    assert "1 Live Photo motion clip" in page and "live_photo_videos=True" in page

    # The clip is never new: the sensor's check finds nothing after the run (it would wake every poke).
    assert check_new_files(query).new == 0
    again = NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{pool}", process_all=True)
    assert check_new_files(again).new == len(keys) + 1  # a backfill reprocesses every file but the clip
    # Asked for, the clip is a video like any other (its 12 frames are samples).
    wanted = NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{pool}", live_photo_videos=True)
    assert check_new_files(wanted).new == 1
    listed = list_new(wanted, run_id="r2")
    assert listed.live_photo_clips == 0 and listed.new == 12 and listed.new_files == 1


def test_a_repeated_check_warns_of_the_clips_once_and_the_list_task_every_run(tmp_path: Path, caplog) -> None:
    """The sensor's and the watcher's checks run every poke interval for as long as the clips lie in the bucket:
    the same warning every 5 minutes buried the triggerer's log. They warn once per process (then debug); the
    list task warns every run (its report counts the clips)."""
    import logging

    from lightly_airflow.datasource import check_new_files, find_new_files
    from lightly_airflow.demo import Batch, add_batch

    source = tmp_path / "roll"
    add_batch(source, Batch("c", (0, 2), ("coffee",)), live_photos=True)
    query = NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{tmp_path / 'pool'}")

    def warnings() -> list[str]:
        said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Live Photo" in r.getMessage()]
        caplog.clear()
        return said

    with caplog.at_level(logging.DEBUG, logger="lightly_airflow.datasource.query"):
        for _ in range(3):
            assert check_new_files(query).new > 0
        assert len(warnings()) == 1  # (debug for the second and third poke)
        for _ in range(2):
            find_new_files(query)
        assert len(warnings()) == 2
