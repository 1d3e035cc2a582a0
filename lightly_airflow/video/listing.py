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
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import FRAME_RE
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri
from lightly_airflow.video.index import (
    EMPTY_VIDEO,
    VideoIndex,
    index_video,
    is_transport_stream,
    transport_stream_problem,
)
from lightly_airflow.video.naming import frame_name, is_video_key, parse_frame_name
from lightly_airflow.video.source import INDEX_BLOCK_SIZE, ArchivedFileError, open_video_source

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
            with open_video_source(datasource_uri, key, credentials, fs=fs, root=root,
                                   block_size=INDEX_BLOCK_SIZE) as source:
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
    stream_notes: list[tuple[str, str]] | None = None, notes: list[str] | None = None,
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
    alpha: list[str] = []
    still: list[str] = []
    damaged: list[tuple[str, int]] = []
    whole: list[tuple[str, int, str]] = []
    estimated: list[tuple[str, int]] = []
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
        if info.container_format and (info.container_format.endswith("_pipe") or info.container_format == "image2"):
            logger.warning("video %r is a still image (FFmpeg reads it as %s), not a video: its one frame is a sample "
                           "named as a video's frame; give it its image extension to list it as an image", key,
                           info.container_format)
            still.append(key)
        if info.alpha:
            alpha.append(key)
            logger.warning("video %r has an alpha channel (transparency): its frames are read without it, as Lightly's "
                           "VideoDataset reads them (a transparent area shows the colour stored under it)", key)
        for note in info.other_streams:
            logger.warning("video %r: %s", key, note)
            if stream_notes is not None:
                stream_notes.append((key, note))
        if info.lost_frames:
            damaged.append((key, info.lost_frames))
        if info.estimated_lost_frames:
            estimated.append((key, info.estimated_lost_frames))
        if info.read_whole:
            whole.append((key, int(row[C.SIZE] or 0), info.read_whole))
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
    if notes is not None:
        notes.extend(_video_notes(alpha, still, damaged, whole, estimated))
    out = pa.concat_tables([images.cast(schema), frames])
    return out.take(pc.sort_indices(out, sort_keys=[(C.KEY, "ascending")]))


