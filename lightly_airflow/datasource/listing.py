"""List a datasource on any store as a stream of normalised manifest records, page by page.

Every store is read through the fsspec filesystem of :func:`lightly_airflow.storage.filesystem` (so one
credentials object reaches S3, GCS, Azure and local disk the same way), but listing calls the store's list
API one page at a time (S3 ``ListObjectsV2``, GCS ``objects.list``, Azure ``List Blobs``) instead of
``fs.find``, which would build the whole bucket in memory. Each page becomes one :class:`pyarrow.RecordBatch`
after vectorised filtering (``.lightly/``, OS and tool metadata files, extensions, relevant filenames). A local
walk does not enter ``.lightly/`` folders; an S3 or GCS listing skips past one when a page ends inside it
(:func:`_past_lightly_dir`), an Azure listing goes on with what sorts after it (:func:`_azure_after`).

Content identity (``etag``) per store, chosen so that a changed file always gets a new value and, where the
store allows it, identical bytes keep the same value:

- S3: the object's ETag without quotes (the MD5 of the bytes for single-part uploads; a multipart upload's is
  the MD5 of its parts' MD5s: the same bytes uploaded with another part size get another value).
- GCS: ``md5:<hex>`` of the object's MD5 hash; composite objects, which have none, use
  ``gen:<generation>`` (changes on every write).
- Azure: ``md5:<hex>`` of the blob's Content-MD5 when set (uploads of a single request set it), else
  ``etag:<ETag>`` (changes on every write).
- Local: ``sha256:<hex>`` of the bytes (the same digest as the ``content_hash`` column). Files are hashed
  only after filtering, in a thread pool, and hashes are cached in-process by (path, size, mtime, ctime,
  inode), so a sensor that lists a folder every minute hashes only files that changed.

``mtime`` is the object's creation time on S3 (``LastModified``: objects are written whole), GCS
(``timeCreated``; ``updated`` also moves on metadata changes) and Azure (``Last-Modified``), the file's
modification time on disk: informational and the clock of bucket lifecycle rules
(:mod:`~lightly_airflow.datasource.expiration`); new-file detection never uses it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import logging
import os
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow.cores import usable_cores
from lightly_airflow.datasource.records import (
    AVIF_EXTENSIONS,
    DEFAULT_EXTENSIONS,
    MANIFEST_SCHEMA,
    base_mask,
    extension_regex,
    normalise_extensions,
    os_file_mask,
    unlisted_image_hint,
)
from lightly_airflow.datasource.relevant import RelevantFilenames, near_names
from lightly_airflow.heif import HEIF_EXTENSIONS
from lightly_airflow.lightly_dir import LIGHTLY_DIR
from lightly_airflow.storage import StorageCredentials, describe_store_error, filesystem, masked_uri, protocol_of

logger = logging.getLogger(__name__)

_MAX_PAGE = {"s3": 1000, "gs": 1000, "az": 5000}
#: A local file's stat signature: (path, size, mtime_ns, ctime_ns, inode); the content-hash cache key.
StatKey = tuple[str, int, int, int, int]
_HASH_CHUNK = 1 << 20
_LOG_EVERY = 100_000
_EXAMPLES = 5


@dataclass
class _Page:
    """Raw records of one page (Python lists of at most ``page_size`` entries)."""

    keys: list[str]
    sizes: list[int]
    mtimes: list[Any]  # aware datetimes, or int microseconds (local)
    etags: list[str] | None = None
    #: local only: each key's file to stat (a symlink's target), once the page's filters kept it (``sizes`` and
    #: ``mtimes`` stay empty: :func:`_stat_kept`)
    paths: list[str] | None = None
    #: per object: its archive tier when it cannot be read until restored (S3 GLACIER / DEEP_ARCHIVE without a
    #: finished restore, Azure's Archive tier), else None
    archived: list[str | None] | None = None


def list_files(
    uri: str,
    *,
    credentials: StorageCredentials | None = None,
    relevant_filenames: str | None = None,
    extensions: Collection[str] = DEFAULT_EXTENSIONS,
    page_size: int = 10000,
    skipped: list[tuple[str, str]] | None = None,
    stats: dict[str, Any] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the files of a datasource as manifest record batches (``key, size, etag, mtime``).

    :param uri: the datasource root: ``s3://bucket/prefix``, ``gs://…``, ``az://container/prefix`` /
        ``abfs://…``, ``file:///path`` or a local path. Keys are relative to it.
    :param credentials: credentials of that store (``None``: ambient credentials).
    :param relevant_filenames: the *text* of a relevant-filenames file (see
        :mod:`lightly_airflow.datasource.relevant`); ``None`` lists every file.
    :param extensions: file extensions to keep, case-insensitive, without dots; ``["*"]`` keeps every file.
        Files inside any ``.lightly/`` folder are never listed.
    :param page_size: the most records per yielded batch (and per store request, up to the store's limit).
    :param skipped: receives ``(key, reason)`` of every local entry not listed for safety: symlinks that
        leave the datasource (never read, never hashed) and symlinked folders (not followed). Each is also
        logged, and their number is in the listing's summary line. Also local files whose name is not UTF-8
        and files that vanished or became unreadable between the walk and hashing; and files whose key has an
        empty, ``.`` or ``..`` path segment (``a//b.jpg``) or a control character (a tab): :func:`odd_key_reason`,
        with the name to rename to.
    :param stats: receives ``listed``, ``kept``, ``unsupported`` (files whose extension is not listed),
        ``unsupported_examples`` (the first few of them), ``os_files`` (OS and tool metadata files, never
        samples whatever their extension: ``._photo.jpg``, ``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``, hidden
        folders; see :data:`~lightly_airflow.datasource.records.OS_FILE_REGEX`) and ``os_files_examples``; and
        ``archived``: ``{key: tier}`` of listed files that cannot be read until restored (:func:`archived_reason`;
        they stay in the listing: the datasource holds them, and the pool may have processed them before); with
        a relevant-filenames file, ``relevant_near``: ``{folded name: key}`` of keys it does not select that a name
        it lists meant but for case or Unicode normalization (:func:`~lightly_airflow.datasource.relevant.near_names`).
    :raises ValueError: for a bad URI, extension list, page size or relevant-filenames file.
    :raises FileNotFoundError: when a local root, or the bucket or container, does not exist (naming it and the
        fix; object-store prefixes may be empty).
    :raises NotADirectoryError: when the URI names a file (an object) rather than a folder.
    :raises PermissionError: when the store rejects the credentials or denies the listing (with the fix).
    """
    if not isinstance(page_size, int) or page_size <= 0:
        raise ValueError(f"page_size must be a positive integer, got {page_size!r}.")
    ext_regex = extension_regex(normalise_extensions(extensions))
    relevant = RelevantFilenames.parse(relevant_filenames) if relevant_filenames is not None else None
    protocol = protocol_of(uri)
    fs, root = filesystem(uri, credentials)
    unsafe: list[tuple[str, str]] = [] if skipped is None else skipped
    pages = _local_pages(fs, root, page_size, unsafe) if protocol == "file" else _PAGERS[protocol](fs, root, page_size)
    listed = kept = 0
    counts: dict[str, Any] = {} if stats is None else stats
    for name in ("unsupported", "os_files"):
        counts.setdefault(name, 0)
        counts.setdefault(f"{name}_examples", [])
    counts.setdefault("archived", {})
    next_log = _LOG_EVERY
    try:
        for page in pages:
            listed += len(page.keys)
            batch = _to_batch(page, ext_regex, relevant, unsafe, counts)
            if listed >= next_log:
                logger.info("listed %d objects under %s (%d kept so far)", listed, uri, kept + batch.num_rows)
                next_log += _LOG_EVERY
            if batch.num_rows:
                kept += batch.num_rows
                yield batch
    except Exception as exc:
        clear = None if protocol == "file" else _store_error(uri, root, exc)
        if clear is None:
            raise
        raise clear from None
    finally:
        close = getattr(pages, "close", None)
        if close:
            close()
    if listed == 0 and protocol != "file":
        _not_an_object(fs, root, uri)
    counts.update(listed=listed, kept=kept)
    logger.info("listing of %s done: %d objects, %d kept after filters", uri, listed, kept)
    if counts["unsupported"]:
        logger.info("%d files of %s have an extension that is not listed (%s), e.g. %s", counts["unsupported"], uri,
                    ", ".join(sorted(normalise_extensions(extensions))),
                    ", ".join(repr(k) for k in counts["unsupported_examples"]))
    for ext, n in sorted(counts.get("unlisted_images", {}).items()):
        logger.warning("%d files of %s are not listed: %s", n, uri, unlisted_image_hint(ext))
    if counts["os_files"]:
        logger.info("%d OS or tool metadata files of %s are not samples and were skipped (AppleDouble '._' files, "
                    "__MACOSX/, .DS_Store, Thumbs.db, hidden folders, …), e.g. %s", counts["os_files"], uri,
                    ", ".join(repr(k) for k in counts["os_files_examples"]))
    if unsafe:
        logger.warning(
            "%d entries of %s were skipped and not read: %s", len(unsafe), uri,
            "; ".join(f"{key!r}: {reason}" for key, reason in unsafe[:10]) + (" …" if len(unsafe) > 10 else ""),
        )


