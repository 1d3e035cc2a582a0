"""Counting and locating the frames of a video without decoding it: one demux pass over its packets.

Lightly enumerates frames as PyAV decodes them. Container metadata (``stream.frames``) is cheap but absent
for WebM, MPEG-PS, raw HEVC and others, and may be wrong; decoding is exact but costs as much as the whole
embedding. Demuxing reads every packet without decoding it: each video packet is one frame and a decoded
frame carries its packet's presentation timestamp (pts), so the sorted packet pts are the frames in decoding
order: frame ``i`` is the frame whose pts is the ``i``-th smallest. That list lets a shard seek to its first
frame and know exactly which decoded frames are its own (``decode.decode_frames``). Where packets carry no
pts (raw ``.hevc`` streams) frames are counted by packets and located by counting decoded frames from the
start. The decoder remains the judge: a frame the index promised but the decoder did not produce is reported
per frame with a reason; a frame it produced beyond the index is counted and logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

logger = logging.getLogger(__name__)

#: Container formats whose timestamp seeking lands on or before the wanted keyframe (checked in the tests);
#: others (MPEG-PS/TS, raw streams) are decoded from the start of the file up to a shard's range.
SEEKABLE_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi"})


def seekable_format(container: Any) -> bool:
    """Whether an opened container's format is one of :data:`SEEKABLE_FORMATS` (``mov,mp4,m4a,…``: any of its
    names): with unique timestamps, its frames are found by seeking (``VideoIndex.seekable``)."""
    return bool(set(str(container.format.name).split(",")) & SEEKABLE_FORMATS)


#: MPEG transport stream packets: 188 bytes (``.ts``), or 192 with a 4-byte timecode first (BDAV: ``.m2ts``)
TS_SYNC = 0x47
TS_PACKETS = ((188, 0), (192, 4))


def is_transport_stream(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes, up to 1 KiB or the whole file) starts as an MPEG transport stream:
    the sync byte 0x47 at each packet start it holds (at least one)."""
    for size, offset in TS_PACKETS:
        starts = range(offset, min(len(head), 5 * size), size)
        if len(starts) and all(head[i] == TS_SYNC for i in starts):
            return True
    return False


def transport_stream_problem(head: bytes) -> str:
    """The problem of a ``.ts`` file that is no MPEG transport stream (``head``: its first bytes), naming what
    it seems to be (a TypeScript file shares the extension) and the fix."""
    try:
        head.decode("utf-8")
        text = True
    except UnicodeDecodeError as exc:  # (a character cut at the end of the head is still text)
        text = exc.start > len(head) - 4
    text = text and b"\0" not in head
    what = "text (a TypeScript or other source file named .ts?)" if text else "another kind of file"
    return (f"not an MPEG transport stream: {what}, no 0x47 sync byte at its packet starts. It is not read again "
            "while unchanged; to leave .ts files out of the listing, give extensions without 'ts'")


def container_seekable(source: Any) -> bool:
    """:func:`seekable_format` of a video (a path or a binary file object), opening it without a demux pass
    (FFmpeg reads the header; a format without one, MPEG-PS/TS, is probed from its first packets, ~5 MB at most)."""
    import av

    with av.open(source, mode="r") as container:
        return seekable_format(container)


@dataclass
class VideoIndex:
    """The frames of one video as PyAV will decode them.

    :ivar n_frames: number of frames (packets of the video stream, :func:`video_stream`).
    :ivar pts: presentation timestamps in frame order (``None`` entries when the container has none).
    :ivar time_base: seconds per pts unit (``None`` when unknown).
    :ivar fps: average frame rate (``None`` when unknown).
    :ivar seekable: whether a shard may seek to its first frame (timestamps present, unique, and a format
        whose seeking is reliable).
    :ivar problem: why the video could not be read (completely or from some point on); ``None`` when fine.
    :ivar metadata_frames: the container's own frame count (0 when it has none), for the record.
    """

    n_frames: int = 0
    pts: list[int | None] = field(default_factory=list)
    time_base: Fraction | None = None
    fps: float | None = None
    seekable: bool = False
    problem: str | None = None
    metadata_frames: int = 0
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    container_format: str | None = None
    #: the file's start in seconds (its earliest stream's first timestamp): frame times count from it
    start: Fraction = Fraction(0)
    #: the index of the video stream whose frames these are (:func:`video_stream`)
    stream: int | None = None
    #: one note per other video stream of the file (not used: a second camera, a cover picture, …)
    other_streams: list[str] = field(default_factory=list)
    #: width / height of one stored pixel (:func:`pixel_aspect`): 32/27 for 16:9 DV/DVD video, 1 when square
    sample_aspect_ratio: Fraction = Fraction(1)
    #: whether the stream carries transparency (:func:`has_alpha`), which its frames do not apply
    alpha: bool = False
    #: frames missing from the stream's regular timestamps (:func:`missing_frames`: data the demuxer skipped)
    lost_frames: int = 0
    #: a remote video (a file object) whose demux pass read the whole file, and why (:data:`READ_WHOLE`); ``None``
    #: where the index came from its header alone (an MP4/MOV: :class:`_HeaderReads`) or from a local path
    read_whole: str | None = None
    #: frames an MPEG-PS damaged up to its end lost, estimated from its unreadable bytes (:func:`_unread_program_stream`):
    #: not in ``lost_frames``, which counts frames known to be missing from the timestamps
    estimated_lost_frames: int = 0

    def seconds(self, index: int) -> float | None:
        """Time of frame ``index`` in seconds from the start of the video, where a player shows it and where
        ``ffmpeg -ss`` seeks (from its pts, else from the frame rate). MPEG-PS/TS clocks start anywhere (0.54 s
        for FFmpeg's .mpg, hours into a broadcast); the pts itself stays in ``frame_pts``."""
        pts = self.pts[index] if 0 <= index < len(self.pts) else None
        if pts is not None and self.time_base is not None:
            return float(pts * self.time_base - self.start)
        if self.fps:
            return index / self.fps
        return None


def reason(exc: BaseException) -> str:
    """A stable one-line reason for a PyAV error: FFmpeg's message without its errno and the file's path (PyAV's
    ``[Errno 1094995529] Invalid data found when processing input: '/data/cam/a.mp4'``: the path is the worker's
    local one, the key already names the file)."""
    strerror = getattr(exc, "strerror", None)
    if getattr(exc, "errno", None) is not None and isinstance(strerror, str) and strerror:  # (FFmpegError, OSError)
        text = strerror.splitlines()[0]
    else:
        text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


#: Why a file with only an attached picture (an audio file's cover art) has no frames.
NO_VIDEO_STREAM = "the file holds no video stream, only an attached picture (cover art)"


def _describe(stream: Any) -> str:
    ctx = stream.codec_context
    return f"#{stream.index} ({ctx.name} {ctx.width}x{ctx.height})"


