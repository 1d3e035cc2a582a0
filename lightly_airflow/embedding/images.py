"""Fetching and decoding images for the encoder, in DataLoader workers.

A worker receives one batch of keys, fetches their bytes (concurrently on object stores), decodes and
resizes each to ``input_size x input_size`` RGB ``uint8`` and returns the batch with a status per file.
A file that cannot be decoded is ``corrupt`` and one that does not exist is ``missing``; both carry the
reason and never fail the batch. Any other error (network, permissions) propagates so the task is retried.

Decoding is cheap on purpose: JPEGs are decoded at a reduced DCT scale (``Image.draft``) close to the
target size before the resize, which keeps the CPU free for the forward pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lightly_airflow.columns import STATUS_CORRUPT, STATUS_MISSING, STATUS_OK
from lightly_airflow.pixels import (
    bomb_reason,
    decode_problem,
    display_rgb,
    not_an_image,
    open_image,
    truncation_refused,
    upright_size,
    wrong_extension,
)
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, protocol_of


def decode_image(data: bytes, size: int, key: str | None = None) -> np.ndarray:
    """Decode an encoded image to ``(size, size, 3)`` uint8 RGB (EXIF orientation applied, first frame).

    :param data: the file's bytes.
    :param size: output side in pixels.
    :param key: the file's key: a format its extension may not hold raises :class:`WrongExtension` once the header
        is read, before any pixel is decoded (the embed pass read the header twice to check it).
    :raises Exception: whatever Pillow raises for data that is not a complete image.
    """
    return model_input(_open_rgb(data, size, fit=True, key=key)[0], size)


def model_input(img: Image.Image, size: int) -> np.ndarray:
    """A decoded RGB image as the model's ``(size, size, 3)`` uint8 input (the one resize of every pass: the image
    pass, and the object pass deriving an image's input from its full-size decode)."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.array(img, dtype=np.uint8)


def open_rgb(data: bytes, draft: int | None = None) -> Image.Image:
    """Decode an encoded image to an RGB Pillow image (EXIF orientation applied, first frame, transparency on
    white). ``draft``: JPEGs may be decoded at a reduced DCT scale, never below this side in pixels; ``None``
    decodes at full resolution (crops of objects need it: :func:`open_rgb_for_boxes`).

    :raises Exception: whatever Pillow raises for data that is not a complete image.
    """
    return _open_rgb(data, draft, fit=draft is not None)[0]


def open_rgb_for_boxes(data: bytes) -> tuple[Image.Image, tuple[int, int]]:
    """The RGB image (as :func:`open_rgb`) that boxes are cut from, and the ``(width, height)`` the boxes' pixels
    are in (the shown size, EXIF orientation applied). The decode is full size, except for a JPEG above
    ``PIL.Image.MAX_IMAGE_PIXELS``: decoded reduced as in the other passes (its full size would take ~3 bytes a
    pixel per decoding thread), its boxes scaled by :func:`lightly_airflow.pixels.scale_box`.

    :raises Exception: whatever Pillow raises for data that is not a complete image.
    """
    return _open_rgb(data, None, fit=True)


class WrongExtension(ValueError):
    """A file whose format its key's extension may not hold (:func:`lightly_airflow.pixels.wrong_extension`'s
    reason, with the fix): corrupt in the embed pass as in the metadata pass."""


