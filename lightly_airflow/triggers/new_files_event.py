"""``NewFilesEventTrigger``: run the DAG when new files land (Airflow 3's event-driven scheduling).

Given to an :class:`~airflow.sdk.AssetWatcher` of the asset a DAG is scheduled on, the trigger lists the
datasource every ``poke_interval`` seconds in the triggerer (each check as :class:`NewFilesTrigger`'s: the
connections resolved in a thread, the listing in a child process) and fires an event, hence one DAG run, when
there are files the datapool has not processed **and that it has not announced before**. It keeps the last
announced set in the watched asset's state store (a 64-bit hash of each file's key, content identity and size,
up to :data:`~lightly_airflow.datasource.check.MAX_HASHED_FILES` files, and the set's digest), so neither the
checks while its run works, nor a restarted triggerer, nor the remainder of a set a run processed in part
announce those files again (the set is saved a few seconds after its event, once Airflow stored the event:
:attr:`NewFilesEventTrigger.SAVE_AFTER_S`; a triggerer stopped in between announces it again, never loses it); a
file added or changed is not in the set, hence another event (one more run: the DAG's ``max_active_runs`` queues
it). Above the cap the set is compared by its digest alone (a remainder is
then announced again: one more run, which finds nothing or little to do). A check that finds nothing new
clears the set: everything announced was processed, and the next new file fires whatever it is. A run that
fails leaves its files new and announced: the trigger does not start run after failing run on them (clear the
failed run to retry it; a new file fires a run anyway).

A check that fails (the datasource unreachable, a connection missing) is logged with the error and retried at
the next interval: an event would start a DAG run, and the trigger must keep watching.

A worker config kept in a bucket (``worker_config_uri``: the example DAG's ``LIGHTLY_WORKER_CONFIG=s3://…``) is
not read when the DAG file is parsed; the trigger reads and validates it where it runs, in the triggerer
(:func:`~lightly_airflow.config.load_config`, the triggerer's environment credentials, in a thread), and applies its
``relevant_filenames_file``, ``datasource.process_all`` and ``datasource.input_expiration`` to the query of each
check (:meth:`~lightly_airflow.datasource.NewFilesQuery.with_worker_config`), as each run's first task does. Before
each check it asks the store for the file's identity (its ETag and size: one metadata request, ``fsspec``'s
``ukey``; a local file's ``stat``) and reads the file again only when that changed, so an edited config applies
from the next check without a triggerer restart (the DAG file, hence the trigger's arguments, did not change).
A config that cannot be read or has a problem does not stop the watcher, nor start a run: the error (the
variable, the URI, the problem and the fix) is logged at every check, and the checks go on with the last config
read (none yet: the query without its keys, which the log says); once it is readable it applies again. A run the
watcher then starts reads the config in its own first task, which fails in seconds with the same message when the
file is as broken for the worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from lightly_airflow.triggers.new_files import CheckFailed, check_in_triggerer

if TYPE_CHECKING:
    from lightly_airflow.datasource import NewFilesQuery

CLASSPATH = "lightly_airflow.triggers.new_files_event.NewFilesEventTrigger"

#: The deployment variable of the example DAG that names its worker config (``worker_config_variable``'s default).
WORKER_CONFIG_VARIABLE = "LIGHTLY_WORKER_CONFIG"

#: The key of the last announced set in the watched asset's state store: ``{"digest", "files", "at"}``.
STATE_KEY = "lightly_airflow.new_files.announced"


class WorkerConfigOfUri:
    """What a watcher does with a ``worker_config_uri`` (mixed into :class:`NewFilesEventTrigger` and
    :class:`~lightly_airflow.triggers.s3_notifications.S3NotificationsTrigger`): read it where the trigger runs, again
    when the file's identity changes, apply it to the runs' query, log every problem and keep the last good one.

    The trigger sets ``_query`` (the query's dict), calls :meth:`_watch_worker_config` with its arguments, and
    may say what its checks do without the config (:attr:`_UNREAD`) and which keys they apply (:meth:`_applied`)."""

    _query: dict[str, Any]
    _worker: _WorkerConfigState
    worker_config_uri: str | None
    worker_config_variable: str
    log: Any
    #: what the trigger's checks do while no config was read yet (logged with the problem)
    _UNREAD = ("the checks go on WITHOUT its relevant_filenames_file, datasource.process_all and "
               "datasource.input_expiration (none of it was read yet): new files those keys exclude "
               "start runs that skip at once, and with its process_all the files the datapool holds "
               "already are not announced")

    def _watch_worker_config(self, uri: str | None, variable: str) -> None:
        """Set ``worker_config_uri`` and ``worker_config_variable`` (the trigger's arguments), nothing read yet."""
        self.worker_config_uri = None if uri is None else str(uri)
        self.worker_config_variable = str(variable)
        self._worker = _WorkerConfigState()

    async def _query_with_worker_config(self, next_check_s: float) -> dict[str, Any]:
        """The query of this check: ``query`` with the worker config of ``worker_config_uri`` applied (the last
        one read when it cannot be read now; none read yet: ``query`` alone); every problem logged."""
        if not (self.worker_config_uri or "").strip():
            return self._query
        state = self._worker
        try:
            changed = await asyncio.to_thread(_refresh_worker_config, state, self._query, str(self.worker_config_uri),
                                              self.worker_config_variable)
        except Exception as exc:  # noqa: BLE001 - logged at every check; the watcher keeps watching
            state.failures += 1
            if state.query is None:
                fallback = self._UNREAD
            else:
                fallback = f"the checks go on with the worker config read at {state.read_at}"
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            self.log.error("the worker config of the new-file watcher cannot be used (%d check%s in a row): %s\n%s; "
                           "it is read again at the next check, in %ss", state.failures,
                           "" if state.failures == 1 else "s", message, fallback, next_check_s)
            return self._query if state.query is None else state.query
        if state.failures:
            self.log.info("the worker config %s=%r can be used again", self.worker_config_variable,
                          self.worker_config_uri)
        state.failures = 0
        if changed:
            self.log.info("worker config %s=%r read%s: the new-file checks apply %s", self.worker_config_variable,
                          self.worker_config_uri, " again (the file changed)" if state.reads > 1 else "",
                          self._applied(state.query or {}))
        return self._query if state.query is None else state.query

    def _applied(self, query: Mapping[str, Any]) -> str:
        """The worker config's keys the checks apply, with their values in ``query`` (for the log)."""
        return (f"relevant_filenames_file={query.get('relevant_filenames_file')!r}, "
                f"process_all={query.get('process_all')}, input_expiration={expiration_text(query)}")


def expiration_text(query: Mapping[str, Any]) -> str:
    """A query's ``input_expiration``, as the logs say it: ``none`` or ``2 days, SKIP``."""
    if query.get("min_days_to_expiration") is None:
        return "none"
    return f"{query.get('min_days_to_expiration'):g} days, {query.get('expiration_handling')}"


class NewFilesEventTrigger(WorkerConfigOfUri, BaseEventTrigger):
    """Fires an event each time the datasource holds a set of new files it has not announced.

    :param query: what is new (a :class:`~lightly_airflow.datasource.NewFilesQuery` or its
        :meth:`~lightly_airflow.datasource.NewFilesQuery.to_dict`): the same query the DAG's runs use.
    :param poke_interval: seconds between two checks.
    :param isolate: list in a child process (default); False: in a thread of the triggerer.
    :param worker_config_uri: a worker config to read where the trigger runs, not where it is made (the URI of a
        bucket's file, ``s3://``, ``gs://``, ``az://``, or a local path or ``file://`` URI; JSON or YAML), applied
        to ``query`` at each check and read again when the file changes (see the module's docstring).
        ``None``: ``query`` is used as it is.
    :param worker_config_variable: what gave ``worker_config_uri`` (a deployment variable), named by its errors.

    The event's payload (the asset event's ``extra["payload"]``): ``status`` ``"new_files"``,
    ``datasource_uri``, ``listed``, ``new``, ``known``, ``process_all`` and ``digest``.
    """

    #: Seconds between an event and the save of its set as announced. The triggerer's runner hands its triggers'
    #: events to its supervisor process once a second (``sync_state_to_supervisor``), which stores them in the
    #: metadata database right after the turn that received them (``handle_events``), before it serves later
    #: messages; a save (a message to the same supervisor) this much later comes after the stored event. The set
    #: was saved before the event: a triggerer stopped in the second between them (a deployment, an evicted pod)
    #: had saved a set it never announced, and its successor took the files for announced, with no run for them
    #: until another file landed. Now a triggerer stopped between the event and the save announces the set again
    #: from its successor: at worst one run more, which finds the files processed (or waits behind their run,
    #: ``max_active_runs``) and skips at its first task.
    SAVE_AFTER_S = 5.0

    def __init__(
        self,
        *,
        query: NewFilesQuery | Mapping[str, Any],
        poke_interval: float = 300.0,
        isolate: bool = True,
        worker_config_uri: str | None = None,
        worker_config_variable: str = WORKER_CONFIG_VARIABLE,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._query = dict(query) if isinstance(query, Mapping) else query.to_dict()
        self.poke_interval = float(poke_interval)
        self.isolate = bool(isolate)
        self._watch_worker_config(worker_config_uri, worker_config_variable)
        self._announced = {"digest": "", "files": ""}  # (without a state store: this trigger's own memory)
        self._store_note_logged = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and exactly the constructor's arguments (JSON-safe; connection ids only, no secrets)."""
        return CLASSPATH, {"query": dict(self._query), "poke_interval": self.poke_interval, "isolate": self.isolate,
                           "worker_config_uri": self.worker_config_uri,
                           "worker_config_variable": self.worker_config_variable}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        uri = self._query.get("datasource_uri")
        failures = 0
        while True:
            announced = await self._load()
            query = await self._query_with_worker_config(self.poke_interval)
            try:
                result = await check_in_triggerer(query, isolate=self.isolate, log=self.log, digest=True,
                                                  announced=announced.get("files") or None)
            except Exception as exc:  # noqa: BLE001 - logged, retried: the watcher must not stop
                failures += 1
                message = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
                self.log.error("new-file check of %s failed (%d in a row), next check in %ss: %s", uri, failures,
                               self.poke_interval, message)
                await asyncio.sleep(self.poke_interval)
                continue
            failures = 0
            digest = str(result.pop("digest", "") or "")
            files = str(result.pop("files", "") or "")
            unannounced = int(result.pop("unannounced", -1))
            if unannounced < 0:  # (no file-by-file set to compare with: more than MAX_HASHED_FILES files)
                unannounced = result["new"] if digest != announced.get("digest") else 0
            if result["new"] > 0 and unannounced > 0:
                self.log.info("%d new files in %s (%d listed, %d not announced before): event", result["new"], uri,
                              result["listed"], unannounced)
                yield TriggerEvent({"status": "new_files", **result, "unannounced": unannounced,  # type: ignore[no-untyped-call]
                                    "digest": digest})
                # Saved once the event is stored, never before it (see SAVE_AFTER_S): a triggerer that dies sooner
                # left the set unsaved, and its successor announces it again
                await asyncio.sleep(self.SAVE_AFTER_S)
                await self._save({"digest": digest, "files": files})
            elif result["new"] > 0:
                self.log.info("%d new files in %s, announced already (their run has not processed them yet, or "
                              "failed: clear it to retry); next check in %ss", result["new"], uri, self.poke_interval)
            else:
                if announced.get("digest"):
                    await self._save({"digest": "", "files": ""})  # everything announced was processed
                self.log.info("no new files in %s (%d listed); next check in %ss", uri, result["listed"],
                              self.poke_interval)
            await asyncio.sleep(self.poke_interval)

    # ------------------------------------------------------------------ the last announced set's digest
    def _store(self) -> Any | None:
        store = getattr(self, "asset_state_store", None)
        if store is None and not self._store_note_logged:
            self._store_note_logged = True
            self.log.warning("no asset state store (the trigger does not run as an asset's watcher): the last "
                             "announced set is kept in memory, so a restarted triggerer announces it again")
        return store

    async def _load(self) -> dict[str, str]:
        """The last announced set: ``{"digest", "files"}`` (``files``: its hashes, "" above the cap)."""
        store = self._store()
        if store is not None:
            try:
                value = await (store.aget(STATE_KEY, default=None) if hasattr(store, "aget")
                               else asyncio.to_thread(store.get, STATE_KEY, default=None))
            except ValueError as exc:  # (several watched assets: the accessor needs one)
                self._memory_note(exc)
            else:
                if isinstance(value, dict):
                    return {"digest": str(value.get("digest") or ""), "files": str(value.get("files") or "")}
                return {"digest": "", "files": ""}
        return dict(self._announced)

    async def _save(self, announced: dict[str, str]) -> None:
        self._announced = dict(announced)
        store = self._store()
        if store is None:
            return
        value = {**announced, "at": dt.datetime.now(dt.UTC).isoformat()}
        try:
            await (store.aset(STATE_KEY, value) if hasattr(store, "aset")
                   else asyncio.to_thread(store.set, STATE_KEY, value))
        except ValueError as exc:
            self._memory_note(exc)

    def _memory_note(self, exc: Exception) -> None:
        if not self._store_note_logged:
            self._store_note_logged = True
            self.log.warning("the asset state store cannot be used (%s): the last announced set is kept in memory, "
                             "so a restarted triggerer announces it again; watch one asset with this trigger", exc)


class _WorkerConfigState:
    """What a trigger read of its ``worker_config_uri``: the file's identity when read, the query with it applied."""

    def __init__(self) -> None:
        self.identity: str | None = None   # (None: not read, or the store gave no identity: read at every check)
        self.query: dict[str, Any] | None = None
        self.read_at = ""
        self.reads = 0
        self.failures = 0


def _file_identity(uri: str) -> str | None:
    """The file's identity without reading it (an S3 ``HEAD``: its ETag, size, modification time; a local file's
    ``stat``), ``None`` when it cannot be had (then :func:`load_config` reads the file and names the problem)."""
    from lightly_airflow.config import config_source
    from lightly_airflow.storage import filesystem

    try:
        if config_source(uri, "worker_config_uri") == "inline":
            return None
        fs, path = filesystem(uri.strip(), None)
        fs.invalidate_cache(path)  # (a listing of the same store in this process must not answer for the file)
        return str(fs.ukey(path))
    except Exception:  # noqa: BLE001 - load_config reports it, with the fix
        return None


def _refresh_worker_config(state: _WorkerConfigState, query: Mapping[str, Any], uri: str, variable: str) -> bool:
    """Read ``uri`` when it is not read yet or its identity changed, and keep ``query`` with it applied in
    ``state`` (blocking: a thread); returns whether it was read.

    :raises ValueError: naming ``variable``, ``uri``, the problem and the fix (a ``ConfigSourceError``), or the
        query's own (two different relevant-filenames files).
    """
    from lightly_airflow.config import load_config, parse_worker_config
    from lightly_airflow.datasource import NewFilesQuery

    identity = _file_identity(uri)
    if identity is not None and identity == state.identity and state.query is not None:
        return False
    parsed: list[Any] = []
    load_config(uri, variable, lambda data: parsed.append(parse_worker_config(data)))
    try:
        applied = NewFilesQuery.from_dict(query).with_worker_config(parsed[0])
    except ValueError as exc:
        raise ValueError(f"{variable}={uri!r}: {exc}") from None
    state.identity, state.query, state.reads = identity, applied.to_dict(), state.reads + 1
    state.read_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return True
