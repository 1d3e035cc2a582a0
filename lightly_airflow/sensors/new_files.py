"""``NewFilesSensor``: wait until a datasource has files the datapool has not processed yet."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from lightly_airflow.datasource import DEFAULT_EXTENSIONS, POLICIES, NewFilesQuery
from lightly_airflow.operators.base import ConnectionCredentials, TextRendering, read_rendered, skip_a_committed_run
from lightly_airflow.triggers.new_files import NewFilesTrigger, check_with

#: The task state store's key of a deferred wait's deadline: ``{"first_try", "end_at"}`` (see ``_deadline``).
DEADLINE_KEY = "lightly_airflow.new_files.deadline"


class NewFilesCheckError(RuntimeError):
    """A check of the datasource failed while the sensor waited in the triggerer (its message: the store's or the
    datapool's error). Not an ``AirflowException`` on purpose: Airflow's ``BaseSensorOperator.resume_execution``
    turns every ``AirflowException`` of a deferred sensor into a skip when ``soft_fail`` is set, so with the
    example DAG's ``soft_fail=True`` a datapool that became unreadable or a revoked bucket permission ended the run
    as "skipped", like a day with nothing new, while the same error in poke mode failed it. Now both modes fail
    (retried as the task's ``retries`` say); ``soft_fail`` skips only a wait that timed out."""


class NewFilesSensor(TextRendering, ConnectionCredentials, BaseSensorOperator):
    """Succeeds when the datasource has files the datapool has not processed (by key and content identity).

    The sensor pushes ``{"datasource_uri", "listed", "new", "known", "process_all"}`` to XCom. With
    ``wait=False`` it checks once and skips the rest of the run when nothing is new; otherwise it waits
    (deferred in the triggerer by default, or poking) until ``timeout``, and ``soft_fail=True`` turns a
    timeout into a skip as well.

    :param datasource_uri: the datasource root (``s3://``, ``gs://``, ``az://``/``abfs://``, ``file://``).
    :param datapool_uri: the datapool to compare against (a missing pool means every file is new).
    :param datasource_conn_id: Airflow connection of the datasource's store (None: ambient credentials).
    :param datapool_conn_id: Airflow connection of the datapool's store.
    :param lightly_uri: folder holding ``.lightly/`` (default: the datasource).
    :param lightly_conn_id: connection of ``lightly_uri``'s store (default: ``datasource_conn_id``).
    :param relevant_filenames_file: name of a relevant-filenames file inside ``.lightly/`` (default:
        ``worker_config.relevant_filenames_file``).
    :param extensions: file extensions to list (default: the image extensions Lightly supports).
    :param policy: ``content`` (a changed file is new) or ``key`` (only new keys are new).
    :param live_photo_videos: a Live Photo's motion clip (a short ``.MOV`` beside the photo of the same name)
        is new as a video too; default: the photo is the sample (the list task takes the same value; templated).
    :param process_all: every listed file counts as new (templated; ``"{{ params.process_all }}"`` works);
        ``worker_config.datasource.process_all`` does the same (the sensor and the list task build the same
        :class:`~lightly_airflow.datasource.NewFilesQuery`).
    :param wait: ``False`` checks once and skips downstream tasks when nothing is new.
    :param deferrable: wait in the triggerer instead of holding a worker slot
        (default ``[lightly] default_deferrable``, true). Deferred, ``timeout`` counts from the first try of the
        task in its run: a retry (after a check that failed) waits what is left of it, as in reschedule mode;
        poking, each try waits ``timeout`` (Airflow's loop).
    :param selection_config: when given (with ``worker_config``), the run's parameters are validated before
        waiting, so a typo fails at once with a message naming the parameter instead of after hours of waiting.
    :param worker_config: Lightly worker-config keys: ``datasource.process_all`` and
        ``relevant_filenames_file`` decide what is new; validated with ``selection_config``.
    :param lightly_config: Lightly's embedding settings, validated with ``selection_config``.
    :param active_learning: the run's active-learning params (query/preselected tag, ``n_samples_meaning``),
        validated with ``selection_config`` against the datapool's tags.
    :param tag_name: the run's tag (templated), checked before waiting as the list task and the commit check it
        (a name, not ``initial-tag``, not another run's), so a bad tag fails this first task, not the list task
        after hours of waiting; empty: derived from the run (checked by the list task).
    """

    template_fields: Sequence[str] = (
        "datasource_uri",
        "datapool_uri",
        "lightly_uri",
        "relevant_filenames_file",
        "datasource_conn_id",
        "datapool_conn_id",
        "lightly_conn_id",
        "process_all",
        "live_photo_videos",
        "selection_config",
        "worker_config",
        "lightly_config",
        "active_learning",
        "tag_name",
    )
    #: read back when a DAG without native rendering made them text (``operators.base.read_rendered``)
    rendered_kinds = {"selection_config": dict, "worker_config": dict, "lightly_config": dict, "active_learning": dict,
                      "lightly_uri": str, "relevant_filenames_file": str, "tag_name": str}
    text_value_fields = ("active_learning",)  # tag names and a meaning, checked against the pool's tags
    ui_color = "#d7f0e8"

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
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        policy: str = "content",
        process_all: bool | str = False,
        live_photo_videos: bool | str = False,
        wait: bool = True,
        deferrable: bool = conf.getboolean("lightly", "default_deferrable", fallback=True),
        selection_config: dict[str, Any] | str | None = None,
        worker_config: dict[str, Any] | str | None = None,
        lightly_config: dict[str, Any] | str | None = None,
        active_learning: dict[str, Any] | None = None,
        tag_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if policy not in POLICIES:
            raise ValueError(f"NewFilesSensor {kwargs.get('task_id')!r}: unknown policy {policy!r}; use one of {POLICIES}.")
        if isinstance(extensions, str):
            extensions = [extensions]
        self.datasource_uri = datasource_uri
        self.datapool_uri = datapool_uri
        self.datasource_conn_id = datasource_conn_id
        self.datapool_conn_id = datapool_conn_id
        self.lightly_uri = lightly_uri
        self.lightly_conn_id = lightly_conn_id
        self.relevant_filenames_file = relevant_filenames_file
        self.extensions = list(extensions)
        self.policy = policy
        self.live_photo_videos = live_photo_videos
        self.process_all = process_all
        self.wait = wait
        self.deferrable = deferrable
        self.selection_config = selection_config
        self.worker_config = worker_config
        self.lightly_config = lightly_config
        self.active_learning = active_learning
        self.tag_name = tag_name

    def query(self) -> NewFilesQuery:
        """What is new, from the rendered arguments and the worker config (the list task builds the same).

        :raises ValueError: for a bad argument (e.g. ``process_all="maybe"``) or worker config.
        """
        return NewFilesQuery.build(
            datasource_uri=self.datasource_uri,
            datapool_uri=self.datapool_uri,
            worker_config=self.worker_config,
            lightly_uri=self.lightly_uri,
            datasource_conn_id=self.datasource_conn_id,
            datapool_conn_id=self.datapool_conn_id,
            lightly_conn_id=self.lightly_conn_id,
            relevant_filenames_file=self.relevant_filenames_file,
            extensions=self.extensions,
            policy=self.policy,
            process_all=self.process_all,
            live_photo_videos=self.live_photo_videos,
        )

    def _trigger(self, end_at: float | None = None) -> NewFilesTrigger:
        return NewFilesTrigger(query=self.query(), poke_interval=self.poke_interval, end_at=end_at)

    def _check(self) -> dict[str, Any]:
        from lightly_airflow.datasource.check import hashes_kept
        from lightly_airflow.hooks.storage import query_credentials

        query = self.query()
        credentials = query_credentials(query, self.credentials)  # (resolved once per try: ConnectionCredentials)
        # (each rescheduled poke runs in a new process: a local datasource's hashes are kept between them)
        with hashes_kept(query.datasource_uri) if self.mode == "reschedule" else contextlib.nullcontext():
            result = check_with(query, credentials)
        self.log.info(
            "%s: %d files listed, %d new (%d known to the datapool%s)", self.datasource_uri, result.listed,
            result.new, result.known, ", process_all" if result.process_all else "",
        )
        return result.to_dict()

    def poke(self, context: Any) -> PokeReturnValue:
        result = self._check()
        return PokeReturnValue(is_done=result["new"] > 0, xcom_value=result)

    def _validate_params(self, run_id: str | None) -> None:
        from lightly_airflow.hooks.storage import UnsupportedConnectionError
        from lightly_airflow.pipeline import ParamError, check_run_tag, check_uri_param, validate_params

        read_rendered(self)
        try:
            if self.selection_config is None:
                check_uri_param("datasource_uri", self.datasource_uri, self.datasource_credentials, must_exist=True)
            else:
                validate_params(
                    datasource_uri=self.datasource_uri,
                    datapool_uri=self.datapool_uri,
                    lightly_uri=self.lightly_uri,
                    selection_config=self.selection_config,
                    worker_config=self.worker_config,
                    datasource_credentials=self.datasource_credentials,
                    lightly_credentials=self.lightly_credentials,
                    lightly_config=self.lightly_config,
                    active_learning=self.active_learning or None,
                    datapool_credentials=self.datapool_credentials,
                )
            if self.tag_name:
                check_run_tag(self.datapool_uri, self.tag_name, run_id or "", self.datapool_credentials)
        except (ParamError, UnsupportedConnectionError) as exc:
            raise AirflowFailException(str(exc)) from None  # a retry or more waiting cannot fix a bad parameter
        try:
            self.query()
        except ValueError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None

    def execute(self, context: Any) -> Any:
        self._validate_params(context.get("run_id"))
        # (a cleared run that committed: skipped now, not after waiting hours for new files it would drop)
        skip_a_committed_run(self.datapool_uri, context.get("run_id"), self.datapool_credentials, self.log)
        if not self.wait:
            result = self._check()
            if result["new"] == 0:
                raise AirflowSkipException(f"No new files in {self.datasource_uri}: nothing to process in this run.")
            return result
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        end_at = self._deadline(context, started)
        result = self._check()
        if result["new"] > 0:
            return result
        left = None if end_at is None else end_at - started  # (the trigger ends the wait at end_at itself)
        if left is not None and left <= 0:
            self._timed_out()
        self.defer(
            trigger=self._trigger(end_at),
            method_name="execute_complete",
            timeout=None if left is None else dt.timedelta(seconds=left),
        )
        return None

    def _deadline(self, context: Any, now: float) -> float | None:
        """UNIX time the deferred wait ends: ``timeout`` after the first try of the task in this run, as Airflow's
        docs say of sensors ("Retrying does not reset the timeout"; its reschedule mode counts so). A deferred
        sensor took ``timeout`` from each try: a try that failed on a check (a bucket unreachable for a while)
        and its retries made a 6 h wait up to ``retries + 1`` times 6 h. The first try's deadline is kept in
        the task instance's state store (Airflow 3.3's ``task_state_store``, shared by the tries of a task
        instance), tagged with that try's number; a task that was cleared (a new first try) waits ``timeout``
        again. Without a store (a test calling ``execute``) each try counts from its start. Poke mode is
        Airflow's own loop, whose timeout counts per try."""
        if self.timeout is None:
            return None
        store, ti = context.get("task_state_store"), context.get("ti")
        first_try = None if ti is None else int(getattr(ti, "max_tries", 0) or 0) - int(self.retries or 0) + 1
        if store is None or first_try is None:
            return now + float(self.timeout)
        try:
            kept = store.get(DEADLINE_KEY, None)
        except Exception as exc:  # noqa: BLE001 - the wait goes on, counted from this try (said)
            self.log.warning("The task state store cannot be read (%s: %s): this try waits the whole timeout "
                             "(%s s), not what is left of the first try's.", type(exc).__name__, exc, self.timeout)
            return now + float(self.timeout)
        if isinstance(kept, dict) and kept.get("first_try") == first_try and isinstance(kept.get("end_at"), (int, float)):
            end_at = float(kept["end_at"])
            self.log.info("The wait for new files began at try %d: it ends at %s UTC (timeout %s s counts from "
                          "the first try; %.0f s left).", first_try,
                          dt.datetime.fromtimestamp(end_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), self.timeout,
                          max(0.0, end_at - now))
            return end_at
        end_at = now + float(self.timeout)
        try:
            store.set(DEADLINE_KEY, {"first_try": first_try, "end_at": end_at})
        except Exception as exc:  # noqa: BLE001 - as above
            self.log.warning("The task state store cannot be written (%s: %s): a retry would wait the whole timeout "
                             "again.", type(exc).__name__, exc)
        return end_at

    def _timed_out(self) -> NoReturn:
        message = f"{self.task_id}: no new files in {self.datasource_uri} within {self.timeout} s."
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if event and event.get("status") == "timeout":
            self._timed_out()
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "the trigger ended without an event")
            raise NewFilesCheckError(f"{self.task_id}: waiting for new files in {self.datasource_uri} failed: {message}")
        result = {k: v for k, v in event.items() if k != "status"}
        self.log.info("%s: %d new files found by the trigger", self.datasource_uri, result["new"])
        return result
