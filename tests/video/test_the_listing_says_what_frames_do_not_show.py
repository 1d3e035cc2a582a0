"""What a video's frames do not show is said by the listing, per video, and in the run's notes (summary, report; before,
both were silent):

- a video with an alpha channel (ProRes 4444, PNG in MOV, FFV1 ``yuva``) is read as Lightly's VideoDataset reads it, as
  RGB without its alpha;
- a still image under a video extension (a JPEG named ``.mp4``) is one frame of a "video".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C


def _video(path: Path, codec: str, pix_fmt: str) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 32, pix_fmt
        picture = np.zeros((32, 32, 4), np.uint8)
        picture[8:24, 8:24] = (200, 40, 40, 255)  # an opaque square on transparent black
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgba")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_video_with_an_alpha_channel_is_logged_by_the_listing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from lightly_airflow.video.index import index_video
    from lightly_airflow.video.listing import expand_videos

    _video(tmp_path / "logo.mov", "png", "rgba")
    _video(tmp_path / "keyed.mkv", "ffv1", "yuva420p")
    _video(tmp_path / "plain.mkv", "ffv1", "yuv420p")
    assert [index_video(str(tmp_path / n)).alpha for n in ("logo.mov", "keyed.mkv", "plain.mkv")] == [True, True, False]

    keys = ["keyed.mkv", "logo.mov", "plain.mkv"]
    files = pa.table({C.KEY: keys, C.SIZE: [1, 1, 1], C.ETAG: ["a", "b", "c"],
                      C.MTIME: pa.array([None] * 3, pa.timestamp("us", "UTC"))})
    notes: list[str] = []
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.video.listing"):
        out = expand_videos(files, str(tmp_path), notes=notes)
    assert out.num_rows == 6  # every frame is still a sample
    assert notes == ["2 videos have an alpha channel (transparency): their frames are read without it, as Lightly's "
                     "VideoDataset reads them (a transparent area shows the colour stored under it), e.g. 'keyed.mkv', "
                     "'logo.mov'"]  # (the run's notes: summary and report)
    said = [r.getMessage() for r in caplog.records if "alpha channel" in r.getMessage()]
    assert sorted(m.split("'")[1] for m in said) == ["keyed.mkv", "logo.mov"], said
    assert all("read without it, as Lightly's VideoDataset reads them" in m for m in said)


def test_a_still_image_named_as_a_video_is_logged_by_the_listing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from PIL import Image

    from lightly_airflow.video.listing import expand_videos

    Image.new("RGB", (32, 24), (200, 40, 40)).save(tmp_path / "photo.mp4", format="JPEG")
    _video(tmp_path / "plain.mkv", "ffv1", "yuv420p")
    files = pa.table({C.KEY: ["photo.mp4", "plain.mkv"], C.SIZE: [1, 1], C.ETAG: ["a", "b"],
                      C.MTIME: pa.array([None] * 2, pa.timestamp("us", "UTC"))})
    notes: list[str] = []
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.video.listing"):
        out = expand_videos(files, str(tmp_path), notes=notes)
    assert len(notes) == 1 and notes[0].startswith("1 files with a video extension are still images") and (
        notes[0].endswith("e.g. 'photo.mp4'")), notes
    assert "photo-0-mp4.png" in out.column(C.KEY).to_pylist()  # (still a sample, as PyAV reads it)
    said = [r.getMessage() for r in caplog.records if "still image" in r.getMessage()]
    assert len(said) == 1 and "'photo.mp4'" in said[0] and "jpeg_pipe" in said[0], said
    assert "give it its image extension" in said[0]
