"""Videos with damaged bytes in the middle: every frame the demuxer skips is counted with a reason and the fix, and
the frames kept keep their own times.

Before: an MPEG-TS with 1.5 kB of flipped bytes listed 47 of its 48 frames with no problem (the demuxer drops the
damaged PES packet and flags nothing the index read), a Matroska/WebM 36 to 39 (the demuxer resyncs at the next
cluster), an MPEG-TS cut inside a packet was a healthy shorter video; a range written twice (duplicate timestamps)
made the index drop every timestamp, so each frame after the repeat was timed by counting, two frames late.

The videos are all-intra (each frame its own picture, ``g=1``) with the frame number in their grey level, so a
decoded frame's content says which frame it is and a frame shifted to another's time is seen.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

N, RATE, W, H = 48, 24, 96, 64


def _video(path: Path, codec: str) -> bytes:
    import av

    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": "1"}
        rng = np.random.default_rng(0)
        for i in range(N):
            picture = np.full((H, W, 3), 5 * i, np.uint8)  # frame i is grey 5 * i on its left half
            picture[:, W // 2 :] = rng.integers(0, 256, (H, W // 2, 3))  # (a few kB a frame, as a camera's)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def _damage(data: bytes, how: str) -> bytes:
    middle, out = len(data) // 2, bytearray(data)
    if how == "flip":
        for i in range(middle, middle + 1500, 5):
            out[i] ^= 0xFF
    elif how == "zero":
        out[middle : middle + 3000] = bytes(3000)
    elif how == "drop":
        del out[middle : middle + 3000]
    elif how == "repeat":
        out[middle:middle] = data[middle - 3000 : middle]
    return bytes(out)


def _frames_at_their_times(path: Path) -> tuple[Any, dict[int, Any]]:
    """The index and the decoded frames of ``path``; asserts that each frame is the one of its time."""
    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.index import index_video

    info = index_video(str(path))
    got = {g.index: g for g in decode_frames(str(path), list(enumerate(info.pts)), seekable=info.seekable)}
    assert sorted(got) == list(range(info.n_frames))
    for i, g in got.items():
        if g.frame is None or g.frame.is_corrupt:  # (a damaged frame's picture is no evidence of its time)
            continue
        shown = float(g.frame.to_ndarray(format="rgb24")[4:-4, 4 : W // 2 - 8, 1].mean()) / 5
        seconds = info.seconds(i)
        assert seconds is not None and abs(shown - seconds * RATE) < 1, (path.name, i, seconds * RATE, shown)
    return info, got


@pytest.mark.parametrize("ext,codec", [("ts", "libx264"), ("mkv", "libx264"), ("webm", "libvpx")])
@pytest.mark.parametrize("how", ["flip", "zero", "drop"])
def test_frames_the_demuxer_skips_are_counted_with_the_fix(tmp_path: Path, ext: str, codec: str, how: str) -> None:
    data = _video(tmp_path / f"whole.{ext}", codec)
    path = tmp_path / f"{how}.{ext}"
    path.write_bytes(_damage(data, how))

    info, got = _frames_at_their_times(path)
    assert 0 < info.n_frames <= N and info.problem is not None, (info.n_frames, info.problem)
    said = re.search(r"^the video is damaged: (\d+) frames? (is|are) missing", info.problem)
    assert said, info.problem
    moved = re.search(r"; (\d+) frames? with a damaged timestamp between the regular frames'", info.problem)
    # every frame not listed is counted; one whose damaged timestamp put it between two others is named so
    assert int(said[1]) == N - info.n_frames + (int(moved[1]) if moved else 0) > 0, info.problem
    assert "Fix: upload an undamaged copy" in info.problem and "relevant_filenames_file" in info.problem
    assert f"its {info.n_frames} readable frames are kept" in info.problem
    assert "ends early" not in info.problem  # (bytes taken out of the middle are no cut)


@pytest.mark.parametrize("ext,codec", [("ts", "libx264"), ("mkv", "libx264")])
def test_a_range_written_twice_keeps_every_frame_at_its_own_time(tmp_path: Path, ext: str, codec: str) -> None:
    data = _video(tmp_path / f"whole.{ext}", codec)
    path = tmp_path / f"repeat.{ext}"
    path.write_bytes(_damage(data, "repeat"))

    info, got = _frames_at_their_times(path)
    assert info.n_frames == N and None not in info.pts and len(set(info.pts)) == N
    assert info.seekable == (ext != "ts")
    assert info.problem is not None and "repeating the timestamps of earlier frames" in info.problem, info.problem
    assert "Fix: upload an undamaged copy" in info.problem


def test_a_transport_stream_cut_inside_a_packet_ends_early(tmp_path: Path) -> None:
    from lightly_airflow.video.index import index_video

    data = _video(tmp_path / "whole.ts", "libx264")
    assert len(data) % 188 == 0 and index_video(str(tmp_path / "whole.ts")).problem is None
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) * 2 // 3 // 188 * 188 + 100])  # a recording that stopped inside a packet
    info = index_video(str(cut))
    assert 0 < info.n_frames < N and info.problem is not None
    assert info.problem.startswith("the video ends early: the transport stream ends inside a packet"), info.problem
    assert "and 100 bytes of the next" in info.problem
    assert f"Fix: upload the complete file again to get the rest (its {info.n_frames} readable frames" in info.problem
    at_boundary = tmp_path / "at-boundary.ts"  # cut between packets: nothing tells it from a shorter recording
    at_boundary.write_bytes(data[: len(data) * 2 // 3 // 188 * 188])
    assert index_video(str(at_boundary)).problem is None


def test_a_regular_video_with_a_changed_frame_rate_is_not_taken_for_a_damaged_one() -> None:
    from lightly_airflow.video.index import missing_frames, off_clock

    assert missing_frames(list(range(0, 480, 10))) == [] and off_clock(list(range(0, 480, 10))) == 0
    moved = [*range(0, 200, 10), 204, *range(220, 480, 10)]  # frame 21 at 204 instead of 210: a damaged timestamp
    assert missing_frames(moved) == [] and off_clock(moved) == 1
    assert missing_frames([*range(0, 240, 10), *range(250, 500, 10)]) == [(23, 1)]  # one frame of 10 ticks gone
    assert missing_frames([*range(0, 300, 10), *range(300, 900, 30)]) == []  # 10 ticks a frame, then 30: slower
    assert missing_frames([*range(0, 460, 10), 490, 520, 550]) == []  # slower for the last frames: no loss
    steps = np.random.default_rng(0).integers(5, 15, 60)  # variable frame rate: not judged
    assert missing_frames(np.cumsum(steps).tolist()) == []


def test_damaged_videos_are_one_problem_row_each_and_their_other_frames_are_samples(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video.index import index_video
    from lightly_airflow.video.synthetic import make_scene_video

    from .runs import run_once

    source = tmp_path / "bucket"
    source.mkdir()
    make_scene_video(str(source / "good.mp4"), "coffee", 6, seed=1)
    damaged = {"cam.ts": ("libx264", "flip"), "car.mkv": ("libx264", "zero"), "web.webm": ("libvpx", "drop"),
               "old.mpg": ("mpeg2video", "zero")}
    for name, (codec, how) in damaged.items():
        (source / name).write_bytes(_damage(_video(tmp_path / name, codec), how))
    infos = {name: index_video(str(source / name)) for name in damaged}
    _, _, summary = run_once(f"file://{source}", f"file://{tmp_path / 'pool'}", "run1")
    rows = Datapool(f"file://{tmp_path / 'pool'}").read().to_pylist()
    problems = pq.read_table(summary.problems_uri.removeprefix("file://")).to_pylist()
    for name in damaged:  # no damaged video sinks the shard: each frame is a sample, ok or corrupt with its reason
        frames = [r for r in rows if r[C.VIDEO] == name and r[C.FRAME_INDEX] is not None]
        assert len(frames) == infos[name].n_frames > 0 and {r[C.STATUS] for r in frames} <= {
            C.STATUS_OK, C.STATUS_CORRUPT, C.STATUS_DUPLICATE}  # (the four videos show the same pictures)
        assert all(r[C.STATUS_REASON] for r in frames if r[C.STATUS] != C.STATUS_OK)
        mine = [p["reason"] for p in problems if p["key"] == name]
        assert len(mine) == 1 and "Fix: upload an undamaged copy" in mine[0], (name, problems)

    cam = sorted((r for r in rows if r[C.VIDEO] == "cam.ts" and r[C.FRAME_INDEX] is not None),
                 key=lambda r: r[C.FRAME_INDEX])
    assert len(cam) == N - 1 and sum(r[C.STATUS] == C.STATUS_OK for r in cam) > N // 2
    steps = np.diff([r[C.FRAME_SECONDS] for r in cam])
    assert steps.max() == pytest.approx(2 / RATE, abs=1e-6)  # the lost frame's place stays empty
    assert "the video is damaged: 1 frame is missing" in [p["reason"] for p in problems if p["key"] == "cam.ts"][0]
    # the run's notes count the frames lost (summary and report)
    lost = {name: info.lost_frames for name, info in infos.items() if info.lost_frames}
    assert lost["cam.ts"] == 1 and len(lost) >= 3, lost
    assert any(n.startswith(f"{sum(lost.values())} frames are missing from {len(lost)} damaged videos (the demuxer "
                            "skipped unreadable data") and "'cam.ts' (1)" in n for n in summary.notes), summary.notes
