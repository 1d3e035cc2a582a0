"""The datapool: a versioned Delta Lake table of every processed sample, with tags and snapshots.

``Datapool(uri, credentials)`` reads snapshots (by version, run, tag or time) and commits one run as one
atomic, idempotent version. Nothing here imports Airflow.
"""

from lightly_airflow.datapool.errors import (
    ConcurrentCommitError,
    DatapoolError,
    DatapoolUnreachableError,
    EmbeddingMismatchError,
    TagExistsError,
)
from lightly_airflow.datapool.pool import (
    DEFAULT_TABLE_CONFIGURATION,
    CommitResult,
    Datapool,
    app_id,
    default_tag,
)
from lightly_airflow.datapool.reclaim import VacuumResult, vacuum
from lightly_airflow.datapool.retry import with_snapshots
from lightly_airflow.datapool.rows import COMMIT_VERSION, sample_id
from lightly_airflow.datapool.snapshot import Snapshot

__all__ = [
    "COMMIT_VERSION",
    "CommitResult",
    "ConcurrentCommitError",
    "DEFAULT_TABLE_CONFIGURATION",
    "Datapool",
    "DatapoolError",
    "DatapoolUnreachableError",
    "EmbeddingMismatchError",
    "Snapshot",
    "TagExistsError",
    "VacuumResult",
    "app_id",
    "default_tag",
    "sample_id",
    "vacuum",
    "with_snapshots",
]
