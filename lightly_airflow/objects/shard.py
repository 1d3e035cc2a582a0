"""Objects of one manifest shard: find their boxes, crop them from each image (or video frame) decoded once,
embed the crops with the image encoder, compute the crops' ``lightly.*`` metrics, write the shard's ``objects/``
staging file.

Called by the embedding runner right after the shard's image embeddings, with the same encoder on the same
device (so a GPU pod embeds the crops too) — only when the run has object-level work (:mod:`.spec`).
Each image with objects is fetched and decoded **once** at full resolution (Pillow, in decode threads) and all
its objects are cropped from that one decode; crops are resized to the encoder's input size and embedded in
fixed-size batches (padded like the image batches, so a crop's embedding does not depend on its neighbours).
An image that cannot be read yields no objects (the image itself is reported corrupt or missing by the
image pass); the count is returned and logged. Video frames are cropped from the video pass's one decode of each
frame (full resolution, upright: :class:`ShardObjects` is its hook), with the same box rules; a frame that does
not decode gives no objects (counted: ``video_frames_failed``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.arrow import from_numpy, from_pylist, list_array
from lightly_airflow.identity import sample_id
from lightly_airflow.metadata.metrics import CROP_METRICS
from lightly_airflow.objects.boxes import (
    ObjectBox,
    auto_task_boxes,
    crop_box,
    fits_as_corners,
    inside_image,
    overflows,
    prediction_boxes,
)
from lightly_airflow.objects.spec import ObjectsSpec, read_spec
from lightly_airflow.pixels import open_image, wrong_extension
from lightly_airflow.staging import OBJECTS, sibling_uri, with_counts
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, write_parquet
from lightly_airflow.thumbnails import manifest_thumbnails
from lightly_airflow.video.frames import frame_rows

logger = logging.getLogger(__name__)



@dataclass
class Crop:
    """One cropped object: its box, the pixels cropped, the resized crop and the crop's metrics."""

    parent: int  # row of the image in the manifest
    box: ObjectBox
    crop_box: tuple[int, int, int, int]
    pixels: np.ndarray  # (S, S, 3) uint8
    metrics: dict[str, float]
    clipped: bool = False  # the box reaches past the image's edge (boxes.overflows): its crop is cut
    as_corners: bool = False  # the box also reads as corners [x0, y0, x1, y1] inside the image (boxes.fits_as_corners)


_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)

#: Bytes of resized crops decoded ahead of the model at most: the window of images decoded ahead is cut short
#: when their objects would exceed it (an image with thousands of objects: cells, crowds, shelves), but always
#: holds one image. 3,000 objects at 224 px are 450 MB, so 8 such images ahead held 3.6 GB.
MAX_CROP_BYTES_AHEAD = 512 * 2**20

#: Counts an ``objects/`` staging file keeps as schema metadata (``staging.with_counts``), summed over the shards into
#: the run summary (objects.run): predicted boxes with no area inside their image (no object), video frames with
#: objects (predicted boxes or auto tasks) that did not decode (no objects; the frame itself is reported corrupt),
#: images whose boxes of a task all lie within [0, 1] (relative coordinates given for Lightly's pixels), and
#: prediction files of object tasks that give their image no objects (unreadable, or with a problem), images
#: with objects that yield none (they did not decode or crop; a corrupt one is in the image pass' problems too),
#: boxes clipped at the image's edge (more than ``boxes.EDGE_TOLERANCE`` past it: the object is cut), and images
#: whose boxes of a task look like corners ``[x0, y0, x1, y1]`` (:func:`corner_looking`).
DROP_COUNTS = ("boxes_outside_image", "video_frames_failed", "images_with_normalized_looking_boxes",
               "prediction_files_rejected", "images_failed", "boxes_clipped", "images_with_corner_looking_boxes")


def _problem(exc: BaseException) -> str:
    """Why an image, frame or prediction file gives no objects: the error's own first line, shown after the file's
    path (a ``.lightly/`` file's error without its path and class name: the list read ``….json: LightlyFileError:
    .lightly/….json: invalid JSON …``); the class name only for an error without text."""
    from lightly_airflow.lightly_dir import LightlyFileError

    if isinstance(exc, LightlyFileError):
        text = f"{exc.field}: {exc.reason}" if exc.field else exc.reason
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def auto_boxes_per_image(spec: ObjectsSpec) -> int:
    """The boxes the run's ``auto_tasks`` give every image or frame (TILING: rows × columns; CROP: its boxes)."""
    return sum(int(t["num_rows"]) * int(t["num_cols"]) if t["type"] == "TILING" else len(t["bboxs"])
               for t in spec.auto_tasks)


