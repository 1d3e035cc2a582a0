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


class DatapoolUnreachableError(DatapoolError):
    """The store refuses the pool's location (a missing bucket, rejected or too narrow credentials)."""

    def __init__(self, uri: str, problem: str, fix: str) -> None:
        self.problem = f"the datapool {uri} cannot be reached: {problem}."
        self.fix = f"{fix}."
        super().__init__(f"{self.problem[0].upper()}{self.problem[1:]} Fix: {self.fix}")
