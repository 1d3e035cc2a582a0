"""Videos in a run's file list become their frames: one manifest row per frame, named as Lightly names it.

``expand_videos`` indexes every new video once (a demux pass, no decoding: ``index.index_video``) and
replaces its row by one row per frame (``key`` = frame name, the video's ``size``/``etag``/``mtime``, and
``video, frame_index, frame_pts, frame_seconds``, plus the video's ``video_frames``: a shard holding part of a
video still knows its end). A video that cannot be opened keeps one row under its own
key with the reason in ``video_problem``; one that breaks half way keeps its readable frames plus that row.
The stages then report those rows as ``corrupt`` with the reason; the run never fails for a bad video.
Because manifest shards are split by rows, a long video's frames spread over many shards (frame ranges),
and each shard seeks to its own first frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri
from lightly_airflow.video.index import (
    EMPTY_VIDEO,
    VideoIndex,
    index_video,
    is_transport_stream,
    transport_stream_problem,
)
from lightly_airflow.video.naming import frame_name, is_video_key, parse_frame_name
from lightly_airflow.video.source import ArchivedFileError, open_video_source

logger = logging.getLogger(__name__)

VIDEO_FIELDS = [
    pa.field(C.VIDEO, pa.string()),
    pa.field(C.FRAME_INDEX, pa.int64()),
    pa.field(C.FRAME_PTS, pa.int64()),
    pa.field(C.FRAME_SECONDS, pa.float64()),
    pa.field(C.VIDEO_PROBLEM, pa.string()),
    pa.field(C.VIDEO_SEEKABLE, pa.bool_()),
    pa.field(C.VIDEO_FRAMES, pa.int64()),
]


def video_mask(keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Which keys name videos (by extension, case-insensitive)."""
    from lightly_airflow.datasource.records import VIDEO_EXTENSIONS, extension_regex

    regex = extension_regex(tuple(VIDEO_EXTENSIONS))
    assert regex is not None
    return pc.fill_null(pc.match_substring_regex(keys, regex, ignore_case=True), False)


def index_videos(
    datasource_uri: str, keys: Iterable[str], credentials: StorageCredentials | None = None, *, workers: int = 4
) -> dict[str, VideoIndex]:
    """The demux index of each video key (read concurrently; a missing file gets a problem, never raises)."""
    fs, root = filesystem(datasource_uri, credentials)

    def one(key: str) -> VideoIndex:
        try:
            with open_video_source(datasource_uri, key, credentials, fs=fs, root=root) as source:
                info = index_video(source)
            if info.problem and info.problem != EMPTY_VIDEO and not info.n_frames and key.lower().endswith(".ts"):
                # (a TypeScript file shares the extension: said so, rather than "cannot open the video")
                head = _head(fs, join_uri(root, key))
                if not is_transport_stream(head):
                    info.problem = transport_stream_problem(head)
            return info
        except ArchivedFileError as exc:
            return VideoIndex(problem=str(exc))
        except FileNotFoundError:
            return VideoIndex(problem="the video disappeared after listing")

    keys = list(keys)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys) or 1))) as pool:
        return dict(zip(keys, pool.map(one, keys)))


def _head(fs: Any, path: str, size: int = 1024) -> bytes:
    """A file's first ``size`` bytes (one ranged read)."""
    with fs.open(path, "rb") as fh:
        return bytes(fh.read(size))


