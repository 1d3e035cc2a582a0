"""Pictures and predictions for the UI: thumbnails from the datapool, full images and ``.lightly`` predictions from
the datasource a run recorded.

Only two kinds of paths are ever opened: ``<datapool>/_thumbnails/<sample id>.jpg`` (``.webp`` in pools written before; the id must match the
sample-id pattern) and ``<datasource>/<key>`` / ``<datasource>/.lightly/predictions/...`` where the datasource
URI comes from the datapool's commit history and the key from the sample's stored row, never from a request;
keys with ``..``, empty or absolute segments are refused.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from typing import Any

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import LIGHTLY_DIR, PREDICTIONS_DIR, TASKS_FILE, json_relpath
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 64 * 1024 * 1024
#: A grey placeholder for a sample without a thumbnail (our own bytes: safe as SVG).
PLACEHOLDER_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="128" height="96" viewBox="0 0 128 96">'
    b'<rect width="128" height="96" fill="#9ca3af" opacity=".25"/><text x="64" y="52" font-size="11" '
    b'text-anchor="middle" fill="#6b7280" font-family="sans-serif">no thumbnail</text></svg>'
)


class MediaError(LookupError):
    """The picture or file cannot be served; the message is safe to show."""


def safe_key(key: Any) -> str:
    """The key if it is a plain relative path (no ``..``, no empty or absolute segments), else ``MediaError``."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\x00" in key:
        raise MediaError("The sample's key is not a plain relative path; its image is not served.")
    # A backslash is an ordinary character of a file name on POSIX and object stores (``sla\\sh.png`` is
    # served), but no segment between either separator may be empty, ``.`` or ``..``.
    if any(part in ("", ".", "..") for part in re.split(r"[/\\]", key)):
        raise MediaError("The sample's key is not a plain relative path; its image is not served.")
    return key


def read_image(datasource_uri: str, key: str, credentials: StorageCredentials | None) -> tuple[bytes, str, tuple[int, int]]:
    """The image as the browser should get it: ``(bytes, content type, (width, height))``."""
    from lightly_airflow.pixels import (
        BROWSER_FORMATS,
        HIGH_BIT_DEPTH_MODES,
        WIDE_COLOUR,
        browser_copy,
        open_image,
        upright_size,
    )

    fs, root = filesystem(join_uri(datasource_uri, safe_key(key)), credentials)
    try:
        info = fs.info(root)
    except FileNotFoundError:
        raise MediaError(f"The image {key!r} is no longer in the datasource.") from None
    if int(info.get("size") or 0) > MAX_IMAGE_BYTES:
        raise MediaError(f"The image {key!r} is larger than {MAX_IMAGE_BYTES} bytes.")
    with fs.open(root, "rb") as f:
        data: bytes = f.read()
    try:
        img = open_image(data, fit=True)  # a JPEG above Pillow's pixel limit is sent as it is, not refused
        size = upright_size(img)
        fmt = img.format or ""
        # Browsers turn them by their EXIF orientation themselves; a 16-bit PNG they would show by its high bytes
        # (12-bit camera data nearly black), so it is converted as the passes see it.
        if fmt in BROWSER_FORMATS and img.mode not in HIGH_BIT_DEPTH_MODES and WIDE_COLOUR not in img.info:
            return data, BROWSER_FORMATS[fmt], size
        copy, kind = browser_copy(img)  # (HEIC, AVIF as JPEG; TIFF, 16-bit PNG as PNG)
        return copy, kind, size
    except Exception as exc:  # noqa: BLE001 - corrupt files are samples too
        raise MediaError(f"The image {key!r} cannot be decoded: {type(exc).__name__}.") from None