def _video_notes(alpha: list[str], still: list[str], damaged: list[tuple[str, int]],
                 whole: list[tuple[str, int, str]] | None = None,
                 estimated: list[tuple[str, int]] | None = None) -> list[str]:
    """The run's notes on the videos whose frames leave something out: with an alpha channel, still images, and
    ``damaged``: ``(video, frames missing)`` of the videos that lost frames to damaged data (each also a problem
    row with the fix; the count of frames lost was nowhere before); and ``whole``: ``(video, size, why)`` of the
    remote videos whose index pass read the whole file (``VideoIndex.read_whole``; an MP4/MOV's reads its header);
    ``estimated``: ``(video, frames)`` of the MPEG-PS videos damaged up to their end, whose lost frames are an estimate
    from the bytes (``VideoIndex.estimated_lost_frames``; they were added to the exact count before, unsaid)."""

    def some(keys: list[str]) -> str:
        return ", ".join(repr(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")

    out = []
    if alpha:
        out.append(f"{len(alpha):,} videos have an alpha channel (transparency): their frames are read without it, as "
                   f"Lightly's VideoDataset reads them (a transparent area shows the colour stored under it), e.g. "
                   f"{some(alpha)}")
    if still:
        out.append(f"{len(still):,} files with a video extension are still images: the one frame of each is a sample "
                   f"named as a video's frame; give them their image extension to list them as images, e.g. "
                   f"{some(still)}")
    if damaged:
        out.append(f"{sum(n for _, n in damaged):,} frames are missing from {len(damaged):,} damaged videos (the "
                   "demuxer skipped unreadable data; each video's problem row says where and the fix), e.g. "
                   + ", ".join(f"{key!r} ({n:,})" for key, n in damaged[:3]) + (", ..." if len(damaged) > 3 else ""))
    if estimated:
        out.append(f"about {sum(n for _, n in estimated):,} frames are missing at the damaged ends of "
                   f"{len(estimated):,} MPEG-PS video{'s' * (len(estimated) != 1)}: an estimate from their unreadable bytes (a program stream has no "
                   "frame count; each video's problem row says so), e.g. "
                   + ", ".join(f"{key!r} (about {n:,})" for key, n in estimated[:3])
                   + (", ..." if len(estimated) > 3 else ""))
    if whole:
        reasons = sorted({why for _, _, why in whole})
        out.append(f"{len(whole):,} remote video{'s' * (len(whole) != 1)} ({sum(n for _, n, _ in whole) / 1e6:,.1f} MB) "
                   f"were read whole to list their frames, because {'; or '.join(reasons)} (an MP4/MOV's frames are "
                   f"listed from its header and index only), e.g. {some([key for key, _, _ in whole])}")
    return out


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

    def arrow(keys: pa.Array) -> pa.Array:  # a frame's video, else a video's own key
        return pc.coalesce(_frame_videos(keys), pc.if_else(video_mask(keys), keys, pa.scalar(None, pa.string())))

    def rule(key: str) -> str | None:
        video = _frame_video(key)
        return video if video is not None else key if is_video_key(key) else None

    videos = _per_key(known.column(C.KEY), arrow, rule)
    is_video = pc.is_valid(videos)
    table = pa.table({C.KEY: videos.filter(is_video), C.ETAG: known.column(C.ETAG).cast(pa.string()).filter(is_video)})
    table = table.group_by([C.KEY, C.ETAG]).aggregate([])
    rest = known.select([C.KEY, C.ETAG]).cast(pa.schema([pa.field(C.KEY, pa.string()), pa.field(C.ETAG, pa.string())]))
    return pa.concat_tables([rest, table])


def frame_videos(keys: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The video key of each video frame's key (:func:`~lightly_airflow.video.naming.parse_frame_name`:
    ``sub/clip-007-mp4.png`` -> ``sub/clip.mp4``), null for every other key: in Arrow, Python only for the few keys :func:`_per_key` names."""
    return _per_key(keys, _frame_videos, _frame_video)


def _frame_video(key: str) -> str | None:
    parsed = parse_frame_name(key)
    return parsed[0] if parsed is not None else None


#: :func:`parse_frame_name`'s rule for Arrow (RE2), on a key without its extension: its own regex and case rule,
#: the frame's stem (``.+``) being the characters of the key's last path component before the frame's end.
_FRAME_STEM = "^(?P<stem>.+)"
if not FRAME_RE.pattern.startswith(_FRAME_STEM):
    raise RuntimeError(f"lightly_airflow/video/listing.py expects the frame regex of lightly_dir.py to start with "
                       f"{_FRAME_STEM!r}, not {FRAME_RE.pattern!r}: update _FRAME_KEY to the new frame name rule.")
_FRAME_KEY = ("(?i)" if FRAME_RE.flags & re.IGNORECASE else "") + FRAME_RE.pattern.replace(_FRAME_STEM, "(?:^|/)[^/]+")


def _frame_videos(keys: pa.Array) -> pa.Array:
    """:func:`frame_videos` by Arrow alone: exact for the keys :func:`_per_key` leaves to it."""
    # key_stem(key): the name's last extension off, unless nothing is left before it
    stems = pc.replace_substring_regex(keys, r"([^/])\.[^./]*$", r"\1", max_replacements=1)
    frame = pc.fill_null(pc.match_substring_regex(stems, _FRAME_KEY), False)
    # <stem>-<index>-<extension> -> <stem>.<extension> (neither the index nor the extension has a dash)
    parts = pc.split_pattern(stems.filter(frame), "-", max_splits=2, reverse=True)
    videos = pc.binary_join_element_wise(pc.list_element(parts, 0), ".", pc.list_element(parts, 2), "")
    videos = pc.replace_substring_regex(videos, r"^/([^/]*)$", r"\1", max_replacements=1)  # ("/a-1-mp4.png": a.mp4)
    return pc.replace_with_mask(pa.nulls(len(keys), pa.string()), frame, videos)


def _per_key(keys: pa.Array | pa.ChunkedArray, arrow: Callable[[pa.Array], pa.Array],
             rule: Callable[[str], str | None]) -> pa.ChunkedArray:
    """``arrow(keys)`` (a vectorised Python ``rule``), with ``rule(key)`` itself where Arrow's RE2 may read a key
    otherwise than Python's ``re``: keys that are not ASCII (Python's ``\\d`` and case folding are Unicode's:
    ``clip-٣-mp4``, ``clip-1-avı``) or hold a line break (Python's ``$`` also matches before a final one). A null
    key gives null."""
    chunks = keys.chunks if isinstance(keys, pa.ChunkedArray) else [keys]
    out = []
    for chunk in chunks:
        chunk = chunk.cast(pa.string())
        values = arrow(chunk)
        plain = pc.and_(pc.string_is_ascii(chunk), pc.invert(pc.match_substring(chunk, "\n")))
        other = pc.invert(pc.fill_null(plain, True))  # (a null key is no video)
        if pc.any(other).as_py():
            odd = chunk.filter(other).to_pylist()
            logger.debug("%d keys not ASCII or with a line break: read by the Python rule", len(odd))
            values = pc.replace_with_mask(values, other, pa.array([rule(k) for k in odd], pa.string()))
        out.append(values)
    return pa.chunked_array(out, pa.string())


def with_pool_frame_values(pool: object, reuse: pa.Table) -> pa.Table:
    """``reuse`` (``key, etag, embedding`` from the pool) plus the pool's content hash and ``lightly.*``
    metrics of its video frames, so the embed task copies them instead of decoding an unchanged video again."""
    from lightly_airflow.datapool.rows import COMMIT_VERSION

    keys = reuse.column(C.KEY)
    frames = keys.filter(pc.is_valid(frame_videos(keys))).cast(pa.string()).combine_chunks()
    if not len(frames):
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
    rows = rows.filter(pc.is_in(rows.column(C.KEY), frames))
    rows = rows.sort_by([(C.KEY, "ascending"), (COMMIT_VERSION, "descending")])
    keys = rows.column(C.KEY).combine_chunks()
    first = pc.index_in(pc.unique(keys), value_set=keys)  # each key's first row: its latest commit
    rows = rows.take(first).drop_columns([COMMIT_VERSION])
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
