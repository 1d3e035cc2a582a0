"""One decode per frame for every stage that needs pixels: the model's input, the ``lightly.*`` metrics, the
content hash and the corruptness score of each frame of a shard, computed from the same decoded frame.

The embed runner calls :func:`iter_frame_results` for the shard's frame rows: videos are decoded range by
range in a few threads (PyAV, the scaler, the hash and the compiled metric kernels run without the GIL)
while the model computes, and the metadata stage does not decode frames again (it only adds custom metadata).
Frames with objects (object-level runs) are cropped from the same full-resolution upright decode
(:class:`FrameObjectsHook`, implemented by :class:`lightly_airflow.objects.shard.ShardObjects`).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lightly_airflow import columns as C
from lightly_airflow.storage import StorageCredentials, filesystem
from lightly_airflow.video.decode import (
    decode_frames,
    decodes_sequentially,
    display_size,
    stored_array,
    to_rgb,
    upright_array,
    upright_image,
)
from lightly_airflow.video.quality import frame_corruptness
from lightly_airflow.video.source import ArchivedFileError, VideoReadError, open_video_source

logger = logging.getLogger(__name__)

#: Frames decoded per task: a task seeks once, so larger chunks waste less decoding before the first frame
#: (up to one GOP) and smaller ones hold less in memory and spread better over threads.
CHUNK_FRAMES = 512


@dataclass
class FrameRow:
    """A frame row of a manifest shard."""

    row: int
    video: str
    index: int | None
    pts: int | None
    problem: str | None = None
    key: str | None = None
    etag: str | None = None
    #: whether its video may seek (the index's ``VideoIndex.seekable``, by the opened container); ``None``: unknown
    seekable: bool | None = None


@dataclass
class FrameResult:
    """What one decode of a frame gave: model input, metrics, hash and corruptness, or why it failed."""

    row: int
    small: np.ndarray | None
    metrics: dict[str, Any] | None
    content_hash: str | None
    corruptness: float | None
    status: str
    reason: str | None
    objects: Any = None  # what the objects hook's ``crop`` returned for the frame (None: no objects, or no decode)


class FrameObjectsHook(Protocol):
    """Object crops of frames from the video pass's one decode (:class:`lightly_airflow.objects.shard.ShardObjects`).

    ``cost(row)``: the frame's objects at most (0: none, the frame is not cropped); ``crop(row, rgb)``: called in
    the analysing thread with the frame's full-resolution upright RGB; ``budget``: crops analysed ahead of the
    consumer at most (a frame is always allowed when nothing is ahead of it).
    """

    budget: int

    def cost(self, row: int) -> int: ...

    def crop(self, row: int, rgb: np.ndarray) -> Any: ...


@dataclass
class FrameObjects:
    """The objects of one frame, handed to the embed runner between the frame batches: ``crops`` is what the
    hook's ``crop`` returned, ``None`` when the frame did not decode (``reason``)."""

    row: int
    crops: Any
    reason: str | None


def frame_rows(manifest: Any, rows: Sequence[int] | None = None) -> list[FrameRow]:
    """The frame rows (those with a ``video``) of a manifest table, restricted to ``rows`` when given."""
    if C.VIDEO not in manifest.column_names:
        return []
    videos = manifest.column(C.VIDEO).to_pylist()
    indices = manifest.column(C.FRAME_INDEX).to_pylist()
    pts = manifest.column(C.FRAME_PTS).to_pylist()
    problems = (
        manifest.column(C.VIDEO_PROBLEM).to_pylist() if C.VIDEO_PROBLEM in manifest.column_names else [None] * len(videos)
    )
    keys = manifest.column(C.KEY).to_pylist()
    etags = manifest.column(C.ETAG).to_pylist() if C.ETAG in manifest.column_names else [None] * len(videos)
    seekable = (manifest.column(C.VIDEO_SEEKABLE).to_pylist() if C.VIDEO_SEEKABLE in manifest.column_names
                else [None] * len(videos))
    wanted = range(len(videos)) if rows is None else rows
    return [FrameRow(int(i), videos[i], indices[i], pts[i], problems[i], keys[i], etags[i], seekable[i])
            for i in wanted if videos[i] is not None]


