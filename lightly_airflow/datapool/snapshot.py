"""One pinned version of the datapool: every read of a select attempt answers from the same version.

``Datapool.snapshot()`` loads the Delta log once; the snapshot then serves the run's reads (``known_files``,
``selected``, ``embeddings_for``, ``committed_version``, ``history``, ``tags``) from that version, parses the
commit history at most once, and ``Datapool.commit(..., snapshot=snap)`` commits on top of exactly that version
(a commit that another run beat fails with :class:`ConcurrentCommitError` instead of being rebased).
Before snapshots, one select attempt re-opened the log in every call and could see several versions, and a
commit read the whole history up to four times (each a LIST plus one GET per version on object stores).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lightly_airflow import columns as C
from lightly_airflow.datapool.errors import DatapoolError, MissingDataFileError, UnknownColumnError
from lightly_airflow.datapool.reading import IN_LIST_MAX, in_list, query, quote_ident, quote_literal
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.storage import StorageCredentials

log = logging.getLogger(__name__)

METADATA_KEY = "lightly"
APP_ID_PREFIX = "lightly-airflow/run/"


def app_id(run_id: str) -> str:
    """The Delta application-transaction id of a run."""
    return APP_ID_PREFIX + run_id


#: ``operation`` of a hand-made tag's commit (:mod:`lightly_airflow.datapool.tagging` writes it).
HAND_MADE_TAG_OPERATION = "tag"
#: Key of a commit's ``lightly`` metadata holding how many samples ``initial-tag`` holds at that version (written by
#: every writer of this package: :meth:`Snapshot.initial_tag_count_after`, carried by a compaction and a hand-made
#: tag); ``Snapshot.tags()`` reads it instead of counting every data file.
INITIAL_TAG_COUNT = "initial_tag_count"
#: The columns :func:`initial_tag_mask` reads (``status_reason`` where the pool has it).
RULE_COLUMNS = (C.KEY, C.ETAG, C.SELECTED, C.TAGS, COMMIT_VERSION, C.STATUS_REASON)
#: Pools whose ``initial-tag`` this process counted by a scan of every data file (a version whose writer recorded no
#: count: a pool written before the count was recorded, another engine's commit), by URI: each is logged once.
initial_tag_scans: dict[str, int] = {}

class Snapshot:
    """The pool at one version (``table`` is ``None`` for a pool that does not exist yet).

    :param uri: the pool's URI (for messages).
    :param table: the loaded Delta table, pinned at its version; never reloaded.
    """

    def __init__(self, uri: str, table: DeltaTable | None, credentials: StorageCredentials | None = None) -> None:
        self.uri = uri
        self.table = table
        self._credentials = credentials
        self._history: list[dict[str, Any]] | None = None
        self._columns: list[str] | None = None
        self._committed: dict[str, int | None] = {}
        #: ``key, etag, commit_version`` of the ``initial-tag`` set (latest row per key), once :meth:`selected` read
        #: it (its other rule columns follow from being in it: :func:`_initial_rows`).
        self._initial: pa.Table | None = None
        #: The pool's latest version when this snapshot is pinned below it (``Datapool.snapshot(version)``).
        self.latest_version: int | None = None

    def __repr__(self) -> str:
        return f"Snapshot({self.uri!r}, version={self.version})"

    # ---------------------------------------------------------------- state
    @property
    def version(self) -> int | None:
        """The pinned version, or ``None`` when the pool does not exist (yet)."""
        return None if self.table is None else int(self.table.version())

    def exists(self) -> bool:
        return self.table is not None

    def require(self) -> DeltaTable:
        if self.table is None:
            raise DatapoolError(f"No datapool at {self.uri}: no run has committed to it yet.")
        return self.table

    def committed_version(self, run_id: str) -> int | None:
        """The version the run committed as of this snapshot, or ``None``."""
        if self.table is None:
            return None
        if run_id not in self._committed:  # delta-rs reads every log entry for each lookup: once per run
            done = self.table.transaction_version(app_id(run_id))
            self._committed[run_id] = None if done is None else int(done)
        return self._committed[run_id]

    def history(self) -> list[dict[str, Any]]:
        """Every version up to this one, oldest first (parsed once per snapshot, and read from the log only
        since an earlier snapshot of this process: :func:`cached_history`; see ``Datapool.history``)."""
        if self._history is None:
            self._history = [] if self.table is None else cached_history(self.uri, self.table, self._credentials)
        return [dict(e) for e in self._history]

    def entry(self, version: int) -> dict[str, Any] | None:
        """The history entry of ``version``, or ``None``."""
        return next((e for e in self.history() if e["version"] == version), None)

    def embedding_info(self) -> dict[str, Any] | None:
        """``{"model": str, "dim": int}`` recorded by the first run, or ``None``."""
        return None if self.table is None else embedding_info(self.table)

    def column_names(self) -> list[str]:
        if self._columns is None:
            self._columns = [] if self.table is None else [f.name for f in self.table.schema().fields]
        return list(self._columns)

    def tags(self) -> list[dict[str, Any]]:
        """``initial-tag`` then one entry per run: ``name, run_id, version, count``."""
        if self.table is None:
            return []
        out: list[dict[str, Any]] = [{
            "name": C.INITIAL_TAG, "run_id": None, "version": self.version, "count": self.initial_tag_count(),
        }]
        for e in self.history():
            if e["run_id"] is not None and e["tag"]:
                out.append({"name": e["tag"], "run_id": e["run_id"], "version": e["version"], "count": e["selected"]})
            elif e.get("operation") == HAND_MADE_TAG_OPERATION and e["tag"]:
                out.append({"name": e["tag"], "run_id": None, "version": e["version"], "count": e["selected"]})
        return out

    def recorded_initial_tag_count(self) -> int | None:
        """How many samples ``initial-tag`` holds at this version as the commit of this very version recorded it
        (:data:`INITIAL_TAG_COUNT`), or ``None`` (no pool; a writer that recorded none)."""
        entry = None if self.version is None else self.entry(self.version)
        value = None if entry is None else entry.get(INITIAL_TAG_COUNT)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def initial_tag_count(self) -> int:
        """How many samples ``initial-tag`` holds: the count this version's commit recorded, else the set
        :meth:`selected` read, else counted by a scan of every data file (:func:`_count_selected`; 1.3-1.6 s at 1,201
        uncompacted versions): the fallback for pools written before the count was recorded and versions of other
        writers, logged once per pool and counted in :data:`initial_tag_scans`."""
        recorded = self.recorded_initial_tag_count()
        if recorded is not None:
            return recorded
        if self._initial is not None:
            return int(self._initial.num_rows)
        table = self.require()
        initial_tag_scans[self.uri] = initial_tag_scans.get(self.uri, 0) + 1
        if initial_tag_scans[self.uri] == 1:
            log.info("%s: version %d records no initial-tag count (written before counts were recorded, or by "
                     "another writer): counting it by a scan of every data file; the next run's commit records it.",
                     self.uri, int(table.version()))
        return _count_selected(table)

    def initial_tag_count_after(self, data: pa.Table) -> int:
        """How many samples ``initial-tag`` holds once ``data`` (a commit's rows as stored, one per key, with
        ``commit_version`` the next version) lands on this version: the count before, less the keys of ``data``
        that held it, plus those that hold it then, by :func:`initial_tag_mask` over their rows. Before: the set
        :meth:`selected` read (a select task's attempt reads it: nothing is read again); else, for at most
        :data:`~lightly_airflow.datapool.reading.IN_LIST_MAX` keys on a version that recorded its count, that count
        and the earlier rows of those keys (their files only, where the log's statistics allow: ~10 ms at 1,201
        tiny versions); else :meth:`selected` is read here (one query: 1.4 s at 1,201 versions, where reading every
        row of 5,100 keys took 2.3 s)."""
        if self.table is None:
            return _initial_keys(_rule_columns(data))
        keys = data.column(C.KEY)
        count = self.recorded_initial_tag_count()
        if self._initial is None and (count is None or len(keys) > IN_LIST_MAX):
            if count is None:
                log.info("%s: version %s recorded no initial-tag count: the commit reads initial-tag to count it.",
                         self.uri, self.version)
            self.selected([C.KEY])
        if self._initial is not None:
            count = int(self._initial.num_rows)
            before = _initial_rows(self._initial.filter(pc.is_in(self._initial.column(C.KEY), keys)), data)
        else:  # (a small commit on a version that recorded its count)
            present = [c for c in RULE_COLUMNS if c in self.column_names()]
            before = self.select(present, "", values_in=(C.KEY, keys.to_pylist()))
        assert count is not None
        before = _rule_columns(before)
        after = pa.concat_tables([before, _rule_columns(data)], promote_options="permissive")
        return count - _initial_keys(before) + _initial_keys(after)

    def hand_made_tag_names(self) -> set[str]:
        """Tags made by hand (``datapool.tagging``) as of this version: they may sit on unselected rows too."""
        return {e["tag"] for e in self.history() if e.get("operation") == HAND_MADE_TAG_OPERATION and e["tag"]}

    # ---------------------------------------------------------------- reading
    def tag_names(self) -> set[str]:
        """``initial-tag``, every run's tag and every hand-made tag as of this version."""
        runs = {e["tag"] for e in self.history() if e["run_id"] is not None and e["tag"]}
        return {C.INITIAL_TAG} | runs | self.hand_made_tag_names()

    def read(
        self, *, tag: str | None = None, columns: list[str] | None = None, known_tags: set[str] | None = None,
    ) -> pa.Table:
        """Every row of this version, optionally only those carrying ``tag``; ``columns`` projects.

        :param known_tags: the tags ``tag`` may name (default: those of this version).
        """
        self.require()
        where = ""
        if tag is not None:
            known = self.tag_names() if known_tags is None else known_tags
            if tag not in known:
                raise unknown_tag_error(self.uri, tag, known)
            # Run tags sit only on selected rows: the first condition prunes every unselected file. A hand-made
            # tag may name any row (a filter over the whole pool).
            has_tag = f"array_has({quote_ident(C.TAGS)}, {quote_literal(tag)})"
            hand_made = tag in self.hand_made_tag_names()
            if tag == C.INITIAL_TAG:  # a selected row no newer version of its file or tombstone replaced
                where = f"WHERE {initial_tag_sql(tombstones=C.STATUS_REASON in self.column_names())}"
            else:  # a run's tag is history: the rows that run selected, whatever came after them but a move
                where = f"WHERE {has_tag}" if hand_made else f"WHERE {quote_ident(C.SELECTED)} AND {has_tag}"
                from lightly_airflow.datapool.moves import has_moves, moved_away_sql

                if has_moves(self.column_names()):  # (the key that took a moved file over carries its tags)
                    where += f" AND NOT {moved_away_sql()}"
        return self.select(columns, where, order=f"{quote_ident(COMMIT_VERSION)}, {quote_ident(C.KEY)}")

    def selected(self, columns: list[str] | None = None) -> pa.Table:
        """The ``initial-tag`` set as of this version, in pick order: every selected row no newer row of its key
        replaced (a newer version of the file or a tombstone ends a selection; :func:`initial_tag_sql`)."""
        if self.table is None:
            return pa.table({C.KEY: pa.array([], pa.string())}) if columns is None else empty(columns)
        where = f"WHERE {initial_tag_sql(tombstones=C.STATUS_REASON in self.column_names())}"
        rows = latest_per_key(self.select(columns, where, extra=(C.KEY, C.ETAG, COMMIT_VERSION), order=self._pick_order()))
        # (a commit on this version counts initial-tag from it: _initial_rows)
        self._initial = rows.select([C.KEY, COMMIT_VERSION]).append_column(C.ETAG, rows.column(C.ETAG).cast(pa.string()))
        return self.finish(rows, columns)

    def _pick_order(self) -> str:
        """``initial-tag``'s order: by version, then pick rank. A key that took a moved file's sample over keeps
        the gone key's rank in the run that picked it (a run tag keeps its order) but sits in the version of the
        run that moved it, where that rank fell among the run's own picks (after its first pick, or tied with one:
        the engine chose, differently between pools). It was picked earlier: moved picks come first in their
        version, by rank, then by key (ranks of two earlier runs tie)."""
        return ", ".join(pick_order_terms(self.column_names()))

    def known_files(self, *, missing: bool = True) -> pa.Table:
        """``key, etag, content_hash, status`` of the files this version knows (latest row per key), by
        :func:`known_rows`, the one rule every reader of the known files takes (the listing's and the new-file
        check's diff, ``datasource.known``): a key whose latest row is a tombstone is left out, and with
        ``missing=False`` also a key whose latest row is otherwise ``missing`` (what a run's listing processes
        again)."""
        wanted = [C.KEY, C.ETAG, C.CONTENT_HASH, C.STATUS]
        if self.table is None:
            return empty(wanted)
        present = [c for c in (*wanted, C.STATUS_REASON) if c in self.column_names()]
        rows = known_rows(latest_per_key(self.select(present, "", extra=(C.KEY, COMMIT_VERSION))), missing=missing)
        for name in wanted:
            if name not in rows.column_names:
                rows = rows.append_column(name, pa.nulls(rows.num_rows, pa.string()))
        return rows.select(wanted)

    def embeddings_for(self, keys_etags: pa.Table, *, with_rules: bool = False) -> pa.Table:
        """``key, etag, embedding`` of samples whose (key, etag) is in ``keys_etags`` (to reuse embeddings);
        with ``with_rules`` also ``pixel_rules``, the pixel rules they were computed under (null in rows
        committed before the column existed)."""
        for name in (C.KEY, C.ETAG):
            if name not in keys_etags.column_names:
                raise DatapoolError(f"embeddings_for needs a table with 'key' and 'etag' columns; {name!r} is missing.")
        wanted = pa.table({
            C.KEY: keys_etags.column(C.KEY).cast(pa.string()),
            C.ETAG: keys_etags.column(C.ETAG).cast(pa.string()),
        })
        info = self.embedding_info()
        if self.table is None or info is None or wanted.num_rows == 0:
            return empty([C.KEY, C.ETAG, C.EMBEDDING], dim=info["dim"] if info else None)
        wanted = wanted.group_by([C.KEY, C.ETAG]).aggregate([])
        # Cheap first pass over the identity columns: most wanted files are new, and then no embedding is read.
        ids = self.select([C.KEY, C.ETAG], "")
        ids = ids.set_column(1, C.ETAG, ids.column(C.ETAG).cast(pa.string()))
        hit_keys = pc.unique(ids.join(wanted, [C.KEY, C.ETAG], join_type="inner").column(C.KEY)).to_pylist()
        if not hit_keys:
            return empty([C.KEY, C.ETAG, C.EMBEDDING], dim=info["dim"])
        rules = [C.PIXEL_RULES] if with_rules and C.PIXEL_RULES in self.column_names() else []
        pool = self.select([C.KEY, C.ETAG, C.EMBEDDING, COMMIT_VERSION, *rules], "", values_in=(C.KEY, hit_keys))
        if with_rules and not rules:
            pool = pool.append_column(C.PIXEL_RULES, pa.nulls(pool.num_rows, pa.int64()))
        pool = pool.filter(pc.is_valid(pool.column(C.EMBEDDING)))
        pool = pool.set_column(pool.schema.get_field_index(C.ETAG), C.ETAG, pool.column(C.ETAG).cast(pa.string()))
        ids = pool.select([C.KEY, C.ETAG]).append_column("__row", pa.array(np.arange(pool.num_rows), pa.int64()))
        hits = ids.join(wanted, [C.KEY, C.ETAG], join_type="inner")
        matched = latest_per_key(pool.take(np.sort(hits.column("__row").to_numpy())), (C.KEY, C.ETAG))
        return self.finish(matched, [C.KEY, C.ETAG, C.EMBEDDING, *([C.PIXEL_RULES] if with_rules else [])])

    def select(
        self, columns: list[str] | None, where: str, *, extra: tuple[str, ...] = (), order: str | None = None,
        values_in: tuple[str, Iterable[str]] | None = None,
    ) -> pa.Table:
        """``SELECT columns FROM pool where ORDER BY order`` on this version; ``values_in`` = (column, values): only
        the rows whose ``column`` (one of those selected) holds one of ``values``, any number of them: up to
        :data:`~lightly_airflow.datapool.reading.IN_LIST_MAX` in the SQL (files pruned by it), more kept as the
        rows stream back (a long SQL IN list crashes DataFusion). ``where``: empty or ``WHERE`` and conditions."""
        table = self.require()
        available = self.column_names()
        if columns is not None:
            unknown = [c for c in columns if c not in available]
            if unknown:
                raise UnknownColumnError(
                    f"Unknown column(s) {unknown} in version {self.version} of {self.uri} (a column a run added is "
                    f"absent from the versions before it); available: {available}.")
        names = list(available if columns is None else columns)
        names += [c for c in extra if c not in names and c in available]
        keep = None
        if values_in is not None:
            column, values = values_in[0], sorted(set(values_in[1]))
            if column not in names or order:
                raise ValueError(f"values_in on {column!r}: select that column, without an order ({names}, {order!r})")
            if len(values) > IN_LIST_MAX:
                keep = (column, values)
            elif not where:
                where = f"WHERE {in_list(column, values)}"
            elif where.startswith("WHERE "):
                where = f"WHERE ({where.removeprefix('WHERE ')}) AND {in_list(column, values)}"
            else:
                raise ValueError(f"where must start with 'WHERE ' or be empty: {where[:80]!r}")
        sql = f"SELECT {', '.join(quote_ident(c) for c in names)} FROM pool {where}"
        if order:
            sql += f" ORDER BY {order}"
        try:
            result = query(table, sql, keep=keep)
        except MissingDataFileError as exc:
            from lightly_airflow.datapool.reclaim import missing_file_error

            if self.latest_version is None or self.latest_version == self.version:
                raise missing_file_error(self.uri, exc, self.version, self.history()) from None
            from lightly_airflow.datapool.pool import Datapool  # the whole log: the VACUUM came after this version

            raise missing_file_error(self.uri, exc, self.latest_version,
                                     Datapool(self.uri, self._credentials).history()) from None
        return self.finish(result, None)

    def finish(self, rows: pa.Table, columns: list[str] | None) -> pa.Table:
        """Project to ``columns`` and give ``embedding`` its fixed size."""
        if columns is not None:
            rows = rows.select(columns)
        if C.EMBEDDING in rows.column_names:
            info = self.embedding_info()
            col = rows.column(C.EMBEDDING)
            if info and not pa.types.is_fixed_size_list(col.type):
                fixed = pa.list_(pa.float32(), info["dim"])
                idx = rows.schema.get_field_index(C.EMBEDDING)
                rows = rows.set_column(
                    idx, pa.field(C.EMBEDDING, fixed, True, rows.schema.field(idx).metadata), fixed_size(col, fixed)
                )
        return rows


def fixed_size(col: pa.ChunkedArray, fixed: pa.DataType) -> pa.ChunkedArray:
    """``col`` (stored ``list<float32>`` embeddings) as ``fixed``: a chunk of nulls only is made as nulls. pyarrow
    26.0.1 crashes the process (SIGSEGV) casting such a chunk as DataFusion returns it (offsets ``[0, 0]``, an empty
    values array) to ``fixed_size_list<float32>[64]``: a data file of a run whose unselected rows were all corrupt or
    tombstones, read alone (a read by key), killed the worker."""
    return pa.chunked_array([pa.nulls(len(chunk), fixed) if chunk.null_count == len(chunk) else chunk.cast(fixed)
                             for chunk in col.chunks], fixed)


def known_rows(latest: pa.Table, *, missing: bool = True) -> pa.Table:
    """The rule of which files the pool knows, for every reader (:meth:`Snapshot.known_files`, the listing's and
    the new-file check's diff: ``datasource.query.find_new_files``, the gone files: ``datasource.known.pool_files``):
    the rows of ``latest`` (the latest row per key; ``status`` and, where the pool has it, ``status_reason``) but

    - a **tombstone** (status_reason ``superseded: …``: a key a move ended, ``datapool.moves``; a frame a replaced
      video no longer has, ``video.supersede``): the pool holds no sample under that key, so a file listed there is
      new (a file moved back; a video put back to its former version) to a run and to a check alike;
    - with ``missing=False`` (a run's listing) also a key whose latest row is otherwise ``missing`` (the file
      vanished between a listing and its read, could not be read): the run processes it again. A new-file check
      keeps it (``missing=True``): a file that stays unreadable would start a run at every poke.

    A table without ``status_reason`` (its tombstones already left out) or ``status`` is ruled by what it has.
    """
    if not latest.num_rows or C.STATUS not in latest.column_names:
        return latest
    status = latest.column(C.STATUS)
    ended = pc.equal(status, C.STATUS_MISSING)
    if missing:
        if C.STATUS_REASON not in latest.column_names:
            return latest
        ended = pc.and_(ended, pc.starts_with(latest.column(C.STATUS_REASON), SUPERSEDED_PREFIX))
    return latest.filter(pc.invert(pc.fill_null(ended, False)))


def latest_per_key(table: pa.Table, key_columns: tuple[str, ...] = (C.KEY,)) -> pa.Table:
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


def embedding_info(table: DeltaTable) -> dict[str, Any] | None:
    for f in table.schema().fields:
        if f.name == C.EMBEDDING:
            meta = f.metadata or {}
            model, dim = meta.get(C.EMBEDDING_MODEL_METADATA_KEY), meta.get(C.EMBEDDING_DIM_METADATA_KEY)
            if model is None or dim is None:
                return None
            return {"model": str(model), "dim": int(dim)}
    return None


#: How long a process reuses a pool's parsed history (:func:`cached_history`); after that it is read whole again.
HISTORY_SECONDS = 600.0
_history_lock = threading.Lock()
_history_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}


