"""The batch runner: one manifest shard in, one embeddings Parquet file out.

The same function runs in a GPU pod (through ``lightly-airflow embed``) and in an Airflow worker (local
mode). DataLoader worker processes fetch and decode while the main process runs the model; batches travel
as ``uint8`` (4x less than float) through pinned memory and are normalised on the device; on a GPU the
forward pass runs under autocast (bf16 where supported, else fp16) in channels-last layout.

Determinism: every batch is padded to ``batch_size`` so the model always sees the same shapes, and an
image's embedding does not depend on its neighbours in the batch; on CUDA, cuDNN is put in deterministic
mode. The same image, model and batch size therefore give bit-identical embeddings on the same device.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from lightly_airflow.arrow import from_numpy, from_pylist, list_array, numpy_of, one_array, valid_of
from lightly_airflow.columns import (
    EMBEDDING,
    EMBEDDING_DIM_METADATA_KEY,
    EMBEDDING_INPUT_SIZE_METADATA_KEY,
    EMBEDDING_MODEL_METADATA_KEY,
    ETAG,
    KEY,
    STATUS,
    STATUS_CORRUPT,
    STATUS_MISSING,
    STATUS_OK,
    STATUS_REASON,
)
from lightly_airflow.cores import usable_cores
from lightly_airflow.embedding.encoders import Encoder, get_encoder
from lightly_airflow.embedding.images import ShardImages
from lightly_airflow.embedding.options import EmbedOptions
from lightly_airflow.staging import (
    EMBEDDINGS,
    MANIFEST,
    WRITER,
    missing_hint,
    read_manifest,
    read_staging,
    rows_with,
    sibling_uri,
)
from lightly_airflow.storage import StorageCredentials, write_parquet

logger = logging.getLogger(__name__)

LOG_EVERY_S = 10.0
C_VIDEO = "video"  # columns.VIDEO: manifests with video frame rows


def _frame_thumbnails(manifest_uri: str, credentials: StorageCredentials | None) -> Any:
    """The UI thumbnails of video frames come from the embed task's decode (the metadata task decodes none)."""
    from lightly_airflow.thumbnails import manifest_thumbnails

    return manifest_thumbnails(manifest_uri, credentials)


def _prefetch(items: Iterator[Any], depth: int = 4, on_done: Any = None) -> Iterator[Any]:
    """Run a batch generator in a background thread (decoding overlaps the model's forward pass)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            if on_done is not None:
                on_done()
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, name="video-frames", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def shard_reuse(reuse: pa.Table, keys: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The rows of ``reuse`` (the run's known embeddings) whose key is one of the shard's ``keys``."""
    if KEY not in reuse.column_names or not reuse.num_rows:
        return reuse
    return rows_with(reuse, KEY, keys)


