"""Read the bytes of listed files from any store, the same way in every stage."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

from lightly_airflow.lightly_dir import check_relative_file_name
from lightly_airflow.storage import StorageCredentials, filesystem

logger = logging.getLogger(__name__)


class MissingFileError(FileNotFoundError):
    """A listed file that is gone (deleted between listing and reading); ``key`` names it."""

    def __init__(self, datasource_uri: str, key: str) -> None:
        super().__init__(
            errno.ENOENT,
            f"{key!r} was listed in {datasource_uri} but no longer exists (deleted or renamed after listing)",
            key,
        )
        self.key = key
        self.datasource_uri = datasource_uri


def _checked(key: str) -> str:
    """``key``, when it names a file below the datasource root. A backslash is a character of the name, as on every
    store but Windows disks (a listing lists ``a\\b.jpg`` from S3 or a Linux folder): refused there only."""
    problem = check_relative_file_name(key if os.sep == "\\" else key.replace("\\", "_"))
    if problem:
        raise ValueError(f"Key {key!r} {problem}.")
    return key


#: What a GET of an archived object raises: S3's ``InvalidObjectState`` (s3fs: a PermissionError with this text;
#: also INTELLIGENT_TIERING's archive tiers, which no listing shows) and Azure's ``BlobArchived``.
_ARCHIVED_ERRORS = ("not valid for the object's storage class", "InvalidObjectState", "BlobArchived",
                    "not permitted on an archived blob")


def archived_read_error(exc: BaseException) -> str | None:
    """The per-file reason for a read that failed because the object is archived, else None (other errors
    keep their own handling: a transient one fails the task, which Airflow retries)."""
    text = f"{type(exc).__name__}: {exc}"
    if not any(m in text for m in _ARCHIVED_ERRORS):
        return None
    return (f"archived, not readable until restored ({exc}). Fix: restore it (S3 RestoreObject; Azure: set its tier to "
            "Hot or Cool): the next run that lists it restored processes it again (this run records it as missing)")


def read_bytes(datasource_uri: str, key: str, credentials: StorageCredentials | None = None) -> bytes:
    """The bytes of ``key`` (relative to ``datasource_uri``) on any store.

    :param datasource_uri: the datasource root the key is relative to.
    :param key: ``/``-separated relative path, as in a manifest.
    :param credentials: credentials of that store.
    :raises MissingFileError: (a ``FileNotFoundError``) naming the key when the file does not exist.
    :raises ValueError: for a key that leaves the datasource (``..``, absolute paths).
    """
    fs, root = filesystem(datasource_uri, credentials)
    path = f"{root}/{_checked(key)}"
    try:
        data: bytes = fs.cat_file(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MissingFileError(datasource_uri, key) from None
    return data


def read_many(
    datasource_uri: str, keys: Sequence[str], credentials: StorageCredentials | None = None, *, batch_size: int = 64
) -> dict[str, bytes | Exception]:
    """Fetch many files concurrently (one ``fs.cat`` per batch); a failure is returned per key, never raised.

    :returns: key -> bytes, :class:`MissingFileError` for a file that is gone, or the read error.
    """
    fs, root = filesystem(datasource_uri, credentials)
    out: dict[str, bytes | Exception] = {}
    for start in range(0, len(keys), max(1, batch_size)):
        chunk = list(keys[start : start + batch_size])
        paths = {}
        for key in chunk:
            try:
                paths[f"{root}/{_checked(key)}"] = key
            except ValueError as exc:
                out[key] = exc
        if not paths:
            continue
        try:
            got = fs.cat(list(paths), on_error="return")
        except Exception as exc:  # noqa: BLE001 - fall back to one by one, errors reported per key
            logger.debug("batched read failed (%s); reading one by one", exc)
            got = {}
            for path in paths:
                try:
                    got[path] = fs.cat_file(path)
                except Exception as one:  # noqa: BLE001
                    got[path] = one
        for path, key in paths.items():
            value = got.get(path, FileNotFoundError(path))
            if isinstance(value, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
                value = MissingFileError(datasource_uri, key)
            out[key] = value
    return out
