"""An MPEG-PS (.mpg, .vob) whose last bytes are no longer readable (damaged up to the end, or zeros where a copy
stopped writing) says so and counts about how many frames it lost.

Before: an MPEG-PS announces no frame count or duration (its duration is a bitrate guess, not used), so a 48-frame
.mpg whose last 4 kB were random bytes listed 40 frames and no problem: a healthy shorter video. Damage in the
middle is found by the frames' own timestamps (``test_damaged_videos_count_their_lost_frames``).

And a healthy MPEG-PS whose small frames share PES packets is no damaged one: FFmpeg stamps a frame or two with the
next one's time there (one repeat and one hole), and a 48-frame VOB (a healthy 1,000-frame .mpg of 1.3 kB frames
too) listed 47 frames and "the video is damaged: 1 frame is missing; 1 packet repeating the timestamps".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

N, RATE, W, H = 48, 24, 64, 48


def _mpg(path: Path, fmt: str | None = None) -> bytes:
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream: Any = container.add_stream("mpeg2video", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(N):
            picture = np.full((H, W, 3), 5 * i, np.uint8)
            picture[:, W // 2 :] = rng.integers(0, 256, (H, W // 2, 3))
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


@pytest.mark.parametrize("how", ["random", "zeros"])
def test_an_mpeg_ps_damaged_up_to_its_end_counts_its_lost_frames(tmp_path: Path, how: str) -> None:
    from lightly_airflow.video.index import index_video

    data = bytearray(_mpg(tmp_path / "whole.mpg"))
    assert index_video(str(tmp_path / "whole.mpg")).problem is None
    cut = len(data) * 4 // 5  # the last fifth: random bytes (damaged) or zeros (a copy that stopped writing)
    tail = len(data) - cut
    data[cut:] = np.random.default_rng(1).bytes(tail) if how == "random" else bytes(tail)
    path = tmp_path / f"{how}.mpg"
    path.write_bytes(bytes(data))

    with path.open("rb") as fh:
        info = index_video(fh)
    assert 0 < info.n_frames < N and info.problem is not None
    said = re.match(r"the video is damaged at its end: its last ([\d,]+) bytes are no MPEG program stream data the "
                    r"demuxer could read \(about (\d+) frames", info.problem)
    assert said, info.problem
    assert int(said[1].replace(",", "")) >= tail - 2048 and int(said[2]) == info.estimated_lost_frames
    assert (N - info.n_frames) / 2 <= info.estimated_lost_frames <= 2 * (N - info.n_frames)  # (from the bytes)
    assert info.lost_frames == 0 and "an estimate from the bytes" in info.problem
    assert "Fix: upload an undamaged copy" in info.problem and f"its {info.n_frames}" not in info.problem


@pytest.mark.parametrize("fmt", [None, "vob", "dvd"])
def test_a_healthy_mpeg_ps_ends_where_its_data_ends(tmp_path: Path, fmt: str | None) -> None:
    from lightly_airflow.video.index import index_video

    path = tmp_path / "whole.mpg"
    data = _mpg(path, fmt)
    info = index_video(str(path))
    assert info.n_frames == N and info.problem is None and info.lost_frames == 0, info.problem
    cut = tmp_path / "cut.mpg"  # cut short (inside a packet, or between two): no damaged end
    for size in (len(data) * 3 // 4, len(data) // 2048 * 2048 - 2048):
        cut.write_bytes(data[:size])
        assert "damaged at its end" not in (index_video(str(cut)).problem or "")
