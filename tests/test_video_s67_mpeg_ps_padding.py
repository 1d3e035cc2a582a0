"""An MPEG-PS whose damaged end is only the padding of its last sector has lost no frame, and says none.

FFmpeg's ``mpeg``, ``vob`` and ``dvd`` muxers (like DVD recorders) write whole 2,048-byte sectors, one packet of data
each, and end the file with a padding packet (467-1,873 bytes here) after the last, short, video packet. Random bytes
over that padding made the index say "the video is damaged at its end: its last 1,873 bytes … (about 2 frames …)":
a decode of the damaged file gives every frame. Damage that reaches the video's packets is still estimated."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from lightly_airflow.video.index import index_video
from lightly_airflow.video.synthetic import _encode, scene, scene_frames

N = 120


def _decoded(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


@pytest.fixture(scope="module", params=["mpeg", "vob", "dvd"])
def whole(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp(request.param) / f"clip-{request.param}.mpg"
    pictures = (av.VideoFrame.from_ndarray(a, format="rgb24") for a in scene_frames(scene("astronaut"), N, (160, 120),
                                                                                    seed=1, pan=0.3))
    _encode(str(path), request.param, "mpeg2video", {"g": "12", "bf": "2"}, "yuv420p", pictures, rate=25,
            size=(160, 120))
    return path


def _overwrite(whole: Path, at: int, name: str) -> Path:
    data = bytearray(whole.read_bytes())
    data[at:] = np.random.default_rng(7).bytes(len(data) - at)
    path = whole.with_name(name)
    path.write_bytes(bytes(data))
    return path


def test_random_bytes_over_the_last_padding_lose_no_frame_and_say_none(whole: Path) -> None:
    data = whole.read_bytes()
    padding = data.rfind(b"\0\0\1\xbe")
    assert len(data) % 2048 == 0 and len(data) - 2048 < padding  # (the padding of the last sector)
    path = _overwrite(whole, padding, "padding.mpg")
    assert _decoded(path) == N  # (the truth: no frame is lost)
    info = index_video(str(path))
    # before: "the video is damaged at its end: its last 1,873 bytes … (about 2 frames …)", estimated_lost_frames 1-5
    assert (info.n_frames, info.problem, info.estimated_lost_frames, info.lost_frames) == (N, None, 0, 0)


def test_damage_that_reaches_the_video_packets_is_still_estimated(whole: Path) -> None:
    size = whole.stat().st_size
    path = _overwrite(whole, size - 3 * 2048 - 100, "frames.mpg")
    lost = N - _decoded(path)
    info = index_video(str(path))
    assert lost > 0 and info.n_frames < N
    assert (info.problem or "").startswith("the video is damaged") and info.estimated_lost_frames > 0
