"""Decoding chosen frames of a video: seek to a range's first frame, keep exactly the frames of the range.

A range is located by the frames' presentation timestamps from the demux index (``index.index_video``): the
container seeks to the keyframe at or before the first wanted pts, frames before it are decoded (they are
needed as references) and dropped, and a decoded frame belongs to the range exactly when its pts is one of
the range's. Where timestamps are missing or seeking is unreliable for the format, frames are counted from
the start of the file. Nothing is extracted to disk and only the current frame is held in memory.

Every wanted frame is yielded once, in index order: with its decoded ``av.VideoFrame``, or with ``None`` and
the reason it could not be decoded (a damaged packet, a stream that ends early).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lightly_airflow.video.avi import AviClock, avi_clock
from lightly_airflow.video.index import (
    NO_VIDEO_STREAM,
    UNREADABLE_FIX,
    open_problem,
    pixel_aspect,
    reason,
    seekable_format,
    video_stream,
)
from lightly_airflow.video.source import (
    STRETCH_BLOCK,
    RecordingReader,
    VideoReadError,
    is_read_error,
    raise_read_error,
    readable_after,
    reads_elsewhere,
)

logger = logging.getLogger(__name__)

#: The fix of a frame the decoder cannot produce (a damaged packet, a lost reference, a stream that ends early).
FRAME_FIX = ("Fix: the video is damaged at this frame or at one it refers to (its other frames are kept); to get this "
             "one, upload an undamaged copy (`ffmpeg -v error -i <video> -f null -` shows where it is damaged)")

#: Consecutive undecodable packets after which the rest of a video is given up (each is reported).
MAX_BAD_PACKETS = 64

#: What a read error of a video is, and the fix (:class:`VideoReadError`).
READ_FAILED = ("a read error of its disk or store, not damage of the video. The task fails so that Airflow retries it "
               "(its frames are not marked corrupt). Fix: if it persists, check the disk, mount or store the video is "
               "read from")


@dataclass
class _Break:
    """A decode pass that stopped at a demux error: the wanted frames it did not reach, and the error."""

    pending: set[int]
    error: BaseException
    at: int = 0  # the byte offset of the last packet demuxed before the error (its bytes read)


@dataclass(frozen=True)
class DecodedFrame:
    """One wanted frame: ``frame`` is the decoded ``av.VideoFrame``, or ``None`` with a ``reason``."""

    index: int
    frame: Any
    reason: str | None = None


_LOCAL = threading.local()


def reformatter(purpose: str = "rgb") -> Any:
    """A scaler per thread and purpose: PyAV's ``frame.reformat`` builds a new scaling context per call (3 ms at
    640×360), a kept ``VideoReformatter`` reuses it (0.15 ms) as long as its output size and format stay the
    same: one scaler alternating between the full-size RGB and the model input rebuilt its context on every
    call, so each output (``rgb``, ``model``, ``thumbnail``, ``png``, ``sdr``) has its own."""
    from av.video.reformatter import VideoReformatter

    kept = getattr(_LOCAL, "reformatters", None)
    if kept is None:
        kept = _LOCAL.reformatters = {}
    if purpose not in kept:
        kept[purpose] = VideoReformatter()
    return kept[purpose]


#: FFmpeg's ``AVCOL_SPC_UNSPECIFIED``: a stream that does not say which matrix its YUV was made with.
UNSPECIFIED_MATRIX = 2


def colour_matrix(frame: Any) -> int | None:
    """The YUV matrix to read ``frame`` with (swscale's ``SWS_CS_*``, PyAV's ``Colorspace``), or ``None``: the one
    its tag names. A YUV frame without a tag is read as players read it (mpv's ``mp_csp_guess_colorspace``, VLC,
    browsers): BT.709 when HD (at least 1280 wide or over 576 high), BT.601 (swscale's default) when SD. swscale
    read every untagged frame as BT.601: an untagged 720p/1080p clip (screen recordings, ffmpeg outputs without
    ``-colorspace``) had its pure red at 232 instead of 255, green's red at 19, (200, 60, 40) at (186, 46, 41)
    against what players show. The range is not touched: untagged YUV is limited, ``yuvj*`` full, as swscale has
    it."""
    if int(getattr(frame, "colorspace", 0) or 0) != UNSPECIFIED_MATRIX or frame.format.is_rgb:
        return None
    if frame.width >= 1280 or frame.height > 576:
        from av.video.reformatter import Colorspace

        return int(Colorspace.ITU709)
    return None


def to_rgb(frame: Any, purpose: str = "rgb", **options: Any) -> Any:
    """``frame`` as an ``rgb24`` frame by the kept scaler of ``purpose`` (:func:`reformatter`), its YUV read with
    :func:`colour_matrix`; ``options``: ``width``, ``height``, ``interpolation``. Every conversion of a decoded
    frame to RGB (model input, metrics, thumbnail, frame PNG) goes through here, so all show the same colours."""
    return reformatter(purpose).reformat(frame, format="rgb24", src_colorspace=colour_matrix(frame), **options)


#: FFmpeg's codes (``AVColorTransferCharacteristic``) of HDR transfers: SMPTE ST 2084 (PQ: HDR10, Dolby Vision)
#: and ARIB STD-B67 (HLG: phones' HDR video, broadcast); and of BT.2020 primaries (``AVColorPrimaries``).
HDR_TRANSFERS = {16: "PQ (SMPTE ST 2084)", 18: "HLG (ARIB STD-B67)"}
BT2020_PRIMARIES = 9


def hdr_kind(frame: Any) -> str | None:
    """What makes ``frame`` need :func:`sdr_frame` (its HDR transfer, or wide BT.2020 primaries), else None."""
    trc = int(getattr(frame, "color_trc", 0) or 0)
    if trc in HDR_TRANSFERS:
        return HDR_TRANSFERS[trc]
    if int(getattr(frame, "color_primaries", 0) or 0) == BT2020_PRIMARIES:
        return "BT.2020 primaries"
    return None


def sdr_frame(frame: Any) -> Any:
    """``frame`` as an SDR display shows it: an HDR (PQ, HLG) or BT.2020 frame tone- and gamut-mapped by swscale to
    sRGB with BT.709 primaries (an ``rgb24`` frame with the same timestamps, display matrix and flags), as players
    and browsers show HDR video on an ordinary screen; any other frame as it is. Read as SDR, an iPhone's HLG
    video was dull and grey (its white at about 180 of 255, colours pale: BT.2020 primaries read as BT.709) and an
    HDR10 (PQ) video nearly black. The scaler builds its tone map once per thread and frame size (~1.4 s), then
    converts a 1080p frame in ~26 ms (a 4K one in ~86 ms) once; the model input, metrics, thumbnail and frame PNG
    are all made from it."""
    kind = hdr_kind(frame)
    if kind is None:
        return frame
    from av.video.reformatter import ColorPrimaries, ColorTrc

    sar = getattr(frame, "opaque", None)
    try:
        out = reformatter("sdr").reformat(frame, format="rgb24", dst_color_trc=ColorTrc.IEC61966_2_1,
                                          dst_color_primaries=ColorPrimaries.BT709)
    except Exception as exc:  # noqa: BLE001 - never seen with these tags; the frame is shown as stored
        _warn_once(f"{kind} video frames cannot be converted to SDR ({reason(exc)}); their values are read as SDR")
        return frame
    if sar is not None:
        out.opaque = sar
    return out


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning("%s", message)


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    """The frame's display matrix (FFmpeg's ``AV_FRAME_DATA_DISPLAYMATRIX``: 9 int32, 16.16 fixed point), or None."""
    import struct

    from av.sidedata.sidedata import Type

    try:
        data = frame.side_data.get(Type.DISPLAYMATRIX)
        return struct.unpack("<9i", bytes(data)[:36]) if data is not None else None
    except Exception:  # noqa: BLE001 - a matrix PyAV cannot read is no transform
        return None


def orientation(frame: Any) -> tuple[int, bool]:
    """``(turns, flip)`` that show ``frame`` as players show it: ``turns`` quarter turns counter-clockwise
    (``np.rot90``'s ``k``), then, where ``flip``, the result turned upside down (``np.flipud``).

    Phones store portrait video landscape with a display matrix (FFmpeg: ``rotation of -90.00 degrees``); PyAV
    decodes the stored picture and reads the matrix's angle as ``VideoFrame.rotation`` (counter-clockwise degrees).
    A matrix may also mirror the picture (a front camera, an editor's flip): its angle alone then turned a
    horizontally mirrored video upside down (``rotation`` reads -180°) and left a vertically mirrored or transposed
    one as stored. The matrix is applied as the ``ffmpeg`` command line applies it (``hflip``/``vflip``/
    ``transpose`` filters from the angle and the matrix's signs, fftools ``ffmpeg_filter.c``), which is also what
    ffplay shows. Images are turned by their EXIF orientation (mirroring included) the same way. Angles that are
    no multiple of 90° are not applied (logged once).
    """
    matrix = _display_matrix(frame)
    if matrix is None:
        return 0, False
    try:
        angle = float(getattr(frame, "rotation", 0) or 0)
    except Exception:  # noqa: BLE001 - a matrix PyAV cannot read is no rotation
        return 0, False
    clockwise = -round(angle) % 360  # (fftools' get_rotation)
    if clockwise % 90 and min(clockwise % 90, 90 - clockwise % 90) > 1:
        _warn_once(f"video frames with a display rotation of {clockwise}° clockwise are shown as stored: only "
                   "quarter turns and mirroring are applied")
        return 0, False
    clockwise = round(clockwise / 90) * 90 % 360
    if clockwise == 90:  # transpose=cclock_flip (the plain transpose) where matrix[3] > 0, else clock
        return (1, True) if matrix[3] > 0 else (3, False)
    if clockwise == 270:  # transpose=clock_flip (the anti-transpose) where matrix[3] < 0, else cclock
        return (3, True) if matrix[3] < 0 else (1, False)
    if clockwise == 180:  # hflip where matrix[0] < 0, vflip where matrix[4] < 0 (both: a half turn)
        hflip, vflip = matrix[0] < 0, matrix[4] < 0
        return (2, True) if hflip and not vflip else (2 if hflip else 0, vflip and not hflip)
    return 0, matrix[4] < 0  # vflip where matrix[4] < 0


def quarter_turns(frame: Any) -> int:
    """The quarter turns counter-clockwise of :func:`orientation` (the number of times a frame's width and height
    swap: the stored columns are the upright rows when odd)."""
    return orientation(frame)[0]


def upright_array(pixels: Any, frame: Any) -> Any:
    """``pixels`` (an ``(h, w, …)`` array of ``frame``'s picture, any size) as players show ``frame``
    (:func:`orientation`); a view, not a copy."""
    import numpy as np

    turns, flip = orientation(frame)
    out = np.rot90(pixels, turns) if turns else pixels
    return out[::-1] if flip else out


def stored_array(upright: Any, frame: Any) -> Any:
    """The inverse of :func:`upright_array`: an upright array back in the stored picture's orientation."""
    import numpy as np

    turns, flip = orientation(frame)
    out = upright[::-1] if flip else upright
    return np.rot90(out, -turns) if turns else out


def sample_aspect(frame: Any) -> Fraction:
    """The SAR :func:`decode_frames` recorded on ``frame`` (its ``opaque`` slot); 1 for square pixels."""
    sar = getattr(frame, "opaque", None)
    return sar if isinstance(sar, Fraction) and sar > 0 else Fraction(1)


def display_size(frame: Any, max_side: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of ``frame`` in square pixels, as players show it (stored orientation), scaled down to
    fit ``max_side``. The frame's stored pixel grid stays what the frame PNGs, the metrics and the boxes of
    ``.lightly/predictions`` use (Lightly's frame coordinates); only what people look at is stretched."""
    width = frame.width * sample_aspect(frame)
    scale = min(Fraction(1), Fraction(max_side) / max(width, frame.height)) if max_side else Fraction(1)
    return max(1, round(width * scale)), max(1, round(frame.height * scale))


def upright_image(image: Any, frame: Any) -> Any:
    """A PIL image made from ``frame`` (any size), turned and mirrored as :func:`orientation` says."""
    from PIL import Image

    turns, flip = orientation(frame)
    if turns:
        image = image.transpose((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)[turns - 1])
    return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM) if flip else image


def _runs(wanted: Sequence[tuple[int, int | None]]) -> list[list[tuple[int, int | None]]]:
    """Split (index, pts) pairs sorted by index into runs of consecutive indices."""
    runs: list[list[tuple[int, int | None]]] = []
    for item in sorted(wanted):
        if runs and item[0] == runs[-1][-1][0] + 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


#: Frames a pass decodes forward over a gap between wanted frames rather than seeking, whether or not the container
#: says where its keyframes are (a Matroska file does not before its cues are read): a seek flushes and refills the
#: decoder's threads and decodes again from the keyframe before the next wanted frame, half a GOP on average
#: (15-150 frames at 30 fps for GOPs of 1-10 s).
FORWARD_GAP = 32


def _sample_table(stream: Any) -> Any:
    """The container's index of ``stream`` where it lists every frame, so where its keyframes are (an MP4's or
    AVI's sample table), else ``None``: a Matroska file's cues list keyframes only, and only the first before the
    first seek; an MPEG-TS has none. (An index of keyframes only, an all-intra video's too, leaves it to the gap
    rule.)"""
    try:
        entries = stream.index_entries
        listed = any(not entries[i].is_keyframe for i in range(min(len(entries), 64)))
    except Exception:  # noqa: BLE001 - no index: the gap rule decides
        return None
    return entries if listed else None


def _same_keyframe(entries: Any, end: int, start: int) -> bool:
    """Whether a seek to ``start`` would land on a keyframe at or before ``end`` (FFmpeg's own search of the index,
    as the seek does): decoding on from ``end`` then costs no more than the seek."""
    found = entries.search_timestamp(start, backward=True)
    return bool(found >= 0 and entries[found].timestamp <= end)


def _passes(runs: list[list[tuple[int, int | None]]], entries: Any) -> list[list[tuple[int, int | None]]]:
    """``runs`` (consecutive wanted frames, by pts) joined into passes that each seek once and decode forward.

    A run is decoded on from the one before when it starts at most :data:`FORWARD_GAP` frames later, or when the
    sample table (:func:`_sample_table`) says a seek to it would land on a keyframe at or before the earlier run's
    last frame (and decode those frames again). Every run used to seek: the frame PNGs of every 5th frame of a
    2-minute 640×360 H.264 clip (keyframes 250 frames apart) decoded ~125 frames per wanted frame, 20× PyAV
    decoding the same span once (2.5 s against 0.13 s); 1,000 random frames of it 38.7 s, now 0.9 s (PyAV decoding
    all 3,600: 1.3 s). A seek costs about as much as decoding a few dozen small frames (the decoder's threads are
    flushed and refilled): 1,000 random frames of a 20-minute 640×360 video (36,000 frames, keyframes 250 apart)
    took 14.5 s with a seek per GOP, 8.2 s with the gap rule too (PyAV decoding all: 12-14 s; 47-50 s before).
    FFmpeg searches the index (a one-hour video's 108,000 entries read in Python took 0.12 s a call)."""
    passes: list[list[tuple[int, int | None]]] = []
    for run in runs:
        if passes:
            end, start = passes[-1][-1], run[0]
            if end[1] is not None and start[1] is not None and (
                start[0] - end[0] <= FORWARD_GAP or (entries is not None and _same_keyframe(entries, end[1], start[1]))
            ):
                passes[-1].extend(run)
                continue
        passes.append(list(run))
    return passes


def decode_frames(
    source: Any, wanted: Sequence[tuple[int, int | None]], *, seekable: bool | None = None, threads: bool = True
) -> Iterator[DecodedFrame]:
    """Yield one :class:`DecodedFrame` per wanted ``(frame index, pts)``; never raises for bad data.

    Decoded frames come in index order, then the wanted frames that could not be decoded, with the reason.

    :param source: a path or a binary file object of the video.
    :param wanted: frame indices with their pts from the index (``None`` pts: count frames instead).
    :param seekable: whether the container may seek; ``None``: by its format (``index.SEEKABLE_FORMATS``).
    :param threads: let the codec decode with its own threads (faster on multi-core nodes).
    """
    import av

    runs = _runs(wanted)
    if not runs:
        return
    try:
        container = av.open(source, mode="r")
    except Exception as exc:  # noqa: BLE001
        raise_read_error(source)  # the store failed, not the video: the task is retried
        if is_read_error(exc):  # (a disk's or mount's: the same)
            raise VideoReadError(f"cannot open the video: {reason(exc)}: {READ_FAILED}") from exc
        why = open_problem(source, exc)  # (an empty file, an MP4 cut before its index: said so)
        for run in runs:
            for index, _ in run:
                yield DecodedFrame(index, None, why)
        return
    opened: _Opened | None = None
    try:
        stream = _stream(container)
        clock = avi_clock(source, container, stream)  # (the index timed an AVI's chunks by its idx1: so here)
        if seekable is None:
            seekable = seekable_format(container)
        if threads:
            stream.thread_type = "AUTO"
        opened = _Opened(container, stream, source, threads)
        if not seekable or any(p is None for _, p in wanted):
            # No seeking (raw streams without timestamps, MPEG-PS/TS): every wanted frame is found in one pass
            # from the start, each frame decoded once. Each run used to rewind, or open a raw stream again, and
            # decode from the start: a shard's 512-frame chunks of a long raw stream cost O(n²) decoding.
            items = sorted(wanted)
            yield from _resilient(opened, items, clock=clock, seek=False,
                                  by_pts=all(p is not None for _, p in items), at_start=True)
            return
        at_start = True  # nothing demuxed yet: a range from the start needs no seek
        for run in _passes(runs, _sample_table(stream)) if len(runs) > 1 else runs:
            by_pts = all(p is not None for _, p in run)
            seek = bool(seekable and by_pts)
            if not at_start and not (seek and run[0][0] > 0) and not _rewind(container, stream):
                # Raw streams (.hevc) cannot seek at all, not even to the start: open the file again.
                try:
                    container.close()
                    if hasattr(source, "seek"):
                        source.seek(0)
                    container = av.open(source, mode="r")
                    stream = _stream(container)
                    if threads:
                        stream.thread_type = "AUTO"
                    opened = _Opened(container, stream, source, threads)
                except Exception as exc:  # noqa: BLE001
                    why = f"cannot open the video again for frames {run[0][0]}-{run[-1][0]}: {reason(exc)}"
                    for r in runs[runs.index(run):]:
                        for index, _ in r:
                            yield DecodedFrame(index, None, why)
                    return
                at_start = True
            yield from _resilient(opened, run, clock=clock, seek=seek, by_pts=by_pts, at_start=at_start)
            container, stream = opened.container, opened.stream  # (opened again after a read error)
            at_start = False
    finally:
        container.close()
        if opened is not None and opened.container is not container:
            opened.container.close()


def decodes_sequentially(seekable: bool | None, pts: Sequence[int | None]) -> bool:
    """Whether ``decode_frames`` finds a video's frames (index order ``pts``) in one pass from its start rather
    than by seeking, as the index found when it opened the file (``seekable``: ``VideoIndex.seekable``, by the
    container's format and timestamps, the manifest's ``video_seekable``): an MPEG-PS/TS or a raw stream, whatever
    its name says (an MPEG-PS named ``.mp4`` was planned by its extension as seekable, and each 512-frame chunk
    decoded it from its start again). Such a video's frames of a shard are best decoded in one call. Without the
    index's flag (a manifest written before it existed), frames without timestamps (raw streams) only."""
    if seekable is not None:
        return not seekable
    return any(p is None for p in pts)


def _stream(container: Any) -> Any:
    """The stream the index listed the frames of (``index.video_stream``: the one a player plays)."""
    stream = video_stream(container)[0]
    if stream is None:
        raise ValueError(NO_VIDEO_STREAM)
    return stream


def _rewind(container: Any, stream: Any) -> bool:
    """Seek ``container`` to its start; ``False`` where the format cannot seek (raw elementary streams)."""
    try:
        container.seek(0, stream=stream, backward=True, any_frame=False)
    except Exception:  # noqa: BLE001 - the caller opens the file again
        return False
    return True


class _Opened:
    """An open video (container and stream) that can be opened again: after a failed read FFmpeg's I/O context keeps
    the error (``AVIOContext.error``) and hands it out again at the end of the file, so a pass that reached the end
    after a read error that had passed lost its last frames ("PyAVCallbackError: Error in PyAV callback"). Each try
    after a read error reads through a freshly opened one."""

    def __init__(self, container: Any, stream: Any, source: Any, threads: bool) -> None:
        self.container, self.stream, self.source, self.threads = container, stream, source, threads

    def reopen(self, *, frame_threads: bool = True) -> None:
        """Close the container and open the video again (from its start); a read error raises
        :class:`VideoReadError` (or the store's own error). Without ``frame_threads`` the codec decodes with slice
        threads only, so a frame is output before the next packet is read (frame threads hold back a frame per
        thread: the frames just before a failed read were lost with it)."""
        import av

        self.container.close()
        try:
            if hasattr(self.source, "seek"):
                self.source.seek(0)
            self.container = av.open(self.source, mode="r")
            self.stream = _stream(self.container)
        except Exception as exc:
            raise_read_error(self.source)
            raise VideoReadError(f"the video cannot be opened again after a read error ({reason(exc)}): "
                                 f"{READ_FAILED}") from exc
        if self.threads:
            self.stream.thread_type = "AUTO" if frame_threads else "SLICE"


def _resilient(
    opened: _Opened, run: list[tuple[int, int | None]], *, clock: AviClock | None, seek: bool, by_pts: bool,
    at_start: bool,
) -> Iterator[DecodedFrame]:
    """:func:`_decode_run` of a pass, tried again where a demux error stopped it.

    A pass serves several runs of wanted frames (:func:`_passes`); a demux error used to end it, and every frame it
    had not reached yet was ``corrupt`` with "the video breaks here", committed for good (an unchanged video is never
    read again), though the error was a failed read (a disk's or mount's ``EIO``, a reset connection) or damage
    confined to one stretch of the file. Now the frames decoded before the error are kept, and the frames not reached
    are decoded again, each run with its own seek (from the start where the video cannot seek): a transient read
    error passes, and damage confined to one run costs that run's frames only. Where it fails again, a read error
    (:func:`is_read_error`) goes to :func:`_bad_stretch` (a disk or store that is down fails the task, which is
    retried; a bad stretch of the file costs its frames only); damaged data makes the frames of that run ``corrupt``
    with the error and the fix."""
    source = opened.source
    breaks: list[_Break] = []
    yield from _decode_run(opened.container, opened.stream, run, seek=seek, by_pts=by_pts, at_start=at_start,
                           source=source, clock=clock, breaks=breaks)
    if not breaks:
        return
    first = breaks[0]
    logger.warning("decoding stopped at a demux error (%s) before %d wanted frames; decoding them again", reason(
        first.error), len(first.pending))
    if hasattr(source, "read_error"):
        source.read_error = None  # (tried again below: a read error that passes is no failure)
    left = [item for item in run if item[0] in first.pending]
    retries = _runs(left) if seek else [left]
    stale = is_read_error(first.error)  # (FFmpeg's I/O context keeps a read error: read through a new one)
    for again in retries:
        second: list[_Break] = []
        sought = bool(seek and again[0][0] > 0)
        fresh = stale and reads_elsewhere(source)
        if fresh:
            opened.reopen()
        container, stream = opened.container, opened.stream
        if not sought and not fresh and not _rewind(container, stream):
            if is_read_error(first.error):  # (a bad stretch costs the frames from it on; a store that is down fails)
                yield from _bad_stretch(opened, again, _Break({i for i, _ in again}, first.error), first.error,
                                        clock=clock, seek=False, by_pts=by_pts)
                continue
            why = f"the video breaks here: {reason(first.error)}, and it cannot be read again from its start"
            for index, _ in again:
                yield DecodedFrame(index, None, f"{why}. {FRAME_FIX}")
            continue
        yield from _decode_run(container, stream, again, seek=sought, by_pts=by_pts, at_start=not sought,
                               source=source, clock=clock, breaks=second)
        stale = any(is_read_error(b.error) for b in second)
        for broken in second:
            if is_read_error(broken.error) or is_read_error(first.error):
                yield from _bad_stretch(opened, again, broken, first.error, clock=clock, seek=bool(seek and by_pts),
                                        by_pts=by_pts)
                stale = True
                continue
            why = f"the video breaks here: {reason(broken.error)} (again when decoded a second time: damaged data)"
            for index in sorted(broken.pending):
                yield DecodedFrame(index, None, f"{why}. {FRAME_FIX}")


def _spans(indices: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` as ``3-5, 9``."""
    out: list[str] = []
    for i in sorted(indices):
        if out and i == int(out[-1].rsplit("-", 1)[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ", ".join(out)


def _next_start(left: list[tuple[int, int | None]], failures: int, entries: Any) -> int:
    """Where in ``left`` (the wanted frames not decoded, from the one a read failed before) to seek next, past a bad
    stretch: the first frame whose keyframe (the container's index: an MP4's or AVI's sample table, a Matroska
    file's cues) comes after the failed frame's; without an index, 1, 2, 4, ... frames on (``failures`` in a row)."""
    if entries is not None and left[0][1] is not None:
        try:
            if len(entries):
                found = entries.search_timestamp(int(left[0][1]), backward=True)
                if found >= 0:
                    key = entries[found].timestamp
                    for at, (_, pts) in enumerate(left[1:], start=1):
                        later = entries.search_timestamp(int(pts), backward=True)  # type: ignore[arg-type]
                        if later >= 0 and entries[later].timestamp > key:
                            return at
                    return len(left)
        except Exception:  # noqa: BLE001 - no index: by steps
            pass
    return min(len(left), 1 << max(0, failures - 1))


def _bad_stretch(
    opened: _Opened, run: list[tuple[int, int | None]], broken: _Break, first: BaseException, *,
    clock: AviClock | None, seek: bool, by_pts: bool = False,
) -> Iterator[DecodedFrame]:
    """The frames of ``run`` a read error stopped twice (``broken``): a disk or store that is down, or a bad stretch
    of the file.

    A read that failed twice at the same place raised :class:`VideoReadError` so that the task was retried: right for
    a mount that dropped out, but a disk's bad sector (every read of those bytes fails with ``EIO``) failed every
    retry, and one video sank the run. Now, where the disk or store reads the video elsewhere
    (:func:`~lightly_airflow.video.source.reads_elsewhere`: its start or end, past the caches), the stretch is tried
    a third time; where that fails too its frames are ``corrupt`` with the reason "unreadable" (the frames from the
    failed one up to the next keyframe past the bad bytes: a seek to each later keyframe, from the container's
    index) and the wanted frames after it are decoded. A video that cannot seek by time but has timestamps (MPEG-PS/TS)
    is read on from the first bytes past the stretch (:func:`_resume_by_bytes`); a raw stream (no timestamps: its
    frames are counted from the start) loses the frames from the stretch on. A disk or store that reads nothing fails
    the task as before."""
    source, error = opened.source, broken.error
    left = sorted(item for item in run if item[0] in broken.pending)
    lost: list[int] = []
    failures = 0
    while left:
        if not reads_elsewhere(source):
            raise_read_error(source)  # (a store's error as it is: the task is retried)
            raise VideoReadError(
                f"reading the video failed twice before frame {left[0][0]} ({reason(first)}; then {reason(error)}), "
                + ("on its object store (retried, never marked unreadable)" if isinstance(source, RecordingReader)
                   else "and its start and end do not read either") + f": {READ_FAILED}") from error
        if hasattr(source, "read_error"):
            source.read_error = None  # (the store answers: a bad stretch, not a failed task)
        if not seek:
            if by_pts:
                yield from _resume_by_bytes(opened, left, broken.at, lost, clock=clock)
            else:
                lost.extend(index for index, _ in left)
            break
        if failures:
            try:
                entries = opened.stream.index_entries
            except Exception:  # noqa: BLE001 - no index: by steps
                entries = None
            skip = _next_start(left, failures, entries)
            lost.extend(index for index, _ in left[:skip])
            left = left[skip:]
            if not left:
                break
        again: list[_Break] = []
        opened.reopen(frame_threads=False)  # (FFmpeg's I/O context keeps the read error: read through a new one)
        yield from _decode_run(opened.container, opened.stream, left, seek=True, by_pts=True, at_start=False,
                               source=source, clock=clock, breaks=again)
        if not again:
            break
        if not is_read_error(again[0].error):
            why = f"the video breaks here: {reason(again[0].error)} (after a read error before frame {left[0][0]})"
            for index in sorted(again[0].pending):
                yield DecodedFrame(index, None, f"{why}. {FRAME_FIX}")
            break
        moved = min(again[0].pending) != left[0][0]
        failures = 1 if moved else failures + 1
        error = again[0].error
        left = [item for item in left if item[0] in again[0].pending]
    if not lost:
        return
    logger.warning("a bad stretch of the video (%s, again on every read while its start and end read): frames %s "
                   "cannot be read, the others are kept", reason(error), _spans(lost))
    why = (f"unreadable: reading the video failed at this frame (or one it refers to) on every try ({reason(error)}) "
           f"while the rest of the file reads: a bad stretch of its disk or store, not a damaged video (frames "
           f"{_spans(lost)} of this video cannot be read; its other frames are kept). {UNREADABLE_FIX}")
    for index in sorted(set(lost)):
        yield DecodedFrame(index, None, why)


#: Reads on past a bad stretch (:func:`_resume_by_bytes`) before the rest of the video is given up.
MAX_RESUMES = 64


def _resume_by_bytes(
    opened: _Opened, left: list[tuple[int, int | None]], start: int, lost: list[int], *, clock: AviClock | None,
) -> Iterator[DecodedFrame]:
    """The wanted frames ``left`` (by pts) of a video that cannot seek by time (MPEG-PS/TS), read on from the first
    bytes past a bad stretch (:func:`~lightly_airflow.video.source.readable_after`, looked for from ``start``, the
    last packet read before it): the file is opened again and FFmpeg seeks there by byte (``AVSEEK_FLAG_BYTE``; the
    demuxer finds the next packet's sync byte itself), decoding starts at the next keyframe, and each frame is known
    by its pts. The frames before the first one decoded are appended to ``lost``; a read that fails again further on
    is looked past the same way. Every frame after a bad stretch used to be lost with it (an MPEG-TS has no index to
    seek by)."""
    source = opened.source
    floor = start
    for _ in range(MAX_RESUMES):
        at = readable_after(source, floor)
        if at is None:
            break
        opened.reopen(frame_threads=False)
        try:
            opened.container.seek(at, unsupported_byte_offset=True, backward=False)
        except Exception as exc:  # noqa: BLE001 - a format that cannot seek by byte: the rest is lost
            logger.warning("cannot read on past a bad stretch at byte %d (%s)", at, reason(exc))
            break
        again: list[_Break] = []
        first_ok: int | None = None
        for got in _decode_run(opened.container, opened.stream, left, seek=False, by_pts=True, at_start=True,
                               source=source, clock=clock, breaks=again, key_first=True):
            if got.frame is None and (first_ok is None or got.index < first_ok):
                lost.append(got.index)  # (before the keyframe the read on started at: in the stretch's reach)
                continue
            if first_ok is None and got.frame is not None:
                first_ok = got.index
            yield got
        if not again:
            return
        if not is_read_error(again[0].error):
            why = f"the video breaks here: {reason(again[0].error)} (after a read error before frame {left[0][0]})"
            for index in sorted(i for i in again[0].pending if first_ok is not None and i > first_ok):
                yield DecodedFrame(index, None, f"{why}. {FRAME_FIX}")
            lost.extend(i for i in again[0].pending if first_ok is None or i < first_ok)
            return
        if first_ok is not None:
            lost.extend(i for i, _ in left if i < first_ok and i in again[0].pending)
        left = [item for item in left if item[0] in again[0].pending and (first_ok is None or item[0] > first_ok)]
        if not left:
            return
        floor = max(at + STRETCH_BLOCK, again[0].at)  # (on past this read: each try starts further on)
        if not reads_elsewhere(source):
            raise_read_error(source)
            raise VideoReadError(f"reading the video failed again before frame {left[0][0]} "
                                 f"({reason(again[0].error)}) and its start and end do not read either: "
                                 f"{READ_FAILED}") from again[0].error
    lost.extend(index for index, _ in left)


def _decode_run(
    container: Any, stream: Any, run: list[tuple[int, int | None]], *, seek: bool, by_pts: bool,
    at_start: bool = False, source: Any = None, clock: AviClock | None = None, breaks: list[_Break] | None = None,
    key_first: bool = False,
) -> Iterator[DecodedFrame]:
    """The wanted frames of ``run`` decoded in one pass (after one seek, or from the start); those it cannot decode
    with the reason. With ``breaks``, a demux error that stops the pass is appended there with the frames it did not
    reach, which are then not yielded (:func:`_resilient` decodes them again). With ``key_first`` (a pass that starts
    at a byte offset: :func:`_resume_by_bytes`) no frame before the first keyframe is kept (it may lack its
    references)."""
    first_index, first_pts = run[0]
    last_index, last_pts = run[-1]
    pts_to_index = {p: i for i, p in run} if by_pts else {}
    contiguous = last_index - first_index + 1 == len(run)  # every frame between is wanted (else: gaps)
    pending = {i for i, _ in run}
    sar = pixel_aspect(stream)  # recorded on each frame for the thumbnail (``display_size``)
    broke: str | None = None
    demux_error: BaseException | None = None
    attempt_seek = seek
    last_pos = 0
    for _attempt in range(2):
        try:
            if attempt_seek and first_index > 0:
                container.seek(int(first_pts), stream=stream, backward=True, any_frame=False)  # type: ignore[arg-type]
            elif not at_start:  # (at the start already: no seek, which raw streams could not do)
                container.seek(0, stream=stream, backward=True, any_frame=False)
        except Exception as exc:  # noqa: BLE001 - fall back to decoding from the start
            if attempt_seek:
                attempt_seek = False
                at_start = False
                continue
            broke = f"cannot seek: {reason(exc)}"
            break
        stream.codec_context.flush_buffers()
        counter = -1  # frames decoded from the start (only meaningful without seeking)
        overshoot = False
        done = False
        bad = 0
        try:
            for packet in container.demux(stream):
                if packet.pos is not None and packet.pos > last_pos:
                    last_pos = packet.pos
                if clock is not None:
                    time = clock.pts(packet)
                    if time != packet.pts:
                        packet.pts = packet.dts = time
                try:
                    frames = packet.decode()
                    bad = 0
                except Exception as exc:  # noqa: BLE001 - one damaged packet costs its frame only
                    bad += 1
                    broke = f"damaged data: {reason(exc)}"
                    # Counting frames (no timestamps): the damaged packet's frame keeps its place, as in the index
                    # (a packet a frame). Without this every later frame took the number before its own, and the
                    # last one was reported undecodable instead of the damaged one.
                    counter += not by_pts
                    if bad >= MAX_BAD_PACKETS:
                        break
                    continue
                for frame in frames:
                    counter += 1
                    if key_first:
                        if not frame.key_frame:
                            continue
                        key_first = False
                    if by_pts:
                        if frame.pts is None:
                            continue
                        if frame.pts < first_pts:
                            continue
                        if attempt_seek and counter == 0 and frame.pts > first_pts:
                            overshoot = True  # the seek landed after our first frame
                            break
                        index = pts_to_index.get(frame.pts)
                        if index is None:
                            if frame.pts > last_pts:
                                done = True
                                break
                            if contiguous:
                                logger.warning("decoded a frame with pts %s that the index does not list", frame.pts)
                            continue
                    else:
                        index = counter
                        if index < first_index:
                            continue
                        if index > last_index:
                            done = True
                            break
                    if index in pending:
                        pending.discard(index)
                        if sar != 1:
                            frame.opaque = sar
                        yield DecodedFrame(index, sdr_frame(frame))
                    if not pending:
                        done = True
                        break
                if overshoot or done:
                    break
        except Exception as exc:  # noqa: BLE001 - a stream that breaks keeps the frames decoded so far
            broke = f"the video breaks here: {reason(exc)}"
            demux_error = exc
        if overshoot and attempt_seek:
            logger.info("seek overshot frame %d; decoding from the start instead", first_index)
            attempt_seek = False
            at_start = False
            continue
        break
    if pending and demux_error is not None and breaks is not None:
        breaks.append(_Break(pending, demux_error, last_pos))
        return
    if pending:
        raise_read_error(source)  # frames lost to the store's read error are not the video's fault
    why = broke or "the decoder produced no such frame (the stream ends early or the frame is damaged)"
    for index in sorted(pending):
        yield DecodedFrame(index, None, f"{why}. {FRAME_FIX}")
