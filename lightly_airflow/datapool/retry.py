"""Plan against one snapshot, commit with its version, and start over on a lost race.

:func:`with_snapshots` is the select task's loop: each attempt gets exactly one pinned
:class:`~lightly_airflow.datapool.snapshot.Snapshot`, does all its reads from it and commits on top of its
version; when another run committed first (:class:`ConcurrentCommitError`), the next attempt takes a new
snapshot and plans again (diversity selection depends on what the pool holds, so a blind rebase is wrong).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from lightly_airflow.datapool.errors import ConcurrentCommitError

log = logging.getLogger(__name__)

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
T = TypeVar("T")


class SnapshotSource(Protocol[S_co]):
    """Anything that pins snapshots: :class:`~lightly_airflow.datapool.pool.Datapool`, or a fake in tests."""

    def snapshot(self) -> S_co: ...


def with_snapshots(
    pool: SnapshotSource[S], attempt: Callable[[S], T], *, max_attempts: int = 3, first: S | None = None,
) -> T:
    """Run ``attempt(snapshot)`` until it does not raise :class:`ConcurrentCommitError`.

    :param pool: where snapshots come from; one ``pool.snapshot()`` per attempt.
    :param attempt: plans against its snapshot and commits with it; returns the result.
    :param max_attempts: attempts in all; the last conflict is raised.
    :param first: a snapshot the caller already pinned, used by the first attempt instead of a new one.
    :raises ConcurrentCommitError: every attempt lost its race.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}.")
    for n in range(1, max_attempts + 1):
        snap = first if n == 1 and first is not None else pool.snapshot()
        try:
            return attempt(snap)
        except ConcurrentCommitError as exc:
            if n == max_attempts:
                log.error("Attempt %d of %d lost its race too; giving up: %s", n, max_attempts, exc)
                raise
            log.warning(
                "Another run committed while this one selected (%s); planning again on a new snapshot "
                "(attempt %d of %d).", exc, n + 1, max_attempts,
            )
    raise AssertionError("unreachable")