def _attached_picture(stream: Any) -> bool:
    from av.stream import Disposition

    return bool(stream.disposition & Disposition.attached_pic)


def video_stream(container: Any) -> tuple[Any, list[str]]:
    """The video stream whose frames are the video's samples, and a note for each other video stream.

    The stream a player plays: FFmpeg's best video stream (``av_find_best_stream``, what ffplay shows: the
    default track first, then the one with more frames decoded while probing, then the higher bit rate), never
    an attached picture (cover art an MP4/MKV may carry as a one-frame video stream, ``disposition.attached_pic``;
    an MP4 whose ``udta`` comes before its tracks lists it as stream 0). ``None`` when the file has no video
    stream but attached pictures. The index and every decode of the file take the same stream.
    """
    videos = list(container.streams.video)
    playable = [s for s in videos if not _attached_picture(s)]
    best = None
    try:
        best = container.streams.best("video")
    except Exception:  # noqa: BLE001 - no best stream: take the first playable one
        best = None
    if best is None or _attached_picture(best):
        best = playable[0] if playable else None
    notes = []
    for s in videos:
        if s is best:
            continue
        used = f"the frames are those of stream {_describe(best)}" if best is not None else "no stream is used"
        kind = "attached picture (cover art)" if _attached_picture(s) else "video stream"
        notes.append(f"{kind} {_describe(s)} is not used: {used}, the one a player shows")
    return best, notes


def pixel_aspect(stream: Any) -> Fraction:
    """The sample aspect ratio (SAR: width / height of one stored pixel) of a video stream; 1 when square or
    unknown. DV and DVD video store 720×480 with SAR 32:27 (or 8:9) and players stretch it to 16:9 (4:3); FFmpeg
    takes the container's value (MP4 ``pasp``, MKV display size) before the codec's."""
    try:
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    except Exception:  # noqa: BLE001 - no value PyAV can read is square pixels
        return Fraction(1)
    return Fraction(sar) if sar and sar > 0 else Fraction(1)


def has_alpha(stream: Any) -> bool:
    """Whether a video stream carries an alpha channel (ProRes 4444, PNG or QuickTime RLE in MOV, FFV1 ``yuva*``, a
    WebM's VP8/VP9 alpha: ``alpha_mode`` 1, which FFmpeg's own decoders drop). Its frames are read as RGB without
    it, as Lightly's ``VideoDataset`` reads them (torchvision: PyAV's ``to_ndarray(format="rgb24")``): a transparent
    area shows the colour stored under it."""
    try:
        fmt = stream.codec_context.format
        stored = bool(fmt is not None and any(c.is_alpha for c in fmt.components))
    except Exception:  # noqa: BLE001 - a format PyAV cannot describe: no alpha known
        stored = False
    return stored or str((stream.metadata or {}).get("alpha_mode", "")) == "1"


def _announced_frames(container: Any, stream: Any, fps: float | None) -> int:
    """The frame count the container's header claims (its frame count, else its duration × rate); 0 if none."""
    if stream.frames:
        return int(stream.frames)
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None and "mpeg" not in str(container.format.name):
        duration = container.duration / 1_000_000  # AV_TIME_BASE; MPEG-PS durations are bitrate guesses
    return round(duration * fps) if duration and fps else 0


def _duration_tag(stream: Any) -> Fraction | None:
    """The stream's own ``DURATION`` tag (``HH:MM:SS.fffffffff``, FFmpeg's and mkvmerge's MKV/WebM muxers write
    one per track), in seconds; ``None`` without one."""
    text = str((stream.metadata or {}).get("DURATION") or "")
    try:
        h, m, sec = text.split(":")
        return int(h) * 3600 + int(m) * 60 + Fraction(sec)
    except ValueError:
        return None


def _matroska_end(container: Any, first: Fraction, announced: Fraction) -> Fraction:
    """Where a video whose container announces ``announced`` seconds ends, its frames starting at ``first``.

    Matroska/WebM timestamps count from the segment's 0, and FFmpeg's muxer writes the segment duration and each
    track's ``DURATION`` tag as the last timestamp's end on that clock, not as the span from the first frame: a
    recording cut by FFmpeg's segment muxer (``-f segment`` without ``-reset_timestamps``, or ``-copyts``) keeps the
    camera's clock, so its 20 s segment starting at 40 s announces 60 s. Read as a span after the first frame, every
    such healthy segment but the first "ended early" (600 frames "end at 20.00 s of the 60.00 s"). So for Matroska,
    an announced end past the first frame is taken on the segment's clock (the earlier of the two readings; a span
    writer's files start at 0 in practice, where both agree); elsewhere it is a span from ``first``.
    """
    if "matroska" in str(container.format.name) and first > 0 and announced > first:
        return announced
    return first + announced


def _ends_early_by_time(container: Any, stream: Any, out: VideoIndex) -> str | None:
    """Why a video whose container announces a duration (not a frame count) ends early: its frames (``out.pts``)
    end more than a frame before the video stream's announced end; ``None`` when they do not. The end is the
    stream's duration, else its ``DURATION`` tag, else the file's duration (which an audio track may lengthen)."""
    tb = stream.time_base
    pts = [p for p in out.pts if p is not None]
    if tb is None or not pts:
        return None
    first = Fraction(stream.start_time) * tb if stream.start_time is not None else out.start
    tag = _duration_tag(stream)
    if stream.duration is not None:
        end = first + Fraction(stream.duration) * tb
    elif tag is not None:
        end = _matroska_end(container, first, tag)
    elif container.duration is not None and "mpeg" not in str(container.format.name):  # MPEG-PS: a bitrate guess
        end = _matroska_end(container, out.start, Fraction(container.duration, 1_000_000))  # (AV_TIME_BASE)
    else:
        return None
    rate_step = Fraction(1) / Fraction(out.fps) if out.fps else Fraction(0)
    step = Fraction(pts[-1] - pts[-2]) * tb if len(pts) > 1 else rate_step  # the last frame's duration
    covered = Fraction(pts[-1]) * tb + step
    if end - covered <= max(step, rate_step):
        return None
    return (f"the video ends early: its {len(pts)} readable frames end at {float(covered - out.start):.2f} s of the "
            f"{float(end - out.start):.2f} s its container announces (truncated or damaged file). {ends_early_fix(len(pts))}")


#: Packets repeating earlier timestamps in one of this many at most are a damaged range (a copy written twice),
#: dropped from the frames; more are no frame clock, and the frames are counted from the start instead.
MAX_REPEATED = 10
#: A video's frame steps are regular (a constant frame rate) when this share of them lies within
#: ``STEP_TOLERANCE`` of their median: only then is a longer step a count of missing frames.
REGULAR_SHARE = 0.9
STEP_TOLERANCE = 0.1