def _store_error(uri: str, root: str, exc: BaseException) -> Exception | None:
    """The error a listing of ``uri`` (in-store path ``root``) raises for a store error a configuration causes: a
    missing bucket (``FileNotFoundError``), rejected or insufficient credentials (``PermissionError``,
    :func:`~lightly_airflow.storage.describe_store_error`) or a name Azure refuses for a container
    (``ValueError``, :func:`bad_container`), naming the bucket and the fix; else ``None`` (raised as it is: a
    transient error a retry may pass). The stores' own words named no bucket (S3: "The specified bucket does not
    exist"), only a request path (GCS: "b/nope/o"), or were Azure's whole XML answer."""
    described = describe_store_error(exc)
    words = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")[:200]
    bucket = root.partition("/")[0]
    if (bad := bad_container(uri, bucket, str(exc))) is not None:
        return bad
    if isinstance(exc, FileNotFoundError) or (described and "does not exist" in described[0]):
        return FileNotFoundError(f"{masked_uri(uri)} cannot be listed: its bucket (or container) {bucket!r} does not "
                                 f"exist ({words}). Fix: create it, or correct the datasource URI (or the "
                                 "connection's endpoint).")
    if described is None:
        return None
    what, fix = described
    return PermissionError(f"{masked_uri(uri)} cannot be listed: {what}: {words}. Fix: {fix}.")


#: Azure's rules for a container's name ("Naming and referencing containers, blobs, and metadata"): 3 to 63 lowercase
#: letters, digits and hyphens, beginning and ending with a letter or digit, no two hyphens in a row (``$root``,
#: ``$web`` and ``$logs`` are Azure's own).
_AZURE_CONTAINER = re.compile(r"(?=[a-z0-9-]{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*|\$(?:root|web|logs)")


def bad_container(uri: str, container: str, text: str) -> ValueError | None:
    """The error for an Azure container name that Azure refused (``InvalidResourceName``: a character it does not
    allow; ``OutOfRangeInput``: its length), naming the URI, the container, Azure's rules and a name that keeps
    them; ``None`` for any other error, or a name that keeps the rules (then the refusal was about something else,
    and Azure's words are shown as they are). Azure answered with its whole XML error and no container name."""
    code = next((c for c in ("InvalidResourceName", "OutOfRangeInput") if c in text), None)
    if code is None or _AZURE_CONTAINER.fullmatch(container):
        return None
    fixed = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", container.lower())).strip("-")
    like = f" (e.g. {fixed!r})" if _AZURE_CONTAINER.fullmatch(fixed) else ""
    return ValueError(f"{masked_uri(uri)} cannot be listed: {container!r} is not a valid Azure container name "
                      f"(Azure's {code}). Fix: name a container of 3 to 63 lowercase letters, digits and hyphens that "
                      f"begins and ends with a letter or digit, with no two hyphens in a row{like}, in the datasource "
                      "URI.")


