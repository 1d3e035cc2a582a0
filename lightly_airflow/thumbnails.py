"""Thumbnails: one small JPEG per sample, made once during the run, so the UI never reads full images.

The stage that already decodes every image (the metadata shard) hands each decoded picture to
:class:`ThumbnailWriter`, which shrinks it to at most :data:`MAX_SIDE` pixels and writes
``<datapool>/_thumbnails/<sample id>.jpg``. Video frames go through the same :meth:`ThumbnailWriter.add` with the
frame's sample id. A thumbnail that cannot be made or written is logged and counted, never fatal: the UI shows a
placeholder for it.

The datapool is found from the manifest shard's path (``<datapool>/_staging/<run>/manifest/shard-NNNNN.parquet``),
so the staging credentials are the datapool's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import threading
from typing import Any

from PIL import Image

from lightly_airflow.staging import datapool_of

log = logging.getLogger(__name__)

THUMBNAILS_DIR = "_thumbnails"
MAX_SIDE = 256
QUALITY = 85
#: JPEG, not WebP: at 256 px Pillow's WebP (method 4) took ~3 ms per thumbnail, JPEG ~0.1 ms, and for video
#: frames the thumbnail was the largest cost after the model (``docs/video.md``); the files are a few kB either way.
EXTENSION = "jpg"
CONTENT_TYPE = "image/jpeg"
#: Thumbnails of pools written before (WebP): read when there is no JPEG, never written.
LEGACY_FORMATS = (("webp", "image/webp"),)
#: A sample id as :func:`lightly_airflow.datapool.sample_id` makes it (also frame ids: ``<id>-f<index>``).
SAMPLE_ID_PATTERN = re.compile(r"^[0-9a-f]{32}(-f[0-9]{1,9})?$")
#: Thumbnails written per batch (one concurrent ``pipe`` call to the store).
FLUSH_EVERY = 64


def thumbnails_uri(datapool_uri: str) -> str:
    """The folder of a datapool's thumbnails."""
    return f"{datapool_uri.rstrip('/')}/{THUMBNAILS_DIR}"


def thumbnail_name(sample_id: str, extension: str = EXTENSION) -> str:
    """The file name of a sample's thumbnail; raises ``ValueError`` for anything that is not a sample id."""
    if not SAMPLE_ID_PATTERN.match(sample_id):
        raise ValueError(f"{sample_id!r} is not a sample id (32 hex digits).")
    return f"{sample_id}.{extension}"


def datapool_of_manifest(manifest_uri: str) -> str | None:
    """The datapool URI a staging manifest shard belongs to, or ``None`` when it is not under ``_staging/``
    (the staging layout is :mod:`lightly_airflow.staging`'s)."""
    return datapool_of(manifest_uri)


def manifest_thumbnails(manifest_uri: str, credentials: Any = None, uri: str | None = None) -> ThumbnailWriter | None:
    """The writer of a run's thumbnails (images in the metadata pass, video frames in the embed pass, object crops
    in the object pass): into ``uri``, by default the ``_thumbnails/`` folder of the datapool whose staging folder
    holds the manifest; ``None`` when that is ``""`` or the manifest is not in a datapool's staging folder."""
    if uri is None:
        pool = datapool_of_manifest(manifest_uri)
        uri = thumbnails_uri(pool) if pool else ""
    return ThumbnailWriter(uri, credentials) if uri else None


#: Pillow first shrinks a picture by a whole factor (box averaging) while it stays at least this many times the
#: thumbnail, then resamples (Lanczos) the rest. 1.0 instead of ``Image.thumbnail``'s 2.0: a 640 x 480 picture's
#: thumbnail took 3.65 ms (Lanczos over the whole picture: 70 % of its metadata pass), now 1.62 ms; 4032 x 3024
#: 11.9 -> 8.8 ms; the thumbnails differ from 2.0's by 43-46 dB PSNR (invisible at 256 px).
REDUCING_GAP = 1.0


