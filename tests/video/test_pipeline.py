"""Videos through the run's plain functions (no Airflow): list, embed (one decode), metadata, select, commit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video, truncate

from .runs import DIVERSITY
from .runs import run_once as _run_once


def latest_rows(pool) -> dict:
    """Every key's latest row (``key, etag, status``), tombstones included (``Datapool.known_files`` leaves them
    out: ``datapool.snapshot.known_rows``)."""
    from lightly_airflow.datapool.rows import COMMIT_VERSION
    from lightly_airflow.datapool.snapshot import latest_per_key

    rows = pool.snapshot().select([C.KEY, C.ETAG, C.STATUS], "", extra=(C.KEY, COMMIT_VERSION))
    return {r[C.KEY]: r for r in latest_per_key(rows).to_pylist()}


def run_once(source: Path, pool: Path, run_id: str, **kwargs):
    return _run_once(f"file://{source}", f"file://{pool}", run_id, **kwargs)


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_scene_video(str(src / "campus4-c0.avi"), "astronaut", 24, seed=1)
    make_scene_video(str(src / "sub" / "ünï cöde.mp4"), "coffee", 30, seed=2)
    return src


def test_two_runs_process_only_new_videos_and_write_selected_frames(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lightly_airflow.datapool import Datapool

    pool_dir = tmp_path / "pool"
    listed, counts, s1 = run_once(videos, pool_dir, "run1")
    assert listed.new_files == 2 and listed.new == 54 and len(listed.manifests) == 2
    assert sum(c["embedded"] for c in counts) == 54
    pool = Datapool(f"file://{pool_dir}")
    rows = pool.read()
    assert rows.num_rows == 54
    r = {x[C.KEY]: x for x in rows.to_pylist()}
    f = r["sub/ünï cöde-07-mp4.png"]
    assert f[C.VIDEO] == "sub/ünï cöde.mp4" and f[C.FRAME_INDEX] == 7 and f[C.FRAME_SECONDS] == pytest.approx(7 / 24, abs=1e-3)
    assert f[C.CONTENT_HASH] and f[C.lightly_metadata_column("sharpness")] > 0 and f[C.STATUS] == C.STATUS_OK
    assert r["campus4-c0-23-avi.png"][C.FRAME_INDEX] == 23
    sel = [k for k, x in r.items() if x[C.SELECTED]]
    assert 0 < len(sel) < 54  # the minimum distance stops it before 100
    assert s1.metrics.get("stop_reason") == "minimum_distance"
    for k in sel:
        assert (videos / ".lightly" / "frames" / k).is_file()
    assert s1.frames["written"] == len(sel)
    # The export hands the labelling tool the frames' PNGs, not the video.
    from urllib.parse import unquote

    from lightly_airflow.datapool.export import export_tag

    exported = export_tag(pool, C.INITIAL_TAG, datasource_uri=f"file://{videos}")
    assert sorted(unquote(u) for u in exported) == sorted(f"file://{videos}/.lightly/frames/{k}" for k in sel)
    tasks = export_tag(pool, C.INITIAL_TAG, fmt="label-studio", datasource_uri=f"file://{videos}")
    assert all("/.lightly/frames/" in t["data"]["image"] and t["data"]["image"].endswith(".png") for t in tasks)
    # Frames get their UI thumbnails from the same decode.
    from lightly_airflow.thumbnails import read_thumbnail

    assert read_thumbnail(f"file://{pool_dir}", f[C.SAMPLE_ID]) is not None

    # Two more videos arrive, one is replaced: only those are processed.
    make_scene_video(str(videos / "passageway1-c1.mov"), "chelsea", 20, seed=3)
    make_scene_video(str(videos / "campus4-c0.avi"), "rocket", 24, seed=4)  # replaced under the same name
    listed2, counts2, s2 = run_once(videos, pool_dir, "run2")
    assert listed2.new_files == 2 and listed2.new == 44
    rows2 = pool.read(run_id="run2")
    mine = rows2.filter(pc.equal(rows2.column(C.RUN_ID), "run2"))
    assert set(mine.column(C.VIDEO).to_pylist()) == {"passageway1-c1.mov", "campus4-c0.avi"}
    # The report shows frames as frames and a per-video timeline of frames selected now and before.
    report = Path(s2.report_uri.removeprefix("file://"))
    page = report.read_text()
    assert "Videos: frames selected now and before" in page and (report.parent / "videos.png").stat().st_size > 1000
    assert "<th>video</th><th>frame</th><th>time (s)</th>" in page

    # process_all: every frame again, no video decoded (embeddings, hashes and metrics reused).
    listed3, counts3, s3 = run_once(videos, pool_dir, "run3", process_all=True)
    assert listed3.new == 74 and listed3.reusable == 74
    assert sum(c["embedded"] for c in counts3) == 0 and sum(c["reused"] for c in counts3) == 74
    rows3 = pool.read(run_id="run3")
    mine3 = rows3.filter(pc.equal(rows3.column(C.RUN_ID), "run3"))
    assert mine3.num_rows == 74
    assert mine3.column(C.CONTENT_HASH).null_count == 0
    assert mine3.column(C.lightly_metadata_column("sharpness")).null_count == 0
    assert set(mine3.column(C.PIXEL_RULES).to_pylist()) == {C.PIXEL_RULES_VERSION}

    # The pixel rules change (a later release decodes frames differently): process_all decodes every frame
    # again instead of keeping values of the old rules, and says so in its counts.
    monkeypatch.setattr(C, "PIXEL_RULES_VERSION", C.PIXEL_RULES_VERSION + 1)
    listed4, counts4, s4 = run_once(videos, pool_dir, "run4", process_all=True)
    assert any(n.startswith("74 unchanged files were decoded and embedded again") for n in s4.notes), s4.notes
    assert "74 unchanged files were decoded and embedded again" in Path(s4.report_uri.removeprefix("file://")).read_text()
    assert listed4.new == 74 and listed4.reusable == 0 and listed4.older_pixel_rules == 74
    assert sum(c["embedded"] for c in counts4) == 74 and sum(c["reused"] for c in counts4) == 0
    rows4 = pool.read(run_id="run4")
    assert set(rows4.filter(pc.equal(rows4.column(C.RUN_ID), "run4")).column(C.PIXEL_RULES).to_pylist()) == {
        C.PIXEL_RULES_VERSION}


def test_broken_videos_keep_their_frames_and_are_reported(tmp_path: Path) -> None:
    from lightly_airflow.datapool import Datapool

    src = tmp_path / "src"
    make_scene_video(str(src / "good.mp4"), "astronaut", 12, seed=1)
    make_scene_video(str(src / "cut.webm"), "coffee", 40, seed=2)
    truncate(str(src / "cut.webm"), 0.5)
    (src / "junk.webm").write_bytes(b"not a video at all" * 20)
    _, _, summary = run_once(src, tmp_path / "pool", "r1")
    rows = Datapool(f"file://{tmp_path / 'pool'}").read()
    by = {x[C.KEY]: x for x in rows.to_pylist()}
    assert by["junk.webm"][C.STATUS] == C.STATUS_CORRUPT and "cannot open" in by["junk.webm"][C.STATUS_REASON]
    cut_ok = [k for k, x in by.items() if x[C.VIDEO] == "cut.webm" and x[C.STATUS] == C.STATUS_OK]
    assert 5 < len(cut_ok) < 40
    assert by["cut.webm"][C.STATUS] == C.STATUS_CORRUPT and "ends early" in by["cut.webm"][C.STATUS_REASON]
    assert summary.corrupt >= 1
    assert sum(1 for x in by.values() if x[C.VIDEO] == "good.mp4" and x[C.STATUS] == C.STATUS_OK) == 12
    # The embed task's decode found both: the run's problems file lists them like the metadata task's corrupt
    # images (it listed none of them), with FFmpeg's reason but not the worker's local path.
    from lightly_airflow.storage import read_parquet

    problems = {p[C.KEY]: p for p in read_parquet(summary.problems_uri).to_pylist()}
    assert summary.problems == len(problems)
    bad = sorted(k for k, x in by.items() if x[C.STATUS] != C.STATUS_OK)
    assert sorted(problems) == bad and {"junk.webm", "cut.webm"} <= set(bad)
    junk = problems["junk.webm"]
    assert (junk["stage"], junk["field"]) == ("embeddings", "file") and junk["path"] == f"file://{src}/junk.webm"
    assert junk["reason"] == f"corrupt: {by['junk.webm'][C.STATUS_REASON]}"
    assert junk["reason"].startswith("corrupt: cannot open the video: InvalidDataError: Invalid data found")
    assert str(tmp_path) not in junk["reason"] and "Errno" not in junk["reason"]
    assert problems["cut.webm"]["reason"].startswith("corrupt: ") and "ends early" in problems["cut.webm"]["reason"]


def test_grey_frames_are_corrupt_by_the_threshold_and_kept_with_threshold_one(tmp_path: Path) -> None:
    import numpy as np

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    src = tmp_path / "src"
    src.mkdir()
    frames = list(scene_frames(scene("astronaut"), 12, (160, 120)))
    for i in (3, 4):
        frames[i] = np.full_like(frames[i], 128)
    frames[8] = frames[8].copy()
    frames[8][:60] = 128  # half the frame concealed grey
    write_video(str(src / "g.mp4"), frames)
    for threshold, run, pool in ((0.1, "a", "p1"), (1.0, "b", "p2")):
        run_once(src, tmp_path / pool, run, corruption_threshold=threshold)
        rows = {x[C.FRAME_INDEX]: x for x in Datapool(f"file://{tmp_path / pool}").read().to_pylist()}
        bad = sorted(i for i, x in rows.items() if x[C.STATUS] == C.STATUS_CORRUPT)
        if threshold < 1:
            assert bad == [3, 4, 8]
            assert "corruptness" in rows[8][C.STATUS_REASON]
        else:
            assert bad == []  # 3 and 4 are exact duplicates of each other then
            assert rows[4][C.STATUS] in (C.STATUS_OK, C.STATUS_DUPLICATE)


def test_sequences_of_consecutive_frames(videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightly_airflow import pipeline
    from lightly_airflow.datapool import Datapool

    # (the summary, the select task's XCom, lists the frames of SEQUENCES_LISTED sequences and says so when cut)
    monkeypatch.setattr(pipeline, "SEQUENCES_LISTED", 2)
    config = {"n_samples": 12, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    _, _, summary = run_once(videos, tmp_path / "pool", "s1", config=config, selected_sequence_length=4)
    seqs = summary.metrics["sequences"]
    assert len(seqs) == 2 and summary.metrics["sequences_listed"] == 2 and summary.metrics["sequences_selected"] == 3
    for s in seqs:
        idx = s["frame_indices"]
        assert idx == list(range(idx[0], idx[0] + 4)) and idx[0] % 4 == 0
        assert len(s["frames"]) == 4 and s["seconds"] == sorted(s["seconds"])
    rows = Datapool(f"file://{tmp_path / 'pool'}").read()
    sel = rows.filter(rows.column(C.SELECTED))
    assert sel.num_rows == 12 and sel.column("sequence").null_count == 0
    assert sorted(set(sel.column("sequence").to_pylist())) == [0, 1, 2]  # (all three, listed or not)


def test_sequence_length_must_divide_n_samples(tmp_path: Path) -> None:
    from lightly_airflow.pipeline import ParamError, validate_params

    (tmp_path / "d").mkdir()
    with pytest.raises(ParamError, match="selected_sequence_length.*multiple"):
        validate_params(datasource_uri=f"file://{tmp_path / 'd'}", datapool_uri=f"file://{tmp_path / 'p'}",
                        lightly_uri=None, selection_config={**DIVERSITY, "n_samples": 10},
                        worker_config={"selected_sequence_length": 4})


def test_frame_pngs_are_written_once(videos: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    from lightly_airflow.video.export import write_selected_frames
    from lightly_airflow.video.index import index_video

    info = index_video(str(videos / "campus4-c0.avi"))
    rows = pa.table({C.KEY: [f"campus4-c0-{i:02d}-avi.png" for i in (2, 3, 10)], C.VIDEO: ["campus4-c0.avi"] * 3,
                     C.FRAME_INDEX: [2, 3, 10], C.FRAME_PTS: [info.pts[i] for i in (2, 3, 10)]})
    out = tmp_path / "lightly"
    first = write_selected_frames(rows, datasource_uri=f"file://{videos}", lightly_uri=f"file://{out}")
    assert first["written"] == 3
    png = out / ".lightly" / "frames" / "campus4-c0-10-avi.png"
    before = png.stat().st_mtime_ns
    again = write_selected_frames(rows, datasource_uri=f"file://{videos}", lightly_uri=f"file://{out}")
    assert again["written"] == 0 and again["existing"] == 3 and png.stat().st_mtime_ns == before
    assert not [p for p in (out / ".lightly" / "frames").iterdir() if p.name.startswith(".tmp")]
    from PIL import Image

    assert Image.open(png).size == (160, 120)
    shutil.rmtree(out)


def test_a_shorter_replacement_supersedes_the_former_frames_and_their_pngs(tmp_path: Path) -> None:
    import av
    import numpy as np
    from PIL import Image

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video.export import png_etag

    src = tmp_path / "src"
    make_scene_video(str(src / "clip.mp4"), "astronaut", 24, seed=1)
    everything = {"n_samples": 24, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    _, _, s1 = run_once(src, tmp_path / "pool", "r1", config=everything)
    frames = src / ".lightly" / "frames"
    assert s1.frames["written"] == 24 and len(list(frames.iterdir())) == 24
    old_etag = png_etag((frames / "clip-05-mp4.png").read_bytes())
    assert old_etag

    make_scene_video(str(src / "clip.mp4"), "rocket", 12, seed=7)  # replaced by a shorter, different video
    _, _, s2 = run_once(src, tmp_path / "pool", "r2", config=everything)
    pool = Datapool(f"file://{tmp_path / 'pool'}")
    current = latest_rows(pool)
    for i in range(24):
        row = current[f"clip-{i:02d}-mp4.png"]
        if i < 12:
            assert row[C.STATUS] == C.STATUS_OK and row[C.ETAG] != old_etag
        else:  # the former version's frames 12-23 no longer exist: not current samples any more
            assert row[C.STATUS] == C.STATUS_MISSING and row[C.ETAG] == old_etag
    tomb = pool.read(run_id="r2").filter(pc.equal(pool.read(run_id="r2").column(C.RUN_ID), "r2")).to_pylist()
    gone = [r for r in tomb if r[C.STATUS] == C.STATUS_MISSING]
    assert len(gone) == 12 and all(r[C.STATUS_REASON].startswith("superseded: clip.mp4 was replaced") for r in gone)
    assert not any(r[C.SELECTED] for r in gone) and s2.missing == 0
    assert all(r[C.FRAME_SECONDS] is not None for r in gone)
    from lightly_airflow.video.report import _frames

    r2 = pool.read(run_id="r2")  # the report's timeline shows the run's 12 frames, not the tombstones
    assert len(_frames(r2.filter(pc.equal(r2.column(C.RUN_ID), "r2")), selected_only=False)["clip.mp4"]) == 12
    assert any("12 frames of replaced videos" in n for n in s2.notes)
    # No PNG shows the former version: frames 0-11 rewritten from the new content, 12-23 removed.
    assert s2.frames["removed"] == 12 and s2.frames["rewritten"] == 12
    assert sorted(p.name for p in frames.iterdir()) == [f"clip-{i:02d}-mp4.png" for i in range(12)]
    with av.open(str(src / "clip.mp4")) as c:
        new5 = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][5]
    png5 = (frames / "clip-05-mp4.png").read_bytes()
    assert png_etag(png5) == current["clip-05-mp4.png"][C.ETAG]
    assert np.array_equal(np.asarray(Image.open(frames / "clip-05-mp4.png").convert("RGB")), new5)

    # A retry after a kill right after r2's commit finds the same PNG work from the committed rows alone.
    from lightly_airflow.video.supersede import superseded_by_committed_run

    again = superseded_by_committed_run(pool, pool.committed_version("r2"), r2.filter(pc.equal(r2.column(C.RUN_ID), "r2")))
    assert again.remove == {f"clip-{i:02d}-mp4.png" for i in range(12, 24)}
    assert again.refresh == {f"clip-{i:02d}-mp4.png" for i in range(12)} and again.rows.num_rows == 12

    # Idempotent: another run (process_all) neither tombstones the gone frames again nor rewrites a PNG.
    _, _, s3 = run_once(src, tmp_path / "pool", "r3", config=everything, process_all=True)
    mine = pool.read(run_id="r3")
    mine = mine.filter(pc.equal(mine.column(C.RUN_ID), "r3"))
    assert mine.num_rows == 12 and set(mine.column(C.STATUS).to_pylist()) == {C.STATUS_OK}
    assert not s3.frames or s3.frames.get("written", 0) == 0


def test_frames_get_their_metrics_with_custom_embeddings(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.pipeline import list_new

    src = tmp_path / "src"
    make_scene_video(str(src / "clip.mp4"), "coffee", 10, seed=1)
    csv = src / ".lightly" / "embeddings" / "custom.csv"
    csv.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    csv.write_text("filenames,embedding_0,embedding_1,embedding_2\n" + "".join(
        f"clip-{i:02d}-mp4.png,{','.join(str(x) for x in rng.normal(size=3))}\n" for i in range(10)))
    listed = list_new(NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{tmp_path / 'pool'}"),
                      run_id="c1")
    (manifest,) = listed.manifests
    counts = embed_shard(manifest, embeddings_csv=f"file://{csv}")
    out = pq.read_table(counts["output_uri"]).to_pylist()
    assert len(out) == 10 and all(r[C.STATUS] == C.STATUS_OK for r in out)
    for r in out:  # the vectors come from the CSV, the frame's metrics from one decode
        assert r[C.lightly_metadata_column("sharpness")] > 0 and r[C.lightly_metadata_column("width")] == 160
        assert r[C.lightly_metadata_column("corruptness")] < 0.1 and len(r[C.CONTENT_HASH]) == 64
    from lightly_airflow.datapool import sample_id
    from lightly_airflow.thumbnails import read_thumbnail

    assert read_thumbnail(f"file://{tmp_path / 'pool'}", sample_id(out[3][C.KEY], out[3][C.ETAG])) is not None


def test_a_frames_only_shard_decodes_its_chunks_in_several_threads(tmp_path: Path, monkeypatch, caplog) -> None:
    import logging
    import re

    import numpy as np
    import pyarrow.parquet as pq

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.pipeline import list_new

    src = tmp_path / "src"
    make_scene_video(str(src / "long.mp4"), "astronaut", 30, seed=1)
    (manifest,) = list_new(NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{tmp_path / 'p'}"),
                           run_id="w1", min_shard_size=10**6).manifests
    one = pq.read_table(embed_shard(manifest, device="cpu", num_workers=1)["output_uri"])
    # One chunk, 2 threads: one decodes, both analyse (the frames' order and values are unchanged).
    fanned = pq.read_table(embed_shard(manifest, device="cpu", num_workers=2)["output_uri"])
    assert fanned.equals(one)
    monkeypatch.setattr("lightly_airflow.video.frames.CHUNK_FRAMES", 8)  # 4 chunks of one video
    with caplog.at_level(logging.INFO, logger="lightly_airflow.embedding.runner"):
        counts = embed_shard(manifest, device="cpu")
    threads = [int(m.group(1)) for m in re.finditer(r", (\d+) frame threads,", caplog.text)]
    assert threads and threads[-1] >= 2  # was 1 for any shard without images
    many = pq.read_table(counts["output_uri"])
    assert counts["embedded"] == 30
    assert np.array_equal(np.stack(many.column(C.EMBEDDING).to_numpy(zero_copy_only=False)),
                          np.stack(one.column(C.EMBEDDING).to_numpy(zero_copy_only=False)))


def test_a_repaired_video_leaves_no_stale_problem_row(tmp_path: Path) -> None:
    """A video that could not be opened (or ended early) is one ``corrupt`` row under the video's own key.
    When a good version replaces it, that row must stop being a current sample, like the former frames."""
    from lightly_airflow.datapool import Datapool

    src = tmp_path / "src"
    src.mkdir()
    (src / "upload.mp4").write_bytes(b"<html>502 Bad Gateway</html>\n" * 20)  # a failed download, named .mp4
    make_scene_video(str(src / "cut.webm"), "coffee", 40, seed=2)
    truncate(str(src / "cut.webm"), 0.5)
    _, _, s1 = run_once(src, tmp_path / "pool", "r1")
    pool = Datapool(f"file://{tmp_path / 'pool'}")
    before = {r[C.KEY]: r for r in pool.known_files().to_pylist()}
    assert before["upload.mp4"][C.STATUS] == C.STATUS_CORRUPT and before["cut.webm"][C.STATUS] == C.STATUS_CORRUPT

    make_scene_video(str(src / "upload.mp4"), "astronaut", 8, seed=1)  # the upload repeated, whole this time
    make_scene_video(str(src / "cut.webm"), "coffee", 40, seed=2)  # the whole file
    listed, _, s2 = run_once(src, tmp_path / "pool", "r2")
    assert listed.new_files == 2
    current = latest_rows(pool)
    assert sum(1 for k, r in current.items() if k.startswith("upload-") and r[C.STATUS] == C.STATUS_OK) == 8
    assert sum(1 for k, r in current.items() if k.startswith("cut-") and r[C.STATUS] == C.STATUS_OK) == 40
    # The former versions' problems no longer hold: no current sample is corrupt any more.
    assert [k for k, r in current.items() if r[C.STATUS] == C.STATUS_CORRUPT] == []
    r2 = pool.read(run_id="r2")
    committed = {r[C.KEY]: r for r in r2.filter(pc.equal(r2.column(C.RUN_ID), "r2")).to_pylist()}
    for key in ("upload.mp4", "cut.webm"):
        assert current[key][C.STATUS] == C.STATUS_MISSING and current[key][C.ETAG] == before[key][C.ETAG]
        assert committed[key][C.STATUS_REASON].startswith(f"superseded: {key} was replaced")
        assert "problem no longer applies" in committed[key][C.STATUS_REASON] and not committed[key][C.SELECTED]
    assert any("2 problem rows of replaced videos" in n for n in s2.notes)
    assert s2.corrupt == 0 and s2.missing == 0
    # Idempotent: nothing new, nothing tombstoned again.
    _, _, s3 = run_once(src, tmp_path / "pool", "r3", process_all=True)
    r3 = pool.read(run_id="r3")
    mine = r3.filter(pc.equal(r3.column(C.RUN_ID), "r3"))
    assert set(mine.column(C.STATUS).to_pylist()) <= {C.STATUS_OK, C.STATUS_DUPLICATE}
    assert not any("replaced videos" in n for n in s3.notes)


def test_a_phone_video_with_a_rotation_tag_becomes_upright_frames(tmp_path: Path) -> None:
    """Phones store portrait video landscape with a display matrix (``rotation of -90 degrees``); every player
    (and the images' EXIF orientation here) shows it upright, so its frames are samples as the user sees them:
    portrait size in the metadata, upright model input, thumbnail and frame PNG."""
    import hashlib

    import av
    import numpy as np
    from PIL import Image

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.thumbnails import read_thumbnail
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    src = tmp_path / "src"
    src.mkdir()
    upright = list(scene_frames(scene("astronaut"), 6, (96, 160), seed=3))  # portrait: 96 wide, 160 high
    stored = [np.ascontiguousarray(np.rot90(f, 1)) for f in upright]  # the sensor's landscape 160 x 96
    write_video(str(src / "IMG_0042.MOV"), stored, size=(160, 96), rotation=-90)
    with av.open(str(src / "IMG_0042.MOV")) as c:
        decoded = [f for f in c.decode(video=0)]
        assert decoded[0].rotation == -90 and (decoded[0].width, decoded[0].height) == (160, 96)
        shown = [np.ascontiguousarray(np.rot90(f.to_ndarray(format="rgb24"), -1)) for f in decoded]  # as players do
    assert shown[0].shape == (160, 96, 3)
    assert np.abs(shown[2].astype(int) - upright[2]).mean() < 12  # upright again, up to the codec's loss

    # The model sees the frame upright: its input is that of the same scene filmed upright (up to the codec).
    from lightly_airflow.video.frames import analyse_frame

    write_video(str(tmp_path / "upright.mp4"), upright, size=(96, 160))
    with av.open(str(tmp_path / "upright.mp4")) as c:
        plain = analyse_frame(next(iter(c.decode(video=0))), 32)[0]
    turned = analyse_frame(decoded[0], 32)[0]
    assert plain is not None and turned is not None
    assert np.abs(turned.astype(int) - plain).mean() < 8 < np.abs(np.rot90(turned, 1).astype(int) - plain).mean()

    everything = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    _, _, summary = run_once(src, tmp_path / "pool", "r1", config=everything)
    pool = Datapool(f"file://{tmp_path / 'pool'}")
    rows = {r[C.FRAME_INDEX]: r for r in pool.read().to_pylist()}
    assert len(rows) == 6 and all(r[C.STATUS] == C.STATUS_OK for r in rows.values())
    for i, r in rows.items():
        assert (r[C.lightly_metadata_column("width")], r[C.lightly_metadata_column("height")]) == (96, 160)
        digest = hashlib.sha256(shown[i].tobytes())
        digest.update(f"{shown[i].shape}".encode())
        assert r[C.CONTENT_HASH] == digest.hexdigest()
    png = src / ".lightly" / "frames" / "IMG_0042-2-MOV.png"
    assert summary.frames["written"] == 6
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), shown[2])
    thumb = read_thumbnail(f"file://{tmp_path / 'pool'}", rows[2][C.SAMPLE_ID])
    assert thumb is not None
    tw, th = Image.open(__import__("io").BytesIO(thumb)).size
    assert th > tw


def test_lightlys_broken_frame_filter_is_accepted(tmp_path: Path) -> None:
    """Lightly's corruptness-check page removes broken video frames with a THRESHOLD on
    ``lightly.uniformRowRatio`` (Worker 2.7); the metadata pass computes it, so the first task accepts the
    config as users bring it (it used to refuse it as not computed)."""
    from lightly_airflow.pipeline import validate_params

    (tmp_path / "d").mkdir()
    config = {"n_samples": 10, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "METADATA", "key": "lightly.uniformRowRatio"},
         "strategy": {"type": "THRESHOLD", "threshold": 0.025, "operation": "SMALLER"}}]}
    validate_params(datasource_uri=f"file://{tmp_path / 'd'}", datapool_uri=f"file://{tmp_path / 'p'}",
                    lightly_uri=None, selection_config=config, worker_config={})


def test_frames_of_a_pool_without_the_uniform_row_ratio_are_decoded_again(tmp_path: Path, monkeypatch) -> None:
    """A pool committed before ``lightly.uniformRowRatio`` existed: its frames hold no value for it. Re-selecting
    them (process_all) with Lightly's broken-frame config must not drop them all as "missing": frames are
    reused only with every metric, so these are decoded again and get the value."""
    import lightly_airflow.metadata.metrics as metrics
    from lightly_airflow.datapool import Datapool

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "a.mp4"), "astronaut", 8, seed=1)
    make_scene_video(str(src / "b.avi"), "coffee", 8, seed=2)
    with monkeypatch.context() as m:  # the previous version: no uniformRowRatio (null in the merged pool)
        m.setattr(metrics, "uniform_row_ratio", lambda rgb: None)
        run_once(src, pool_dir, "old", config={"n_samples": 2, "strategies": DIVERSITY["strategies"]})
    pool = Datapool(f"file://{pool_dir}")
    assert pool.read().column(C.lightly_metadata_column("uniformRowRatio")).null_count == 16
    config = {"n_samples": 100, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "METADATA", "key": "lightly.uniformRowRatio"},
         "strategy": {"type": "THRESHOLD", "threshold": 0.025, "operation": "SMALLER"}}]}
    listed, counts, summary = run_once(src, pool_dir, "new", process_all=True, config=config)
    assert listed.new == 16 and sum(c["embedded"] for c in counts) == 16
    rows = pool.read(run_id="new")
    mine = rows.filter(pc.equal(rows.column(C.RUN_ID), "new"))
    assert mine.column(C.lightly_metadata_column("uniformRowRatio")).to_pylist() == [0.0] * 16
    assert summary.candidates == 14 and summary.selected == 14 and not summary.missing_inputs  # all clean: kept


def test_raw_hevc_streams_are_decoded_and_exported(tmp_path: Path) -> None:
    """``.hevc`` is one of Lightly's video extensions; dash cams and drones write raw H.265 elementary streams
    (no container, no timestamps) under it. FFmpeg cannot seek in them, not even to the start: every frame
    was ``corrupt`` with ``cannot seek: PermissionError``. Now a range is decoded from where the file is opened
    (and the file is opened again for a later range, e.g. the selected frames' PNGs)."""
    import av
    import numpy as np
    from PIL import Image

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.index import index_video
    from lightly_airflow.video.synthetic import scene, scene_frames

    src = tmp_path / "src"
    src.mkdir()
    path = str(src / "DJI_0001.hevc")
    with av.open(path, "w", format="hevc") as c:
        s = c.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.options = {"x265-params": "log-level=error:keyint=10:bframes=2"}
        for rgb in scene_frames(scene("rocket"), 30, (160, 120), seed=1):
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(path) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    info = index_video(path)
    assert info.n_frames == len(decoded) == 30 and info.problem is None and not info.seekable
    got = list(decode_frames(path, [(i, None) for i in (0, 1, 2, 11, 12, 29)]))
    assert [g.reason for g in got] == [None] * 6 and [g.index for g in got] == [0, 1, 2, 11, 12, 29]
    for g in got:
        assert np.array_equal(g.frame.to_ndarray(format="rgb24"), decoded[g.index])

    config = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    _, _, summary = run_once(src, tmp_path / "pool", "r1", config=config)
    rows = Datapool(f"file://{tmp_path / 'pool'}").read().to_pylist()
    assert len(rows) == 30 and {r[C.STATUS] for r in rows} <= {C.STATUS_OK, C.STATUS_DUPLICATE}
    selected = sorted(r[C.FRAME_INDEX] for r in rows if r[C.SELECTED])
    assert len(selected) == 5 and summary.frames["written"] == 5 and not summary.frames.get("failed")
    for i in selected:
        png = np.asarray(Image.open(src / ".lightly" / "frames" / f"DJI_0001-{i:02d}-hevc.png").convert("RGB"))
        assert np.array_equal(png, decoded[i])


def _two_stream_mp4(path: str, first: str, n_main: int = 12, seed: int = 6) -> None:
    """An MP4 with a main 160x120 H.264 track (default disposition) and ``first``: ``"cover"``, a JPEG cover
    picture (``disposition.attached_pic``, moved before the tracks as iTunes-style tools write it, so FFmpeg
    lists it as stream 0), or ``"preview"``, a second, smaller camera track without the default flag, first."""
    import struct

    import av
    import numpy as np
    from av.stream import Disposition

    from lightly_airflow.video.synthetic import scene, scene_frames

    with av.open(path, "w", format="mp4") as c:
        extra = c.add_stream("mjpeg" if first == "cover" else "libx264", rate=1 if first == "cover" else 25)
        extra.width, extra.height = (64, 64) if first == "cover" else (64, 48)
        extra.pix_fmt = "yuvj420p" if first == "cover" else "yuv420p"
        extra.disposition = Disposition.attached_pic if first == "cover" else Disposition(0)
        main = c.add_stream("libx264", rate=25)
        main.width, main.height, main.pix_fmt = 160, 120, "yuv420p"
        main.disposition = Disposition.default
        for s, n, name, at in ((extra, 1 if first == "cover" else 20, "chelsea", 5), (main, n_main, "rocket", seed)):
            for rgb in scene_frames(scene(name), n, (s.width, s.height), seed=at):
                for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    if first != "cover":
        return
    data = Path(path).read_bytes()  # FFmpeg writes udta (with the cover) after the tracks: move it first

    def boxes(start: int, end: int):
        while start < end:
            size, kind = struct.unpack(">I4s", data[start : start + 8])
            yield start, size, kind
            start += size

    out = bytearray()
    for at, size, kind in boxes(0, len(data)):
        if kind != b"moov":
            out += data[at : at + size]
            continue
        kids = [(kind, data[a : a + s]) for a, s, kind in boxes(at + 8, at + size)]
        ordered = [b for k, b in kids if k == b"mvhd"] + [b for k, b in kids if k == b"udta"]
        out += data[at : at + 8] + b"".join(ordered + [b for k, b in kids if k not in (b"mvhd", b"udta")])
    Path(path).write_bytes(bytes(out))


def test_the_video_stream_a_player_shows_is_used_and_the_others_are_reported(tmp_path: Path) -> None:
    """A file with two video streams: a cover picture FFmpeg lists first (``attached_pic``), or a small second
    camera's track first and the main (default) track second. The first video stream was taken silently: the
    cover picture became the video's only frame, the preview camera's frames replaced the main ones. Now the
    frames are those of the stream a player shows and every other video stream is logged, counted and listed
    in the report."""
    import hashlib

    import av
    import numpy as np
    from av.stream import Disposition

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video.index import index_video

    src = tmp_path / "src"
    src.mkdir()
    _two_stream_mp4(str(src / "album.mp4"), "cover")
    _two_stream_mp4(str(src / "dashcam.mp4"), "preview", seed=7)
    expected = {}
    for name in ("album", "dashcam"):
        with av.open(str(src / f"{name}.mp4")) as c:
            assert len(c.streams.video) == 2
            if name == "album":
                assert c.streams.video[0].disposition & Disposition.attached_pic  # the cover is listed first
            main = next(s for s in c.streams.video if (s.width, s.height) == (160, 120))
            assert main.index == 1
            expected[name] = [f.to_ndarray(format="rgb24") for f in c.decode(main)]
        info = index_video(str(src / f"{name}.mp4"))
        assert (info.n_frames, info.problem) == (12, None), name
        assert info.stream == 1
        assert len(info.other_streams) == 1 and "#0" in info.other_streams[0]
    config = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    _, _, summary = run_once(src, tmp_path / "pool", "r1", config=config)
    rows = Datapool(f"file://{tmp_path / 'pool'}").read().to_pylist()
    assert len(rows) == 24 and {r[C.STATUS] for r in rows} == {C.STATUS_OK}
    for r in rows:
        rgb = expected[r[C.VIDEO].removesuffix(".mp4")][r[C.FRAME_INDEX]]
        digest = hashlib.sha256(rgb.tobytes())
        digest.update(f"{rgb.shape}".encode())
        assert r[C.CONTENT_HASH] == digest.hexdigest()
        assert (r[C.lightly_metadata_column("width")], r[C.lightly_metadata_column("height")]) == (160, 120)
    notes = summary.listing["unused_video_streams_examples"]
    assert summary.listing["unused_video_streams"] == 2 and sorted(k for k, _ in notes) == ["album.mp4", "dashcam.mp4"]
    assert "attached picture (cover art) #0 (mjpeg 64x64)" in dict(notes)["album.mp4"]
    assert "video stream #0 (h264 64x48)" in dict(notes)["dashcam.mp4"]
    report = Path(summary.report_uri.removeprefix("file://")).read_text()
    assert "Video streams not used (2)" in report and "dashcam.mp4" in report
    png = next((src / ".lightly" / "frames").glob("*.png"))
    r = next(r for r in rows if r[C.KEY] == png.name)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), expected[r[C.VIDEO].removesuffix(".mp4")][r[C.FRAME_INDEX]])


