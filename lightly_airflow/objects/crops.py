"""Crops of the selected objects as PNG files under the ``.lightly/`` location (``crops.enable_upload``).

Path: ``<lightly_uri>/.lightly/crops/<task>/<image key without extension>-<object index>-<extension>.png``
(the pattern Lightly uses for frames), e.g. ``.lightly/crops/cars/street/img_1-3-jpg.png``. The crop is the
padded box at the image's full resolution (a JPEG above ``PIL.Image.MAX_IMAGE_PIXELS``: at the reduced scale
every pass decodes it at, ``embedding.images.open_rgb_for_boxes``). Each image is decoded once for all its selected objects; every
file is written whole (temporary file + rename, or one upload) and its content depends only on the image and
the box, so a retried task rewrites identical files. A failing image or file write is logged and counted, never
fatal (a write that failed used to end the count: the summary said 0 written, -1 failed, whatever was written).

A video frame is no file of the datasource: its objects are cropped from the frame's picture as the UI shows it
(``video.export.frame_png``): the PNG the run writes before its crops (``<lightly_uri>/.lightly/frames/<frame
key>``, the full-resolution upright frame of the same decode as the object pass's) when it shows this version
of the video, else the frame decoded from its video now (a PNG that failed to write, was removed, or shows a
replaced video's former content).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.objects.spec import ObjectsSpec
from lightly_airflow.pixels import PNG_LEVEL
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, write_bytes

log = logging.getLogger(__name__)

CROPS_DIR = "crops"


def crop_relpath(parent_key: str, task: str, index: int) -> str:
    """``crops/<task>/<stem>-<index>-<ext>.png`` inside ``.lightly/``; the extension keeps its case, as in
    Lightly's frame names (``video.naming.frame_name``): lowercased, ``IMG_1.JPG`` and ``IMG_1.jpg`` (two files on
    a case-sensitive store) wrote the same crop file, the second image's crop replacing the first's."""
    from lightly_airflow.lightly_dir import key_stem

    ext = parent_key.rsplit(".", 1)[-1] if "." in parent_key.rsplit("/", 1)[-1] else "img"
    return f"{CROPS_DIR}/{task}/{key_stem(parent_key)}-{index}-{ext}.png"


def parent_reader(
    datasource_uri: str, lightly_uri: str | None, frames: Mapping[str, Mapping[str, Any]],
    datasource_credentials: StorageCredentials | None, lightly_credentials: StorageCredentials | None,
) -> Any:
    """``read(parent key) -> bytes`` of the image objects were cropped from: the datasource file, or for a video
    frame (``frames``: its row by key, ``key, etag, video, frame_index, frame_pts``) its picture as the UI shows it
    (``video.export.frame_png``: its PNG under ``.lightly/frames/`` for this video version, else decoded now)."""
    fs, ds_root = filesystem(datasource_uri, datasource_credentials)

    def read(parent: str) -> bytes:
        frame = frames.get(parent)
        if frame is not None:
            from lightly_airflow.video.export import frame_png

            return frame_png(datasource_uri, dict(frame), lightly_uri=lightly_uri, credentials=datasource_credentials,
                             lightly_credentials=lightly_credentials, selected=True)
        data: bytes = fs.cat_file(join_uri(ds_root, parent))
        return data

    return read


def write_selected_crops(
    objects: pa.Table, spec: ObjectsSpec, *, datasource_uri: str, lightly_uri: str,
    datasource_credentials: StorageCredentials | None = None, lightly_credentials: StorageCredentials | None = None,
    workers: int = 4, frames: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write the crops of the objects whose image was selected (``object_selected``), for the tasks
    ``spec.uploads`` allows. Returns counts ``written``, ``failed``, ``skipped_tasks`` and ``uri``.

    :param frames: parents that are video frames, their rows by key (cropped from :func:`parent_reader`'s picture).
    """
    from lightly_airflow.embedding.images import open_rgb_for_boxes
    from lightly_airflow.lightly_dir import lightly_root
    from lightly_airflow.pixels import scale_box

    counts: dict[str, Any] = {"written": 0, "failed": 0, "skipped_tasks": [], "uri": None}
    if not spec.upload or objects.num_rows == 0:
        return counts
    rows = objects.filter(objects.column(C.OBJECT_SELECTED))
    tasks = sorted(set(rows.column(C.OBJECT_TASK).to_pylist()))
    counts["skipped_tasks"] = [t for t in tasks if not spec.uploads(t)]
    allowed = [t for t in tasks if spec.uploads(t)]
    rows = rows.filter(pc.is_in(rows.column(C.OBJECT_TASK), pa.array(allowed, pa.string())))
    root = lightly_root(lightly_uri)
    counts["uri"] = join_uri(root, CROPS_DIR)
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for row in rows.select([C.PARENT_KEY, C.OBJECT_TASK, C.OBJECT_INDEX, C.OBJECT_CROP_BOX]).to_pylist():
        by_parent.setdefault(row[C.PARENT_KEY], []).append(row)
    read = parent_reader(datasource_uri, lightly_uri, frames or {}, datasource_credentials, lightly_credentials)

    def one(parent: str) -> tuple[int, int]:
        try:
            img, shown = open_rgb_for_boxes(read(parent))
        except Exception:  # noqa: BLE001 - one unreadable image never fails the run after its commit
            log.exception("crops: cannot read %r; its %d selected objects get no crop file", parent, len(by_parent[parent]))
            return 0, len(by_parent[parent])
        written, errors = 0, []
        for obj in by_parent[parent]:
            relpath = crop_relpath(parent, obj[C.OBJECT_TASK], obj[C.OBJECT_INDEX])
            try:
                x, y, w, h = scale_box(tuple(obj[C.OBJECT_CROP_BOX]), img.size, shown)
                buf = io.BytesIO()
                img.crop((x, y, x + w, y + h)).save(buf, format="PNG", compress_level=PNG_LEVEL)
                write_bytes(buf.getvalue(), join_uri(root, relpath), lightly_credentials)
                written += 1
            except Exception as exc:  # noqa: BLE001 - one failed write costs its crop, not the other images' counts
                errors.append(f"{relpath}: {type(exc).__name__}: {exc}"[:300])
        if errors:
            log.warning("crops: %d of the %d crop files of %r were not written: %s", len(errors),
                        len(by_parent[parent]), parent, "; ".join(errors[:3]))
        return written, len(errors)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="objects-crops") as pool:
        for written, failed in pool.map(one, sorted(by_parent)):
            counts["written"] += written
            counts["failed"] += failed
    log.info("crops: wrote %d PNG crops of selected objects to %s (%d failed; tasks not uploaded: %s)",
             counts["written"], counts["uri"], counts["failed"], counts["skipped_tasks"])
    return counts