def _open_rgb(
    data: bytes, draft: int | None, fit: bool, key: str | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    if not data:
        raise ValueError("empty file (0 bytes)")
    # DCT-domain downscale of JPEGs, never below the target size (and a JPEG above Pillow's pixel limit at the
    # scale that fits it); a 16-bit PNG's sBIT read
    img: Image.Image = open_image(data, draft=draft, fit=fit)
    wrong = None if key is None else wrong_extension(img.format, key)
    if wrong:
        raise WrongExtension(wrong)
    # Above the limit (what Pillow only warns about up to twice it) is refused here, not by turning the warning
    # into an error: warnings.catch_warnings is not thread-safe, and the decoding threads' enter/exit interleaved
    # left the "error" filter behind for the whole process (or lifted it while another thread decoded).
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.size[0] * img.size[1] > limit:
        raise Image.DecompressionBombError(
            f"Image size ({img.size[0] * img.size[1]} pixels) exceeds limit of {limit} pixels, could be "
            "decompression bomb DOS attack.")
    with truncation_refused():  # (reading a PNG's orientation decodes it)
        shown = upright_size(img)
        img.load()
        return display_rgb(img), shown


def _reason(exc: BaseException) -> str:
    """A stable one-line reason (no object addresses, so reruns write identical files)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", text)
    return f"{exc.__class__.__name__}: {text}"[:300]


@dataclass
class ImageBatch:
    """One decoded batch: ``images`` (B, 3, S, S) uint8, zero where ``status`` is not ``ok``."""

    rows: torch.Tensor  # int64 row numbers in the shard
    images: torch.Tensor
    ok: torch.Tensor  # bool
    status: list[str]
    reasons: list[str | None]

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader when ``pin_memory=True`` (fast, asynchronous host-to-device copies)."""
        self.images = self.images.pin_memory()
        return self


class ShardImages(torch.utils.data.Dataset[ImageBatch]):
    """The images of one manifest shard as a dataset of batches (item ``i`` = batch ``i``).

    Picklable (plain fields) so it works with ``fork`` and ``spawn`` DataLoader workers alike; the
    filesystem is created lazily in each worker.

    :param datasource_uri: root the keys are relative to.
    :param keys: keys to embed, in output order.
    :param rows: their row numbers in the shard.
    :param input_size: side in pixels.
    :param batch_size: images per item.
    :param credentials: for the datasource store (``None``: ambient).
    :param io_threads: concurrent fetches per batch (useful on object stores; 1 reads sequentially).
    """

    def __init__(
        self, datasource_uri: str, keys: Sequence[str], rows: Sequence[int], *, input_size: int, batch_size: int,
        credentials: StorageCredentials | None = None, io_threads: int | None = None,
    ) -> None:
        self.datasource_uri = datasource_uri
        self.keys = list(keys)
        self.rows = list(rows)
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.credentials = credentials
        remote = protocol_of(datasource_uri) != "file"
        self.io_threads = int(io_threads) if io_threads else (16 if remote else 1)
        self._fs: Any = None
        self._root: str | None = None

    def __len__(self) -> int:
        return (len(self.keys) + self.batch_size - 1) // self.batch_size

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fs"] = None
        state["_root"] = None
        return state

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            self._fs, self._root = filesystem(self.datasource_uri, self.credentials)
        assert self._root is not None
        return self._fs, self._root

    def _load(self, key: str) -> tuple[np.ndarray | None, str, str | None]:
        fs, root = self._filesystem()
        try:
            data = fs.cat_file(join_uri(root, key))
        except FileNotFoundError:
            return None, STATUS_MISSING, "file not found in the datasource"
        except IsADirectoryError as exc:
            return None, STATUS_CORRUPT, _reason(exc)
        except Exception as exc:  # an archived object (S3 Glacier, Azure Archive) is one file, not the shard's fault
            # (imported on the error only: the datasource package is not otherwise needed by an embed task)
            from lightly_airflow.datasource.reader import archived_read_error

            archived = archived_read_error(exc)
            if archived is None:
                raise
            return None, STATUS_MISSING, archived
        try:  # a format its extension may not hold is corrupt, as in the metadata pass (a .jpg holding a PNG)
            return decode_image(data, self.input_size, key), STATUS_OK, None
        except WrongExtension as exc:
            return None, STATUS_CORRUPT, str(exc)
        except UnidentifiedImageError:  # say what the bytes are (a saved error page, HEIC, a Git LFS pointer)
            return None, STATUS_CORRUPT, not_an_image(data)
        except Image.DecompressionBombError as exc:  # the metadata pass' words: the size, the limit, the fix
            return None, STATUS_CORRUPT, bomb_reason(data, exc)
        except Exception as exc:  # any decoder failure marks this one file, never the shard (the metadata pass' words)
            return None, STATUS_CORRUPT, decode_problem(exc)

    def __getitem__(self, index: int) -> ImageBatch:
        start = index * self.batch_size
        keys = self.keys[start : start + self.batch_size]
        if self.io_threads > 1 and len(keys) > 1:
            with ThreadPoolExecutor(min(self.io_threads, len(keys))) as pool:
                results = list(pool.map(self._load, keys))
        else:
            results = [self._load(k) for k in keys]
        size = self.input_size
        images = torch.zeros((len(keys), 3, size, size), dtype=torch.uint8)
        ok = torch.zeros(len(keys), dtype=torch.bool)
        for i, (array, _status, _) in enumerate(results):
            if array is not None:
                images[i] = torch.from_numpy(array).permute(2, 0, 1)
                ok[i] = True
        return ImageBatch(
            rows=torch.tensor(self.rows[start : start + self.batch_size], dtype=torch.int64),
            images=images,
            ok=ok,
            status=[r[1] for r in results],
            reasons=[r[2] for r in results],
        )
