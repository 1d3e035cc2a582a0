"""The select task's object-level steps: gather the run's objects, the pool's objects of preselected images,
crop metrics per image, the object rows committed with the run, and the selected objects' crops.

Object rows live in the datapool next to their images (``parent_key`` links them, :mod:`lightly_airflow.
columns`), committed in the run's one commit; they are never ``selected`` themselves (they carry no tags, so
tags, ``initial-tag`` and exports of images are unchanged); ``object_selected`` says their image was picked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.metadata.metrics import CROP_METRICS
from lightly_airflow.objects.shard import DROP_COUNTS
from lightly_airflow.objects.spec import ObjectsSpec
from lightly_airflow.storage import StorageCredentials, join_uri, map_io

log = logging.getLogger(__name__)

#: Columns of an object row that the commit keeps (besides the crop metadata).
OBJECT_COLUMNS = (C.KEY, C.ETAG, C.PARENT_KEY, C.OBJECT_TASK, C.OBJECT_INDEX, C.OBJECT_BBOX, C.OBJECT_CROP_BOX,
                  C.OBJECT_CATEGORY, C.OBJECT_SCORE, C.EMBEDDING)


def load_run_objects(manifests: list[str], credentials: StorageCredentials | None = None) -> pa.Table | None:
    """The ``objects/`` staging files of the run's shards, stacked; ``None`` when the run has none.

    :raises FileNotFoundError: when some shards wrote objects and another did not (its embed task did not
        finish: clear it so it runs again).
    :raises staging.DamagedStagingFile: when one is not a whole, intact Parquet file.
    """
    uris = [staging.sibling_uri(manifest, staging.OBJECTS) for manifest in manifests]
    writer = staging.WRITER[staging.OBJECTS]
    read = map_io(lambda uri: staging.read_staging(uri, credentials, writer), uris)  # (on threads, in order)
    tables = [table for table in read if table is not None]
    missing = [uri for uri, table in zip(uris, read, strict=True) if table is None]
    if not tables:
        return None
    if missing:
        raise FileNotFoundError(
            f"Object staging files {missing[:3]} are missing while other shards have theirs: the embed task of "
            "those shards did not finish. Clear it so it runs again."
        )
    out = pa.concat_tables(tables, promote_options="permissive")
    summed = staging.summed_counts(tables, staging.OBJECTS)
    return staging.with_counts(out, staging.OBJECTS, summed.counts, summed.not_known)


def with_object_metadata(rows: pa.Table, objects: pa.Table | None, tasks: tuple[str, ...]) -> pa.Table:
    """Add ``metadata.objects.<task>.lightly.<metric>`` per image: the mean of its objects' crop metrics
    (null for an image without objects of the task), so ``METADATA`` inputs can select on crop metadata."""
    if objects is None or objects.num_rows == 0 or rows.num_rows == 0:
        return rows
    # Only the columns read here are filtered per task (not the crop embeddings: a copy of them per task).
    objects = objects.select([c for c in (C.PARENT_KEY, C.OBJECT_TASK, *map(C.lightly_metadata_column, CROP_METRICS))
                              if c in objects.column_names])
    lookup = {k: i for i, k in enumerate(rows.column(C.KEY).to_pylist())}
    for task in tasks:
        mine = objects.filter(pc.equal(objects.column(C.OBJECT_TASK), task))
        if mine.num_rows == 0:
            continue
        owner = np.array([lookup.get(k, -1) for k in mine.column(C.PARENT_KEY).to_pylist()], np.int64)
        ok = owner >= 0
        counts = np.bincount(owner[ok], minlength=rows.num_rows)
        for metric in CROP_METRICS:
            name = C.object_metadata_column(task, metric)
            if name in rows.column_names or C.lightly_metadata_column(metric) not in mine.column_names:
                continue  # (objects staged before the metric existed, e.g. uniformRowRatio: no column, no error)
            values = mine.column(C.lightly_metadata_column(metric)).to_numpy(zero_copy_only=False).astype(np.float64)
            sums = np.bincount(owner[ok], weights=values[ok], minlength=rows.num_rows)
            mean = np.divide(sums, counts, out=np.zeros(rows.num_rows), where=counts > 0)
            rows = rows.append_column(name, pa.array(mean, pa.float64(), mask=counts == 0))
    return rows


def objects_of_images(pool: Any, images: list[tuple[str, str | None]], columns: list[str]) -> pa.Table | None:
    """``columns`` of the object rows of ``images`` (``(image key, run id)``: the objects the run that processed
    the image committed with it); ``None`` when the pool has no object rows.

    Reads only what it returns: the columns asked for (plus ``parent_key``, ``run_id``) and, pushed down into
    the Delta scan, only object rows (``parent_key IS NOT NULL``: files of image rows only are skipped by their
    null counts) of those runs and parents (file statistics prune the rest); the exact (parent, run) pairs are
    matched after the scan.

    :param pool: a :class:`~lightly_airflow.datapool.Datapool` (its latest version) or a pinned ``Snapshot``.
    """
    from lightly_airflow.datapool.errors import UnknownColumnError
    from lightly_airflow.datapool.reading import IN_LIST_MAX, in_list, quote_ident

    snap = pool.snapshot() if hasattr(pool, "snapshot") else pool
    if snap.table is None or C.PARENT_KEY not in snap.column_names() or not images:
        return None
    runs = sorted({r for _, r in images if r is not None})
    parents = sorted({k for k, _ in images})
    conditions = [f"{quote_ident(C.PARENT_KEY)} IS NOT NULL"]
    if runs and len(runs) <= IN_LIST_MAX:  # (more: the pairs below; a long SQL IN list crashes DataFusion)
        conditions.append(in_list(C.RUN_ID, runs))
    wanted = list(dict.fromkeys([*columns, C.PARENT_KEY, C.RUN_ID]))
    try:
        table = snap.select(wanted, "WHERE " + " AND ".join(conditions), values_in=(C.PARENT_KEY, parents))
    except UnknownColumnError:  # (a data file gone or the store unreachable: raised, never read as "no objects")
        return None
    pairs = pa.array([f"{k}\x00{r or ''}" for k, r in images], pa.string())
    got = pc.binary_join_element_wise(table.column(C.PARENT_KEY), pc.fill_null(table.column(C.RUN_ID), ""), "\x00")
    table = table.filter(pc.is_in(got, pairs))
    return table.select(columns) if table.num_rows else table.select(columns).slice(0, 0)


def pool_objects(pool: Any, preselected: pa.Table | None) -> pa.Table | None:
    """The pool's object rows of the preselected images, from the run that processed each image last."""
    if preselected is None or preselected.num_rows == 0 or C.RUN_ID not in preselected.column_names:
        return None
    images = list(zip(preselected.column(C.KEY).to_pylist(), preselected.column(C.RUN_ID).to_pylist(), strict=True))
    table = objects_of_images(pool, images, [C.KEY, C.PARENT_KEY, C.OBJECT_TASK, C.EMBEDDING, C.RUN_ID])
    return table if table is not None and table.num_rows else None


