"""A file replaced under its key after its run: the sample page and the ``…/image`` / ``…/video`` answers say that
what they show is the current file, not the content the row (its scores, its pick) was computed from; a file that
is gone says so; an unchanged one says nothing. Pools made by the pipeline's own plain functions (``runs.run_once``)
from real images and videos, locally and on the S3 emulator through an Airflow connection."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video

from .runs import run_once

CHANGED = "X-Lightly-Content-Changed"


def _image(seed: int) -> bytes:
    """A PNG of random colours (different seeds: different content)."""
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _rows(pool_uri: str, creds: Any = None) -> dict[str, dict[str, Any]]:
    from lightly_airflow.datapool import Datapool

    return {r[C.KEY]: r for r in Datapool(pool_uri, creds).read().to_pylist()}


def _note(page: str) -> str:
    """The text of the page's content note ('' when there is none)."""
    for cls in ("content-changed", "content-gone", "content-unknown"):
        at = page.find(f'class="box {"err" if cls == "content-gone" else "warn"} {cls}"')
        if at >= 0:
            return page[at:page.index("</div>", at)]
    return ""


def test_a_replaced_or_deleted_local_image_is_flagged_on_its_page_and_its_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ui_client import ui_client

    from lightly_airflow.plugins import media

    src, pool = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    for i, name in enumerate(("same.png", "replaced.png", "deleted.png")):
        (src / name).write_bytes(_image(i))
    run_once(f"file://{src}", f"file://{pool}", "r1")
    rows = _rows(f"file://{pool}")
    old = rows["replaced.png"][C.ETAG]
    assert old.startswith("sha256:")

    def page(key: str) -> str:
        got = client.get(f"/lightly/pools/p/samples/{rows[key][C.SAMPLE_ID]}")
        assert got.status_code == 200, got.text[:300]
        return got.text

    def image(key: str) -> Any:
        return client.get(f"/lightly/pools/p/samples/{rows[key][C.SAMPLE_ID]}/image")

    with ui_client(monkeypatch, {"p": {"uri": f"file://{pool}"}}) as client:
        # As processed: no note, no header.
        for key in rows:
            assert _note(page(key)) == "" and "changed after" not in page(key)
            assert CHANGED not in image(key).headers
        # Overwritten with other pixels under the same key, and another file deleted.
        (src / "replaced.png").write_bytes(_image(99))
        (src / "deleted.png").unlink()
        from lightly_airflow.datasource.listing import local_etag

        st = (src / "replaced.png").stat()
        now = local_etag((str(src / "replaced.png"), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        note = _note(page("replaced.png"))
        assert "The file at <code>replaced.png</code> changed after this sample was processed" in note
        assert f"recorded etag <code>{old}</code>, now <code>{now}</code>" in note
        assert "the image below is the current file, not the one the scores describe" in note
        got = image("replaced.png")
        assert got.status_code == 200 and got.content == (src / "replaced.png").read_bytes()
        assert got.headers[CHANGED] == "1"
        assert got.headers["X-Lightly-Recorded-Etag"] == old and got.headers["X-Lightly-Current-Etag"] == now
        api = client.get(f"/lightly/api/pools/p/samples/{rows['replaced.png'][C.SAMPLE_ID]}").json()
        assert api["content"] == {"key": "replaced.png", "state": "changed", "recorded_etag": old,
                                  "current_etag": now, "reason": None}

        gone = _note(page("deleted.png"))
        assert "The file at <code>deleted.png</code> is gone: the datasource no longer holds it" in gone
        assert "its image cannot be shown" in gone and 'class="box err content-gone"' in page("deleted.png")
        assert image("deleted.png").status_code == 404

        assert _note(page("same.png")) == "" and CHANGED not in image("same.png").headers

        # The local check is the listing's hash with its cache: a second view stats the file, it reads nothing.
        import os

        reads: list[Any] = []
        real_open = os.open
        monkeypatch.setattr(os, "open", lambda *a, **k: reads.append(a) or real_open(*a, **k))
        page("same.png")
        assert reads == []
        started = time.perf_counter()
        for _ in range(20):
            media.content_state(f"file://{src}", "replaced.png", old, None)
        print(f"local check: {(time.perf_counter() - started) / 20 * 1e6:.0f} µs per view (cached hash)")
        monkeypatch.undo()

        # A store error: the page says the check failed (and still shows the sample), the image says "unknown".
        with ui_client(monkeypatch, {"p": {"uri": f"file://{pool}"}}) as client2:
            def broken(*a: Any, **k: Any) -> Any:
                raise PermissionError("access denied by the store")

            monkeypatch.setattr(media, "current_etag", broken)
            got = client2.get(f"/lightly/pools/p/samples/{rows['same.png'][C.SAMPLE_ID]}")
            assert got.status_code == 200
            assert ("Whether the file at <code>same.png</code> is still the content this sample was processed from "
                    "could not be checked (PermissionError: access denied by the store)") in _note(got.text)
            assert client2.get(f"/lightly/pools/p/samples/{rows['same.png'][C.SAMPLE_ID]}/image").headers[CHANGED] \
                == "unknown"


def test_a_re_encoded_local_video_is_flagged_on_its_frames_page_player_and_pictures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The player plays the current video: flagged on every (ranged) answer. A selected frame's picture is the PNG
    its run stored of the processed version (right: no header); an unselected frame's is decoded from the new
    video (flagged)."""
    from ui_client import ui_client

    src, pool = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "street.mp4"), "astronaut", 12, seed=1)
    run_once(f"file://{src}", f"file://{pool}", "r1", config={
        "n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]})
    frames = {k: r for k, r in _rows(f"file://{pool}").items() if r[C.VIDEO] == "street.mp4"}
    picked = next(k for k, r in frames.items() if r[C.SELECTED])
    unpicked = next(k for k, r in frames.items() if not r[C.SELECTED])
    old = frames[picked][C.ETAG]

    def url(key: str, what: str = "") -> str:
        return f"/lightly/pools/v/samples/{frames[key][C.SAMPLE_ID]}" + (f"/{what}" if what else "")

    with ui_client(monkeypatch, {"v": {"uri": f"file://{pool}"}}) as client:
        assert _note(client.get(url(picked)).text) == ""
        assert CHANGED not in client.get(url(picked, "video"), headers={"Range": "bytes=0-99"}).headers
        assert CHANGED not in client.get(url(unpicked, "image")).headers

        make_scene_video(str(src / "street.mp4"), "coffee", 12, seed=7)  # re-encoded under the same name
        raw = (src / "street.mp4").read_bytes()
        note = _note(client.get(url(picked)).text)
        assert "The file at <code>street.mp4</code> changed after this sample was processed" in note
        assert f"recorded etag <code>{old}</code>" in note
        assert "the video below is the current file, not the one the scores describe" in note
        assert "The frame above the player is the PNG its run stored of the processed version" in note
        assert "decoded from the current file too" in _note(client.get(url(unpicked)).text)

        part = client.get(url(picked, "video"), headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == raw[100:1100] and part.headers[CHANGED] == "1"
        assert part.headers["content-range"] == f"bytes 100-1099/{len(raw)}"
        whole = client.get(url(picked, "video"))
        assert whole.status_code == 200 and whole.content == raw and whole.headers[CHANGED] == "1"
        past = client.get(url(picked, "video"), headers={"Range": f"bytes={len(raw)}-"})
        assert past.status_code == 416 and past.headers[CHANGED] == "1"

        stored = client.get(url(picked, "image"))  # the run's PNG of the processed version: what the row describes
        assert stored.status_code == 200 and CHANGED not in stored.headers
        assert stored.content == (src / ".lightly" / "frames" / picked).read_bytes()
        decoded = client.get(url(unpicked, "image"))
        assert decoded.status_code == 200 and decoded.headers[CHANGED] == "1"

        (src / "street.mp4").unlink()
        gone = _note(client.get(url(picked)).text)
        assert "The file at <code>street.mp4</code> is gone" in gone and "its video cannot be played" in gone
        assert "The frame shown is the PNG its run stored" in gone
        assert client.get(url(picked, "image")).status_code == 200  # the stored PNG is still the frame
        assert "Its frame cannot be shown either" in _note(client.get(url(unpicked)).text)


def test_a_replaced_image_on_s3_is_flagged_with_one_head_request(s3_bucket, tmp_path: Path, monkeypatch) -> None:
    from ui_client import ui_client

    from lightly_airflow.plugins import media
    from lightly_airflow.storage import filesystem

    creds = s3_bucket.credentials
    fs, _ = filesystem(s3_bucket.uri, creds)
    for i, name in enumerate(("a.png", "b.png")):
        fs.pipe_file(f"{s3_bucket.name}/images/{name}", _image(i))
    source, pool_uri = f"{s3_bucket.uri}/images", f"{s3_bucket.uri}/pool"
    run_once(source, pool_uri, "s3-1", creds=creds)
    rows = _rows(pool_uri, creds)
    old = rows["a.png"][C.ETAG]
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_S3", json.dumps({
        "conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
        "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region}}))
    with ui_client(monkeypatch, {"lake": {"uri": pool_uri, "conn_id": "lake_s3"}}) as client:
        page = client.get(f"/lightly/pools/lake/samples/{rows['a.png'][C.SAMPLE_ID]}").text
        assert _note(page) == "" and "<img" in page
        assert CHANGED not in client.get(f"/lightly/pools/lake/samples/{rows['a.png'][C.SAMPLE_ID]}/image").headers

        fs.pipe_file(f"{s3_bucket.name}/images/a.png", _image(42))  # replaced under the same key
        now = fs.info(f"{s3_bucket.name}/images/a.png", refresh=True)["ETag"].strip('"')
        assert now != old
        calls: list[str] = []
        real_info = media.file_info
        monkeypatch.setattr(media, "file_info", lambda fs_, path: calls.append(path) or real_info(fs_, path))
        started = time.perf_counter()
        page = client.get(f"/lightly/pools/lake/samples/{rows['a.png'][C.SAMPLE_ID]}").text
        print(f"S3 sample page with the check: {time.perf_counter() - started:.3f} s")
        assert calls == [f"{s3_bucket.name}/images/a.png"]  # one metadata call (HEAD) for the check
        note = _note(page)
        assert "The file at <code>a.png</code> changed after this sample was processed" in note
        assert f"recorded etag <code>{old}</code>, now <code>{now}</code>" in note
        calls.clear()
        got = client.get(f"/lightly/pools/lake/samples/{rows['a.png'][C.SAMPLE_ID]}/image")
        assert got.status_code == 200 and got.headers[CHANGED] == "1" and got.headers["X-Lightly-Current-Etag"] == now
        assert calls == [f"{s3_bucket.name}/images/a.png"]  # the read's own metadata call, no second one
        started = time.perf_counter()
        for _ in range(10):
            media.content_state(source, "a.png", old, creds)
        print(f"S3 check: {(time.perf_counter() - started) / 10 * 1000:.1f} ms per view (one HEAD, moto)")

        fs.rm_file(f"{s3_bucket.name}/images/b.png")
        gone = _note(client.get(f"/lightly/pools/lake/samples/{rows['b.png'][C.SAMPLE_ID]}").text)
        assert "The file at <code>b.png</code> is gone" in gone