def _regular_step(pts: list[int]) -> tuple[Any, float, Any] | None:
    """``(steps, step, regular)`` of sorted, unique ``pts`` that step regularly (a constant frame rate:
    :data:`REGULAR_SHARE` of the steps within :data:`STEP_TOLERANCE` of their median ``step``; ``regular`` says which
    steps are, as NumPy arrays: 0.6 ms for 3,000 frames where Python loops took 6 ms, beside a 22 ms demux);
    ``None`` for a variable frame rate or fewer than 5 frames."""
    import numpy as np

    steps = np.diff(np.asarray(pts, dtype=np.int64))
    if len(steps) < 4:
        return None
    step = float(np.median(steps))
    regular = np.abs(np.subtract(steps, step)) <= max(1.0, STEP_TOLERANCE * step)
    if step <= 0 or regular.sum() < REGULAR_SHARE * len(steps):
        return None
    return steps, step, regular


def _restamped(unique: list[int], packets: int) -> bool:
    """Whether ``packets`` packets whose distinct timestamps are ``unique`` are every frame of a regular clock, some
    stamped with a neighbour's time: as many repeats as holes, no frame lost. FFmpeg's MPEG-PS demuxer gives a PES
    packet's pts to the frame that starts in it; where small frames share PES packets it stamps one or two frames
    ahead (a healthy 1,000-frame .mpg of 1.3 kB frames: one repeat, one hole), and the index called the file damaged
    and dropped a frame."""
    found = _regular_step(unique)
    return found is not None and round((unique[-1] - unique[0]) / found[1]) + 1 == packets


def missing_frames(pts: list[int]) -> list[tuple[int, int]]:
    """``(position, count)`` for each place where ``count`` frames are missing after frame ``position`` of a video
    whose sorted, unique ``pts`` step regularly (:func:`_regular_step`): one step of about ``count + 1`` frames
    between regular ones.

    Demuxers skip what they cannot read without an error: an MPEG-TS drops the PES packet whose bytes were flipped,
    Matroska/WebM resync at the next cluster (10 frames of 48 gone with a 1.5 kB damaged range in a 4 kB-a-frame
    video), MPEG-PS at the next pack; the frames after keep their own timestamps, so the skip is where frames were
    lost. A run of longer steps is a frame rate that changed (a phone filming 30 fps, then 10 in the dark), and a
    video whose steps are irregular (variable frame rate) is not judged."""
    return _gaps(_regular_step(pts))


def _gaps(found: tuple[Any, float, Any] | None) -> list[tuple[int, int]]:
    """:func:`missing_frames` of the :func:`_regular_step` of a video's timestamps."""
    if found is None:
        return []
    steps, step, regular = found
    out = []
    for i in (~regular).nonzero()[0].tolist():
        count = round(int(steps[i]) / step) - 1
        alone = (i == 0 or regular[i - 1]) and (i + 1 == len(steps) or regular[i + 1])
        if count > 0 and alone:
            out.append((i, count))
    return out


def off_clock(pts: list[int]) -> int:
    """How many of a regular video's sorted, unique ``pts`` (:func:`_regular_step`) lie between its frame clock's
    ticks: both steps around the frame irregular, together a whole number of steps (a Matroska block whose flipped
    bytes moved its frame 0.2 s earlier, between two others); 0 when not regular. (Compared with the neighbours,
    not a grid from the first frame: a 24 fps clock in milliseconds steps 41 or 42, and a grid drifts.)"""
    return _moved(_regular_step(pts))


def _moved(found: tuple[Any, float, Any] | None) -> int:
    """:func:`off_clock` of the :func:`_regular_step` of a video's timestamps."""
    if found is None:
        return 0
    steps, step, regular = found
    moved = 0
    for i in (~regular).nonzero()[0].tolist():
        both = int(steps[i - 1] + steps[i]) if i > 0 and not regular[i - 1] else 0
        steps_between = round(both / step)
        moved += both > 0 and steps_between >= 1 and abs(both - steps_between * step) <= STEP_TOLERANCE * step
    return moved


def damage_problem(out: VideoIndex, damaged: list[int | None], repeated: int) -> tuple[str | None, int]:
    """What the demux found damaged in a video whose frames are ``out`` (without its fix), and how many frames are
    missing: frames missing from the regular timestamps (:func:`missing_frames`), packets the demuxer flagged
    corrupt (``damaged``: their pts; an MPEG-TS whose continuity counters or PES sizes do not match), packets that
    repeat earlier timestamps (``repeated``, dropped from the frames); ``(None, 0)`` when none. An MPEG-TS with
    flipped bytes lost its frame silently: one frame fewer listed, no problem, no count."""
    ordered = [p for p in out.pts if p is not None]
    found = _regular_step(ordered) if ordered and len(ordered) == len(out.pts) else None  # (once: both read it)
    gaps = _gaps(found)
    lost = sum(count for _, count in gaps)
    moved = _moved(found) if gaps else 0
    if not (lost or damaged or repeated):
        return None, 0

    def at(pts: int | None) -> str:
        return "?" if pts is None or out.time_base is None else f"{float(pts * out.time_base - out.start):.2f} s"

    parts = []
    if lost:
        where = ", ".join(f"{count} after {at(ordered[i])}" for i, count in gaps[:3]) + " …" * (len(gaps) > 3)
        parts.append(f"{lost} frame{'s' * (lost != 1)} {'are' if lost != 1 else 'is'} missing (the demuxer skipped "
                     f"unreadable data: the regular timestamps skip {where})")
    if moved:
        parts.append(f"{moved} frame{'s' * (moved != 1)} with a damaged timestamp between the regular frames' (kept "
                     "at that time)")
    if damaged:
        parts.append(f"{len(damaged)} packet{'s' * (len(damaged) != 1)} flagged damaged by the demuxer (the first at "
                     f"{at(damaged[0])}; their frames may show decoding errors, see lightly.corruptness)")
    if repeated:
        parts.append(f"{repeated} packet{'s' * (repeated != 1)} repeating the timestamps of earlier frames (a range "
                     "of the file written twice?), no frames of their own")
    return (f"the video is damaged: {'; '.join(parts)}; its {out.n_frames} readable frames are kept with their own "
            "timestamps"), lost


def _cut_transport_stream(source: Any, container: Any, readable: int) -> str | None:
    """Why an MPEG-TS ends early: it was cut inside a packet (an upload or a recording that stopped): its size is
    no whole number of its packets (188 bytes, or 192 for ``.m2ts``: the size whose sync bytes its head has), a
    packet starts at the last whole packet's end and none ends at the end of the file (bytes inserted or taken out
    in the middle shift the tail instead: that is no cut); ``None`` otherwise. A transport stream has no duration
    or frame count in a header, so such a cut file was listed as a healthy shorter one."""
    from lightly_airflow.video.source import read_at

    if str(container.format.name) != "mpegts":
        return None
    size = _source_size(source) or 0
    head = read_at(source, 0, 5 * 192) if size else None
    for packet, offset in TS_PACKETS:
        if not head or not all(head[i] == TS_SYNC for i in range(offset, len(head), packet)):
            continue  # (not this packet size)
        part = size % packet
        tail = read_at(source, size - packet - part, packet + part) if part and size > 2 * packet else None
        if not tail or len(tail) != packet + part or tail[part + offset] == TS_SYNC:
            return None
        if part > offset and tail[packet + offset] != TS_SYNC:
            return None
        return (f"the video ends early: the transport stream ends inside a packet ({size:,} bytes are "
                f"{size // packet:,} packets of {packet} bytes and {part} bytes of the next; truncated file). "
                f"{ends_early_fix(readable)}")
    return None


