"""Opening a video of any store for PyAV without copying it: a local path, or a seekable fsspec file object
(ranged reads on S3 / GCS / Azure), so a video is never downloaded whole to disk or memory."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import Any

from lightly_airflow.storage import StorageCredentials, filesystem, join_uri, protocol_of

#: Bytes fetched per ranged read of a remote video (fsspec's cache block).
REMOTE_BLOCK_SIZE = 4 << 20
#: Blocks kept per open video: the demuxer jumps between the header, the index (an MP4's ``moov`` is often at
#: the end) and the packets; with fsspec's one-block read-ahead cache each jump back re-fetched a block
#: (measured on the S3 emulator: 21 % over the file size for one index pass), with a few kept blocks each
#: byte is fetched once (``tests/video/test_s3.py``). At most this many blocks are held in memory.
REMOTE_MAX_BLOCKS = 4
#: Bytes fetched per ranged read while the listing indexes a remote video: an MP4/MOV's index pass reads its boxes'
#: headers, the first frames (FFmpeg's probe) and its ``moov``, not its frames (``index._HeaderReads``), so a 4 MiB
#: block fetched most of a video of a few MB for a 16-byte box header. A video whose index pass reads it whole
#: fetches :data:`REMOTE_BLOCK_SIZE` blocks again (``RecordingReader.widen``).
INDEX_BLOCK_SIZE = 256 << 10


def read_at(source: Any, at: int, size: int) -> bytes | None:
    """``size`` bytes at offset ``at`` of a path or a seekable binary file object (its position kept); ``None``
    when they cannot be read."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                fh.seek(at)
                return fh.read(size)
        position = source.tell()
        try:
            source.seek(at)
            return bytes(source.read(size))
        finally:
            source.seek(position)
    except (OSError, ValueError):
        return None


class RecordingReader:
    """A remote video's file object as PyAV reads it, remembering the store's own read error.

    PyAV turns an exception raised by a Python file object into an FFmpeg error, or drops it and sees the end
    of the file: a connection reset or a throttled request half way through a video looked like a damaged or
    truncated video, and its frames were committed ``corrupt`` for good (an unchanged video is never read
    again). :func:`raise_read_error` re-raises the recorded error, so the task fails and is retried instead.
    """

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.read_error: BaseException | None = None

    def _record(self, exc: BaseException) -> None:
        if self.read_error is None:
            self.read_error = exc

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self._fh.read(size))
        except Exception as exc:
            self._record(exc)
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return int(self._fh.seek(offset, whence))
        except Exception as exc:
            self._record(exc)
            raise

    def tell(self) -> int:
        return int(self._fh.tell())

    def widen(self, block_size: int | None = None) -> None:
        """Fetch ``block_size`` bytes (default :data:`REMOTE_BLOCK_SIZE`) per ranged read from now on: a video opened
        with small blocks to read its header (:data:`INDEX_BLOCK_SIZE`) that is to be read whole. A file object
        without fsspec's block cache is left as it is."""
        from fsspec.caching import BlockCache

        size = REMOTE_BLOCK_SIZE if block_size is None else block_size
        cache = getattr(self._fh, "cache", None)
        if isinstance(cache, BlockCache) and cache.blocksize != size:
            self._fh.cache = BlockCache(size, cache.fetcher, cache.size, maxblocks=REMOTE_MAX_BLOCKS)
            self._fh.blocksize = size

    @property
    def version(self) -> tuple[str, str, str, Any] | None:
        """What names this version of the store's file: its filesystem, path, etag (or generation) and size
        from the fsspec file's ``details``; ``None`` when the store gave no etag or path (the AVI index cache,
        :func:`~lightly_airflow.video.avi._cached_positions`, then reads the index each time)."""
        details = getattr(self._fh, "details", None)
        details = details if isinstance(details, dict) else {}
        tag = next((details[k] for k in ("ETag", "etag", "generation") if details.get(k)), None)
        path = getattr(self._fh, "path", None)
        if not (tag and path):
            return None
        return type(getattr(self._fh, "fs", None)).__name__, str(path), str(tag), details.get("size")

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


#: Bytes :func:`reads_elsewhere` reads at a video's start and at its end.
PROBE_BYTES = 64 << 10


def reads_elsewhere(source: Any) -> bool:
    """Whether the disk or store of a video whose read failed still reads it elsewhere, now: its first or its last
    :data:`PROBE_BYTES` (past the page cache for a path; never for an object store's video, below).

    A read that fails again at the same stretch of a video while its other bytes read is a bad stretch of the medium
    (a disk's bad sector): retrying the task reads the same error, so its frames are marked unreadable
    (``decode._bad_stretch``). A disk or mount that fails every read is down: the task fails and is retried. An object
    store's video (a :class:`RecordingReader`) is never taken for a bad stretch: a store keeps no bad sectors, and a
    range that fails again while small reads pass is the network's (a proxy's limit, throttling): marking its frames
    unreadable would record them so for good, where the task's retry reads them."""
    if isinstance(source, RecordingReader):
        return False

    def fresh_path(path: Any, at: int, n: int) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            with contextlib.suppress(AttributeError, OSError):  # (drop the clean cached pages: read the disk)
                os.posix_fadvise(fd, at, n, os.POSIX_FADV_DONTNEED)
            return os.pread(fd, n, at)
        finally:
            os.close(fd)

    try:
        if isinstance(source, (str, os.PathLike)):
            size = os.path.getsize(source)
        else:
            position = source.tell()
            size = int(source.seek(0, 2))
            source.seek(position)
    except (OSError, ValueError, TypeError):
        return False
    for at in (0, max(0, size - PROBE_BYTES)):
        n = min(PROBE_BYTES, size - at)
        try:
            if isinstance(source, (str, os.PathLike)):
                data: bytes | None = fresh_path(source, at, n)
            else:
                data = read_at(source, at, n)
        except Exception:  # noqa: BLE001 - any failure is a read that failed
            data = None
        if data is not None and len(data) == n:
            return True
    return False


