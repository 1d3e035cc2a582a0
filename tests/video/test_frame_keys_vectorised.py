"""A datapool's video frame rows read by Arrow, not by a Python call a row: ``known_videos`` runs on every sensor poke
and list task (0.64 s for 97,000 rows, 1.94 s for 388,000 in Python) and ``with_pool_frame_values`` on every list task.
Both give exactly what ``parse_frame_name`` and ``is_video_key`` say of each key, the tricky ones included: Python's
``\\d`` and case folding are Unicode's (RE2's are not), its ``$`` matches before a final line break."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.video import listing
from lightly_airflow.video.listing import frame_videos, known_videos, with_pool_frame_values
from lightly_airflow.video.naming import VIDEO_EXTENSIONS, frame_name, is_video_key, parse_frame_name

TRICKY = [
    "a/clip-007-mp4.png", "clip-007-MP4.PNG", "sub/dir/clip-7-Mov.jpg", "x-1-2-m2ts.jpg", "x--1-mp4.png",
    "clip-٣-mp4.png", "clip-１２-mp4.png", "é/x-1-webm.png", "é/v.mp4",  # non-ASCII digits and folders
    "clip-1-avı.png", "clip-1-tſ.png", "clip-1-mKv.png", "v.tſ", "v.avı", "v.mKv",  # Unicode case folding
    "clip-1-mp4\n.png", "clip-1-mp4\n", "a\nb/clip-1-mp4.png", "x.mp4\n", "x-1-mp4.png\n",  # line breaks
    "-1-mp4.png", "a/-1-mp4.png", ".x-1-mp4", "..x-1-mp4", "x-1-mp4", "x-1-mp4.", "a.b-1-mp4", "a.b-1-mp4.png",
    "d.d/x-1-mp4.png", "x-1-mp4.mp4", "x-01-mp5.png", "x-1a-mp4.png", "x-1-mp4-.png", "x-1-mp4x.png", "x1-mp4.png",
    "/x-1-mp4.png", "//x-1-mp4.png", "/a/x-1-mp4.png", "a//x-1-mp4.png", "a///x-1-mp4.png", "/", "", "a/", "/.png",
    "/-1-mp4.png", "dir.mp4/img.png", "dir-1-mp4/img.png", "dir-1-mp4/", ".mp4", "a/.mp4", "img.png", "IMG.JPG",
    "v.MOV", "v.m2ts", "v.ts.png", "v.hevc", "a/b/c/clip-000-mpeg.PNG", "x-1-ts.png", "x-1-m4v.tar.gz",
]


def _keys() -> list[str]:
    """The tricky keys, and frames of videos of every extension in three cases, in nested folders."""
    keys = list(TRICKY)
    for ext in VIDEO_EXTENSIONS:
        for case in (ext, ext.upper(), ext.title()):
            for folder in ("", "a/", "a/b.c/", "x-1-mp4/", "/"):
                video = f"{folder}clip-2.{case}"
                keys.append(video)
                for n in (1, 12, 1200):
                    frame = frame_name(video, n - 1, n)
                    keys += [frame, frame.removesuffix(".png") + ".JPG", frame.removesuffix(".png")]
    return keys


def _parsed(key: str) -> str | None:
    parsed = parse_frame_name(key)
    return None if parsed is None else parsed[0]


def _per_row_known_videos(known: pa.Table) -> pa.Table:
    """``known_videos`` as a Python loop over the rows (the rule it vectorises)."""
    out_k, out_e = [], []
    for k, e in zip(known.column(C.KEY).to_pylist(), known.column(C.ETAG).to_pylist(), strict=True):
        video = _parsed(k)
        if video is not None or is_video_key(k):
            out_k.append(video if video is not None else k)
            out_e.append(e)
    table = pa.table({C.KEY: pa.array(out_k, pa.string()), C.ETAG: pa.array(out_e, pa.string())})
    rest = known.select([C.KEY, C.ETAG]).cast(pa.schema([pa.field(C.KEY, pa.string()), pa.field(C.ETAG, pa.string())]))
    return pa.concat_tables([rest, table.group_by([C.KEY, C.ETAG]).aggregate([])])


def test_frame_videos_are_parse_frame_name_of_every_key() -> None:
    keys = _keys()
    assert len(keys) > 1000
    expected = [_parsed(k) for k in keys]
    assert frame_videos(pa.array(keys)).to_pylist() == expected
    chunked = pa.chunked_array([keys[:10], keys[10:500], [], keys[500:]], pa.large_string())
    assert frame_videos(chunked).to_pylist() == expected
    assert frame_videos(pa.array(["clip-1-mp4.png", None])).to_pylist() == ["clip.mp4", None]
    # (the keys that need Python: the frame of a video with Arabic-Indic digits, a dotless i, a final line break)
    assert frame_videos(pa.array(["clip-٣-mp4.png", "clip-1-avı.png", "clip-1-mp4\n"])).to_pylist() == [
        "clip.mp4", "clip.avı", "clip.mp4"]


def test_known_videos_is_the_per_row_rule() -> None:
    keys = _keys()
    known = pa.table({C.KEY: keys, C.ETAG: [f"e{i % 7}" for i in range(len(keys))]})
    assert known_videos(known).equals(_per_row_known_videos(known))
    pairs = set(zip(known_videos(known).column(C.KEY).to_pylist(), known_videos(known).column(C.ETAG).to_pylist()))
    assert ("a/clip.mp4", "e0") in pairs and ("clip.mp4", "e5") in pairs  # (frames 0 and 5: Arabic digit, ASCII)


def test_python_reads_only_the_keys_re2_reads_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counted(key: str) -> tuple[str, int] | None:
        calls.append(key)
        return parse_frame_name(key)

    monkeypatch.setattr(listing, "parse_frame_name", counted)
    plain = [frame_name(f"cams/c{i % 5}/clip-{i}.mp4", f, 300) for i in range(20) for f in range(300)]
    odd = ["clip-٣-mp4.png", "é/v.mp4", "clip-1-mp4\n"]
    known = pa.table({C.KEY: plain + odd, C.ETAG: ["e"] * (len(plain) + len(odd))})
    videos = known_videos(known).slice(known.num_rows)
    assert sorted(videos.column(C.KEY).to_pylist()) == sorted(
        {*(f"cams/c{i % 5}/clip-{i}.mp4" for i in range(20)), "clip.mp4", "é/v.mp4"})
    assert calls == odd  # (was one call a row: 6,003)


class _Pool:
    """A pool's committed rows (what ``Datapool.read`` returns), for ``with_pool_frame_values``."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return self.table if columns is None else self.table.select(columns)