#: The end of an MPEG-PS searched for its last pack or PES packet (each is < 64 KiB; 4 of them at least)
PS_TAIL = 256 * 1024
#: Zero bytes at the end of an MPEG-PS that are no damage: fewer than a DVD sector (a copy padded to whole sectors);
#: anything else after its last pack or PES packet (a healthy file ends with it, or with the 4-byte end code) is damage.
#: Before, any 2,048 unreadable bytes or fewer passed: a 120-frame .mpg of 160x120 whose last 2 kB were random bytes
#: lost 9 frames silently (``tests/video/test_mpeg_ps_estimates_say_so.py``).
PS_UNREAD = 2048


def _structure_end(data: bytes, at: int) -> int | None:
    """Where the MPEG-PS structure at ``data[at]`` ends (a pack header, a system header or PES packet by its
    length, the end code); ``None`` where no such start code is there."""
    code = data[at + 3] if at + 4 <= len(data) and data[at : at + 3] == b"\0\0\1" else 0
    if code == 0xB9:
        return at + 4
    if code == 0xBA and at + 14 <= len(data):
        return at + 14 + (data[at + 13] & 7) if data[at + 4] >> 6 == 1 else at + 12  # (MPEG-2, else MPEG-1)
    if code >= 0xBB and at + 6 <= len(data):
        return at + 6 + (data[at + 4] << 8 | data[at + 5])
    return None


def _readable_end(data: bytes) -> int:
    """Where the last chain of MPEG-PS structures in ``data`` (the end of a file) ends: from each pack header, one
    structure after the other by their lengths (a start code inside a packet's payload is never taken for one); the
    end of ``data`` where the last one runs past it (a file cut inside a packet: no damage); 0 without a chain."""
    end, at = 0, data.find(b"\0\0\1\xba")
    while at >= 0:
        walked, count = at, 0
        while (step := _structure_end(data, walked)) is not None and step <= len(data):
            walked, count = step, count + 1
        if count >= 2 or (count and walked == len(data)):
            end = len(data) if step is not None else walked  # (a structure running past the end: cut there)
        at = data.find(b"\0\0\1\xba", max(walked, at + 1))
    return end


#: Sector sizes of MPEG-PS files written in whole sectors (DVD's and FFmpeg's 2,048 bytes, a VCD's 2,324).
PS_SECTORS = (2048, 2324)


def _in_last_sector(data: bytes, end: int) -> bool:
    """Whether the unreadable bytes at an MPEG-PS's end (``data[end:]``, ``data`` its last bytes) are the rest of its
    last sector after the packets read there: the file is written in whole sectors (:data:`PS_SECTORS`: its last 4
    sectors each start with a pack header or a packet, counted from its end) and the last one's first packet was
    read. Such a muxer puts one packet of data in a sector and pads the rest (a padding stream, ``00 00 01 BE``):
    the last sector's video packet is short because the video ended, and damage after it hit padding (or another
    stream's packet), no frame. Random bytes over the 467-1,873-byte padding packet that ends FFmpeg's ``mpeg``,
    ``vob`` and ``dvd`` outputs read as "about 1-5 frames" missing from videos that lost none."""
    for sector in PS_SECTORS:
        starts = [len(data) - i * sector for i in range(1, 5)]
        if starts[-1] >= 0 and starts[0] < end and all(
            data[at : at + 3] == b"\0\0\1" and data[at + 3] >= 0xBA for at in starts
        ):
            return True
    return False


def _unread_program_stream(source: Any, container: Any, out: VideoIndex) -> tuple[str, int] | None:
    """Why an MPEG-PS ends early, and an estimate of how many frames it lost: its last bytes are no pack or PES
    packet (damaged up to the end, or :data:`PS_UNREAD` zeros or more where a copy stopped writing); ``None``
    otherwise. An MPEG-PS announces no frame count or duration (its duration is a bitrate guess), so such a file was
    listed as a healthy shorter video: 3 kB of random bytes 80 % into a 48-frame .mpg lost its last 8 frames silently.

    The count is an estimate from the bytes (the readable part's bytes a frame): nothing in the file says how many
    frames the unreadable bytes held. Measured against a decode of the undamaged file (test files of 48 to 400
    frames, GOPs of 12 to 60, damaged from 30 % to 90 % of their bytes): within a factor of two of the frames
    really lost, low where the content compresses less towards the end. It is kept apart from the exact counts
    (``VideoIndex.estimated_lost_frames``) and said to be an estimate."""
    from lightly_airflow.video.source import read_at

    if str(container.format.name) != "mpeg" or not out.n_frames:
        return None
    size = _source_size(source) or 0
    start = max(0, size - PS_TAIL)
    tail = read_at(source, start, size - start) or b""
    end = _readable_end(tail)
    unread = len(tail) - end
    if not end or not unread or (unread < PS_UNREAD and not any(tail[end:])):  # (sector padding)
        return None
    if _in_last_sector(tail, end):
        logger.info("the last %d bytes of the MPEG-PS are unreadable, inside its last sector after the packets read "
                    "there (its padding): no frame is missing", unread)
        return None
    missing = max(1, round(unread / ((size - unread) / (out.n_frames + out.lost_frames))))
    return (f"the video is damaged at its end: its last {unread:,} bytes are no MPEG program stream data the "
            f"demuxer could read (about {missing} frames at this video's {(size - unread) // out.n_frames:,} bytes a "
            f"frame, an estimate from the bytes: a program stream has no frame count; damaged, or a copy that stopped "
            f"writing). {DAMAGED_FIX}"), missing


def _start(container: Any, stream: Any) -> Fraction:
    """The file's start in seconds: the video stream's first timestamp (exact, in its time base), or the
    container's when another stream (audio) starts earlier; 0 when neither is known."""
    start: Fraction | None = None
    if stream.start_time is not None and stream.time_base is not None:
        start = Fraction(stream.start_time) * stream.time_base
    if container.start_time is not None:
        file_start = Fraction(container.start_time, 1_000_000)  # AV_TIME_BASE, rounded to microseconds
        if start is None or file_start < start - Fraction(1, 1_000_000):
            start = file_start
    return start or Fraction(0)


def ends_early_fix(readable: int) -> str:
    """The fix of a video that ends before its container's end (cut short, or damaged from some point on), whose
    ``readable`` frames are kept as samples (the problem is one extra row under the video's key)."""
    kept = f"its {readable} readable frames are kept as samples" if readable else "no frame of it can be read"
    return (f"Fix: upload the complete file again to get the rest ({kept}; the new version replaces them), "
            f"{LEAVE_OUT}")