def commit_rows(objects: pa.Table | None, images: pa.Table, picked: set[str],
                kept: Collection[str] = ()) -> pa.Table | None:
    """The object rows committed with the run: objects of the run's ``ok`` images, ``selected`` false,
    ``object_selected`` when their image is selected after the commit: picked by the run, or ``kept``, selected
    before and unchanged (a ``process_all`` run processes it again and does not pick it again, but it stays in
    ``initial-tag``; its new object rows said ``object_selected`` false, session 64 audit: the UI's object page
    showed the objects of a selected image as not selected, and no crop of them was written)."""
    if objects is None or objects.num_rows == 0:
        return None
    ok = images.filter(pc.equal(images.column(C.STATUS), C.STATUS_OK)).column(C.KEY)
    rows = objects.filter(pc.is_in(objects.column(C.PARENT_KEY), ok))
    if rows.num_rows == 0:
        return None
    keep = [c for c in rows.column_names if c in OBJECT_COLUMNS or c.startswith(C.METADATA_PREFIX)]
    rows = rows.select(keep)
    selected = picked | set(kept)
    chosen = pa.array([p in selected for p in rows.column(C.PARENT_KEY).to_pylist()], pa.bool_())
    n = rows.num_rows
    return (rows.append_column(C.STATUS, pa.array([C.STATUS_OK] * n, pa.string()))
            .append_column(C.OBJECT_SELECTED, chosen)
            .append_column(C.SELECTED, pa.array([False] * n, pa.bool_()))
            .append_column(C.PICK_RANK, pa.nulls(n, pa.int64())))