def image_size(datasource_uri: str, key: str, credentials: StorageCredentials | None) -> tuple[int, int] | None:
    """Width and height as the image is shown (EXIF orientation applied: a browser draws a phone photo upright, and
    predicted boxes are in those pixels), from the header (``None`` when it cannot be read)."""
    from PIL import Image, JpegImagePlugin, UnidentifiedImageError

    from lightly_airflow.pixels import open_image, upright_size

    try:
        fs, root = filesystem(join_uri(datasource_uri, safe_key(key)), credentials)
        with fs.open(root, "rb") as f:
            try:
                return upright_size(Image.open(f))
            except Image.DecompressionBombError:  # a JPEG above the pixel limit is shown (reduced), so is its size
                f.seek(0)
                return upright_size(JpegImagePlugin.jpeg_factory(f))
            except (UnidentifiedImageError, ValueError):  # a PNG Pillow refuses over its colour profile (open_image)
                f.seek(0)
                return upright_size(open_image(f.read()))
    except Exception:  # noqa: BLE001 - no size: boxes are not drawn, the page says so
        return None


def read_predictions(datasource_uri: str, key: str, credentials: StorageCredentials | None) -> list[dict[str, Any]]:
    """Every predicted box of the sample in ``<datasource>/.lightly/predictions``: ``{task, category, score, bbox}``.

    Classification tasks have no boxes (their class distribution is a stored column). Unreadable files give an
    empty list (the select run reported them in its problems file).
    """
    import json

    safe_key(key)
    root = join_uri(datasource_uri, LIGHTLY_DIR)
    fs, base = filesystem(root, credentials)
    try:
        with fs.open(f"{base}/{TASKS_FILE}", "rb") as f:
            tasks = json.loads(f.read())
    except Exception:  # noqa: BLE001 - no predictions
        return []
    boxes: list[dict[str, Any]] = []
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, str) or "/" in task or task in ("", ".", ".."):
            continue
        names: dict[int, str] = {}
        try:
            with fs.open(f"{base}/{PREDICTIONS_DIR}/{task}/schema.json", "rb") as f:
                schema = json.loads(f.read())
            names = {int(c["id"]): str(c["name"]) for c in schema.get("categories", [])}
        except Exception:  # noqa: BLE001 - ids are shown instead of names
            pass
        try:
            with fs.open(f"{base}/{json_relpath(f'{PREDICTIONS_DIR}/{task}', key)}", "rb") as f:
                obj = json.loads(f.read())
        except Exception:  # noqa: BLE001 - no prediction file for this sample
            continue
        for pred in obj.get("predictions", []) if isinstance(obj, dict) else []:
            bbox = pred.get("bbox") if isinstance(pred, dict) else None
            if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
                cid = pred.get("category_id")
                boxes.append({
                    "task": task, "category": names.get(cid, str(cid)), "category_id": cid,
                    "score": pred.get("score"), "bbox": [float(v) for v in bbox],
                })
    return boxes


def is_frame(row: Mapping[str, Any] | None) -> bool:
    """Whether ``row`` is a video frame (no file of the datasource: its picture is decoded from its video)."""
    return bool(row) and row.get(C.VIDEO) is not None and row.get(C.FRAME_INDEX) is not None  # type: ignore[union-attr]


def frame_size(row: Mapping[str, Any]) -> tuple[int, int] | None:
    """A frame's width and height as shown (its ``lightly.width/height``: computed on the upright frame)."""
    w, h = row.get(C.lightly_metadata_column("width")), row.get(C.lightly_metadata_column("height"))
    return (int(w), int(h)) if w and h else None


def read_frame(datasource_uri: str, row: Mapping[str, Any], credentials: StorageCredentials | None) -> bytes:
    """A video frame's picture as PNG (``video.export.frame_png``: the run's PNG of a selected frame, else decoded
    from its video now)."""
    from lightly_airflow.video.export import frame_png

    for name in (C.KEY, C.VIDEO):
        safe_key(row.get(name))
    try:
        return frame_png(datasource_uri, dict(row), credentials=credentials)
    except FileNotFoundError:
        raise MediaError(f"The video {row.get(C.VIDEO)!r} is no longer in the datasource.") from None
    except ValueError as exc:
        raise MediaError(f"{exc}.") from None