def _not_an_object(fs: Any, root: str, uri: str) -> None:
    """An object-store datasource URI that names an object (``s3://bucket/images/a.jpg``) lists nothing: say so, as
    a local file path does, instead of waiting for files that never come (one request, and only when the listing
    was empty).

    :raises NotADirectoryError: naming the URI and the fix.
    """
    try:
        is_file = "/" in root and fs.isfile(root)
    except Exception as exc:  # noqa: BLE001 - only a hint: an empty prefix stays an empty listing
        logger.debug("could not check whether %s is an object: %s", uri, exc)
        return
    if is_file:
        raise NotADirectoryError(f"Datasource {masked_uri(uri)} is a file, not a folder (a bucket prefix): point the "
                                 "datasource URI at the folder that holds it.")


def list_table(uri: str, **kwargs: Any) -> pa.Table:
    """The whole listing as one table (small datasources, tests and the CLI); arguments as :func:`list_files`."""
    return pa.Table.from_batches(list(list_files(uri, **kwargs)), schema=MANIFEST_SCHEMA)


def _tally(stats: dict[str, Any], name: str, keys: pa.Array, where: pa.Array) -> None:
    """Count the keys ``where`` is true for into ``stats[name]`` and keep the first few as ``<name>_examples``."""
    hits = pc.indices_nonzero(where)
    if len(hits):
        stats[name] += len(hits)
        room = _EXAMPLES - len(stats[f"{name}_examples"])
        if room > 0:
            stats[f"{name}_examples"].extend(keys.take(hits[:room]).to_pylist())


