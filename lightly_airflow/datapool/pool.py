"""The datapool: a Delta Lake table with one row per processed sample per run, one commit per run.

Each run is one Delta version. The commit carries an application transaction keyed by the run
(``lightly-airflow/run/<run_id>``) whose version is the table version it created, so a retried task finds
its own commit and does nothing, and :meth:`Datapool.committed_version` maps a run to its snapshot. Commits
never retry on conflict (``max_commit_retries=0``): if another run committed after the caller read the pool,
the commit fails with :class:`ConcurrentCommitError` so the caller re-reads and re-selects.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from lightly_airflow import columns as C
from lightly_airflow.datapool.errors import (
    ConcurrentCommitError,
    DatapoolError,
    DatapoolUnreachableError,
    EmbeddingMismatchError,
    TagExistsError,
)
from lightly_airflow.datapool.moves import carry_tags, move_counts, plan_moves, with_moves
from lightly_airflow.datapool.rows import prepare_rows, write_batches, writer_properties
from lightly_airflow.datapool.snapshot import INITIAL_TAG_COUNT, METADATA_KEY, Snapshot, app_id, history_of
from lightly_airflow.storage import StorageCredentials, delta_uri, describe_store_error, local_path, protocol_of

log = logging.getLogger(__name__)

#: Table properties set when a pool is created: keep every version readable (time travel) by default.
#: Delta's defaults expire log files after 30 days and let VACUUM drop data files after 7.
DEFAULT_TABLE_CONFIGURATION: dict[str, str] = {
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
    "delta.enableExpiredLogCleanup": "false",
}
#: a tag name: Lightly's (``^[a-zA-Z0-9][a-zA-Z0-9 .:;=@_-]+$``: "round 2" is a Lightly tag) and ``+``, at most 128
#: characters, not ending in a space
TAG_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 ._:;=@+-]{0,126}[A-Za-z0-9._:;=@+-])?$")
#: Selected rows live in their own files (``selected=true/``), so reading the ``initial-tag`` set and a tag's
#: rows touches only those files instead of every embedding in the pool.
PARTITION_COLUMNS = [C.SELECTED]
_SECRET_WORDS = re.compile(r"secret|password|passwd|token|credential|account_key|access_key|private_key|sas", re.I)

# Indirection so a test can run the real writer in a process it kills mid-write.
_write_deltalake = write_deltalake


@dataclass(frozen=True)
class CommitResult:
    """What :meth:`Datapool.commit` did.

    :param version: the pool version holding the run (new, or the one an earlier attempt created).
    :param already_committed: ``True`` when the run had been committed before and nothing was written.
    :param tag: the run's tag name.
    :param moves: the commit's counts of its moves (:func:`~lightly_airflow.datapool.moves.move_counts`: ``moved``,
        ``moved_selected``, the pairs refused for objects), as recorded in its ``counts``; empty for an earlier
        attempt's commit (its ``counts`` in ``history()`` say).
    :param carried_frames: the keys of the moved videos' frames whose selection the commit carried (a moved video's
        frames take over its former frames' samples, ``datapool.moves``): their PNGs are written under their new
        names after the commit, as the run's picks' are; empty for an earlier attempt's commit (its rows say).
    """

    version: int
    already_committed: bool
    tag: str
    moves: dict[str, int] = field(default_factory=dict)
    carried_frames: tuple[str, ...] = ()

    @property
    def moved(self) -> int:
        """How many moved files' samples the commit's new keys took over (``moves["moved"]``; ``0``: none, or an
        earlier attempt's commit)."""
        from lightly_airflow.datapool.moves import MOVED

        return int(self.moves.get(MOVED, 0))


def default_tag(run_id: str) -> str:
    """The tag of a run that names none: the run id with characters other than ``A-Za-z0-9._-`` as ``-``.

    :param run_id: the Airflow run id, e.g. ``scheduled__2026-01-01T00:00:00+00:00``.
    """
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.")[:128]
    return tag or "run"


def validate_tag(tag: str) -> str:
    """Check a user-given tag name; return it.

    :raises DatapoolError: for ``initial-tag`` or a name outside :data:`TAG_PATTERN` (``[A-Za-z0-9 ._:;=@+-]``,
        max 128 characters).
    """
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
        raise DatapoolError(
            f"Invalid tag name {tag!r}: use 1-128 characters from A-Z a-z 0-9, space and . _ : ; = @ + - starting "
            "with a letter or digit and not ending in a space (tag_name)."
        )
    if tag == C.INITIAL_TAG:
        raise DatapoolError(f"{C.INITIAL_TAG!r} is the pool's root tag (every selected sample); choose another name.")
    return tag


def redact(value: Any) -> Any:
    """``value`` with the values of secret-looking keys replaced by ``"***"`` (for commit metadata)."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_WORDS.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class Datapool:
    """The versioned datapool table at ``uri``.

    Every public read loads the log once; a select attempt pins one :meth:`snapshot` and does all its reads
    and its commit against it.

    :param uri: ``file://``/local path, ``s3://``, ``gs://``, ``az://``/``abfs://`` URI of the table.
    :param credentials: endpoint and secrets of the store; ``None`` uses ambient credentials.
    :param table_configuration: Delta table properties set when the pool is created, overriding
        :data:`DEFAULT_TABLE_CONFIGURATION` (e.g. a shorter ``delta.logRetentionDuration``).
    """

    def __init__(
        self, uri: str, credentials: StorageCredentials | None = None, *,
        table_configuration: dict[str, str] | None = None,
    ) -> None:
        self.uri = str(uri)
        protocol = protocol_of(self.uri)
        self._table_uri = delta_uri(self.uri)
        creds = credentials or StorageCredentials()
        problem = creds.store_problem(self.uri)  # (an abfs URI of another account: delta-rs' raw Azure error)
        if problem is not None:
            raise DatapoolError(f"datapool {problem[0]} Fix: {problem[1]}")
        self._options = creds.delta_options(protocol) or None
        self._credentials = credentials
        bad = [k for k in (table_configuration or {}) if not k.startswith("delta.")]
        if bad:
            raise DatapoolError(f"table_configuration keys {bad} are not Delta table properties (delta.*).")
        self._configuration = {**DEFAULT_TABLE_CONFIGURATION, **(table_configuration or {})}

    def __repr__(self) -> str:  # never shows credentials
        return f"Datapool({self.uri!r})"

    @property
    def credentials(self) -> StorageCredentials | None:
        """The store's credentials the pool was opened with (``None``: ambient), for the files kept beside its
        table (``_vacuum/``, receipts, staging) and the data files read directly."""
        return self._credentials

    # ---------------------------------------------------------------- loading
    def _open(self, version: int | None = None) -> DeltaTable | None:
        """Load the log (latest or ``version``): the one place a :class:`DeltaTable` is constructed."""
        try:
            if version is None:
                return DeltaTable(self._table_uri, storage_options=self._options)
            return DeltaTable(self._table_uri, version=int(version), storage_options=self._options)
        except TableNotFoundError:
            return None
        except DeltaError as exc:
            raise (self._a_file() or self._damaged(exc)) from None
        except OSError as exc:
            raise (self._a_file() or self._unreachable(exc)) from None

    def _a_file(self) -> DatapoolError | None:
        """The error for a local pool URI that names a file (delta-rs says "Generic LocalFileSystem error", or the log
        reads as damaged), else ``None``; asked only once delta-rs has failed."""
        if protocol_of(self.uri) == "file" and os.path.isfile(local_path(self.uri)):
            return DatapoolError(f"No datapool at {self.uri}: it is a file. Fix: give the datapool's folder (the one "
                                 "holding _delta_log/)")
        return None

    def _unreachable(self, exc: OSError) -> Exception:
        """A clear error for a store that refuses the pool's location (a missing bucket, rejected or too narrow
        credentials, no Azure account: delta-rs says "Generic S3 error" or "Generic MicrosoftAzure error" first), with
        the fix in the words of the pool's store, else ``exc`` as it is (transient: a retry may pass)."""
        described = describe_store_error(exc, self.uri)
        if described is None:
            return exc
        return DatapoolUnreachableError(self.uri, *described)

    def _damaged(self, exc: Exception) -> DatapoolError:
        """A clear error for a log delta-rs cannot load: the damaged file and how to recover (never the raw
        native message alone)."""
        from lightly_airflow.datapool.check import log_problems

        try:
            problems = [f for f in log_problems(self.uri, self._credentials) if f.level == "error"]
        except Exception as scan_exc:  # noqa: BLE001 - the scan is a diagnosis; never hide the first error
            problems, first = [], f"(the log could not be scanned either: {type(scan_exc).__name__})"
        else:
            first = ""
        if problems:
            where = "; ".join(f"{p.path}: {p.message}" for p in problems[:3])
            return DatapoolError(f"The datapool {self.uri} cannot be read: {where}")
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return DatapoolError(
            f"The datapool {self.uri} cannot be read: {reason} {first}. Run `lightly-airflow datapool check "
            f"{self.uri}` to find the damaged file."
        )

    def snapshot(self, version: int | None = None, *, timestamp: datetime | None = None,
                 latest: Snapshot | None = None) -> Snapshot:
        """The pool pinned at one version (default: the latest; its ``table`` is ``None`` when there is no pool).

        :param version: a version to pin instead of the latest.
        :param timestamp: pin the latest version committed at or before this time (naive = UTC), by the
            commits' own timestamps (delta-rs' ``load_as_version(datetime)`` uses file modification times).
        :param latest: the latest snapshot, when the caller opened it already (its log is not loaded again; its
            table is moved to the pinned version: use the snapshot returned, not ``latest``, afterwards).
        """
        if version is not None and timestamp is not None:
            raise DatapoolError("Pass at most one of version and timestamp to pin a snapshot.")
        if latest is None:
            latest = self.snapshot_of(self._open())
        if version is None and timestamp is None:
            return latest
        if latest.table is None:
            raise DatapoolError(f"No datapool at {self.uri}: no run has committed to it yet.")
        if timestamp is not None:
            if timestamp.tzinfo is None:
                timestamp = timestamp.replace(tzinfo=UTC)
            versions = [e["version"] for e in latest.history() if e["timestamp"] and e["timestamp"] <= timestamp]
            if not versions:
                raise DatapoolError(f"No version of {self.uri} was committed at or before {timestamp.isoformat()}.")
            version = max(versions)
        assert version is not None
        top = int(latest.table.version())
        if not 0 <= int(version) <= top:
            raise DatapoolError(f"Version {version} does not exist in {self.uri}; it has versions 0..{top}.")
        if int(version) == top:
            return latest
        from lightly_airflow.datapool.reclaim import unreadable_version_error

        lost = unreadable_version_error(self.uri, self._credentials, int(version))
        if lost is not None:  # instead of delta-rs' "file not found" at the first read
            raise lost
        # Taken before the table moves: delta-rs 1.6.6 reads a pinned table's newest history entries from the latest
        # log's newest down (history_of), one GET per newer version (602 log entries for version 600 of 1,200).
        history = latest.history()
        latest.table.load_as_version(int(version))
        pinned = self.snapshot_of(latest.table)
        pinned._history = [e for e in history if e["version"] <= int(version)]
        pinned.latest_version = top  # a data file gone at the read: named with the VACUUM after this version
        return pinned

    def snapshot_of(self, table: DeltaTable | None) -> Snapshot:
        """The pool at the version ``table`` (this pool's table, loaded by the caller; ``None``: no pool) has loaded:
        the one place a :class:`Snapshot` of this pool is made."""
        return Snapshot(self.uri, table, self._credentials)

    # ---------------------------------------------------------------- state
    def exists(self) -> bool:
        """Whether a pool table exists at the URI."""
        try:
            return bool(DeltaTable.is_deltatable(self._table_uri, storage_options=self._options))
        except OSError as exc:
            raise (self._a_file() or self._unreachable(exc)) from None

    def version(self) -> int | None:
        """The latest version, or ``None`` when there is no pool yet (pass it as ``read_version``)."""
        return self.snapshot().version

    def committed_version(self, run_id: str) -> int | None:
        """The pool version the run committed, or ``None`` if it has not committed."""
        return self.snapshot().committed_version(run_id)

    def embedding_info(self) -> dict[str, Any] | None:
        """``{"model": str, "dim": int}`` recorded by the first run, or ``None`` for a pool without runs."""
        return self.snapshot().embedding_info()

    def history(self) -> list[dict[str, Any]]:
        """Every version, oldest first: ``version, timestamp, run_id, dag_id, tag, counts`` (plus ``operation``,
        ``rows``, ``selected``, ``config``, ``embedding_model``, ``embedding_dim`` for run commits)."""
        return self.snapshot().history()

    def tags(self) -> list[dict[str, Any]]:
        """``initial-tag`` then one entry per run: ``name, run_id, version, count`` (samples carrying the tag)."""
        return self.snapshot().tags()

    # ---------------------------------------------------------------- reading
    def read(
        self, *, version: int | None = None, tag: str | None = None, run_id: str | None = None,
        timestamp: datetime | None = None, columns: list[str] | None = None,
    ) -> pa.Table:
        """A snapshot of the pool, optionally only the rows of one tag.

        :param version: the pool version to read (default: latest).
        :param tag: keep only the rows carrying this tag (``initial-tag``: every key whose latest row is selected,
            that row; a run's tag: the rows that run selected).
        :param run_id: read the snapshot the run committed (the pool as it was right after that run).
        :param timestamp: read the latest version committed at or before this time (naive = UTC).
        :param columns: columns to return (default: all).
        :raises DatapoolError: for more than one of version/run_id/timestamp, an unknown run, tag or column.
        """
        if sum(x is not None for x in (version, run_id, timestamp)) > 1:
            raise DatapoolError("Pass at most one of version, run_id and timestamp to read a snapshot.")
        if run_id is not None:
            version = self.committed_version(run_id)
            if version is None:
                raise DatapoolError(f"Run {run_id!r} has not committed to {self.uri}; see `lightly-airflow datapool history`.")
        if version is None and timestamp is None:
            return self.snapshot().read(tag=tag, columns=columns)
        latest = self.snapshot()
        known = latest.tag_names()  # a tag of a later run reads as empty in an older version
        pinned = self.snapshot(version, timestamp=timestamp, latest=latest)  # (the log loaded above)
        return pinned.read(tag=tag, columns=columns, known_tags=known)

    def selected(self, columns: list[str] | None = None) -> pa.Table:
        """The ``initial-tag`` set in pick order: every key whose latest row is selected (a newer unselected
        version or a tombstone ends a selection; ``snapshot.initial_tag_sql``).

        :param columns: columns to return (default: all); ``embedding`` comes back as
            ``fixed_size_list<float32>[dim]``.
        """
        return self.snapshot().selected(columns)

    def known_files(self, *, missing: bool = True) -> pa.Table:
        """``key, etag, content_hash, status`` of the files the pool knows (latest row per key, no tombstone;
        ``missing=False``: nor a key whose latest row is ``missing``): the diff base, by the one rule
        :func:`~lightly_airflow.datapool.snapshot.known_rows` (:meth:`Snapshot.known_files
        <lightly_airflow.datapool.snapshot.Snapshot.known_files>`)."""
        return self.snapshot().known_files(missing=missing)

    def embeddings_for(self, keys_etags: pa.Table, *, with_rules: bool = False) -> pa.Table:
        """``key, etag, embedding`` of pool samples whose (key, etag) is in ``keys_etags`` (to reuse embeddings).

        :param keys_etags: a table with ``key`` and ``etag`` columns.
        :param with_rules: also ``pixel_rules`` (the pixel rules version they were computed under, or null).
        """
        return self.snapshot().embeddings_for(keys_etags, with_rules=with_rules)

    # ---------------------------------------------------------------- writing
    def commit(
        self, rows: pa.Table, *, run_id: str, dag_id: str, tag: str | None, config: dict[str, Any],
        counts: dict[str, Any], embedding_model: str, embedding_dim: int, read_version: int | None = None,
        datasource_uri: str | None = None, snapshot: Snapshot | None = None,
        started_by: dict[str, Any] | None = None, stop_reason: str | None = None,
        review: dict[str, Any] | None = None, moves: Sequence[tuple[str, str]] | None = None,
    ) -> CommitResult:
        """Commit one run's rows as one new pool version; a no-op if the run committed before.

        :param rows: one row per processed sample of the run (columns of :mod:`lightly_airflow.columns` plus
            ``selected`` and ``pick_rank``); new columns are added to the pool, missing ones read as null.
        :param run_id: the Airflow run id; keys the idempotent application transaction.
        :param dag_id: the Airflow DAG id.
        :param tag: the run's tag, or ``None`` for :func:`default_tag` of the run id.
        :param config: the selection config (recorded in the commit metadata; secret-looking keys redacted).
        :param counts: the run's counts (recorded in the commit metadata).
        :param embedding_model: the encoder id; must match the pool's.
        :param embedding_dim: the embedding dimension; must match the pool's.
        :param read_version: the pool version the caller read before selecting (``None``: no pool yet);
            ignored when ``snapshot`` is given.
        :param datasource_uri: the datasource root the run's keys are relative to (recorded for exports).
        :param snapshot: the snapshot the caller selected against: the commit checks the run, the tag and the
            embedding model against it without reading the log again, and writes exactly on top of its
            version (the log is read again only if that write loses a race).
        :param started_by: what started the run (:meth:`RunOrigin.to_dict <lightly_airflow.run_origin.RunOrigin.to_dict>`),
            recorded as ``started_by`` in the commit (``history()``).
        :param stop_reason: why the selection stopped (``n_reached``, …), recorded for a report rebuilt from the
            pool after a worker died past the commit.
        :param review: a reviewed run's decision (:meth:`Review.to_dict <lightly_airflow.review.Review.to_dict>`:
            who committed the proposal, when), recorded as ``review`` (``history()``).
        :param moves: ``(new key, gone key)`` of the run's new files with the content of a file the datasource no
            longer lists (:attr:`GoneFiles.moved <lightly_airflow.datasource.gone.GoneFiles.moved>`; never a copy
            whose old key is still listed): each new key takes over the gone key's sample, its selection and tags,
            and the gone key gets a tombstone (:mod:`lightly_airflow.datapool.moves`); counted as ``counts.moved``.
        :raises ConcurrentCommitError: another run committed since ``read_version``: re-read and re-select.
        :raises EmbeddingMismatchError: model or dimension differ from the pool's.
        :raises TagExistsError: ``tag`` names an earlier run's tag.
        """
        for name, value in (("run_id", run_id), ("dag_id", dag_id), ("embedding_model", embedding_model)):
            if not isinstance(value, str) or not value:
                raise DatapoolError(f"commit needs a non-empty string {name}, got {value!r}.")
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, (int, np.integer)) or embedding_dim <= 0:
            raise DatapoolError(f"embedding_dim must be a positive int, got {embedding_dim!r}.")
        tag_name = validate_tag(tag) if tag is not None else default_tag(run_id)

        base = snapshot if snapshot is not None else self.snapshot()
        table = base.table
        current = base.version
        if snapshot is not None:
            read_version = current
        if table is not None:
            done = self._already_committed(base, run_id, dag_id)
            if done is not None:
                return done
            if read_version is None and current == 0 and not base.history()[0]["run_id"]:
                read_version = 0  # the pool was created empty (e.g. by an attempt killed before its data commit)
        if read_version != current and not _only_no_data_since(base, read_version):
            raise ConcurrentCommitError(
                f"{self.uri} is at version {current} but run {run_id!r} read version {read_version}: "
                f"{_since(base, read_version)} committed in between. Re-read the pool and re-select, then commit "
                "with the new read_version.",
                read_version=read_version, current_version=current,
            )
        if table is not None:
            info = base.embedding_info()
            if info and (info["model"] != embedding_model or info["dim"] != int(embedding_dim)):
                raise EmbeddingMismatchError(
                    f"{self.uri} holds embeddings of model {info['model']!r} (dim {info['dim']}) but run {run_id!r} "
                    f"used {embedding_model!r} (dim {int(embedding_dim)}); embed with the pool's model or use a new "
                    "datapool."
                )
            check_tag_free(base, tag_name)

        committed_at = datetime.now(UTC)
        new_version = 1 if current is None else current + 1
        refused: dict[str, int] = {}  # (moves refused for a reason to count: an image's objects)
        plan = plan_moves(base, rows, moves or (), refused)  # (on exactly base's rows: they land on them)
        data = prepare_rows(
            with_moves(rows, plan), run_id=run_id, dag_id=dag_id, tag=tag_name, embedding_model=embedding_model,
            embedding_dim=int(embedding_dim), commit_version=new_version, committed_at=committed_at,
            pool_schema=None if table is None else pa.schema(table.schema().to_arrow()),
        )
        data = carry_tags(data, plan)
        if table is None:
            try:
                table = self._create(data.schema, run_id)
            except ConcurrentCommitError:
                done = self._already_committed(self.snapshot(), run_id, dag_id)
                if done is not None:  # another attempt of this run created the pool and committed it
                    return done
                raise
        # (the run's own picks: a moved file's carried selection keeps the tag of the run that picked it)
        n_selected = int(pc.sum(data.column(C.SELECTED)).as_py() or 0) - sum(m.selected for m in plan)
        meta = {
            "run_id": run_id, "dag_id": dag_id, "tag": tag_name, "config": redact(_jsonable(config or {})),
            "counts": _jsonable({**(counts or {}), **move_counts(plan, refused)}),
            "rows": data.num_rows, "selected": n_selected,
            "embedding_model": embedding_model, "embedding_dim": int(embedding_dim),
            "version": new_version,  # max_commit_retries=0: it lands exactly here or not at all
            INITIAL_TAG_COUNT: base.initial_tag_count_after(data),  # (on exactly base's rows: they land on them)
        }
        if datasource_uri:
            meta["datasource_uri"] = str(datasource_uri)
        if started_by:
            meta["started_by"] = _jsonable(started_by)
        if stop_reason:
            meta["stop_reason"] = str(stop_reason)
        if review:
            meta["review"] = _jsonable(review)
        try:
            _write_deltalake(
                table, write_batches(data), mode="append", schema_mode="merge",
                partition_by=table.metadata().partition_columns or None, writer_properties=writer_properties(data.schema),
                commit_properties=CommitProperties(
                    custom_metadata={METADATA_KEY: meta},
                    app_transactions=[Transaction(app_id(run_id), new_version)],
                    max_commit_retries=0,
                ),
            )
        except CommitFailedError:
            latest = self.snapshot()
            done = self._already_committed(latest, run_id, dag_id)
            if done is not None:
                return done
            if _only_no_data_since(latest, current):  # Delta's VACUUM committed meanwhile: write on top of it
                return self.commit(
                    rows, run_id=run_id, dag_id=dag_id, tag=tag, config=config, counts=counts,
                    embedding_model=embedding_model, embedding_dim=embedding_dim, datasource_uri=datasource_uri,
                    snapshot=latest, started_by=started_by, stop_reason=stop_reason, review=review, moves=moves,
                )
            raise ConcurrentCommitError(
                f"Another run committed to {self.uri} while run {run_id!r} was writing (pool now at version "
                f"{latest.version}, expected {new_version}); re-read the pool and re-select.",
                read_version=read_version, current_version=latest.version,
            ) from None
        log.info(
            "Committed run %s to %s as version %d: %d rows, %d selected, tag %r.",
            run_id, self.uri, new_version, data.num_rows, n_selected, tag_name,
        )
        self.record_commit(run_id, new_version, tag_name)
        from lightly_airflow.datapool.history_index import write_due_segment

        write_due_segment(self.uri, self._credentials, new_version, lambda: self.snapshot().history())
        return CommitResult(new_version, False, tag_name, move_counts(plan, refused),
                            tuple(m.new_key for m in plan if m.selected and m.frame is not None))

    def record_commit(self, run_id: str, version: int, tag: str | None) -> None:
        """Write the run's commit receipt if it is missing (:mod:`lightly_airflow.datapool.receipts`): what
        lets ``datapool check`` tell a deleted log entry from an attempt killed before its commit."""
        from lightly_airflow.datapool.receipts import write_receipt

        write_receipt(self.uri, self._credentials, run_id=run_id, version=version, tag=tag)

    def _create(self, schema: pa.Schema, run_id: str) -> DeltaTable:
        try:
            return DeltaTable.create(
                self._table_uri, schema, mode="error", name="lightly datapool", partition_by=PARTITION_COLUMNS,
                description="lightly-airflow datapool: one row per processed sample per run",
                configuration=self._configuration, storage_options=self._options,
                commit_properties=CommitProperties(
                    custom_metadata={METADATA_KEY: {"operation": "create", "version": 0, INITIAL_TAG_COUNT: 0}}),
            )
        except DeltaError as exc:
            if self.exists():
                raise ConcurrentCommitError(
                    f"Another run created {self.uri} while run {run_id!r} was committing; re-read the pool and "
                    "re-select.", read_version=None, current_version=self.version(),
                ) from None
            raise DatapoolError(f"Cannot create the datapool at {self.uri}: {exc}") from None

    def _already_committed(self, snap: Snapshot, run_id: str, dag_id: str) -> CommitResult | None:
        done = snap.committed_version(run_id)
        if done is None:
            return None
        entry = snap.entry(done)
        if entry is not None and entry["dag_id"] not in (None, dag_id):
            raise DatapoolError(
                f"Run id {run_id!r} was already committed to {self.uri} by DAG {entry['dag_id']!r} (version {done}); "
                f"DAG {dag_id!r} cannot reuse it: give each DAG its own datapool."
            )
        log.info("Run %s is already committed to %s as version %d; nothing to do.", run_id, self.uri, done)
        tag = entry["tag"] if entry else default_tag(run_id)
        self.record_commit(run_id, done, tag)  # an attempt killed between its log entry and its receipt
        return CommitResult(done, True, tag)


