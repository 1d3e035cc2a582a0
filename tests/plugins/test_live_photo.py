"""A photo's Live Photo clip on its sample page: the "LIVE" control and the clip served by ``…/video`` (ranged), found
by the listing's own pairing rule (``datasource.live_photos``) against the datasource; nothing for a photo without
a clip, for a ``.mp4`` beside a JPEG (a video's poster, not a Live Photo) or for a clip over the rule's size limit;
a check that fails leaves the photo and says why in the control's title."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

PHOTOS = ("IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.jpg")


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def camera_roll(tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A datasource like an iPhone's camera roll: ``IMG_0001.JPG`` with its clip ``IMG_0001.MOV`` beside it,
    ``IMG_0002.JPG`` alone, ``IMG_0003.jpg`` with ``IMG_0003.mp4`` beside it (a video and its poster); the photos
    committed as samples (the clips are not samples, as the listing skips them). Returns the folder and the rows."""
    from lightly_airflow.video.synthetic import make_scene_video

    src = tmp_path / "roll"
    src.mkdir()
    for i, name in enumerate(PHOTOS):
        (src / name).write_bytes(_jpeg(i))
    make_scene_video(str(src / "IMG_0001.MOV"), "astronaut", 24, size=(120, 90))
    make_scene_video(str(src / "IMG_0003.mp4"), "coffee", 24, size=(120, 90))
    n = len(PHOTOS)
    rows = pa.table({
        C.KEY: list(PHOTOS), C.ETAG: ["sha256:" + hashlib.sha256((src / k).read_bytes()).hexdigest() for k in PHOTOS],
        C.STATUS: [C.STATUS_OK] * n, C.SELECTED: [True] * n, C.PICK_RANK: pa.array(range(n), pa.int64()),
        C.EMBEDDING: pa.array([[float(i + 1), 1.0, 0.0, 0.0] for i in range(n)], pa.list_(pa.float32(), 4)),
    })
    pool = Datapool(str(tmp_path / "pool"))
    pool.commit(rows, run_id="r1", dag_id="t", tag=None, config={}, counts={"processed": n}, embedding_model="m",
                embedding_dim=4, datasource_uri=f"file://{src}")
    return src, {r[C.KEY]: r for r in pool.read().to_pylist()}


def _client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    return ui_client(monkeypatch, {"p": {"uri": str(tmp_path / "pool")}})


def _page(client: Any, row: dict[str, Any]) -> str:
    got = client.get(f"/lightly/pools/p/samples/{row[C.SAMPLE_ID]}")
    assert got.status_code == 200
    return str(got.text)


