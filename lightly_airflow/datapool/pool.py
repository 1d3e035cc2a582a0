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
import re
from dataclasses import dataclass
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
    EmbeddingMismatchError,
    TagExistsError,
)
from lightly_airflow.datapool.reading import query, quote_ident, quote_literal
from lightly_airflow.datapool.rows import COMMIT_VERSION, prepare_rows
from lightly_airflow.storage import StorageCredentials, delta_uri, protocol_of

log = logging.getLogger(__name__)

#: Table properties set when a pool is created: keep every version readable (time travel) by default.
#: Delta's defaults expire log files after 30 days and let VACUUM drop data files after 7.
DEFAULT_TABLE_CONFIGURATION: dict[str, str] = {
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
    "delta.enableExpiredLogCleanup": "false",
}
METADATA_KEY = "lightly"
APP_ID_PREFIX = "lightly-airflow/run/"
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
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
    """

    version: int
    already_committed: bool
    tag: str


def app_id(run_id: str) -> str:
    """The Delta application-transaction id of a run."""
    return APP_ID_PREFIX + run_id


def default_tag(run_id: str) -> str:
    """The tag of a run that names none: the run id with characters other than ``A-Za-z0-9._-`` as ``-``.

    :param run_id: the Airflow run id, e.g. ``scheduled__2026-01-01T00:00:00+00:00``.
    """
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.")[:128]
    return tag or "run"


def validate_tag(tag: str) -> str:
    """Check a user-given tag name; return it.

    :raises DatapoolError: for ``initial-tag`` or a name outside ``[A-Za-z0-9._:+-]`` (max 128 characters).
    """
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
        raise DatapoolError(
            f"Invalid tag name {tag!r}: use 1-128 characters from A-Z a-z 0-9 . _ : + - starting with a letter or "
            "digit (tag_name)."
        )
    if tag == C.INITIAL_TAG:
        raise DatapoolError(f"{C.INITIAL_TAG!r} is the pool's root tag (every selected sample); choose another tag_name.")
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


def _latest_per_key(table: pa.Table, key_columns: tuple[str, ...] = (C.KEY,)) -> pa.Table:
    """Keep the row with the highest ``commit_version`` per key (the table must carry both)."""
    if table.num_rows < 2:
        return table
    if len(key_columns) == 1:
        distinct = pc.count_distinct(table.column(key_columns[0])).as_py()
    else:
        distinct = table.group_by(list(key_columns)).aggregate([]).num_rows
    if distinct == table.num_rows:
        return table
    order = pc.sort_indices(
        table, sort_keys=[*((k, "ascending") for k in key_columns), (COMMIT_VERSION, "descending")]
    ).to_numpy()
    keys = [table.column(k).take(order).to_numpy(zero_copy_only=False) for k in key_columns]
    first = np.ones(len(order), dtype=bool)
    same = np.ones(len(order) - 1, dtype=bool)
    for k in keys:
        same &= k[1:] == k[:-1]
    first[1:] = ~same
    return table.take(np.sort(order[first]))


class Datapool:
    """The versioned datapool table at ``uri``.

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
        self._options = (credentials or StorageCredentials()).delta_options(protocol) or None
        bad = [k for k in (table_configuration or {}) if not k.startswith("delta.")]
        if bad:
            raise DatapoolError(f"table_configuration keys {bad} are not Delta table properties (delta.*).")
        self._configuration = {**DEFAULT_TABLE_CONFIGURATION, **(table_configuration or {})}

    def __repr__(self) -> str:  # never shows credentials
        return f"Datapool({self.uri!r})"

    # ---------------------------------------------------------------- loading
    def _load(self, version: int | None = None, timestamp: datetime | None = None) -> DeltaTable | None:
        try:
            table = DeltaTable(self._table_uri, storage_options=self._options)
        except TableNotFoundError:
            return None
        if version is not None:
            latest = table.version()
            if not 0 <= int(version) <= latest:
                raise DatapoolError(f"Version {version} does not exist in {self.uri}; it has versions 0..{latest}.")
            table.load_as_version(int(version))
        elif timestamp is not None:
            # By the commits' own timestamps (as history() shows them), not delta-rs' load_as_version(datetime),
            # which uses the log files' modification times: whole seconds on some stores.
            if timestamp.tzinfo is None:
                timestamp = timestamp.replace(tzinfo=UTC)
            versions = [e["version"] for e in _history(table) if e["timestamp"] and e["timestamp"] <= timestamp]
            if not versions:
                raise DatapoolError(f"No version of {self.uri} was committed at or before {timestamp.isoformat()}.")
            table.load_as_version(max(versions))
        return table

    def _require(self, version: int | None = None, timestamp: datetime | None = None) -> DeltaTable:
        table = self._load(version, timestamp)
        if table is None:
            raise DatapoolError(f"No datapool at {self.uri}: no run has committed to it yet.")
        return table

    # ---------------------------------------------------------------- state
    def exists(self) -> bool:
        """Whether a pool table exists at the URI."""
        return DeltaTable.is_deltatable(self._table_uri, storage_options=self._options)

    def version(self) -> int | None:
        """The latest version, or ``None`` when there is no pool yet (pass it as ``read_version``)."""
        table = self._load()
        return None if table is None else table.version()

    def committed_version(self, run_id: str) -> int | None:
        """The pool version the run committed, or ``None`` if it has not committed."""
        table = self._load()
        return None if table is None else table.transaction_version(app_id(run_id))

    def embedding_info(self) -> dict[str, Any] | None:
        """``{"model": str, "dim": int}`` recorded by the first run, or ``None`` for a pool without runs."""
        table = self._load()
        return None if table is None else _embedding_info(table)

    def history(self) -> list[dict[str, Any]]:
        """Every version, oldest first: ``version, timestamp, run_id, dag_id, tag, counts`` (plus ``operation``,
        ``rows``, ``selected``, ``config``, ``embedding_model``, ``embedding_dim`` for run commits)."""
        table = self._load()
        return [] if table is None else _history(table)

    def tags(self) -> list[dict[str, Any]]:
        """``initial-tag`` then one entry per run: ``name, run_id, version, count`` (samples carrying the tag)."""
        table = self._load()
        if table is None:
            return []
        out = [{"name": C.INITIAL_TAG, "run_id": None, "version": table.version(), "count": _count_selected(table)}]
        for entry in _history(table):
            if entry["run_id"] is not None and entry["tag"]:
                out.append({"name": entry["tag"], "run_id": entry["run_id"], "version": entry["version"],
                            "count": entry["selected"]})
        return out

    # ---------------------------------------------------------------- reading
    def read(
        self, *, version: int | None = None, tag: str | None = None, run_id: str | None = None,
        timestamp: datetime | None = None, columns: list[str] | None = None,
    ) -> pa.Table:
        """A snapshot of the pool, optionally only the rows of one tag.

        :param version: the pool version to read (default: latest).
        :param tag: keep only the rows carrying this tag (``initial-tag``: every selected row).
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
        table = self._require(version, timestamp)
        where = ""
        if tag is not None:
            known = {t["name"] for t in self.tags()}
            if tag not in known:
                raise DatapoolError(f"Tag {tag!r} does not exist in {self.uri}; known tags: {sorted(known)}.")
            # Tags sit only on selected rows: the first condition prunes every unselected file.
            where = f"WHERE {quote_ident(C.SELECTED)} AND array_has({quote_ident(C.TAGS)}, {quote_literal(tag)})"
        return self._select(table, columns, where, order=f"{quote_ident(COMMIT_VERSION)}, {quote_ident(C.KEY)}")

    def selected(self, columns: list[str] | None = None) -> pa.Table:
        """The ``initial-tag`` set: every sample ever selected, the latest row per key, in pick order.

        :param columns: columns to return (default: all); ``embedding`` comes back as
            ``fixed_size_list<float32>[dim]``.
        """
        table = self._load()
        if table is None:
            return pa.table({C.KEY: pa.array([], pa.string())}) if columns is None else _empty(columns)
        where = f"WHERE {quote_ident(C.SELECTED)} AND array_has({quote_ident(C.TAGS)}, {quote_literal(C.INITIAL_TAG)})"
        rows = self._select(
            table, columns, where, extra=(C.KEY, COMMIT_VERSION),
            order=f"{quote_ident(COMMIT_VERSION)}, {quote_ident(C.PICK_RANK)}",
        )
        return self._finish(_latest_per_key(rows), columns, table)

    def known_files(self) -> pa.Table:
        """``key, etag, content_hash, status`` of every processed sample (latest row per key): the diff base."""
        wanted = [C.KEY, C.ETAG, C.CONTENT_HASH, C.STATUS]
        table = self._load()
        if table is None:
            return _empty(wanted)
        present = [c for c in wanted if c in _column_names(table)]
        rows = _latest_per_key(self._select(table, present, "", extra=(C.KEY, COMMIT_VERSION)))
        for name in wanted:
            if name not in rows.column_names:
                rows = rows.append_column(name, pa.nulls(rows.num_rows, pa.string()))
        return rows.select(wanted)

    def embeddings_for(self, keys_etags: pa.Table) -> pa.Table:
        """``key, etag, embedding`` of pool samples whose (key, etag) is in ``keys_etags`` (to reuse embeddings).

        :param keys_etags: a table with ``key`` and ``etag`` columns.
        """
        for name in (C.KEY, C.ETAG):
            if name not in keys_etags.column_names:
                raise DatapoolError(f"embeddings_for needs a table with 'key' and 'etag' columns; {name!r} is missing.")
        wanted = pa.table({
            C.KEY: keys_etags.column(C.KEY).cast(pa.string()),
            C.ETAG: keys_etags.column(C.ETAG).cast(pa.string()),
        })
        table = self._load()
        info = None if table is None else _embedding_info(table)
        if table is None or info is None or wanted.num_rows == 0:
            return _empty([C.KEY, C.ETAG, C.EMBEDDING], dim=info["dim"] if info else None)
        wanted = wanted.group_by([C.KEY, C.ETAG]).aggregate([])
        # Cheap first pass over the identity columns: most wanted files are new, and then no embedding is read.
        ids = self._select(table, [C.KEY, C.ETAG], "")
        ids = ids.set_column(1, C.ETAG, ids.column(C.ETAG).cast(pa.string()))
        hit_keys = pc.unique(ids.join(wanted, [C.KEY, C.ETAG], join_type="inner").column(C.KEY)).to_pylist()
        if not hit_keys:
            return _empty([C.KEY, C.ETAG, C.EMBEDDING], dim=info["dim"])
        where = f"WHERE {quote_ident(C.KEY)} IN ({', '.join(quote_literal(k) for k in hit_keys)})"
        pool = self._select(table, [C.KEY, C.ETAG, C.EMBEDDING, COMMIT_VERSION], where)
        pool = pool.filter(pc.is_valid(pool.column(C.EMBEDDING)))
        pool = pool.set_column(pool.schema.get_field_index(C.ETAG), C.ETAG, pool.column(C.ETAG).cast(pa.string()))
        ids = pool.select([C.KEY, C.ETAG]).append_column("__row", pa.array(np.arange(pool.num_rows), pa.int64()))
        hits = ids.join(wanted, [C.KEY, C.ETAG], join_type="inner")
        matched = _latest_per_key(pool.take(np.sort(hits.column("__row").to_numpy())), (C.KEY, C.ETAG))
        return self._finish(matched, [C.KEY, C.ETAG, C.EMBEDDING], table)

    def _select(
        self, table: DeltaTable, columns: list[str] | None, where: str, *, extra: tuple[str, ...] = (),
        order: str | None = None,
    ) -> pa.Table:
        available = _column_names(table)
        if columns is not None:
            unknown = [c for c in columns if c not in available]
            if unknown:
                raise DatapoolError(f"Unknown column(s) {unknown} in {self.uri}; available: {available}.")
        names = list(available if columns is None else columns)
        names += [c for c in extra if c not in names and c in available]
        projection = ", ".join(quote_ident(c) for c in names)
        sql = f"SELECT {projection} FROM pool {where}"
        if order:
            sql += f" ORDER BY {order}"
        result = query(table, sql)
        return self._finish(result, None, table)

    def _finish(self, rows: pa.Table, columns: list[str] | None, table: DeltaTable) -> pa.Table:
        """Project to ``columns`` and give ``embedding`` its fixed size."""
        if columns is not None:
            rows = rows.select(columns)
        if C.EMBEDDING in rows.column_names:
            info = _embedding_info(table)
            col = rows.column(C.EMBEDDING)
            if info and not pa.types.is_fixed_size_list(col.type):
                fixed = pa.list_(pa.float32(), info["dim"])
                idx = rows.schema.get_field_index(C.EMBEDDING)
                rows = rows.set_column(idx, pa.field(C.EMBEDDING, fixed, True, rows.schema.field(idx).metadata), col.cast(fixed))
        return rows

    # ---------------------------------------------------------------- writing
    def commit(
        self, rows: pa.Table, *, run_id: str, dag_id: str, tag: str | None, config: dict, counts: dict,
        embedding_model: str, embedding_dim: int, read_version: int | None, datasource_uri: str | None = None,
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
        :param read_version: the pool version the caller read before selecting (``None``: no pool yet).
        :param datasource_uri: the datasource root the run's keys are relative to (recorded for exports).
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

        table = self._load()
        current = None if table is None else table.version()
        if table is not None:
            done = self._already_committed(table, run_id, dag_id)
            if done is not None:
                return done
            if read_version is None and current == 0 and not _history(table)[0]["run_id"]:
                read_version = 0  # the pool was created empty (e.g. by an attempt killed before its data commit)
        if read_version != current:
            raise ConcurrentCommitError(
                f"{self.uri} is at version {current} but run {run_id!r} read version {read_version}: "
                f"{_since(table, read_version)} committed in between. Re-read the pool and re-select, then commit "
                "with the new read_version.",
                read_version=read_version, current_version=current,
            )
        if table is not None:
            info = _embedding_info(table)
            if info and (info["model"] != embedding_model or info["dim"] != int(embedding_dim)):
                raise EmbeddingMismatchError(
                    f"{self.uri} holds embeddings of model {info['model']!r} (dim {info['dim']}) but run {run_id!r} "
                    f"used {embedding_model!r} (dim {int(embedding_dim)}); embed with the pool's model or use a new "
                    "datapool."
                )
            for entry in _history(table):
                if entry["tag"] == tag_name:
                    raise TagExistsError(
                        f"Tag {tag_name!r} already exists in {self.uri} (run {entry['run_id']!r}, version "
                        f"{entry['version']}); pass another tag_name."
                    )

        committed_at = datetime.now(UTC)
        new_version = 1 if table is None else current + 1
        data = prepare_rows(
            rows, run_id=run_id, dag_id=dag_id, tag=tag_name, embedding_model=embedding_model,
            embedding_dim=int(embedding_dim), commit_version=new_version, committed_at=committed_at,
            pool_schema=None if table is None else pa.schema(table.schema().to_arrow()),
        )
        if table is None:
            table = self._create(data.schema, run_id)
        n_selected = int(pc.sum(data.column(C.SELECTED)).as_py() or 0)
        meta = {
            "run_id": run_id, "dag_id": dag_id, "tag": tag_name, "config": redact(_jsonable(config or {})),
            "counts": _jsonable(counts or {}), "rows": data.num_rows, "selected": n_selected,
            "embedding_model": embedding_model, "embedding_dim": int(embedding_dim),
        }
        if datasource_uri:
            meta["datasource_uri"] = str(datasource_uri)
        try:
            _write_deltalake(
                table, data, mode="append", schema_mode="merge",
                partition_by=table.metadata().partition_columns or None,
                commit_properties=CommitProperties(
                    custom_metadata={METADATA_KEY: meta},
                    app_transactions=[Transaction(app_id(run_id), new_version)],
                    max_commit_retries=0,
                ),
            )
        except CommitFailedError:
            latest = self._require()
            done = self._already_committed(latest, run_id, dag_id)
            if done is not None:
                return done
            raise ConcurrentCommitError(
                f"Another run committed to {self.uri} while run {run_id!r} was writing (pool now at version "
                f"{latest.version()}, expected {new_version}); re-read the pool and re-select.",
                read_version=read_version, current_version=latest.version(),
            ) from None
        log.info(
            "Committed run %s to %s as version %d: %d rows, %d selected, tag %r.",
            run_id, self.uri, new_version, data.num_rows, n_selected, tag_name,
        )
        return CommitResult(new_version, False, tag_name)

    def _create(self, schema: pa.Schema, run_id: str) -> DeltaTable:
        try:
            return DeltaTable.create(
                self._table_uri, schema, mode="error", name="lightly datapool", partition_by=PARTITION_COLUMNS,
                description="lightly-airflow datapool: one row per processed sample per run",
                configuration=self._configuration, storage_options=self._options,
                commit_properties=CommitProperties(custom_metadata={METADATA_KEY: {"operation": "create"}}),
            )
        except DeltaError as exc:
            if self.exists():
                raise ConcurrentCommitError(
                    f"Another run created {self.uri} while run {run_id!r} was committing; re-read the pool and "
                    "re-select.", read_version=None, current_version=self.version(),
                ) from None
            raise DatapoolError(f"Cannot create the datapool at {self.uri}: {exc}") from None

    def _already_committed(self, table: DeltaTable, run_id: str, dag_id: str) -> CommitResult | None:
        done = table.transaction_version(app_id(run_id))
        if done is None:
            return None
        entry = next((e for e in _history(table) if e["version"] == done), None)
        if entry is not None and entry["dag_id"] not in (None, dag_id):
            raise DatapoolError(
                f"Run id {run_id!r} was already committed to {self.uri} by DAG {entry['dag_id']!r} (version {done}); "
                f"DAG {dag_id!r} cannot reuse it: give each DAG its own datapool."
            )
        log.info("Run %s is already committed to %s as version %d; nothing to do.", run_id, self.uri, done)
        return CommitResult(done, True, entry["tag"] if entry else default_tag(run_id))


def _column_names(table: DeltaTable) -> list[str]:
    return [f.name for f in table.schema().fields]


def _embedding_info(table: DeltaTable) -> dict[str, Any] | None:
    for field in table.schema().fields:
        if field.name == C.EMBEDDING:
            meta = field.metadata or {}
            model, dim = meta.get(C.EMBEDDING_MODEL_METADATA_KEY), meta.get(C.EMBEDDING_DIM_METADATA_KEY)
            if model is None or dim is None:
                return None
            return {"model": str(model), "dim": int(dim)}
    return None


def _history(table: DeltaTable) -> list[dict[str, Any]]:
    out = []
    for commit in table.history():
        meta = commit.get(METADATA_KEY)
        if isinstance(meta, str):
            meta = json.loads(meta)
        meta = meta if isinstance(meta, dict) else {}
        ts = commit.get("timestamp")
        entry = {
            "version": int(commit["version"]),
            "timestamp": None if ts is None else datetime.fromtimestamp(ts / 1000, tz=UTC),
            "operation": meta.get("operation") or commit.get("operation"),
            "run_id": meta.get("run_id"),
            "dag_id": meta.get("dag_id"),
            "tag": meta.get("tag"),
            "counts": meta.get("counts") or {},
            "rows": meta.get("rows"),
            "selected": meta.get("selected"),
            "config": meta.get("config"),
            "embedding_model": meta.get("embedding_model"),
            "embedding_dim": meta.get("embedding_dim"),
            "datasource_uri": meta.get("datasource_uri"),
        }
        out.append(entry)
    return sorted(out, key=lambda e: e["version"])


def _since(table: DeltaTable | None, read_version: int | None) -> str:
    if table is None:
        return "the pool was deleted or never existed"
    runs = [e["run_id"] or e["operation"] for e in _history(table) if read_version is None or e["version"] > read_version]
    return "version(s) of " + ", ".join(repr(r) for r in runs) if runs else "another writer"


def _count_selected(table: DeltaTable) -> int:
    result = query(
        table,
        f"SELECT COUNT(DISTINCT {quote_ident(C.KEY)}) AS n FROM pool "
        f"WHERE {quote_ident(C.SELECTED)} AND array_has({quote_ident(C.TAGS)}, {quote_literal(C.INITIAL_TAG)})",
    )
    return int(result.column("n")[0].as_py())


def _empty(columns: list[str], dim: int | None = None) -> pa.Table:
    fields = []
    for name in columns:
        if name == C.EMBEDDING:
            fields.append(pa.field(name, pa.list_(pa.float32(), dim) if dim else pa.list_(pa.float32())))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields).empty_table()