def test_anamorphic_video_keeps_its_pixel_grid_and_shows_square_pixels(tmp_path: Path) -> None:
    """DV/DVD-style video stores 16:9 pictures as 720x480 with non-square pixels (sample aspect ratio 32:27);
    players stretch them. The thumbnails were the stored grid, squeezed to 3:2. Now the thumbnail has square
    pixels (16:9), while the frame PNG, the metrics and the frame names keep the stored grid (Lightly's frame
    coordinates, which ``.lightly/predictions`` boxes of frames are in) and record the ratio (``pHYs``)."""
    import io
    from fractions import Fraction

    import av
    import numpy as np
    from PIL import Image

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.thumbnails import read_thumbnail
    from lightly_airflow.video.index import index_video
    from lightly_airflow.video.synthetic import scene, scene_frames

    src = tmp_path / "src"
    src.mkdir()
    path = src / "dv_tape.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 144, 96, "yuv420p"
        s.codec_context.sample_aspect_ratio = Fraction(32, 27)
        for rgb in scene_frames(scene("astronaut"), 6, (144, 96), seed=2):
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:
        assert c.streams.video[0].sample_aspect_ratio == Fraction(32, 27)
        stored = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    everything = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    _, _, summary = run_once(src, tmp_path / "pool", "r1", config=everything)
    rows = {r[C.FRAME_INDEX]: r for r in Datapool(f"file://{tmp_path / 'pool'}").read().to_pylist()}
    assert len(rows) == 6 and summary.frames["written"] == 6
    assert (rows[3][C.lightly_metadata_column("width")], rows[3][C.lightly_metadata_column("height")]) == (144, 96)
    thumb = read_thumbnail(f"file://{tmp_path / 'pool'}", rows[3][C.SAMPLE_ID])
    assert thumb is not None
    assert Image.open(io.BytesIO(thumb)).size == (171, 96)  # 144 * 32/27 = 170.7: 16:9, as a player shows it
    png = Image.open(src / ".lightly" / "frames" / "dv_tape-3-mp4.png")
    assert png.size == (144, 96) and np.array_equal(np.asarray(png.convert("RGB")), stored[3])
    assert png.info.get("aspect") == (27, 32) and png.info.get("lightly-sample-aspect-ratio") == "32:27"
    assert index_video(str(path)).sample_aspect_ratio == Fraction(32, 27)


