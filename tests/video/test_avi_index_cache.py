"""An AVI's ``idx1`` (every stream's chunks, interleaved) is read once per file version and process, not at every
``decode_frames`` (:func:`lightly_airflow.video.avi._cached_positions`): a two-hour 25 fps AVI with audio has 5.8 MB
of it, read again for each frame exported alone. A replaced video (another etag) is read anew."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .test_core import _CountingReader

RATE = 25


def _long_avi(path: Path, frames: int, grey: int = 0) -> None:
    """``frames`` copies of one all-intra 16x16 MPEG-4 frame, each followed by 40 ms of 8 kHz PCM audio."""
    import av

    with av.open(str(path), "w", format="avi") as out:
        video = out.add_stream("mpeg4", rate=RATE)
        video.width = video.height = 16
        video.pix_fmt, video.gop_size = "yuv420p", 1
        audio = out.add_stream("pcm_s16le", rate=8000)
        audio.layout = "mono"
        image = av.VideoFrame.from_ndarray(np.full((16, 16, 3), grey, np.uint8), format="rgb24")
        picture = bytes([*video.encode(image), *video.encode()][0])
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 320), np.int16), format="s16", layout="mono")
        sound.sample_rate = 8000
        samples = bytes([*audio.encode(sound), *audio.encode()][0])
        for i in range(frames):
            for data, stream, pts, base in ((picture, video, i, Fraction(1, RATE)),
                                            (samples, audio, i * 320, Fraction(1, 8000))):
                packet = av.Packet(data)
                packet.stream, packet.pts, packet.dts, packet.time_base = stream, pts, pts, base
                packet.is_keyframe = True
                out.mux(packet)


class _Counted(_CountingReader):
    """A remote video's file object (:func:`open_video_source`'s), counting the bytes read through it."""

    def __init__(self, source: Any) -> None:
        self._fh, self.read_bytes = source, 0

    @property
    def version(self) -> tuple[Any, ...] | None:
        """The wrapped store file's version, passed on (the AVI index cache's key)."""
        return self._fh.version


def test_an_avis_index_is_read_once_per_version(s3_bucket, tmp_path: Path) -> None:  # noqa: ANN001
    import boto3

    from lightly_airflow.video.avi import chunk_ticks
    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.source import open_video_source

    client = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    frames, index_bytes = 3000, 3000 * 2 * 16
    _long_avi(tmp_path / "a.avi", frames)
    client.upload_file(str(tmp_path / "a.avi"), s3_bucket.name, f"{tmp_path.name}.avi")
    read = []
    for _ in range(3):  # (one frame each time, as a single-frame export)
        with open_video_source(s3_bucket.uri, f"{tmp_path.name}.avi", s3_bucket.credentials) as source:
            counted = _Counted(source)
            got = list(decode_frames(counted, [(1500, 1500)]))
        assert got[0].frame is not None and got[0].reason is None, got[0].reason
        read.append(counted.read_bytes)
    assert read[0] - read[1] >= index_bytes and read[1] == pytest.approx(read[2], rel=0.01), read

    _long_avi(tmp_path / "b.avi", frames // 2, grey=200)  # replaced: a new etag, a new index
    client.upload_file(str(tmp_path / "b.avi"), s3_bucket.name, f"{tmp_path.name}.avi")
    with open_video_source(s3_bucket.uri, f"{tmp_path.name}.avi", s3_bucket.credentials) as source:
        assert len(chunk_ticks(_Counted(source), 0) or {}) == frames // 2