def expand_videos(
    files: pa.Table, datasource_uri: str, credentials: StorageCredentials | None = None, *, workers: int = 4,
    stream_notes: list[tuple[str, str]] | None = None,
) -> pa.Table:
    """``files`` (``key, size, etag, mtime``) with every video row replaced by its frame rows.

    The result has the video columns (null for images) and is sorted by key.

    :param stream_notes: receives ``(video key, note)`` for every video stream of a video that is not used
        (a second camera, a cover picture: ``index.video_stream``), also logged; the run report lists them.
    """
    base = files.select(list(C.MANIFEST_COLUMNS))
    is_video = video_mask(base.column(C.KEY))
    images = base.filter(pc.invert(is_video))
    videos = base.filter(is_video)
    images = images.append_column(VIDEO_FIELDS[0], pa.nulls(images.num_rows, pa.string()))
    for f in VIDEO_FIELDS[1:]:
        images = images.append_column(f, pa.nulls(images.num_rows, f.type))
    if not videos.num_rows:
        return images
    index = index_videos(datasource_uri, videos.column(C.KEY).to_pylist(), credentials, workers=workers)
    cols: dict[str, list[object]] = {name: [] for name in (*C.MANIFEST_COLUMNS, *(f.name for f in VIDEO_FIELDS))}
    frames_total = 0
    for row in videos.to_pylist():
        key = row[C.KEY]
        info = index[key]
        n = info.n_frames
        for i in range(n):
            cols[C.KEY].append(frame_name(key, i, n))
            for c in (C.SIZE, C.ETAG, C.MTIME):
                cols[c].append(row[c])
            cols[C.VIDEO].append(key)
            cols[C.FRAME_INDEX].append(i)
            cols[C.FRAME_PTS].append(info.pts[i])
            cols[C.FRAME_SECONDS].append(info.seconds(i))
            cols[C.VIDEO_PROBLEM].append(None)
            cols[C.VIDEO_SEEKABLE].append(info.seekable)
            cols[C.VIDEO_FRAMES].append(n)
        frames_total += n
        if info.sample_aspect_ratio != 1 and info.width and info.height:
            logger.info("video %r has non-square pixels (sample aspect ratio %s): its frames keep the stored %dx%d "
                        "grid (Lightly's frame coordinates, frame PNGs with pHYs), thumbnails show them %dx%d", key,
                        info.sample_aspect_ratio, info.width, info.height,
                        round(info.width * info.sample_aspect_ratio), info.height)
        for note in info.other_streams:
            logger.warning("video %r: %s", key, note)
            if stream_notes is not None:
                stream_notes.append((key, note))
        if info.problem:
            logger.warning("video %r: %s (%d frames kept)", key, info.problem, n)
            cols[C.KEY].append(key)
            for c in (C.SIZE, C.ETAG, C.MTIME):
                cols[c].append(row[c])
            cols[C.VIDEO].append(key)
            cols[C.FRAME_INDEX].append(None)
            cols[C.FRAME_PTS].append(None)
            cols[C.FRAME_SECONDS].append(None)
            cols[C.VIDEO_PROBLEM].append(info.problem)
            cols[C.VIDEO_SEEKABLE].append(info.seekable)
            cols[C.VIDEO_FRAMES].append(n)
    schema = pa.schema([images.schema.field(c) for c in C.MANIFEST_COLUMNS] + VIDEO_FIELDS)
    frames = pa.Table.from_pydict(cols, schema=schema)
    logger.info("%d videos became %d frames", videos.num_rows, frames_total)
    out = pa.concat_tables([images.cast(schema), frames])
    return out.take(pc.sort_indices(out, sort_keys=[(C.KEY, "ascending")]))


#: Frames of one video that cannot seek kept in one manifest shard at most: longer ones are split into even
#: pieces (each decodes the stream from its start up to its piece: 4x the frames for a one-hour 30 fps
#: stream instead of ~210x at 256 frames a shard), so one shard's embeddings stay bounded (16,384 x 1,280
#: float32 = 84 MB for EfficientNet-Lite0) instead of growing with the video (550 MB for that hour).
SEQUENTIAL_SHARD_FRAMES = 16_384


