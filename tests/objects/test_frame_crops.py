"""Crops of a video frame's objects (the crop export and the report's figure) are cut from the frame's picture as
the UI shows it (``video.export.frame_png``): the run's PNG when it shows this video version, else the frame
decoded from its video."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.objects.crops import crop_relpath, write_selected_crops
from lightly_airflow.objects.report import objects_png
from lightly_airflow.objects.run import video_frames
from lightly_airflow.objects.spec import ObjectsSpec
from lightly_airflow.video import frame_name, index_video
from lightly_airflow.video.export import write_selected_frames
from lightly_airflow.video.synthetic import scene, scene_frames, write_video

TASK = "cars"


def _decoded(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(index)


def test_a_frame_s_crop_is_served_from_its_video_when_its_png_is_missing(tmp_path: Path, caplog) -> None:
    """The crop path read the run's frame PNG only: a frame whose PNG is missing (its write failed, it was
    removed) got no crop file and no report figure, while the UI's picture of the same frame decoded it. Both
    paths are one function now; the crop's pixels are PyAV's decode of the frame, also where a PNG of a replaced
    video's former version is left (it was cropped instead)."""
    src = tmp_path / "src"
    src.mkdir()
    video = src / "clip.mp4"
    write_video(str(video), scene_frames(scene("coffee"), 10, (160, 120), seed=1), size=(160, 120))
    info = index_video(str(video))
    key = frame_name("clip.mp4", 4, info.n_frames)
    rows = pa.table({C.KEY: [key], C.ETAG: ["e1"], C.VIDEO: ["clip.mp4"], C.FRAME_INDEX: pa.array([4], pa.int64()),
                     C.FRAME_PTS: pa.array([info.pts[4]], pa.int64())})
    box = [20, 30, 64, 48]
    objects = pa.table({C.PARENT_KEY: [key], C.OBJECT_TASK: [TASK], C.OBJECT_INDEX: pa.array([0], pa.int64()),
                        C.OBJECT_CROP_BOX: pa.array([box], pa.list_(pa.int64())), C.OBJECT_SELECTED: [True]})
    expected = _decoded(video, 4)[30:78, 20:84]
    frames = video_frames(rows)
    assert set(frames) == {key}
    assert not (src / ".lightly" / "frames" / key).exists()  # no PNG: never written

    caplog.set_level("WARNING", logger="lightly_airflow.video.export")
    counts = write_selected_crops(objects, ObjectsSpec(tasks=(TASK,)), datasource_uri=f"file://{src}",
                                  lightly_uri=f"file://{src}", frames=frames)
    assert counts["written"] == 1 and counts["failed"] == 0  # was 0 written, 1 failed
    # A selected frame's PNG is written by its run: decoding instead is no silent fallback.
    assert any("of a selected frame is missing: decoding the frame" in r.getMessage() for r in caplog.records)
    with Image.open(src / ".lightly" / crop_relpath(key, TASK, 0)) as crop:
        np.testing.assert_array_equal(np.asarray(crop.convert("RGB")), expected)
    figure = objects_png(objects, [key], f"file://{src}", lightly_uri=f"file://{src}", frames=frames)
    assert figure is not None and Image.open(io.BytesIO(figure)).width > 64  # was None: no picture to draw

    # With the run's PNG (the usual case) the crop is the same.
    assert write_selected_frames(rows, datasource_uri=f"file://{src}")["written"] == 1
    (src / ".lightly" / crop_relpath(key, TASK, 0)).unlink()
    assert write_selected_crops(objects, ObjectsSpec(tasks=(TASK,)), datasource_uri=f"file://{src}",
                                lightly_uri=f"file://{src}", frames=frames)["written"] == 1
    with Image.open(src / ".lightly" / crop_relpath(key, TASK, 0)) as crop:
        np.testing.assert_array_equal(np.asarray(crop.convert("RGB")), expected)

    # A PNG left by a former version of the video (replaced under the same name) shows content that is gone: the
    # crop comes from the video as it is now (the old path cropped the stale PNG's pixels).
    from PIL.PngImagePlugin import PngInfo

    from lightly_airflow.video.export import ETAG_CHUNK

    info_chunk = PngInfo()
    info_chunk.add_text(ETAG_CHUNK, "former-etag")
    Image.new("RGB", (160, 120), (0, 0, 0)).save(src / ".lightly" / "frames" / key, pnginfo=info_chunk)
    (src / ".lightly" / crop_relpath(key, TASK, 0)).unlink()
    assert write_selected_crops(objects, ObjectsSpec(tasks=(TASK,)), datasource_uri=f"file://{src}",
                                lightly_uri=f"file://{src}", frames=frames)["written"] == 1
    with Image.open(src / ".lightly" / crop_relpath(key, TASK, 0)) as crop:
        np.testing.assert_array_equal(np.asarray(crop.convert("RGB")), expected)
    assert any("shows another version of 'clip.mp4': decoding the frame" in r.getMessage() for r in caplog.records)
