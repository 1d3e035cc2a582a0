"""Exceptions of the datapool: each names what went wrong and what to do about it."""

from __future__ import annotations


class DatapoolError(ValueError):
    """A datapool operation cannot proceed (bad rows, a mismatching run, a missing version)."""


class ConcurrentCommitError(DatapoolError):
    """Another run committed to the pool after the caller read it.

    Selection depends on what the pool holds, so the caller must re-read the pool (``Datapool.version()``,
    ``selected()``), re-select, and commit again with the new ``read_version``; the pool never receives a
    blind append.
    """

    def __init__(self, message: str, *, read_version: int | None, current_version: int | None) -> None:
        super().__init__(message)
        self.read_version = read_version
        self.current_version = current_version


class EmbeddingMismatchError(DatapoolError):
    """The run's embedding model or dimension differs from the one the pool records."""


class TagExistsError(DatapoolError):
    """The run's tag name is already used by an earlier run of the pool."""


class UnknownColumnError(DatapoolError):
    """A read asked for columns the pool version does not have (a pool written before they existed): readers that
    can do without them catch this, and only this (a missing data file or an unreachable store is never read as
    "no such column")."""


class MissingDataFileError(DatapoolError):
    """A data file the read version needs is gone from the store (deleted by a VACUUM run outside
    lightly-airflow, or by hand). Readers that know the pool and its history say which and what to read instead
    (:func:`lightly_airflow.datapool.reclaim.missing_file_error`).

    :param path: the file as delta-rs names it.
    :param version: the table version that was read.
    :param detail: delta-rs' own message (for logs).
    :param message: what to say (default: a message that knows neither the pool nor its history).
    """

    def __init__(self, path: str, version: int, detail: str, message: str | None = None) -> None:
        super().__init__(message or (
            f"Version {version} of the datapool cannot be read: its data file {path} is missing (deleted outside "
            f"lightly-airflow, e.g. by Delta's own VACUUM). Read a later version; `lightly-airflow datapool history` "
            "lists them and `lightly-airflow datapool check` checks the latest."
        ))
        self.path = path
        self.version = version
        self.detail = detail


class DatapoolUnreachableError(DatapoolError):
    """The store refuses the pool's location (a missing bucket, rejected or too narrow credentials)."""

    def __init__(self, uri: str, problem: str, fix: str) -> None:
        self.problem = f"the datapool {uri} cannot be reached: {problem}."
        self.fix = f"{fix}."
        super().__init__(f"{self.problem[0].upper()}{self.problem[1:]} Fix: {self.fix}")