def crops_ahead_budget(size: int) -> int:
    """Resized crops (``size`` × ``size`` RGB) that fit :data:`MAX_CROP_BYTES_AHEAD`, at least one."""
    return max(1, MAX_CROP_BYTES_AHEAD // (size * size * 3))


def _normalized_looking(boxes: dict[int, list[ObjectBox]]) -> list[tuple[int, str]]:
    """``(row, task)`` whose predicted boxes all lie within [0, 1] with some side below one pixel: coordinates
    relative to the image size (YOLO style) given where Lightly's format has pixels."""
    out = []
    for row, found in boxes.items():
        by_task: dict[str, list[ObjectBox]] = {}
        for box in found:
            by_task.setdefault(box.task, []).append(box)
        for task, mine in by_task.items():
            if (all(0.0 <= v <= 1.0 for b in mine for v in b.bbox)
                    and any(0.0 < b.bbox[2] < 1.0 or 0.0 < b.bbox[3] < 1.0 for b in mine)):
                out.append((row, task))
    return out


def corner_looking(crops: list[Crop], tasks: tuple[str, ...]) -> list[str]:
    """The prediction ``tasks`` whose boxes on one image (its ``crops``) look like corners ``[x0, y0, x1, y1]``
    given where Lightly's format has ``[x, y, w, h]``: every box also reads as corners inside the image
    (``w > x``, ``h > y``) and at least one reaches past the image's edge. Corners read as a width and height reach
    past the right edge whenever ``x0 + x1 > width`` (a box whose centre is in the image's right half) or the
    bottom one likewise, so a file of several boxes in corner format is nearly always caught; pixel boxes of a
    detector stay inside their image (torchvision and YOLO clip them), so none is flagged by this. Boxes computed
    from keypoints (``ObjectBox.from_keypoints``) are left out: they are ``[x0, y0, x1 - x0, y1 - y0]`` by
    construction, and a pose's keypoints past the edge (a limb out of frame) made its image "look like corners"."""
    by_task: dict[str, list[Crop]] = {}
    for crop in crops:
        if crop.box.task in tasks and not crop.box.from_keypoints:
            by_task.setdefault(crop.box.task, []).append(crop)
    return [task for task, mine in by_task.items()
            if all(c.as_corners for c in mine) and any(c.clipped for c in mine)]


def load_object_boxes(
    keys: list[str], lightly_uri: str, tasks: tuple[str, ...], credentials: StorageCredentials | None
) -> tuple[dict[int, list[ObjectBox]], list[str], list[tuple[str, str]]]:
    """The predicted objects of the shard's images for ``tasks``: image row -> boxes; the tasks that are not
    object tasks (or do not exist), which yield no objects; and the prediction files that exist but give their
    image no objects (unreadable, not JSON, or with a problem: one bad box rejects the file, as in the
    predictions stage, which lists every problem) as ``(file, first problem)``: counted, never silent."""
    from lightly_airflow.lightly_dir import (
        PREDICTIONS_DIR,
        LightlyDir,
        LightlyFileError,
        json_relpath,
        parse_json_bytes,
    )
    from lightly_airflow.predictions.shard import load_tasks
    from lightly_airflow.staging import ProblemLog

    boxes: dict[int, list[ObjectBox]] = {}
    rejected: list[tuple[str, str]] = []
    if not tasks:
        return boxes, [], rejected
    folder = LightlyDir(lightly_uri, credentials)
    schemas = {s.name: s for s in load_tasks(folder, ProblemLog("objects"))}  # problems: the predictions stage
    unusable = [t for t in tasks if t not in schemas or not _is_object_task(schemas[t].task_type)]
    for task in tasks:
        if task in unusable:
            continue
        schema = schemas[task]
        rels = [json_relpath(f"{PREDICTIONS_DIR}/{task}", k) for k in keys]
        got = folder.read_many(rels)
        for row, (key, rel) in enumerate(zip(keys, rels, strict=True)):
            data = got.get(rel)
            if data is None:
                continue  # (no prediction file: no objects)
            if isinstance(data, Exception):
                rejected.append((rel, _problem(data)))
                continue
            try:
                obj = parse_json_bytes(data, rel)
            except LightlyFileError as exc:
                rejected.append((rel, _problem(exc)))
                continue
            problems: list[tuple[str, str]] = []
            found = prediction_boxes(obj, schema, key, problems)
            if problems:
                rejected.append((rel, f"{problems[0][0]}: {problems[0][1]}" if problems[0][0] else problems[0][1]))
            if found:
                boxes.setdefault(row, []).extend(found)
    return boxes, unusable, rejected


def _is_object_task(task_type: str) -> bool:
    from lightly_airflow.objects.boxes import OBJECT_TASK_TYPES

    return task_type in OBJECT_TASK_TYPES


def has_reduced_decode(data: bytes) -> bool:
    """Whether the image pass decodes this file at reduced size (JPEG's DCT scaling); other formats it decodes
    at full size, exactly as the object pass does."""
    return data[:3] == b"\xff\xd8\xff"


def crop_image(data: bytes, boxes: list[ObjectBox], auto_tasks: tuple[dict[str, Any], ...], padding: float,
               size: int, parent: int, on_crop: Callable[[ObjectBox, Image.Image], None] | None = None,
               on_image: Callable[[np.ndarray], None] | None = None,
               outside: list[ObjectBox] | None = None) -> list[Crop]:
    """Decode one image once and crop every object of it (predicted boxes and auto tasks).

    A predicted box with no area inside the image gives no object (its crop would be one pixel or a strip of
    the border); it is appended to ``outside`` for the caller to count and report.

    A JPEG above ``PIL.Image.MAX_IMAGE_PIXELS`` is decoded reduced, as in the image pass: its boxes and crop boxes
    stay in its full-size pixels, its crops are cut from the reduced decode (``embedding.images.open_rgb_for_boxes``).

    :param on_crop: called with each object's box and its crop at full resolution (the UI thumbnail).
    :param on_image: called with the image's own model input, derived from this decode, when the image pass
        would decode the file at full size too (not a JPEG) and the image has objects.
    """
    from lightly_airflow.embedding.images import model_input, open_rgb_for_boxes

    img, shown = open_rgb_for_boxes(data)
    every = _object_boxes(boxes, auto_tasks, *shown, outside)
    if on_image is not None and every and not has_reduced_decode(data):
        on_image(model_input(img, size))
    return crop_pixels(np.asarray(img, dtype=np.uint8), every, padding, size, parent, on_crop, shown=shown)


def _object_boxes(boxes: list[ObjectBox], auto_tasks: tuple[dict[str, Any], ...], width: int, height: int,
                  outside: list[ObjectBox] | None) -> list[ObjectBox]:
    """The predicted boxes with area inside a ``width`` x ``height`` image (the others go to ``outside``), then
    the auto tasks' boxes."""
    every = [box for box in boxes if inside_image(box.bbox, width, height)]
    if outside is not None and len(every) != len(boxes):
        outside.extend(box for box in boxes if not inside_image(box.bbox, width, height))
    for task in auto_tasks:
        every.extend(auto_task_boxes(task, width, height))
    return every


def crop_pixels(rgb_all: np.ndarray, every: list[ObjectBox], padding: float, size: int, parent: int,
                on_crop: Callable[[ObjectBox, Image.Image], None] | None = None,
                shown: tuple[int, int] | None = None) -> list[Crop]:
    """Crop ``every`` box from one decoded ``(H, W, 3)`` uint8 image (or video frame) at full resolution: padded
    and clipped crop box, crop metrics, thumbnail (``on_crop``), the crop resized to the encoder's input.

    :param shown: the ``(width, height)`` the boxes are in when the decode is reduced (``pixels.scale_box``)."""
    from lightly_airflow.metadata.metrics import rgb_metrics
    from lightly_airflow.pixels import scale_box

    height, width = rgb_all.shape[:2]
    shown = shown or (width, height)
    out = []
    for box in every:
        cb = crop_box(box.bbox, padding, *shown)
        x, y, w, h = scale_box(cb, (width, height), shown)
        region = np.ascontiguousarray(rgb_all[y : y + h, x : x + w])
        part = Image.fromarray(region)
        if on_crop is not None:
            on_crop(box, part)
        metrics = rgb_metrics(region, 0)
        if part.size != (size, size):
            part = part.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        out.append(Crop(parent, box, cb, np.asarray(part, dtype=np.uint8),
                        {k: float(metrics[k]) for k in CROP_METRICS},
                        overflows(box.bbox, *shown), fits_as_corners(box.bbox, *shown)))
    return out


def iter_crops(
    datasource_uri: str, keys: list[str], rows: list[int], boxes: dict[int, list[ObjectBox]], spec: ObjectsSpec,
    size: int, credentials: StorageCredentials | None, workers: int,
    on_crop: Callable[[int, ObjectBox, Image.Image], None] | None = None,
    image_rows: set[int] | None = None,
) -> Iterator[tuple[int, list[Crop] | None, str | None, np.ndarray | None, list[ObjectBox]]]:
    """``(row, crops, problem, image input, boxes outside the image)`` per image in ``rows`` order; images are
    fetched and decoded in threads, a window of ``4 * workers`` images ahead of the consumer (so decoding overlaps
    the model's forward pass), fewer when their objects' resized crops would exceed ``MAX_CROP_BYTES_AHEAD``.

    :param on_crop: called (in the decoding thread) with the image row, the box and the full-resolution crop.
    """
    fs, root = filesystem(datasource_uri, credentials)

    def one(row: int) -> tuple[int, list[Crop] | None, str | None, np.ndarray | None, list[ObjectBox]]:
        derived: list[np.ndarray] = []
        outside: list[ObjectBox] = []
        try:
            data = fs.cat_file(join_uri(root, keys[row]))
            wrong = wrong_extension(open_image(data).format, keys[row])  # (corrupt in every pass: no objects, and
            if wrong:  # no model input from this decode, which would spare the file the image pass' own check)
                return row, None, wrong, None, []
            hook = None if on_crop is None else (lambda box, part: on_crop(row, box, part))
            want = derived.append if image_rows is not None and row in image_rows else None
            got = crop_image(data, boxes.get(row, []), spec.auto_tasks, spec.padding, size, row, hook, want, outside)
            return row, got, None, derived[0] if derived else None, outside
        except FileNotFoundError:
            return row, None, "file not found in the datasource", None, []
        except Exception as exc:  # noqa: BLE001 - one bad image never sinks the shard; the image pass reports it
            return row, None, _problem(exc), None, []

    if workers <= 1:
        for row in rows:
            yield one(row)
        return
    per_image_auto, budget = auto_boxes_per_image(spec), crops_ahead_budget(size)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="objects-crop") as pool:
        window: deque[tuple[Future[tuple[int, list[Crop] | None, str | None, np.ndarray | None, list[ObjectBox]]],
                            int]] = deque()
        position, ahead = 0, 0

        def fill() -> None:
            nonlocal position, ahead
            while position < len(rows) and len(window) < 4 * workers:
                cost = len(boxes.get(rows[position], ())) + per_image_auto
                if window and ahead + cost > budget:
                    return
                window.append((pool.submit(one, rows[position]), cost))
                ahead += cost
                position += 1

        fill()
        while window:
            future, cost = window.popleft()
            done = future.result()
            ahead -= cost
            fill()
            yield done


