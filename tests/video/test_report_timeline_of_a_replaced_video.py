"""The report's video timeline ("Videos: frames selected now and before") of a video replaced under its name by a
shorter recording: the former version's picks are no frames of the new one, so they are not drawn as "selected
before" on its line. Before, they were: at 0.29-0.46 s on the line of a new version that ends at 0.29 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lightly_airflow.video.synthetic import make_scene_video

from .runs import run_once

CONFIG = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_the_former_version_s_picks_are_not_drawn_on_a_replaced_video_s_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    source, pool_dir = tmp_path / "bucket", tmp_path / "pool"
    make_scene_video(str(source / "clip.mp4"), "coffee", 12, seed=1)  # 12 frames at 24 fps: 0-0.46 s
    _, _, s1 = run_once(f"file://{source}", f"file://{pool_dir}", "run1", config=CONFIG)
    assert s1.selected == 4

    drawn: list[tuple[str, list[float]]] = []
    scatter = Axes.scatter

    def recording(self: Axes, x: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append((str(kwargs.get("marker")), [float(v) for v in x]))
        return scatter(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", recording)
    make_scene_video(str(source / "clip.mp4"), "rocket", 8, seed=2)  # replaced: 8 frames, 0-0.29 s
    _, _, s2 = run_once(f"file://{source}", f"file://{pool_dir}", "run2", config=CONFIG)
    assert s2.processed == 8 and s2.pool_selected_before == 4
    timeline = [(marker, xs) for marker, xs in drawn if marker in ("|", "o", "v")]
    frames = next(xs for marker, xs in timeline if marker == "|")
    assert len(frames) == 8 and max(frames) < 0.3  # the new version's frames
    assert [marker for marker, _ in timeline].count("o") == 1  # its picks of this run
    assert not [xs for marker, xs in timeline if marker == "v"]  # and no picks of the former version