def summary(objects: pa.Table | None, committed: pa.Table | None, spec: ObjectsSpec | None,
            metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Counts for the run summary (XCom) and the report, and ``notes`` for the report: the counts :data:`NOTES`
    words and, from the selection's ``metrics``, object DIVERSITY without objects of the images selected before
    (:func:`selection_notes`)."""
    if spec is None:
        return {}
    out: dict[str, Any] = {"tasks": list(spec.all_tasks), "padding": spec.padding}
    out["objects"] = 0 if objects is None else objects.num_rows
    out["committed"] = 0 if committed is None else committed.num_rows
    out["selected"] = 0 if committed is None else int(pc.sum(committed.column(C.OBJECT_SELECTED)).as_py() or 0)
    # The shards' dropped and flagged inputs (DROP_COUNTS, summed by load_run_objects; the embed tasks log which).
    summed = staging.summed_counts([objects], staging.OBJECTS)
    out.update((name, summed.counts[name]) for name in DROP_COUNTS if summed.counts.get(name))
    if summed.not_known:  # (shards written before the stage counted: their drops are not known, not 0)
        out["counts_not_known"] = summed.not_known
    not_known = staging.counts_not_known_note(staging.OBJECTS, summed.not_known)
    notes = [*(what.format(n=out[name]) for name, what in NOTES.items() if out.get(name)),
             *([not_known] if not_known else []), *selection_notes(metrics or {})]
    if notes:
        out["notes"] = notes
    return out


def recorded_summary(datapool_uri: str, run_id: str, credentials: StorageCredentials | None = None, *,
                     recorded: Mapping[str, Any] | None = None, manifests: list[str] | None = None,
                     committed: pa.Table | None = None, spec: ObjectsSpec | None = None) -> dict[str, Any]:
    """The object summary of a committed run, with its crops' counts (:func:`record_crops`): ``recorded``, the
    ``objects`` of the whole summary the committing attempt recorded before its commit
    (``pipeline.COMMITTED_SUMMARY``: the same counts and notes as that attempt; before it, a retry rebuilt them from
    the pool's rows and lost the shards' drop counts and the selection's notes). Without one (a failed write, a run
    committed before records existed, 2026-12-07) and with the run's ``spec``: rebuilt from the shards' staging files
    (their objects and counts, when they survived: ``manifests``) and the ``committed`` object rows, without the
    selection's notes (logged); else ``{}``."""
    crops = _read_record(datapool_uri, run_id, CROPS_FILE, credentials)
    if recorded:
        return {**recorded, **({"crops": crops} if crops is not None else {})}
    if spec is None:
        return {}
    staged = None
    try:
        staged = load_run_objects(manifests or [], credentials)
    except (FileNotFoundError, staging.DamagedStagingFile) as exc:
        log.warning("The run's object staging files cannot be read (%s): its object counts are the pool's rows'.", exc)
    log.warning("Run %s recorded no object summary: rebuilt from %s, without the selection's notes.", run_id,
                "its staging files" if staged is not None else "the pool's object rows")
    return {**summary(committed if staged is None else staged, committed, spec),
            **({"crops": crops} if crops is not None else {})}


#: The counts of the run's crops (:func:`write_crops`), recorded once they are written (:func:`record_crops`).
CROPS_FILE = "objects-crops.json"


def _read_record(datapool_uri: str, run_id: str, name: str,
                 credentials: StorageCredentials | None) -> dict[str, Any] | None:
    """A run's record ``name`` as a dict; ``None`` when there is none or it is damaged (logged)."""
    try:
        record, _ = staging.read_record(datapool_uri, run_id, name, credentials)
    except ValueError:
        log.warning("The run's record %s is damaged (not JSON): not used.",
                    join_uri(staging.reports_dir(datapool_uri, run_id), name))
        return None
    return dict(record) if isinstance(record, Mapping) else None


#: The crop files a run set out to remove, by count name (``stale_removed``, ``replaced_removed``), recorded before
#: they are removed (:class:`RemovalRecord`).
REMOVALS_FILE = "objects-crops-removals.json"

#: A key of :func:`write_crops`' counts (never recorded): they include the removals of the run's earlier attempts.
RECORDED = "removals_recorded"


class RemovalRecord:
    """``crops.BeforeRemoving`` of one run: the crop files each prune is about to remove are added to the run's
    :data:`REMOVALS_FILE` before the first is removed; it returns what the run's earlier attempts recorded, so a
    retry counts the files a killed attempt removed (session 65 audit, 2 stale crops: SIGKILLed after the first
    removal, the retry said 1; after the last, before the counts were recorded, it said 0). A record that cannot be
    written is logged and the files are removed all the same (a later kill would undercount them, as before)."""

    def __init__(self, datapool_uri: str, run_id: str, credentials: StorageCredentials | None = None) -> None:
        self.where = (datapool_uri, run_id, credentials)
        earlier = _read_record(datapool_uri, run_id, REMOVALS_FILE, credentials) or {}
        self.earlier = {str(k): frozenset(map(str, v)) for k, v in earlier.items() if isinstance(v, list)}
        self.paths = {k: set(v) for k, v in self.earlier.items()}

    def __call__(self, kind: str, paths: list[str]) -> frozenset[str]:
        mine = self.paths.setdefault(kind, set())
        if not set(paths) <= mine:
            mine.update(paths)
            datapool_uri, run_id, credentials = self.where
            try:
                staging.write_record(datapool_uri, run_id, REMOVALS_FILE,
                                     {k: sorted(v) for k, v in sorted(self.paths.items())}, credentials)
            except Exception:  # noqa: BLE001 - the stale files are removed all the same
                log.exception("Could not record the crop files about to be removed in %s: a retry of a task killed "
                              "while removing them will not count them.", staging.reports_dir(datapool_uri, run_id))
        return self.earlier.get(kind, frozenset())


def record_crops(crops: Mapping[str, Any], datapool_uri: str, run_id: str,
                 credentials: StorageCredentials | None = None) -> dict[str, Any]:
    """Record the counts of the run's crops once they are written, and return them: a finished run re-run (its
    staging files removed, so it writes no crop; :func:`recorded_summary`) said nothing of its crops until
    2026-12-07 (session 64). Counts made without a :class:`RemovalRecord` add an earlier attempt's record's
    removals (killed before its staging files were removed: this attempt rewrote the same files), since a file is
    removed once, by the attempt that found it (a retry's ``stale_removed`` was 0 where the uninterrupted run's
    was not); counts made with one include them already. A failed write is logged."""
    out = dict(crops)
    counted = bool(out.pop(RECORDED, False))
    earlier = None if counted else _read_record(datapool_uri, run_id, CROPS_FILE, credentials)
    for name in ("stale_removed", "replaced_removed"):
        if earlier is not None and name in out:
            out[name] = int(out[name] or 0) + int(earlier.get(name) or 0)
    try:
        staging.write_record(datapool_uri, run_id, CROPS_FILE, out, credentials)
    except Exception:  # noqa: BLE001 - the crops are written; only a later re-run's summary lacks their counts
        log.exception("Could not record the run's crop counts in %s: a re-run of the finished run will not say them.",
                      staging.reports_dir(datapool_uri, run_id))
    return out


def selection_notes(metrics: Mapping[str, Any]) -> list[str]:
    """The notes of the selection's object-level strategies (``metrics["objectives"]``): an object DIVERSITY that
    found no object of its task among the images selected before (:func:`.selection.preselected_note`)."""
    from lightly_airflow.objects.selection import preselected_note

    out = []
    for path, report in sorted((metrics.get("objectives") or {}).items()):
        if isinstance(report, Mapping) and report.get("preselected_images_without_objects"):
            note = preselected_note(str(report.get("task")), int(report["preselected_images_without_objects"]),
                                    int(report.get("preselected_objects") or 0))
            out.extend([f"{path}: {note}"] if note else [])
    return out


#: The report's note (``summary()["notes"]``) of each count that the report's own list
#: (``report.data.stage_notes``) does not word, formatted with the count ``n``.
NOTES = {
    "boxes_clipped": "{n:,} predicted boxes reach more than a pixel past their image's edge: their crops were "
                     "clipped to the image, so those objects are cut (boxes predicted at another resolution, or in "
                     "another format; the embed task's log names the first).",
    "images_with_corner_looking_boxes": "{n:,} images have boxes of a task that look like corners [x0, y0, x1, y1] "
                                        "(every box's w > x and h > y with both corners inside the image, and some "
                                        "reaching past its edge): Lightly's bbox is [x, y, width, height] in pixels, "
                                        "so their crops are not the objects. Fix: write [x0, y0, x1 - x0, y1 - y0] "
                                        "and run with process_all (the embed task's log names the first image).",
}


def _meta_text(meta: dict[str, Any], key: str) -> str | None:
    raw = meta.get(key)
    try:
        return None if raw is None else str(json.loads(raw))
    except (TypeError, json.JSONDecodeError):
        return str(raw)


def video_frames(rows: pa.Table | None) -> dict[str, dict[str, Any]]:
    """The video frames among a run's image rows, their rows (``key, etag, video, frame_index, frame_pts``) by key:
    their objects are cropped from the frame's picture after the commit (:func:`.crops.parent_reader`)."""
    if rows is None or C.VIDEO not in rows.column_names:
        return {}
    import pyarrow.compute as pc

    names = [c for c in (C.KEY, C.ETAG, C.VIDEO, C.FRAME_INDEX, C.FRAME_PTS) if c in rows.column_names]
    frames = rows.filter(pc.is_valid(rows.column(C.VIDEO))).select(names).to_pylist()
    return {str(r[C.KEY]): r for r in frames}


def report_figure(
    object_rows: pa.Table | None, picked: list[str], meta: dict[str, Any],
    datasource_credentials: StorageCredentials | None = None, *, rows: pa.Table | None = None,
    lightly_credentials: StorageCredentials | None = None,
) -> Callable[[], bytes | None] | None:
    """What the report calls to draw the selected images with their objects (``None``: no objects); the video
    frames among ``rows`` are read as the UI shows them (``crops.parent_reader``)."""
    datasource_uri = _meta_text(meta, C.DATASOURCE_URI_METADATA_KEY)
    if object_rows is None or object_rows.num_rows == 0 or not datasource_uri:
        return None
    from lightly_airflow.objects.report import objects_png

    lightly_uri = _meta_text(meta, C.LIGHTLY_URI_METADATA_KEY) or datasource_uri
    frames = video_frames(rows)
    return lambda: objects_png(object_rows, picked, datasource_uri, datasource_credentials, lightly_uri=lightly_uri,
                               lightly_credentials=lightly_credentials, frames=frames)


def picked_images(rows: pa.Table | None) -> list[str]:
    """The keys of the run's image ``rows`` it selected (``ok``): their crops are the current objects' only."""
    if rows is None or C.SELECTED not in rows.column_names:
        return []
    chosen = pc.fill_null(rows.column(C.SELECTED), False)
    if C.STATUS in rows.column_names:
        chosen = pc.and_(chosen, pc.equal(rows.column(C.STATUS), C.STATUS_OK))
    return [str(k) for k in rows.filter(chosen).column(C.KEY).to_pylist()]


def replaced_images(known: pa.Table | None, rows: pa.Table | None) -> list[str]:
    """The keys of the run's image ``rows`` whose picture is gone, as a newer row ends a selection
    (``datapool.snapshot.initial_tag_sql``): files that changed (another etag, or none now) since the pool's
    ``known`` files (``key, etag`` of each, ``Snapshot.known_files`` of the version the run read; ``None``: a
    first run), and frames of a replaced video that no longer exist (its tombstones, which keep the former etag:
    ``video.supersede``). Their crops of the former picture are no object's crops."""
    from lightly_airflow.video.supersede import is_tombstone

    if rows is None or rows.num_rows == 0 or C.ETAG not in rows.column_names:
        return []
    gone = {str(k) for k in rows.filter(is_tombstone(rows)).column(C.KEY).to_pylist()}
    if known is not None and known.num_rows:
        former = dict(zip(known.column(C.KEY).to_pylist(), pc.cast(known.column(C.ETAG), pa.string()).to_pylist(),
                          strict=True))
        now = zip(rows.column(C.KEY).to_pylist(), pc.cast(rows.column(C.ETAG), pa.string()).to_pylist(), strict=True)
        gone.update(str(k) for k, etag in now if k in former and former[k] != etag)  # (as initial-tag ends one)
    return sorted(gone)


def processed_later(pool: Any, version: int) -> list[str]:
    """The images with rows of a version after ``version`` in the pool's latest snapshot: the keys of its image
    rows and the parents of its object rows. A retry of the run committed as ``version`` (``pipeline.
    finish_committed_run``) leaves their crops alone: a later run processed them again and wrote its own."""
    from lightly_airflow.datapool.rows import COMMIT_VERSION

    snap = pool.snapshot()
    if snap.table is None or (snap.version or 0) <= version:
        return []
    has_parent = C.PARENT_KEY in snap.column_names()
    columns = [C.KEY, C.PARENT_KEY] if has_parent else [C.KEY]
    later = snap.select(columns, f"WHERE {COMMIT_VERSION} > {int(version)}")
    keys = later.column(C.KEY)
    if has_parent:  # (an object row names its image by parent_key)
        keys = pc.coalesce(later.column(C.PARENT_KEY), keys)
    return sorted({str(k) for k in keys.to_pylist()})


def _without_later(
    object_rows: pa.Table | None, picked: list[str], replaced: list[str], later: Collection[str],
) -> tuple[pa.Table | None, list[str], list[str], int]:
    """The run's objects, picked and replaced images but those a later version processed again (``later``): an
    out-of-order retry wrote and pruned them by its own, older rows and removed the later run's crop files."""
    later = set(later) & ({*picked, *replaced} | (set() if object_rows is None else
                                                  set(object_rows.column(C.PARENT_KEY).to_pylist())))
    if not later:
        return object_rows, picked, replaced, 0
    log.warning("crops: %d images of this run were processed again by a later run, which wrote their crops: this "
                "run leaves them alone: %s%s", len(later), ", ".join(sorted(later)[:5]), " ..." if len(later) > 5 else "")
    if object_rows is not None:
        object_rows = object_rows.filter(pc.invert(pc.is_in(object_rows.column(C.PARENT_KEY),
                                                           pa.array(sorted(later), pa.string()))))
    return object_rows, [k for k in picked if k not in later], [k for k in replaced if k not in later], len(later)


def write_crops(
    object_rows: pa.Table | None, spec: ObjectsSpec | None, meta: dict[str, Any], *,
    datasource_credentials: StorageCredentials | None = None, lightly_credentials: StorageCredentials | None = None,
    rows: pa.Table | None = None, known: pa.Table | None = None, later: Collection[str] = (),
    datapool_uri: str | None = None, run_id: str | None = None, datapool_credentials: StorageCredentials | None = None,
) -> dict[str, Any]:
    """Write the selected objects' crops after the commit; a failure is logged and counted, never fatal. The
    video frames among the run's image ``rows`` are cropped from their picture (``crops.parent_reader``); the
    crops of its selected images without objects, and of its images replaced since the pool's ``known`` files
    (:func:`replaced_images`), are removed (``crops`` module docstring). The images in ``later`` (a retry's
    :func:`processed_later`) are neither written nor pruned (counted as ``later_skipped``).

    Without a ``spec`` (a run without object-level work) or with ``crops.enable_upload`` off, no crop is written
    or pruned but the crops of the replaced images are removed all the same (``{}`` when a run without a spec
    removed none). With ``datapool_uri`` and ``run_id``, the files are recorded before they are removed
    (:class:`RemovalRecord`) and the counts include what the run's earlier attempts removed; :func:`record_crops`
    then adds nothing to them."""
    from lightly_airflow.objects.crops import remove_replaced_crops, write_selected_crops

    object_rows, picked, replaced, skipped = _without_later(object_rows, picked_images(rows),
                                                            replaced_images(known, rows), later)
    if spec is None and not replaced:
        return {}
    datasource_uri = _meta_text(meta, C.DATASOURCE_URI_METADATA_KEY)
    lightly_uri = _meta_text(meta, C.LIGHTLY_URI_METADATA_KEY) or datasource_uri
    if not datasource_uri or not lightly_uri:
        log.warning("crops: the run's staging files do not name the datasource; no crops written")
        return {"written": 0, "failed": 0, "error": "datasource unknown"}
    lightly_credentials = lightly_credentials or datasource_credentials
    try:
        record = RemovalRecord(datapool_uri, run_id, datapool_credentials) if datapool_uri and run_id else None
        if spec is None:
            counts: dict[str, Any] = dict(remove_replaced_crops(lightly_uri, replaced, lightly_credentials,
                                                                before_removing=record))
            if not any(counts.values()):
                return {}
        else:
            counts = write_selected_crops(object_rows, spec, datasource_uri=datasource_uri, lightly_uri=lightly_uri,
                                          datasource_credentials=datasource_credentials,
                                          lightly_credentials=lightly_credentials, frames=video_frames(rows),
                                          picked=picked, replaced=replaced, before_removing=record)
        counts.update({RECORDED: True} if record is not None else {})
        return {**counts, "later_skipped": skipped} if skipped else counts
    except Exception as exc:  # noqa: BLE001 - the run is committed; missing crops are reported, not fatal
        log.exception("crops: writing the selected objects' crops failed; the selection is committed")
        return {"written": 0, "failed": -1, "error": f"{type(exc).__name__}: {exc}"[:300]}