def upright_rgb(frame: Any) -> np.ndarray:
    """The frame's full-resolution RGB as players show it (turned and mirrored by its display matrix, a phone's)."""
    return np.ascontiguousarray(upright_array(to_rgb(frame, "rgb").to_ndarray(), frame))


def analyse_frame(
    frame: Any, input_size: int | None, on_rgb: Callable[[np.ndarray], None] | None = None,
) -> tuple[np.ndarray | None, dict[str, Any], str, float]:
    """Model input (``input_size`` square RGB, or ``None``), metrics, content hash and corruptness of a frame.

    :param on_rgb: called with the frame's full-resolution upright RGB (object crops).
    """
    from lightly_airflow.metadata.kernels import pixel_sums
    from lightly_airflow.metadata.metrics import _metrics_from

    rgb = upright_rgb(frame)
    if on_rgb is not None:
        on_rgb(rgb)
    sums, squares, gray = pixel_sums(rgb)
    metrics: dict[str, Any] = _metrics_from(sums.astype(np.float64), squares.astype(np.float64), gray, 0, rgb)
    metrics["sizeInBytes"] = None  # a frame is no file; its video's size is on the video
    digest = hashlib.sha256(rgb.tobytes())
    digest.update(f"{rgb.shape}".encode())
    small = None
    if input_size:
        small = to_rgb(frame, "model", width=input_size, height=input_size, interpolation="BILINEAR").to_ndarray()
        small = np.ascontiguousarray(upright_array(small, frame))
    # the concealment grid is the coded picture's macroblocks; the colours tell a grey fill from a coloured area
    coded, coded_rgb = stored_array(gray, frame), stored_array(rgb, frame)
    return small, metrics, digest.hexdigest(), frame_corruptness(
        coded, bool(getattr(frame, "is_corrupt", False)), coded_rgb)


def _chunks(rows: list[FrameRow], probe: Callable[[str], bool | None] | None = None) -> list[list[FrameRow]]:
    """The shard's frames in decode chunks: up to :data:`CHUNK_FRAMES` of one video each, all of a video that
    cannot seek in one.

    :param probe: whether a video's container is of a seekable format (``index.container_seekable``; ``None``:
        cannot tell), asked once per video whose rows do not say (a manifest written before ``video_seekable``
        existed) and that would be split into chunks.
    """
    by_video: dict[str, list[FrameRow]] = collections.defaultdict(list)
    for r in rows:
        by_video[r.video].append(r)
    out: list[list[FrameRow]] = []
    probed: dict[str, bool | None] = {}
    for video in sorted(by_video):
        items = sorted(by_video[video], key=lambda r: (-1 if r.index is None else r.index))
        pts = [r.pts for r in items if r.index is not None]
        seekable = items[0].seekable
        if seekable is None and probe is not None and len(items) > CHUNK_FRAMES and pts and None not in pts:
            # Unknown: decide as the index does (unique timestamps, which such a manifest has for these rows, and
            # the container's format). Planned by timestamps alone, an MPEG-PS/TS with them was decoded from its
            # start once per chunk.
            seekable = probed[video] = probe(video)
        # A video that cannot seek (a raw .hevc, an MPEG-PS under any name) is decoded from its start per chunk:
        # its frames are one chunk.
        sequential = decodes_sequentially(seekable, pts)
        size = len(items) if sequential else CHUNK_FRAMES
        for start in range(0, len(items), size):
            out.append(items[start : start + size])
    if probed:
        unseekable = [video for video, seekable in probed.items() if seekable is False]
        logger.info("%d of this shard's videos have no video_seekable flag (a manifest written by an earlier version): "
                    "their containers say that %d cannot seek, each decoded in one pass (%s)", len(probed),
                    len(unseekable), ", ".join(unseekable[:5]) + (" …" if len(unseekable) > 5 else ""))
    return out


def _probe(datasource_uri: str, credentials: StorageCredentials | None, fs: Any, root: str) -> Callable[[str], bool | None]:
    """``index.container_seekable`` of a video of the datasource; ``None`` when it cannot be opened (its decode
    reports why)."""
    from lightly_airflow.video.index import container_seekable

    def probe(video: str) -> bool | None:
        try:
            with open_video_source(datasource_uri, video, credentials, fs=fs, root=root) as source:
                return container_seekable(source)
        except Exception:  # noqa: BLE001 - planned by its timestamps; the decode meets the same error
            return None

    return probe