EMPTY_VIDEO = "empty file (0 bytes): nothing to decode (an upload or copy that did not finish?); upload the video again"

#: The fix a video without a single frame to decode gets, after the reason (the file is skipped until it changes).
LEAVE_OUT = "or leave it out of the datasource (or of worker_config.relevant_filenames_file)"
#: The fix of a video that lost frames in the middle to damaged data (its readable frames are kept).
DAMAGED_FIX = ("Fix: upload an undamaged copy to get the missing frames (`ffmpeg -v error -i <video> -f null -` "
               f"shows where it is damaged; the new version replaces these frames), {LEAVE_OUT}")
#: Why a video whose only video stream holds no frame is skipped, and the fix.
NO_FRAMES = ("the video has no frames: its video stream holds not one frame (a recording that stopped before its "
             f"first frame was written, or an export that failed); upload the video again, {LEAVE_OUT}")
#: Why a file with no video stream at all (audio or data only, or an MP4 written without a frame) is skipped.
NO_STREAM = ("the file holds no video stream (audio or data only, or a recording that stopped before its first "
             f"frame was written); upload the video again, {LEAVE_OUT}")


def _source_size(source: Any) -> int | None:
    """The size in bytes of a path or a seekable binary file object; ``None`` when it cannot be told."""
    try:
        if isinstance(source, (str, os.PathLike)):
            return os.path.getsize(source)
        position = source.tell()
        size = source.seek(0, os.SEEK_END)
        source.seek(position)
        return int(size)
    except Exception:  # noqa: BLE001 - only a better reason is at stake
        return None


def _missing_index(source: Any, size: int) -> str | None:
    """Why an MP4/MOV file (ISO base media: an ``ftyp`` box first) cannot be opened when it has no ``moov`` box
    (the index of its frames): its top-level boxes, read from their headers only (at most 64), end without one,
    or one runs past the end of the file (cut short), or bytes that are no box header follow one (damaged); or when
    its ``moov`` box itself runs past the end (FFmpeg opens such a file as one without streams: it was reported as
    holding no video). ``None`` for any other file or when it cannot be told."""
    import struct

    def walk(fh: Any) -> str | None:
        at = 0
        boxes: list[bytes] = []
        while at + 8 <= size and len(boxes) < 64:
            fh.seek(at)
            head = fh.read(16)
            length, kind = struct.unpack(">I4s", head[:8])
            if not boxes and kind != b"ftyp":
                return None  # (not ISO base media)
            if not all(0x20 <= c < 0x7F for c in kind):  # box types are 4 printable characters: these are no box
                return (f"the MP4/MOV file has no index (no 'moov' box): the bytes at offset {at:,} after its "
                        f"'{boxes[-1].decode('latin-1')}' box are no box header (the file is damaged there, or was cut "
                        "and written over); upload the complete file again")
            if length == 1 and len(head) == 16:
                length = struct.unpack(">Q", head[8:16])[0]
            elif length == 0:
                length = size - at
            if kind == b"moov" and at + length > size:  # (FFmpeg opens it as a file without streams)
                return (f"the MP4/MOV file's index (its 'moov' box) runs past the end of the file ({size:,} of "
                        f"{at + length:,} bytes): it was cut short (an upload or copy that did not finish); upload "
                        "the complete file again")
            if length < 8 or kind == b"moov":
                return None  # (a structure we cannot follow, or the index is there)
            boxes.append(kind)
            if at + length > size:
                return (f"the MP4/MOV file has no index (no 'moov' box) and its '{kind.decode('latin-1')}' box runs "
                        f"past the end of the file ({size:,} of {at + length:,} bytes): it was cut short (an upload "
                        "or copy that did not finish, or a recording that stopped before it was finalised); upload "
                        "the complete file again")
            at += length
        if boxes and at >= size:
            return ("the MP4/MOV file has no index (no 'moov' box among its boxes "
                    f"{', '.join(b.decode('latin-1') for b in boxes[:8])}): a recording that was never finalised or "
                    "a file cut at a box boundary; upload the complete file again")
        return None

    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                return walk(fh)
        position = source.tell()
        try:
            return walk(source)
        finally:
            source.seek(position)
    except (OSError, ValueError, struct.error):
        return None


def open_problem(source: Any, exc: BaseException) -> str:
    """The reason a video that PyAV cannot open is skipped: an empty file, an MP4/MOV without its index (cut
    short), else PyAV's own error."""
    size = _source_size(source)
    if size == 0:
        return EMPTY_VIDEO
    missing = _cut_mp4(source, size)
    if missing is not None:
        return missing
    if isinstance(exc, EOFError):  # (av.EOFError): the header promised more than the file holds
        return (f"cannot open the video: {reason(exc)}: the file ends before its first frame (cut short: an upload "
                "or copy that did not finish, or a recording that stopped before its first frame was written); "
                f"upload the complete file again, {LEAVE_OUT}")
    return (f"cannot open the video: {reason(exc)}; FFmpeg cannot read it as a video (damaged, or no video under "
            f"a video extension: check it with ffprobe); upload a playable file, {LEAVE_OUT}")


def _cut_mp4(source: Any, size: int | None = None) -> str | None:
    """:func:`_missing_index` of ``source`` (its size measured when not given); ``None`` when it cannot be told."""
    size = _source_size(source) if size is None else size
    return None if size is None else _missing_index(source, size)


#: Top-level boxes of an MP4/MOV walked for its ``mdat`` payloads (box headers only); a file with more (a fragmented
#: MP4: a ``moof`` and an ``mdat`` per fragment) is read whole by its index pass.
MP4_TOP_BOXES = 16
#: Codecs whose MP4/MOV packets FFmpeg's demuxer times from the sample table alone (no parser splits or joins their
#: bytes; H.264's parser only reads headers, one packet in, one out): their packets' bytes are not read by
#: the index pass. Checked against a full demux in ``tests/video/test_index_reads_the_header_only.py`` (ProRes, PNG and
#: QuickTime RLE by hand, 2026-12-07) and, with a decode of every frame by the header-only index, for AV1, MPEG-2,
#: DNxHD, H.263 and Cinepak (``tests/test_video_s67_codecs.py``). Named by FFmpeg's codec (``canonical_name``: AV1 is
#: decoded by ``libdav1d`` here). Not MPEG-1 video: FFmpeg's MP4 demuxer parses it whole, and its zeroed packets were
#: joined into 3 frames of 120; others (VC-1, ...) are read whole until checked. (VP8 and FFV1 do not go in MP4/MOV.)
SAMPLE_TABLE_CODECS = frozenset({"h264", "hevc", "mpeg4", "mjpeg", "prores", "vp9", "png", "qtrle", "av1",
                                 "mpeg2video", "dnxhd", "h263", "cinepak"})