def _reuse_rows(manifest: pa.Table, reuse: pa.Table, reused_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For reused manifest rows, the matching rows of ``reuse`` (by key and etag)."""
    where = {(k, e): i for i, (k, e) in enumerate(zip(reuse[KEY].to_pylist(), reuse[ETAG].to_pylist()))}
    keys, etags = manifest[KEY].to_pylist(), manifest[ETAG].to_pylist()
    pairs = [(int(r), where.get((keys[r], etags[r]))) for r in reused_rows.tolist()]
    pairs = [(m, r) for m, r in pairs if r is not None]
    return np.array([m for m, _ in pairs], dtype=np.int64), np.array([r for _, r in pairs], dtype=np.int64)


# ------------------------------------------------------------------------------------------------ helpers
def resolve_device(device: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda``/``cuda:N`` must be available.

    :raises ValueError: for an unknown value or an unavailable GPU.
    """
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but no CUDA GPU is visible: use device='auto' or 'cpu'.")
        return torch.device(text)
    raise ValueError(f"device={device!r} is invalid: use 'auto', 'cpu', 'cuda' or 'cuda:N'.")


def default_num_workers(device: torch.device) -> int:
    """Decoding workers: most cores on a GPU node; on a CPU, where the model needs the same cores, a quarter
    of them but at least 2 threads (on 2 cores: as fast as one thread for JPEGs, 13% faster with PNGs)."""
    cores = usable_cores()
    if device.type == "cuda":
        return max(1, min(8, cores - 1))
    return max(2, min(4, cores // 4))


@contextlib.contextmanager
def _model_threads(device: torch.device) -> Iterator[int]:
    """On a CPU, run the forward pass on the cores the default decoding workers leave free (at least one).

    Decoding runs in threads (or processes) while the model computes; torch's OpenMP threads default to every
    core, so on a small node they are oversubscribed and spin at each layer's barrier while a decoder holds
    their core: EfficientNet-Lite0 at 64 px on 2 cores with a decoder busy measured 5-15x slower with 2 torch
    threads than with 1 (``docs/video.md``). The count depends on the node only, never on ``num_workers`` or
    the loader, so embeddings stay bit-identical across those. Only lowers the count; restored afterwards.
    """
    before = torch.get_num_threads()
    cores = usable_cores()
    wanted = max(1, min(before, cores - default_num_workers(device)))
    if device.type != "cpu" or wanted == before:
        yield before
        return
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


def _autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager[Any]:
    """The forward pass's arithmetic (``EmbedOptions.precision``): ``auto`` is float32 on a CPU and autocast on
    a GPU (bf16 where supported, else fp16); ``float32`` never autocasts; ``bfloat16`` autocasts to bf16."""
    if precision == "float32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def cpu_precision(precision: str) -> str:
    """The CPU graph :meth:`Encoder.freeze` traces for ``EmbedOptions.precision``."""
    return "bfloat16" if precision == "bfloat16" else "float32"


_ENCODERS: dict[tuple[Any, ...], Encoder] = {}


def _cached_encoder(
    model: str, weights_uri: str | None, dim: int | None, input_size: int, device: torch.device,
    credentials: StorageCredentials | None, precision: str = "auto",
) -> Encoder:
    """An encoder on ``device``, reused across shards embedded in one process; on a CPU its forward pass for
    ``precision`` is one traced graph that runs without the GIL (:meth:`Encoder.freeze`)."""
    key = (model, weights_uri, dim, input_size, str(device), credentials)
    if key not in _ENCODERS:
        if len(_ENCODERS) >= 2:
            _ENCODERS.clear()
        encoder = get_encoder(model, weights_uri=weights_uri, dim=dim, input_size=input_size, credentials=credentials)
        _ENCODERS[key] = encoder.to(device)
    return _ENCODERS[key].freeze(precision=cpu_precision(precision))  # a no-op on a GPU or when traced


def embedding_schema(model_id: str, dim: int, input_size: int | None, key_type: pa.DataType = pa.string(),
                     etag_type: pa.DataType = pa.string()) -> pa.Schema:
    """Schema of an embeddings staging file, with the model recorded in its metadata."""
    return pa.schema(
        [
            pa.field(KEY, key_type),
            pa.field(ETAG, etag_type),
            pa.field(EMBEDDING, pa.list_(pa.float32())),
            pa.field(STATUS, pa.string()),
            pa.field(STATUS_REASON, pa.string()),
        ],
        metadata={
            EMBEDDING_MODEL_METADATA_KEY: json.dumps(model_id),
            EMBEDDING_DIM_METADATA_KEY: json.dumps(int(dim)),
            EMBEDDING_INPUT_SIZE_METADATA_KEY: json.dumps(None if input_size is None else int(input_size)),
        },
    )


def _embedding_column(vectors: np.ndarray, valid: np.ndarray) -> pa.Array:
    """``list<float32>`` from an ``(n, dim)`` matrix; rows where ``valid`` is false are null."""
    n, dim = vectors.shape
    lengths = np.where(valid, dim, 0)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    # (arrow's builders: pa.array of numpy imports pandas, 0.2 s of the task; from_arrays' mask loads pyarrow.compute)
    values = from_numpy(np.ascontiguousarray(vectors[valid], dtype=np.float32).reshape(-1))
    return list_array(offsets, values, ~valid)


def match_reuse(manifest: pa.Table, reuse: pa.Table, *, model_id: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``manifest`` whose (key, etag) has a known embedding; returns (manifest rows, vectors).

    :param reuse: ``key``, ``etag``, ``embedding``; if its schema records ``lightly.embedding_model`` it must
        equal ``model_id``.
    :raises ValueError: for missing columns, another model or another dimension.
    """
    missing = [c for c in (KEY, ETAG, EMBEDDING) if c not in reuse.column_names]
    if missing:
        raise ValueError(f"reuse table lacks column(s) {missing}: it needs key, etag, embedding.")
    recorded = (reuse.schema.metadata or {}).get(EMBEDDING_MODEL_METADATA_KEY.encode())
    if recorded is not None:
        recorded_id = json.loads(recorded)
        if recorded_id != model_id:
            raise ValueError(
                f"reuse embeddings were computed with {recorded_id!r}, this run uses {model_id!r}: pass reuse "
                "embeddings of the same model (or none to recompute all)."
            )
    empty = (np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32))
    if manifest.num_rows == 0 or reuse.num_rows == 0:
        return empty
    # (no Table.join: it loads pyarrow.dataset, which imports pandas, 0.3-0.6 s of the embed task; nor to_numpy or
    # pa.array of numpy, which import it too.) A (key, etag) the reuse table holds twice: its last row wins, as
    # with the join before (index_in finds the first, of the rows reversed)
    import pyarrow.compute as pc

    last = reuse.num_rows - 1
    found = pc.index_in(_pair(manifest), value_set=_pair(reuse).take(from_numpy(np.arange(last, -1, -1))),
                        skip_nulls=True)
    m_rows = np.flatnonzero(valid_of(found))
    if len(m_rows) == 0:
        return empty
    r_rows = last - numpy_of(found)[m_rows].astype(np.int64)
    embeddings = reuse[EMBEDDING].take(from_numpy(r_rows)).combine_chunks()
    if embeddings.null_count:
        keep = valid_of(embeddings)
        m_rows, r_rows = m_rows[keep], r_rows[keep]
        embeddings = embeddings.filter(from_numpy(keep))
    if len(m_rows) == 0:
        return empty
    lengths = numpy_of(embeddings.value_lengths())
    if np.any(lengths != dim):
        bad = int(lengths[lengths != dim][0])
        raise ValueError(
            f"reuse embeddings have dimension {bad}, this run's model {model_id!r} produces {dim}: pass reuse "
            "embeddings of the same model."
        )
    vectors = np.asarray(numpy_of(embeddings.flatten()), dtype=np.float32).reshape(-1, dim)
    return m_rows.astype(np.int64), vectors


def _pair(table: pa.Table) -> pa.Array:
    """Each row's (key, etag) as one string, ``len(key):key etag`` (unambiguous whatever the key holds); null where
    either is null (such a row matches nothing, as in a join)."""
    import pyarrow.compute as pc

    key, etag = one_array(table[KEY]).cast(pa.string()), one_array(table[ETAG]).cast(pa.string())
    colon = from_pylist([":"], pa.string())[0]  # (a Python str here goes through pa.scalar: pandas)
    return pc.binary_join_element_wise(pc.binary_length(key).cast(pa.string()), key, etag, colon)


def _loader(dataset: ShardImages, workers: int, *, pin_memory: bool, kind: str) -> Iterable[Any]:
    """Batches in order, from DataLoader worker processes or from decoding threads (Pillow decodes without
    holding the GIL). Threads are used when asked, and where this process may not have children (a daemonic
    process, e.g. a Celery prefork worker)."""
    if workers and kind == "threads":
        return _threaded_batches(dataset, workers, pin_memory=pin_memory)
    if workers and multiprocessing.current_process().daemon:
        logger.info("Running in a daemonic process: decoding in %d threads instead of worker processes", workers)
        return _threaded_batches(dataset, workers, pin_memory=pin_memory)
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
    )


def _threaded_batches(dataset: ShardImages, workers: int, *, pin_memory: bool) -> Iterator[Any]:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed-decode") as pool:
        pending: collections.deque[Future[Any]] = collections.deque()
        next_index = 0
        while next_index < len(dataset) or pending:
            while next_index < len(dataset) and len(pending) < 4 * workers:
                pending.append(pool.submit(dataset.__getitem__, next_index))
                next_index += 1
            batch = pending.popleft().result()
            yield batch.pin_memory() if pin_memory else batch


class _Progress:
    """Logs images done, images/s and ETA at most every ``LOG_EVERY_S`` seconds."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.start = time.perf_counter()
        self.last = self.start

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, n: int, *, final: bool = False) -> None:
        self.done += n
        now = time.perf_counter()
        if final or now - self.last >= LOG_EVERY_S:
            self.last = now
            rate = self.rate
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            logger.info(
                "%s: %d/%d images (%.0f%%), %.1f images/s, ETA %.0f s",
                self.label, self.done, self.total, 100.0 * self.done / max(self.total, 1), rate, eta,
            )


# ------------------------------------------------------------------------------------------------- runner
def embed_shard(
    manifest_uri: str,
    output_uri: str | None = None,
    options: EmbedOptions | None = None,
    *,
    credentials: StorageCredentials | None = None,
    datasource_credentials: StorageCredentials | None = None,
    reuse: pa.Table | None = None,
    **option_values: Any,
) -> dict[str, Any]:
    """Embed the images of one manifest shard and write ``key, etag, embedding, status, status_reason``.

    :param manifest_uri: the manifest shard (``…/manifest/shard-NNNNN.parquet``).
    :param output_uri: where to write; default ``staging.sibling_uri(manifest_uri, "embeddings")``.
    :param options: how to embed (:class:`~lightly_airflow.embedding.options.EmbedOptions`: model, input size,
        device, batch size, decoding, reuse file, custom embeddings CSV); default ``EmbedOptions()``.
    :param credentials: for the manifest, output, weights and reuse stores (``None``: ambient).
    :param datasource_credentials: for the images' store; defaults to ``credentials``.
    :param reuse: known embeddings of the same model (``key, etag, embedding``) as a table, instead of
        ``options.reuse_uri``: matching rows are copied.
    :param option_values: single options by name (``embed_shard(uri, batch_size=8)``), applied over ``options``.
    :returns: JSON-serialisable counts: ``embedded``, ``reused``, ``corrupt``, ``missing``, ``total``,
        ``output_uri``, ``model``, ``dim``, ``input_size``, ``images_per_s``, ``seconds``, ``device``.
    :raises ValueError: for an invalid option (naming it) or a manifest without its datasource.
    """
    opts = options or EmbedOptions()
    if option_values:
        opts = EmbedOptions.from_mapping({**opts.to_dict(), **option_values})
    model, input_size, weights_uri, dim = opts.model, opts.input_size, opts.weights_uri, opts.dim
    batch_size, num_workers, loader, embeddings_csv = opts.batch_size, opts.num_workers, opts.loader, opts.embeddings_csv
    if embeddings_csv is not None and dim is not None:
        from lightly_airflow.embedding.custom import check_embeddings_dim

        check_embeddings_dim(embeddings_csv, dim, credentials)  # (before any work: the header alone)
    started = time.perf_counter()
    shard = read_manifest(manifest_uri, credentials, required=(KEY, ETAG))
    manifest, datasource_uri = shard.table, shard.require_datasource_uri()
    if reuse is None and opts.reuse_uri:
        reuse = read_staging(opts.reuse_uri, credentials, WRITER[MANIFEST], keep=(KEY, manifest[KEY]))
        if reuse is None:
            raise FileNotFoundError(f"Reuse file {opts.reuse_uri} does not exist: the list task of this run writes it. "
                                    f"Fix: clear the {WRITER[MANIFEST]}.{missing_hint(opts.reuse_uri)}")
    elif reuse is not None:
        reuse = shard_reuse(reuse, manifest[KEY])
    output_uri = output_uri or sibling_uri(manifest_uri, EMBEDDINGS)
    n = manifest.num_rows

    if embeddings_csv is not None:
        from lightly_airflow.embedding.custom import embeddings_from_csv

        table = embeddings_from_csv(manifest, embeddings_csv, credentials=credentials,
                                    normalize=opts.normalize_embeddings is not False)
        meta = table.schema.metadata
        shard.check_embedding(json.loads(meta[EMBEDDING_MODEL_METADATA_KEY.encode()]),
                              json.loads(meta[EMBEDDING_DIM_METADATA_KEY.encode()]))
        if C_VIDEO in manifest.column_names:  # frames still get hash, metrics and corruptness from one decode
            from lightly_airflow.video.frames import with_decoded_frame_values

            table = with_decoded_frame_values(
                table, manifest, datasource_uri, credentials=datasource_credentials or credentials,
                workers=default_num_workers(torch.device("cpu")), thumbs=_frame_thumbnails(manifest_uri, credentials),
            )
        write_parquet(table, output_uri, credentials)
        meta = table.schema.metadata
        counts = _counts(table, output_uri, json.loads(meta[EMBEDDING_MODEL_METADATA_KEY.encode()]),
                         json.loads(meta[EMBEDDING_DIM_METADATA_KEY.encode()]), None, reused=0,
                         embedded=table[STATUS].to_pylist().count(STATUS_OK),
                         rate=0.0, seconds=time.perf_counter() - started, device="none")
        logger.info("Embeddings of %s taken from %s: %s", manifest_uri, embeddings_csv, counts)
        return counts

    torch_device = resolve_device(opts.device)
    if torch_device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    encoder = _cached_encoder(model, weights_uri, dim, input_size, torch_device, credentials, opts.precision)
    out_dim = encoder.dim
    shard.check_embedding(encoder.model_id, out_dim)  # before any image is read

    vectors = np.zeros((n, out_dim), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    status = np.full(n, STATUS_OK, dtype=object)
    reasons = np.full(n, None, dtype=object)

    reused_rows = np.zeros(0, dtype=np.int64)
    if reuse is not None:
        reused_rows, reused_vectors = match_reuse(manifest, reuse, model_id=encoder.model_id, dim=out_dim)
        vectors[reused_rows] = reused_vectors
        valid[reused_rows] = True
    todo = np.setdiff1d(np.arange(n, dtype=np.int64), reused_rows, assume_unique=True)
    keys = manifest[KEY].to_pylist()
    # Video frames are decoded once, range by range, for the model input and the frame metrics together.
    from lightly_airflow.video.frames import FrameExtras, FrameObjects, frame_batches, frame_rows

    frames = frame_rows(manifest, todo.tolist())
    extras = FrameExtras(n) if C_VIDEO in manifest.column_names else None
    if extras is not None and reuse is not None and len(reused_rows):
        extras.copy_from(reuse, *_reuse_rows(manifest, reuse, reused_rows))
    frame_set = {f.row for f in frames}
    todo_images = np.array([i for i in todo.tolist() if i not in frame_set], dtype=np.int64)
    from lightly_airflow.objects.shard import open_objects_shard

    # Object-level runs: the crops of the shard's objects, with the same encoder on the same device. Images with
    # objects are decoded once at full size there; those without a reduced decode (not JPEG) get their own
    # model input from that decode too, so the image pass skips them (docs/objects.md, "Decoded once"). Frames
    # with objects are cropped in the frame pass's one decode below (FrameObjects items between its batches).
    derived: dict[int, np.ndarray] = {}
    shard_objects = open_objects_shard(manifest_uri, encoder=encoder, device=torch_device, batch_size=batch_size,
                                       num_workers=max(1, default_num_workers(torch_device) if num_workers is None
                                                       else num_workers),
                                       credentials=credentials, datasource_credentials=datasource_credentials,
                                       precision=opts.precision)
    if shard_objects is not None:
        shard_objects.embed_images(set(todo_images.tolist()), derived)
    if derived:
        rows_done = np.array(sorted(derived), dtype=np.int64)
        vectors[rows_done] = np.stack([derived[int(r)] for r in rows_done])
        valid[rows_done] = True
        todo_images = np.setdiff1d(todo_images, rows_done, assume_unique=True)

    dataset = ShardImages(
        datasource_uri, [keys[i] for i in todo_images], todo_images.tolist(), input_size=encoder.input_size,
        batch_size=batch_size, credentials=datasource_credentials or credentials,
    )
    requested = default_num_workers(torch_device) if num_workers is None else num_workers
    workers = min(requested, len(dataset))
    # Frames use every requested thread: chunks of up to CHUNK_FRAMES (one seek each) decode concurrently, and a
    # shard with fewer chunks than threads (one short video) decodes in one and analyses in all of them.
    frame_workers = max(1, requested) if frames else 0
    kind = loader if loader != "auto" else ("processes" if torch_device.type == "cuda" else "threads")
    batches: Iterable[Any] = _loader(dataset, workers, pin_memory=torch_device.type == "cuda", kind=kind) if len(dataset) else []
    if frames:
        assert extras is not None
        thumbs = _frame_thumbnails(manifest_uri, credentials)
        batches = itertools.chain(batches, _prefetch(frame_batches(
            datasource_uri, frames, extras, input_size=encoder.input_size, batch_size=batch_size,
            credentials=datasource_credentials or credentials, workers=frame_workers, thumbs=thumbs,
            objects=shard_objects if shard_objects is not None and shard_objects.object_frames else None,
        ), on_done=None if thumbs is None else thumbs.close))
    with _model_threads(torch_device) as model_threads, torch.inference_mode(), _autocast(torch_device, opts.precision):
        logger.info(
            "Embedding %d images of %s with %s on %s (batch %d, %d decode %s, %d frame threads, %d model threads, "
            "precision %s; %d reused)", len(todo), manifest_uri, encoder.model_id, torch_device, batch_size, workers,
            kind, frame_workers, model_threads, opts.precision, len(reused_rows),
        )
        progress = _Progress(len(todo), f"embed {manifest_uri.rsplit('/', 1)[-1]}")
        computed = 0
        waited = 0.0  # time the model sat idle waiting for decoded batches
        iterator = iter(batches)
        while True:
            tick = time.perf_counter()
            batch = next(iterator, None)
            waited += time.perf_counter() - tick
            if batch is None:
                break
            if isinstance(batch, FrameObjects):  # a frame's object crops, from the frame's one decode
                assert shard_objects is not None
                shard_objects.add_frame(batch)
                continue
            rows = batch.rows.numpy()
            ok = batch.ok.numpy()
            for row, st, reason in zip(rows, batch.status, batch.reasons):
                if st != STATUS_OK:
                    status[row], reasons[row] = st, reason
                    logger.warning("%s file %r: %s", st, keys[row], reason)
            if ok.any():
                images = batch.images.to(torch_device, non_blocking=True)
                if images.shape[0] < batch_size:  # same shapes every batch: reproducible kernels
                    pad = images.new_zeros((batch_size - images.shape[0], *images.shape[1:]))
                    images = torch.cat([images, pad])
                out = encoder(images)[: len(rows)].float().cpu().numpy()
                vectors[rows[ok]] = out[ok]
                valid[rows[ok]] = True
                computed += int(ok.sum())
            progress.update(len(rows))
    progress.update(0, final=True)
    compute_rate = progress.rate
    loop_s = time.perf_counter() - progress.start
    if len(todo):
        logger.info("Waited for input %.1f s of %.1f s (%.0f%%)", waited, loop_s, 100.0 * waited / max(loop_s, 1e-9))

    table = pa.table(
        [
            manifest[KEY].combine_chunks(),
            manifest[ETAG].combine_chunks(),
            _embedding_column(vectors, valid),
            from_pylist(status.tolist(), pa.string()),
            from_pylist(reasons.tolist(), pa.string()),
        ],
        schema=embedding_schema(encoder.model_id, out_dim, encoder.input_size, manifest.schema.field(KEY).type,
                                manifest.schema.field(ETAG).type),
    )
    if extras is not None:  # frames: hash and metrics from the same decode (the metadata stage does not decode)
        for field_, array in extras.columns():
            table = table.append_column(field_, array)
    write_parquet(table, output_uri, credentials)
    counts = _counts(table, output_uri, encoder.model_id, out_dim, encoder.input_size, reused=len(reused_rows),
                     embedded=computed + len(derived), rate=compute_rate, seconds=time.perf_counter() - started,
                     device=str(torch_device))
    counts["input_wait_s"] = round(waited, 3)
    logger.info("Wrote %s: %s", output_uri, counts)
    if shard_objects is not None:  # frames the frame pass did not decode (reused) are cropped here
        counts["objects"] = shard_objects.finish()
    return counts


def _counts(table: pa.Table, output_uri: str, model_id: str, dim: int, input_size: int | None, *, reused: int,
            embedded: int, rate: float, seconds: float, device: str) -> dict[str, Any]:
    statuses = table[STATUS].to_pylist()
    return {
        "output_uri": output_uri,
        "model": model_id,
        "dim": int(dim),
        "input_size": None if input_size is None else int(input_size),
        "total": table.num_rows,
        "embedded": int(embedded),
        "reused": int(reused),
        "corrupt": statuses.count(STATUS_CORRUPT),
        "missing": statuses.count(STATUS_MISSING),
        "images_per_s": round(float(rate), 1),
        "seconds": round(float(seconds), 3),
        "device": device,
    }