def _thumbnail(frame: Any, thumbs: Any, row: FrameRow) -> None:
    """The UI's thumbnail of a frame from the same decode: scaled by the video scaler (area averaging, 0.33 ms
    at 640×360 against 0.41 ms for its default bilinear), then JPEG (``thumbnails.make_thumbnail``)."""
    from lightly_airflow.identity import sample_id
    from lightly_airflow.thumbnails import MAX_SIDE

    w, h = display_size(frame, MAX_SIDE)  # square pixels: anamorphic (DV/DVD) frames as players show them
    thumbs.add(sample_id(row.key or "", None if row.etag is None else str(row.etag)),
               upright_image(to_rgb(frame, "thumbnail", width=w, height=h, interpolation="AREA").to_image(), frame))


def _frame_result(frame: Any, r: FrameRow, input_size: int | None, thumbs: Any,
                  objects: FrameObjectsHook | None = None, analyse: bool = True) -> FrameResult:
    """Analyse one decoded frame (model input, metrics, hash, corruptness, object crops) and hand its thumbnail
    over; with ``analyse`` false, the object crops only (metrics and hash ``None``)."""
    cropped: list[Any] = []
    on_rgb = None
    if objects is not None and objects.cost(r.row):
        def on_rgb(rgb: np.ndarray) -> None:
            cropped.append(objects.crop(r.row, rgb))
    try:
        if not analyse:
            if on_rgb is not None:
                on_rgb(upright_rgb(frame))
            return FrameResult(r.row, None, None, None, None, C.STATUS_OK, None, cropped[0] if cropped else None)
        small, metrics, digest, score = analyse_frame(frame, input_size, on_rgb)
    except Exception as exc:  # noqa: BLE001 - a frame the scaler cannot convert is corrupt
        return FrameResult(r.row, None, None, None, None, C.STATUS_CORRUPT, f"cannot convert the frame: {exc}")
    if thumbs is not None:
        _thumbnail(frame, thumbs, r)
    return FrameResult(r.row, small, metrics, digest, score, C.STATUS_OK, None, cropped[0] if cropped else None)


class _CropBudget:
    """Crops analysed ahead of the consumer, over the threads that decode chunks concurrently: a frame waits
    while the crops ahead would pass the hook's budget, unless nothing is ahead or it is the next frame the
    consumer takes (its chunk is the one being consumed and none of that chunk's frames is waiting), so the
    consumer always gets its next frame and the crops ahead stay within the budget plus one frame's."""

    def __init__(self, objects: FrameObjectsHook, stop: threading.Event) -> None:
        self.objects, self.stop = objects, stop
        self.ahead, self.head = 0, 0
        self.taken: dict[int, tuple[int, int]] = {}  # row -> (chunk, cost)
        self.waiting: collections.Counter[int] = collections.Counter()  # chunk -> its frames taken, not consumed
        self.cond = threading.Condition()

    def take(self, chunk: int, row: int) -> None:
        cost = self.objects.cost(row)
        if not cost:
            return
        with self.cond:
            while (self.ahead and self.ahead + cost > self.objects.budget
                   and not (chunk == self.head and not self.waiting[chunk]) and not self.stop.is_set()):
                self.cond.wait(0.5)
            self.ahead += cost
            self.taken[row] = (chunk, cost)
            self.waiting[chunk] += 1

    def give(self, row: int) -> None:
        with self.cond:
            if row in self.taken:
                chunk, cost = self.taken.pop(row)
                self.ahead -= cost
                self.waiting[chunk] -= 1
                self.cond.notify_all()

    def consuming(self, chunk: int) -> None:
        with self.cond:
            self.head = chunk
            self.cond.notify_all()