@pytest.mark.parametrize("ext", ["mkv", "MTS", "ts"])
def test_a_matroska_or_camcorder_video_is_listed_and_its_frames_are_samples(tmp_path: Path, ext: str) -> None:
    """``.mkv`` (dashcams, screen and OBS recordings, robot logs), an AVCHD camcorder's ``.MTS`` (a transport
    stream of 192-byte packets) and a plain ``.ts`` transport stream (188-byte packets: HLS segments, broadcast
    and surveillance recordings) are not in Lightly's list; they were counted as unsupported files. Their frames
    are samples named as Lightly names frames."""
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    video = f"dashcam/2026-12-01 08.15.{ext}"
    (src / "dashcam").mkdir(parents=True)
    write_video(str(src / video), scene_frames(scene("rocket"), 14, (160, 120), seed=5), ext=ext.lower())
    if ext == "MTS":
        assert (src / video).read_bytes()[4] == 0x47 and (src / video).stat().st_size % 192 == 0  # (BDAV packets)
    if ext == "ts":
        assert (src / video).read_bytes()[0] == 0x47 and (src / video).stat().st_size % 188 == 0
    listed, counts, summary = run_once(src, pool_dir, "run1")
    assert listed.new_files == 1 and listed.new == 14 and sum(c["embedded"] for c in counts) == 14
    rows = {r[C.KEY]: r for r in Datapool(f"file://{pool_dir}").read().to_pylist()}
    assert sorted(rows) == [f"dashcam/2026-12-01 08.15-{i:02d}-{ext}.png" for i in range(14)]
    frame = rows[f"dashcam/2026-12-01 08.15-13-{ext}.png"]
    assert frame[C.VIDEO] == video and frame[C.STATUS] == C.STATUS_OK
    assert frame[C.FRAME_SECONDS] == pytest.approx(13 / 24, abs=1e-3)
    selected = [k for k, r in rows.items() if r[C.SELECTED]]
    assert selected and all((src / ".lightly" / "frames" / k).is_file() for k in selected)


