"""Frames spread over one GOP (a selection's frame PNGs, a shard's frames without reusable values) are decoded in
one forward pass: each run of consecutive wanted frames used to seek back to the keyframe before it and decode
again from there (every 5th frame of a 2-minute 640×360 clip with keyframes 250 frames apart: 20× PyAV)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from lightly_airflow.video.decode import decode_frames
from lightly_airflow.video.index import index_video
from lightly_airflow.video.synthetic import scene, scene_frames

from .test_core import _CountingReader, full_decode


def _video(path: Path, n: int, gop: int, fmt: str) -> None:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2", "preset": "veryfast"}
        noise = np.random.default_rng(0)  # (grain: each frame's bytes, so a decode from the keyframe again shows)
        for rgb in scene_frames(scene("astronaut"), n, (160, 120), pan=0.3):
            grainy = np.clip(rgb + noise.integers(-24, 24, rgb.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(grainy, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _decode(path: Path, indices: list[int]) -> tuple[dict[int, np.ndarray], float]:
    """The frames ``decode_frames`` yields for ``indices`` and the bytes it read, in file sizes."""
    info = index_video(str(path))
    reader = _CountingReader(str(path))
    try:
        got = {g.index: g.frame.to_ndarray(format="rgb24") for g in decode_frames(reader, [(i, info.pts[i]) for i in indices])
               if g.frame is not None}
    finally:
        reader.close()
    return got, reader.read_bytes / path.stat().st_size


def test_frames_spread_over_one_gop_are_decoded_in_one_pass(tmp_path: Path) -> None:
    for ext, fmt in (("mp4", "mp4"), ("mkv", "matroska")):  # (an MKV lists no keyframes before its cues are read)
        path = tmp_path / f"one-gop.{ext}"
        _video(path, 96, 200, fmt)
        expected = full_decode(str(path))
        # close frames (as the MKV's, whose keyframes are unknown before its cues are read), and far apart in one
        # GOP of the MP4, whose index lists its keyframes
        for wanted in [list(range(10, 96, 3))] + [[5, 45, 85]] * (ext == "mp4"):
            got, read = _decode(path, wanted)
            assert sorted(got) == wanted, ext
            assert all(np.array_equal(got[i], expected[i][1]) for i in wanted), ext
            # Was 19.9x (MP4) and 48.8x (MKV): each run decoded again from frame 0. (Seeking to one frame of this MKV
            # alone reads 1.4x its size: the demuxer looks for its cues.)
            assert read <= (1.5 if ext == "mp4" else 2.5), (ext, wanted, read)


def test_frames_with_keyframes_between_them_still_seek(tmp_path: Path) -> None:
    path = tmp_path / "gops.mp4"
    _video(path, 240, 24, "mp4")
    expected = full_decode(str(path))
    wanted = [3, 4, 200, 230]  # keyframes at 0, 24, …, 192, 216: the frames between are skipped
    got, read = _decode(path, wanted)
    assert sorted(got) == wanted and all(np.array_equal(got[i], expected[i][1]) for i in wanted)
    assert read < 0.5, read