def _process_chunk(
    datasource_uri: str, chunk: list[FrameRow], input_size: int | None, credentials: StorageCredentials | None,
    fs: Any, root: str, thumbs: Any = None, pool: ThreadPoolExecutor | None = None, depth: int = 1,
    objects: FrameObjectsHook | None = None, gate: Callable[[int], None] | None = None, analyse: bool = True,
) -> Iterator[FrameResult]:
    """The results of one chunk in frame order, each as soon as its frame is decoded and analysed (a generator:
    the model starts on the first batch while the rest of the chunk decodes). With ``pool``, this thread only
    decodes and up to ``depth`` frames are analysed in the pool's threads at once, fewer when their object
    crops would pass ``objects.budget`` (never less than one frame).

    :param objects: crops the frames with objects from their decode (``FrameResult.objects``).
    :param gate: called with a decoded frame's row before it is analysed (the threads' shared crop budget).
    """
    decodable = []
    for r in chunk:
        if r.index is None or r.problem:
            why = r.problem or "no frame index"
            yield FrameResult(r.row, None, None, None, None, C.STATUS_CORRUPT, why)
        else:
            decodable.append(r)
    if not decodable:
        return
    by_index = {r.index: r for r in decodable}
    video = decodable[0].video
    done: set[int] = set()
    pending: collections.deque[FrameResult | Future[FrameResult]] = collections.deque()
    crops_ahead: collections.deque[int] = collections.deque()  # each pending frame's crops at most
    unreadable: list[int] = []  # frames of a bad stretch of the disk or store (``decode._bad_stretch``)
    try:
        try:
            with open_video_source(datasource_uri, video, credentials, fs=fs, root=root) as source:
                for got in decode_frames(source, [(r.index, r.pts) for r in decodable if r.index is not None]):
                    r = by_index[got.index]
                    done.add(r.row)
                    cost = objects.cost(r.row) if objects is not None else 0
                    if pool is not None and objects is not None:
                        while pending and sum(crops_ahead) + cost > objects.budget:
                            crops_ahead.popleft()
                            item = pending.popleft()
                            yield item.result() if isinstance(item, Future) else item
                    if gate is not None:
                        gate(r.row)
                    if got.frame is None:
                        if (got.reason or "").startswith("unreadable:"):
                            unreadable.append(got.index)
                        pending.append(FrameResult(r.row, None, None, None, None, C.STATUS_CORRUPT, got.reason))
                    elif pool is None:
                        pending.append(_frame_result(got.frame, r, input_size, thumbs, objects, analyse))
                    else:
                        pending.append(pool.submit(_frame_result, got.frame, r, input_size, thumbs, objects, analyse))
                    crops_ahead.append(cost)
                    while len(pending) > (depth if pool is not None else 0):
                        crops_ahead.popleft()
                        item = pending.popleft()
                        yield item.result() if isinstance(item, Future) else item
        except FileNotFoundError as exc:
            why = str(exc) if isinstance(exc, ArchivedFileError) else "the video disappeared after listing"
            for r in decodable:
                if r.row not in done:
                    pending.append(FrameResult(r.row, None, None, None, None, C.STATUS_MISSING, why))
        except VideoReadError as exc:  # (not the video's fault: the task fails and is retried, nothing is committed)
            raise VideoReadError(f"video {video!r}: {exc}") from exc
        if unreadable:
            logger.warning("video %r: %d frames (%s…%s) cannot be read from its disk or store (a bad stretch: their "
                           "rows are corrupt 'unreadable' with the fix), its other frames are kept", video,
                           len(unreadable), min(unreadable), max(unreadable))
        while pending:
            item = pending.popleft()
            yield item.result() if isinstance(item, Future) else item
    finally:
        for item in pending:  # a consumer that stopped early: nothing left queued
            if isinstance(item, Future):
                item.cancel()


_END = object()