def _to_batch(
    page: _Page, ext_regex: str | None, relevant: RelevantFilenames | None,
    skipped: list[tuple[str, str]] | None = None, stats: dict[str, Any] | None = None,
) -> pa.RecordBatch:
    keys = pa.array(page.keys, pa.string())
    # OS and tool metadata (``._photo.jpg``, ``.DS_Store``, ``.git/``, …) is never a sample, whatever its extension.
    files = base_mask(keys, None)
    os_files = pc.and_(files, os_file_mask(keys))
    files = pc.and_(files, pc.invert(os_files))
    mask = files if ext_regex is None else pc.and_(files, base_mask(keys, ext_regex))
    if stats is not None and ext_regex is not None:
        unlisted = pc.and_(files, pc.invert(mask))
        _tally(stats, "unsupported", keys, unlisted)
        if pc.any(unlisted).as_py():  # images of formats left out (HEIC, AVIF): counted for a hint on what to do
            for ext in (*HEIF_EXTENSIONS, *AVIF_EXTENSIONS):
                hits = pc.sum(pc.and_(unlisted, pc.match_substring_regex(keys, rf"\.{ext}$", ignore_case=True)))
                if hits.as_py():
                    images = stats.setdefault("unlisted_images", {})
                    images[ext] = images.get(ext, 0) + hits.as_py()
    if relevant is not None:
        relevant_mask = relevant.mask(keys)
        if stats is not None and relevant.exact:  # (look-alikes of names it lists: named if those are missing)
            near_names(keys, pc.and_(files, pc.invert(relevant_mask)), relevant, stats.setdefault("relevant_near", {}))
        mask = pc.and_(mask, relevant_mask)
        os_files = pc.and_(os_files, relevant_mask)  # only those the run would otherwise have looked at
    if stats is not None:
        _tally(stats, "os_files", keys, os_files)
    odd = pc.and_(mask, pc.match_substring_regex(keys, _ODD_KEY))
    if pc.any(odd).as_py():  # (a local walk names no file with such a segment, but may with a tab)
        mask = pc.and_(mask, pc.invert(odd))
        if skipped is not None:
            skipped.extend((key, odd_key_reason(key)) for key in keys.filter(odd).to_pylist())
    indices = pc.indices_nonzero(mask)
    if len(indices) == 0:
        return pa.RecordBatch.from_pylist([], schema=MANIFEST_SCHEMA)
    idx = indices.to_pylist()
    stat_keys = None
    if page.paths is not None:  # (local: only the files kept are stat'ed)
        idx, stat_keys = _stat_kept(page.paths, idx)
        indices = pa.array(idx, pa.int64())
    keys = keys.take(indices)
    if page.archived is not None and stats is not None:
        tiers = [page.archived[i] for i in idx]
        if any(tiers):
            stats.setdefault("archived", {}).update(
                (k, t) for k, t in zip(keys.to_pylist(), tiers, strict=True) if t)
    if stat_keys is None:  # (an object store's page: its listing gave all three)
        sizes, mtimes = [page.sizes[i] for i in idx], [page.mtimes[i] for i in idx]
        etags: list[str | None] = [(page.etags or [])[i] for i in idx]
    else:
        sizes, mtimes = [k[1] for k in stat_keys], [k[2] // 1000 for k in stat_keys]
        etags = _local_etags(stat_keys)
    etag_array = pa.array(etags, pa.string())
    batch = pa.RecordBatch.from_arrays([keys, pa.array(sizes, pa.int64()), etag_array.fill_null(""),
                                        pa.array(mtimes, MANIFEST_SCHEMA.field("mtime").type)], schema=MANIFEST_SCHEMA)
    if etag_array.null_count:  # local files deleted or unreadable between walking and hashing are not listed
        if skipped is not None:
            gone = keys.filter(etag_array.is_null()).to_pylist()
            skipped.extend((k, "vanished or became unreadable between listing and hashing") for k in gone)
        batch = batch.filter(etag_array.is_valid())
    return batch


#: A key the stages cannot read as the file it names: one with an empty, ``.`` or ``..`` path segment (``a//b.jpg``,
#: ``/a.jpg`` below ``ds/``, ``./a.jpg``), which an object store keeps as it is but a path does not (S3: ``ds//a.jpg``
#: and ``ds/a.jpg`` are two objects, and the stages, which join keys as paths, read ``ds/a.jpg``'s bytes for
#: ``/a.jpg``); or one with a control character (a tab, a line break), which URL parsing drops (adlfs read
#: ``tabhere.jpg`` for ``tab\there.jpg``; Python's ``urlsplit`` strips tabs and line breaks). One RE2 pass: ~85 ms
#: per 1,000,000 keys (2-core machine).
_ODD_KEY = r"(?:^|/)\.{0,2}(?:/|$)|[\x00-\x1f\x7f]"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def odd_key_target(key: str) -> str | None:
    """The name :func:`odd_key_reason` tells to rename a key :data:`_ODD_KEY` matches to (``None``: a ``..``
    segment, or no name left)."""
    spaced = _CONTROL.sub(" ", key)
    if spaced != key:
        return spaced
    parts = [part for part in key.split("/") if part not in ("", ".")]
    return "/".join(parts) if ".." not in parts and parts else None


def odd_key_reason(key: str, *, taken: bool = False) -> str:
    """Why a key :data:`_ODD_KEY` matches is not listed, and the fix (the listing's skipped entries); ``taken``:
    the datasource has a file under the name to rename to (:func:`clashing_renames`)."""
    target = odd_key_target(key)
    if _CONTROL.search(key):
        why = "its name has a control character (a tab or a line break), which paths and URLs drop"
        fix = f"rename it to {target!r}"
    else:
        why = "its key has an empty, '.' or '..' path segment, which an object store keeps but a path does not"
        fix = f"rename the object to {target!r} (below the datasource)" if target else "rename the object without '..'"
    if taken:  # (renaming as told would overwrite that file: ds//a.jpg beside ds/a.jpg)
        fix = (f"do not rename it to {target!r}, which would overwrite another file (the datasource has one under "
               "that name, or another skipped key has the same name to rename to): give it a name of its own, or "
               "delete it if it is a stray copy")
    return f"{why} (it would be read as another file, or as none): {fix}"


def clashing_renames(skipped: list[tuple[str, str]], keys: pa.Array) -> list[tuple[str, str]]:
    """Rewrite in place the reasons of ``skipped`` entries whose name to rename to (:func:`odd_key_target`) is one
    of the listed ``keys`` or that of another such entry: renaming as told overwrote a file (``sub//b.jpg`` onto
    ``sub/b.jpg``; ``/a.jpg`` and ``./a.jpg`` both to ``a.jpg``); the entries rewritten. Checked against the whole
    listing (a page cannot: the other file may sort before or after it)."""
    odd = [(i, target) for i, (key, _) in enumerate(skipped)
           if re.search(_ODD_KEY, key) and (target := odd_key_target(key)) is not None]
    if not odd:
        return []
    many = Counter(t for _, t in odd)
    listed = pc.is_in(pa.array([t for _, t in odd], pa.string()), value_set=keys).to_pylist()
    hits = [hit or many[t] > 1 for (_, t), hit in zip(odd, listed, strict=True)]
    for (i, _), hit in zip(odd, hits, strict=True):
        if hit:
            skipped[i] = (skipped[i][0], odd_key_reason(skipped[i][0], taken=True))
    return [skipped[i] for (i, _), hit in zip(odd, hits, strict=True) if hit]


# ---------------------------------------------------------------------------------------------- object stores


@dataclass(frozen=True)
class _Next:
    """Where a listing goes on: the store's continuation ``token``, or ``after``, a key to list the keys after
    (S3 ``StartAfter``, GCS ``startOffset``: past a ``.lightly/`` folder, :func:`_past_lightly_dir`)."""

    token: str | None = None
    after: str | None = None


def _next_page(token: str | None, last_key: str | None, cut: int) -> _Next | None:
    """The next page of an ordered listing: none without the store's ``token``; past the ``.lightly/`` folder
    the page ended in (``last_key``, its prefix ``cut`` characters long; ``None``: not ordered), else the token."""
    if not token:
        return None
    past = None if last_key is None else _past_lightly_dir(last_key, cut)
    return _Next(after=past) if past else _Next(token=token)


def _paged(fs: Any, fetch: Callable[[_Next | None], Any], page_size: int) -> Iterator[list[Any]]:
    """Drive an async one-page fetcher (``fetch(where) -> (items, next or None)``) on the filesystem's event loop;
    yields raw pages of ~``page_size`` items."""
    from fsspec.asyn import sync

    def requests() -> Iterator[list[Any]]:
        at: _Next | None = None
        while True:
            items, at = sync(fs.loop, fetch, at)
            yield items
            if at is None:
                return

    return _rebatch(requests(), page_size)


def _rebatch(pages: Iterator[list[Any]], page_size: int) -> Iterator[list[Any]]:
    """The items of a store's response pages in pages of ``page_size`` (the last one shorter)."""
    buffer: list[Any] = []
    for items in pages:
        buffer.extend(items)
        while len(buffer) >= page_size:
            yield buffer[:page_size]
            buffer = buffer[page_size:]
    if buffer:
        yield buffer


def _split(root: str) -> tuple[str, str]:
    bucket, _, prefix = root.partition("/")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def _s3_pages(fs: Any, root: str, page_size: int) -> Iterator[_Page]:
    bucket, prefix = _split(root)
    per_request = min(page_size, _MAX_PAGE["s3"])

    # Each archived object's RestoreStatus comes with the page when asked for (S3 since 2023); an S3-compatible
    # store that refuses the ask is listed without it (archived objects then count as not restored), said once.
    restore_status = [True]

    async def fetch(at: _Next | None) -> tuple[list[dict[str, Any]], _Next | None]:
        kwargs = dict(Bucket=bucket, Prefix=prefix, MaxKeys=per_request, **getattr(fs, "req_kw", {}))
        if at is not None and at.after is not None:
            kwargs["StartAfter"] = at.after
        elif at is not None:
            kwargs["ContinuationToken"] = at.token
        out = None
        if restore_status[0]:
            try:
                out = await fs._call_s3("list_objects_v2", **kwargs, OptionalObjectAttributes=["RestoreStatus"])
            except Exception as exc:
                if not _refused_optional_attributes(exc):
                    raise
                restore_status[0] = False
                logger.warning("the store of s3://%s refuses OptionalObjectAttributes=RestoreStatus in a listing (%s): "
                               "listed without it; archived (GLACIER, DEEP_ARCHIVE) objects count as not restored",
                               bucket, exc)
        if out is None:
            out = await fs._call_s3("list_objects_v2", **kwargs)
        contents = out.get("Contents", [])
        ordered = contents and not bucket.endswith("--x-s3")  # (directory buckets list unordered)
        return contents, _next_page(out.get("NextContinuationToken") if out.get("IsTruncated") else None,
                                    contents[-1]["Key"] if ordered else None, len(prefix))

    cut = len(prefix)
    for raw in _paged(fs, fetch, page_size):
        yield _Page(
            keys=[o["Key"][cut:] for o in raw],
            sizes=[int(o.get("Size", 0)) for o in raw],
            mtimes=[_utc(o.get("LastModified")) for o in raw],
            etags=[str(o.get("ETag", "")).strip('"') for o in raw],
            archived=[_s3_archived(o) for o in raw],
        )


_LIGHTLY_FOLDER = re.compile(r"(?:^|/)" + re.escape(LIGHTLY_DIR) + "/")


def _lightly_folder(key: str, cut: int) -> str | None:
    """The ``.lightly/`` folder ``key`` lies in (or is), as a key prefix ending in ``/``, looked for below the
    datasource's prefix (``cut`` characters long); else None."""
    found = _LIGHTLY_FOLDER.search(key, max(cut - 1, 0))  # (from the prefix's closing "/")
    return None if found is None else key[:found.end()]


def _past_lightly_dir(key: str, cut: int) -> str | None:
    """For a page that ended inside a ``.lightly/`` folder (``key``, its prefix ``cut`` characters long): a key
    past every key of that folder, to list on from (S3 lists in UTF-8 byte order: whatever lies between ``key``
    and it is inside the folder too, so never listed). A datasource's ``.lightly/`` holding a metadata and
    prediction file per image was listed page by page every poke; ``None`` when ``key`` is not in such a folder."""
    folder = _lightly_folder(key, cut)
    if folder is None:
        return None
    past = folder + "\U0010ffff" * max(1, (1024 - len(folder.encode())) // 4)  # (keys are at most 1,024 bytes)
    return past if past > key else None  # (code point order is UTF-8 byte order; never back: no page twice)


def _refused_optional_attributes(exc: BaseException) -> bool:
    """Whether a listing failed because the store does not take ``OptionalObjectAttributes`` (an S3-compatible
    store's ``InvalidArgument`` / ``NotImplemented``, or botocore's own parameter validation)."""
    text = f"{type(exc).__name__}: {exc} {exc.__cause__ or ''}"
    return any(m in text for m in ("OptionalObjectAttributes", "optional-object-attributes", "InvalidArgument",
                                   "NotImplemented", "ParamValidationError"))


#: S3 storage classes whose objects a GET refuses until a restore (``InvalidObjectState``); GLACIER_IR is read
#: directly. (INTELLIGENT_TIERING's archive tiers are not in a listing: their read fails per file.)
S3_ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


def _s3_archived(obj: dict[str, Any]) -> str | None:
    """The object's storage class when it cannot be read now: archived and not restored (``RestoreStatus``,
    asked for in the listing: a finished restore has ``IsRestoreInProgress`` false and an expiry date)."""
    storage_class = obj.get("StorageClass")
    if storage_class not in S3_ARCHIVE_CLASSES:
        return None
    restore = obj.get("RestoreStatus") or {}
    if restore and not restore.get("IsRestoreInProgress") and restore.get("RestoreExpiryDate"):
        return None
    return f"S3 {storage_class}" + (" (restore in progress)" if restore.get("IsRestoreInProgress") else "")


def _gcs_pages(fs: Any, root: str, page_size: int) -> Iterator[_Page]:
    bucket, prefix = _split(root)
    per_request = min(page_size, _MAX_PAGE["gs"])

    async def fetch(at: _Next | None) -> tuple[list[dict[str, Any]], _Next | None]:
        params: dict[str, Any] = {
            "maxResults": per_request,
            "fields": "items(name,size,md5Hash,generation,timeCreated,updated),nextPageToken",
        }
        if prefix:
            params["prefix"] = prefix
        if at is not None and at.after is not None:
            params["startOffset"] = at.after
        elif at is not None:
            params["pageToken"] = at.token
        out = await fs._call("GET", "b/{}/o", bucket, json_out=True, **params)
        items = out.get("items", [])
        return items, _next_page(out.get("nextPageToken"), items[-1]["name"] if items else None, len(prefix))

    cut = len(prefix)
    for raw in _paged(fs, fetch, page_size):
        yield _Page(
            keys=[o["name"][cut:] for o in raw],
            sizes=[int(o.get("size", 0)) for o in raw],
            mtimes=[_parse_time(o.get("timeCreated") or o.get("updated")) for o in raw],
            etags=[_gcs_etag(o) for o in raw],
        )


def _gcs_etag(obj: dict[str, Any]) -> str:
    md5 = obj.get("md5Hash")
    if md5:
        import base64

        return "md5:" + base64.b64decode(md5).hex()
    return f"gen:{obj.get('generation', '')}"


def _azure_pages(fs: Any, root: str, page_size: int) -> Iterator[_Page]:
    from fsspec.asyn import sync

    container, prefix = _split(root)
    per_request = min(page_size, _MAX_PAGE["az"])
    counts = {"requests": 0, "folders": 0}

    def list_page(name_prefix: str, token: str | None, delimiter: str | None) -> tuple[list[Any], str | None]:
        counts["requests"] += 1
        items, next_token = sync(fs.loop, _azure_request, fs, container, name_prefix, token, delimiter, per_request)
        return items, next_token

    cut = len(prefix)
    try:
        for raw in _rebatch(_azure_level(list_page, prefix, "", cut, counts), page_size):
            yield _Page(
                keys=[b.name[cut:] for b in raw],
                sizes=[int(b.size or 0) for b in raw],
                mtimes=[_utc(b.last_modified) for b in raw],
                etags=[_azure_etag(b) for b in raw],
                archived=[_azure_archived(b) for b in raw],
            )
    except Exception as exc:  # azure's ResourceNotFoundError → the same error as the other stores
        if type(exc).__name__ == "ResourceNotFoundError":
            raise FileNotFoundError(f"Azure container {container!r} does not exist: {exc}") from exc
        raise
    if counts["folders"]:
        logger.info("listing az://%s/%s: %d List Blobs requests, %d %s/ folders skipped unread", container, prefix,
                    counts["requests"], counts["folders"], LIGHTLY_DIR)


async def _azure_request(fs: Any, container: str, prefix: str, token: str | None, delimiter: str | None,
                         per_request: int) -> tuple[list[Any], str | None]:
    """One ``List Blobs`` page under ``prefix`` (with ``delimiter``: its blobs and folders, a folder as a ``BlobPrefix``
    whose ``name`` ends in the delimiter, in name order) and the token of the next page (None: the last)."""
    async with fs.service_client.get_container_client(container) as client:
        listing = (client.walk_blobs(name_starts_with=prefix or None, delimiter=delimiter, results_per_page=per_request)
                   if delimiter else client.list_blobs(name_starts_with=prefix or None, results_per_page=per_request))
        pages = listing.by_page(continuation_token=token)
        try:
            page = await pages.__anext__()
        except StopAsyncIteration:
            return [], None
        items = [item async for item in page]
        if delimiter:  # (the SDK puts a page's folders before its blobs)
            from azure.storage.blob import BlobProperties

            blobs = [item for item in items if isinstance(item, BlobProperties)]
            folders = [item for item in items if not isinstance(item, BlobProperties)]
            items = list(heapq.merge(folders, blobs, key=lambda item: item.name))
        return items, pages.continuation_token


#: ``list_page(prefix, token, delimiter) -> (items, next token or None)``: one ``List Blobs`` request.
_ListPage = Callable[[str, str | None, str | None], tuple[list[Any], str | None]]


def _azure_blobs(list_page: _ListPage, prefix: str, cut: int, counts: dict[str, int]) -> Iterator[list[Any]]:
    """The blobs under ``prefix`` listed flat, response by response, in name order, without ``.lightly/`` folders
    (the datasource's prefix is ``cut`` characters long). Azure has no "list after" (S3 ``StartAfter``): a page that
    ends inside such a folder is the last, and the listing goes on with what sorts after the folder
    (:func:`_azure_after`)."""
    token = None
    while True:
        items, token = list_page(prefix, token, None)
        yield items
        if not token:
            return
        folder = _lightly_folder(items[-1].name, cut) if items else None
        if folder is not None and len(folder) > len(prefix):
            counts["folders"] += 1
            yield from _azure_after(list_page, folder, prefix, cut, counts)
            return


def _azure_after(list_page: _ListPage, done: str, within: str, cut: int, counts: dict[str, int]) -> Iterator[list[Any]]:
    """The blobs under ``within`` that sort after the folder ``done`` (not read), in name order: level by level from
    the folder's parent up to ``within`` (:func:`_azure_level`)."""
    while True:
        end = done.rstrip("/").rfind("/") + 1
        level = done[:end] if end > len(within) else within
        yield from _azure_level(list_page, level, done, cut, counts)
        if level == within:
            return
        done = level


#: The most blobs of one level held back while it is not known whether a folder follows them (:func:`_azure_level`).
_AZURE_HELD = 5000


def _azure_level(list_page: _ListPage, level: str, done: str, cut: int, counts: dict[str, int]) -> Iterator[list[Any]]:
    """The blobs under ``level`` (a folder, or a prefix of names) that sort after ``done`` ("": all), in name order,
    without the ``.lightly/`` folder at that level, which is never read.

    The level is listed with delimiter ``/`` (one entry per sub-folder). Its entries go in runs that share the
    shortest name prefix that holds neither ``done`` nor the level's ``.lightly/`` folder (``level/a``, ``level/.a``):
    a run of blobs comes from that listing; a run with a sub-folder is listed flat under its prefix
    (:func:`_azure_blobs`), so a level of 1,000 class folders takes the flat listings of a few prefixes, not 1,000.
    When more than :data:`_AZURE_HELD` blobs of a run came before its first sub-folder, they are passed on and each
    later sub-folder of the run is listed under the shortest prefix that does not hold the entry before it. Names
    compare in code point order, as the store sorts them."""
    lightly = level + LIGHTLY_DIR + "/"
    previous, covered, run, passed = done, None, None, False
    held: list[Any] = []
    token: str | None = None
    while True:
        entries, token = list_page(level, token, "/")
        for entry in entries:
            name = entry.name
            if name <= done or (covered is not None and name.startswith(covered)):
                continue  # (listed before, or with ``covered``)
            if name == lightly and _lightly_folder(name, cut) == name:
                counts["folders"] += 1
                previous = name
                continue
            shared = max(_common(name, done), _common(name, lightly))
            if run is None or not name.startswith(run):
                yield held
                held, run, passed = [], name[:shared + 1], False
            if not name.endswith("/"):
                held.append(entry)
                if len(held) >= _AZURE_HELD:
                    yield held
                    held, passed = [], True
            elif passed:
                yield held
                held, covered = [], name[:_common(name, previous) + 1]  # (``previous``: of the run)
                yield from _azure_blobs(list_page, covered, cut, counts)
            else:
                held, covered = [], run  # (the blobs held back are listed again with the run's prefix)
                yield from _azure_blobs(list_page, covered, cut, counts)
            previous = name
        if not token:
            yield held
            return


def _common(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b``."""
    return len(os.path.commonprefix([a, b]))


def _azure_archived(blob: Any) -> str | None:
    """``Azure Archive`` for a blob in the Archive tier (also while it is being rehydrated), else None."""
    tier = str(getattr(blob, "blob_tier", None) or "")
    if tier.lower() != "archive":
        return None
    status = getattr(blob, "archive_status", None)
    return "Azure Archive" + (f" ({status})" if status else "")


def archived_reason(tier: str) -> str:
    """Why an archived file is not processed, and what to do (the listing's skipped entries)."""
    fix = ("restore it (S3 RestoreObject, or the console's 'Initiate restore')" if tier.startswith("S3") else
           "rehydrate it (set its tier to Hot or Cool)")
    return (f"archived in {tier}: it cannot be read until restored; {fix} and a later run processes it, as it "
            "is still new")


def _azure_etag(blob: Any) -> str:
    settings = getattr(blob, "content_settings", None)
    md5 = getattr(settings, "content_md5", None) if settings is not None else None
    if md5:
        return "md5:" + bytes(md5).hex()
    return "etag:" + str(blob.etag).strip('"')


def utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; a naive one (a store's time without zone) is taken as UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_time(value)
    return utc(value)


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return _utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))


# ---------------------------------------------------------------------------------------------- local disk


def _local_pages(fs: Any, root: str, page_size: int, skipped: list[tuple[str, str]] | None = None) -> Iterator[_Page]:
    if not os.path.exists(root):
        raise FileNotFoundError(f"Local datasource {root!r} does not exist: create it or fix the datasource URI.")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"Local datasource {root!r} is a file: point the datasource URI at its folder.")
    paths: list[str] = []
    page = _Page(keys=[], sizes=[], mtimes=[], paths=paths)
    for rel, path in _walk(root, [] if skipped is None else skipped):
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            logger.warning("skipping %r: its name is not valid UTF-8, so it cannot be a key", path)
            if skipped is not None:
                skipped.append((os.fsencode(rel).decode("utf-8", "backslashreplace"),
                                "its name is not valid UTF-8, so it cannot be a key"))
            continue
        page.keys.append(rel)
        paths.append(path)
        if len(page.keys) >= page_size:
            yield page
            paths = []
            page = _Page(keys=[], sizes=[], mtimes=[], paths=paths)
    if page.keys:
        yield page


def _stat_kept(paths: list[str], idx: list[int]) -> tuple[list[int], list[StatKey]]:
    """The stat signatures ``(path, size, mtime_ns, ctime_ns, inode)`` of the files at ``idx`` of a local page, and
    those indices less the files removed since the walk named them (not listed, as a file removed during the walk).

    Only the files the filters kept are stat'ed: a stat is a system call per file (~10 µs, most of a warm
    listing's time), and a folder of images beside their annotations (a YOLO label ``.txt`` or VOC ``.xml`` per
    image) or a relevant-filenames file that names half of it stat'ed every file. A warm listing of 100,000 files
    of which the relevant-filenames file names 50,000: 1.0 CPU-s before, 0.6-0.8 after (2-core machine, shared)."""
    kept: list[int] = []
    out: list[StatKey] = []
    for i in idx:
        try:
            st = os.stat(paths[i], follow_symlinks=False)
        except FileNotFoundError:
            continue
        kept.append(i)
        out.append((paths[i], st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return kept, out


def _walk(root: str, skipped: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Files below ``root`` in key order (as object stores list them), without following folder symlinks: each
    key with the path to read (a symlink's target); :func:`_stat_kept` stats those a listing keeps.

    A file symlink is listed (as its own key, read through its target) only when its target lies inside the
    datasource root; a link that leaves it is skipped unread and recorded in ``skipped`` with the reason, as is
    a symlinked folder (never followed: it could loop or leave the root). Folders named ``.lightly`` are not
    entered (their files are never listed: :func:`~lightly_airflow.datasource.records.base_mask`).
    """
    real_root = os.path.realpath(root)
    stack: list[Iterator[tuple[str, Any]]] = [iter(_sorted_entries(root, ""))]
    while stack:
        try:
            key, entry = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        try:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if os.path.commonpath([real_root, target]) != real_root:
                    _skip(skipped, key, "symlink to a location outside the datasource (not followed)")
                elif os.path.isdir(target):
                    _skip(skipped, key, "symlink to a folder (not followed)")
                elif os.path.isfile(target):
                    yield key, target
                else:
                    _skip(skipped, key, "broken symlink or not a regular file")
            elif entry.is_dir(follow_symlinks=False):
                if entry.name != LIGHTLY_DIR:  # (never listed: its metadata and predictions are not walked)
                    stack.append(iter(_sorted_entries(entry.path, key)))
            elif entry.is_file(follow_symlinks=False):
                yield key, entry.path
        except FileNotFoundError:
            continue  # removed while we walk


def _skip(skipped: list[tuple[str, str]], key: str, reason: str) -> None:
    if len(skipped) < 10:
        logger.warning("skipping %r: %s", key, reason)
    skipped.append((key, reason))


def _sorted_entries(folder: str, rel: str) -> list[tuple[str, Any]]:
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    keyed = []
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except FileNotFoundError:
            continue
        keyed.append((f"{rel}{entry.name}/" if is_dir else f"{rel}{entry.name}", entry))
    keyed.sort(key=lambda item: item[0].encode("utf-8", "surrogateescape"))
    return keyed


class _HashCache:
    """In-process LRU of local content hashes keyed by the file's stat signature; plus the entries
    :func:`load_hashes` read, each moved into the LRU when first used (so :func:`save_hashes` keeps only those
    a listing used: a deleted file's hash is not carried from check to check)."""

    def __init__(self, capacity: int = 500_000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[StatKey, str] = OrderedDict()
        self._loaded: dict[StatKey, str] = {}
        self._hashed = 0  # hashes put since the last load
        self._lock = threading.Lock()

    def get(self, key: StatKey) -> str | None:
        with self._lock:
            value = self._data.get(key)
            if value is None and key in self._loaded:
                value = self._data[key] = self._loaded.pop(key)
                self._evict()
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: StatKey, value: str) -> None:
        with self._lock:
            self._hashed += 1
            self._data[key] = value
            self._data.move_to_end(key)
            self._evict()

    def _evict(self) -> None:
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def load(self, entries: dict[StatKey, str]) -> None:
        with self._lock:
            self._loaded, self._hashed = entries, 0

    def changed(self) -> bool:
        """Whether files were hashed since :meth:`load`, or loaded entries were not used (files gone)."""
        with self._lock:
            return bool(self._hashed or self._loaded)

    def used(self) -> list[tuple[StatKey, str]]:
        with self._lock:
            return list(self._data.items())


_HASHES = _HashCache()


def _sha256_file(stat_key: StatKey) -> str | None:
    cached = _HASHES.get(stat_key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    try:
        # O_NOFOLLOW: a file swapped for a symlink after the walk checked it is not read through the link.
        fd = os.open(stat_key[0], os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None  # deleted between walking and hashing
    except OSError as exc:
        logger.warning("not listing %r: it became unreadable or a symlink after listing (%s)", stat_key[0], exc)
        return None
    value = "sha256:" + digest.hexdigest()
    _HASHES.put(stat_key, value)
    return value


_HASH_FIELDS = ("path", "size", "mtime_ns", "ctime_ns", "inode")


def load_hashes(path: str) -> int:
    """Read the content hashes :func:`save_hashes` wrote into this process's cache; their number (0 when the file
    does not exist; an unreadable one is logged and counts as none: its files are hashed again). A check that
    runs in a new child process every poke (the deferrable trigger's) hashed every byte of a local datasource each
    time without it."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        columns = [table.column(name).to_pylist() for name in (*_HASH_FIELDS, "etag")]
    except FileNotFoundError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a cache: hashing again is always right
        logger.warning("content-hash cache %s cannot be read (%s): hashing the datasource's files again", path, exc)
        return 0
    _HASHES.load({tuple(row[:-1]): row[-1] for row in zip(*columns, strict=True)})
    return int(table.num_rows)


def save_hashes(path: str, roots: Collection[str]) -> int:
    """Write the content hashes this process's listings used of the files below ``roots`` (a datasource folder
    as given and resolved) to ``path`` (replaced atomically); their number (-1: nothing changed since
    :func:`load_hashes` read that file, which is left as it is)."""
    import pyarrow.parquet as pq

    if os.path.exists(path) and not _HASHES.changed():
        os.utime(path)  # (still in use: not removed as unused)
        return -1
    below = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    entries = [(key, etag) for key, etag in _HASHES.used() if key[0].startswith(below)]
    columns = list(zip(*(key for key, _ in entries), strict=True)) or [()] * len(_HASH_FIELDS)
    table = pa.table({**{name: pa.array(list(values), pa.string() if name == "path" else pa.int64())
                         for name, values in zip(_HASH_FIELDS, columns, strict=True)},
                      "etag": pa.array([etag for _, etag in entries], pa.string())})
    part = f"{path}.{os.getpid()}.part"
    pq.write_table(table, part)
    os.replace(part, path)
    return int(table.num_rows)


def _local_etags(stat_keys: list[StatKey]) -> list[str | None]:
    """The content hashes of a page's files: cached ones looked up here, the others read in a thread pool in
    chunks of 64 files (``Executor.map``'s ``chunksize`` does nothing for threads: one future per file cost
    ~60 µs each, 12 s of a 204,000-file listing whose hashes were all cached, as a sensor's every poke)."""
    etags = [_HASHES.get(k) for k in stat_keys]
    todo = [i for i, etag in enumerate(etags) if etag is None]
    if len(todo) < 16:
        for i in todo:
            etags[i] = _sha256_file(stat_keys[i])
        return etags
    chunks = [todo[start:start + 64] for start in range(0, len(todo), 64)]
    workers = min(8, usable_cores() * 2)  # (hashing reads and computes: twice the CPUs it may use, a container's cpuset)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lightly-hash") as pool:
        for chunk, hashed in zip(chunks, pool.map(lambda c: [_sha256_file(stat_keys[i]) for i in c], chunks)):
            for i, etag in zip(chunk, hashed, strict=True):
                etags[i] = etag
    return etags


#: The content identities above under public names, for readers that check one file against the etag its row
#: recorded (the UI plugin's ``media.content_state``): the same functions, and for local files the same hash cache.
local_etag = _sha256_file
gcs_etag = _gcs_etag
azure_etag = _azure_etag


_PAGERS: dict[str, Callable[[Any, str, int], Iterator[_Page]]] = {
    "file": _local_pages,
    "s3": _s3_pages,
    "gs": _gcs_pages,
    "az": _azure_pages,
}
