"""``NewFilesTrigger``: wait in the triggerer until a datasource has files the datapool has not processed.

The trigger's one argument that says what is new is the run's
:class:`~lightly_airflow.datasource.NewFilesQuery`, serialised as it is (connection *ids*, never secrets):
credentials are resolved inside the triggerer from the Airflow connections each time it checks, so rotated
keys are picked up and nothing secret is stored in the trigger table.

The triggerer runs every deferred task of the deployment in one event loop, so this trigger keeps its work
out of that process. The module imports nothing but the standard library and Airflow's ``BaseTrigger`` at
the top (the triggerer imports it and builds the trigger inside the loop; the datasource code took
0.12–0.19 s to import there, and a real triggerer logged "blocked for 0.25 seconds"). Each check resolves
the connections in a worker thread (Airflow's hooks, so rotated keys are picked up) and runs the listing in
a child process (:func:`lightly_airflow.datasource.check.main`): parsing S3's XML listing pages holds the GIL
(a real triggerer logged blocks of 0.36–0.40 s on a 2,500-object bucket), and a listing's Arrow tables of
every key would otherwise grow the shared triggerer's memory. Credentials that are objects (a GCP
impersonation chain, an Azure token credential) cannot be handed to a child: then the check runs in the
thread, and the trigger logs so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from lightly_airflow.datasource import NewFilesCheck, NewFilesQuery, QueryCredentials

log = logging.getLogger(__name__)

CLASSPATH = "lightly_airflow.triggers.new_files.NewFilesTrigger"

#: The child process of one isolated check (``sys.executable -c CHILD``).
CHILD = "from lightly_airflow.datasource.check import main; raise SystemExit(main())"

#: At most this many of a child's log lines are repeated in the trigger's log per check.
CHILD_LOG_LINES = 20


class CheckFailed(Exception):
    """A check failed in the child process; the message is the child's ``<type>: <message>``."""


def _as_query(query: NewFilesQuery | Mapping[str, Any]) -> NewFilesQuery:
    from lightly_airflow.datasource import NewFilesQuery

    return query if isinstance(query, NewFilesQuery) else NewFilesQuery.from_dict(query)


def resolve_credentials(query: NewFilesQuery | Mapping[str, Any]) -> QueryCredentials:
    """The credentials of a query's stores, from its connection ids (validates the query; blocking).

    Connections are resolved here (not in ``__init__``), so a DAG file never touches them at parse time.
    """
    from lightly_airflow.hooks.storage import query_credentials

    return query_credentials(_as_query(query))


def check_with(query: NewFilesQuery | Mapping[str, Any], credentials: QueryCredentials, digest: bool = False,
               announced: str | None = None) -> NewFilesCheck:
    """One check with credentials already resolved (blocking); ``digest`` and ``announced``: for the event
    trigger (:func:`lightly_airflow.datasource.check.check_new_files`)."""
    from lightly_airflow.datasource import check_new_files

    return check_new_files(_as_query(query), credentials, digest=digest, announced=announced)


def evaluate_new_files(query: NewFilesQuery | Mapping[str, Any]) -> NewFilesCheck:
    """One blocking check in this process: the sensor's ``poke``."""
    return check_with(query, resolve_credentials(query))


