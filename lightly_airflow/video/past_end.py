"""``.lightly/`` files made for the frame after a video's last one (``clip-48-mp4.json`` of a 48-frame video).

No sample has that name, so such a file is never read: it was made on frames the video does not have as PyAV
decodes it (another decoder counted more frames, frames numbered from 1, another version of the video), and the
video's other files may be paired with the wrong frames. The predictions and metadata stages report it. Only frame
``n`` of an ``n``-frame video is looked for (one read a video and folder), by the manifest shard that holds the
video's last frame, so a video split over shards is looked at once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import json_relpath
from lightly_airflow.video.naming import frame_name_past_end

if TYPE_CHECKING:
    import pyarrow as pa

    from lightly_airflow.lightly_dir import LightlyDir

logger = logging.getLogger(__name__)


def video_ends(table: pa.Table, manifest_uri: str, what: str) -> list[tuple[str, int]]:
    """``(video key, frame count)`` of each video whose last frame is a row of this manifest shard. A manifest
    written before the frame counts were recorded (no ``video_frames``) gives none, with a warning naming ``what``
    (the files not looked for): the check is not made, not passed."""
    names = table.column_names
    if C.VIDEO not in names or C.FRAME_INDEX not in names or table.column(C.VIDEO).null_count == table.num_rows:
        return []
    if C.VIDEO_FRAMES not in names:
        logger.warning(
            "manifest %s has video frames but no %r column (written by an earlier version): %s for a frame past a "
            "video's end are not looked for. Clear the list task to write the manifest again.",
            manifest_uri, C.VIDEO_FRAMES, what)
        return []
    rows = table.select([C.VIDEO, C.FRAME_INDEX, C.VIDEO_FRAMES]).to_pydict()
    return [(video, int(count)) for video, index, count in zip(rows[C.VIDEO], rows[C.FRAME_INDEX], rows[C.VIDEO_FRAMES])
            if video is not None and index is not None and count is not None and index == count - 1]


def files_past_end(folder: LightlyDir, subdir: str, ends: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """``(relpath, video, frame count)`` of each video of ``ends`` whose file for frame ``count`` (the first past
    its end, :func:`~lightly_airflow.video.naming.frame_name_past_end`) exists in ``.lightly/<subdir>``: one read a
    video, all at once."""
    rels = {json_relpath(subdir, frame_name_past_end(video, count)): (video, count) for video, count in ends}
    got = folder.read_many(sorted(rels)) if rels else {}
    return [(rel, *rels[rel]) for rel in sorted(rels) if isinstance(got.get(rel), bytes)]