def read_crop(
    datasource_uri: str, parent_key: str, crop_box: Any, credentials: StorageCredentials | None,
    parent: Mapping[str, Any] | None = None,
) -> bytes:
    """An object's crop as PNG: its stored box (``object_crop_box``, padded, integer pixels) cut from its image (or
    from its video frame: ``parent`` is the frame's row)."""
    from lightly_airflow.pixels import display_rgb, open_image, scale_box, upright_size

    try:
        x, y, w, h = (int(v) for v in crop_box)
    except (TypeError, ValueError):
        raise MediaError("The object has no crop box, so its crop cannot be shown.") from None
    if parent is not None and is_frame(parent):
        data = read_frame(datasource_uri, parent, credentials)
    else:
        data, _, _ = read_image(datasource_uri, parent_key, credentials)
    try:  # read_image sends a browser's format undecoded: a truncated PNG or JPEG fails only here
        opened = open_image(data, fit=True)  # a JPEG above Pillow's pixel limit: reduced, as the object pass cut it
        img = display_rgb(opened)  # the pixels the crop box was cut from (upright, …)
        x, y, w, h = scale_box((x, y, w, h), img.size, upright_size(opened))
        out = io.BytesIO()
        img.crop((x, y, x + w, y + h)).save(out, format="PNG")
    except Exception as exc:  # noqa: BLE001 - corrupt files are samples too
        raise MediaError(f"The image {parent_key!r} of this object cannot be decoded: {type(exc).__name__}: "
                         f"{exc}.") from None
    return out.getvalue()


#: Video containers a browser's ``<video>`` plays (with their usual codecs: H.264/HEVC/AV1 in MP4 and QuickTime,
#: VP8/VP9/AV1 in WebM), by extension; other videos (AVI, MKV, MPEG-TS, AVCHD …) get no player, only the frame.
PLAYABLE_VIDEOS = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4", ".webm": "video/webm"}
#: The most bytes one ranged answer carries: the browser asks again from where it stopped (seeking reads little).
VIDEO_CHUNK = 4 * 1024 * 1024


def playable_video(key: Any) -> str | None:
    """The content type a browser plays ``key`` as, or ``None`` (not a container browsers play)."""
    name = str(key or "").lower()
    return next((t for ext, t in PLAYABLE_VIDEOS.items() if name.endswith(ext)), None)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first range of an HTTP ``Range: bytes=…`` header as ``(start, end)`` (inclusive) within a file of
    ``size`` bytes, at most :data:`VIDEO_CHUNK` long; ``None`` without a header (the whole file).

    :raises ValueError: a range that is malformed or starts past the end (the answer is 416)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    first = spec.split(",")[0].strip()
    lo, dash, hi = first.partition("-")
    if unit.strip().lower() != "bytes" or not dash or not (lo.strip() or hi.strip()):
        raise ValueError(f"unsupported Range {header!r}")
    try:
        if lo.strip():
            start = int(lo)
            end = int(hi) if hi.strip() else size - 1
        else:  # "-N": the last N bytes
            start, end = max(size - int(hi), 0), size - 1
    except ValueError:
        raise ValueError(f"unsupported Range {header!r}") from None
    if start < 0 or start >= size or end < start:
        raise ValueError(f"Range {header!r} is outside the file's {size} bytes")
    return start, min(end, size - 1, start + VIDEO_CHUNK - 1)


def open_video(datasource_uri: str, key: str, credentials: StorageCredentials | None) -> tuple[Any, str, int]:
    """The video file ``key`` of the datasource (as it is there now) for the UI's player: ``(fs, path, size)``.

    :raises MediaError: the key is not a plain path, not a video browsers play, or the file is gone."""
    if playable_video(key) is None:
        raise MediaError(f"Browsers do not play {key!r}: only {', '.join(sorted(PLAYABLE_VIDEOS))} videos are served.")
    fs, path = filesystem(join_uri(datasource_uri, safe_key(key)), credentials)
    try:
        size = int(fs.size(path))
    except FileNotFoundError:
        raise MediaError(f"The video {key!r} is no longer in the datasource.") from None
    return fs, path, size
