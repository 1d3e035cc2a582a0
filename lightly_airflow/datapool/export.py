"""Hand a tag to a labelling tool: one module the CLI and the UI plugin share.

:func:`export_records` reads a tag's samples in pick order as :class:`ExportRecord` (the exact key and its
URI); :data:`FORMATS` turns records into a document: ``list`` (one URI per line), ``csv``, ``label-studio``
(tasks JSON), ``coco`` (a COCO ``images`` skeleton that object exports extend), ``filenames`` (Lightly's file
names: one key per line) and ``labelbox`` (Lightly's Labelbox v4 data rows). A new format is one function added
with :func:`register_format`.

Keys are file names from the datasource and may hold anything a file system allows: a newline, ``%2e%2e``,
``?``, ``#``, spaces, ``+``, quotes, non-ASCII. :func:`key_uri` is the one place a key becomes a URI, in the form
the consumers of each store read:

- **Object stores** (``s3://``, ``gs://``, ``az://``, ``abfs://`` …: :data:`OBJECT_STORE_SCHEMES`): the raw key,
  ``s3://bucket/imgs/city/frame 11.jpg``. Their tools take everything after ``<scheme>://<bucket>/`` as the key
  and never percent-decode it: s3fs/gcsfs/adlfs, ``pyarrow.fs.S3FileSystem`` given ``bucket/key``, boto3, the
  AWS CLI, and Label Studio's S3/GCS/Azure storages (its synced tasks are ``s3://<bucket>/<key>`` as listed; it
  presigns ``urlparse(uri, allow_fragments=False).path`` as the key, undecoded). An encoded key
  (``frame%2011.jpg``) names another object there. The Label Studio format writes the scheme its storages
  resolve (:func:`label_studio_uri`: ``azure-blob://`` for Azure, ``gs://``, ``s3://``); the others keep ours.
- **Local files** (``file://``, RFC 8089) and relative references (no datasource): percent-encoded as UTF-8
  (``quote(key, safe="/")``): a browser, ``urllib.request.url2pathname`` and every URI parser decode them.

A URI never adds a line to the ``list`` format: encoded URIs hold no line break, and a raw object-store key
with one is refused there (:func:`to_list`, naming the key; the CSV and JSON formats quote it). Keys with empty,
``.`` or ``..`` segments (never produced by listing) are refused. :func:`uri_key` gives back the exact key, and
:func:`uri_location` the file an exported URI names, on every store.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.datapool.errors import DatapoolError
from lightly_airflow.datapool.pool import Datapool
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.datapool.snapshot import Snapshot
from lightly_airflow.storage import StorageCredentials, place_key

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class ExportRecord:
    """One exported sample: the exact datasource ``key`` and its ``uri`` (:func:`key_uri`)."""

    key: str
    uri: str
    sample_id: str | None
    run_id: str | None
    pick_rank: int | None
    #: the picture's size as shown (``metadata.lightly.width/height``: upright; None where the pool has none)
    width: int | None = None
    height: int | None = None
    #: a video frame's video (its key in the datasource), index, pts (stream time base) and seconds; None for images
    video: str | None = None
    frame_index: int | None = None
    frame_pts: int | None = None
    frame_seconds: float | None = None


#: The :class:`ExportRecord` fields only a video frame has (Label Studio's ``meta`` carries them for frames only).
FRAME_FIELDS = ("video", "frame_index", "frame_pts", "frame_seconds")


def check_key(key: str) -> str:
    """``key`` if it is a relative path without empty, ``.`` or ``..`` segments; else :class:`DatapoolError`."""
    if not isinstance(key, str) or not key or key.startswith("/"):
        raise DatapoolError(f"Key {key!r} is not a relative file name; it cannot be exported.")
    parts = key.split("/")
    if "" in parts or "." in parts or ".." in parts:  # (list scans, not a generator: 50,000 keys 0.5 -> 0.05 s)
        raise DatapoolError(f"Key {key!r} has an empty, '.' or '..' segment; it cannot be exported.")
    return key


#: URI schemes of object stores (bucket or container, then the object's key): :func:`key_uri` writes their keys raw.
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})


def raw_keys(root: str | None) -> bool:
    """Whether URIs under ``root`` carry keys as they are (an object store), not percent-encoded."""
    return root is not None and root.partition("://")[0].lower() in OBJECT_STORE_SCHEMES


def root_uri(datasource_uri: str) -> str:
    """The datasource root as a URI prefix ending in ``/``: a local path or ``file://`` URI becomes ``file:///…``
    normalised as it is read (``/x/./y`` is ``file:///x/y/``: :func:`~lightly_airflow.storage.place`) and
    percent-encoded (RFC 8089); an object store's folder stays as its run spelled it (its keys are raw,
    :func:`key_uri`). Two roots are compared by :func:`~lightly_airflow.storage.place_key`, not by this spelling."""
    root = str(datasource_uri)
    if "://" not in root and not root.startswith("/"):
        raise DatapoolError(f"Datasource {root!r} is a relative path; pass an absolute path or a URI.")
    where = place_key(root)
    if where.startswith("file://"):
        return "file://" + quote(where[len("file://"):].rstrip("/"), safe="/") + "/"
    scheme, _, rest = root.partition("://")
    netloc, _, path = rest.partition("/")  # the bucket/host stays; the folder path is written like keys
    path = path.strip("/")
    if not path:
        return f"{scheme}://{netloc}/"
    return f"{scheme}://{netloc}/" + (path if raw_keys(root) else quote(path, safe="/")) + "/"


def key_uri(root: str | None, key: str) -> str:
    """The URI of ``key`` under ``root`` (a URI prefix from :func:`root_uri`), the one place exports make one: on
    an object store the raw key (what its tools read), else percent-encoded (``file://``, RFC 8089); without a
    root, the encoded key itself (a relative URI reference)."""
    key = check_key(key)
    if raw_keys(root):
        return f"{root}{key}"
    encoded = key if _QUOTED_AS_IS(key) else quote(key, safe="/")
    return encoded if root is None else root + encoded


#: Whether ``quote(key, safe="/")`` is ``key`` itself (its always-safe characters and ``/``): one regex match, where
#: ``quote`` encodes and strips bytes (50,000 keys: 0.4 -> 0.03 s of a CSV export's 2 s, 2026-12-07).
_QUOTED_AS_IS = re.compile(r"[A-Za-z0-9_.~/-]*").fullmatch


def uri_key(root: str | None, uri: str) -> str:
    """The key back from :func:`key_uri` (what a consumer does: strip the root; decode the path of a ``file://``
    or relative URI, take an object store's as it is)."""
    if root is not None:
        if not uri.startswith(root):
            raise DatapoolError(f"{uri!r} is not under {root!r}.")
        uri = uri[len(root):]
        if raw_keys(root):
            return uri
    if urlsplit(uri).query or urlsplit(uri).fragment:
        raise DatapoolError(f"{uri!r} has a query or fragment: not an exported key.")
    return unquote(uri)


def uri_location(uri: str, credentials: StorageCredentials | None = None) -> tuple[Any, str] | None:
    """The filesystem and in-store path of the file an exported URI names (``None`` for a relative URI): an
    object store's key as it is (``?``, ``#`` and ``%`` included), a ``file://`` URI's path decoded
    (``url2pathname``)."""
    from lightly_airflow.storage import filesystem

    scheme, sep, rest = uri.partition("://")
    if not sep:
        return None
    if scheme.lower() in OBJECT_STORE_SCHEMES:
        fs, _ = filesystem(f"{scheme}://{rest.partition('/')[0]}", credentials)
        return fs, rest
    return filesystem(url2pathname(urlsplit(uri).path), credentials)


def _line_breaks(uri: str) -> bool:
    """Whether ``uri`` holds a character that ends a line (``str.splitlines``: LF, CR, VT, FF, NEL, U+2028 …)."""
    return uri.splitlines() != [uri]


def _shown(uri: str) -> str:
    """``uri`` for a log line: as it is, or quoted (``repr``) when it holds a line break or another control
    character (a raw object-store key), so it cannot forge a line of the log."""
    return uri if uri.isprintable() else repr(uri)


def tag_datasource_uri(pool: Datapool, tag: str) -> str | None:
    """The datasource URI the run behind ``tag`` recorded (spelled as :func:`run_datasources`); for ``initial-tag``
    and hand-made tags (no run of their own) the latest run's; or ``None``."""
    history = pool.history()
    spelled = run_datasources(history)
    found = latest = None
    for entry in history:
        if entry.get("datasource_uri"):
            latest = spelled[int(entry["version"])]
            if entry["tag"] == tag:
                found = latest
    return latest if found is None else found


def run_datasources(history: list[dict[str, Any]]) -> dict[int, str]:
    """The datasource each commit's keys are relative to (pool version → URI): a pool fed from several datasources
    (two DAGs, or a bucket moved) holds the same key under different roots. Runs of one place
    (:func:`~lightly_airflow.storage.place_key`) that spelled it otherwise (``gcs://`` then ``gs://``) get its latest run's spelling,
    so an export writes each place one way and finds its latest listing's gone files (:func:`gone_exports`)."""
    runs = [(int(e["version"]), str(e["datasource_uri"])) for e in history if e.get("datasource_uri")]
    places = {uri: place_key(uri) for uri in {uri for _, uri in runs}}
    latest = {places[uri]: uri for _, uri in runs}  # (history is oldest first)
    return {version: latest[places[uri]] for version, uri in runs}


def datasource_versions(history: list[dict[str, Any]], datasource_uri: str) -> list[int]:
    """The pool versions whose run read the place ``datasource_uri`` names, however each run spelled it
    (:func:`~lightly_airflow.storage.place_key`): the rows whose keys are relative to it."""
    here = place_key(datasource_uri)
    runs = [(int(e["version"]), str(e["datasource_uri"])) for e in history if e.get("datasource_uri")]
    ours = {uri for uri in {uri for _, uri in runs} if place_key(uri) == here}
    return [version for version, uri in runs if uri in ours]


def export_records(
    pool: Datapool, tag: str, *, datasource_uri: str | None = None, lightly_uri: str | None = None,
    check_files: bool = False, datasource_credentials: StorageCredentials | None = None,
    viewable_copies: str | None = None, copies_credentials: StorageCredentials | None = None,
) -> list[ExportRecord]:
    """The samples of ``tag`` in pick order, with their exact keys and encoded URIs.

    Samples whose file is gone from the datasource are exported too (the pool is history), and a warning names
    them and their number (:func:`gone_exports`: from the latest run's listing, or checked now with
    ``check_files``).

    :param datasource_uri: the datasource root the keys are relative to; default: what each sample's run
        recorded (:func:`run_datasources`; ``initial-tag`` and hand-made tags may span runs of several
        datasources), else the tag's. Without one, URIs are the encoded keys (relative references).
    :param check_files: check now that each exported file exists (one request per file on object stores)
        instead of trusting the latest run's listing.
    :param datasource_credentials: credentials for ``check_files`` and for reading the images
        ``viewable_copies`` converts (``None``: ambient credentials).
    :param viewable_copies: a folder (any store) to write a browser-viewable copy of each exported image a
        browser cannot show (HEIC/HEIF as JPEG, TIFF as PNG) or would show on its side (a JPEG, PNG or WebP turned
        by an orientation only its XMP packet gives: :func:`write_viewable_copies`); those records' URIs are the
        copies'. ``None``: they are exported as they are, HEIC/TIFF with a warning.
    :param copies_credentials: credentials of the ``viewable_copies`` store (``None``: ambient credentials).
    :raises DatapoolError: for an unknown tag or a key that cannot be a file name.
    """
    wanted = [C.KEY, C.SAMPLE_ID, C.RUN_ID, C.PICK_RANK, COMMIT_VERSION, C.ETAG]
    # a selected video frame is exported as its PNG (<lightly_uri>/.lightly/frames/<frame name>); COCO's images
    # carry their width and height: the columns each pool has of these
    snap = pool.snapshot()
    present = set(snap.column_names())
    rows = _tag_rows(snap, tag, [*wanted, *(c for c in (*FRAME_COLUMNS, *SIZE_COLUMNS) if c in present)])
    history = pool.history()
    by_version = {} if datasource_uri else run_datasources(history)
    fallback = datasource_uri or tag_datasource_uri(pool, tag)
    uris = SampleUris(lightly_uri)
    records = []
    for r in rows.to_pylist():
        records.append(ExportRecord(
            key=r[C.KEY], uri=uris.uri(r, by_version.get(r[COMMIT_VERSION], fallback)),
            sample_id=r[C.SAMPLE_ID], run_id=r[C.RUN_ID], pick_rank=r[C.PICK_RANK],
            width=_size(r.get(SIZE_COLUMNS[0])), height=_size(r.get(SIZE_COLUMNS[1])),
            **frame_fields(r)))
    if not records:  # a run that selected nothing has a tag all the same: an empty file must not look like a success
        logger.warning("Tag %r of %s holds no samples (a run that selected none has its tag all the same): the "
                       "export is empty. `lightly-airflow datapool tags` shows each tag's count.", tag, pool.uri)
    warn_gone(gone_exports(pool, records, check_files=check_files, credentials=datasource_credentials,
                           history=history), tag, len(records))
    if tag != C.INITIAL_TAG:  # (initial-tag holds no replaced row: its frames' PNGs are the current picks)
        warn_replaced_frames(replaced_frames(snap, rows, records), tag, len(records))
    if viewable_copies and any(_copy_kind(r) for r in records):
        etags = {r[C.KEY]: r[C.ETAG] for r in rows.select([C.KEY, C.ETAG]).to_pylist()}  # (the read above)
        copies = write_viewable_copies(pool, tag, records, viewable_copies, source_credentials=datasource_credentials,
                                       credentials=copies_credentials, etags=etags)
        records = copies.records
    warn_unviewable(records, tag)
    return records


#: Image formats browsers other than Safari do not show (a labelling tool in the browser shows a blank image) and
#: that many training libraries do not read without a plugin: extension -> what it is.
UNVIEWABLE_IMAGES = {"heic": "HEIC", "heif": "HEIF", "hif": "HEIF", "tif": "TIFF", "tiff": "TIFF"}


def _unviewable_kind(record: ExportRecord) -> str | None:
    """What :data:`UNVIEWABLE_IMAGES` names the file the record's URI points to, ``None`` for others (a video frame
    is its PNG, a viewable copy a JPEG or PNG; a URI ends in its key's extension, which encoding leaves as it is)."""
    return UNVIEWABLE_IMAGES.get(_extension(record.uri))


#: Images browsers show as they are, except one that an orientation only its XMP packet gives (``tiff:Orientation``, no
#: EXIF Orientation tag) turns: every pass, its recorded width and height and the UI show it turned
#: (:func:`lightly_airflow.pixels.orientation_only_in_xmp`), a browser reads EXIF's tag only and shows it on its side.
#: :func:`write_viewable_copies` copies such images: extension -> what it is.
XMP_TURNABLE = {"jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "png": "PNG", "webp": "WEBP"}
#: How much of each :data:`XMP_TURNABLE` image :func:`write_viewable_copies` reads (one ranged read) for the text
#: Pillow finds an XMP orientation by (:data:`XMP_ORIENTATION`); only the images holding it are read whole and decoded.
#: A JPEG's XMP packet lies in its header (APP1 segments of at most 64 KiB each, before the pixels), a PNG's in the
#: iTXt chunk editors write before the image data; a WebP's XMP chunk follows the picture: found in WebPs up to
#: this size.
XMP_HEAD_BYTES = 256 * 1024
XMP_ORIENTATION = b"tiff:Orientation"


def _copy_kind(record: ExportRecord) -> str | None:
    """What a record's image is when :func:`write_viewable_copies` may copy it (:data:`UNVIEWABLE_IMAGES`,
    :data:`XMP_TURNABLE`), else ``None`` (also for a video frame: its PNG, written upright by this plugin)."""
    ext = _extension(record.uri)
    return UNVIEWABLE_IMAGES.get(ext) or (XMP_TURNABLE.get(ext) if record.video is None else None)


def _turned_by_xmp(jpeg_head: bytes) -> bool:
    """Whether a JPEG's first bytes (its header: every APP segment comes before the pixels) show it turned by an
    orientation only its XMP packet gives; True when they hold less than the header (the whole file decides). Editors
    that write ``tiff:Orientation`` mostly write EXIF's tag beside it (Lightroom): such files are not read whole."""
    from lightly_airflow.pixels import open_image, orientation_only_in_xmp

    try:
        return orientation_only_in_xmp(open_image(jpeg_head))
    except Exception:  # noqa: BLE001 - a header longer than the head, or a damaged one: read whole, decoded
        return True


def unviewable(records: list[ExportRecord]) -> list[ExportRecord]:
    """The exported samples whose file is an image of :data:`UNVIEWABLE_IMAGES` (video frames are PNGs)."""
    return [r for r in records if _unviewable_kind(r)]


def warn_unviewable(records: list[ExportRecord], tag: str) -> None:
    """Log a warning naming the exported images a browser cannot show (HEIC from iPhones, TIFF), their number and
    what to do: they are exported as they are (``viewable_copies`` writes copies a browser shows)."""
    found = unviewable(records)
    if not found:
        return
    kinds = sorted({str(_unviewable_kind(r)) for r in found})
    logger.warning(
        "%d of the %d exported samples of tag %r are %s images, e.g. %s: browsers other than Safari cannot show them "
        "(Label Studio's image view stays blank) and many training libraries cannot read them. They are exported as "
        "they are: export with --viewable-copies URI (a JPEG/PNG copy of each, written there) or convert them for the "
        "labelling task (e.g. `magick mogrify -format jpg *.heic *.tif`).",
        len(found), len(records), tag, "/".join(kinds), ", ".join(_shown(r.uri) for r in found[:5]))


#: A viewable copy's format by what its source is: lossy HEIC/HEIF as JPEG (as the UI sends them), TIFF as PNG; a
#: turned copy (:data:`XMP_TURNABLE`) of a JPEG as JPEG, of a PNG or WebP as PNG (lossless, as the UI sends them).
COPY_FORMATS = {"HEIC": ("JPEG", ".jpg"), "HEIF": ("JPEG", ".jpg"), "TIFF": ("PNG", ".png"),
                "JPEG": ("JPEG", ".jpg"), "PNG": ("PNG", ".png"), "WEBP": ("PNG", ".png")}
#: The comment a viewable copy carries (JPEG ``COM``, PNG ``tEXt``, near the start): the etag (content identity) of the
#: datasource file it was made from, so an export run again keeps copies of unchanged files instead of decoding
#: them again, and remakes the copy of a file replaced under the same key. ``copy=2``: copies that carry the photo's
#: EXIF (copies made before, without it, are made again once).
COPY_NOTE = "lightly-source-etag={etag};copy=2;"
COPY_HEAD_BYTES = 4096


@dataclass(frozen=True)
class ViewableCopies:
    """What :func:`write_viewable_copies` did: the records (the copies' URIs where one exists), how many copies it
    wrote and kept (made before from the same content), how many of those are of images turned by an orientation
    only their XMP packet gives (``turned``), and ``(uri, reason)`` of the images it could not copy (exported as they
    are)."""

    records: list[ExportRecord]
    written: int = 0
    kept: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    turned: int = 0


def copy_uri(copies: str, key: str, kind: str) -> str:
    """Where the viewable copy of ``key`` (an image of :data:`UNVIEWABLE_IMAGES` kind ``kind``) lives: the key
    under ``copies`` with the copy's suffix added (``photos/IMG_1.HEIC`` -> ``<copies>/photos/IMG_1.HEIC.jpg``: no
    clash with a JPEG of the same name beside it, and the source stays readable in the name)."""
    from lightly_airflow.storage import join_uri

    return join_uri(copies, check_key(key) + COPY_FORMATS[kind][1])


def write_viewable_copies(
    pool: Datapool, tag: str, records: list[ExportRecord], copies: str, *,
    source_credentials: StorageCredentials | None = None, credentials: StorageCredentials | None = None,
    etags: Mapping[str, str | None] | None = None,
) -> ViewableCopies:
    """A browser-viewable copy of every record's image of :data:`UNVIEWABLE_IMAGES` (iPhone HEIC, TIFF) and of each
    :data:`XMP_TURNABLE` image (JPEG, PNG, WebP) that an orientation only its XMP packet gives turns (a browser shows
    it on its side; found by a ranged read of its head, :data:`XMP_HEAD_BYTES`), written under ``copies``
    (:func:`copy_uri`), and ``records`` with those URIs (:func:`key_uri` of the copy root).

    The pixels are the UI's (:func:`lightly_airflow.pixels.browser_copy`: upright by EXIF and ``irot``, 8-bit sRGB);
    a JPEG copy (HEIC/HEIF) carries the photo's EXIF (camera, capture time, GPS: :func:`~lightly_airflow.pixels.
    upright_exif`, orientation 1 as the pixels are upright); a PNG copy of a TIFF carries none (its TIFF tags are the
    file's structure). Each copy appears whole (``storage.write_bytes``) and names the
    source's etag (:data:`COPY_NOTE`): a copy made from the same content is kept, not decoded again. An image that
    cannot be read or decoded (gone, damaged) keeps its own URI and is named in ``failed`` and in a warning; the
    others are copied. Reads and writes run on :func:`~lightly_airflow.storage.map_io`'s threads. ``etags``: each
    key's etag in the pool (:func:`export_records` passes those of its own read; ``None``: read from ``tag``).
    """
    from PIL import UnidentifiedImageError

    from lightly_airflow.pixels import browser_copy, not_an_image, open_image, orientation_only_in_xmp
    from lightly_airflow.storage import write_bytes

    if etags is None:
        table = _tag_rows(pool, tag, [C.KEY, C.ETAG, C.PICK_RANK])
        etags = dict(zip(table.column(C.KEY).to_pylist(), table.column(C.ETAG).to_pylist(), strict=True))
    root = root_uri(copies)

    def one(record: ExportRecord) -> tuple[ExportRecord, str, str | None]:
        kind = str(_copy_kind(record))
        turnable = kind in XMP_TURNABLE.values()  # (copied only when its XMP packet turns it)
        copied = replace(record, uri=key_uri(root, record.key + COPY_FORMATS[kind][1]))  # (= copy_uri's file)
        etag = etags.get(record.key)
        note = COPY_NOTE.format(etag=etag or "")
        try:
            source = uri_location(record.uri, source_credentials)
            if turnable:
                if source is None:
                    return record, "unchecked", None
                try:
                    head = source[0].cat_file(source[1], start=0, end=XMP_HEAD_BYTES)
                except FileNotFoundError:  # (gone: gone_exports names it)
                    return record, "as is", None
                if XMP_ORIENTATION not in head or (kind == "JPEG" and not _turned_by_xmp(head)):
                    return record, "as is", None
            where = uri_location(copied.uri, credentials)
            if where is None:  # (root_uri makes an absolute URI of any folder: not reached)
                raise DatapoolError(f"{copied.uri!r} is not an absolute URI.")
            fs, path = where
            try:
                with fs.open(path, "rb") as fh:
                    if etag and note.encode() in fh.read(COPY_HEAD_BYTES):
                        return copied, "kept", None
            except FileNotFoundError:
                pass
            if source is None:
                return record, "failed", "no datasource root is known for it: pass --datasource-uri"
            src_fs, src_path = source
            with src_fs.open(src_path, "rb") as fh:
                data = fh.read()
            try:
                img = open_image(data, fit=True)
            except UnidentifiedImageError:
                return record, "failed", not_an_image(data)  # (libheif's words for a damaged HEIC)
            if turnable and not orientation_only_in_xmp(img):  # (the text elsewhere, or EXIF's tag turns it too)
                return record, "as is", None
            data, _ = browser_copy(img, COPY_FORMATS[kind][0], note, keep_exif=True)
            if raw_keys(copied.uri):
                fs.pipe_file(path, data)  # one atomic upload (as storage.write_bytes), the key as it is ('#', '?')
            else:
                write_bytes(data, path, credentials)  # (a local path: temporary file and rename)
        except Exception as exc:  # noqa: BLE001 - one image that cannot be copied keeps its own URI; named below
            return record, "failed", f"{type(exc).__name__}: {exc}"
        return copied, "written", None

    from lightly_airflow.storage import map_io

    wanted = [i for i, r in enumerate(records) if _copy_kind(r)]
    done = map_io(one, [records[i] for i in wanted])
    out = list(records)
    counts = {"written": 0, "kept": 0, "turned": 0, "as is": 0, "unchecked": 0}
    failed = []
    for i, (record, how, reason) in zip(wanted, done, strict=True):
        out[i] = record
        if reason is not None:
            failed.append((record.uri, reason))
            continue
        counts[how] += 1
        if how in ("written", "kept") and _copy_kind(records[i]) in XMP_TURNABLE.values():
            counts["turned"] += 1
    logger.info("viewable copies of tag %r under %s: %d written, %d kept (made before from the same content); %d of "
                "them of images turned by an orientation only their XMP packet gives (tiff:Orientation, no EXIF "
                "Orientation tag: a browser shows the file on its side; every pass and the UI show it turned), of the "
                "%d JPEG/PNG/WebP images checked", tag, copies, counts["written"], counts["kept"], counts["turned"],
                counts["turned"] + counts["as is"])
    if counts["unchecked"]:
        logger.warning("%d JPEG/PNG/WebP images of tag %r were not checked for an orientation only their XMP packet "
                       "gives (no datasource root is known for them: pass --datasource-uri)", counts["unchecked"], tag)
    if failed:
        logger.warning("%d images of tag %r could not be copied (exported as they are): %s", len(failed), tag,
                       "; ".join(f"{_shown(u)}: {r}" for u, r in failed[:5]) + (" …" if len(failed) > 5 else ""))
    return ViewableCopies(records=out, written=counts["written"], kept=counts["kept"], failed=failed,
                          turned=counts["turned"])


@dataclass(frozen=True)
class GoneExports:
    """Exported samples whose file is no longer in the datasource, and how that is known."""

    #: the exported URIs whose file is gone, in export order
    uris: list[str] = field(default_factory=list)
    #: ``"listing"``: the latest run's listing of each datasource said so (no request made now); ``"checked"``:
    #: each exported file was checked now
    how: str = "listing"
    #: per datasource root: the run whose listing this is (``run_id, version, timestamp``); empty for ``checked``
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.uris)


def gone_exports(
    pool: Datapool, records: list[ExportRecord], *, check_files: bool = False,
    credentials: StorageCredentials | None = None, workers: int = 16, history: list[dict[str, Any]] | None = None,
) -> GoneExports:
    """Which of ``records`` point to a file that is gone from the datasource.

    By default from what the pool recorded, without a request to the datasource: for each datasource root the
    records lie under, the latest committed run of that root whose listing found gone files left their keys in
    ``_reports/<run>/gone.parquet`` (one read per such root; see :mod:`lightly_airflow.datasource.gone`). Files
    deleted since that run are not known, restored ones still count until the next run. Video frames are
    exported as their PNGs, which stay when the video goes.

    With ``check_files``, each exported file (frame PNGs included) is checked now: a stat on local disk, one
    HEAD request per file on object stores (s3fs adds one LIST for a missing one), ``workers`` at a time.

    :param history: the pool's history, when the caller has read it (else it is read here).
    """
    if not records:
        return GoneExports(how="checked" if check_files else "listing")
    if check_files:
        return GoneExports(uris=_missing_now(records, credentials, workers), how="checked")
    history = pool.history() if history is None else history
    latest: dict[str, dict[str, Any]] = {}
    spellings: dict[str, set[str]] = {}  # place -> the roots its runs' spellings give (gcs://b/x/, gs://b/x/)
    for entry in history:  # oldest first: the last entry of a place is its latest run, however it was spelled
        if entry.get("datasource_uri") and entry.get("run_id"):
            where = place_key(str(entry["datasource_uri"]))
            latest[where] = entry
            spellings.setdefault(where, set()).add(root_uri(str(entry["datasource_uri"])))
    gone_uris: set[str] = set()
    runs: dict[str, dict[str, Any]] = {}
    from lightly_airflow.datasource.gone import read_gone

    for where, entry in latest.items():
        if not int((entry.get("counts") or {}).get("gone") or 0):
            continue
        roots = spellings[where]
        if not any(r.uri.startswith(root) for r in records for root in roots):
            continue
        root = root_uri(str(entry["datasource_uri"]))
        keys = read_gone(pool.uri, str(entry["run_id"]), pool.credentials)
        if keys is None:
            logger.warning("Run %s recorded %s files gone from %s, but its gone.parquet is missing: cannot say "
                           "which exported files are gone (pass check_files, `datapool export --check-files`, to check them now).",
                           entry["run_id"], entry["counts"]["gone"], root)
            continue
        runs[root] = {k: entry.get(k) for k in ("run_id", "version", "timestamp")}
        gone_uris.update(key_uri(spelled, k) for spelled in roots for k in keys)
    return GoneExports(uris=[r.uri for r in records if r.uri in gone_uris], how="listing", runs=runs)


def _missing_now(records: list[ExportRecord], credentials: StorageCredentials | None, workers: int) -> list[str]:
    """The records' URIs whose file does not exist now (relative URIs, without a datasource, are not checked)."""
    from concurrent.futures import ThreadPoolExecutor

    def missing(r: ExportRecord) -> bool:
        where = uri_location(r.uri, credentials)
        return where is not None and not where[0].exists(where[1])

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lightly-export-check") as threads:
        flags = list(threads.map(missing, records))
    return [r.uri for r, gone in zip(records, flags, strict=True) if gone]


def warn_gone(gone: GoneExports, tag: str, total: int) -> None:
    """Log a warning naming the exported samples whose file is gone, their number and what to do."""
    if not gone.count:
        return
    if gone.how == "checked":
        source = "checked now"
    else:
        source = "as the latest listing of " + "; ".join(
            f"{root} found it (run {r['run_id']}, pool version {r['version']}, {_when(r['timestamp'])})"
            for root, r in gone.runs.items())
    logger.warning(
        "%d of the %d exported samples of tag %r point to files that are no longer in the datasource (%s), e.g. %s. "
        "They are exported anyway (the pool keeps its history): restore the files or leave them out of the "
        "labelling task%s.", gone.count, total, tag, source, ", ".join(_shown(u) for u in gone.uris[:5]),
        "" if gone.how == "checked" else "; to check each exported file now (one request per file), pass check_files (`datapool export --check-files`)")


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if hasattr(moment, "strftime") else str(moment)


#: the columns of a sample's picture size (the metadata step's, upright)
SIZE_COLUMNS = (C.metadata_column("lightly.width"), C.metadata_column("lightly.height"))


def _size(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and value == value and value > 0 else None


def _tag_rows(pool: Datapool | Snapshot, tag: str, columns: list[str]) -> Any:
    if tag == C.INITIAL_TAG:
        return pool.selected(columns)
    return pool.read(tag=tag, columns=columns).sort_by(C.PICK_RANK)


#: A video frame's columns (its video, index, pts and seconds): exported with it (Label Studio's ``meta``).
FRAME_COLUMNS = (C.VIDEO, C.FRAME_INDEX, C.FRAME_PTS, C.FRAME_SECONDS)


class SampleUris:
    """The URI an export gives a sample's row: its file in its run's datasource, or for a selected video frame its
    PNG (``<lightly_uri or the datasource>/.lightly/frames/<frame name>``, ``video.export``). Roots are worked out
    once per datasource."""

    def __init__(self, lightly_uri: str | None = None) -> None:
        self.lightly_uri = lightly_uri
        self._roots: dict[str | None, tuple[str | None, str | None]] = {}

    def _of(self, source: str | None) -> tuple[str | None, str | None]:
        """(files root, video frames root) of a datasource."""
        if source not in self._roots:
            frames = None
            if self.lightly_uri or source:
                from lightly_airflow.video.export import frame_png_uri

                frames = root_uri(frame_png_uri(self.lightly_uri or source or "", "x").rsplit("/", 1)[0])
            self._roots[source] = (None if source is None else root_uri(source), frames)
        return self._roots[source]

    def uri(self, row: Mapping[str, Any], source: str | None) -> str:
        """The URI of ``row`` (``key``, ``video``) committed by a run of datasource ``source``."""
        root, frames_root = self._of(source)
        return key_uri(frames_root if row.get(C.VIDEO) and frames_root else root, row[C.KEY])


def frame_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`FRAME_FIELDS` of a video frame's row (``{}`` for an image's)."""
    if not row.get(C.VIDEO):
        return {}
    index, pts, seconds = row.get(C.FRAME_INDEX), row.get(C.FRAME_PTS), row.get(C.FRAME_SECONDS)
    return {"video": str(row[C.VIDEO]), "frame_index": None if index is None else int(index),
            "frame_pts": None if pts is None else int(pts),
            "frame_seconds": None if seconds is None or seconds != seconds else float(seconds)}


@dataclass(frozen=True)
class ReplacedFrames:
    """Exported video frames of a version of their video that a newer version has replaced since (same frame name,
    other etag): ``.lightly/frames/<frame name>`` holds one picture per name, the current version's pick, so their
    PNG now shows another picture (``replaced``: the newer version selected that frame) or was removed
    (``removed``: the newer version did not select it, or no longer has that frame). URIs in export order."""

    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.replaced) + len(self.removed)


def replaced_frames(snap: Snapshot, rows: Any, records: list[ExportRecord]) -> ReplacedFrames:
    """Which of the exported frames (``records``, of the tag's ``rows``: ``key, etag, commit_version, video``) belong
    to a video version replaced since, as of the pool version ``snap`` (:class:`ReplacedFrames`). One read of the
    pool's frame rows that have the exported frames' names (nothing when the export holds no frame)."""
    import pyarrow.compute as pc

    from lightly_airflow.datapool.reading import quote_ident
    from lightly_airflow.datapool.snapshot import SUPERSEDED_PREFIX, initial_tag_mask

    if C.VIDEO not in rows.column_names or C.ETAG not in rows.column_names or not rows.num_rows:
        return ReplacedFrames()
    frames = rows.filter(pc.is_valid(rows.column(C.VIDEO)))
    if not frames.num_rows:
        return ReplacedFrames()
    present = snap.column_names()
    pool_rows = snap.select([C.KEY, C.ETAG, C.SELECTED, *(c for c in (C.TAGS, C.STATUS_REASON) if c in present)],
                            f"WHERE {quote_ident(C.VIDEO)} IS NOT NULL", extra=(COMMIT_VERSION,),
                            values_in=(C.KEY, frames.column(C.KEY).to_pylist()))
    picked_now = set(pool_rows.column(C.KEY).filter(initial_tag_mask(pool_rows)).to_pylist())  # (initial-tag's)
    newer: dict[str, list[tuple[int, str, bool]]] = {}
    reasons = pool_rows.column(C.STATUS_REASON).to_pylist() if C.STATUS_REASON in present else [None] * pool_rows.num_rows
    for key, etag, version, reason in zip(pool_rows.column(C.KEY).to_pylist(), pool_rows.column(C.ETAG).to_pylist(),
                                          pool_rows.column(COMMIT_VERSION).to_pylist(), reasons, strict=True):
        newer.setdefault(key, []).append((int(version), str(etag), str(reason or "").startswith(SUPERSEDED_PREFIX)))
    exported = {r[C.KEY]: r for r in frames.select([C.KEY, C.ETAG, COMMIT_VERSION]).to_pylist()}
    out = ReplacedFrames()
    for record in records:
        mine = exported.get(record.key)
        if mine is None:
            continue
        # replaced: a newer row of the name is another version of the video, or a tombstone (it keeps the former
        # etag); a newer row of the same version (a process_all run) shows the same picture
        if not any(v > mine[COMMIT_VERSION] and (etag != str(mine[C.ETAG]) or tomb)
                   for v, etag, tomb in newer.get(record.key, [])):
            continue
        (out.replaced if record.key in picked_now else out.removed).append(record.uri)
    return out


def warn_replaced_frames(found: ReplacedFrames, tag: str, total: int) -> None:
    """Log a warning naming the exported frames whose video was replaced since (:func:`replaced_frames`): their
    PNG no longer shows the picture the tag's run picked."""
    if not found.count:
        return
    parts = []
    if found.replaced:
        parts.append(f"{len(found.replaced)} now show the newer version's frame of the same name, which a later run "
                     f"selected (e.g. {', '.join(_shown(u) for u in found.replaced[:5])})")
    if found.removed:
        parts.append(f"{len(found.removed)} were removed, as the newer version did not select that frame or no longer "
                     f"has it (e.g. {', '.join(_shown(u) for u in found.removed[:5])})")
    logger.warning(
        "%d of the %d exported samples of tag %r are frames of a video replaced since under the same name: "
        ".lightly/frames/ holds one PNG per frame name, the current version's pick, so their PNG no longer shows the "
        "frame this tag picked: %s. The video version they were picked from is gone; leave them out of the labelling "
        "task (initial-tag holds the current picks).", found.count, total, tag, "; ".join(parts))


# ---------------------------------------------------------------- formats
def _one_per_line(values: list[str], records: list[ExportRecord], tag: str, what: str) -> str:
    """``values`` (one per record), each ended by ``\n``; :class:`DatapoolError` naming the keys when one holds a line
    break (``str.splitlines``: LF, CR, VT, FF, NEL, U+2028 …), which would split it into two entries."""
    broken = [r.key for r, v in zip(records, values, strict=True) if _line_breaks(v)]
    if broken:
        raise DatapoolError(
            f"{len(broken)} of the {len(records)} samples of tag {tag!r} have a line break in their key, e.g. "
            f"{', '.join(repr(k) for k in broken[:5])}: {what}, so a file with one per line cannot hold them. "
            "Export --format csv, label-studio, labelbox or coco (they quote each value and carry the exact key), or "
            "rename those files.")
    return "".join(v + "\n" for v in values)


def to_list(records: list[ExportRecord], tag: str) -> str:
    """One URI per line, in pick order. An object-store URI carries its key raw (:func:`key_uri`): one whose key
    holds a line break cannot be a line and is refused (:class:`DatapoolError` naming the keys), never split."""
    return _one_per_line([r.uri for r in records], records, tag, "their object-store URIs carry the key as it is")


def to_filenames(records: list[ExportRecord], tag: str) -> str:
    """Lightly's file names of the tag (``lightly-download tag_name=T``'s ``T.txt``, the API's
    ``export_filenames_by_tag_name``): each sample's key, relative to its datasource, as it is (no encoding, no
    root), one per line, each line ended by ``\n`` as ``lightly-download`` writes them, in pick order. A video
    frame is its frame name (``clip-007-mp4.png``, Lightly's); a key with a line break is refused (named)."""
    return _one_per_line([r.key for r in records], records, tag, "a file name is written as it is")


#: The columns of the CSV format (:func:`to_csv`); the UI's CSV adds every metadata/score column after them.
CSV_HEADER = ("uri", "key", "sample_id", "run_id", "tag", "pick_rank")


def csv_cells(records: list[ExportRecord], tag: str) -> list[pa.Array]:
    """The cells of :data:`CSV_HEADER`'s columns, column by column, as :func:`csv_text` writes them."""
    return [pa.array(cells, pa.string()) for cells in (
        [r.uri for r in records], [r.key for r in records], [r.sample_id or "" for r in records],
        [r.run_id or "" for r in records], [tag] * len(records),
        ["" if r.pick_rank is None else str(r.pick_rank) for r in records])]


def column_cells(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each value of an Arrow column as text, as ``csv.writer`` writes its Python value (``to_pylist``): ``str``,
    ``repr`` of a float (the same since Python 3.2), ``""`` for a null; made a column at a time, in Arrow where its
    text is Python's. Strings and integers are cast by Arrow (its decimal integers are ``str``'s); floats by
    :func:`_float_cells`; booleans as ``True``/``False``; any other type (timestamps, decimals) through ``str`` of its
    Python value, as before."""
    typ = column.type
    if pa.types.is_dictionary(typ):
        column, typ = pc.cast(column, typ.value_type), typ.value_type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ) \
            or pa.types.is_integer(typ):
        return pc.fill_null(pc.cast(column, pa.string()), "")
    if pa.types.is_boolean(typ):
        return pc.fill_null(pc.if_else(column, "True", "False"), "")
    if pa.types.is_floating(typ):
        return _float_cells(column)
    if _plain_times(column):  # (``committed_at``: 50,000 ``str(datetime)`` 0.65 s, in Arrow 0.03 s)
        text = pc.replace_substring_regex(pc.strftime(column, "%Y-%m-%d %H:%M:%S"), r"\.000000$", "")
        return pc.fill_null(pc.binary_join_element_wise(text, "+00:00" if typ.tz else "", ""), "")
    return pa.array(["" if v is None else str(v) for v in column.to_pylist()], pa.string())


def _plain_times(column: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a column's ``str(datetime)`` is Arrow's ``strftime`` (:func:`column_cells`): seconds or microseconds,
    naive or UTC (``+00:00``), years 1000-9999 (Python pads a year to 4 digits; other units read back as other
    types)."""
    typ = column.type
    if not pa.types.is_timestamp(typ) or typ.unit not in ("s", "us") or typ.tz not in (None, "UTC", "+00:00"):
        return False
    years = pc.min_max(pc.year(column))
    low, high = years["min"].as_py(), years["max"].as_py()
    return low is None or (low >= 1000 and high <= 9999)


def _float_cells(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``repr`` of each float (``""`` for a null) from Arrow's text of it. Both write the shortest digits that read
    back as the same float (``tests/plugins/test_csv_export_columns.py`` checks random bit patterns and
    magnitudes), in other notations (Arrow: ``100``, ``1e+15``, ``0.00001``, ``-0`` where Python writes ``100.0``,
    ``1000000000000000.0``, ``1e-05``, ``-0.0``): Arrow's text is Python's where it holds a ``.`` and no exponent
    and the value is at least 1e-4; Python's less ``.0`` where it is digits alone below 1e16; Python's with a one-digit
    exponent (``1e-7``: ``1e-07``) where both write one (below 1e-4, from 1e16); the rest (``nan``, ``inf``, Arrow's
    ``0.00001``) through ``repr``. 650,000 floats of 13 columns: 0.8-0.9 s of ``repr`` -> ~0.1 s."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = pc.cast(column, pa.float64())  # (a float32 as the float64 its Python value is)
    text = pc.cast(values, pa.string())
    size = pc.abs(values)
    point, exp = pc.match_substring(text, "."), pc.match_substring(text, "e")
    same = pc.and_(pc.and_(point, pc.invert(exp)), pc.greater_equal(size, 1e-4))
    whole = pc.and_(pc.and_(pc.invert(pc.or_(point, exp)), pc.is_finite(values)), pc.less(size, 1e16))
    tiny_or_huge = pc.or_(pc.less(size, 1e-4), pc.greater_equal(size, 1e16))
    exponent = pc.and_(exp, pc.and_(tiny_or_huge, pc.greater(size, 0.0)))
    cells = pc.if_else(same, text, pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), pc.if_else(
        exponent, pc.replace_substring_regex(text, r"e([-+])([0-9])$", r"e\10\2"), "")))
    other = pc.and_(pc.invert(pc.fill_null(pc.or_(pc.or_(same, whole), exponent), False)), pc.is_valid(values))
    if pc.any(other).as_py():
        found = values.filter(other).to_pylist()
        cells = pc.replace_with_mask(cells, other, pa.array([repr(v) for v in found], pa.string()))
    return pc.fill_null(cells, "")


#: What makes ``csv.writer`` (``QUOTE_MINIMAL``, CRLF lines) quote a cell: the delimiter, the quote, a line break.
_CSV_QUOTED = '[,"\r\n]'


def csv_text(header: list[str] | tuple[str, ...], columns: list[Any]) -> str:
    """A CSV document of ``columns`` (cells: Arrow string arrays or lists of text) under ``header``, byte for byte what
    ``csv.writer(lineterminator="\r\n")`` writes of the cells: RFC 4180 quoting where a cell needs it
    (``QUOTE_MINIMAL``: a delimiter, quote or line break; a key's newline stays in its cell; quotes doubled), CRLF
    lines. The cells are quoted and joined in Arrow, not one Python string each: 50,000 rows of 30 columns took
    0.65-1.3 s through ``csv.writer`` alone, 0.3 s here (CPU, shared 2-core machine, 2026-12-07, session 65; the UI's
    whole CSV export of them 2.3 -> 1.2 s CPU, medians of 5 interleaved runs, ``tests/plugins/
    test_csv_export_columns.py`` keeps the old code as the oracle of its bytes)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(header)
    if not columns or not len(columns[0]):
        return out.getvalue()
    quoted = []
    for cells in columns:
        if not isinstance(cells, (pa.Array, pa.ChunkedArray)):
            cells = pa.array(cells, pa.string())
        cells = pc.fill_null(pc.cast(cells, pa.large_string()), "")  # (large: a whole document past 2 GiB)
        needs = pc.match_substring_regex(cells, _CSV_QUOTED)
        if pc.any(needs).as_py():
            quote_mark = pa.scalar('"', pa.large_string())
            wrapped = pc.binary_join_element_wise(quote_mark, pc.replace_substring(cells, '"', '""'), quote_mark,
                                                  pa.scalar("", pa.large_string()))
            cells = pc.if_else(needs, wrapped, cells)
        quoted.append(cells)
    lines = pc.binary_join_element_wise(*quoted, pa.scalar(",", pa.large_string()))
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    whole = pc.binary_join(pa.LargeListArray.from_arrays(pa.array([0, len(lines)], pa.int64()), lines),
                           pa.scalar("\r\n", pa.large_string()))
    return out.getvalue() + str(whole[0].as_py()) + "\r\n"


def to_csv(records: list[ExportRecord], tag: str) -> str:
    """``uri, key, sample_id, run_id, tag, pick_rank`` with RFC 4180 quoting (a key's newline stays in its cell)."""
    return csv_text(CSV_HEADER, csv_cells(records, tag))


#: The URI scheme Label Studio's source storage of each store resolves in a task's data (the ``url_scheme`` of
#: its S3, GCS and Azure Blob import storages: ``s3://<bucket>/<key>``, ``gs://<bucket>/<key>``,
#: ``azure-blob://<container>/<key>``, the URIs its own sync writes), by the object-store scheme of our URIs.
#: Other URIs (``file://``, relative references, ``adl://``) are written as they are.
LABEL_STUDIO_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "az": "azure-blob", "abfs": "azure-blob",
                        "abfss": "azure-blob"}


def label_studio_uri(uri: str) -> str:
    """``uri`` as a Label Studio task carries it so that the project's cloud storage resolves it (presigns it, or
    proxies it): the scheme Label Studio's storage of that store matches (:data:`LABEL_STUDIO_SCHEMES`;
    ``az://c/k`` -> ``azure-blob://c/k``), the bucket or container (an ``abfs://container@account.dfs…`` URI's
    container alone: Label Studio compares it with its storage's container) and the raw key as they are."""
    scheme, sep, rest = uri.partition("://")
    target = LABEL_STUDIO_SCHEMES.get(scheme.lower()) if sep else None
    if target is None:
        return uri
    netloc, slash, key = rest.partition("/")
    if target == "azure-blob":
        netloc = netloc.partition("@")[0]
    return f"{target}://{netloc}{slash}{key}"


def label_studio_tasks(records: list[ExportRecord], tag: str) -> list[dict[str, Any]]:
    """Label Studio tasks: ``{"data": {"image": URI}, "meta": {key, uri, sample_id, run_id, tag, pick_rank}}`` (a video
    frame's ``meta`` adds ``video, frame_index, frame_pts, frame_seconds``), the
    image's URI in the scheme Label Studio's storage resolves (:func:`label_studio_uri`: ``azure-blob://`` for
    Azure), ``meta.uri`` the store's own (``az://…``: what fsspec, :func:`uri_key` and :func:`uri_location` read).
    Tasks Label Studio cannot resolve (:func:`warn_label_studio_cut`) are written all the same, with a warning."""
    tasks = [{"data": {"image": label_studio_uri(r.uri)}, "meta": _meta(r, tag)} for r in records]
    warn_label_studio_cut(tasks, tag)
    return tasks


def warn_label_studio_cut(tasks: list[dict[str, Any]], tag: str) -> None:
    """Log a warning naming the tasks whose object-store key holds a ``?``: Label Studio's storages take the key from
    ``urlparse(uri, allow_fragments=False).path``, which ends at the ``?`` (the rest is read as a query), so they
    presign another object and the task's image stays blank. ``file://`` URIs encode the ``?`` (``%3F``)."""
    cut = [t["meta"]["key"] for t in tasks
           if "?" in t["data"]["image"] and t["data"]["image"].partition("://")[0] in LABEL_STUDIO_SCHEMES.values()]
    if cut:
        logger.warning(
            "%d of the %d Label Studio tasks of tag %r have a '?' in their key, e.g. %s: Label Studio's cloud storage "
            "reads a key only up to the '?' and cannot show them. Rename those files, or label them from the csv "
            "export (exact keys).", len(cut), len(tasks), tag, ", ".join(repr(k) for k in cut[:5]))


def _meta(record: ExportRecord, tag: str) -> dict[str, Any]:
    """A task's ``meta``: the record and the tag; a video frame's video, frame index, pts and seconds
    (:data:`FRAME_FIELDS`) for frames only."""
    meta = dict(vars(record))  # (dataclasses.asdict deep-copies every value: 15 s of 1,000,000 records)
    if record.video is None:
        for name in FRAME_FIELDS:
            meta.pop(name)
    return {**meta, "tag": tag}


def json_document(value: Any, depth: int = 0) -> str:
    """``value`` as indented JSON text (ASCII), each element of its lists one line (a task, a COCO image), down to
    the lists in its dict: ``json.dumps(indent=2)`` runs json's pure-Python encoder, ~11 s of a 1,000,000-task
    Label Studio document; one C-encoded line per element, ~3 s."""
    pad, end = "  " * (depth + 1), "\n" + "  " * depth
    if depth < 2 and isinstance(value, dict) and value:
        return "{\n" + ",\n".join(f"{pad}{json.dumps(k)}: {json_document(v, depth + 1)}" for k, v in value.items()) + end + "}"
    if depth < 2 and isinstance(value, list) and value:
        return "[\n" + ",\n".join(pad + json.dumps(v, ensure_ascii=True) for v in value) + end + "]"
    return json.dumps(value, ensure_ascii=True)


def to_label_studio(records: list[ExportRecord], tag: str) -> str:
    return json_document(label_studio_tasks(records, tag)) + "\n"


def coco_images(records: list[ExportRecord], tag: str, pool: Datapool | None = None) -> dict[str, Any]:
    """A COCO document with one ``images`` entry per sample (``id`` = pick order + 1, ``file_name`` = the key,
    ``coco_url`` = its URI); with ``pool``, ``annotations``/``categories`` hold the boxes of the images'
    objects (object-level runs, :func:`lightly_airflow.objects.export.add_object_annotations`)."""
    doc = {
        "info": {"description": f"lightly-airflow export of tag {tag}"},
        "images": [  # (COCO's width and height where the pool has them: a corrupt file has none)
            {"id": i + 1, "file_name": r.key, "coco_url": r.uri, "lightly_sample_id": r.sample_id,
             **({"width": r.width, "height": r.height} if r.width and r.height else {})}
            for i, r in enumerate(records)
        ],
        "annotations": [],
        "categories": [],
    }
    if pool is not None:
        from lightly_airflow.objects.export import add_object_annotations

        add_object_annotations(doc, pool, [(r.key, r.run_id) for r in records])
    return doc


def to_coco(records: list[ExportRecord], tag: str) -> str:
    return json_document(coco_images(records, tag)) + "\n"


#: The scheme Labelbox fetches a data row's ``row_data`` with, by the scheme of our URIs: ``https`` (a signed URL, or
#: S3's and Azure's object URLs read through its IAM delegated access) and ``gs`` (its GCS integration: "only gsutil
#: URIs are supported"); ``gcs://`` is written ``gs://``. Other URIs (``s3://``, ``az://``, ``abfs://``, ``file://``,
#: relative references) are written as they are and named in a warning (:func:`warn_labelbox_rows`): Labelbox's
#: S3 and Azure access takes ``https://<bucket>.s3.<region>.amazonaws.com/<key>`` and
#: ``https://<account>.blob.core.windows.net/<container>/<blob>``, which need a region or an account the pool does
#: not record, and it cannot read a local file.
LABELBOX_SCHEMES = {"https": "https", "gs": "gs", "gcs": "gs"}

#: The image file types Labelbox's image import takes (JPG, PNG and BMP): by a URI's extension.
LABELBOX_IMAGES = frozenset({"jpg", "jpeg", "png", "bmp"})


def labelbox_uri(uri: str) -> str:
    """``uri`` as Labelbox's ``row_data``: the scheme Labelbox reads (:data:`LABELBOX_SCHEMES`; ``gcs://b/k`` ->
    ``gs://b/k``), the bucket and the key as they are; a URI of another scheme as it is (:func:`labelbox_fetchable`
    says whether Labelbox can read it)."""
    scheme, sep, rest = uri.partition("://")
    target = LABELBOX_SCHEMES.get(scheme.lower()) if sep else None
    return uri if target is None else f"{target}://{rest}"


def labelbox_fetchable(row_data: str) -> bool:
    """Whether Labelbox can fetch ``row_data`` (a :func:`labelbox_uri`): an ``https`` URL or a ``gs://`` URI."""
    scheme, sep, _ = row_data.partition("://")
    return bool(sep) and scheme in LABELBOX_SCHEMES.values()


def labelbox_rows(records: list[ExportRecord], tag: str) -> list[dict[str, Any]]:
    """Labelbox data rows as Lightly's ``export_label_box_v4_data_rows_by_tag_name`` writes them:
    ``{"row_data": URI, "global_key": key, "media_type": "IMAGE"}`` (the image's URI in the scheme Labelbox reads,
    :func:`labelbox_uri`; a video frame's PNG, a viewable copy's JPEG/PNG; the global key the exact key). Rows
    Labelbox cannot import as they are (:func:`warn_labelbox_rows`) are written all the same, with a warning."""
    rows = [{"row_data": labelbox_uri(r.uri), "global_key": r.key, "media_type": "IMAGE"} for r in records]
    warn_labelbox_rows(rows, tag)
    return rows


def warn_labelbox_rows(rows: list[dict[str, Any]], tag: str) -> None:
    """Log a warning for each kind of data row Labelbox does not import as it is, with their number and examples:
    a ``row_data`` it cannot fetch (:func:`labelbox_fetchable`), an image type it does not take
    (:data:`LABELBOX_IMAGES`). (Global keys are unique within an export: the pool holds one row per key.)"""
    total = len(rows)
    unfetchable = [r["row_data"] for r in rows if not labelbox_fetchable(r["row_data"])]
    if unfetchable:
        logger.warning(
            "%d of the %d Labelbox data rows of tag %r have a row_data Labelbox cannot fetch, e.g. %s: Labelbox reads "
            "https URLs (signed URLs; S3's https://<bucket>.s3.<region>.amazonaws.com/<key> and Azure's "
            "https://<account>.blob.core.windows.net/<container>/<blob> through its IAM delegated access) and gs:// "
            "URIs (its GCS integration). They are written as they are: replace them with such URLs (or presigned "
            "ones) before importing, or label them from the csv export (exact keys).",
            len(unfetchable), total, tag, ", ".join(_shown(u) for u in unfetchable[:5]))
    unsupported = [r["row_data"] for r in rows if _extension(r["row_data"]) not in LABELBOX_IMAGES]
    if unsupported:
        logger.warning(
            "%d of the %d Labelbox data rows of tag %r are not JPG, PNG or BMP images, e.g. %s: Labelbox's image "
            "import takes only those. Export with --viewable-copies URI (HEIC/HEIF as JPEG, TIFF as PNG) or convert "
            "them.", len(unsupported), total, tag, ", ".join(_shown(u) for u in unsupported[:5]))


def _extension(uri: str) -> str:
    """The lower-case extension of the file a URI names ('' for none)."""
    name = uri.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def to_labelbox(records: list[ExportRecord], tag: str) -> str:
    return json_document(labelbox_rows(records, tag)) + "\n"


#: Export formats by name: records and tag in, the document's text out.
FORMATS: dict[str, Callable[[list[ExportRecord], str], str]] = {
    "list": to_list,
    "csv": to_csv,
    "label-studio": to_label_studio,
    "coco": to_coco,
    "filenames": to_filenames,
    "labelbox": to_labelbox,
}
EXPORT_FORMATS = tuple(FORMATS)


def register_format(name: str, render: Callable[[list[ExportRecord], str], str]) -> None:
    """Add an export format (e.g. COCO with object annotations) for the CLI and the UI."""
    FORMATS[name] = render


def render(records: list[ExportRecord], tag: str, fmt: str, pool: Datapool | None = None) -> str:
    """The export document of ``records`` in ``fmt`` (``coco`` with ``pool``: with the objects' boxes)."""
    if fmt not in FORMATS:
        raise DatapoolError(f"Unknown export format {fmt!r}; use one of {sorted(FORMATS)}.")
    if fmt == "coco" and pool is not None:
        return json_document(coco_images(records, tag, pool)) + "\n"
    return FORMATS[fmt](records, tag)


def export_tag(
    pool: Datapool, tag: str, *, fmt: str = "list", datasource_uri: str | None = None, lightly_uri: str | None = None,
) -> Any:
    """The files of ``tag`` in pick order: ``list`` gives URIs, ``label-studio`` task dicts, ``coco`` a COCO
    dict, ``csv`` the CSV text (kept for callers of the earlier API; prefer :func:`export_records`)."""
    if fmt not in FORMATS:
        raise DatapoolError(f"Unknown export format {fmt!r}; use one of {sorted(FORMATS)}.")
    records = export_records(pool, tag, datasource_uri=datasource_uri, lightly_uri=lightly_uri)
    if fmt == "list":
        return [r.uri for r in records]
    if fmt == "label-studio":
        return label_studio_tasks(records, tag)
    if fmt == "coco":
        return coco_images(records, tag, pool)
    return render(records, tag, fmt)


def content_type(fmt: str) -> str:
    """The HTTP content type of a format's document (for the UI's download)."""
    return {"csv": "text/csv; charset=utf-8", "list": "text/plain; charset=utf-8",
            "filenames": "text/plain; charset=utf-8"}.get(fmt, "application/json")


def file_suffix(fmt: str) -> str:
    """The file name suffix of a format's document (``filenames`` and ``labelbox`` name their format: a download of
    the same tag as ``list`` or ``label-studio`` gets another name)."""
    return {"csv": ".csv", "list": ".txt", "filenames": ".filenames.txt", "labelbox": ".labelbox.json"}.get(fmt, ".json")


__all__ = [
    "EXPORT_FORMATS", "FORMATS", "ExportRecord", "GoneExports", "LABELBOX_IMAGES", "LABELBOX_SCHEMES",
    "LABEL_STUDIO_SCHEMES", "check_key", "coco_images", "labelbox_fetchable", "labelbox_rows", "labelbox_uri",
    "content_type", "export_records", "export_tag", "file_suffix", "gone_exports", "key_uri", "label_studio_tasks",
    "label_studio_uri", "register_format", "render", "root_uri",
    "raw_keys", "run_datasources", "datasource_versions", "tag_datasource_uri", "unviewable",
    "uri_key", "uri_location",
    "write_viewable_copies", "OBJECT_STORE_SCHEMES",
]
