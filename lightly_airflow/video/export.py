"""Selected frames written out once, as PNG, under ``<lightly_uri>/.lightly/frames/<frame name>``.

Idempotent: a frame whose PNG exists is not written again (a retried run writes nothing twice), and a PNG
appears whole or not at all: locally it is written to a temporary file in the same folder and renamed, on an
object store it is one PUT (an object is never visible half-written). Frames are decoded range by range
(one seek per run of consecutive selected frames), never extracted to disk.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections import defaultdict
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import lightly_root
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, protocol_of
from lightly_airflow.video.decode import decode_frames
from lightly_airflow.video.source import open_video_source

logger = logging.getLogger(__name__)

FRAMES_DIR = "frames"


def frame_png_uri(lightly_uri: str, key: str) -> str:
    """Where the PNG of frame ``key`` lives: ``<lightly_uri>/.lightly/frames/<key>``."""
    return join_uri(lightly_root(lightly_uri), FRAMES_DIR, key)


def _png(frame: Any) -> bytes:
    buf = io.BytesIO()
    frame.to_image().save(buf, format="PNG")
    return buf.getvalue()


def _put(fs: Any, path: str, data: bytes, local: bool) -> None:
    if local:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        fs.pipe_file(path, data)


def write_selected_frames(
    rows: pa.Table, *, datasource_uri: str, lightly_uri: str | None = None,
    datasource_credentials: StorageCredentials | None = None, lightly_credentials: StorageCredentials | None = None,
) -> dict[str, Any]:
    """Write the PNG of every frame row of ``rows`` (``key, video, frame_index, frame_pts``) not written yet.

    :returns: counts ``written``, ``existing``, ``failed`` and ``folder`` (the frames folder's URI); a frame
        that cannot be decoded is logged and counted, never raised.
    """
    lightly_uri = lightly_uri or datasource_uri
    folder = join_uri(lightly_root(lightly_uri), FRAMES_DIR)
    counts: dict[str, Any] = {"written": 0, "existing": 0, "failed": 0, "folder": folder}
    if C.VIDEO not in rows.column_names or not rows.num_rows:
        return counts
    fs, _ = filesystem(folder, lightly_credentials)
    local = protocol_of(folder) == "file"
    todo: dict[str, list[tuple[str, int, int | None]]] = defaultdict(list)
    for r in rows.select([C.KEY, C.VIDEO, C.FRAME_INDEX, C.FRAME_PTS]).to_pylist():
        if r[C.VIDEO] is None or r[C.FRAME_INDEX] is None:
            continue
        _, path = filesystem(frame_png_uri(lightly_uri, r[C.KEY]), lightly_credentials)
        if fs.exists(path):
            counts["existing"] += 1
            continue
        todo[r[C.VIDEO]].append((path, int(r[C.FRAME_INDEX]), r[C.FRAME_PTS]))
    src_fs, src_root = filesystem(datasource_uri, datasource_credentials)
    for video, frames in sorted(todo.items()):
        paths = {index: path for path, index, _ in frames}
        try:
            with open_video_source(datasource_uri, video, datasource_credentials, fs=src_fs, root=src_root) as source:
                for got in decode_frames(source, [(index, pts) for _, index, pts in frames]):
                    if got.frame is None:
                        counts["failed"] += 1
                        logger.warning("cannot write frame %d of %r: %s", got.index, video, got.reason)
                        continue
                    _put(fs, paths[got.index], _png(got.frame), local)
                    counts["written"] += 1
        except FileNotFoundError:
            counts["failed"] += len(frames)
            logger.warning("cannot write the frames of %r: the video is gone", video)
    logger.info("selected frames in %s: %d written, %d already there, %d failed", folder, counts["written"],
                counts["existing"], counts["failed"])
    return counts
