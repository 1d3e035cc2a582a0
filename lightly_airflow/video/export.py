"""Selected frames written out once, as PNG, under ``<lightly_uri>/.lightly/frames/<frame name>``.

Idempotent by content identity: every PNG records the etag of the video version it shows (a ``tEXt`` chunk
:data:`ETAG_CHUNK`); a frame whose PNG exists for the same video version is not written again (a retried run
writes nothing twice). A frame name has one PNG, the current version's pick: one written from a former version
of the video (replaced under the same name) is rewritten from the new content only when the new version's frame
of that name is selected; the PNGs of former picks the new version does not select, or no longer has, are removed
(``video.supersede``), never rewritten from content nobody picked. A PNG appears whole or not at all: locally it is written to a temporary file in the same folder and renamed, on an
object store it is one PUT (an object is never visible half-written). Frames are decoded range by range
(one seek per run of consecutive selected frames), never extracted to disk, and encoded on every core.
"""

from __future__ import annotations

import io
import logging
import os
from collections import defaultdict, deque
from fractions import Fraction
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.cores import usable_cores
from lightly_airflow.lightly_dir import lightly_root
from lightly_airflow.pixels import PNG_LEVEL
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, map_io, protocol_of, write_local
from lightly_airflow.video.decode import decode_frames, quarter_turns, sample_aspect, to_rgb, upright_image
from lightly_airflow.video.source import open_video_source

logger = logging.getLogger(__name__)

FRAMES_DIR = "frames"
#: The PNG text chunk naming the etag (content identity) of the video version a frame PNG was written from.
ETAG_CHUNK = "lightly-video-etag"
#: The PNG text chunk with the video's sample aspect ratio (``32:27``) where its pixels are not square.
SAR_CHUNK = "lightly-sample-aspect-ratio"
#: Bytes read from an existing PNG to find :data:`ETAG_CHUNK` (it is written right after the header).
HEAD_BYTES = 4096
#: Frames a PNG thread may have waiting: decoded ahead while the threads encode, bounded in memory (a 4K frame
#: is 25 MB as RGB).
QUEUED_PER_THREAD = 2


def frame_png_uri(lightly_uri: str, key: str) -> str:
    """Where the PNG of frame ``key`` lives: ``<lightly_uri>/.lightly/frames/<key>``."""
    return join_uri(lightly_root(lightly_uri), FRAMES_DIR, key)


def _png(frame: Any, etag: str) -> bytes:
    """The frame's stored pixel grid (Lightly's frame coordinates: ``.lightly/predictions`` boxes fit it), upright;
    non-square pixels (anamorphic DV/DVD video) are recorded, not resampled: PNG's ``pHYs`` chunk with unit 0
    (the pixel aspect ratio) and the text chunk :data:`SAR_CHUNK`."""
    return _png_bytes(*_picture(frame), etag)


def _picture(frame: Any) -> tuple[Any, Fraction]:
    """The frame as an upright RGB image, as players show it, with the sample aspect ratio of its pixels (the
    PNG's rows and columns). The frame's own thread converts it (a PyAV reformatter is not shared)."""
    sar = sample_aspect(frame)
    if sar != 1 and quarter_turns(frame) % 2:
        sar = 1 / sar  # a turned frame's stored columns are the PNG's rows
    return upright_image(to_rgb(frame, "png").to_image(), frame), sar


def _png_bytes(image: Any, sar: Fraction, etag: str) -> bytes:
    """The PNG of :func:`_picture`'s image (Pillow's encoder releases the GIL: frames encode on several threads)."""
    import struct
    import zlib

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(ETAG_CHUNK, etag)
    if sar != 1:
        info.add_text(SAR_CHUNK, f"{sar.numerator}:{sar.denominator}")
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, compress_level=PNG_LEVEL)
    data = buf.getvalue()
    if sar != 1:  # Pillow writes pHYs only from a dpi (unit: metre); unit 0 says "aspect ratio only"
        body = b"pHYs" + struct.pack(">IIB", sar.denominator, sar.numerator, 0)  # pixels per unit: x ∝ 1/width
        at = 8 + 25  # after the signature and IHDR
        data = data[:at] + struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body)) + data[at:]
    return data


def stored_frame_etag(lightly_uri: str, key: str, credentials: StorageCredentials | None = None) -> str | None | bool:
    """The video etag the stored PNG of frame ``key`` records (its first :data:`HEAD_BYTES` only); ``False`` when
    there is no PNG (``None``: one without an etag)."""
    fs, path = filesystem(frame_png_uri(lightly_uri, key), credentials)
    return _written_etag(fs, path)


