"""Pictures and predictions for the UI: thumbnails from the datapool, full images and ``.lightly`` predictions from
the datasource a run recorded.

Only two kinds of paths are ever opened: ``<datapool>/_thumbnails/<sample id>.jpg`` (``.webp`` in pools written before; the id must match the
sample-id pattern) and ``<datasource>/<key>`` / ``<datasource>/.lightly/predictions/...`` where the datasource
URI comes from the datapool's commit history and the key from the sample's stored row, never from a request;
keys with ``..``, empty or absolute segments are refused.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import LIGHTLY_DIR, PREDICTIONS_DIR, TASKS_FILE, json_relpath
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, protocol_of

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


#: :class:`ContentState` states: the file at the key is the content the row was computed from, another content,
#: no longer there, or it could not be told (a store error, no recorded etag).
SAME, CHANGED, GONE, UNKNOWN = "same", "changed", "gone", "unknown"
#: The answer header of ``…/image`` and ``…/video`` when the bytes served are not the content the row describes:
#: ``1`` (with :data:`RECORDED_HEADER` and :data:`CURRENT_HEADER`), or ``unknown`` when that could not be checked.
CHANGED_HEADER = "X-Lightly-Content-Changed"
RECORDED_HEADER = "X-Lightly-Recorded-Etag"
CURRENT_HEADER = "X-Lightly-Current-Etag"
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,256}$")


@dataclass(frozen=True)
class ContentState:
    """The file a sample's pictures come from (``key``: its image, its video, an object's image) now, against the
    content identity its row recorded (``columns.ETAG``, as the datasource listing computes it)."""

    key: str
    state: str
    recorded: str | None = None
    current: str | None = None
    reason: str = ""  # why the state is UNKNOWN

    def headers(self) -> dict[str, str]:
        """The answer headers of the bytes served from this file: none when they are the row's content."""
        if self.state == CHANGED:
            out = {CHANGED_HEADER: "1"}
            for name, value in ((RECORDED_HEADER, self.recorded), (CURRENT_HEADER, self.current)):
                if value and _HEADER_SAFE.match(value):
                    out[name] = value
            return out
        return {CHANGED_HEADER: "unknown"} if self.state == UNKNOWN else {}

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "state": self.state, "recorded_etag": self.recorded, "current_etag": self.current,
                "reason": self.reason or None}


#: Part of every media answer's entity tag: raised when the bytes answered for the same file change (another crop
#: padding, another conversion), so that browsers' copies made before are not taken as current.
MEDIA_ETAG_VERSION = "1"


class NotModified(Exception):  # noqa: N818 - the HTTP status it stands for
    """The browser's copy of a media answer is current (its ``If-None-Match`` names ``etag``): raised by the
    ``not_modified`` hook of :func:`read_image`, :func:`read_frame`, :func:`read_crop` before any of the file's
    bytes are read; ``state``: the file's :class:`ContentState` (its headers go on the 304 answer too)."""

    def __init__(self, etag: str, state: ContentState) -> None:
        super().__init__(etag)
        self.etag, self.state = etag, state


def media_etag(state: ContentState | None, *parts: Any, weak: bool = True) -> str | None:
    """The HTTP entity tag of a media answer (``…/image``, ``…/video``) made from the file ``state`` describes: a
    digest of the content identity it has now (``state.current``: the etag the datasource listing computes, from the
    metadata the read needs anyway), the row's recorded etag (which decides the ``X-Lightly-Content-Changed``
    headers) and ``parts`` (what else the bytes depend on: a crop box, a frame index). ``None`` when the file's
    identity is not known (gone, a store error): such an answer is not revalidated, the browser asks again.

    :param weak: ``W/"…"`` for answers whose bytes are made from the file (a crop, a decoded frame, a browser
        copy: the same picture, not necessarily the same bytes); strong for the file's own bytes (a video, whose
        ranged answers ``If-Range`` compares)."""
    if state is None or not state.current:
        return None
    text = "\x1f".join("" if p is None else str(p)
                       for p in (MEDIA_ETAG_VERSION, state.key, state.current, state.recorded, *parts))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f'W/"{digest}"' if weak else f'"{digest}"'