def thumbnail_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The size ``Image.thumbnail((max_side, max_side))`` shrinks ``width`` x ``height`` to (its rounding: the side
    whose aspect is closest, at least 1)."""
    if width <= max_side and height <= max_side:
        return width, height
    aspect = width / height
    x = y = max_side
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(min(math.floor(x / aspect), math.ceil(x / aspect),
                    key=lambda n: 0 if n == 0 else abs(aspect - x / n)), 1)
    return x, y


def make_thumbnail(img: Image.Image, max_side: int = MAX_SIDE) -> bytes:
    """A JPEG of ``img`` (RGB or grey) shrunk to at most ``max_side`` pixels on its longer side (never enlarged).

    ``Image.thumbnail``'s result (with :data:`REDUCING_GAP`), without its copy of the full picture (it shrinks in
    place): for a 12-Mpx photo that copy was 32 of the 45 ms a thumbnail took in the metadata pass."""
    thumb = img
    size = thumbnail_size(*img.size, max_side)
    if size != img.size:
        thumb = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


class ThumbnailWriter:
    """Collects thumbnails of decoded images and writes them in batches to ``<datapool>/_thumbnails/``.

    Thread-safe: decoding threads call :meth:`add`; :meth:`close` writes what is left. Failures are counted in
    :attr:`failed` and logged once per batch.

    :param folder_uri: the thumbnails folder (:func:`thumbnails_uri`).
    :param credentials: the store's credentials.
    """

    def __init__(self, folder_uri: str, credentials: Any = None) -> None:
        from lightly_airflow.storage import filesystem, protocol_of

        self.folder_uri = folder_uri
        self._fs, self._root = filesystem(folder_uri, credentials)
        self._local = protocol_of(folder_uri) == "file"
        self._pending: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        # Object stores have no folders; a real failure shows (logged, counted) on write.
        with contextlib.suppress(Exception):
            self._fs.makedirs(self._root, exist_ok=True)

    def add(self, sample_id: str, img: Image.Image) -> None:
        """Make the thumbnail of one decoded image (in the caller's thread) and queue it for writing."""
        try:
            data = make_thumbnail(img)
            path = f"{self._root.rstrip('/')}/{thumbnail_name(sample_id)}"
        except Exception as exc:  # noqa: BLE001 - a thumbnail must never fail the stage
            log.warning("No thumbnail for sample %s: %s: %s", sample_id, type(exc).__name__, exc)
            with self._lock:
                self.failed += 1
            return
        with self._lock:
            self._pending[path] = data
            batch = self._pending if len(self._pending) >= FLUSH_EVERY else None
            if batch is not None:
                self._pending = {}
        if batch is not None:
            self._write(batch)

    def _write(self, batch: dict[str, bytes]) -> None:
        from lightly_airflow.storage import write_local

        n_ok = 0
        try:
            if self._local:  # each through a temporary file and a rename: a write killed mid-way left a cut JPEG
                for path, data in batch.items():  # under the sample's name, which the UI served as its picture
                    write_local(data, path)
                    n_ok += 1
            else:  # (one concurrent upload of the batch; each object appears whole)
                self._fs.pipe(batch)
                n_ok = len(batch)
        except Exception as exc:  # noqa: BLE001 - logged and counted; the UI shows a placeholder
            log.warning("Could not write %d thumbnails to %s: %s: %s", len(batch) - n_ok, self.folder_uri,
                        type(exc).__name__, exc)
        with self._lock:
            self.written += n_ok
            self.failed += len(batch) - n_ok

    def close(self) -> dict[str, int]:
        """Write the remaining thumbnails; returns ``{"thumbnails": written, "thumbnails_failed": failed}``."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if batch:
            self._write(batch)
        return {"thumbnails": self.written, "thumbnails_failed": self.failed}


def thumbnail_exists(datapool_uri: str, sample_id: str, credentials: Any = None) -> bool:
    """Whether the pool holds a thumbnail of the sample (in any format :func:`read_thumbnail_typed` reads), without
    reading it: one existence check per format."""
    from lightly_airflow.storage import filesystem

    fs, root = filesystem(thumbnails_uri(datapool_uri), credentials)
    return any(fs.exists(f"{root.rstrip('/')}/{thumbnail_name(sample_id, extension)}")
               for extension, _ in ((EXTENSION, CONTENT_TYPE), *LEGACY_FORMATS))


def read_thumbnail_typed(datapool_uri: str, sample_id: str, credentials: Any = None) -> tuple[bytes, str] | None:
    """The thumbnail of a sample with its content type (JPEG, or the WebP of a pool written before), or
    ``None`` when there is none (only sample-id names are ever opened)."""
    from lightly_airflow.storage import filesystem

    fs, root = filesystem(thumbnails_uri(datapool_uri), credentials)
    for extension, content_type in ((EXTENSION, CONTENT_TYPE), *LEGACY_FORMATS):
        try:
            with fs.open(f"{root.rstrip('/')}/{thumbnail_name(sample_id, extension)}", "rb") as f:
                data: bytes = f.read()
                return data, content_type
        except FileNotFoundError:
            continue
    return None


def read_thumbnail(datapool_uri: str, sample_id: str, credentials: Any = None) -> bytes | None:
    """The thumbnail bytes of a sample, or ``None`` when there is none (:func:`read_thumbnail_typed`)."""
    found = read_thumbnail_typed(datapool_uri, sample_id, credentials)
    return None if found is None else found[0]
