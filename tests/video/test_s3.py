"""Videos on the S3 emulator (moto): ranged reads, incremental runs, a replaced and a truncated video, a
unicode name in a sub-folder, process_all, and the selected frames' PNGs written to the bucket."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video, truncate

from .runs import run_once


def test_videos_on_s3(s3_bucket, tmp_path: Path, monkeypatch) -> None:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.storage import filesystem

    creds = s3_bucket.credentials
    fs, _ = filesystem(s3_bucket.uri, creds)
    local = tmp_path / "local"
    make_scene_video(str(local / "sub" / "ünï" / "clip é.mp4"), "astronaut", 20, seed=1)
    make_scene_video(str(local / "a.webm"), "coffee", 16, seed=2)
    make_scene_video(str(local / "cut.webm"), "chelsea", 30, seed=3)
    truncate(str(local / "cut.webm"), 0.5)
    for p in local.rglob("*.*"):
        fs.put_file(str(p), f"{s3_bucket.name}/videos/{p.relative_to(local).as_posix()}")
    source, pool_uri = f"{s3_bucket.uri}/videos", f"{s3_bucket.uri}/pool"

    listed, counts, s1 = run_once(source, pool_uri, "s3-1", creds=creds)
    assert listed.new_files == 3
    pool = Datapool(pool_uri, creds)
    rows = {r[C.KEY]: r for r in pool.read().to_pylist()}
    assert rows["sub/ünï/clip é-07-mp4.png"][C.STATUS] == C.STATUS_OK
    assert rows["sub/ünï/clip é-07-mp4.png"][C.VIDEO] == "sub/ünï/clip é.mp4"
    assert rows["cut.webm"][C.STATUS] == C.STATUS_CORRUPT and "ends early" in rows["cut.webm"][C.STATUS_REASON]
    assert 0 < sum(1 for r in rows.values() if r[C.VIDEO] == "cut.webm" and r[C.STATUS] == C.STATUS_OK) < 30
    selected = [k for k, r in rows.items() if r[C.SELECTED]]
    assert selected and s1.frames["written"] == len(selected)
    for key in selected:
        assert fs.exists(f"{s3_bucket.name}/videos/.lightly/frames/{key}")

    # The UI plays a frame's video from the bucket in byte ranges (s3fs ranged reads), through the pool's connection
    from ui_client import ui_client

    monkeypatch.setenv("AIRFLOW_CONN_LAKE_S3", json.dumps({
        "conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
        "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region}}))
    raw = (local / "sub" / "ünï" / "clip é.mp4").read_bytes()
    frame = rows["sub/ünï/clip é-07-mp4.png"]
    with ui_client(monkeypatch, {"lake": {"uri": pool_uri, "conn_id": "lake_s3"}}) as client:
        page = client.get(f"/lightly/pools/lake/samples/{frame[C.SAMPLE_ID]}").text
        assert "<h3>In its video</h3>" in page and f"#t={frame[C.FRAME_SECONDS]:.3f}" in page
        video = f"/lightly/pools/lake/samples/{frame[C.SAMPLE_ID]}/video"
        part = client.get(video, headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == raw[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(raw)}"
        assert client.get(video).content == raw

    # A new video arrives and a.webm is replaced under the same name: only those two are processed.
    make_scene_video(str(local / "a.webm"), "rocket", 12, seed=4)
    make_scene_video(str(local / "new.mov"), "coffee", 10, seed=5)
    fs.put_file(str(local / "a.webm"), f"{s3_bucket.name}/videos/a.webm")
    fs.put_file(str(local / "new.mov"), f"{s3_bucket.name}/videos/new.mov")
    listed2, _, _ = run_once(source, pool_uri, "s3-2", creds=creds)
    assert listed2.new_files == 2 and listed2.new == 22
    rows2 = pool.read(run_id="s3-2")
    mine = rows2.filter(pc.equal(rows2.column(C.RUN_ID), "s3-2"))
    assert set(mine.column(C.VIDEO).to_pylist()) == {"a.webm", "new.mov"}

    # process_all: every frame again, decoded nowhere (the pool's embeddings, hashes and metrics are reused).
    listed3, counts3, _ = run_once(source, pool_uri, "s3-3", creds=creds, process_all=True)
    assert sum(c["embedded"] for c in counts3) == 0
    assert sum(c["reused"] for c in counts3) >= 20 + 12 + 10


def test_indexing_and_decoding_on_s3_read_ranges_not_copies(s3_bucket, tmp_path: Path, monkeypatch) -> None:
    """Listing indexes a new MP4 with one demux pass over its sample table: the bytes fetched from the store are its
    header, first frames and index (``moov``), not its frames (``index._HeaderReads``: the whole file plus one block
    before, 21 % more with a one-block read-ahead cache), and a shard's frame range late in a video fetches only the
    blocks it needs."""
    import s3fs

    from lightly_airflow.storage import filesystem
    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.index import index_video
    from lightly_airflow.video.source import open_video_source

    fetched: list[tuple[int, int]] = []
    original = s3fs.core.S3File._fetch_range

    def counting(self, start, end):  # noqa: ANN001, ANN202
        data = original(self, start, end)
        fetched.append((start, len(data)))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    monkeypatch.setattr("lightly_airflow.video.source.REMOTE_BLOCK_SIZE", 16 << 10)
    creds = s3_bucket.credentials
    fs, _ = filesystem(s3_bucket.uri, creds)
    local = tmp_path / "long.mp4"
    make_scene_video(str(local), "astronaut", 480, size=(320, 240), seed=1)
    size = local.stat().st_size
    fs.put_file(str(local), f"{s3_bucket.name}/v/long.mp4")
    with open_video_source(f"{s3_bucket.uri}/v", "long.mp4", creds) as source:
        info = index_video(source)
    read = sum(n for _, n in fetched)
    print(f"index: {read} bytes fetched in {len(fetched)} ranged reads for a {size}-byte video")
    assert info.n_frames == 480 and read < size / 3 and info.read_whole is None
    fetched.clear()
    wanted = [(i, info.pts[i]) for i in range(456, 480)]
    with open_video_source(f"{s3_bucket.uri}/v", "long.mp4", creds) as source:
        got = [f.index for f in decode_frames(source, wanted) if f.frame is not None]
    read = sum(n for _, n in fetched)
    print(f"last 24 frames: {read} bytes fetched in {len(fetched)} ranged reads")
    assert got == list(range(456, 480)) and read < size / 3
