"""Live Photos: an iPhone photo's ~3-second motion clip is stored beside it as a ``.MOV`` of the same name.

A camera roll copied off an iPhone (Image Capture, Photos' "Export Unmodified Original", a synced folder) holds
``IMG_0001.HEIC`` and ``IMG_0001.MOV`` for every Live Photo (``.JPG`` with "Most Compatible"; Google Takeout
writes the clip as ``.MP4``). Listed as a video, each clip would add ~90 near-identical frames per photo: a
camera roll of 1,000 photos became ~90,000 frame samples, embedded at 90x the cost and crowding the selection.
Photo libraries (Apple Photos, Google Photos, Immich, PhotoPrism) keep a Live Photo as one item, its photo; so
does the listing: a clip beside a listed photo of the same name is not a sample (counted, with examples, in
the log, the run summary and the report), unless ``live_photo_videos`` asks for its frames too.

The rule uses the listing only (names and sizes, no read), so the sensor and every run decide alike and a
skipped clip never counts as new. A video of its own with a poster image of the same name (``clip.jpg`` beside
``clip.mov``) is told apart by size: a Live Photo clip is at most a few megabytes (1-6 MB from current
iPhones), a file over :data:`LIVE_PHOTO_MAX_BYTES` is always a video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow.columns import KEY, SIZE
from lightly_airflow.heif import HEIF_EXTENSIONS

#: Clip extensions: Apple's ``.MOV``; ``.MP4`` only beside a HEIC/HEIF photo (Google Takeout's Live Photos;
#: a ``.jpg`` beside an ``.mp4`` is a video's poster far more often than a Live Photo).
CLIP_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "mov": (*HEIF_EXTENSIONS, "jpg", "jpeg"),
    "mp4": HEIF_EXTENSIONS,
}
#: A clip beside a photo is a Live Photo's up to this size (3 s of 1440p HEVC from an iPhone 15: 2-6 MB; 1080p
#: H.264 from older ones: ~4 MB); larger files are videos of their own.
LIVE_PHOTO_MAX_BYTES = 20 * 2**20
#: The option that processes the clips as videos (NewFilesQuery, the sensor and the list task).
OPTION = "live_photo_videos"


@dataclass
class LivePhotoClips:
    """The clips of a listing that belong to a listed photo: a mask over the listing, their number and the
    first ``(clip, photo)`` pairs."""

    mask: pa.Array
    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)


def live_photo_clips(listing: pa.Table, examples: int = 5) -> LivePhotoClips:
    """Which rows of ``listing`` (``key, size, …``) are Live Photo clips: a video of :data:`CLIP_EXTENSIONS`
    of at most :data:`LIVE_PHOTO_MAX_BYTES` whose folder holds a listed photo of the same name (the name's
    case as is, the extensions' in any case) of an extension that goes with it.

    In Arrow: one pass finds the clip-like keys (1,000,000 keys without one: ~47 ms); then one hash lookup of
    every key, lower-cased, among the names their photos could have; the few hits are checked exactly."""
    keys = listing.column(KEY).combine_chunks()
    none = LivePhotoClips(mask=pa.array(np.zeros(len(keys), dtype=np.bool_)))
    if not len(keys):
        return none
    suffixes = "|".join(CLIP_EXTENSIONS)
    is_clip = pc.fill_null(pc.match_substring_regex(keys, rf"[^/]\.(?:{suffixes})$", ignore_case=True), False)
    is_clip = pc.and_(is_clip, pc.less_equal(listing.column(SIZE).combine_chunks(), LIVE_PHOTO_MAX_BYTES))
    clip_rows = pc.indices_nonzero(is_clip).to_numpy()
    if not len(clip_rows):
        return none
    clips: dict[str, list[tuple[int, str]]] = {}  # stem -> (row, clip extension)
    for row, key in zip(clip_rows.tolist(), keys.take(pa.array(clip_rows)).to_pylist(), strict=True):
        stem, ext = key.rsplit(".", 1)
        clips.setdefault(stem, []).append((row, ext.lower()))
    names = {f"{stem.lower()}.{e}" for stem, found in clips.items() for _, ext in found for e in CLIP_EXTENSIONS[ext]}
    photo_rows = pc.indices_nonzero(pc.is_in(pc.utf8_lower(keys), value_set=pa.array(list(names), pa.string()))).to_numpy()
    partner: dict[int, str] = {}
    for photo in keys.take(pa.array(photo_rows, pa.int64())).to_pylist():
        stem, ext = photo.rsplit(".", 1)
        for row, clip_ext in clips.get(stem, ()):  # (the exact name: the lower-cased lookup may match another case)
            if ext.lower() in CLIP_EXTENSIONS[clip_ext] and (row not in partner or photo < partner[row]):
                partner[row] = photo  # (several photos: the first by name)
    if not partner:
        return none
    hit = np.zeros(len(keys), dtype=np.bool_)
    hit[list(partner)] = True
    found = [(keys[r].as_py(), partner[r]) for r in sorted(partner)[:examples]]
    return LivePhotoClips(mask=pa.array(hit), count=len(partner), examples=found)


def without_clips(files: pa.Table, clips: LivePhotoClips, listing: pa.Table) -> pa.Table:
    """``files`` (rows of ``listing``, any subset) without the clips :func:`live_photo_clips` found in
    ``listing``."""
    if not clips.count or not files.num_rows:
        return files
    clip_keys = listing.column(KEY).filter(clips.mask)
    return files.filter(pc.invert(pc.is_in(files.column(KEY), value_set=clip_keys.combine_chunks())))


def clips_note(count: int, examples: list[tuple[str, str]], *, listing: bool = False) -> str:
    """What the log, summary and report say about ``count`` clips a run did not process, with the fix
    (``listing``: what a listing of the datasource says of them, before any run)."""
    shown = ", ".join(f"{clip!r} beside {photo!r}" for clip, photo in examples[:3])
    many = count != 1
    verb = ("are" if many else "is") + " not processed by a run" if listing else ("were" if many else "was") + " not processed"
    return (f"{count:,} Live Photo motion clip{'s' if many else ''} (a short video beside the photo of the same name) "
            f"{verb}: the photo is the sample, e.g. {shown}; to curate their frames too, set {OPTION}=True on the "
            f"sensor and the list task (the example DAG: its live_photo_videos param; a video over "
            f"{LIVE_PHOTO_MAX_BYTES // 2**20} MB beside a photo is always processed: a video of its own)")