#: The block :func:`readable_after` probes a bad stretch by, and how far past the last bytes read it looks for it.
STRETCH_BLOCK = 4 << 10
STRETCH_SEARCH = 16 << 20


def readable_after(source: Any, start: int) -> int | None:
    """The first offset after a stretch of ``source`` (a path or a seekable binary file object) that fails to read,
    looked for from ``start`` (bytes that read), to :data:`STRETCH_BLOCK`: the first block from ``start`` on (up to
    :data:`STRETCH_SEARCH` on) that fails, then doubling steps past it until one reads, then halved back to the first
    block that reads. ``start`` where no block fails (the failure passed); ``None`` where nothing after the stretch
    reads, or the size is unknown. A second stretch just past the first may be stepped over: the caller reads on from
    the offset and asks again past it where a read fails again (``decode._resume_by_bytes``)."""
    try:
        size = os.path.getsize(source) if isinstance(source, (str, os.PathLike)) else None
        if size is None:
            position = source.tell()
            size = int(source.seek(0, 2))
            source.seek(position)
    except (OSError, ValueError, TypeError, AttributeError):
        return None

    def reads(at: int) -> bool:
        return read_at(source, at, min(STRETCH_BLOCK, size - at)) is not None

    bad = next((at for at in range(start, min(size, start + STRETCH_SEARCH), STRETCH_BLOCK) if not reads(at)), -1)
    if bad < 0:
        return start
    step, good = STRETCH_BLOCK, -1
    while bad + step < size:
        if reads(bad + step):
            good = bad + step
            break
        bad, step = bad + step, step * 2
    if good < 0:
        return None
    while good - bad > STRETCH_BLOCK:
        mid = bad + (good - bad) // STRETCH_BLOCK // 2 * STRETCH_BLOCK
        if reads(mid):
            good = mid
        else:
            bad = mid
    return good


class ArchivedFileError(FileNotFoundError):
    """The store will not read the video until it is restored (S3 Glacier, Intelligent-Tiering's archive tiers,
    Azure's Archive tier): that video's problem, its frames ``missing`` with this reason, not a task retry."""


#: ``errno`` values of a read that failed (a disk, a network mount, a store's connection), not of the video's data.
READ_ERRNOS = frozenset({errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.EAGAIN,
                         errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENOTCONN, errno.ESTALE})


def is_read_error(exc: BaseException) -> bool:
    """Whether a demux error is a read that failed rather than the video's data: FFmpeg's I/O errors
    (:data:`READ_ERRNOS`: a local disk's or network mount's ``EIO``, a timeout, a reset connection) and a Python file
    object's own ``OSError`` (a connection reset, a timeout) that PyAV hands on; never FFmpeg's verdicts on the data
    (``InvalidDataError``) or a seek a raw stream refuses (``PermissionError``)."""
    import av

    if isinstance(exc, VideoReadError):
        return True
    if not isinstance(exc, OSError) or isinstance(exc, FileNotFoundError):
        return False
    if isinstance(exc, av.error.FFmpegError):
        return exc.errno in READ_ERRNOS
    return True


class VideoReadError(OSError):
    """Reading a video failed again where it had failed (a read error of its disk or store, not damage of the video):
    the task fails, so Airflow retries it, rather than committing the frames ``corrupt`` for good (an unchanged video
    is never read again)."""


def raise_read_error(source: Any) -> None:
    """Re-raise the store's read error a :class:`RecordingReader` saw (no-op for paths and other sources); an
    archived object's as :class:`ArchivedFileError`."""
    error = getattr(source, "read_error", None)
    if error is not None:
        # (imported on the error only: the datasource package is not otherwise needed by a video's task)
        from lightly_airflow.datasource.reader import archived_read_error

        archived = archived_read_error(error)
        if archived is not None:
            raise ArchivedFileError(archived) from error
        raise error


@contextlib.contextmanager
def open_video_source(
    datasource_uri: str, key: str, credentials: StorageCredentials | None = None, *, fs: Any = None,
    root: str | None = None, block_size: int | None = None,
) -> Iterator[Any]:
    """Yield what ``av.open`` takes for ``key``: the local path, or an open binary file object (a
    :class:`RecordingReader` fetching ``block_size`` bytes a ranged read, default :data:`REMOTE_BLOCK_SIZE`).

    :raises FileNotFoundError: when the video does not exist.
    """
    if fs is None or root is None:
        fs, root = filesystem(datasource_uri, credentials)
    path = join_uri(root, key)
    if protocol_of(datasource_uri) == "file":
        if not fs.exists(path):
            raise FileNotFoundError(path)
        yield path
        return
    block = REMOTE_BLOCK_SIZE if block_size is None else block_size
    with fs.open(path, "rb", block_size=block, cache_type="blockcache",
                 cache_options={"maxblocks": REMOTE_MAX_BLOCKS}) as fh:
        yield RecordingReader(fh)