def etag_matches(if_none_match: str | None, etag: str | None) -> bool:
    """Whether a request's ``If-None-Match`` names ``etag`` (the weak comparison of RFC 9110 13.1.2: ``W/`` is
    ignored; ``*`` matches any current file)."""
    if not if_none_match or not etag:
        return False
    if if_none_match.strip() == "*":
        return True
    want = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == want for tag in if_none_match.split(","))


#: The hook the readers call with the file's :class:`ContentState` just before they read its bytes; it raises
#: :class:`NotModified` when the browser's copy is current.
NotModifiedHook = Callable[[ContentState], None]


def content_file(row: Mapping[str, Any], parent: Mapping[str, Any] | None = None) -> tuple[str, bool]:
    """The datasource file a row's pictures come from and whether it is a video: an image's own key, a frame's
    video, an object's image (``parent``: its image's row, when the version holds it) or its frame's video."""
    if row.get(C.PARENT_KEY) is not None:
        if parent is not None and is_frame(parent):
            return str(parent[C.VIDEO]), True
        return str(row[C.PARENT_KEY]), False
    if is_frame(row):
        return str(row[C.VIDEO]), True
    return str(row.get(C.KEY) or ""), False


def current_etag(protocol: str, fs: Any, path: str, info: Mapping[str, Any] | None = None) -> str:
    """The content identity of the file at ``path`` now, as the datasource listing records it
    (:mod:`lightly_airflow.datasource.listing`): from one metadata call on an object store (``info``, when the
    caller has it already: no request at all), locally the listing's own SHA-256 and its in-process cache keyed
    by (path, size, mtime, ctime, inode) (a file hashed once, by the listing or an earlier view, is not read again).

    :raises FileNotFoundError: the file is gone.
    :raises OSError: (or the store's error) the identity cannot be read.
    """
    from lightly_airflow.datasource import listing

    if protocol == "file":
        real = os.path.realpath(path)  # the listing hashes a symlink's target (it opens without following links)
        st = os.stat(real)
        etag = listing.local_etag((real, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        if etag is None:
            if not os.path.exists(real):
                raise FileNotFoundError(path)
            raise OSError(f"{path} could not be read to hash it")
        return etag
    meta = info if info is not None else file_info(fs, path)
    if protocol == "s3":
        value = meta.get("ETag") or meta.get("etag")
        if not value:
            raise OSError("the store answered without an ETag")
        return str(value).strip('"')
    if protocol == "gs":
        return listing.gcs_etag(dict(meta))
    if protocol == "az":
        from types import SimpleNamespace

        if meta.get("etag") is None:
            raise OSError("the store answered without an ETag")
        return listing.azure_etag(SimpleNamespace(content_settings=meta.get("content_settings"), etag=meta["etag"]))
    raise OSError(f"no content identity for {protocol!r} files")


def file_info(fs: Any, path: str) -> dict[str, Any]:
    """The file's metadata from the store itself (``refresh``: never an entry of a cached listing, which would
    hide a replaced file). :raises FileNotFoundError: the file is gone."""
    info: dict[str, Any] = fs.info(path, refresh=True)
    return info


def content_state(
    datasource_uri: str, key: str, recorded: Any, credentials: StorageCredentials | None, *,
    fs: Any = None, path: str | None = None, info: Mapping[str, Any] | None = None,
) -> ContentState:
    """Whether the file ``key`` of the datasource is still the content ``recorded`` (the row's etag) describes.
    ``fs``/``path``/``info``: the file's filesystem and the metadata the caller already read (no second request).
    Never raises: a failure to check is logged and is the state :data:`UNKNOWN` with its reason."""
    recorded = None if recorded is None or recorded == "" else str(recorded)
    try:
        if fs is None or path is None:
            fs, path = filesystem(join_uri(datasource_uri, safe_key(key)), credentials)
        if recorded is None:
            reason = "its row records no content identity (etag) to compare with"
            log.warning("Cannot tell whether %s/%s changed: %s", datasource_uri, key, reason)
            current = None
            if info is not None:  # a media answer: its identity still names the bytes served (its entity tag)
                try:
                    current = current_etag(protocol_of(datasource_uri), fs, path, info)
                except Exception:  # noqa: BLE001 - without it the answer is not revalidated, only sent again
                    current = None
            return ContentState(key, UNKNOWN, current=current, reason=reason)
        now = current_etag(protocol_of(datasource_uri), fs, path, info)
    except FileNotFoundError:
        return ContentState(key, GONE, recorded)
    except Exception as exc:  # noqa: BLE001 - the page is shown anyway, saying the check failed
        reason = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("Cannot tell whether %s/%s is the content its sample was computed from: %s", datasource_uri,
                    key, reason)
        return ContentState(key, UNKNOWN, recorded, reason=reason)
    if now != recorded:
        log.info("%s/%s changed after its sample was processed: recorded etag %s, now %s", datasource_uri, key,
                 recorded, now)
        return ContentState(key, CHANGED, recorded, now)
    return ContentState(key, SAME, recorded, now)


def safe_key(key: Any) -> str:
    """The key if it is a plain relative path (no ``..``, no empty or absolute segments), else ``MediaError``."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\x00" in key:
        raise MediaError("The sample's key is not a plain relative path; its image is not served.")
    # A backslash is an ordinary character of a file name on POSIX and object stores (``sla\\sh.png`` is
    # served), but no segment between either separator may be empty, ``.`` or ``..``.
    if any(part in ("", ".", "..") for part in re.split(r"[/\\]", key)):
        raise MediaError("The sample's key is not a plain relative path; its image is not served.")
    return key


def read_image(
    datasource_uri: str, key: str, credentials: StorageCredentials | None, *, recorded: Any = None,
    check: list[ContentState] | None = None, not_modified: NotModifiedHook | None = None,
) -> tuple[bytes, str, tuple[int, int]]:
    """The image as the browser should get it: ``(bytes, content type, (width, height))``.

    :param check: receives the file's :class:`ContentState` against ``recorded`` (the row's etag), from the same
        metadata read that sizes the file (no extra request).
    :param not_modified: called with that state before the file's bytes are read (:data:`NotModifiedHook`: it
        raises :class:`NotModified` when the browser's copy is current)."""
    from lightly_airflow.pixels import (
        BROWSER_FORMATS,
        HIGH_BIT_DEPTH_MODES,
        WIDE_COLOUR,
        browser_copy,
        open_image,
        orientation_only_in_xmp,
        upright_size,
    )

    fs, root = filesystem(join_uri(datasource_uri, safe_key(key)), credentials)
    try:
        info = file_info(fs, root)
    except FileNotFoundError:
        raise MediaError(f"The image {key!r} is no longer in the datasource.") from None
    if check is not None or not_modified is not None:
        state = content_state(datasource_uri, key, recorded, credentials, fs=fs, path=root, info=info)
        if check is not None:
            check.append(state)
        if not_modified is not None:
            not_modified(state)
    if int(info.get("size") or 0) > MAX_IMAGE_BYTES:
        raise MediaError(f"The image {key!r} is larger than {MAX_IMAGE_BYTES} bytes.")
    with fs.open(root, "rb") as f:
        data: bytes = f.read()
    try:
        img = open_image(data, fit=True)  # a JPEG above Pillow's pixel limit is sent as it is, not refused
        size = upright_size(img)
        fmt = img.format or ""
        # Browsers turn them by their EXIF orientation themselves, not by an orientation an XMP packet alone gives
        # (which the passes and the size above follow); a 16-bit PNG they would show by its high bytes (12-bit
        # camera data nearly black): those are converted as the passes see them.
        if (fmt in BROWSER_FORMATS and img.mode not in HIGH_BIT_DEPTH_MODES and WIDE_COLOUR not in img.info
                and not orientation_only_in_xmp(img)):
            return data, BROWSER_FORMATS[fmt], size
        copy, kind = browser_copy(img)  # (HEIC, AVIF as JPEG; TIFF, 16-bit PNG as PNG)
        return copy, kind, size
    except Exception as exc:  # noqa: BLE001 - corrupt files are samples too
        # (the error's text too: "OSError" alone does not say "image file is truncated")
        raise MediaError(f"The image {key!r} cannot be decoded: {type(exc).__name__}: {exc}.") from None


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


def read_frame(
    datasource_uri: str, row: Mapping[str, Any], credentials: StorageCredentials | None,
    check: list[ContentState] | None = None, not_modified: NotModifiedHook | None = None,
) -> bytes:
    """A video frame's picture as PNG (``video.export.frame_png``: the run's PNG of a selected frame, else decoded
    from its video now).

    :param check: receives the :class:`ContentState` of what was served: the run's PNG of this video version is the
        frame the row describes (:data:`SAME`, its ``current`` the row's etag: nothing read), a frame decoded now
        is checked against the video.
    :param not_modified: called first with the state the picture would have (:func:`frame_state`: the stored PNG's
        first bytes, else the video's metadata), before the PNG is read or a frame decoded; it raises
        :class:`NotModified` when the browser's copy is current."""
    from lightly_airflow.video.export import frame_png

    for name in (C.KEY, C.VIDEO):
        safe_key(row.get(name))
    if not_modified is not None:
        not_modified(frame_state(datasource_uri, row, credentials))
    try:
        origin: list[str] = []
        data = frame_png(datasource_uri, dict(row), credentials=credentials, origin=origin)
        if check is not None:
            video, etag = str(row[C.VIDEO]), row.get(C.ETAG)
            check.append(_stored(video, etag) if origin == ["stored"]
                         else content_state(datasource_uri, video, etag, credentials))
        return data
    except FileNotFoundError:
        raise MediaError(f"The video {row.get(C.VIDEO)!r} is no longer in the datasource.") from None
    except ValueError as exc:
        raise MediaError(f"{exc}.") from None


def _stored(video: str, etag: Any) -> ContentState:
    """The state of a frame served from its run's stored PNG: the processed version of the video (the content the
    row describes, its identity the row's etag) whatever the video is now."""
    recorded = None if etag is None or etag == "" else str(etag)
    return ContentState(video, SAME, recorded, recorded)


def frame_state(datasource_uri: str, row: Mapping[str, Any], credentials: StorageCredentials | None) -> ContentState:
    """The :class:`ContentState` a frame's picture (:func:`read_frame`) has, without reading the picture: the run's
    stored PNG shows the row's video version when its first bytes record the row's etag (one small ranged read),
    else the frame is decoded from the video as it is now (its metadata: one HEAD, locally a stat)."""
    from lightly_airflow.video.export import stored_frame_etag

    video, etag = str(row[C.VIDEO]), row.get(C.ETAG)
    try:
        stored = stored_frame_etag(datasource_uri, str(row[C.KEY]), credentials)
    except Exception as exc:  # noqa: BLE001 - frame_png decodes the frame then; its state is the video's
        log.info("Cannot read the stored PNG of frame %s: %s", row.get(C.KEY), exc)
        stored = False
    if stored is not False and stored == ("" if etag is None else str(etag)):
        return _stored(video, etag)
    return content_state(datasource_uri, video, etag, credentials)


def read_crop(
    datasource_uri: str, parent_key: str, crop_box: Any, credentials: StorageCredentials | None,
    parent: Mapping[str, Any] | None = None, *, recorded: Any = None, check: list[ContentState] | None = None,
    not_modified: NotModifiedHook | None = None,
) -> bytes:
    """An object's crop as PNG: its stored box (``object_crop_box``, padded, integer pixels) cut from its image (or
    from its video frame: ``parent`` is the frame's row). ``check`` and ``not_modified``: as :func:`read_image`
    (``recorded``: the object row's etag, its image's) and :func:`read_frame`."""
    from lightly_airflow.pixels import display_rgb, open_image, scale_box, upright_size

    try:
        x, y, w, h = (int(v) for v in crop_box)
    except (TypeError, ValueError):
        raise MediaError("The object has no crop box, so its crop cannot be shown.") from None
    if parent is not None and is_frame(parent):
        data = read_frame(datasource_uri, parent, credentials, check, not_modified)
    else:
        data, _, _ = read_image(datasource_uri, parent_key, credentials, recorded=recorded, check=check,
                                not_modified=not_modified)
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


def open_video(
    datasource_uri: str, key: str, credentials: StorageCredentials | None, *, recorded: Any = None,
    check: list[ContentState] | None = None, described: bool = True,
) -> tuple[Any, str, int]:
    """The video file ``key`` of the datasource (as it is there now) for the UI's player: ``(fs, path, size)``.
    ``check``: receives its :class:`ContentState` against ``recorded`` from the same metadata read; for a file no
    row describes (``described=False``: a Live Photo's clip, :func:`live_photo_clip`) the state is :data:`SAME`
    with the file's identity now (its answers' entity tag), no ``X-Lightly-Content-Changed`` headers.

    :raises MediaError: the key is not a plain path, not a video browsers play, or the file is gone."""
    if playable_video(key) is None:
        raise MediaError(f"Browsers do not play {key!r}: only {', '.join(sorted(PLAYABLE_VIDEOS))} videos are served.")
    fs, path = filesystem(join_uri(datasource_uri, safe_key(key)), credentials)
    try:
        info = file_info(fs, path)
    except FileNotFoundError:
        raise MediaError(f"The video {key!r} is no longer in the datasource.") from None
    if check is not None and described:
        check.append(content_state(datasource_uri, key, recorded, credentials, fs=fs, path=path, info=info))
    elif check is not None:
        try:
            current: str | None = current_etag(protocol_of(datasource_uri), fs, path, info)
        except Exception as exc:  # noqa: BLE001 - its answers are not revalidated then, only sent again
            log.info("No content identity for %s/%s: %s", datasource_uri, key, exc)
            current = None
        check.append(ContentState(key, SAME, current=current))
    return fs, path, int(info.get("size") or 0)


_LIVE_DENIED: set[str] = set()  # datasources whose clip checks were refused (logged once each)


@dataclass(frozen=True)
class LiveClip:
    """What :func:`live_photo_clip` found beside a photo: the clip's key (``None``: no clip) or, when a candidate
    name could not be checked and no clip was found, why (``error``, safe to show)."""

    key: str | None = None
    error: str | None = None


def live_clip_names(key: str) -> list[str]:
    """The names a Live Photo clip of the photo ``key`` can have, in the order they are checked: the photo's
    name with each clip extension that goes with its own (:data:`~lightly_airflow.datasource.live_photos.CLIP_EXTENSIONS`:
    ``.MOV`` beside a HEIC/HEIF or JPEG, ``.MP4`` beside a HEIC/HEIF only), upper case (Apple's, Google
    Takeout's) then lower case."""
    from lightly_airflow.datasource.live_photos import CLIP_EXTENSIONS

    stem, dot, ext = key.rpartition(".")
    if not dot or not stem or stem.endswith("/"):
        return []
    return [f"{stem}.{case(clip)}" for clip, photos in CLIP_EXTENSIONS.items() if ext.lower() in photos
            for case in (str.upper, str.lower)]


def live_photo_clip(datasource_uri: str, key: str, credentials: StorageCredentials | None) -> LiveClip:
    """The Live Photo clip beside the photo ``key`` of the datasource, by the listing's own rule
    (:func:`lightly_airflow.datasource.live_photos.live_photo_clips`) applied to the photo and each name of
    :func:`live_clip_names` the datasource holds: one metadata call per name (its size), up to the first clip.
    Never raises: a check that fails (not a missing file) is logged and, when no clip is found, the answer's
    ``error``; a refused one (403: S3 without ``s3:ListBucket`` refuses every missing key) is no clip, logged once
    per datasource (not an inactive control on every photo's page)."""
    import pyarrow as pa

    from lightly_airflow.datasource.live_photos import live_photo_clips

    try:
        names = live_clip_names(safe_key(key))
    except MediaError:
        return LiveClip()
    errors: list[str] = []
    for name in names:
        try:
            fs, path = filesystem(join_uri(datasource_uri, name), credentials)
            size = int(file_info(fs, path).get("size") or 0)
        except FileNotFoundError:
            continue
        except PermissionError as exc:  # (S3 without s3:ListBucket answers 403 for a missing key: every photo's)
            if datasource_uri not in _LIVE_DENIED:
                _LIVE_DENIED.add(datasource_uri)
                log.warning("Live Photo clips are not looked for in %s: checking %s was refused (%s). S3 answers 403 "
                            "instead of 404 for a missing key without the s3:ListBucket permission; grant it to the "
                            "UI's connection to see Live Photo clips. Logged once.", datasource_uri, name, exc)
            return LiveClip()
        except Exception as exc:  # noqa: BLE001 - the photo is shown anyway; the control says why there is no clip
            log.warning("Cannot check for the Live Photo clip %s/%s: %s: %s", datasource_uri, name,
                        type(exc).__name__, exc)
            errors.append(f"{name}: {type(exc).__name__}: {exc}"[:200])
            continue
        listing = pa.table({C.KEY: [key, name], C.SIZE: pa.array([0, size], pa.int64())})
        if live_photo_clips(listing, examples=0).mask[1].as_py():
            return LiveClip(name)
    return LiveClip(error="; ".join(errors) or None)
