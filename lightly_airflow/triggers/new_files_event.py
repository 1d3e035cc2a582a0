"""``NewFilesEventTrigger``: run the DAG when new files land (Airflow 3's event-driven scheduling).

Given to an :class:`~airflow.sdk.AssetWatcher` of the asset a DAG is scheduled on, the trigger lists the
datasource every ``poke_interval`` seconds in the triggerer (each check as :class:`NewFilesTrigger`'s: the
connections resolved in a thread, the listing in a child process) and fires an event, hence one DAG run, when
there are files the datapool has not processed **and that it has not announced before**. It keeps the last
announced set in the watched asset's state store (a 64-bit hash of each file's key, content identity and size,
up to :data:`~lightly_airflow.datasource.check.MAX_HASHED_FILES` files, and the set's digest), so neither the
checks while its run works, nor a restarted triggerer, nor the remainder of a set a run processed in part
announce those files again; a file added or changed is not in the set, hence another event (one more run: the
DAG's ``max_active_runs`` queues it). Above the cap the set is compared by its digest alone (a remainder is
then announced again: one more run, which finds nothing or little to do). A check that finds nothing new
clears the set: everything announced was processed, and the next new file fires whatever it is. A run that
fails leaves its files new and announced: the trigger does not start run after failing run on them (clear the
failed run to retry it; a new file fires a run anyway).

A check that fails (the datasource unreachable, a connection missing) is logged with the error and retried at
the next interval: an event would start a DAG run, and the trigger must keep watching.
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

#: The key of the last announced set in the watched asset's state store: ``{"digest", "files", "at"}``.
STATE_KEY = "lightly_airflow.new_files.announced"


class NewFilesEventTrigger(BaseEventTrigger):
    """Fires an event each time the datasource holds a set of new files it has not announced.

    :param query: what is new (a :class:`~lightly_airflow.datasource.NewFilesQuery` or its
        :meth:`~lightly_airflow.datasource.NewFilesQuery.to_dict`): the same query the DAG's runs use.
    :param poke_interval: seconds between two checks.
    :param isolate: list in a child process (default); False: in a thread of the triggerer.

    The event's payload (the asset event's ``extra["payload"]``): ``status`` ``"new_files"``,
    ``datasource_uri``, ``listed``, ``new``, ``known``, ``process_all`` and ``digest``.
    """

    def __init__(
        self, *, query: NewFilesQuery | Mapping[str, Any], poke_interval: float = 300.0, isolate: bool = True
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._query = dict(query) if isinstance(query, Mapping) else query.to_dict()
        self.poke_interval = float(poke_interval)
        self.isolate = bool(isolate)
        self._announced = {"digest": "", "files": ""}  # (without a state store: this trigger's own memory)
        self._store_note_logged = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and exactly the constructor's arguments (JSON-safe; connection ids only, no secrets)."""
        return CLASSPATH, {"query": dict(self._query), "poke_interval": self.poke_interval, "isolate": self.isolate}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        uri = self._query.get("datasource_uri")
        failures = 0
        while True:
            announced = await self._load()
            try:
                result = await check_in_triggerer(self._query, isolate=self.isolate, log=self.log, digest=True,
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
                await self._save({"digest": digest, "files": files})
                self.log.info("%d new files in %s (%d listed, %d not announced before): event", result["new"], uri,
                              result["listed"], unannounced)
                yield TriggerEvent({"status": "new_files", **result, "unannounced": unannounced,  # type: ignore[no-untyped-call]
                                    "digest": digest})
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