def _forward(encoder: Any, device: Any, pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """Embeddings of at most ``batch_size`` ``(n, S, S, 3)`` uint8 crops, the batch padded to ``batch_size`` (so a
    crop's embedding does not depend on its neighbours). Call inside ``torch.inference_mode()``."""
    import torch

    part = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
    images = part.to(device, non_blocking=True)
    if images.shape[0] < batch_size:
        pad = images.new_zeros((batch_size - images.shape[0], *images.shape[1:]))
        images = torch.cat([images, pad])
    out: np.ndarray = encoder(images)[: len(part)].float().cpu().numpy()
    return out


def embed_crops(encoder: Any, device: Any, pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """Embeddings of ``(n, S, S, 3)`` uint8 crops, batch by batch, every batch padded to ``batch_size``, on the
    model threads the image pass uses (:func:`lightly_airflow.embedding.runner._model_threads`)."""
    import torch

    from lightly_airflow.embedding.runner import _autocast, _model_threads

    out = np.zeros((len(pixels), encoder.dim), dtype=np.float32)
    with _model_threads(device), torch.inference_mode(), _autocast(device):
        for start in range(0, len(pixels), batch_size):
            out[start : start + batch_size] = _forward(encoder, device, pixels[start : start + batch_size], batch_size)
    return out


def objects_schema(model_id: str, dim: int, input_size: int | None) -> pa.Schema:
    """Schema of an ``objects/`` staging file (and of the object rows the select task commits)."""
    fields = [
        pa.field(C.KEY, pa.string()), pa.field(C.ETAG, pa.string()), pa.field(C.PARENT_KEY, pa.string()),
        pa.field(C.OBJECT_TASK, pa.string()), pa.field(C.OBJECT_INDEX, pa.int64()),
        pa.field(C.OBJECT_BBOX, pa.list_(pa.float64())), pa.field(C.OBJECT_CROP_BOX, pa.list_(pa.int64())),
        pa.field(C.OBJECT_CATEGORY, pa.string()), pa.field(C.OBJECT_SCORE, pa.float64()),
        pa.field(C.EMBEDDING, pa.list_(pa.float32())),
        *(pa.field(C.lightly_metadata_column(m), pa.int64() if m in ("width", "height") else pa.float64())
          for m in CROP_METRICS),
        pa.field(C.STATUS, pa.string()),
    ]
    return pa.schema(fields, metadata={
        C.EMBEDDING_MODEL_METADATA_KEY: json.dumps(model_id), C.EMBEDDING_DIM_METADATA_KEY: json.dumps(int(dim)),
        C.EMBEDDING_INPUT_SIZE_METADATA_KEY: json.dumps(None if input_size is None else int(input_size)),
    })


def embed_objects_shard(
    manifest_uri: str, *, encoder: Any, device: Any, batch_size: int = 32, num_workers: int = 2,
    credentials: StorageCredentials | None = None, datasource_credentials: StorageCredentials | None = None,
    lightly_credentials: StorageCredentials | None = None, output_uri: str | None = None,
    image_rows: set[int] | None = None, image_vectors: dict[int, np.ndarray] | None = None, precision: str = "auto",
) -> dict[str, Any] | None:
    """Crop, embed and describe the objects of one manifest shard; ``None`` when the run has no object work.

    The shard's video frames with objects are decoded here (:meth:`ShardObjects.finish`); the embed runner
    instead crops them in its own decode of the frames (:class:`ShardObjects` as the video pass's hook).

    :param manifest_uri: the manifest shard; the run's :class:`~.spec.ObjectsSpec` is found next to it.
    :param encoder: the shard's image encoder (already on ``device``).
    :param device: the torch device.
    :param batch_size: crops per forward pass.
    :param num_workers: decode threads.
    :param credentials: for the staging store (manifest, spec, output).
    :param datasource_credentials: for the images (default ``credentials``).
    :param lightly_credentials: for ``.lightly/`` (default ``datasource_credentials``).
    :param output_uri: default ``staging.sibling_uri(manifest_uri, "objects")``.
    :param image_rows: manifest rows whose image embedding the caller still needs: those with objects that the
        image pass would decode at full size too (not JPEG) are embedded here from this pass's one decode, into
        ``image_vectors`` (row -> vector), with the same encoder and fixed-size padded batches.
    :param precision: the image pass's ``EmbedOptions.precision`` (crops are embedded in the same arithmetic).
    :param image_vectors: filled as described for ``image_rows``.
    :returns: the counts of :meth:`ShardObjects.finish`.
    """
    shard = open_objects_shard(manifest_uri, encoder=encoder, device=device, batch_size=batch_size,
                               num_workers=num_workers, credentials=credentials,
                               datasource_credentials=datasource_credentials, lightly_credentials=lightly_credentials,
                               output_uri=output_uri, precision=precision)
    if shard is None:
        return None
    shard.embed_images(image_rows, image_vectors)
    return shard.finish()


def open_objects_shard(
    manifest_uri: str, *, encoder: Any, device: Any, batch_size: int = 32, num_workers: int = 2,
    credentials: StorageCredentials | None = None, datasource_credentials: StorageCredentials | None = None,
    lightly_credentials: StorageCredentials | None = None, output_uri: str | None = None, precision: str = "auto",
) -> ShardObjects | None:
    """The object work of one manifest shard (parameters as :func:`embed_objects_shard`); ``None`` when the run
    has no object work."""
    spec = read_spec(manifest_uri, credentials)
    if spec is None:
        return None
    return ShardObjects(manifest_uri, spec, encoder=encoder, device=device, batch_size=batch_size,
                        num_workers=num_workers, credentials=credentials,
                        datasource_credentials=datasource_credentials, lightly_credentials=lightly_credentials,
                        output_uri=output_uri, precision=precision)


class ShardObjects:
    """The objects of one manifest shard, in three steps: :meth:`embed_images` crops and embeds the images'
    objects (each image fetched and decoded once); the video frames' objects are cropped in the video pass's one
    decode of each frame (this object is its :class:`~lightly_airflow.video.frames.FrameObjectsHook`: ``cost``,
    ``crop`` in the analysing threads) and embedded as they arrive (:meth:`add_frame`, in the model's thread);
    :meth:`finish` decodes the frames with objects that the video pass did not (reused frames), embeds what
    is left and writes the shard's ``objects/`` staging file.
    """

    def __init__(
        self, manifest_uri: str, spec: ObjectsSpec, *, encoder: Any, device: Any, batch_size: int,
        num_workers: int, credentials: StorageCredentials | None, datasource_credentials: StorageCredentials | None,
        lightly_credentials: StorageCredentials | None, output_uri: str | None, precision: str,
    ) -> None:
        from lightly_airflow.staging import read_manifest

        self.started = time.perf_counter()
        self.manifest_uri, self.spec = manifest_uri, spec
        self.encoder, self.device, self.batch_size, self.precision = encoder, device, batch_size, precision
        self.num_workers, self.credentials = num_workers, credentials
        self.output_uri = output_uri or sibling_uri(manifest_uri, OBJECTS)
        manifest = read_manifest(manifest_uri, credentials, required=(C.KEY, C.ETAG))
        self.manifest = manifest.table
        self.datasource_uri = manifest.require_datasource_uri()
        lightly_uri = manifest.lightly_uri or self.datasource_uri
        self.keys = keys = manifest.keys
        self.etags = [None if e is None else str(e) for e in manifest.table.column(C.ETAG).to_pylist()]
        self.ds_creds = datasource_credentials or credentials
        self.boxes, unusable, self.rejected = load_object_boxes(keys, lightly_uri, spec.tasks,
                                                                lightly_credentials or self.ds_creds)
        if unusable:
            logger.warning("objects: tasks %s are not object-detection, instance-segmentation or keypoint tasks of "
                           "%s/.lightly/predictions/tasks.json: they give no objects", unusable, lightly_uri)
        if self.rejected:
            logger.warning("objects: %d prediction files in %s give their image no objects (one problem rejects the "
                           "whole file, as in the predictions stage, which lists every problem): %s; fix those "
                           "files and run with process_all to crop their objects", len(self.rejected), lightly_uri,
                           "; ".join(f".lightly/{rel}: {why}" for rel, why in self.rejected[:3]))
        self.normalized = _normalized_looking(self.boxes)
        if self.normalized:
            row, task = self.normalized[0]
            logger.warning("objects: %d images of %s have boxes of a task that all lie within [0, 1] (e.g. %r, task "
                           "%r: %s): Lightly's bbox is [x, y, width, height] in pixels, not relative to the image "
                           "size; their crops are at most one pixel", len({r for r, _ in self.normalized}),
                           manifest_uri, keys[row], task, [b.bbox for b in self.boxes[row] if b.task == task][:3])
        # Video frames are not files of the datasource: their objects are cropped from the video pass's decode.
        # A broken video's own row (no frame index) is no frame and no file: it has no objects (the video pass
        # reports it corrupt).
        videos = frame_rows(self.manifest)
        frames = {f.row for f in videos if f.index is not None}
        not_frames = {f.row for f in videos if f.index is None}
        rows = [r for r in (range(len(keys)) if spec.auto_tasks else sorted(self.boxes)) if r not in not_frames]
        self.object_frames = [r for r in rows if r in frames]
        self.frame_set = set(self.object_frames)
        self.image_rows = [r for r in rows if r not in frames]
        self.frames_done: set[int] = set()
        self.per_image_auto = auto_boxes_per_image(spec)
        self.size = int(encoder.input_size)
        self.budget = crops_ahead_budget(self.size)  # crops ahead (FrameObjectsHook)
        self.thumbs = manifest_thumbnails(manifest_uri, credentials)  # (from the crops this pass decodes anyway)
        self.crops: list[Crop] = []
        self.chunks: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []
        self.failed = self.frames_failed = self.outside = 0
        self.clipped: list[tuple[int, ObjectBox]] = []  # (row, box) of boxes clipped at the image's edge
        self.corners: list[tuple[int, str]] = []  # (row, task) whose boxes look like corners (corner_looking)
        self.embed_s = 0.0
        self.images_embedded = 0

    def _on_crop(self, row: int, box: ObjectBox, part: Image.Image) -> None:
        if self.thumbs is not None:
            self.thumbs.add(sample_id(C.object_id(self.keys[row], box.task, box.index), self.etags[row]), part)

    def _flush(self, n: int) -> None:
        tick = time.perf_counter()
        self.chunks.append(_forward(self.encoder, self.device, np.stack(self.pending[:n]), self.batch_size))
        self.embed_s += time.perf_counter() - tick
        self.pending = self.pending[n:]

    def _take(self, row: int, got: list[Crop], off: list[ObjectBox]) -> None:
        """Queue one image's (or frame's) crops for the model, embedding every full batch (model thread)."""
        if off:
            self.outside += len(off)
            logger.warning("objects: image %r: %d predicted boxes have no area inside the image (outside it, or "
                           "of zero width or height) and give no object (predictions made at another "
                           "resolution?): %s", self.keys[row], len(off), [(b.task, b.index, b.bbox) for b in off[:5]])
        self.clipped.extend((row, c.box) for c in got if c.clipped and c.box.task in self.spec.tasks)
        self.corners.extend((row, task) for task in corner_looking(got, self.spec.tasks))
        for crop in got:
            self.crops.append(crop)
            self.pending.append(crop.pixels)
            crop.pixels = _NO_PIXELS  # embedded below; the pixels are not kept
        while len(self.pending) >= self.batch_size:
            self._flush(self.batch_size)

    def _model(self) -> Any:
        """The model's context: the image pass's threads, inference mode and arithmetic."""
        import contextlib

        import torch

        from lightly_airflow.embedding.runner import _autocast, _model_threads

        stack = contextlib.ExitStack()
        stack.enter_context(_model_threads(self.device))
        stack.enter_context(torch.inference_mode())
        stack.enter_context(_autocast(self.device, self.precision))
        return stack

    def embed_images(self, image_rows: set[int] | None = None,
                     image_vectors: dict[int, np.ndarray] | None = None) -> None:
        """Crop and embed the objects of the shard's images (not frames), each image fetched and decoded once.

        :param image_rows: manifest rows whose image embedding the caller still needs: those with objects that
            the image pass would decode at full size too (not JPEG) are embedded from this decode, into
            ``image_vectors`` (row -> vector), with the same encoder and fixed-size padded batches.
        """
        image_pending: list[tuple[int, np.ndarray]] = []
        wanted_images = image_rows if image_vectors is not None else None
        thumbs = self._on_crop if self.thumbs is not None else None

        def flush_images(n: int) -> None:
            nonlocal image_pending
            assert image_vectors is not None
            tick = time.perf_counter()
            part = image_pending[:n]
            out = _forward(self.encoder, self.device, np.stack([p for _, p in part]), self.batch_size)
            for (row, _), vector in zip(part, out, strict=True):
                image_vectors[row] = vector
            self.embed_s += time.perf_counter() - tick
            image_pending = image_pending[n:]

        # The model runs on the threads the image pass gives it (cores minus the decoding workers); crops are
        # embedded as they arrive, so decoding the next images overlaps the forward pass and memory holds one
        # window of crops, not the shard's.
        with self._model():
            for row, got, problem, image_input, off in iter_crops(
                    self.datasource_uri, self.keys, self.image_rows, self.boxes, self.spec, self.size, self.ds_creds,
                    self.num_workers, thumbs, wanted_images):
                if got is None:
                    self.failed += 1
                    logger.warning("objects: image %r yields no objects: %s", self.keys[row], problem)
                    continue
                self._take(row, got, off)
                if image_input is not None:
                    image_pending.append((row, image_input))
                while len(image_pending) >= self.batch_size:
                    flush_images(self.batch_size)
            if image_pending:
                flush_images(len(image_pending))
        self.images_embedded = 0 if image_vectors is None else len(image_vectors)

    # ---- the video pass's hook (video.frames.FrameObjectsHook)
    def cost(self, row: int) -> int:
        """A frame's objects at most (its predicted boxes and the auto tasks' boxes); 0 for other rows."""
        if row not in self.frame_set:
            return 0
        return len(self.boxes.get(row, ())) + self.per_image_auto

    def crop(self, row: int, rgb: np.ndarray) -> tuple[list[Crop] | None, list[ObjectBox], str | None]:
        """Crop one frame's objects from its full-resolution upright RGB (in the analysing thread):
        ``(crops, boxes outside the frame, problem)``."""
        outside: list[ObjectBox] = []
        try:
            every = _object_boxes(self.boxes.get(row, []), self.spec.auto_tasks, rgb.shape[1], rgb.shape[0],
                                  outside)
            hook = None if self.thumbs is None else (lambda box, part: self._on_crop(row, box, part))
            return crop_pixels(rgb, every, self.spec.padding, self.size, row, hook), outside, None
        except Exception as exc:  # noqa: BLE001 - one bad frame never sinks the shard
            return None, outside, _problem(exc)

    def add_frame(self, got: Any) -> None:
        """Take one frame's objects (a :class:`~lightly_airflow.video.frames.FrameObjects`) from the video pass,
        embedding every full batch of crops; call in the model's context (the embed runner's loop)."""
        self.frames_done.add(got.row)
        crops, off, problem = got.crops if got.crops is not None else (None, [], got.reason)
        if crops is None:
            self.frames_failed += 1
            logger.warning("objects: video frame %r yields no objects: %s", self.keys[got.row], problem)
            crops = []
        self._take(got.row, crops, off)

    def finish(self) -> dict[str, Any]:
        """Crop the frames with objects the video pass did not decode (reused frames; every frame when called
        without the embed runner), embed the remaining crops and write the shard's ``objects/`` file.

        :returns: counts ``objects``, ``images_with_objects`` (images and frames), ``video_frames_with_objects``,
            ``images_failed``, ``boxes_outside_image`` (predicted boxes with no area inside their image: no
            object), ``video_frames_failed`` (frames with objects that did not decode: no objects),
            ``images_with_normalized_looking_boxes``, ``prediction_files_rejected`` (prediction files of object
            tasks that give their image no objects), ``boxes_clipped`` (predicted boxes reaching past their
            image's edge: cut), ``images_with_corner_looking_boxes``, ``objects_per_s``, ``output_uri``, ...
        """
        from lightly_airflow.video.frames import FrameObjects, iter_frame_results

        left = frame_rows(self.manifest, [r for r in self.object_frames if r not in self.frames_done])
        with self._model():
            if left:
                logger.info("objects: decoding %d video frames with objects of %s (not decoded by the video pass)",
                            len(left), self.manifest_uri)
                # Their hash and metrics come from the datapool (reused): the decode serves the crops only.
                for result in iter_frame_results(self.datasource_uri, left, input_size=None,
                                                 credentials=self.ds_creds, workers=self.num_workers, objects=self,
                                                 analyse=False):
                    self.add_frame(FrameObjects(result.row, result.objects, result.reason))
            if self.pending:
                self._flush(len(self.pending))
        self._log_clipped()
        return self._write()

    def _log_clipped(self) -> None:
        """Say how many predicted boxes were clipped at the image's edge, and which images' boxes look like corners
        (with the fix): their crops are cut, never silently."""
        if self.corners:
            row, task = self.corners[0]
            logger.warning(
                "objects: %d images of %s have boxes of a task that look like corners [x0, y0, x1, y1] (every box's "
                "w > x and h > y, both corners inside the image, and boxes reaching past its edge: e.g. %r, task %r: "
                "%s): Lightly's bbox is [x, y, width, height] in pixels; their crops were clipped to the image. Fix: "
                "write [x0, y0, x1 - x0, y1 - y0] and run with process_all", len({r for r, _ in self.corners}),
                self.manifest_uri, self.keys[row], task, [b.bbox for b in self.boxes[row] if b.task == task][:3])
        if self.clipped:
            row, box = self.clipped[0]
            logger.warning("objects: %d of %d predicted boxes of %s reach more than a pixel past their image's edge "
                           "and were clipped to it (their objects are cut; e.g. %r: task %r box %d %s)",
                           len(self.clipped), sum(len(b) for b in self.boxes.values()), self.manifest_uri,
                           self.keys[row], box.task, box.index, box.bbox)

    def _write(self) -> dict[str, Any]:
        thumb_counts = self.thumbs.close() if self.thumbs is not None else {"thumbnails": 0, "thumbnails_failed": 0}
        encoder, crops, keys, etags = self.encoder, self.crops, self.keys, self.etags
        vectors = np.concatenate(self.chunks) if self.chunks else np.zeros((0, encoder.dim), np.float32)
        schema = objects_schema(encoder.model_id, encoder.dim, self.size)
        columns: dict[str, list[Any]] = {f.name: [] for f in schema}
        metric_columns = [(m, columns[C.lightly_metadata_column(m)]) for m in CROP_METRICS]
        for crop, vector in zip(crops, vectors, strict=True):
            parent = keys[crop.parent]
            columns[C.KEY].append(C.object_id(parent, crop.box.task, crop.box.index))
            columns[C.ETAG].append(etags[crop.parent])
            columns[C.PARENT_KEY].append(parent)
            columns[C.OBJECT_TASK].append(crop.box.task)
            columns[C.OBJECT_INDEX].append(crop.box.index)
            columns[C.OBJECT_BBOX].append(list(crop.box.bbox))
            columns[C.OBJECT_CROP_BOX].append(list(crop.crop_box))
            columns[C.OBJECT_CATEGORY].append(crop.box.category)
            columns[C.OBJECT_SCORE].append(crop.box.score)
            columns[C.EMBEDDING].append(vector)
            for m, column in metric_columns:
                column.append(crop.metrics[m])
            columns[C.STATUS].append(C.STATUS_OK)
        arrays = []
        for f in schema:
            values = columns[f.name]
            if f.name == C.EMBEDDING:
                flat = np.asarray(vectors, np.float32).reshape(-1)
                offsets = np.arange(0, (len(values) + 1) * encoder.dim, encoder.dim, dtype=np.int32)
                arrays.append(list_array(offsets, from_numpy(flat)))
            else:  # (arrow's builders, not pa.array: that imports pandas, 0.2 s of an embed task)
                arrays.append(from_pylist(values, f.type))
        table = pa.Table.from_arrays(arrays, schema=schema)
        # The select task sums it into the run summary (objects.run.load_run_objects, summary).
        drops = dict(zip(DROP_COUNTS, (self.outside, self.frames_failed, len({r for r, _ in self.normalized}),
                                       len(self.rejected), self.failed, len(self.clipped),
                                       len({r for r, _ in self.corners})), strict=True))
        write_parquet(with_counts(table, OBJECTS, drops), self.output_uri, self.credentials)
        seconds = time.perf_counter() - self.started
        parents = {c.parent for c in crops}
        counts = {
            "objects": len(crops), "images_with_objects": len(parents),
            "video_frames_with_objects": len(parents & self.frame_set), "images_failed": self.failed,
            **drops,
            "objects_per_s": round(len(crops) / seconds, 1) if seconds > 0 else 0.0,
            "embed_s": round(self.embed_s, 3), "seconds": round(seconds, 3), "output_uri": self.output_uri,
            "tasks": list(self.spec.all_tasks), **thumb_counts,
            "images_embedded": self.images_embedded,
        }
        logger.info("objects of %s: %s", self.manifest_uri, counts)
        return counts