def iter_frame_results(
    datasource_uri: str, rows: list[FrameRow], *, input_size: int | None, credentials: StorageCredentials | None = None,
    workers: int = 1, thumbs: Any = None, objects: FrameObjectsHook | None = None, analyse: bool = True,
) -> Iterator[FrameResult]:
    """Decode the frames of ``rows`` once each and yield a :class:`FrameResult` per row (grouped by video).

    Results stream: each is yielded as soon as its frame is analysed, so the model overlaps the decoding of
    the same chunk (a shard of one chunk, e.g. 240 frames of one video, used to be decoded and analysed whole
    before its first batch reached the model: no overlap at all, ``docs/video.md``).

    :param workers: threads: chunks decoded concurrently (each chunk is one seek and one sequential decode),
        their results yielded in chunk order, each chunk streaming from its own thread; with fewer chunks than
        threads (e.g. a shard of one video shorter than ``CHUNK_FRAMES``), each chunk is decoded in this
        thread and its frames are analysed in ``workers`` threads (the analysis costs ~4x the decode).
    :param thumbs: a :class:`lightly_airflow.thumbnails.ThumbnailWriter` to give each frame's thumbnail to.
    :param objects: crops the frames with objects from the same decode (``FrameResult.objects``); the crops
        analysed ahead of the consumer stay within ``objects.budget`` (one frame at least).
    :param analyse: false: the object crops only, no model input, metrics, hash or corruptness (frames whose
        values are reused from the datapool: computing them was thrown away).
    """
    fs, root = filesystem(datasource_uri, credentials)
    chunks = _chunks(rows, _probe(datasource_uri, credentials, fs, root))
    if workers <= 1:
        for chunk in chunks:
            yield from _process_chunk(datasource_uri, chunk, input_size, credentials, fs, root, thumbs,
                                      objects=objects, analyse=analyse)
        return
    if len(chunks) < workers:  # fewer chunks than threads (a short shard): one decodes, the others analyse
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video-analyse") as analysis:
            for chunk in chunks:
                yield from _process_chunk(datasource_uri, chunk, input_size, credentials, fs, root, thumbs,
                                          pool=analysis, depth=2 * workers, objects=objects, analyse=analyse)
        return
    stop = threading.Event()
    budget = _CropBudget(objects, stop) if objects is not None else None

    def run(number: int, chunk: list[FrameRow], out: queue.SimpleQueue[Any]) -> None:
        gate = None if budget is None else (lambda row: budget.take(number, row))
        try:
            for result in _process_chunk(datasource_uri, chunk, input_size, credentials, fs, root, thumbs,
                                         objects=objects, gate=gate, analyse=analyse):
                if stop.is_set():
                    return
                out.put(result)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            out.put(exc)
        out.put(_END)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video-decode") as pool:
        streams: collections.deque[queue.SimpleQueue[Any]] = collections.deque()
        it = enumerate(chunks)

        def start_next() -> None:
            number, chunk = next(it, (0, None))
            if chunk is not None:
                streams.append(queue.SimpleQueue())
                pool.submit(run, number, chunk, streams[-1])

        try:
            for _ in range(workers):
                start_next()
            consumed = 0
            while streams:
                stream = streams.popleft()
                if budget is not None:
                    budget.consuming(consumed)
                while (item := stream.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    if budget is not None:
                        budget.give(item.row)
                    yield item
                consumed += 1
                start_next()
        finally:
            stop.set()  # a consumer that stops early: the threads end at their next frame


#: The metric computed for frames only (``metadata.lightly.corruptness``, see :mod:`.quality`).
CORRUPTNESS = "corruptness"


class FrameExtras:
    """Per-row values the frame decode produces besides the model input, for the shard's output columns:
    ``content_hash``, ``metadata.lightly.<metric>`` and ``metadata.lightly.corruptness``."""

    def __init__(self, n: int) -> None:
        from lightly_airflow.metadata.metrics import METRICS

        self.n = n
        self.hashes: list[str | None] = [None] * n
        self.metrics: dict[str, list[Any]] = {m: [None] * n for m in (*METRICS, CORRUPTNESS)}

    def record(self, result: FrameResult) -> None:
        self.hashes[result.row] = result.content_hash
        if result.metrics is not None:
            for m, v in result.metrics.items():
                self.metrics[m][result.row] = v
            self.metrics[CORRUPTNESS][result.row] = result.corruptness

    def copy_from(self, reuse: Any, manifest_rows: np.ndarray, reuse_rows: np.ndarray) -> None:
        """Copy the hash and metrics of reused frames (``reuse`` rows matched to manifest rows)."""
        if C.CONTENT_HASH in reuse.column_names:
            hashes = reuse.column(C.CONTENT_HASH).take(reuse_rows).to_pylist()
            for m_row, h in zip(manifest_rows.tolist(), hashes):
                self.hashes[m_row] = h
        for m in self.metrics:
            col = C.lightly_metadata_column(m)
            if col in reuse.column_names:
                for m_row, v in zip(manifest_rows.tolist(), reuse.column(col).take(reuse_rows).to_pylist()):
                    self.metrics[m][m_row] = v

    def columns(self) -> list[tuple[Any, Any]]:
        """``(field, array)`` pairs to append to the shard's output."""
        import pyarrow as pa

        from lightly_airflow.arrow import from_pylist  # (not pa.array: it imports pandas, 0.2 s of an embed task)
        from lightly_airflow.metadata.metrics import INT_METRICS

        out = [(pa.field(C.CONTENT_HASH, pa.string()), from_pylist(self.hashes, pa.string()))]
        for m, values in self.metrics.items():
            typ = pa.int64() if m in INT_METRICS else pa.float64()
            out.append((pa.field(C.lightly_metadata_column(m), typ), from_pylist(values, typ)))
        return out


def frame_batches(
    datasource_uri: str, rows: list[FrameRow], extras: FrameExtras, *, input_size: int, batch_size: int,
    credentials: StorageCredentials | None = None, workers: int = 1, thumbs: Any = None,
    objects: FrameObjectsHook | None = None,
) -> Iterator[Any]:
    """The frames of ``rows`` as the embed runner's ``ImageBatch`` objects, recording hashes and metrics in
    ``extras`` from the same decode; with ``objects``, a :class:`FrameObjects` for every frame with objects as
    soon as it is analysed (its crops are not held until the frame's batch is full)."""
    import torch

    from lightly_airflow.embedding.images import ImageBatch

    blank = np.zeros((input_size, input_size, 3), np.uint8)

    def make(results: list[FrameResult]) -> ImageBatch:
        # One stack of the (S, S, 3) model inputs; the NCHW view of it is channels-last, as the encoder wants.
        pixels = np.stack([blank if r.small is None else r.small for r in results])
        return ImageBatch(
            rows=torch.tensor([r.row for r in results], dtype=torch.int64),
            images=torch.from_numpy(pixels).permute(0, 3, 1, 2),
            ok=torch.tensor([r.small is not None for r in results], dtype=torch.bool),
            status=[r.status for r in results], reasons=[r.reason for r in results],
        )

    pending: list[FrameResult] = []
    for result in iter_frame_results(datasource_uri, rows, input_size=input_size, credentials=credentials,
                                     workers=workers, thumbs=thumbs, objects=objects):
        extras.record(result)
        if objects is not None and objects.cost(result.row):
            yield FrameObjects(result.row, result.objects, result.reason)
            result.objects = None
        pending.append(result)
        if len(pending) == batch_size:
            yield make(pending)
            pending = []
    if pending:
        yield make(pending)


def with_decoded_frame_values(
    table: Any, manifest: Any, datasource_uri: str, *, credentials: StorageCredentials | None = None,
    workers: int = 1, thumbs: Any = None,
) -> Any:
    """The embed output ``table`` (rows aligned with ``manifest``) plus the frames' hash, metrics and
    corruptness from one decode without the model: custom embeddings (``worker_config.embeddings``) give the
    vectors, the frames still need their ``lightly.*`` metrics. A frame that does not decode is ``corrupt``."""
    import pyarrow as pa

    rows = frame_rows(manifest)
    extras = FrameExtras(manifest.num_rows)
    status = table.column(C.STATUS).to_pylist()
    reasons = table.column(C.STATUS_REASON).to_pylist()
    try:
        for result in iter_frame_results(datasource_uri, rows, input_size=None, credentials=credentials,
                                         workers=workers, thumbs=thumbs):
            extras.record(result)
            if result.status != C.STATUS_OK and status[result.row] == C.STATUS_OK:
                status[result.row], reasons[result.row] = result.status, result.reason
    finally:
        if thumbs is not None:
            thumbs.close()
    table = table.set_column(table.column_names.index(C.STATUS), C.STATUS, pa.array(status, pa.string()))
    table = table.set_column(table.column_names.index(C.STATUS_REASON), C.STATUS_REASON, pa.array(reasons, pa.string()))
    for field_, array in extras.columns():
        table = table.append_column(field_, array)
    return table
