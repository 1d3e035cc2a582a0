"""Reading manifest shards and writing a stage's staging and error files (shared by metadata and predictions).

A stage reads one manifest shard (``key, size, etag, mtime`` plus the datasource/lightly URIs in the schema
metadata), writes ``sibling_uri(manifest, kind)`` and writes its per-file problems to
``errors/<stage>-shard-NNNNN.parquet`` beside it (columns ``key, stage, field, reason, path``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.staging import ERRORS, sibling_uri
from lightly_airflow.storage import StorageCredentials, write_parquet

logger = logging.getLogger(__name__)

ERROR_SCHEMA = pa.schema(
    [
        pa.field(C.KEY, pa.string()),
        pa.field("stage", pa.string()),
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("path", pa.string()),
    ]
)


class TooManyErrorsError(ValueError):
    """More than ``max_error_fraction`` of a shard's files were bad (raised after the reports are written)."""


@dataclass(frozen=True)
class Manifest:
    """One manifest shard: its rows and where its files and ``.lightly/`` folder live."""

    uri: str
    table: pa.Table
    datasource_uri: str | None
    lightly_uri: str | None

    @property
    def keys(self) -> list[str]:
        return self.table.column(C.KEY).to_pylist()


def read_manifest(manifest_uri: str, credentials: StorageCredentials | None = None) -> Manifest:
    """Read a manifest shard.

    :param manifest_uri: ``…/manifest/shard-NNNNN.parquet``.
    :param credentials: credentials of the store holding the staging area.
    :raises FileNotFoundError: when the shard does not exist.
    :raises ValueError: when it lacks the ``key`` column.
    """
    from lightly_airflow.datasource import read_manifest as read_manifest_shard

    table, meta = read_manifest_shard(manifest_uri, credentials, required=(C.KEY,))

    def text(key: str) -> str | None:
        value = meta.get(key)
        return value if isinstance(value, str) and value else None

    return Manifest(
        uri=manifest_uri,
        table=table,
        datasource_uri=text(C.DATASOURCE_URI_METADATA_KEY),
        lightly_uri=text(C.LIGHTLY_URI_METADATA_KEY),
    )


def errors_uri(manifest_uri: str, stage: str) -> str:
    """The error report of ``stage`` for a manifest shard: ``…/errors/<stage>-shard-NNNNN.parquet``."""
    head, _, name = sibling_uri(manifest_uri, ERRORS).rpartition("/")
    return f"{head}/{stage}-{name}"


@dataclass
class ProblemLog:
    """Per-file problems found by one stage, written as one error report.

    :param stage: ``metadata`` or ``predictions``.
    """

    stage: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, key: str, field_: str, reason: str, path: str | None = None) -> None:
        """Record one problem: the sample ``key`` (or ``.lightly/`` file), the field and why."""
        self.rows.append((key, field_, reason, path if path is not None else key))

    def __len__(self) -> int:
        return len(self.rows)

    def bad_keys(self) -> set[str]:
        return {r[0] for r in self.rows}

    def to_table(self) -> pa.Table:
        keys, fields_, reasons, paths = (list(x) for x in zip(*self.rows)) if self.rows else ([], [], [], [])
        return pa.table(
            {
                C.KEY: pa.array(keys, pa.string()),
                "stage": pa.array([self.stage] * len(keys), pa.string()),
                "field": pa.array(fields_, pa.string()),
                "reason": pa.array(reasons, pa.string()),
                "path": pa.array(paths, pa.string()),
            },
            schema=ERROR_SCHEMA,
        )

    def write(self, manifest_uri: str, credentials: StorageCredentials | None = None) -> str:
        """Write the report (always, even empty, so a retried task replaces a stale one)."""
        uri = errors_uri(manifest_uri, self.stage)
        write_parquet(self.to_table(), uri, credentials)
        return uri


def check_error_fraction(bad: int, total: int, max_error_fraction: float | None, what: str, report_uri: str) -> None:
    """Raise :class:`TooManyErrorsError` when ``bad / total`` exceeds ``max_error_fraction``.

    :param max_error_fraction: a share in [0, 1]; ``None`` never fails.
    """
    if max_error_fraction is None or total == 0:
        return
    if bad / total > max_error_fraction:
        raise TooManyErrorsError(
            f"{bad} of {total} files ({bad / total:.1%}) had bad {what}, more than max_error_fraction="
            f"{max_error_fraction}; see {report_uri} for every file and reason, fix the files or raise the limit."
        )


def validate_fraction(value: float | None, name: str = "max_error_fraction") -> float | None:
    """Validate an optional share in [0, 1] once, at the edge."""
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (a share of files), got {value}.")
    return value
