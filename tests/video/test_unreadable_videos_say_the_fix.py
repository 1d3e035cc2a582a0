"""A video without a single decodable frame is one ``corrupt`` row whose reason names the fix, as a 0-byte file's
and a cut MP4's do: junk under ``.mp4``, an MP4 written without a frame (PyAV/FFmpeg drop the empty track: no video
stream at all) and an AVI whose video stream holds no frame. Before, the reasons were "cannot open the video:
InvalidDataError: …", "the file holds no video stream" and "the video has no frames", with nothing to do about it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _empty_video(path: Path, codec: str) -> None:
    """A video file whose writer stopped before its first frame (the header written, no packet)."""
    import av

    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()


def test_videos_without_a_frame_say_why_and_the_fix(tmp_path: Path) -> None:
    import av

    from lightly_airflow.video.index import index_video

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(5000))
    no_stream = tmp_path / "no-stream.mp4"
    _empty_video(no_stream, "h264")
    no_frames = tmp_path / "no-frames.avi"
    _empty_video(no_frames, "mpeg4")
    with av.open(str(no_stream)) as c:
        assert not c.streams.video  # (what FFmpeg's MP4 muxer writes for a track without samples)
    with av.open(str(no_frames)) as c:
        assert len(c.streams.video) == 1 and not any(p.size for p in c.demux())

    infos = {p.name: index_video(str(p)) for p in (junk, no_stream, no_frames)}
    assert all(info.n_frames == 0 for info in infos.values())
    reasons = {name: str(info.problem) for name, info in infos.items()}
    assert reasons["junk.mp4"].startswith("cannot open the video: InvalidDataError")
    assert "check it with ffprobe" in reasons["junk.mp4"]
    assert reasons["no-stream.mp4"].startswith("the file holds no video stream")
    assert reasons["no-frames.avi"].startswith("the video has no frames")
    for reason in reasons.values():
        assert "upload" in reason and "relevant_filenames_file" in reason, reason
