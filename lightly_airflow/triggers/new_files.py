"""``NewFilesTrigger``: wait in the triggerer until a datasource has files the datapool has not processed.

The trigger serialises connection *ids*, never secrets: credentials are resolved inside the triggerer from
the Airflow connections each time it checks, so rotated keys are picked up and nothing secret is stored in
the trigger table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from lightly_airflow.datasource import IMAGE_EXTENSIONS, POLICIES, NewFilesCheck, check_new_files

log = logging.getLogger(__name__)

CLASSPATH = "lightly_airflow.triggers.new_files.NewFilesTrigger"


def evaluate_new_files(
    *,
    datasource_uri: str,
    datapool_uri: str,
    datasource_conn_id: str | None = None,
    datapool_conn_id: str | None = None,
    lightly_uri: str | None = None,
    lightly_conn_id: str | None = None,
    relevant_filenames_file: str | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    policy: str = "content",
    process_all: bool = False,
) -> NewFilesCheck:
    """One blocking check, shared by the sensor's ``poke`` and the trigger (which runs it in a thread).

    Connections are resolved here (not in ``__init__``), so a DAG file never touches them at parse time.
    """
    from lightly_airflow.lightly_dir import read_relevant_filenames
    from lightly_airflow.operators.base import credentials_for

    datasource_credentials = credentials_for(datasource_conn_id)
    relevant = None
    if relevant_filenames_file:
        lightly_credentials = credentials_for(lightly_conn_id) if lightly_conn_id else datasource_credentials
        relevant = read_relevant_filenames(lightly_uri or datasource_uri, relevant_filenames_file, lightly_credentials)
    return check_new_files(
        datasource_uri,
        datapool_uri,
        credentials=datasource_credentials,
        datapool_credentials=credentials_for(datapool_conn_id),
        relevant_filenames=relevant,
        extensions=tuple(extensions),
        policy=policy,
        process_all=process_all,
    )


class NewFilesTrigger(BaseTrigger):
    """Fires once the datasource has at least one file the datapool has not processed.

    :param datasource_uri: the datasource root (``s3://``, ``gs://``, ``az://``/``abfs://``, ``file://``).
    :param datapool_uri: the datapool whose known files are excluded.
    :param datasource_conn_id: Airflow connection of the datasource's store (None: ambient credentials).
    :param datapool_conn_id: Airflow connection of the datapool's store.
    :param lightly_uri: folder holding ``.lightly/`` (default: the datasource).
    :param lightly_conn_id: connection of ``lightly_uri``'s store (default: ``datasource_conn_id``).
    :param relevant_filenames_file: name of a relevant-filenames file inside ``.lightly/``.
    :param extensions: file extensions to list.
    :param policy: ``content`` (key and etag) or ``key``.
    :param process_all: every listed file counts (fires as soon as the datasource has any file).
    :param poke_interval: seconds between two checks.
    :param end_at: UNIX time after which the trigger stops waiting and reports ``timeout`` (None: never).
        The trigger keeps its own deadline so a wait ends on time wherever it runs, also where the runner
        does not enforce the task's deferral timeout (``dag.test``/``airflow dags test`` run triggers inline).
    """

    def __init__(
        self,
        *,
        datasource_uri: str,
        datapool_uri: str,
        datasource_conn_id: str | None = None,
        datapool_conn_id: str | None = None,
        lightly_uri: str | None = None,
        lightly_conn_id: str | None = None,
        relevant_filenames_file: str | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        policy: str = "content",
        process_all: bool = False,
        poke_interval: float = 60.0,
        end_at: float | None = None,
    ) -> None:
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"NewFilesTrigger: unknown policy {policy!r}; use one of {POLICIES}.")
        self.datasource_uri = datasource_uri
        self.datapool_uri = datapool_uri
        self.datasource_conn_id = datasource_conn_id
        self.datapool_conn_id = datapool_conn_id
        self.lightly_uri = lightly_uri
        self.lightly_conn_id = lightly_conn_id
        self.relevant_filenames_file = relevant_filenames_file
        self.extensions = list(extensions)
        self.policy = policy
        self.process_all = bool(process_all)
        self.poke_interval = float(poke_interval)
        self.end_at = None if end_at is None else float(end_at)

    def check_kwargs(self) -> dict[str, Any]:
        """The arguments of :func:`evaluate_new_files`."""
        return {
            "datasource_uri": self.datasource_uri,
            "datapool_uri": self.datapool_uri,
            "datasource_conn_id": self.datasource_conn_id,
            "datapool_conn_id": self.datapool_conn_id,
            "lightly_uri": self.lightly_uri,
            "lightly_conn_id": self.lightly_conn_id,
            "relevant_filenames_file": self.relevant_filenames_file,
            "extensions": list(self.extensions),
            "policy": self.policy,
            "process_all": self.process_all,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and every constructor argument (JSON-safe; connection ids only, no secrets)."""
        return CLASSPATH, {**self.check_kwargs(), "poke_interval": self.poke_interval, "end_at": self.end_at}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check every ``poke_interval`` seconds; the blocking listing runs in a worker thread."""
        while True:
            try:
                result = await asyncio.to_thread(evaluate_new_files, **self.check_kwargs())
            except Exception as exc:  # noqa: BLE001 - reported to the sensor, which fails with the message
                self.log.exception("new-file check of %s failed", self.datasource_uri)
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            if result.new > 0:
                self.log.info("%d new files in %s (%d listed)", result.new, self.datasource_uri, result.listed)
                yield TriggerEvent({"status": "success", **result.to_dict()})
                return
            now = time.time()
            if self.end_at is not None and now >= self.end_at:
                self.log.info("no new files in %s (%d listed) before the deadline", self.datasource_uri, result.listed)
                yield TriggerEvent({"status": "timeout", **result.to_dict()})
                return
            self.log.info("no new files in %s (%d listed); next check in %ss", self.datasource_uri, result.listed,
                          self.poke_interval)
            pause = self.poke_interval if self.end_at is None else max(0.0, min(self.poke_interval, self.end_at - now))
            await asyncio.sleep(pause)