def same_entry(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two history entries are the same commit (its version, time, operation, run and tag)."""
    return all(a.get(k) == b.get(k) for k in ("version", "timestamp", "operation", "run_id", "tag"))


def cached_history(
    uri: str, table: DeltaTable, credentials: StorageCredentials | None = None
) -> list[dict[str, Any]]:
    """The history up to ``table``'s loaded version, oldest first, reading only the log entries committed since
    this process last read the pool's history (within :data:`HISTORY_SECONDS`).

    A long-lived pool has one log entry per run, and delta-rs reads them all for each history (one GET each on
    object stores: seconds per thousand runs), while an entry never changes once written. A process's first
    read takes the segments the runs wrote beside the log (:mod:`lightly_airflow.datapool.history_index`). The newest entry
    already known (up to this version) is read again and must match, so a last entry deleted and committed anew
    (``datapool check``'s recovery) or a pool deleted and made anew at the same place is not served from memory:
    the history is then read whole.
    """
    top = int(table.version())
    now = time.monotonic()
    with _history_lock:
        hit = _history_cache.get(uri)
    if hit is not None and now - hit[0] < HISTORY_SECONDS:
        born, entries = hit[0], [e for e in hit[1] if e["version"] <= top]  # cut: a log cut back, a pinned table
        merged = _extended(table, entries, top) if entries else None
        if merged is not None:
            with _history_lock:
                _history_cache[uri] = (born, merged)
            return list(merged)
    full = _from_segments(uri, table, credentials, top) or history_of(table)
    with _history_lock:
        _history_cache[uri] = (now, full)
    return [e for e in full if e["version"] <= top]


def _from_segments(
    uri: str, table: DeltaTable, credentials: StorageCredentials | None, top: int
) -> list[dict[str, Any]] | None:
    """The history from the segments beside the log (:mod:`lightly_airflow.datapool.history_index`) and the log
    entries after them; ``None`` when there are none or their last entry is not the log's."""
    from lightly_airflow.datapool.history_index import read_segments

    try:
        segments = read_segments(uri, credentials, top)
    except Exception as exc:  # noqa: BLE001 - a shortcut only: the log is read instead
        log.info("History segments of %s not read (%s): the log is read instead.", uri, exc)
        return None
    if not segments:
        return None
    merged = _extended(table, segments, top)
    if merged is None:
        log.info("History segments of %s end at version %d, which is not the log's: the log is read instead.", uri,
                 segments[-1]["version"])
    return merged


def _extended(table: DeltaTable, known: list[dict[str, Any]], top: int) -> list[dict[str, Any]] | None:
    """``known`` (entries 0..k, oldest first) and the log's entries k+1..top, reading only the newest entries;
    ``None`` when the log's entry k is not ``known``'s last (the log was replaced) or the newest entries are not
    k..top (``table`` pinned below the latest version)."""
    last = int(known[-1]["version"])
    newer = [e for e in history_of(table, limit=top - last + 1) if last <= e["version"] <= top]
    if [e["version"] for e in newer] != list(range(last, top + 1)) or not same_entry(newer[0], known[-1]):
        return None
    return known + newer[1:]


def history_of(table: DeltaTable, limit: int | None = None) -> list[dict[str, Any]]:
    """The parsed commit history of the pool's log (one GET per log entry on object stores), oldest first;
    ``limit``: only the newest entries.

    delta-rs 1.6.6 lists the *latest* log whatever version ``table`` has loaded and numbers the entries
    down from the loaded version, so after another commit every entry is off by the number of newer
    versions. The true numbers come from the version each commit records in its ``lightly`` metadata (since
    snapshots were introduced), else from the log starting at version 0 (pools keep their whole log).
    """
    parsed = []
    for commit in table.history(limit):
        meta = _lightly_meta(commit)
        parsed.append((int(commit["version"]), meta, commit))
    shift = 0
    recorded = [(label, int(meta["version"])) for label, meta, _ in parsed if isinstance(meta.get("version"), int)]
    if recorded:
        shift = recorded[0][1] - recorded[0][0]
    elif parsed and min(label for label, _, _ in parsed) < 0:
        shift = -min(label for label, _, _ in parsed)
    return sorted((history_entry(commit, label + shift) for label, _, commit in parsed), key=lambda e: e["version"])


def _lightly_meta(commit: dict[str, Any]) -> dict[str, Any]:
    meta = commit.get(METADATA_KEY)
    if isinstance(meta, str):
        meta = json.loads(meta)
    return meta if isinstance(meta, dict) else {}


def history_entry(commit: dict[str, Any], version: int) -> dict[str, Any]:
    """One history entry from a commit's ``commitInfo`` (as delta-rs' ``history()`` or the log file holds it)."""
    meta = _lightly_meta(commit)
    ts = commit.get("timestamp")
    return {
        "version": version,
        "timestamp": None if ts is None else datetime.fromtimestamp(ts / 1000, tz=UTC),
        "operation": meta.get("operation") or commit.get("operation"),
        "run_id": meta.get("run_id"),
        "dag_id": meta.get("dag_id"),
        "tag": meta.get("tag"),
        "counts": meta.get("counts") or _delta_vacuum_metrics(commit),
        "rows": meta.get("rows"),
        "selected": meta.get("selected"),
        "config": meta.get("config"),
        "embedding_model": meta.get("embedding_model"),
        "embedding_dim": meta.get("embedding_dim"),
        "datasource_uri": meta.get("datasource_uri"),
        "started_by": meta.get("started_by"),
        "stop_reason": meta.get("stop_reason"),
        "review": meta.get("review"),
        INITIAL_TAG_COUNT: meta.get(INITIAL_TAG_COUNT),
        "parameters": _delta_vacuum_parameters(commit),
    }


def _delta_vacuum_parameters(commit: dict[str, Any]) -> dict[str, Any] | None:
    """The ``operationParameters`` of Delta's own VACUUM versions (``specifiedRetentionMillis``,
    ``defaultRetentionMillis``: which versions it may have made unreadable, ``reclaim.delta_vacuums``); ``None``
    for any other commit."""
    params = commit.get("operationParameters")
    if not str(commit.get("operation") or "").startswith("VACUUM") or not isinstance(params, dict):
        return None
    return {str(k): v for k, v in params.items() if isinstance(v, (int, float, str, bool))}


def _delta_vacuum_metrics(commit: dict[str, Any]) -> dict[str, Any]:
    """The file counts of Delta's own ``VACUUM START`` / ``VACUUM END`` versions (Spark's or delta-rs' VACUUM run
    by hand: ``numFilesToDelete``, ``sizeOfDataToDelete`` / ``numDeletedFiles``), so the history says what they
    did; ``{}`` for any other commit without counts."""
    metrics = commit.get("operationMetrics")
    if not str(commit.get("operation") or "").startswith("VACUUM") or not isinstance(metrics, dict):
        return {}
    return {str(k): v for k, v in metrics.items() if isinstance(v, (int, float, str))}


#: ``status_reason`` of a tombstone row (``video.supersede``: a frame a replaced video no longer has) starts so.
SUPERSEDED_PREFIX = f"{C.SUPERSEDED}:"


#: How many tag names an unknown tag's error lists (a pool of an hourly DAG has thousands).
TAGS_LISTED = 20


def _tag_shape(name: str) -> str:
    """A tag name with case and separators ignored: ``Week 1``, ``week-1`` and ``week_1`` are one shape."""
    return re.sub(r"[\s._:;=@+-]+", "-", name.casefold()).strip("-")


def unknown_tag_error(uri: str, tag: str, known: Iterable[str]) -> DatapoolError:
    """The error for a tag the pool does not hold: the names it is likely a typo of (same letters with other case
    or separators, ``week-1`` for ``week 1``; else :func:`difflib.get_close_matches`), at most :data:`TAGS_LISTED`
    of the pool's tags and the command that lists them all."""
    import difflib

    names = sorted(known)
    close = [n for n in names if _tag_shape(n) == _tag_shape(tag)] or difflib.get_close_matches(tag, names, n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    listed = ", ".join(map(repr, names[:TAGS_LISTED])) + (
        f" and {len(names) - TAGS_LISTED} more" if len(names) > TAGS_LISTED else "")
    return DatapoolError(f"Tag {tag!r} does not exist in {uri}.{hint} Its known tags: {listed} "
                         f"(`lightly-airflow datapool tags {uri}` lists each with its run and count).")


def pick_order_terms(columns: Iterable[str]) -> list[str]:
    """The SQL terms of ``initial-tag``'s order (:meth:`Snapshot.selected`; the UI's grid in pick order) for a
    pool of ``columns``: version, moved picks first (a pool with moves), pick rank, key."""
    from lightly_airflow.datapool.moves import MOVED_FROM, has_moves

    order = [quote_ident(COMMIT_VERSION), quote_ident(C.PICK_RANK), quote_ident(C.KEY)]
    if has_moves(columns):
        order.insert(1, f"{quote_ident(MOVED_FROM)} IS NULL")
    return order


def initial_tag_sql(alias: str = "pool", *, tombstones: bool = True) -> str:
    """The SQL condition of ``initial-tag`` on the rows of ``alias`` (a scan of the table ``pool``): a selected row
    carrying ``initial-tag`` that no newer row of its key replaced. A newer row replaces it when it is another
    version of the file (another etag: a video replaced under its name, whose frames keep their names; an
    overwritten image; a file of another datasource with the same key) or a tombstone (a frame a replaced video no
    longer has; it keeps the former etag). A newer row of the same content (a ``process_all`` run, new pixel rules:
    not selected again, as it was selected before) leaves the selection standing. Run tags keep what their run
    selected.

    One query: the selected partition's rows anti-joined with the newer rows of their keys.

    :param tombstones: the pool has ``status_reason`` (older pools have no tombstones).
    """
    k, cv, etag = quote_ident(C.KEY), quote_ident(COMMIT_VERSION), quote_ident(C.ETAG)
    replaced = f"(newer.{etag} IS DISTINCT FROM {alias}.{etag})"
    if tombstones:
        replaced = f"({replaced} OR (newer.{quote_ident(C.STATUS_REASON)} LIKE {quote_literal(SUPERSEDED_PREFIX + '%')}))"
    return (f"{alias}.{quote_ident(C.SELECTED)} AND array_has({alias}.{quote_ident(C.TAGS)}, "
            f"{quote_literal(C.INITIAL_TAG)}) AND NOT EXISTS (SELECT 1 FROM pool newer "
            f"WHERE newer.{k} = {alias}.{k} AND newer.{cv} > {alias}.{cv} AND {replaced})")


def initial_tag_mask(rows: pa.Table) -> pa.ChunkedArray | pa.Array:
    """Per row of ``rows`` (every row of the pool with ``key, etag, selected, tags, commit_version`` and, where the
    pool has it, ``status_reason``): whether it is a row of ``initial-tag`` (:func:`initial_tag_sql`, computed
    in memory for callers that read every row anyway)."""
    n = rows.num_rows
    if not n or C.SELECTED not in rows.column_names or C.TAGS not in rows.column_names:
        return pa.array([False] * n, pa.bool_())
    rows = rows.combine_chunks()
    tags = rows.column(C.TAGS).chunk(0)
    tagged = pc.list_parent_indices(tags).filter(pc.equal(pc.list_flatten(tags), C.INITIAL_TAG))
    mask = np.zeros(n, dtype=bool)
    mask[tagged.to_numpy()] = True
    mask &= pc.fill_null(rows.column(C.SELECTED), False).to_numpy(zero_copy_only=False)
    if not mask.any():
        return pa.array(mask)
    keys = rows.column(C.KEY).cast(pa.string()).to_numpy(zero_copy_only=False)
    etags = pc.fill_null(rows.column(C.ETAG).cast(pa.string()), "\x00").to_numpy(zero_copy_only=False)
    cvs = rows.column(COMMIT_VERSION).to_numpy(zero_copy_only=False)
    tomb = np.zeros(n, dtype=bool)
    if C.STATUS_REASON in rows.column_names:
        tomb = pc.fill_null(pc.starts_with(rows.column(C.STATUS_REASON), SUPERSEDED_PREFIX), False).to_numpy(
            zero_copy_only=False)
    # A selected row stands when every newer row of its key has its etag and is no tombstone: its key's latest
    # row is no tombstone, has its etag, and the newest row that is neither (another etag, a tombstone) is older.
    order = np.lexsort((-cvs, keys))  # by key, newest first
    k_sorted = keys[order]
    first = np.ones(n, dtype=bool)
    first[1:] = k_sorted[1:] != k_sorted[:-1]
    group = np.cumsum(first) - 1
    latest = order[first]  # the latest row of each group
    latest_etag, latest_tomb = etags[latest], tomb[latest]
    breaks = (etags[order] != latest_etag[group]) | tomb[order]
    last_break = np.full(len(latest), -1, dtype=np.int64)
    np.maximum.at(last_break, group[breaks], cvs[order][breaks].astype(np.int64))
    stands = np.zeros(n, dtype=bool)
    stands[order] = ((etags[order] == latest_etag[group]) & ~latest_tomb[group]
                     & (cvs[order].astype(np.int64) > last_break[group]))
    return pa.array(mask & stands)


def _rule_columns(rows: pa.Table) -> pa.Table:
    """``rows``' :data:`RULE_COLUMNS` (those it has), ``etag`` as a string."""
    rows = rows.select([c for c in RULE_COLUMNS if c in rows.column_names])
    return rows.set_column(rows.schema.get_field_index(C.ETAG), C.ETAG, rows.column(C.ETAG).cast(pa.string()))


def _initial_rows(initial: pa.Table, like: pa.Table) -> pa.Table:
    """``initial`` (``key, etag, commit_version`` of rows of ``initial-tag``) with the rest of :data:`RULE_COLUMNS`
    those rows have by being in it (selected, tagged ``initial-tag``, no tombstone), typed as in ``like``."""
    n = initial.num_rows
    out = initial.append_column(C.SELECTED, pa.array([True] * n, pa.bool_()))
    out = out.append_column(C.TAGS, pa.array([[C.INITIAL_TAG]] * n, like.schema.field(C.TAGS).type))
    if C.STATUS_REASON in like.column_names:
        out = out.append_column(C.STATUS_REASON, pa.nulls(n, like.schema.field(C.STATUS_REASON).type))
    return out


def _initial_keys(rows: pa.Table) -> int:
    """How many keys of ``rows`` (every row of those keys) hold ``initial-tag`` (:func:`initial_tag_mask`)."""
    return int(pc.count_distinct(rows.column(C.KEY).filter(initial_tag_mask(rows))).as_py()) if rows.num_rows else 0


def _count_selected(table: DeltaTable) -> int:
    """How many samples ``initial-tag`` holds (:func:`initial_tag_sql`)."""
    tombstones = C.STATUS_REASON in {f.name for f in table.schema().fields}
    result = query(table, f"SELECT COUNT(DISTINCT {quote_ident(C.KEY)}) AS n FROM pool "
                          f"WHERE {initial_tag_sql(tombstones=tombstones)}")
    return int(result.column("n")[0].as_py())


def empty(columns: list[str], dim: int | None = None) -> pa.Table:
    fields = []
    for name in columns:
        if name == C.EMBEDDING:
            fields.append(pa.field(name, pa.list_(pa.float32(), dim) if dim else pa.list_(pa.float32())))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields).empty_table()