def check_tag_free(snap: Snapshot, tag_name: str) -> None:
    """Raise :class:`TagExistsError` if a run of ``snap`` already used ``tag_name``."""
    for entry in snap.history():
        if entry["tag"] == tag_name:
            raise TagExistsError(
                f"Tag {tag_name!r} already exists in {snap.uri} (run {entry['run_id']!r}, version "
                f"{entry['version']}); pass another tag_name."
            )


#: Operations other engines commit without changing a row: Delta VACUUM (Spark, delta-rs' ``DeltaTable.vacuum``)
#: writes one version before and one after deleting files. ``datapool vacuum`` writes none.
NO_DATA_OPERATIONS = frozenset({"VACUUM START", "VACUUM END"})


def _only_no_data_since(snap: Snapshot, read_version: int | None) -> bool:
    """Whether every version of ``snap`` after ``read_version`` is a :data:`NO_DATA_OPERATIONS` commit: a run
    that selected against ``read_version`` saw exactly the rows it would see now, so it commits on top of them."""
    if snap.table is None or read_version is None or snap.version is None or read_version >= snap.version:
        return False
    newer = [e for e in snap.history() if e["version"] > read_version]
    if len(newer) != snap.version - read_version or not all(e["operation"] in NO_DATA_OPERATIONS for e in newer):
        return False
    log.info("Versions %d..%d of %s are Delta VACUUM's own commits (no row changed): committing on top of them.",
             read_version + 1, snap.version, snap.uri)
    return True


def _since(snap: Snapshot, read_version: int | None) -> str:
    if snap.table is None:
        return "the pool was deleted or never existed"
    runs = [e["run_id"] or e["operation"] for e in snap.history() if read_version is None or e["version"] > read_version]
    return "version(s) of " + ", ".join(repr(r) for r in runs) if runs else "another writer"


__all__ = ["CommitResult", "Datapool", "Snapshot", "app_id", "check_tag_free", "default_tag", "history_of",
           "redact", "validate_tag"]
