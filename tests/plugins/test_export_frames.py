"""The UI's download of video frames points at what the CLI's export points at: a selected frame's PNG under
``.lightly/frames/`` (a frame is no file of the datasource), with its video, frame index, pts and seconds in Label
Studio's ``meta``. Before, the UI's download gave ``<datasource>/<frame name>``, a file that does not exist."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records


def test_the_uis_label_studio_download_of_frames_names_their_pngs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from video.runs import run_once

    from lightly_airflow.video.synthetic import make_scene_video

    src, pool = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "street.mp4"), "astronaut", 12, seed=1)
    run_once(f"file://{src}", f"file://{pool}", "r1", config={
        "n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]})
    cli = {r.key: r for r in export_records(Datapool(f"file://{pool}"), C.INITIAL_TAG)}
    assert len(cli) == 3 and all("/.lightly/frames/" in r.uri for r in cli.values())
    with ui_client(monkeypatch, {"v": {"uri": f"file://{pool}"}}) as client:
        tasks = client.get(f"/lightly/pools/v/export?format=label-studio&tag={quote(C.INITIAL_TAG)}").json()
    assert len(tasks) == 3
    for task in tasks:
        meta = task["meta"]
        mine = cli[meta["key"]]
        assert meta["uri"] == mine.uri and Path(mine.uri.removeprefix("file://")).is_file()
        assert meta["video"] == "street.mp4" and meta["frame_index"] == mine.frame_index is not None
        assert meta["frame_seconds"] == pytest.approx(mine.frame_seconds) and meta["frame_pts"] == mine.frame_pts
