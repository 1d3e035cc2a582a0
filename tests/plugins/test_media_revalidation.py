"""A sample's ``…/image`` and ``…/video`` answers are revalidated on every view instead of cached for minutes: a file
replaced under its key (``media.content_state``) must not show from the browser's cache beside the scores of its
new row. Each answer carries ``Cache-Control: private, no-cache`` and an ``ETag`` made from the file's content
identity now (the etag the listing computes: S3's ETag, a local file's ``sha256:`` from the listing's hash cache);
a browser's ``If-None-Match`` naming it gets a 304 before any of the file's bytes are read (no image read, no crop
cut, no frame decoded), with the ``X-Lightly-Content-Changed`` headers a 200 would carry. Thumbnails keep their hour
of ``max-age``: their URL is the sample id, a digest of the key *and* the recorded etag. Locally, for objects'
crops, video frames and the video player, and on S3 (moto) through an Airflow connection."""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.rows import sample_id

CHANGED = "X-Lightly-Content-Changed"
NO_CACHE = "private, no-cache"


def _png(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    """A PNG of random colours (other seeds: other content)."""
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _commit(pool_uri: str, source_uri: str, etags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """One committed run over ``etags`` (key -> the etag its listing recorded); the rows by key."""
    keys = sorted(etags)
    n = len(keys)
    rows = pa.table({
        C.KEY: keys, C.ETAG: [etags[k] for k in keys], C.STATUS: [C.STATUS_OK] * n,
        C.EMBEDDING: pa.array([[float(i + 1), 1.0, 0.0, 0.0] for i in range(n)], pa.list_(pa.float32(), 4)),
        C.SELECTED: [True] * n, C.PICK_RANK: pa.array(list(range(n)), pa.int64()),
    })
    pool = Datapool(pool_uri)
    pool.commit(rows, run_id="r1", dag_id="t", tag=None, config={}, counts={"processed": n}, embedding_model="m",
                embedding_dim=4, datasource_uri=source_uri)
    return {r[C.KEY]: r for r in pool.read().to_pylist()}


class _Reads:
    """``media.filesystem`` that records every file read (``open``, ``cat_file``) and lets metadata calls through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from lightly_airflow.datasource import listing
        from lightly_airflow.plugins import media

        self.paths: list[str] = []  # files opened or read
        self.hashed: list[str] = []  # local files hashed (not in the listing's hash cache)
        real_filesystem, real_hash = media.filesystem, listing.local_etag
        reads = self

        class Recording:
            def __init__(self, fs: Any) -> None:
                self._fs = fs

            def open(self, path: str, *a: Any, **k: Any) -> Any:
                reads.paths.append(path)
                return self._fs.open(path, *a, **k)

            def cat_file(self, path: str, *a: Any, **k: Any) -> Any:
                reads.paths.append(path)
                return self._fs.cat_file(path, *a, **k)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._fs, name)

        def filesystem(uri: str, credentials: Any = None) -> tuple[Any, str]:
            fs, path = real_filesystem(uri, credentials)
            return Recording(fs), path

        def local_etag(stat_key: Any) -> Any:
            if listing._HASHES.get(stat_key) is None:
                self.hashed.append(stat_key[0])
            return real_hash(stat_key)

        monkeypatch.setattr(media, "filesystem", filesystem)
        monkeypatch.setattr(listing, "local_etag", local_etag)

    def clear(self) -> None:
        self.paths.clear()
        self.hashed.clear()


def _timed(client: Any, url: str, headers: dict[str, str] | None = None, n: int = 10) -> tuple[float, int]:
    """Median milliseconds of ``n`` GETs and the body bytes of one."""
    times, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        got = client.get(url, headers=headers or {})
        times.append((time.perf_counter() - started) * 1000)
        size = len(got.content)
    return statistics.median(times), size


def test_a_local_image_is_revalidated_with_its_etag_and_a_304_reads_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(("a.png", "b.png")):
        (src / name).write_bytes(_png(i, (640, 480)))
    etags = {k: "sha256:" + hashlib.sha256((src / k).read_bytes()).hexdigest() for k in ("a.png", "b.png")}
    rows = _commit(str(tmp_path / "pool"), f"file://{src}", etags)
    url = f"/lightly/pools/p/samples/{rows['a.png'][C.SAMPLE_ID]}/image"
    with ui_client(monkeypatch, {"p": {"uri": str(tmp_path / "pool")}}) as client:
        first = client.get(url)
        assert first.status_code == 200 and first.content == (src / "a.png").read_bytes()
        assert first.headers["cache-control"] == NO_CACHE  # kept, but asked for again on every view
        tag = first.headers["etag"]
        assert tag.startswith('W/"') and CHANGED not in first.headers
        assert client.get(url).headers["etag"] == tag  # the same file: the same tag
        other = client.get(f"/lightly/pools/p/samples/{rows['b.png'][C.SAMPLE_ID]}/image").headers["etag"]
        assert other != tag

        reads = _Reads(monkeypatch)
        again = client.get(url, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == tag and again.headers["cache-control"] == NO_CACHE
        assert "content-length" not in again.headers or again.headers["content-length"] == "0"
        assert reads.paths == [] and reads.hashed == []  # a stat and the listing's cached hash: no byte read
        assert client.get(url, headers={"If-None-Match": f'"nope", {tag}'}).status_code == 304  # a list of tags
        assert client.get(url, headers={"If-None-Match": tag.removeprefix("W/")}).status_code == 304  # weak compare
        assert client.get(url, headers={"If-None-Match": 'W/"another"'}).status_code == 200
        assert reads.paths == [str(src / "a.png")]  # (the recording sees reads: only the 200 read the file)

        # Replaced under its key: the browser's copy is not current any more; the new bytes come, flagged.
        (src / "a.png").write_bytes(_png(99, (640, 480)))
        reads.clear()
        new = client.get(url, headers={"If-None-Match": tag})
        assert new.status_code == 200 and new.content == (src / "a.png").read_bytes()
        assert new.headers["etag"] != tag and new.headers[CHANGED] == "1"
        assert new.headers["X-Lightly-Current-Etag"] == "sha256:" + hashlib.sha256(new.content).hexdigest()
        # … and the copy of the new file is revalidated as well, its 304 flagged like its 200.
        same = client.get(url, headers={"If-None-Match": new.headers["etag"]})
        assert same.status_code == 304 and same.headers[CHANGED] == "1"
        assert same.headers["X-Lightly-Recorded-Etag"] == etags["a.png"]

        (src / "a.png").unlink()  # gone: no 304 for a file that is not there
        assert client.get(url, headers={"If-None-Match": new.headers["etag"]}).status_code == 404
        page = client.get(url.removesuffix("/image")).text  # the note says so, no broken image beside it
        assert 'class="box err content-gone"' in page and 'class="figure"' not in page and "/image?" not in page

        # Thumbnails keep max-age: the URL names the content (sample id = digest of key and recorded etag), so the
        # row of a replaced file (a new etag) has another thumbnail URL.
        assert rows["a.png"][C.SAMPLE_ID] == sample_id("a.png", etags["a.png"]) != sample_id("a.png", "sha256:new")
        thumb = client.get(f"/lightly/pools/p/thumbnails/{rows['a.png'][C.SAMPLE_ID]}")
        assert thumb.headers["cache-control"] == "private, no-cache"  # (this pool has no thumbnail: placeholder)


def test_thumbnails_keep_their_hour_of_caching(client, configured) -> None:
    rows = Datapool(configured.uri).read(columns=[C.KEY, C.ETAG, C.SAMPLE_ID]).to_pylist()
    row = next(r for r in rows if (configured.path.parent / "images" / r[C.KEY]).exists())
    got = client.get(f"/lightly/pools/main/thumbnails/{row[C.SAMPLE_ID]}")
    assert got.status_code == 200 and got.headers["cache-control"] == "private, max-age=3600"
    assert row[C.SAMPLE_ID] == sample_id(row[C.KEY], row[C.ETAG])  # the URL is the content's


def test_an_objects_crop_is_revalidated_without_reading_its_image(tmp_path: Path, monkeypatch) -> None:
    from object_pool import build_object_pool

    pool = build_object_pool(tmp_path / "objects")
    rows = Datapool(pool.uri).read().to_pylist()
    obj = next(r for r in rows if r[C.PARENT_KEY] is not None)
    url = f"/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}/image"
    with ui_client(monkeypatch, {"objects": {"uri": pool.uri}}) as client:
        first = client.get(url)
        assert first.status_code == 200 and first.headers["cache-control"] == NO_CACHE
        tag = first.headers["etag"]
        reads = _Reads(monkeypatch)
        again = client.get(url, headers={"If-None-Match": tag})
        assert again.status_code == 304 and reads.paths == [] and reads.hashed == []  # no image read, no crop cut

        path = pool.source / obj[C.PARENT_KEY]
        with Image.open(path) as img:
            img.convert("RGB").transpose(Image.Transpose.ROTATE_180).save(path)
        new = client.get(url, headers={"If-None-Match": tag})
        assert new.status_code == 200 and new.headers["etag"] != tag and new.headers[CHANGED] == "1"
        assert new.content != first.content


def test_frames_and_the_player_are_revalidated_without_decoding_or_reading_the_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from video.runs import run_once

    from lightly_airflow.video import export as video_export
    from lightly_airflow.video.synthetic import make_scene_video

    src, pool = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "street.mp4"), "astronaut", 12, seed=1)
    run_once(f"file://{src}", f"file://{pool}", "r1", config={
        "n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]})
    frames = {r[C.KEY]: r for r in Datapool(f"file://{pool}").read().to_pylist() if r[C.VIDEO] == "street.mp4"}
    picked = next(k for k, r in frames.items() if r[C.SELECTED])  # its picture: the run's stored PNG
    unpicked = next(k for k, r in frames.items() if not r[C.SELECTED])  # its picture: decoded from the video

    def url(key: str, what: str) -> str:
        return f"/lightly/pools/v/samples/{frames[key][C.SAMPLE_ID]}/{what}"

    with ui_client(monkeypatch, {"v": {"uri": f"file://{pool}"}}) as client:
        tags = {k: client.get(url(k, "image")).headers["etag"] for k in (picked, unpicked)}
        assert len(set(tags.values())) == 2
        video = client.get(url(picked, "video"), headers={"Range": "bytes=0-99"})
        assert video.status_code == 206 and video.headers["cache-control"] == NO_CACHE
        vtag = video.headers["etag"]
        assert vtag.startswith('"')  # strong: the file's own bytes (If-Range compares it)

        decoded: list[str] = []
        real_png = video_export.frame_png
        monkeypatch.setattr(video_export, "frame_png", lambda *a, **k: decoded.append("png") or real_png(*a, **k))
        reads = _Reads(monkeypatch)
        for key in (picked, unpicked):
            assert client.get(url(key, "image"), headers={"If-None-Match": tags[key]}).status_code == 304
        assert decoded == []  # no stored PNG read whole, no frame decoded
        assert client.get(url(picked, "video"), headers={"If-None-Match": vtag}).status_code == 304
        assert reads.paths == [] and reads.hashed == []
        part = client.get(url(picked, "video"), headers={"Range": "bytes=100-199", "If-Range": vtag})
        assert part.status_code == 206 and part.headers["etag"] == vtag

        make_scene_video(str(src / "street.mp4"), "coffee", 12, seed=7)  # re-encoded under the same name
        raw = (src / "street.mp4").read_bytes()
        # The player's next part, asked for with the old video's tag: the whole new file, never a part of it to
        # splice onto the old one's.
        spliced = client.get(url(picked, "video"), headers={"Range": "bytes=200-299", "If-Range": vtag})
        assert spliced.status_code == 200 and spliced.content == raw and spliced.headers[CHANGED] == "1"
        assert spliced.headers["etag"] != vtag
        assert client.get(url(picked, "video"), headers={"If-None-Match": vtag}).status_code == 200
        # The picked frame's picture is still its run's PNG of the processed version: still current.
        assert client.get(url(picked, "image"), headers={"If-None-Match": tags[picked]}).status_code == 304
        new = client.get(url(unpicked, "image"), headers={"If-None-Match": tags[unpicked]})  # decoded anew
        assert new.status_code == 200 and new.headers["etag"] != tags[unpicked] and new.headers[CHANGED] == "1"

        (src / "street.mp4").unlink()  # gone: no player; the picked frame keeps its stored PNG, the other none
        picked_page = client.get(url(picked, "")[:-1]).text
        unpicked_page = client.get(url(unpicked, "")[:-1]).text
        assert "box err content-gone" in picked_page and "box err content-gone" in unpicked_page
        assert "<video" not in picked_page and "<video" not in unpicked_page
        assert 'class="figure"' in picked_page and 'class="figure"' not in unpicked_page


def test_an_s3_image_is_revalidated_with_one_head_request_and_no_get(s3_bucket, tmp_path: Path, monkeypatch) -> None:
    from lightly_airflow.plugins import media
    from lightly_airflow.storage import filesystem

    creds = s3_bucket.credentials
    fs, _ = filesystem(s3_bucket.uri, creds)
    data = {"a.png": _png(1, (1600, 1200)), "b.png": _png(2)}
    for name, body in data.items():
        fs.pipe_file(f"{s3_bucket.name}/images/{name}", body)
    etags = {k: fs.info(f"{s3_bucket.name}/images/{k}", refresh=True)["ETag"].strip('"') for k in data}
    rows = _commit(str(tmp_path / "pool"), f"{s3_bucket.uri}/images", etags)
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_S3", json.dumps({
        "conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
        "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region}}))
    url = f"/lightly/pools/lake/samples/{rows['a.png'][C.SAMPLE_ID]}/image"
    with ui_client(monkeypatch, {"lake": {"uri": str(tmp_path / "pool"), "datasource_conn_id": "lake_s3"}}) as client:
        first = client.get(url)
        assert first.status_code == 200 and first.content == data["a.png"] and CHANGED not in first.headers
        tag = first.headers["etag"]
        assert first.headers["cache-control"] == NO_CACHE

        calls: list[str] = []
        real_info = media.file_info
        monkeypatch.setattr(media, "file_info", lambda fs_, path: calls.append(path) or real_info(fs_, path))
        reads = _Reads(monkeypatch)
        again = client.get(url, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert calls == [f"{s3_bucket.name}/images/a.png"] and reads.paths == []  # one HEAD, no GET
        full_ms, full_bytes = _timed(client, url)
        cond_ms, cond_bytes = _timed(client, url, {"If-None-Match": tag})
        print(f"S3 (moto) repeat view of a {len(data['a.png'])} B PNG: full {full_bytes} B {full_ms:.1f} ms, "
              f"revalidated {cond_bytes} B {cond_ms:.1f} ms")
        assert full_bytes == len(data["a.png"]) and cond_bytes == 0

        fs.pipe_file(f"{s3_bucket.name}/images/a.png", _png(42, (1600, 1200)))  # replaced under the same key
        new = client.get(url, headers={"If-None-Match": tag})
        assert new.status_code == 200 and new.headers["etag"] != tag and new.headers[CHANGED] == "1"
        assert new.content == fs.cat_file(f"{s3_bucket.name}/images/a.png")
