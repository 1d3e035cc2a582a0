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

Crop files are named by object index, so re-cropping an image whose predictions now have fewer objects (a
``process_all`` run, an image replaced under its key) left the former higher-index crops beside the new ones: a
folder synced to a labelling tool held crops of boxes that no longer exist. After an image's crops of a task are
all written, :func:`prune_stale_crops` removes that image's other ``<stem>-<n>-<ext>.png`` files of the task,
and all of them of an uploaded task it now has no selected objects of (counted as ``stale_removed``, logged). It
runs after the writes, so a crash in between loses no current crop, and never removes an index the run writes,
so a retried task removes nothing it wrote; an image whose read or any crop write failed keeps its files
(nothing is removed on a partial picture of it).

Two cases the pruning above did not reach (session 64 audit): an image selected again whose predictions now have
**no objects at all** (no row to write, so it was never pruned: all its crops stayed), and an image **replaced under
its key and not selected again** (its crops showed pixels that no longer exist; the pool's newer row ended its
selection, so no crop belongs to it). The first: every selected image of the run (``picked``) is pruned like an
image whose crops were written, with nothing to keep. The second (``replaced``: the run's images whose file changed
since the pool's previous version, and the frames of a replaced video that no longer exist): all their crop files,
of every task folder (a task the run does not crop too), are removed but those the run writes, counted apart as
``replaced_removed`` and logged. An unchanged image keeps the crops of tasks the run does not crop (the pixels are
still there); an image whose read or a crop write failed keeps all its files.

Session 65 audit: a run with ``crops.enable_upload`` off, or without object-level work (image-level), removed no
crop of a replaced image (the first returned before any removal, the second had no crop step), so an image replaced
after an object-level run kept crops of pixels that no longer exist: :func:`remove_replaced_crops` runs for them too
(it writes and prunes nothing else). And every prune records the files before removing them (``before_removing``):
a task killed part-way through its removals counted, on its retry, only the files left.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


def _crop_name_pattern(parent_key: str, task: str) -> tuple[str, str, re.Pattern[str]]:
    """The folder (inside ``.lightly/``) of ``parent_key``'s crops of ``task``, the head their file names start
    with, and the pattern of their names (group 1: the object index); built from :func:`crop_relpath` so the
    two cannot disagree."""
    folder, _, name = crop_relpath(parent_key, task, 0).rpartition("/")
    other = crop_relpath(parent_key, task, 1).rpartition("/")[2]
    # The two names differ in the index only (a split at "-0-" misreads an extension such as "x.a-0-b").
    head = os.path.commonprefix([name, other])
    tail = os.path.commonprefix([name[::-1], other[::-1]])[::-1]
    return folder, head, re.compile(f"{re.escape(head)}([0-9]+){re.escape(tail)}")


#: ``before_removing(kind, paths)``: called with the crop files (paths inside ``.lightly/``) a prune is about to
#: remove, before it removes any, to record them (``objects.run.RemovalRecord``); returns the files the run's
#: earlier attempts recorded for ``kind``, so a retry counts what a killed attempt removed.
BeforeRemoving = Callable[[str, list[str]], Collection[str]]


def prune_stale_crops(
    root: str, current: Mapping[tuple[str, str], set[int]], credentials: StorageCredentials | None = None, *,
    why: str = "of objects the re-cropped images no longer have", kind: str = "stale_removed",
    before_removing: BeforeRemoving | None = None,
) -> tuple[int, int]:
    """Remove the crop files of the (parent key, task) pairs in ``current`` whose object index is not in its set
    (the indices just written); each folder is listed once (on S3 by its images' prefixes: :func:`_listing`).
    Returns (removed, failed removals): a file that cannot be removed is logged and counted, never fatal; ``why``
    ends the log line of the files removed.

    With ``before_removing``, the files are recorded before the first is removed, and the files an earlier attempt
    of the run recorded for ``kind`` that are gone now count as removed: an attempt killed part-way through its
    removals left no count, and its retry counted only the files left (session 65 audit: 1 of 2, and 0 of 2 when
    killed after the last removal). A recorded file still there is counted once, by the attempt that removes it."""
    fs, base = filesystem(root, credentials)
    folders: dict[str, list[tuple[re.Pattern[str], set[int]]]] = {}
    heads: dict[str, set[str]] = {}
    for (parent, task), keep in current.items():
        folder, head, pattern = _crop_name_pattern(parent, task)
        folders.setdefault(folder, []).append((pattern, keep))
        heads.setdefault(folder, set()).add(head)
    listed: set[str] = set()
    stale: list[str] = []
    for folder, patterns in sorted(folders.items()):
        for path in _listing(fs, join_uri(base, folder), heads[folder]):
            name = str(path).rstrip("/").rsplit("/", 1)[-1]
            listed.add(f"{folder}/{name}")
            if any((m := p.fullmatch(name)) and int(m.group(1)) not in keep for p, keep in patterns):
                stale.append(f"{folder}/{name}")
    earlier = set(before_removing(kind, stale)) if before_removing is not None else set()
    removed = len(earlier - listed)  # (gone: removed by an earlier attempt; a file recorded and still there is not)
    failed, names = 0, []
    for relpath in stale:
        try:
            fs.rm_file(join_uri(base, relpath))
            removed += 1
            names.append(relpath)
        except Exception as exc:  # noqa: BLE001 - a stale file left is reported, not fatal
            failed += 1
            log.warning("crops: cannot remove the stale crop %s: %s: %s", relpath, type(exc).__name__, exc)
    if names:
        log.info("crops: removed %d stale crop files %s: %s%s", len(names), why, ", ".join(names[:5]),
                 " ..." if len(names) > 5 else "")
    if removed > len(names):
        log.info("crops: %d more crop files %s were removed by an earlier attempt of the run", removed - len(names), why)
    return removed, failed


#: Images of one crop folder up to which S3 lists each image's crops by its name's prefix (one request each) rather
#: than the whole folder (one request per 1,000 files): a flat folder of many selected images was listed in full
#: once per task on every run (session 64 audit). Measured on moto, 3 images pruned in a flat folder of 3,000 crops:
#: 3.0 s listed whole, 0.15 s by prefix (about 0.05 s a prefix request); past 50 images one listing of the folder
#: is fewer requests than the prefixes for a folder of up to 50,000 crops.
PREFIX_LISTINGS_MAX = 50


def _listing(fs: Any, folder: str, heads: Collection[str]) -> list[str]:
    """The files of ``folder`` whose names may start with one of ``heads``: on S3 (the only store whose prefix
    listing was measured) a listing per head when there are few, else the whole folder; fresh (not the
    filesystem's cached listing); none when the folder does not exist."""
    try:
        if "s3" in fs.protocol and len(heads) <= PREFIX_LISTINGS_MAX:
            fs.invalidate_cache(folder)
            # (one head may start another's, "img_1-" and "img_1-3-": a file listed twice is removed once)
            return sorted({str(f) for head in heads for f in fs.find(folder, maxdepth=1, prefix=head)})
        return [str(f) for f in fs.ls(folder, detail=False, refresh=True)]
    except FileNotFoundError:
        return []


def task_folders(root: str, credentials: StorageCredentials | None = None) -> list[str]:
    """The task folders under ``<root>/crops`` (tasks of earlier runs too); none when there is no crop yet."""
    fs, base = filesystem(join_uri(root, CROPS_DIR), credentials)
    try:
        listed = fs.ls(base, detail=True, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in listed if e.get("type") == "directory")


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


#: No object rows (a run whose images have no objects, :func:`write_selected_crops` still prunes).
NO_OBJECTS = pa.schema([(C.PARENT_KEY, pa.string()), (C.OBJECT_TASK, pa.string()), (C.OBJECT_INDEX, pa.int64()),
                        (C.OBJECT_CROP_BOX, pa.list_(pa.int64())), (C.OBJECT_SELECTED, pa.bool_())]).empty_table()


@dataclass(frozen=True)
class _CropWrite:
    """What the steps of one :func:`write_selected_crops` call share: the ``.lightly/`` root, the selected objects
    of uploaded tasks by image (their rows ``parent_key, object_task, object_index, object_crop_box``), the reader
    of their pictures (:func:`parent_reader`) and the credentials of the crops' store."""

    root: str
    by_parent: Mapping[str, list[dict[str, Any]]]
    read: Callable[[str], bytes]
    credentials: StorageCredentials | None


def write_selected_crops(
    objects: pa.Table | None, spec: ObjectsSpec, *, datasource_uri: str, lightly_uri: str,
    datasource_credentials: StorageCredentials | None = None, lightly_credentials: StorageCredentials | None = None,
    workers: int = 4, frames: Mapping[str, Mapping[str, Any]] | None = None, picked: Collection[str] = (),
    replaced: Collection[str] = (), before_removing: BeforeRemoving | None = None,
) -> dict[str, Any]:
    """Write the crops of the objects whose image was selected (``object_selected``), for the tasks
    ``spec.uploads`` allows. Returns counts ``written``, ``failed``, ``skipped_tasks``, ``uri``, ``stale_removed``
    and ``stale_failed`` (:func:`prune_stale_crops`), ``replaced_removed`` and ``replaced_failed``.

    :param frames: parents that are video frames, their rows by key (cropped from :func:`parent_reader`'s picture).
    :param picked: the images the run selected (those without a selected object keep no crop of an uploaded task).
    :param replaced: the run's images whose picture is gone (:func:`~.run.replaced_images`): no crop of their
        former picture is kept (only what the run writes of them), whatever its task folder; with
        ``crops.enable_upload`` off too (:func:`remove_replaced_crops`).
    :param before_removing: records the files before they are removed (:data:`BeforeRemoving`).
    """
    from lightly_airflow.lightly_dir import lightly_root

    counts: dict[str, Any] = {"written": 0, "failed": 0, "skipped_tasks": [], "uri": None, "stale_removed": 0,
                              "stale_failed": 0, "replaced_removed": 0, "replaced_failed": 0}
    objects = NO_OBJECTS if objects is None or objects.num_rows == 0 else objects
    if not spec.upload:  # (no crop written or pruned; those of a former picture are no object's: removed)
        return {**counts, **remove_replaced_crops(lightly_uri, replaced, lightly_credentials,
                                                  before_removing=before_removing)}
    if objects.num_rows == 0 and not picked and not replaced:
        return counts
    rows, allowed, counts["skipped_tasks"] = _rows_to_crop(objects, spec)
    root = lightly_root(lightly_uri)
    counts["uri"] = join_uri(root, CROPS_DIR)
    read = parent_reader(datasource_uri, lightly_uri, frames or {}, datasource_credentials, lightly_credentials)
    job = _CropWrite(root, _by_parent(rows), read, lightly_credentials)
    # The uploaded tasks of the spec, not only those some selected object of the run has: a task no image of the
    # run has objects of any more left every image's former crops of it.
    uploaded = sorted({*allowed, *(t for t in spec.all_tasks if spec.uploads(t))})
    results = _write_images(job, workers)
    counts["written"] = sum(written for written, _ in results.values())
    counts["failed"] = sum(failed for _, failed in results.values())
    complete, failing = _current_crops(job, results, uploaded, picked)
    counts.update(_remove_former_crops(job, complete, set(replaced) - failing, lightly_uri, before_removing))
    log.info("crops: wrote %d PNG crops of selected objects to %s (%d failed; %d stale removed; %d of replaced images "
             "removed; tasks not uploaded: %s)", counts["written"], counts["uri"], counts["failed"],
             counts["stale_removed"], counts["replaced_removed"], counts["skipped_tasks"])
    return counts


def _rows_to_crop(objects: pa.Table, spec: ObjectsSpec) -> tuple[pa.Table, list[str], list[str]]:
    """The selected objects of the tasks ``spec.uploads`` allows, those tasks, and the tasks of selected objects
    it does not (``skipped_tasks``)."""
    rows = objects.filter(objects.column(C.OBJECT_SELECTED))
    tasks = sorted(set(rows.column(C.OBJECT_TASK).to_pylist()))
    allowed = [t for t in tasks if spec.uploads(t)]
    rows = rows.filter(pc.is_in(rows.column(C.OBJECT_TASK), pa.array(allowed, pa.string())))
    return rows, allowed, [t for t in tasks if not spec.uploads(t)]


def _by_parent(rows: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """The rows to crop by image (``parent_key``), in the table's order."""
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for row in rows.select([C.PARENT_KEY, C.OBJECT_TASK, C.OBJECT_INDEX, C.OBJECT_CROP_BOX]).to_pylist():
        by_parent.setdefault(row[C.PARENT_KEY], []).append(row)
    return by_parent


def _write_images(job: _CropWrite, workers: int) -> dict[str, tuple[int, int]]:
    """Crop every image of ``job``, ``workers`` at a time: ``(written, failed)`` crop files by image, sorted."""
    parents = sorted(job.by_parent)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="objects-crops") as pool:
        return dict(zip(parents, pool.map(lambda parent: _write_image(job, parent), parents), strict=True))


def _write_image(job: _CropWrite, parent: str) -> tuple[int, int]:
    """Write the crops of ``parent``'s objects from one decode of its picture: ``(written, failed)``."""
    from lightly_airflow.embedding.images import open_rgb_for_boxes
    from lightly_airflow.pixels import scale_box

    objs = job.by_parent[parent]
    try:
        img, shown = open_rgb_for_boxes(job.read(parent))
    except Exception:  # noqa: BLE001 - one unreadable image never fails the run after its commit
        log.exception("crops: cannot read %r; its %d selected objects get no crop file", parent, len(objs))
        return 0, len(objs)
    written, errors = 0, []
    for obj in objs:
        relpath = crop_relpath(parent, obj[C.OBJECT_TASK], obj[C.OBJECT_INDEX])
        try:
            x, y, w, h = scale_box(tuple(obj[C.OBJECT_CROP_BOX]), img.size, shown)
            buf = io.BytesIO()
            img.crop((x, y, x + w, y + h)).save(buf, format="PNG", compress_level=PNG_LEVEL)
            write_bytes(buf.getvalue(), join_uri(job.root, relpath), job.credentials)
            written += 1
        except Exception as exc:  # noqa: BLE001 - one failed write costs its crop, not the other images' counts
            errors.append(f"{relpath}: {type(exc).__name__}: {exc}"[:300])
    if errors:
        log.warning("crops: %d of the %d crop files of %r were not written: %s", len(errors), len(objs), parent,
                    "; ".join(errors[:3]))
    return written, len(errors)


def _current_crops(
    job: _CropWrite, results: Mapping[str, tuple[int, int]], uploaded: Collection[str], picked: Collection[str],
) -> tuple[dict[tuple[str, str], set[int]], set[str]]:
    """The object indexes each (image, uploaded task) keeps (:func:`prune_stale_crops`) and the images whose read
    or a crop write failed (they keep all their files: nothing is pruned on a partial picture of them)."""
    complete: dict[tuple[str, str], set[int]] = {}
    failing: set[str] = set()
    for parent, (_, failed) in results.items():
        if failed:
            failing.add(parent)
            continue
        # A task the image now has no selected objects of (its other tasks were cropped): none of its crops.
        complete.update({(parent, task): set() for task in uploaded})
        for obj in job.by_parent[parent]:
            complete[(parent, obj[C.OBJECT_TASK])].add(obj[C.OBJECT_INDEX])
    # A selected image without a selected object of an uploaded task: nothing written, none of its crops is current.
    complete.update({(parent, task): set() for parent in picked if parent not in job.by_parent for task in uploaded})
    return complete, failing


def _remove_former_crops(
    job: _CropWrite, complete: Mapping[tuple[str, str], set[int]], replaced: Collection[str], lightly_uri: str,
    before_removing: BeforeRemoving | None,
) -> dict[str, int]:
    """Prune the crops ``complete`` does not keep, then those of the ``replaced`` images (but ``complete``'s):
    ``stale_removed``, ``stale_failed``, ``replaced_removed`` and ``replaced_failed``."""
    stale_removed, stale_failed = prune_stale_crops(job.root, complete, job.credentials,
                                                    before_removing=before_removing)
    return {"stale_removed": stale_removed, "stale_failed": stale_failed,
            **remove_replaced_crops(lightly_uri, replaced, job.credentials, written=complete,
                                    before_removing=before_removing)}


def remove_replaced_crops(
    lightly_uri: str, replaced: Collection[str], credentials: StorageCredentials | None = None, *,
    written: Collection[tuple[str, str]] = (), before_removing: BeforeRemoving | None = None,
) -> dict[str, int]:
    """Remove every crop file of the ``replaced`` images (their pictures are gone: :func:`~.run.replaced_images`) in
    every task folder but those of the (image, task) pairs in ``written`` (the run's own crops of them, pruned by
    :func:`prune_stale_crops`); ``replaced_removed`` and ``replaced_failed``. Whatever the run crops: until session
    65 a run with ``crops.enable_upload`` off or without object-level work (image-level) kept them, so a replaced
    image kept crops of pixels that no longer exist. Lists ``crops/`` only when some image was replaced."""
    from lightly_airflow.lightly_dir import lightly_root

    if not replaced:
        return {"replaced_removed": 0, "replaced_failed": 0}
    root = lightly_root(lightly_uri)
    folders = task_folders(root, credentials)
    former: dict[tuple[str, str], set[int]] = {
        (parent, task): set() for parent in sorted(replaced) for task in folders if (parent, task) not in written}
    removed, failed = prune_stale_crops(
        root, former, credentials, why="of images replaced since they were cropped (their former pictures)",
        kind="replaced_removed", before_removing=before_removing)
    return {"replaced_removed": removed, "replaced_failed": failed}