def shard_bounds(table: pa.Table, count: int) -> list[int]:
    """Row boundaries of ``count`` even manifest shards of ``table`` (sorted by key), moved so that no video that
    is decoded from its start (``decode.decodes_sequentially``: a raw ``.hevc``, an MPEG-PS under any name) is
    split.

    Every shard of such a video decoded it from its start up to its own range: S shards of an n-frame stream
    decoded ~S·n/2 frames instead of n (a one-hour raw stream at 30 fps is 421 shards of 256 frames: ~23
    million frames decoded for 108,000). Its frames now go to one shard, in order (up to
    :data:`SEQUENTIAL_SHARD_FRAMES`, else a few even pieces); a boundary inside them (from its first to its last
    row: other videos' frames may sort between them) moves to the nearer end,
    and shards left empty are dropped (fewer shards). ``[0, …, table.num_rows]``.
    """
    from lightly_airflow.video.decode import decodes_sequentially

    n = table.num_rows
    if count < 1:
        return [0]
    bounds = [n * i // count for i in range(count + 1)]
    if count < 2 or C.VIDEO not in table.column_names:
        return bounds
    videos = table.column(C.VIDEO).to_pylist()
    pts = table.column(C.FRAME_PTS).to_pylist()
    indices = table.column(C.FRAME_INDEX).to_pylist()
    seekable = (table.column(C.VIDEO_SEEKABLE).to_pylist() if C.VIDEO_SEEKABLE in table.column_names
                else [None] * n)
    # [first, last + 1) of the rows of each video that cannot seek. Its rows need not be consecutive: frame names
    # of videos that share a prefix interleave in key order (``clip-19-mpg.png``, ``clip-2-00-mpg.png`` …
    # ``clip-20-mpg.png``), so the span keeps the other video's rows between them with them.
    spans: dict[str, list[int]] = {}
    for row, video in enumerate(videos):
        if video is not None:
            spans.setdefault(video, [row, row])[1] = row
    runs: list[tuple[int, int]] = []  # merged spans, sorted
    for video, (lo, last) in sorted(spans.items(), key=lambda item: item[1]):
        rows = [r for r in range(lo, last + 1) if videos[r] == video]
        if len(rows) < 2 or not decodes_sequentially(seekable[lo], [pts[r] for r in rows if indices[r] is not None]):
            continue
        if runs and lo < runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], last + 1))
        else:
            runs.append((lo, last + 1))
    moved = []
    for b in bounds:
        for lo, hi in runs:
            if lo < b < hi:
                b = lo if b - lo < hi - b else hi
                break
        moved.append(b)
    for lo, hi in runs:  # a very long one still in a few even pieces: a shard's memory stays bounded
        pieces = -(-(hi - lo) // SEQUENTIAL_SHARD_FRAMES)
        moved.extend(lo + (hi - lo) * j // pieces for j in range(1, pieces))
    out = sorted(set(moved))
    if len(out) - 1 < count:
        logger.info("%d manifest shards instead of %d: the frames of a video that cannot seek stay in one shard",
                    len(out) - 1, count)
    return out


def known_videos(known: pa.Table | None) -> pa.Table | None:
    """``key, etag`` of the videos the datapool processed, derived from its frame rows (and the rows of videos
    that could not be read, kept under the video's own key), for the new-file diff of a listing."""
    if known is None or not known.num_rows:
        return known
    keys = known.column(C.KEY).to_pylist()
    etags = known.column(C.ETAG).to_pylist()
    out_k: list[str] = []
    out_e: list[str | None] = []
    for k, e in zip(keys, etags):
        parsed = parse_frame_name(k)
        if parsed is not None:
            out_k.append(parsed[0])
            out_e.append(e)
        elif is_video_key(k):
            out_k.append(k)
            out_e.append(e)
    table = pa.table({C.KEY: pa.array(out_k, pa.string()), C.ETAG: pa.array(out_e, pa.string())})
    table = table.group_by([C.KEY, C.ETAG]).aggregate([])
    rest = known.select([C.KEY, C.ETAG]).cast(pa.schema([pa.field(C.KEY, pa.string()), pa.field(C.ETAG, pa.string())]))
    return pa.concat_tables([rest, table])


def with_frame_values(pool: object, reuse: pa.Table) -> pa.Table:
    """``reuse`` (``key, etag, embedding`` from the pool) plus the pool's content hash and ``lightly.*``
    metrics of its video frames, so the embed task copies them instead of decoding an unchanged video again."""
    from lightly_airflow.datapool.rows import COMMIT_VERSION

    frames = [k for k in reuse.column(C.KEY).to_pylist() if parse_frame_name(k) is not None]
    if not frames:
        return reuse
    from lightly_airflow.datapool.errors import UnknownColumnError
    from lightly_airflow.metadata.metrics import METRICS

    names = [C.CONTENT_HASH, *(C.lightly_metadata_column(m) for m in (*METRICS, "corruptness"))]
    try:
        table = pool.read(columns=[C.KEY, C.ETAG, COMMIT_VERSION, *names])  # type: ignore[attr-defined]
    except UnknownColumnError:  # a pool written before some metric existed: take what it has
        table = pool.read()  # type: ignore[attr-defined]
    wanted = [c for c in names if c in table.column_names]
    rows = table.select([C.KEY, C.ETAG, COMMIT_VERSION, *wanted])
    rows = rows.filter(pc.is_in(rows.column(C.KEY), pa.array(frames, pa.string())))
    rows = rows.sort_by([(C.KEY, "ascending"), (COMMIT_VERSION, "descending")])
    keys = rows.column(C.KEY).to_pylist()
    first = [i for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    rows = rows.take(pa.array(first, pa.int64())).drop_columns([COMMIT_VERSION])
    # A frame is reused only with every metric: one committed before a metric existed (uniformRowRatio, added
    # after pools were written) is decoded again, else a THRESHOLD on that metric would drop it as missing.
    complete = pa.array([True] * rows.num_rows, pa.bool_())
    for name in names[1:]:
        if not name.endswith(".sizeInBytes"):  # a frame has no file size: always null
            complete = (pc.and_(complete, pc.is_valid(rows.column(name))) if name in rows.column_names
                        else pa.array([False] * rows.num_rows, pa.bool_()))
    stale = rows.filter(pc.invert(complete)).column(C.KEY)
    if len(stale):
        logger.info("%d frames of unchanged videos lack metrics in the pool (committed before they existed): "
                    "they are decoded and embedded again.", len(stale))
        reuse = reuse.filter(pc.invert(pc.is_in(reuse.column(C.KEY), value_set=stale)))
        rows = rows.filter(complete)
    if not wanted or not rows.num_rows:
        return reuse
    rows = rows.set_column(1, C.ETAG, rows.column(C.ETAG).cast(pa.string()))
    # Align by key (Acero cannot join tables with list columns), then only where the content is the same.
    index = pc.index_in(reuse.column(C.KEY), value_set=rows.column(C.KEY))
    same = pc.fill_null(pc.equal(reuse.column(C.ETAG).cast(pa.string()), rows.column(C.ETAG).take(index)), False)
    index = pc.if_else(same, index, pa.scalar(None, pa.int32()))
    out = reuse
    for name in wanted:
        out = out.append_column(rows.schema.field(name), rows.column(name).take(index))
    return out.replace_schema_metadata(reuse.schema.metadata)