def test_a_typescript_file_named_ts_is_a_problem_row_that_says_so_and_is_not_read_again(tmp_path: Path) -> None:
    """``.ts`` is also TypeScript's extension: beside a transport stream a source file is listed too; it becomes
    one problem row naming what it is and the fix (not "cannot open the video"), the video's frames are
    samples, and a second run finds nothing new (the row is known by key and content)."""
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video import frame_name
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    (src / "web").mkdir(parents=True)
    (src / "cam").mkdir()
    write_video(str(src / "cam" / "seg-0001.ts"), scene_frames(scene("coffee"), 10, (160, 120), seed=2), ext="ts")
    (src / "web" / "app.ts").write_text("import { f } from './lib';\nexport const área: number = f(2) * 3;\n" * 20)
    listed, counts, summary = run_once(src, pool_dir, "run1")
    assert listed.new_files == 2 and listed.new == 11  # (10 frames and the problem row)
    rows = {r[C.KEY]: r for r in Datapool(f"file://{pool_dir}").read().to_pylist()}
    assert sorted(k for k in rows if k.startswith("cam/")) == [frame_name("cam/seg-0001.ts", i, 10) for i in range(10)]
    assert rows[frame_name("cam/seg-0001.ts", 9, 10)][C.STATUS] == C.STATUS_OK
    code = rows["web/app.ts"]
    assert code[C.STATUS] == C.STATUS_CORRUPT
    assert code[C.STATUS_REASON].startswith("not an MPEG transport stream: text (a TypeScript or other source file")
    assert "extensions without 'ts'" in code[C.STATUS_REASON]
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.pipeline import list_new

    again = list_new(NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool_dir}"), run_id="run2")
    assert again.new == 0 and not again.manifests
