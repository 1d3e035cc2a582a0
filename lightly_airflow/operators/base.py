"""The one base class that owns connection handling for every lightly operator.

Operators stay tiny: they declare their templated arguments and call one core function; this base turns
Airflow connection ids into :class:`~lightly_airflow.storage.StorageCredentials` for the core (through
:mod:`lightly_airflow.hooks.storage`).
"""

from __future__ import annotations

import ast
import json
import posixpath
import time
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from lightly_airflow.hooks.storage import credentials_for, lightly_credentials_for
from lightly_airflow.run_origin import RunOrigin, origin_of_events
from lightly_airflow.storage import StorageCredentials, masked_uri

__all__ = ["SHARD_LABEL_TEMPLATE", "ConnectionCredentials", "LightlyBaseOperator", "RenderedValueError", "ShardLabel",
           "credentials_for", "TextRendering", "read_rendered", "rendered", "run_origin", "shard_label", "skip_a_committed_run"]


class RenderedValueError(ValueError):
    """A templated list or dict argument is text that reads as neither (see :func:`rendered`)."""


#: what a templated argument holds: a list, an object (dict) or optional text
Kind = type[list[Any]] | type[dict[str, Any]] | type[str]


def rendered(value: Any, name: str, kind: Kind) -> Any:
    """A templated argument as its value, also when the DAG rendered it as text.

    A DAG without ``render_template_as_native_obj=True`` renders ``"{{ ti.xcom_pull(task_ids='list_new_files') }}"``
    or ``"{{ params.selection_config }}"`` as the value's Python repr (``['s3://…']``, ``{'n_samples': 10}``), or
    as JSON with ``| tojson``: a list or dict is read back from either (JSON, else a Python literal with
    :func:`ast.literal_eval`, never ``eval``). Text that is empty or ``"None"`` (an XCom or param that is None) is
    ``None`` for every kind; optional text (``kind`` ``str``) is otherwise returned as text (a native rendering
    makes ``"2024"`` an int). A list or dict that is not text is returned as it is.

    :raises RenderedValueError: for text that is neither, or that holds another type, naming ``name`` and the fix.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        return str(value) if kind is str else value
    text = value.removeprefix("\ufeff").strip()
    if text in ("", "None"):
        return None
    if kind is str:
        return value
    what = "a list" if kind is list else "an object"
    example = "ti.xcom_pull(task_ids='list_new_files')" if kind is list else f"params.{name}"
    fix = (f"Fix: pass {what} itself and give the DAG render_template_as_native_obj=True, or render it as JSON "
           f"with '| tojson' (e.g. \"{{{{ {example} | tojson }}}}\").")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        from lightly_airflow.config.errors import describe_json_error

        try:
            parsed = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise RenderedValueError(
                f"{name}: the text {text[:80]!r} is neither JSON ({describe_json_error(exc)}) nor a Python literal "
                f"of {what}. {fix}") from None
    if not isinstance(parsed, kind):
        raise RenderedValueError(f"{name}: the text {text[:80]!r} holds {type(parsed).__name__}, not {what}. {fix}")
    return parsed


def read_rendered(op: Any) -> None:
    """Read each of the operator's ``rendered_kinds`` (argument name → kind) back with :func:`rendered` (a DAG
    without native rendering made it text); a list or dict that reads as neither fails the task without a retry
    (the next try renders the same)."""
    try:
        for name, kind in op.rendered_kinds.items():
            setattr(op, name, rendered(getattr(op, name), name, kind))
    except RenderedValueError as exc:
        raise AirflowFailException(f"{op.task_id}: {exc}") from None


def skip_a_committed_run(datapool_uri: str, run_id: str | None, credentials: StorageCredentials | None,
                         log: Any = None) -> None:
    """Skip the rest of a run that committed to the pool already (Airflow's Clear on a finished run, or on its
    first tasks with their downstream; ``airflow backfill create --reprocess-behavior completed``, which clears the
    runs of its dates): its commit is final, and the select task of a run that committed commits nothing again, so
    such a run waited for new files (hours), listed, embedded and scored the files added since (every file, with
    ``process_all``), then left them out. Said in the first task, naming the version and what to do instead
    (a warning in ``log``, and the skip's reason).

    :raises AirflowSkipException: when the pool holds ``run_id``'s commit."""
    from lightly_airflow.datapool import Datapool

    if not run_id:
        return
    version = Datapool(datapool_uri, credentials).committed_version(run_id)
    if version is None:
        return
    message = (
        f"Run {run_id!r} committed version {version} of the datapool {datapool_uri} already: a commit is final, so "
        "this run processes nothing again (its select task would find the commit and leave every file listed now "
        "out). Files added since are new for the next run: trigger one, or wait for the schedule; to reprocess, "
        "trigger a new run with process_all (a backfill over dates that have runs reruns those runs: nothing). (To "
        "write a committed run's missing report, clear only its select_and_commit task.)")
    if log is not None:
        log.warning("%s", message)
    raise AirflowSkipException(message)


def run_origin(context: Mapping[str, Any]) -> RunOrigin | None:
    """What started the task's run, from its context's ``dag_run`` (run type, triggering user, data interval,
    consumed asset events: the new-file watcher's announcements among them); None without a ``dag_run``."""
    dag_run = context.get("dag_run")
    if dag_run is None or getattr(dag_run, "run_type", None) is None:
        return None
    run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
    events = []
    for e in getattr(dag_run, "consumed_asset_events", None) or []:
        asset = getattr(e, "asset", None)
        name = getattr(asset, "name", None) or getattr(asset, "uri", None) or "?"
        source = None
        if getattr(e, "source_dag_id", None):
            source = f"{e.source_dag_id}/{e.source_run_id}" + (f".{e.source_task_id}" if e.source_task_id else "")
        events.append((str(name), getattr(e, "extra", None), getattr(e, "timestamp", None), source))
    start, end = getattr(dag_run, "data_interval_start", None), getattr(dag_run, "data_interval_end", None)
    return RunOrigin(
        run_type=str(run_type), user=getattr(dag_run, "triggering_user_name", None) or None,
        interval_start=None if start is None else start.isoformat(), interval_end=None if end is None else end.isoformat(),
        events=origin_of_events(events),
    )


#: ``map_index_template`` of the tasks mapped over manifest shards (the example DAG's): Airflow shows each mapped
#: task as its shard and size, e.g. ``shard-00003 · 2,400 samples``, instead of its index.
SHARD_LABEL_TEMPLATE = "{{ task.shard_label }}"


def shard_label(manifest_uri: Any, samples: int | None = None) -> str:
    """``shard-00003`` (the manifest shard's file name), with `` · 2,400 samples`` once the task counted them."""
    name = posixpath.basename(str(manifest_uri or "").rstrip("/")).removesuffix(".parquet") or "shard"
    return name if samples is None else f"{name} · {samples:,} sample{'s' * (samples != 1)}"


class ShardLabel:
    """``shard_label`` of an operator with a ``manifest_uri`` (:data:`SHARD_LABEL_TEMPLATE`); its ``execute`` sets
    ``shard_samples`` when it knows the count (the label is rendered before and again after execution)."""

    manifest_uri: Any
    shard_samples: int | None = None

    @property
    def shard_label(self) -> str:
        return shard_label(self.manifest_uri, self.shard_samples)


class TextRendering:
    """Templated text arguments stay text under ``render_template_as_native_obj=True`` (the operators' and the
    wait-for-new-files sensor's: both take the run's ``tag_name`` from the form); see
    :meth:`_do_render_template_fields`.

    ``rendered_kinds``: templated arguments that hold a list, a dict or optional text, and which (read by
    :func:`read_rendered`); ``text_value_fields``: templated dict arguments whose values are all text.
    """

    rendered_kinds: Mapping[str, Kind] = {}
    text_value_fields: Sequence[str] = ()

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any, jinja_env: Any,
                                   seen_oids: set[int]) -> None:
        """Render as Airflow does, then render the text arguments again as text where a native DAG made a number.

        With ``render_template_as_native_obj=True`` Jinja reads every rendered text as a Python literal: a
        ``tag_name`` of ``"2024.10"`` became the float 2024.1, ``"1_000"`` the int 1000 (also without ``{{ }}``;
        apache/airflow#34641) and the run tagged its selection "2024.1". Our optional-text arguments
        (``rendered_kinds`` ``str``) and the values of ``text_value_fields`` that came out as anything but text
        are rendered again from the same template as text, in the DAG's text (sandboxed) environment: the text the
        user gave. Airflow calls this method for plain and mapped tasks alike (``render_template_fields``)."""
        names = [n for n in template_fields if parent is self
                 and (self.rendered_kinds.get(n) is str or n in self.text_value_fields)]
        templates = {n: getattr(self, n, None) for n in names}
        super()._do_render_template_fields(  # type: ignore[misc]
            parent, template_fields, context, jinja_env, seen_oids)
        text_env: list[Any] = []

        def as_text(template: Any, value: Any) -> Any:
            if isinstance(template, dict) and isinstance(value, dict):
                return {k: as_text(template.get(k), v) for k, v in value.items()}
            if not isinstance(template, str) or not isinstance(value, (int, float, complex)):
                return value  # text, None, or a list/dict the template gave (read by read_rendered)
            if not text_env:
                dag = getattr(self, "_dag", None)  # (BaseOperator.has_dag() is untyped)
                text_env.append(dag.get_template_env(force_sandboxed=True) if dag is not None
                                else self.get_template_env())  # type: ignore[attr-defined]
            return text_env[0].from_string(template).render(context)

        for name, template in templates.items():
            setattr(self, name, as_text(template, getattr(self, name)))