def test_with_pool_frame_values_copies_each_frame_s_latest_commit() -> None:
    from lightly_airflow.metadata.metrics import METRICS

    frames = ["a/clip-0-mp4.png", "a/clip-1-mp4.png", "clip-٣-MOV.png", "b/x-1-mp4x.png", "img.png"]
    metrics = [C.lightly_metadata_column(m) for m in (*METRICS, "corruptness")]
    rows = []
    for version in (2, 1):  # (the latest commit first: its values win whatever the order)
        for i, key in enumerate(frames):
            row = {C.KEY: key, C.ETAG: "e", COMMIT_VERSION: version, C.CONTENT_HASH: f"h{i}-v{version}"}
            rows.append({**row, **{m: float(10 * i + version) for m in metrics}})
    pool = _Pool(pa.Table.from_pylist(rows))
    reuse = pa.table({C.KEY: frames, C.ETAG: ["e"] * len(frames), C.EMBEDDING: [[0.5, 1.0]] * len(frames)})
    out = with_pool_frame_values(pool, reuse)
    assert out.column(C.KEY).to_pylist() == frames
    # frames (the Arabic-Indic digit one too) take their latest commit's values; the image and the near miss none
    assert out.column(C.CONTENT_HASH).to_pylist() == ["h0-v2", "h1-v2", "h2-v2", None, None]
    assert out.column(metrics[0]).to_pylist() == [2.0, 12.0, 22.0, None, None]