def png_etag(head: bytes) -> str | None:
    """The video etag recorded in a frame PNG's first bytes, or ``None`` (no such chunk: a PNG of an older
    version of this code, or not ours)."""
    import struct

    if not head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    at = 8
    while at + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[at : at + 8])
        if kind == b"IDAT" or at + 8 + length > len(head):
            return None
        if kind == b"tEXt":
            name, _, value = head[at + 8 : at + 8 + length].partition(b"\x00")
            if name.decode("latin-1") == ETAG_CHUNK:
                return value.decode("latin-1")
        at += 12 + length
    return None


def _written_etag(fs: Any, path: str) -> str | None | bool:
    """``False`` when there is no PNG at ``path``, else the etag it records (``None``: none recorded)."""
    try:
        head = fs.cat_file(path, start=0, end=HEAD_BYTES)
    except FileNotFoundError:
        return False
    return png_etag(head)


def _put(fs: Any, path: str, data: bytes, local: bool) -> None:
    if local:  # (one temporary name per PNG: a killed write's is taken over by the next; mkstemp's stayed, 0600)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_local(data, path)
    else:
        fs.pipe_file(path, data)


def write_selected_frames(
    rows: pa.Table, *, datasource_uri: str, lightly_uri: str | None = None,
    datasource_credentials: StorageCredentials | None = None, lightly_credentials: StorageCredentials | None = None,
    remove: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Write the PNG of every frame row of ``rows`` (``key, etag, video, frame_index, frame_pts``) that has no
    PNG of the same video version yet, and remove the PNGs of the frame keys in ``remove``.

    :returns: counts ``written`` (``rewritten`` of them replaced a PNG of a former video version),
        ``existing``, ``removed``, ``failed`` and ``folder`` (the frames folder's URI); a frame that cannot be
        decoded is logged and counted, never raised.
    """
    lightly_uri = lightly_uri or datasource_uri
    folder = join_uri(lightly_root(lightly_uri), FRAMES_DIR)
    counts: dict[str, Any] = {"written": 0, "rewritten": 0, "existing": 0, "removed": 0, "failed": 0, "folder": folder}
    if C.VIDEO not in rows.column_names or not (rows.num_rows or remove):
        return counts
    fs, _ = filesystem(folder, lightly_credentials)
    local = protocol_of(folder) == "file"
    for key in sorted(remove):  # frames a replaced video no longer has: their PNG shows content that is gone
        _, path = filesystem(frame_png_uri(lightly_uri, key), lightly_credentials)
        try:
            fs.rm_file(path)
            counts["removed"] += 1
        except FileNotFoundError:
            pass
    todo: dict[str, list[tuple[str, int, int | None, str]]] = defaultdict(list)
    etags = rows.column(C.ETAG).to_pylist() if C.ETAG in rows.column_names else [None] * rows.num_rows
    frames = [(r, "" if etag is None else str(etag)) for r, etag in zip(
        rows.select([C.KEY, C.VIDEO, C.FRAME_INDEX, C.FRAME_PTS]).to_pylist(), etags)
        if r[C.VIDEO] is not None and r[C.FRAME_INDEX] is not None]
    paths = [filesystem(frame_png_uri(lightly_uri, r[C.KEY]), lightly_credentials)[1] for r, _ in frames]
    # what each PNG shows now: one read per frame, on an object store a round trip each, so on IO threads
    for (r, etag), path, written in zip(frames, paths, map_io(lambda path: _written_etag(fs, path), paths)):
        if written is not False and written == etag:
            counts["existing"] += 1
            continue
        if written is not False:
            counts["rewritten"] += 1
            logger.info("frame PNG %s shows video version %r, the video is now %r: rewriting it", path, written, etag)
        todo[r[C.VIDEO]].append((path, int(r[C.FRAME_INDEX]), r[C.FRAME_PTS], etag))
    if todo:
        _write_frames(todo, counts, fs, local, datasource_uri, datasource_credentials)
    logger.info("selected frames in %s: %d written (%d rewritten from a replaced video), %d already there, "
                "%d removed (frames a replaced video no longer has), %d failed", folder, counts["written"],
                counts["rewritten"], counts["existing"], counts["removed"], counts["failed"])
    return counts


def _write_frames(todo: dict[str, list[tuple[str, int, int | None, str]]], counts: dict[str, Any], fs: Any,
                  local: bool, datasource_uri: str, credentials: StorageCredentials | None) -> None:
    """Decode each video's frames of ``todo`` (``path, index, pts, etag``), one video after another, while up to
    :func:`cores.usable_cores` threads encode and store their PNGs (the encoding is most of a frame's time: 1280 x
    720 takes ~0.26 s, the decode a few ms), at most :data:`QUEUED_PER_THREAD` frames a thread waiting."""
    from concurrent.futures import Future, ThreadPoolExecutor

    workers = usable_cores()
    src_fs, src_root = filesystem(datasource_uri, credentials)
    queued: deque[Future[None]] = deque()

    def store(path: str, image: Any, sar: Fraction, etag: str) -> None:
        _put(fs, path, _png_bytes(image, sar, etag), local)

    def finish(future: Future[None]) -> None:
        future.result()  # a store's error is raised, as when written on this thread
        counts["written"] += 1

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lightly-frames") as pool:
        try:
            for video, frames in sorted(todo.items()):
                paths = {index: (path, etag) for path, index, _, etag in frames}
                handed = 0  # frames decoded or given up: the rest fail with the video
                try:
                    with open_video_source(datasource_uri, video, credentials, fs=src_fs, root=src_root) as source:
                        for got in decode_frames(source, [(index, pts) for _, index, pts, _ in frames]):
                            handed += 1
                            if got.frame is None:
                                counts["failed"] += 1
                                logger.warning("cannot write frame %d of %r: %s", got.index, video, got.reason)
                                continue
                            path, etag = paths[got.index]
                            queued.append(pool.submit(store, path, *_picture(got.frame), etag))
                            while len(queued) > workers * QUEUED_PER_THREAD:
                                finish(queued.popleft())
                except FileNotFoundError:
                    counts["failed"] += len(frames) - handed
                    logger.warning("cannot write the frames of %r: the video is gone", video)
            while queued:
                finish(queued.popleft())
        finally:
            for future in queued:
                future.cancel()


def frame_png(
    datasource_uri: str, row: dict[str, Any], *, lightly_uri: str | None = None,
    credentials: StorageCredentials | None = None, lightly_credentials: StorageCredentials | None = None,
    selected: bool = False, origin: list[str] | None = None,
) -> bytes:
    """The PNG of one frame row (``key, etag, video, frame_index, frame_pts``), as a run writes it: the PNG under
    ``.lightly/frames/`` when one shows this video version (selected frames), else the frame decoded now (one
    seek into the video; upright, as players show it). For the UI, where a frame is no file of the datasource.

    :param selected: the frame was selected, so its run wrote the PNG: decoding instead is logged as a warning
        (for an unselected frame, the UI's case, decoding is the normal path).
    :param origin: receives ``"stored"`` (the PNG under ``.lightly/frames/`` of this video version: the frame the
        row describes, whatever the video is now) or ``"decoded"`` (from the video as it is now).
    :raises FileNotFoundError: when the video is gone.
    :raises ValueError: when the frame cannot be decoded (the reason).
    """
    etag = "" if row.get(C.ETAG) is None else str(row[C.ETAG])
    fs, path = filesystem(frame_png_uri(lightly_uri or datasource_uri, str(row[C.KEY])), lightly_credentials or credentials)
    try:
        data: bytes = fs.cat_file(path)  # one read: the etag chunk is in its first bytes
        if png_etag(data[:HEAD_BYTES]) == etag:
            if origin is not None:
                origin.append("stored")
            return data
        if selected:
            logger.warning("frame PNG %s shows another version of %r: decoding the frame", path, row[C.VIDEO])
    except FileNotFoundError:
        if selected:  # else: not selected (no PNG written), decode it
            logger.warning("frame PNG %s of a selected frame is missing: decoding the frame", path)
    except OSError as exc:  # an unreadable frames folder: decode instead
        logger.info("frame PNG %s unreadable (%s): decoding the frame", path, exc)
    with open_video_source(datasource_uri, str(row[C.VIDEO]), credentials) as source:
        for got in decode_frames(source, [(int(row[C.FRAME_INDEX]), row.get(C.FRAME_PTS))], threads=False):
            if got.frame is None:
                raise ValueError(f"frame {row[C.FRAME_INDEX]} of {row[C.VIDEO]!r} cannot be decoded: {got.reason}")
            if origin is not None:
                origin.append("decoded")
            return _png(got.frame, etag)
    raise ValueError(f"frame {row[C.FRAME_INDEX]} of {row[C.VIDEO]!r} was not decoded")
