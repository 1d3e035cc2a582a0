from __future__ import annotations

import pytest

from lightly_airflow.video.synthetic import CODECS, make_scene_video


@pytest.fixture(scope="session")
def video_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One short scene video per supported container (31 frames: padding width 2)."""
    folder = tmp_path_factory.mktemp("videos")
    out = {}
    for i, ext in enumerate(CODECS):
        path = str(folder / f"clip.{ext}")
        make_scene_video(path, "astronaut" if i % 2 else "coffee", 31, seed=i)
        out[ext] = path
    return out
