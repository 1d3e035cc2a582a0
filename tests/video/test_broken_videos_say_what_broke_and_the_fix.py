"""Damaged and cut videos as a bucket holds them: each reason says what broke and ends with the fix.

Before: an MP4 cut inside its index ('moov', written last) was "the file holds no video stream (audio or data
only …)" (FFmpeg opens it as a file without streams); an MP4 whose index was overwritten quoted the garbage as a
box name (control characters and a line break in a one-line reason); a Matroska/WebM whose writer stopped before
the first frame said only "EOFError: End of file; FFmpeg cannot read it as a video"; frames lost to damaged data
("damaged data: InvalidDataError: …") and videos that end early said no fix, so the report's fix column was empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _video(path: Path, codec: str = "libx264", n: int = 24, options: dict[str, str] | None = None,
           container_options: dict[str, str] | None = None) -> Path:
    import av

    with av.open(str(path), "w", options=container_options or {}) as container:
        stream: Any = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = options or {}
        rng = np.random.default_rng(0)
        for _ in range(n):
            picture = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _fix(reason: str) -> str:
    from lightly_airflow.report.problems import split_fix

    return split_fix("embeddings", reason)[1]


def test_an_mp4_cut_inside_its_index_or_with_its_index_overwritten_says_so(tmp_path: Path) -> None:
    from lightly_airflow.video.index import index_video

    data = _video(tmp_path / "whole.mp4").read_bytes()
    moov = data.index(b"moov") - 4
    assert moov > len(data) // 2  # (PyAV's MP4 muxer writes the index last, as cameras and phones do)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: moov + 200])  # an upload that stopped inside the index
    overwritten = tmp_path / "overwritten.mp4"
    junk = bytes(np.random.default_rng(3).integers(0, 256, len(data) - moov, dtype=np.uint8))
    assert not junk[4:8].isascii() or not junk[4:8].decode().isprintable()  # (no box name)
    overwritten.write_bytes(data[:moov] + junk)

    info = index_video(str(cut))
    assert info.n_frames == 0 and info.problem is not None
    assert "index (its 'moov' box) runs past the end of the file" in info.problem, info.problem
    assert f"({moov + 200:,} of {len(data):,} bytes)" in info.problem and "upload the complete file again" in info.problem

    info = index_video(str(overwritten))
    assert info.n_frames == 0 and info.problem is not None
    assert info.problem.isprintable(), info.problem  # one line, no raw bytes
    assert f"the bytes at offset {moov:,} after its 'mdat' box are no box header" in info.problem, info.problem
    assert "upload the complete file again" in info.problem


def test_a_matroska_written_without_a_frame_says_it_ends_before_its_first_frame(tmp_path: Path) -> None:
    import av

    from lightly_airflow.video.index import index_video

    for ext, codec in (("mkv", "ffv1"), ("webm", "libvpx-vp9")):
        path = tmp_path / f"stopped.{ext}"
        with av.open(str(path), "w") as container:
            stream: Any = container.add_stream(codec, rate=24)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            container.start_encoding()
        info = index_video(str(path))
        assert info.n_frames == 0 and info.problem is not None
        assert "the file ends before its first frame" in info.problem, info.problem
        assert "upload the complete file again" in info.problem and "relevant_filenames_file" in info.problem


def test_frames_lost_to_damage_and_a_video_that_ends_early_name_the_fix(tmp_path: Path) -> None:
    import av

    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.index import index_video

    path = _video(tmp_path / "clip.webm", "libvpx-vp9", 40, {"g": "8"})
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe]
    assert len(packets) >= 3
    pos, size = packets[2]  # the third keyframe (frame 16): it and the frames that refer to it are lost
    data = bytearray(path.read_bytes())
    data[pos + 8: pos + size - 8] = bytes(np.random.default_rng(2).integers(0, 256, size - 16, dtype=np.uint8))
    damaged = tmp_path / "damaged.webm"
    damaged.write_bytes(bytes(data))

    info = index_video(str(damaged))
    assert info.n_frames == 40 and info.problem is None
    got = {g.index: g for g in decode_frames(str(damaged), list(enumerate(info.pts)), seekable=info.seekable)}
    lost = sorted(i for i, g in got.items() if g.frame is None)
    assert lost and lost[0] == 16 and all(got[i].frame is not None for i in range(16))  # the frames before are kept
    assert max(lost) < 24  # and those from the next keyframe on
    for i in lost:
        reason = str(got[i].reason)
        assert reason.startswith("damaged data: ") and "upload an undamaged copy" in reason, reason
        assert "ffmpeg -v error -i" in _fix(reason)  # the report's fix column

    # cut short: WebM announces a duration, an MP4 with its index first (``faststart``) a frame count
    fast = _video(tmp_path / "fast.mp4", n=40, container_options={"movflags": "faststart"})
    assert fast.read_bytes().index(b"moov") < fast.read_bytes().index(b"mdat")
    for whole, announced in ((path, "of the 1.67 s its container announces"), (fast, "readable of the 40 its")):
        cut = tmp_path / f"cut-{whole.name}"
        cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
        info = index_video(str(cut))
        assert 0 < info.n_frames < 40 and info.problem is not None and "ends early" in info.problem
        assert announced in info.problem, info.problem
        fix = _fix(info.problem)
        assert fix.startswith("upload the complete file again") and f"its {info.n_frames} readable frames are kept" in fix
