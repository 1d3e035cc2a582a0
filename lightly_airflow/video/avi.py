"""AVI frame times from the file's own chunk index (``idx1``) rather than from the chunks the demuxer read.

FFmpeg times an AVI's video chunks by counting them as it reads them (``frame_offset`` in ``avidec.c``): chunks of
a damaged ``movi`` list that it resyncs past are not counted, so every frame after them was timed early (a 48-frame
file with 1.5 kB of flipped bytes: the packets read as frames 12-44 show frames 15-47, and the three lost frames
were "the video ends early"). The ``idx1`` chunk at the end of the file lists every chunk with its offset; a video
chunk's place among its stream's entries is its time in ticks of the stream's time base (each chunk lasts one
tick, empty ones included: FFmpeg counts those too, and its seeking reads the same index). A packet at a listed
offset gets that time, so the frames after the damage keep theirs and the skip is counted as missing frames
(``index.missing_frames``). OpenDML files (over 1 GB, indexed by ``indx``), files whose header or index cannot be
read, and files with bytes taken out of the ``movi`` list (its size then runs past the end, and the chunks after
moved) keep FFmpeg's times. Reading ``idx1`` costs one ranged read of 16 bytes a chunk (all streams) the first time
a version of a video is opened in a process (:func:`_cached_positions`): 0.35 ms for 1,000 frames, beside a 55 ms
decode of them at 160x120.
"""

from __future__ import annotations

import os
import struct
import threading
from array import array
from collections import OrderedDict
from typing import Any

#: one ``idx1`` entry: chunk id, flags, offset, size
IDX1_ENTRY = struct.Struct("<4sIII")
#: top-level RIFF chunks walked to find ``movi`` and ``idx1`` (``hdrl``, ``INFO``, ``JUNK``, ``movi``, ``idx1``, …)
MAX_CHUNKS = 64
#: AVI indexes (one video stream's chunk offsets each) kept in a process: :func:`_cached_positions`
CACHED_INDEXES = 16
_CACHE: OrderedDict[tuple[Any, ...], array[int] | None] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _top_chunks(source: Any) -> tuple[int, int, int] | None:
    """``(movi, idx1, idx1_size)`` of an AVI: the offset of its ``movi`` fourcc and of its ``idx1`` data; ``None``
    when it is no AVI (RIFF ``AVI ``) or its top-level chunks do not lead to both."""
    from lightly_airflow.video.source import read_at

    head = read_at(source, 0, 12)
    if not head or len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None
    at, movi = 12, None
    for _ in range(MAX_CHUNKS):
        header = read_at(source, at, 12)
        if not header or len(header) < 8:
            return None
        kind, length = struct.unpack("<4sI", header[:8])
        if kind == b"LIST" and header[8:12] == b"movi":
            movi = at + 8
        elif kind == b"idx1":
            return (movi, at + 8, length) if movi is not None else None
        at += 8 + length + (length & 1)
    return None


def chunk_ticks(source: Any, stream: int) -> dict[int, int] | None:
    """``{offset of a chunk's data (PyAV's packet.pos): its tick}`` for AVI stream ``stream``'s chunks in the file's
    ``idx1`` (palette changes, ``##pc``, are no frames); ``None`` without a readable one. Offsets count from the
    ``movi`` fourcc (most writers) or from the start of the file, whichever holds the first chunk's id."""
    positions = _cached_positions(source, stream)
    return {pos: tick for tick, pos in enumerate(positions)} if positions else None


def _cached_positions(source: Any, stream: int) -> array[int] | None:
    """:func:`_positions`, kept per file version and stream in this process (:data:`CACHED_INDEXES` of them, ~8 bytes a
    chunk): ``idx1`` lists every stream's chunks interleaved, so a video's entries cannot be read without the rest,
    and each ``decode_frames`` of a long AVI read all of them again. A two-hour 25 fps AVI with audio (5.8 MB of
    ``idx1``), one frame decoded: 513 ms read each time, 225 ms cached, locally; 2.18 s and 1.77 s from S3 (moto),
    medians of 5, 2026-12-07 (the rest is FFmpeg's own reading of the index). A source whose version is unknown is
    read each time."""
    key = _version(source)
    if key is None:
        return _positions(source, stream)
    key = (*key, stream)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    positions = _positions(source, stream)
    with _CACHE_LOCK:
        _CACHE[key] = positions
        while len(_CACHE) > CACHED_INDEXES:
            _CACHE.popitem(last=False)
    return positions


def _version(source: Any) -> tuple[Any, ...] | None:
    """What names this version of ``source``'s file: a local path's inode, size and modification time, or what a
    file object says of itself (:attr:`~lightly_airflow.video.source.RecordingReader.version`: a remote file's path
    and etag, or a reader around one passing it on); ``None`` when neither is known."""
    if isinstance(source, (str, os.PathLike)):
        try:
            st = os.stat(source)
        except OSError:
            return None
        return "file", os.path.abspath(source), st.st_ino, st.st_size, st.st_mtime_ns
    version = getattr(source, "version", None)
    return version if isinstance(version, tuple) else None


def _positions(source: Any, stream: int) -> array[int] | None:
    """The data offsets of stream ``stream``'s chunks in ``idx1`` order (their ticks), read from the file."""
    from lightly_airflow.video.source import read_at

    found = _top_chunks(source)
    if found is None:
        return None
    movi, idx1, length = found
    data = read_at(source, idx1, length // IDX1_ENTRY.size * IDX1_ENTRY.size) or b""
    prefix = b"%02d" % stream
    entries = [(ckid, offset) for ckid, _flags, offset, _size in IDX1_ENTRY.iter_unpack(data)
               if ckid[:2] == prefix and ckid[2:] != b"pc"]
    if not entries:
        return None
    ckid, offset = entries[0]
    base = next((b for b in (movi, 0) if read_at(source, b + offset, 4) == ckid), None)
    if base is None:
        return None
    return array("q", (base + offset + 8 for _, offset in entries))


class AviClock:
    """The time of each packet of an AVI video stream by its chunk's place in ``idx1`` (:func:`chunk_ticks`)."""

    def __init__(self, ticks: dict[int, int]) -> None:
        self.ticks = ticks
        self.start: int | None = None  # FFmpeg's time of the first chunk read (the stream's start, dwStart)
        self.shift = 0  # chunks FFmpeg did not count before the last listed packet

    def pts(self, packet: Any) -> int | None:
        """``packet``'s time: its chunk's tick where ``idx1`` lists it, else FFmpeg's moved by the chunks it did
        not count before (a chunk after an OpenDML file's first 1 GB, or moved by bytes taken out of the file)."""
        pts: int | None = packet.pts
        tick = self.ticks.get(packet.pos)
        if pts is None or pts != packet.dts:
            return pts
        if tick is None:
            return pts + self.shift
        if self.start is None:
            self.start = pts - tick
        self.shift = tick + self.start - pts
        return tick + self.start


def avi_clock(source: Any, container: Any, stream: Any) -> AviClock | None:
    """An :class:`AviClock` for ``stream`` of an opened AVI ``container`` read from ``source``; ``None`` for any
    other container or an AVI without a readable ``idx1``."""
    if "avi" not in str(container.format.name).split(","):
        return None
    ticks = chunk_ticks(source, stream.index)
    return AviClock(ticks) if ticks else None