class NewFilesTrigger(BaseTrigger):
    """Fires once the datasource has at least one file the run's query says is new.

    :param query: what is new (a :class:`NewFilesQuery` or its :meth:`~NewFilesQuery.to_dict`, as the
        triggerer passes it back).
    :param poke_interval: seconds between two checks.
    :param end_at: UNIX time after which the trigger stops waiting and reports ``timeout`` (None: never).
        The trigger keeps its own deadline so a wait ends on time wherever it runs, also where the runner
        does not enforce the task's deferral timeout (``dag.test``/``airflow dags test`` run triggers inline).
    :param isolate: list in a child process (default; see the module's docstring); False: in a thread of
        the triggerer.
    """

    def __init__(
        self,
        *,
        query: NewFilesQuery | Mapping[str, Any],
        poke_interval: float = 60.0,
        end_at: float | None = None,
        isolate: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        # Kept as its JSON-safe dict (a NewFilesQuery is validated where it is made, in the sensor; the dict the
        # triggerer passes back is read in the first check's thread): see the module's docstring.
        self._query = dict(query) if isinstance(query, Mapping) else query.to_dict()
        self.poke_interval = float(poke_interval)
        self.end_at = None if end_at is None else float(end_at)
        self.isolate = bool(isolate)

    @property
    def query(self) -> NewFilesQuery:
        """The run's query (imports the datasource code: not for the triggerer's event loop)."""
        from lightly_airflow.datasource import NewFilesQuery

        return NewFilesQuery.from_dict(self._query)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and exactly the constructor's arguments (JSON-safe; connection ids only, no secrets)."""
        return CLASSPATH, {
            "query": dict(self._query), "poke_interval": self.poke_interval, "end_at": self.end_at,
            "isolate": self.isolate,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check every ``poke_interval`` seconds, each check in a child process (or a thread, see ``isolate``)."""
        uri = self._query.get("datasource_uri")
        while True:
            try:
                result = await self._check()
            except Exception as exc:  # noqa: BLE001 - reported to the sensor, which fails with the message
                if isinstance(exc, CheckFailed):  # the child logged its traceback (repeated above)
                    message = str(exc)
                    self.log.error("new-file check of %s failed: %s", uri, message)
                else:
                    message = f"{type(exc).__name__}: {exc}"
                    self.log.exception("new-file check of %s failed", uri)
                yield TriggerEvent({"status": "error", "message": message})  # type: ignore[no-untyped-call]
                return
            if result["new"] > 0:
                self.log.info("%d new files in %s (%d listed)", result["new"], uri, result["listed"])
                yield TriggerEvent({"status": "success", **result})  # type: ignore[no-untyped-call]
                return
            now = time.time()
            if self.end_at is not None and now >= self.end_at:
                self.log.info("no new files in %s (%d listed) before the deadline", uri, result["listed"])
                yield TriggerEvent({"status": "timeout", **result})  # type: ignore[no-untyped-call]
                return
            self.log.info("no new files in %s (%d listed); next check in %ss", uri, result["listed"], self.poke_interval)
            pause = self.poke_interval if self.end_at is None else max(0.0, min(self.poke_interval, self.end_at - now))
            await asyncio.sleep(pause)

    async def _check(self) -> dict[str, Any]:
        """One check; returns :meth:`NewFilesCheck.to_dict`."""
        return await check_in_triggerer(self._query, isolate=self.isolate, log=self.log)


async def check_in_triggerer(query: Mapping[str, Any], *, isolate: bool, log: logging.Logger | Any,
                             digest: bool = False, announced: str | None = None) -> dict[str, Any]:
    """One check from a trigger's ``run`` (see the module's docstring): the connections resolved in a worker
    thread, the listing in a child process (``isolate``, and the credentials are portable) or in a thread;
    returns :meth:`NewFilesCheck.to_dict` (with the files' digest and hashes when ``digest``, and how many are
    not among ``announced``).

    :raises CheckFailed: the child process failed (its message; its last log lines are in ``log``).
    """
    credentials = await asyncio.to_thread(resolve_credentials, query)
    if not (isolate and credentials.portable):
        if isolate:
            log.info("credentials of %s are objects a child process cannot take: checking in a thread of "
                     "the triggerer", query.get("datasource_uri"))
        return (await asyncio.to_thread(check_with, query, credentials, digest, announced)).to_dict()
    payload = json.dumps({"query": dict(query), "credentials": credentials.to_dict(), "digest": digest,
                          "announced": announced}).encode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(payload)
    except BaseException:  # cancelled (the deferral ended, the task was cleared): no orphaned child
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
    for line in lines[-CHILD_LOG_LINES:]:
        log.info("check: %s", line)
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = " | ".join(lines[-5:]) or "no output"
        raise CheckFailed(f"ChildProcessError: the check's process exited with {proc.returncode}: {tail}") from None
    if "error" in answer:
        raise CheckFailed(str(answer["error"]))
    return dict(answer)