class ConnectionCredentials:
    """Each connection of a task resolved once per task try, as the providers' operators keep one cached hook
    (``AwsBaseHookMixin.hook``, a ``cached_property``): ``credentials_for`` runs the provider's hook each time (an
    ``aws`` connection with a ``role_arn``: an STS call; a secrets backend: a request), and a task asked for the
    same connection in each of its checks: the wait-for-new-files sensor resolved the datapool's twice and the
    datasource's twice before its first check, the list task the datapool's five times.

    The cache lives on the operator object the task runs (the worker copies the DAG's operator for each try, and
    a deferred task resumes in a new process), so a retry resolves again (rotated keys are picked up), and it is
    keyed by the rendered connection id. Credentials older than :attr:`CREDENTIALS_REUSE_S` are resolved again:
    a poking sensor waits for hours, and an assumed role's keys last 15 minutes at least.
    """

    #: seconds resolved credentials are reused (a sensor's pokes over hours resolve again every 5 minutes)
    CREDENTIALS_REUSE_S = 300.0

    datasource_conn_id: str | None
    datapool_conn_id: str | None
    lightly_conn_id: str | None

    def credentials(self, conn_id: str | None) -> StorageCredentials | None:
        """``credentials_for(conn_id)``, resolved once per task try (see the class)."""
        key = None if conn_id is None else str(conn_id).strip()
        if not key or key == "None":
            return None
        cache: dict[str, tuple[float, StorageCredentials | None]] = self.__dict__.setdefault(
            "_lightly_resolved_credentials", {})
        now = time.monotonic()
        hit = cache.get(key)
        if hit is None or now - hit[0] > self.CREDENTIALS_REUSE_S:
            hit = cache[key] = (now, credentials_for(key))
        return hit[1]

    @property
    def datasource_credentials(self) -> StorageCredentials | None:
        return self.credentials(self.datasource_conn_id)

    @property
    def datapool_credentials(self) -> StorageCredentials | None:
        return self.credentials(self.datapool_conn_id)

    @property
    def lightly_credentials(self) -> StorageCredentials | None:
        return lightly_credentials_for(self.lightly_conn_id, self.datasource_conn_id, self.lightly_folder(),
                                       self.datasource_credentials, resolve=self.credentials)

    def lightly_folder(self) -> str | None:
        """Where the task's ``.lightly/`` lives: its ``lightly_uri``; else, for a task of the run's shards (a
        ``manifest_uri`` or ``manifests``), the folder the list task recorded in the run's first manifest (what the
        core reads and writes there: a custom DAG that gave ``lightly_uri`` to its list task alone had its select
        and shard tasks use the datasource's connection for a ``.lightly/`` on another cloud, which refuses it);
        None: the datasource."""
        own: str | None = getattr(self, "lightly_uri", None) or None
        if own or "_lightly_recorded_folder" in self.__dict__:
            kept: str | None = own or self.__dict__["_lightly_recorded_folder"]
            return kept
        first = getattr(self, "manifest_uri", None)
        shards = getattr(self, "manifests", None)
        if not first and isinstance(shards, list):
            first = next((m for m in shards if m), None)
        recorded = None
        if isinstance(first, str) and first.strip():
            from lightly_airflow.staging import read_manifest

            recorded = read_manifest(first, self.datapool_credentials).lightly_uri
            log = getattr(self, "log", None)
            if recorded and log is not None:
                log.info("lightly_uri not given to this task: its .lightly/ is %s, as the list task recorded it in %s "
                         "(reached with %s)", masked_uri(recorded), masked_uri(first),
                         f"lightly_conn_id {self.lightly_conn_id!r}" if self.lightly_conn_id else
                         "the datasource's connection when on its store, else the environment's credentials")
        self.__dict__["_lightly_recorded_folder"] = recorded
        return recorded