def test_the_live_control_plays_the_clip_beside_the_photo_through_the_video_route(
    camera_roll: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, rows = camera_roll
    clip = (src / "IMG_0001.MOV").read_bytes()
    with _client(monkeypatch, tmp_path) as client:
        html = _page(client, rows["IMG_0001.JPG"])
        video_url = f"/lightly/pools/p/samples/{rows['IMG_0001.JPG'][C.SAMPLE_ID]}/video"
        assert 'class="live-btn"' in html and 'data-clip="IMG_0001.MOV"' in html and ">LIVE</button>" in html
        src_attr = re.search(r'<video class="live" muted playsinline preload="none" hidden src="([^"]+)"', html)
        assert src_attr and src_attr.group(1).replace("&amp;", "&").startswith(video_url + "?version=")
        assert "/static/live.js" in html
        assert client.get("/lightly/static/live.js").status_code == 200
        # The route serves the clip's own bytes, ranged, as the frame's player gets its video.
        whole = client.get(video_url)
        assert whole.status_code == 200 and whole.content == clip
        assert whole.headers["content-type"] == "video/mp4" and "x-lightly-content-changed" not in whole.headers
        part = client.get(video_url, headers={"Range": "bytes=10-109"})
        assert part.status_code == 206 and part.content == clip[10:110]
        assert part.headers["content-range"] == f"bytes 10-109/{len(clip)}"
        assert client.get(video_url, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304
        api = client.get(f"/lightly/api/pools/p/samples/{rows['IMG_0001.JPG'][C.SAMPLE_ID]}").json()
        assert api["live_photo_clip"] == {"key": "IMG_0001.MOV", "error": None}


def test_no_control_without_a_clip_by_the_listing_s_rule(
    camera_roll: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lightly_airflow.datasource import live_photos

    src, rows = camera_roll
    with _client(monkeypatch, tmp_path) as client:
        for key in ("IMG_0002.JPG", "IMG_0003.jpg"):  # alone; beside an .mp4 (a JPEG is that video's poster)
            html = _page(client, rows[key])
            assert "<button" not in html and "<video" not in html and "live.js" not in html, key
            got = client.get(f"/lightly/pools/p/samples/{rows[key][C.SAMPLE_ID]}/video")
            assert got.status_code == 404 and "neither a video frame nor a Live Photo" in got.text, key
        # A clip over the rule's size limit is a video of its own (the listing processes it): no control either.
        monkeypatch.setattr(live_photos, "LIVE_PHOTO_MAX_BYTES", (src / "IMG_0001.MOV").stat().st_size - 1)
        assert "<button" not in _page(client, rows["IMG_0001.JPG"])
        assert client.get(f"/lightly/pools/p/samples/{rows['IMG_0001.JPG'][C.SAMPLE_ID]}/video").status_code == 404


def test_a_failed_check_keeps_the_photo_and_says_why_in_the_control(
    camera_roll: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lightly_airflow.plugins import media

    _, rows = camera_roll
    real_info = media.file_info

    def failing(fs: Any, path: str) -> dict[str, Any]:
        if path.lower().endswith(".mov"):
            raise OSError("Connection reset by peer")
        return real_info(fs, path)

    monkeypatch.setattr(media, "file_info", failing)
    with _client(monkeypatch, tmp_path) as client:
        html = _page(client, rows["IMG_0001.JPG"])
        assert '<div class="figure"><img src=' in html  # the photo is shown
        button = re.search(r'<button type="button" class="live-btn" aria-disabled="true"[^>]*title="([^"]+)"', html)
        assert button and "could not be checked" in button.group(1) and "OSError: Connection reset" in button.group(1)
        assert "<video" not in html and "live.js" not in html


def test_a_refused_check_is_no_clip_and_is_logged_once(
    camera_roll: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # S3 without s3:ListBucket answers 403 for a missing key: every photo's check would be refused. That is no
    # clip (no control on every page), with one warning naming the permission for the datasource.
    from lightly_airflow.plugins import media

    _, rows = camera_roll
    real_info = media.file_info

    def refusing(fs: Any, path: str) -> dict[str, Any]:
        if path.lower().endswith((".mov", ".mp4")):
            raise PermissionError("403 Forbidden")
        return real_info(fs, path)

    monkeypatch.setattr(media, "file_info", refusing)
    monkeypatch.setattr(media, "_LIVE_DENIED", set())
    with _client(monkeypatch, tmp_path) as client, caplog.at_level("WARNING", logger=media.log.name):
        for name in ("IMG_0001.JPG", "IMG_0002.JPG", "IMG_0001.JPG"):
            html = _page(client, rows[name])
            assert '<div class="figure"><img src=' in html and 'class="live-btn"' not in html and "<video" not in html
    warned = [r.getMessage() for r in caplog.records if "Live Photo clips are not looked for" in r.getMessage()]
    assert len(warned) == 1 and "s3:ListBucket" in warned[0], warned


def test_the_clip_names_follow_the_listing_s_extensions() -> None:
    from lightly_airflow.plugins.media import live_clip_names

    assert live_clip_names("a/IMG_1.HEIC") == ["a/IMG_1.MOV", "a/IMG_1.mov", "a/IMG_1.MP4", "a/IMG_1.mp4"]
    assert live_clip_names("IMG_1.jpg") == ["IMG_1.MOV", "IMG_1.mov"]
    assert live_clip_names("IMG_1.png") == [] and live_clip_names("noext") == []
