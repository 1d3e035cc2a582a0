"""Selected frames written as PNGs: decoded video by video while several threads encode and store them."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.video import export
from lightly_airflow.video.export import frame_png, frame_png_uri, write_selected_frames
from lightly_airflow.video.index import index_video
from lightly_airflow.video.synthetic import make_scene_video, write_video


def _rows(src: Path, picks: dict[str, list[int]], etag: str = "v1") -> pa.Table:
    keys, videos, indices, pts = [], [], [], []
    for video, wanted in picks.items():
        info = index_video(str(src / video))
        for i in wanted:
            keys.append(f"{video.replace('.', '-')}-{i:03d}.png")
            videos.append(video)
            indices.append(i)
            pts.append(info.pts[i])
    return pa.table({C.KEY: keys, C.VIDEO: videos, C.FRAME_INDEX: indices, C.FRAME_PTS: pts,
                     C.ETAG: [etag] * len(keys)})


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    make_scene_video(str(folder / "a.mp4"), "astronaut", 40, seed=1)
    make_scene_video(str(folder / "b.mkv"), "coffee", 30, seed=2)
    import numpy as np

    # a portrait phone video (stored turned): each PNG is upright, its own frame's
    frames = (np.full((96, 128, 3), (20 * i) % 256, dtype=np.uint8) for i in range(12))
    write_video(str(folder / "c.mp4"), frames, size=(128, 96), rotation=-90)
    return folder


def test_each_png_is_its_own_frame_as_decoded_alone(src: Path, tmp_path: Path) -> None:
    rows = _rows(src, {"a.mp4": [0, 1, 2, 9, 17, 18, 39], "b.mkv": [5, 6, 29], "c.mp4": [0, 3, 4, 11]})
    out = f"file://{tmp_path / 'out'}"
    counts = write_selected_frames(rows, datasource_uri=f"file://{src}", lightly_uri=out)
    assert (counts["written"], counts["existing"], counts["failed"]) == (14, 0, 0)
    for row in rows.to_pylist():
        stored = Path(frame_png_uri(out, row[C.KEY]).removeprefix("file://")).read_bytes()
        # the same frame decoded by itself (one seek) and encoded on this thread: the same bytes
        alone = frame_png(f"file://{src}", row, lightly_uri=f"file://{tmp_path / 'none'}")
        assert stored == alone, row[C.KEY]
        assert Image.open(io.BytesIO(stored)).size == ((96, 128) if row[C.VIDEO] == "c.mp4" else (160, 120))
    again = write_selected_frames(rows, datasource_uri=f"file://{src}", lightly_uri=out)
    assert (again["written"], again["existing"]) == (0, 14)
    newer = write_selected_frames(rows.slice(0, 3).set_column(4, C.ETAG, pa.array(["v2"] * 3)),
                                  datasource_uri=f"file://{src}", lightly_uri=out)
    assert (newer["written"], newer["rewritten"], newer["existing"]) == (3, 3, 0)


def test_a_store_error_on_a_png_thread_fails_the_call(src: Path, tmp_path: Path, monkeypatch) -> None:
    rows = _rows(src, {"a.mp4": list(range(0, 40, 3))})
    put = export._put

    def failing(fs, path, data, local):
        if path.endswith("-027.png"):
            raise PermissionError(f"access denied: {path}")
        put(fs, path, data, local)

    monkeypatch.setattr(export, "_put", failing)
    with pytest.raises(PermissionError, match="-027.png"):
        write_selected_frames(rows, datasource_uri=f"file://{src}", lightly_uri=f"file://{tmp_path / 'out'}")


def test_a_gone_video_fails_its_frames_only(src: Path, tmp_path: Path) -> None:
    rows = _rows(src, {"a.mp4": [1, 2], "b.mkv": [3, 4, 5]})
    (src / "b.mkv").unlink()
    counts = write_selected_frames(rows, datasource_uri=f"file://{src}", lightly_uri=f"file://{tmp_path / 'out'}")
    assert (counts["written"], counts["failed"]) == (2, 3)


@pytest.mark.parametrize("store", ["s3_bucket", "gcs_bucket", "azure_container"])
def test_pngs_written_from_threads_to_an_object_store_are_whole(src: Path, tmp_path: Path, store: str,
                                                                request: pytest.FixtureRequest) -> None:
    bucket = request.getfixturevalue(store)
    rows = _rows(src, {"a.mp4": list(range(0, 40, 2)), "c.mp4": [1, 7]})
    out = f"{bucket.uri}/videos"
    counts = write_selected_frames(rows, datasource_uri=f"file://{src}", lightly_uri=out,
                                   lightly_credentials=bucket.credentials)
    assert (counts["written"], counts["failed"]) == (22, 0)
    local = f"file://{tmp_path / 'local'}"
    write_selected_frames(rows, datasource_uri=f"file://{src}", lightly_uri=local)
    from lightly_airflow.storage import filesystem

    for key in rows.column(C.KEY).to_pylist():
        fs, path = filesystem(frame_png_uri(out, key), bucket.credentials)
        assert fs.cat_file(path) == Path(frame_png_uri(local, key).removeprefix("file://")).read_bytes(), key
    again = write_selected_frames(rows, datasource_uri=f"file://{src}", lightly_uri=out,
                                  lightly_credentials=bucket.credentials)
    assert (again["written"], again["existing"]) == (0, 22)
