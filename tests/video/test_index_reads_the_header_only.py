"""Indexing a remote MP4/MOV reads its header and index (the ``moov`` box), not its frames; a container that keeps
each frame's time with the frame's data (Matroska) is still read whole, and says so.

Before: the listing's demux pass fetched every byte of every new video from the store (a 4 MB MP4 on the S3
emulator: 4.2 MB fetched), although FFmpeg times an MP4's packets from its sample table alone."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from lightly_airflow.video import index as I
from lightly_airflow.video.synthetic import _encode, cut_without_reencoding, scene, scene_frames, truncate


def _noisy_video(path: Path, fmt: str, codec: str = "libx264", n: int = 96, size: tuple[int, int] = (320, 240),
                 options: dict[str, str] | None = None, container_options: dict[str, str] | None = None) -> None:
    """A panning scene with grain on a quarter of its pixels (a few MB: frames that do not compress away)."""
    rng = np.random.default_rng(7)

    def pictures():  # noqa: ANN202
        for a in scene_frames(scene("astronaut"), n, size, seed=1):
            a = a.copy()
            a[::2, ::2] = rng.integers(0, 255, a[::2, ::2].shape, dtype=np.uint8)
            yield av.VideoFrame.from_ndarray(a, format="rgb24")

    opts = options if options is not None else {"g": "24", "bf": "2", "preset": "ultrafast", "crf": "16"}
    if container_options:
        with av.open(str(path), "w", format=fmt, options=container_options) as out:
            stream = out.add_stream(codec, rate=24)
            stream.width, stream.height, stream.pix_fmt, stream.options = size[0], size[1], "yuv420p", opts
            for frame in pictures():
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return
    _encode(str(path), fmt, codec, opts, "yuv420p", pictures(), rate=24, size=size)


def test_indexing_a_remote_mp4_fetches_its_index_not_its_frames(s3_bucket, tmp_path: Path, monkeypatch) -> None:
    import s3fs

    from lightly_airflow.storage import filesystem
    from lightly_airflow.video.listing import index_videos

    fetched: list[int] = []
    original = s3fs.core.S3File._fetch_range

    def counting(self, start, end):  # noqa: ANN001, ANN202
        data = original(self, start, end)
        fetched.append(len(data))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    fs, _ = filesystem(s3_bucket.uri, s3_bucket.credentials)
    videos = {"moov-last.mp4": {}, "moov-first.mp4": {"movflags": "faststart"}}
    for name, flags in videos.items():
        _noisy_video(tmp_path / name, "mp4", container_options=flags)
    _noisy_video(tmp_path / "same.mkv", "matroska")
    for p in tmp_path.iterdir():
        fs.put_file(str(p), f"{s3_bucket.name}/v/{p.name}")
    for name in (*videos, "same.mkv"):
        size = (tmp_path / name).stat().st_size
        fetched.clear()
        info = index_videos(f"{s3_bucket.uri}/v", [name], s3_bucket.credentials, workers=1)[name]
        local = I.index_video(str(tmp_path / name))
        print(f"{name}: {sum(fetched):,} bytes fetched in {len(fetched)} ranged reads of a {size:,}-byte video")
        assert size > 2_000_000 and info.problem is None and local.problem is None
        assert info.n_frames == local.n_frames == 96 and info.pts == local.pts and info.seekable
        if name.endswith(".mp4"):
            assert sum(fetched) < size / 4 and info.read_whole is None
        else:  # (Matroska: each block's time is in its header, between the frames: read whole, and said so)
            assert sum(fetched) >= size and info.read_whole == I.READ_WHOLE["container"]
            assert len(fetched) < 2 + size / (4 << 20) * 2  # (read in the decode's 4 MiB blocks, not 256 kB ones)


class _FileObject(io.FileIO):
    """A local file as a file object (the remote case's reads, without the store)."""


CODECS = {
    "h264-bframes.mp4": ("mp4", "libx264", {"g": "12", "bf": "3", "preset": "veryfast"}),
    "h264.mov": ("mov", "libx264", {"g": "12", "bf": "2", "preset": "veryfast"}),
    "hevc.mp4": ("mp4", "libx265", {"g": "12", "x265-params": "log-level=error"}),
    "mpeg4.mp4": ("mp4", "mpeg4", {"g": "12", "bf": "2"}),
    "mjpeg.mov": ("mov", "mjpeg", {}),
    "vp9.mp4": ("mp4", "libvpx-vp9", {"g": "12"}),
    "mpeg2.mp4": ("mp4", "mpeg2video", {"g": "12", "bf": "2"}),  # (session 67: header only, tests/test_video_s67_codecs.py)
    "mpeg1.mp4": ("mp4", "mpeg1video", {"g": "12", "bf": "2"}),  # (FFmpeg parses it: read whole)
}


@pytest.mark.parametrize("name", sorted(CODECS))
def test_header_reads_give_the_index_of_a_full_demux(tmp_path: Path, name: str) -> None:
    """The index of an MP4/MOV read through a file object (header reads) equals the one of the full demux of its path,
    for every codec: frame count, every pts, seekable, problem."""
    fmt, codec, options = CODECS[name]
    path = tmp_path / name
    pix = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    _encode(str(path), fmt, codec, options, pix, (av.VideoFrame.from_ndarray(a, format="rgb24") for a in
            scene_frames(scene("coffee"), 40, (160, 120), seed=3)), rate=24, size=(160, 120))
    _same_index(path, header_only=codec != "mpeg1video")


def test_header_reads_of_a_cut_clip_and_of_a_file_cut_short(tmp_path: Path) -> None:
    """An edit-listed clip (packets outside the edit list are no frames) and an MP4 with its index first cut inside
    its frames (the demuxer breaks where the bytes end) are indexed as a full demux indexes them."""
    _noisy_video(tmp_path / "whole.mp4", "mp4", n=48, size=(160, 120), container_options={"movflags": "faststart"})
    cut_without_reencoding(str(tmp_path / "whole.mp4"), str(tmp_path / "cut.mp4"), 0.7)
    _same_index(tmp_path / "cut.mp4", header_only=True)
    truncate(str(tmp_path / "whole.mp4"), 0.6)
    info = _same_index(tmp_path / "whole.mp4", header_only=True)
    assert info.problem and "ends early" in info.problem and 0 < info.n_frames < 48


def _same_index(path: Path, *, header_only: bool) -> I.VideoIndex:
    full = I.index_video(str(path))
    with _FileObject(str(path)) as fh:
        reads = I._header_reads(fh)
        assert reads is not None
        fh.seek(0)
        got = I.index_video(fh)
    assert (got.n_frames, got.pts, got.seekable, got.problem) == (full.n_frames, full.pts, full.seekable, full.problem)
    assert (got.read_whole is None) == header_only
    return got


def test_the_listing_counts_remote_videos_read_whole(tmp_path: Path) -> None:
    """A remote video whose index pass read it whole is counted in the run's notes with the reason."""
    from lightly_airflow.video.listing import _video_notes

    notes = _video_notes([], [], [], [("a.mkv", 3_000_000, I.READ_WHOLE["container"])])
    assert len(notes) == 1 and "1 remote video" in notes[0] and "3.0 MB" in notes[0] and "'a.mkv'" in notes[0]
