"""The frames an MPEG-PS (.mpg, .mpeg; a DVD's .vob is one too) lost at a damaged end are an estimate from its bytes:
checked against a decode of the real frames, said to be an estimate, and kept apart from the exact counts; and a
small damaged end is no longer silent.

Before: an unreadable end of 2,048 bytes or fewer passed as healthy (a 120-frame .mpg whose last 2 kB were random
bytes lost 9 frames, listed as a shorter healthy video), and the estimate was added to ``lost_frames``, the count of
frames known missing from the timestamps, which the run's notes give as "N frames are missing", unsaid."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from lightly_airflow.video.index import index_video
from lightly_airflow.video.synthetic import _encode, scene, scene_frames


def _decoded(path: Path) -> int:
    """Frames FFmpeg decodes from ``path`` (the truth the index's figures are checked against)."""
    count = 0
    with av.open(str(path)) as container:
        for _ in container.decode(container.streams.video[0]):
            count += 1
    return count


def _damaged(tmp_path: Path, n: int, gop: int, size: tuple[int, int], keep: float, how: str, photo: str,
             pan: float) -> tuple[Path, int]:
    """An MPEG-2 program stream of ``n`` frames whose bytes after ``keep`` of them are random (or zeros), and the
    frames really lost: those a decode of the whole file gives minus those of the damaged one."""
    whole = tmp_path / "whole.mpg"
    pictures = (av.VideoFrame.from_ndarray(a, format="rgb24") for a in scene_frames(scene(photo), n, size, seed=1, pan=pan))
    _encode(str(whole), "mpeg", "mpeg2video", {"g": str(gop), "bf": "2"}, "yuv420p", pictures, rate=25, size=size)
    data = bytearray(whole.read_bytes())
    at = int(len(data) * keep)
    data[at:] = np.random.default_rng(n).bytes(len(data) - at) if how == "random" else bytes(len(data) - at)
    path = tmp_path / "damaged.mpg"
    path.write_bytes(bytes(data))
    assert _decoded(whole) == n
    return path, n - _decoded(path)


def test_a_small_damaged_end_is_not_passed_as_a_healthy_video(tmp_path: Path) -> None:
    path, lost = _damaged(tmp_path, 120, 12, (160, 120), 0.9, "random", "astronaut", 0.3)
    info = index_video(str(path))
    assert lost >= 5 and info.n_frames == 120 - lost
    assert info.problem and info.problem.startswith("the video is damaged at its end: its last 2,048 bytes"), info.problem
    assert "an estimate from the bytes" in info.problem and info.estimated_lost_frames > 0 and info.lost_frames == 0


@pytest.mark.parametrize("case", [
    (120, 12, (160, 120), 0.7, "random", "astronaut", 0.3),
    (240, 30, (320, 240), 0.8, "zeros", "coffee", 0.3),
    (400, 50, (160, 120), 0.85, "random", "chelsea", 0.5),
])
def test_the_estimate_of_the_frames_lost_is_checked_against_a_decode(tmp_path: Path, case: tuple) -> None:
    from lightly_airflow.video.listing import _video_notes

    path, lost = _damaged(tmp_path, *case)
    info = index_video(str(path))
    print(f"{case}: {lost} frames lost (decode), estimated {info.estimated_lost_frames}")
    assert lost > 0 and lost / 2 <= info.estimated_lost_frames <= 2 * lost
    assert info.lost_frames == 0 and info.n_frames == case[0] - lost  # (the exact counts stay exact)
    notes = _video_notes([], [], [], estimated=[("damaged.mpg", info.estimated_lost_frames)])
    assert notes == [f"about {info.estimated_lost_frames:,} frames are missing at the damaged ends of 1 MPEG-PS "
                     "video: an estimate from their unreadable bytes (a program stream has no frame count; each "
                     f"video's problem row says so), e.g. 'damaged.mpg' (about {info.estimated_lost_frames:,})"]