def canonical_codec(name: str | None) -> str | None:
    """FFmpeg's name of the codec a decoder ``name`` decodes (``libdav1d`` → ``av1``); ``name`` where unknown."""
    import av

    try:
        return str(av.codec.Codec(str(name), "r").canonical_name)
    except Exception:  # noqa: BLE001 - an unknown decoder keeps its name
        return name


class _HeaderReads:
    """A remote MP4/MOV as the index's demux pass reads it: while ``skipping``, the bytes of its ``mdat`` payloads
    (``ranges``) are zeros, never fetched; everything else (the boxes, the ``moov`` index) is read from ``source``.

    The demuxer times each packet from the sample table (``stts``, ``ctts``, the edit list) and reads its bytes
    only to hand them over: the index pass decodes nothing, so it needs the header, not the frames. A remote MP4
    was fetched whole to list its frames (a 20 MB video: 20 MB, its ``moov`` ~40 kB). Reads past the file's end
    stay short as the file's are (a file cut inside its ``mdat`` still breaks where it does). ``skipped`` counts
    the bytes not fetched."""

    def __init__(self, source: Any, ranges: list[tuple[int, int]], size: int) -> None:
        self._source, self._ranges, self._size = source, ranges, size
        self._pos = int(source.tell())
        self.skipping = False
        self.skipped = 0

    def __getattr__(self, name: str) -> Any:  # (read_error, version: the source's)
        return getattr(self._source, name)

    def _payload_end(self, at: int) -> int | None:
        """The end of the ``mdat`` payload holding offset ``at``; ``None`` where ``at`` is in none."""
        return next((end for start, end in self._ranges if start <= at < end), None)

    def read(self, size: int = -1) -> bytes:
        if not self.skipping:
            self._source.seek(self._pos)
            data = bytes(self._source.read(size))
            self._pos += len(data)
            return data
        want = self._size - self._pos if size is None or size < 0 else size
        parts: list[bytes] = []
        while want > 0 and self._pos < self._size:
            end = self._payload_end(self._pos)
            if end is not None:
                n = min(want, end - self._pos)
                parts.append(bytes(n))
                self.skipped += n
            else:
                nxt = min((start for start, _ in self._ranges if start > self._pos), default=self._size)
                self._source.seek(self._pos)
                chunk = bytes(self._source.read(min(want, nxt - self._pos)))
                if not chunk:
                    break
                parts.append(chunk)
                n = len(chunk)
            self._pos += n
            want -= n
        return b"".join(parts)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence not in (0, 1, 2):
            return int(self._source.seek(offset, whence))
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = int(self._source.seek(base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def _mdat_payloads(source: Any, size: int) -> list[tuple[int, int]] | None:
    """The ``(start, end)`` byte ranges of an MP4/MOV's ``mdat`` payloads (clipped to the file), from its top-level box
    headers; ``None`` for a file that is no ISO base media (no ``ftyp`` first), whose boxes cannot be followed, or
    that has more than :data:`MP4_TOP_BOXES` of them (a fragmented MP4) or a ``moof``."""
    import struct

    from lightly_airflow.video.source import read_at

    at, boxes, ranges = 0, 0, []
    while at + 8 <= size:
        head = read_at(source, at, 16)
        if head is None or len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if length == 1 and len(head) == 16:
            length, header = struct.unpack(">Q", head[8:16])[0], 16
        elif length == 0:
            length = size - at
        boxes += 1
        if (boxes == 1 and kind != b"ftyp") or kind == b"moof" or boxes > MP4_TOP_BOXES or length < header:
            return None
        if kind == b"mdat":
            ranges.append((at + header, min(at + length, size)))
        at += length
    return ranges


def _header_reads(source: Any) -> _HeaderReads | None:
    """:class:`_HeaderReads` of a remote (file object) MP4/MOV with its ``mdat`` payloads; ``None`` for a path, any
    other container, or an MP4 it cannot follow (:func:`_mdat_payloads`)."""
    if isinstance(source, (str, os.PathLike)) or not hasattr(source, "read"):
        return None
    size = _source_size(source)
    ranges = _mdat_payloads(source, size) if size else None
    return _HeaderReads(source, ranges, size) if ranges and size else None


#: Why a remote video's index pass reads the whole file, by what the file is (``VideoIndex.read_whole``).
READ_WHOLE = {
    "container": "its container keeps each frame's time with the frame's data (no sample table of every frame's "
                 "time up front: Matroska/WebM, AVI, MPEG-PS/TS, raw streams)",
    "mp4": "an MP4/MOV whose boxes were not followed (fragmented, or more than 16 top-level boxes)",
    "codec": "its codec's packets are split or joined by FFmpeg's parser (their bytes decide the frames)",
}


def _plan_reads(source: Any, reads: _HeaderReads | None, out: VideoIndex) -> None:
    """Whether the demux pass of a remote video reads its header only (``reads``, an MP4/MOV of a codec in
    :data:`SAMPLE_TABLE_CODECS`) or the whole file: then ``out.read_whole`` says why and the source fetches larger
    blocks (``RecordingReader.widen``)."""
    if isinstance(source, (str, os.PathLike)) or not hasattr(source, "read"):
        return
    if reads is None:
        iso = str(out.container_format or "").startswith("mov")
        out.read_whole = READ_WHOLE["mp4" if iso else "container"]
    elif canonical_codec(out.codec) not in SAMPLE_TABLE_CODECS:
        out.read_whole = READ_WHOLE["codec"]
    if out.read_whole is not None:
        logger.info("indexing reads the whole video (%s, %s): %s", out.container_format, out.codec, out.read_whole)
        widen = getattr(source, "widen", None)
        if widen is not None:
            widen()


def index_video(source: Any) -> VideoIndex:
    """Demux ``source`` (a path or a binary file object) and list its frames; never raises for bad data.

    A video that cannot be opened has ``n_frames == 0`` and a ``problem``; one whose packets stop being
    readable half way keeps the frames before that point and says where it broke.

    :raises Exception: the store's own read error (``source.RecordingReader``): not the video's fault, so the
        task fails and is retried rather than committing a good video as broken. A read that fails again in a
        second pass while the disk or store reads the file's start and end is a bad stretch of the medium (a disk's
        bad sector: every retry of the task failed the same way, and one video sank the run): the frames before it
        are kept and the video's ``problem`` says it cannot be read further (:data:`UNREADABLE_FIX`).
    """
    from lightly_airflow.video.source import is_read_error, raise_read_error, reads_elsewhere

    try:
        out = _index_video(source)
        raise_read_error(source)
        return out
    except Exception as exc:
        if not is_read_error(exc) or not reads_elsewhere(source):
            raise
        logger.warning("indexing the video failed (%s) while its start and end read; indexing it again", reason(exc))
    if hasattr(source, "read_error"):
        source.read_error = None
    if hasattr(source, "seek"):
        source.seek(0)
    out = _index_video(source, bad_stretch=True)
    raise_read_error(source)
    return out


#: The fix of a video (or frames) whose bytes its disk or store cannot read while it reads the rest of the file.
UNREADABLE_FIX = ("Fix: copy the video again from a good copy (a backup, the camera, the source bucket) to a healthy "
                  "disk or store: the new version replaces these rows (`dd if=<video> of=/dev/null` shows the failing "
                  "read)")


#: How the problem of a video with a bad stretch (:func:`_demux_times`) starts.
STRETCH_PROBLEM = "unreadable after"


def _index_video(source: Any, *, bad_stretch: bool = False) -> VideoIndex:
    """:func:`index_video` before the store's read error is raised: open ``source``, pick its video stream, list its
    frames' times, then say what the file lacks (each step below)."""
    import av

    out = VideoIndex()
    reads = _header_reads(source)
    try:
        container = av.open(reads or source, mode="r")
    except Exception as exc:  # noqa: BLE001 - any open failure makes the video unreadable, not the run
        if bad_stretch and _unreadable_stretch(source, exc):  # (its header: no frame can be listed without it)
            out.problem = (f"{STRETCH_PROBLEM} 0 frames: opening the video failed twice ({reason(exc)}) while the rest "
                           "of the file reads: a bad stretch of its disk in the header FFmpeg reads to open it (an MP4's "
                           f"moov, an MPEG-PS's first packets), not a damaged video; no frame can be listed. {UNREADABLE_FIX}")
            logger.warning("%s", out.problem)
            return out
        _raise_read_error(source, exc)
        out.problem = open_problem(source, exc)
        return out
    try:
        stream = _chosen_stream(source, container, out)
        if stream is not None:
            _describe_stream(out, container, stream)
            _plan_reads(source, reads, out)
            pts, damaged, discarded = _demux_times(source, container, stream, out, reads, bad_stretch=bad_stretch)
            have_pts, repeated = _frame_times(out, container, pts)
            damage, out.lost_frames = damage_problem(out, damaged, repeated) if out.n_frames else (None, 0)
            if damage and not (damaged or repeated) and (out.problem or "").startswith(STRETCH_PROBLEM):
                damage = None  # (the frames its timestamps miss are those of the bad stretch read past: no damage)
            _length_problem(out, container, stream, have_pts, discarded)
            out.seekable = have_pts and seekable_format(container)
            _later_problems(source, container, out, damage)
    finally:
        container.close()
    return out


def _unreadable_stretch(source: Any, exc: BaseException) -> bool:
    """Whether ``exc`` is a read error while the disk or store still reads ``source``'s start and end (a bad stretch,
    :func:`index_video`); its recorded read error is then forgotten."""
    from lightly_airflow.video.source import is_read_error, reads_elsewhere

    error = getattr(source, "read_error", None) or exc
    if not (is_read_error(exc) or is_read_error(error)) or not reads_elsewhere(source):
        return False
    if hasattr(source, "read_error"):
        source.read_error = None
    return True


def _raise_read_error(source: Any, exc: BaseException) -> None:
    """Raise ``exc`` as :class:`~lightly_airflow.video.source.VideoReadError` when it is a read that failed (a local
    disk's or mount's ``EIO``, a file object's reset connection: ``source.is_read_error``), not the video's data: the
    listing task fails and is retried, rather than committing a good video as one that cannot be opened or breaks
    half way (the store's own errors are raised by ``index_video`` as they are)."""
    from lightly_airflow.video.source import VideoReadError, is_read_error, raise_read_error

    raise_read_error(source)  # (the store's own error as it is: an archived object's says so)
    if is_read_error(exc) and not isinstance(exc, VideoReadError):
        raise VideoReadError(f"indexing the video failed: {reason(exc)}: a read error of its disk or store, not damage "
                             "of the video; the task fails so that Airflow retries it. Fix: if it persists, check the "
                             "disk, mount or store the video is read from") from exc


def _chosen_stream(source: Any, container: Any, out: VideoIndex) -> Any | None:
    """The opened ``container``'s video stream (:func:`video_stream`), the others listed in ``out``; ``None`` with
    ``out.problem`` said when it has none."""
    if not container.streams.video:
        # FFmpeg opens an MP4 cut before its index ('moov', which most writers put last) as a file of no
        # streams: say it was cut, not that it holds no video
        out.problem = _cut_mp4(source) or NO_STREAM
        return None
    stream, out.other_streams = video_stream(container)
    if stream is None:
        out.problem = NO_VIDEO_STREAM
        out.other_streams = []
    return stream


def _describe_stream(out: VideoIndex, container: Any, stream: Any) -> None:
    """``out``'s facts of ``stream`` as its headers give them (size, rate, codec, start, ...)."""
    out.stream = stream.index
    out.sample_aspect_ratio = pixel_aspect(stream)
    out.alpha = has_alpha(stream)
    out.time_base = stream.time_base
    out.fps = float(stream.average_rate) if stream.average_rate else None
    out.metadata_frames = int(stream.frames or 0)
    out.width = stream.codec_context.width or None
    out.height = stream.codec_context.height or None
    out.codec = stream.codec_context.name
    out.container_format = container.format.name
    out.start = _start(container, stream)


def _demux_times(
    source: Any, container: Any, stream: Any, out: VideoIndex, reads: _HeaderReads | None = None, *,
    bad_stretch: bool = False,
) -> tuple[list[int | None], list[int | None], int]:
    """``(pts, damaged, discarded)`` of ``stream``'s packets in demux order: each frame's time, the times of those
    the demuxer flagged corrupt, and how many lie outside the edit list; a demux error keeps the frames before it,
    said in ``out.problem``; a read error raises (:func:`_raise_read_error`), but in the second pass of
    ``bad_stretch`` (:func:`index_video`) while the rest of the file still reads, where it keeps the frames before it
    too. With ``reads`` (an MP4/MOV whose frames' times are its sample table's), the packets' bytes are not fetched
    (:class:`_HeaderReads`)."""
    from lightly_airflow.video.avi import avi_clock

    pts: list[int | None] = []
    damaged: list[int | None] = []  # the pts of the packets the demuxer flagged corrupt
    discarded = 0
    clock = avi_clock(source, container, stream)  # (an AVI's chunks timed by its idx1, not by FFmpeg's count)
    if reads is not None:
        reads.skipping = out.read_whole is None
    last_pos = 0  # (the byte offset of the last packet read: where a bad stretch is looked for past)
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            if packet.pos is not None and packet.pos > last_pos:
                last_pos = packet.pos
            if getattr(packet, "is_discard", False):
                # Outside the edit list (a clip cut without re-encoding keeps the packets from the keyframe
                # before the cut): decoded as a reference, never output as a frame.
                discarded += 1
                continue
            time = clock.pts(packet) if clock else packet.pts
            if getattr(packet, "is_corrupt", False):
                damaged.append(time)
            pts.append(time)
    except Exception as exc:  # noqa: BLE001 - keep the frames before the break
        if bad_stretch and _unreadable_stretch(source, exc):
            before = len(pts)
            if clock is None and pts and None not in pts and not seekable_format(container):
                pts.extend(_read_on(source, stream.index, last_pos, set(pts)))  # (MPEG-PS/TS: no index to seek by)
            kept = (f"its {before} frames before it are kept as samples" if len(pts) == before else
                    f"its {before} frames before it and {len(pts) - before} after it are kept as samples; the frames "
                    "in it are not listed")
            out.problem = (f"{STRETCH_PROBLEM} {before} frames: reading the video failed there twice ({reason(exc)}) "
                           "while the rest of the file reads: a bad stretch of its disk or store, not a damaged video "
                           f"({kept}). {UNREADABLE_FIX}")
            logger.warning("%s", out.problem)
        else:
            _raise_read_error(source, exc)
            out.problem = f"the video breaks after {len(pts)} frames: {reason(exc)}. {ends_early_fix(len(pts))}"
    finally:
        if reads is not None:
            reads.skipping = False
    if discarded:
        logger.info("%d packets outside the edit list are no frames (%d frames)", discarded, len(pts))
    return pts, damaged, discarded


#: Reads on past bad stretches (:func:`_read_on`) before the rest of a video is given up.
MAX_RESUMES = 64


def _read_on(source: Any, stream_index: int, start: int, seen: set[int | None]) -> list[int]:
    """The times of the packets of stream ``stream_index`` past a bad stretch of an MPEG-PS/TS (no index to seek by
    time), read from the first bytes past it (:func:`~lightly_airflow.video.source.readable_after`, looked for from
    ``start``, the last packet read before it) through a newly opened container seeking there by byte (the demuxer
    finds the next packet's sync byte), to the end or the next stretch, which is looked past the same way; ``seen``:
    the times listed before (not listed twice). The listing used to keep the frames before the stretch only; the
    frames in it cannot be listed (their times are in the bytes that do not read), and those after it up to their
    keyframe are ``unreadable`` when decoded (``decode._resume_by_bytes``)."""
    import av

    from lightly_airflow.video.source import STRETCH_BLOCK, is_read_error, readable_after, reads_elsewhere

    found: list[int] = []
    floor = start
    for _ in range(MAX_RESUMES):
        at = readable_after(source, floor)
        if at is None:
            break
        last = at
        try:
            if hasattr(source, "seek"):
                source.seek(0)
            with av.open(source, mode="r") as container:
                stream = container.streams[stream_index]
                container.seek(at, unsupported_byte_offset=True, backward=False)
                for packet in container.demux(stream):
                    if packet.pos is not None and packet.pos > last:
                        last = packet.pos
                    if packet.size and packet.pts is not None and not getattr(packet, "is_discard", False) and (
                            packet.pts not in seen):
                        seen.add(packet.pts)
                        found.append(packet.pts)
            return found
        except Exception as exc:  # noqa: BLE001 - another stretch further on, or the end of what reads
            if not is_read_error(exc) or not reads_elsewhere(source):
                logger.warning("reading on past a bad stretch at byte %d stopped: %s", at, reason(exc))
                break
            if hasattr(source, "read_error"):
                source.read_error = None
            floor = max(at + STRETCH_BLOCK, last)
    return found


def _frame_times(out: VideoIndex, container: Any, pts: list[int | None]) -> tuple[bool, int]:
    """Set ``out.pts`` and ``out.n_frames`` from the demuxed ``pts``; ``(have_pts, repeated)``: whether every frame
    has its own time, and how many packets repeated an earlier one (dropped from the frames)."""
    have_pts = bool(pts) and all(p is not None for p in pts)
    repeated = 0
    if have_pts:
        ordered = sorted(p for p in pts if p is not None)
        unique = sorted(set(ordered))
        repeated = len(ordered) - len(unique)
        restamped = repeated and not seekable_format(container) and _restamped(unique, len(ordered))
        if repeated and (repeated * MAX_REPEATED > len(ordered) or restamped):
            repeated = 0  # (timestamps that are no frame clock: counted from the start, as before)
            out.pts = [None] * len(pts)
            have_pts = False
        else:
            out.pts = list(unique)
    else:
        out.pts = [None] * len(pts)
    out.n_frames = len(out.pts)
    return have_pts, repeated


def _counts_ticks(stream: Any, have_pts: bool, pts: list[int | None]) -> bool:
    """Whether ``stream``'s header "frame count" is a duration in time-base ticks. An AVI's header counts ticks
    (dwLength in dwScale/dwRate units), which are frames only when a frame lasts one tick: at 1/1000 with variable
    frame rate its "frame count" is the duration in ms (3,923 for 60 frames over 3.9 s), and every such file was
    flagged "ends early"."""
    ordered_pts = [p for p in pts if p is not None]
    return (have_pts and bool(stream.frames) and stream.duration == stream.frames and len(ordered_pts) > 1
            and min(b - a for a, b in zip(ordered_pts, ordered_pts[1:])) > 1)


def _length_problem(out: VideoIndex, container: Any, stream: Any, have_pts: bool, discarded: int) -> None:
    """Say in ``out.problem`` (when nothing broke before) that the video ends before its container says it does."""
    announced = max(0, _announced_frames(container, stream, out.fps) - discarded * bool(stream.frames))
    if out.problem is None and (not stream.frames or _counts_ticks(stream, have_pts, out.pts)) and have_pts:
        # A duration, no frame count (WebM, MKV): compare times; duration × the rate FFmpeg probed at the
        # start flagged every variable-frame-rate video (a phone filming at 30 fps, then 10 in the dark).
        out.problem = _ends_early_by_time(container, stream, out)
    elif out.problem is None and announced and announced > out.n_frames + out.lost_frames + 1:
        # (frames missing in the middle are counted there: an AVI whose damaged chunks lost 3 of 48 frames
        # is no file that ends early)
        # Truncated files end without an error: the container's header still says how long it was.
        out.problem = (f"the video ends early: {out.n_frames} frames are readable of the {announced} its "
                       f"container announces (truncated or damaged file). {ends_early_fix(out.n_frames)}")


def _later_problems(source: Any, container: Any, out: VideoIndex, damage: str | None) -> None:
    """``out.problem`` with the ``damage`` found and what the demuxer never reached (a transport stream cut short,
    an MPEG-PS's unread end); :data:`NO_FRAMES` for a video without any."""
    if out.n_frames == 0 and out.problem is None:
        out.problem = NO_FRAMES
    elif out.n_frames:
        later = out.problem or _cut_transport_stream(source, container, out.n_frames)
        unread = None if later else _unread_program_stream(source, container, out)
        if unread is not None:
            later, out.estimated_lost_frames = unread
        out.problem = (f"{damage}; {later}" if later else f"{damage}. {DAMAGED_FIX}") if damage else later
