"""The listing reads only the boxes and the ``moov`` index of a remote MP4/MOV of AV1, MPEG-2, DNxHD, H.263 or Cinepak,
as it did for H.264/HEVC/MPEG-4/MJPEG/VP9 (``index.SAMPLE_TABLE_CODECS``); they were read whole. Each is checked on a
real file larger than FFmpeg's probe: the header-only index equals a full demux's, and every frame decoded by its
timestamps equals a plain decode. MPEG-1 video stays read whole: FFmpeg parses its MP4 packets, and zeroed payloads
give a wrong index (checked here too)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from lightly_airflow.video import index as I
from lightly_airflow.video.decode import decode_frames
from lightly_airflow.video.synthetic import _encode, scene, scene_frames

CODECS = {
    "av1.mp4": ("mp4", "libsvtav1", {"g": "12"}, "yuv420p", (320, 240), 96),
    "mpeg2.mov": ("mov", "mpeg2video", {"g": "12", "bf": "2"}, "yuv420p", (320, 240), 96),
    "mpeg2.mp4": ("mp4", "mpeg2video", {"g": "12", "bf": "2"}, "yuv420p", (320, 240), 96),
    "dnxhd.mov": ("mov", "dnxhd", {"b": "36M"}, "yuv422p", (1920, 1080), 12),
    "h263.mov": ("mov", "h263", {"g": "12"}, "yuv420p", (352, 288), 96),
    "cinepak.mov": ("mov", "cinepak", {}, "rgb24", (320, 240), 8),
    "mpeg1.mp4": ("mp4", "mpeg1video", {"g": "12", "bf": "2"}, "yuv420p", (320, 240), 96),
}


class _Fetched(io.FileIO):
    """A local file read as a file object (the remote case's reads), counting the bytes read."""

    fetched = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.fetched += len(data)
        return data


def _write(path: Path, name: str) -> Path:
    fmt, codec, options, pix, size, n = CODECS[name]
    rng = np.random.default_rng(0)

    def pictures() -> Iterator[av.VideoFrame]:  # (noisy frames: the file is larger than FFmpeg's probe reads)
        for a in scene_frames(scene("astronaut"), n, size, seed=1):
            a = a.copy()
            a[::3, ::3] = rng.integers(0, 255, a[::3, ::3].shape, dtype=np.uint8)
            yield av.VideoFrame.from_ndarray(a, format="rgb24")

    _encode(str(path), fmt, codec, options, pix, pictures(), rate=24, size=size)
    return path


@pytest.mark.parametrize("name", [n for n in CODECS if n != "mpeg1.mp4"])
def test_header_reads_index_and_decode_these_codecs_as_a_full_read(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, name)
    full = I.index_video(str(path))
    assert I.canonical_codec(full.codec) in I.SAMPLE_TABLE_CODECS and full.n_frames == CODECS[name][5]
    with _Fetched(str(path)) as fh:
        got = I.index_video(fh)
        fetched = fh.fetched
    assert (got.n_frames, got.pts, got.seekable, got.problem) == (full.n_frames, full.pts, full.seekable, full.problem)
    # before: read_whole "its codec's packets are split or joined by FFmpeg's parser", the whole file fetched
    assert got.read_whole is None and fetched < path.stat().st_size / 2, (got.read_whole, fetched)
    with av.open(str(path)) as container:
        plain = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    wanted = [(i, got.pts[i]) for i in range(got.n_frames)]
    some = [wanted[i] for i in (1, 5, len(wanted) // 2, len(wanted) - 1)]
    for chosen in (wanted, some):  # (every frame in one pass; a few by their own seeks)
        decoded = {d.index: d.frame for d in decode_frames(str(path), chosen)}
        assert all(np.array_equal(decoded[i].to_ndarray(format="rgb24"), plain[i]) for i, _ in chosen)


def test_mpeg1_video_in_mp4_stays_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "mpeg1.mp4", "mpeg1.mp4")
    full = I.index_video(str(path))
    with _Fetched(str(path)) as fh:
        got = I.index_video(fh)
    assert got.read_whole == I.READ_WHOLE["codec"] and (got.n_frames, got.pts) == (full.n_frames, full.pts)
    monkeypatch.setattr(I, "SAMPLE_TABLE_CODECS", I.SAMPLE_TABLE_CODECS | {"mpeg1video"})
    with _Fetched(str(path)) as fh:
        wrong = I.index_video(fh)  # (read by its header only, FFmpeg's parser joins the zeroed packets)
    assert wrong.n_frames < full.n_frames