class LightlyBaseOperator(TextRendering, ConnectionCredentials, BaseOperator):
    """Base of the lightly operators: the datapool and the connections used to reach each store.

    :param datapool_uri: where the datapool table lives (its ``_staging/`` folder holds the run's files).
    :param datasource_conn_id: connection for the datasource bucket (None: ambient credentials).
    :param datapool_conn_id: connection for the datapool's store (None: ambient credentials).
    :param lightly_conn_id: connection for the store holding ``.lightly/`` (defaults to ``datasource_conn_id``).
    """

    template_fields: Sequence[str] = ("datapool_uri", "datasource_conn_id", "datapool_conn_id", "lightly_conn_id")
    ui_color = "#d7f0e8"

    def __init__(
        self,
        *,
        datapool_uri: str,
        datasource_conn_id: str | None = None,
        datapool_conn_id: str | None = None,
        lightly_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.datapool_uri = datapool_uri
        self.datasource_conn_id = datasource_conn_id
        self.datapool_conn_id = datapool_conn_id
        self.lightly_conn_id = lightly_conn_id

    def read_rendered(self) -> None:
        read_rendered(self)

    def send_metrics(self, values: Mapping[str, float]) -> None:
        """Hand ``values`` (:mod:`lightly_airflow.run_metrics` gauges) to Airflow's metrics (the ``[metrics]``
        section: StatsD, OpenTelemetry, Datadog; nothing when none is on), tagged ``dag_id`` and ``datapool``.

        While ``[metrics] legacy_names_on`` is true (Airflow's default), each is also sent under its
        :func:`~lightly_airflow.run_metrics.legacy_name`, untagged, as Airflow sends its own metrics' legacy
        names: on a backend that drops tags (plain StatsD) every DAG and datapool keeps its own series.
        A backend that fails is logged, never the task's failure."""
        from airflow.sdk.configuration import conf
        from airflow.sdk.observability.stats import gauge

        from lightly_airflow.run_metrics import legacy_name

        datapool = str(self.datapool_uri)
        tags = {"dag_id": self.dag_id, "datapool": datapool}
        legacy = conf.getboolean("metrics", "legacy_names_on", fallback=True)
        failed = []
        for name, value in values.items():
            try:
                if legacy:
                    gauge(legacy_name(name, self.dag_id, datapool), value)
                gauge(name, value, tags=tags)
            except Exception as exc:  # noqa: BLE001 - metrics are never worth a failed run
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
        if failed:
            self.log.warning("%d of %d metrics could not be sent (the run is not affected): %s", len(failed),
                             len(values), "; ".join(failed[:3]))
        also = f"; and untagged as e.g. {legacy_name(next(iter(values)), self.dag_id, datapool)}" if legacy and values else ""
        self.log.info("Metrics (tagged dag_id, datapool%s): %s", also, ", ".join(f"{n}={v:g}" for n, v in values.items()))

