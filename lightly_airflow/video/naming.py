"""Lightly's names for video frames, and which keys are videos.

A frame of a video is a sample whose key is ``<video key without extension>-<frame index>-<extension>.png``,
the index zero-padded to ``len(str(number of frames))`` (``campus4-c0-07-avi.png`` is frame 7 of 48,
``sub/dir/clip-007-mp4.png`` frame 7 of 120). Frames are enumerated exactly as PyAV decodes them.
"""

from __future__ import annotations

from lightly_airflow.lightly_dir import VIDEO_EXTENSIONS, key_stem, parse_frame_name

__all__ = ["VIDEO_EXTENSIONS", "frame_name", "frame_name_past_end", "is_video_key", "parse_frame_name", "video_extension"]


def video_extension(key: str) -> str | None:
    """The lower-case video extension of ``key`` (``mp4``), or ``None`` when it is not a video."""
    name = key.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    ext = name.rsplit(".", 1)[1].lower()
    return ext if ext in VIDEO_EXTENSIONS else None


def is_video_key(key: str) -> bool:
    """Whether ``key`` names a video file (by extension, case-insensitive)."""
    return video_extension(key) is not None


def frame_name(video_key: str, index: int, n_frames: int) -> str:
    """Lightly's key of frame ``index`` of a video with ``n_frames`` frames.

    ``frame_name("sub/dir/clip.MP4", 7, 120) == "sub/dir/clip-007-MP4.png"`` (the extension keeps its case, as
    Lightly writes it).

    :raises ValueError: for a key without a video extension or an index outside ``[0, n_frames)``.
    """
    if is_video_key(video_key) and not 0 <= index < max(n_frames, 1):
        raise ValueError(f"frame index {index} is outside [0, {n_frames}) of {video_key!r}.")
    return _frame_name(video_key, index, n_frames)


def frame_name_past_end(video_key: str, n_frames: int) -> str:
    """The name frame ``n_frames`` of a video with ``n_frames`` frames would have: the first frame past its end,
    padded as its frames are (``frame_name_past_end("clip.mp4", 48) == "clip-48-mp4.png"``). A ``.lightly/``
    file under it was made for a frame the video does not have (another decoder's count, frames numbered from 1).

    :raises ValueError: for a key without a video extension or a negative ``n_frames``.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames {n_frames} of {video_key!r} is negative.")
    return _frame_name(video_key, n_frames, n_frames)


def _frame_name(video_key: str, index: int, n_frames: int) -> str:
    if not is_video_key(video_key):
        raise ValueError(f"{video_key!r} is not a video (extensions: {', '.join(VIDEO_EXTENSIONS)}).")
    ext = video_key.rsplit(".", 1)[1]
    width = len(str(n_frames))
    return f"{key_stem(video_key)}-{index:0{width}d}-{ext}.png"
