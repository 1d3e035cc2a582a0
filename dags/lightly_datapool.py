"""Grow a curated datapool from a bucket of images and videos, run by run.

wait for new files ─► list new files ─► embed (mapped over shards: in-process, or GPU pods) ─┐
              ├─► compute metadata (mapped) ───────────────────────────┼─► select & commit the datapool
              └─► load predictions (mapped) ───────────────────────────┘

Every default below can be changed in the trigger form; a scheduled run uses the defaults, which come from
environment variables so one DAG file serves every deployment:

- ``LIGHTLY_DATASOURCE_URI`` / ``LIGHTLY_DATAPOOL_URI`` / ``LIGHTLY_LIGHTLY_URI``: where images and videos, the
  datapool and ``.lightly/`` live (``file://``, ``s3://``, ``gs://``, ``az://`` URIs or absolute paths; a value
  that reads as a relative path, e.g. ``s3//bucket``, stops the DAG from loading, naming the variable);
  ``LIGHTLY_DATASOURCE_CONN_ID`` / ``LIGHTLY_DATAPOOL_CONN_ID`` / ``LIGHTLY_LIGHTLY_CONN_ID``: Airflow
  connections that reach them (unset: ambient credentials).
- ``LIGHTLY_SCHEDULE`` (``@daily``): when runs start: a cron expression or preset, ``none`` (only runs you
  trigger), or ``new-files``: event-driven, a run starts when new files land. Then the triggerer lists the
  datasource every ``LIGHTLY_POKE_INTERVAL_S`` and announces each new file once (the asset
  ``lightly-datasource``'s watcher, ``NewFilesEventTrigger``; docs/datasources.md, "Runs when new files
  land"), and a run that finds nothing new skips at once instead of waiting.
- ``LIGHTLY_NEW_FILES_QUEUE`` (unset): with ``new-files``, the URL of an SQS queue that receives the datasource
  bucket's S3 event notifications (``s3:ObjectCreated:*``): the watcher then polls that queue
  (``S3NotificationsTrigger``, Airflow's ``SqsSensorTrigger`` that fires only for notifications of files the
  runs list; long polls of 20 s, every ``LIGHTLY_POKE_INTERVAL_S`` when it is empty; the datasource's
  connection) instead of listing the bucket, for buckets too large to list every interval; the worker config's
  ``relevant_filenames_file`` and ``input_expiration`` (SKIP) decide there too (a bucket's read in the triggerer,
  again when it changes); what a run processes is still decided by its listing (docs/datasources.md, "Runs when
  new files land").
- ``LIGHTLY_WAIT_FOR_NEW_FILES_S`` (21600): how long a scheduled run waits (deferred, no worker slot held) for
  new files before it skips; ``LIGHTLY_POKE_INTERVAL_S`` (300): how often the trigger lists the datasource.
- ``LIGHTLY_EMBEDDING_MODEL`` (``efficientnet-lite0``), ``LIGHTLY_EMBEDDING_INPUT_SIZE`` (64),
  ``LIGHTLY_EMBEDDING_DIM`` (unset: the model's own, 1280 for Lite0; e.g. 128 for a fixed projection),
  ``LIGHTLY_EMBEDDING_WEIGHTS`` (a state dict URI: required for ``resnet-18`` … ``resnet-152``, e.g. your own
  fine-tuned backbone; read like the manifests: with the datapool's connection in the worker, with the pod's
  credentials in a pod),
  ``LIGHTLY_WORKER_IMAGE`` and ``LIGHTLY_K8S_NAMESPACE`` for the pods.
- ``LIGHTLY_SELECTION_CONFIG`` (unset: 40 diverse samples), ``LIGHTLY_WORKER_CONFIG`` and ``LIGHTLY_LIGHTLY_CONFIG``
  (unset: ``{}``): the defaults of ``selection_config``, ``worker_config`` and ``lightly_config``, hence what a
  scheduled or event-driven run selects with (e.g. a worker config whose ``embeddings`` names your embeddings CSV, so
  the next daily run embeds as the pool's earlier runs did). Each: inline JSON (``{"n_samples": 100, ...}``), or the
  absolute path, ``file://`` or bucket URI (``s3://``, ``gs://``, ``az://``) of a JSON or YAML (``.yaml``/``.yml``)
  file as Lightly users keep them (``lightly_airflow.config.load_config``, as ``lightly-airflow select --config``).
  Inline JSON and a local file are read whenever the DAG file is parsed: a value that cannot be read or has a
  problem stops the DAG from loading, with an import error naming the variable, each problem's JSON path
  (``strategies[0].strategy.strength``) and the fix. A bucket's file is never read at parse (no network call every
  ``min_file_process_interval``): the param's default is ``{"$uri": "s3://…"}``, and the first task of each run
  (``wait_for_new_files``, before it waits) reads it with the environment's credentials (the worker's), checks it,
  and hands its content to the tasks after it (XCom); a file that is missing, unreadable or has a problem fails
  that task in seconds, naming the variable, the URI and the fix. (With ``new-files`` the watcher reads a bucket
  worker config in the triggerer, with the triggerer's environment credentials, and again whenever the file
  changes, so its ``relevant_filenames_file``, ``datasource.process_all`` and ``input_expiration`` decide what the
  watcher announces; one it cannot read is logged there with the fix, and the watcher goes on with the last one it
  read, or without those keys.) The first task also checks the inputs the config reads (``.lightly/``, the
  embeddings CSV).
- A key of a run's conf (``airflow dags trigger -c``, the API) that is no param below but looks like one, e.g.
  ``selection_confg``, fails the first task in seconds, naming the key and the param (Airflow itself ignores it:
  the run would use the defaults); another key (a caller's own) is logged as not read.
- ``execution_mode`` ``kubernetes`` (trigger form): the first task checks, before it waits, that the embed pods'
  Kubernetes configuration can be loaded (the cncf-kubernetes ``KubernetesHook``: the ``kubernetes_default``
  connection's in-cluster setting, kubeconfig path or kubeconfig, else the in-cluster environment
  ``KUBERNETES_SERVICE_HOST``/``_PORT``, else ``~/.kube/config`` or ``$KUBECONFIG``), and fails in seconds naming the
  sources it tried and the fix (``local``, or configure the connection); the pods read the stores with their own
  credentials (service account, workload identity, ``env_vars``), and the first task warns when the run names
  Airflow connections they do not use.
- ``LIGHTLY_LIVE_PHOTO_VIDEOS`` (false): the form's default of ``live_photo_videos``: ``true`` processes the
  motion clip of an iPhone Live Photo (a short ``.MOV`` beside the photo of the same name) as a video too; by
  default the photo is the sample and the clips are counted in the report (docs/datasources.md, "Live Photos").
- ``LIGHTLY_REVIEW`` (false): ``true``: a person reviews each run's selection before it counts. ``select_and_commit``
  then proposes (selects, writes the report, commits nothing), ``review_selection`` (Airflow's Human-in-the-loop)
  waits for **Commit** or **Discard** in Airflow's Required Actions, and ``commit_reviewed`` commits exactly the
  reviewed picks, or nothing (docs/datapool.md, "Review before commit"). ``LIGHTLY_REVIEW_TIMEOUT_H`` (0): a
  proposal nobody answers within this many hours is discarded (0: the run, and the runs after it, wait until someone
  answers). ``LIGHTLY_REVIEWERS`` (unset: anyone Airflow lets answer): the Airflow user ids who may answer,
  comma-separated (``alice,bob`` with Airflow's simple auth manager; FAB's numeric ids, optionally ``7:alice``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, Param

from lightly_airflow.datasource import NewFilesQuery
from lightly_airflow.embedding.options import EmbedOptions
from lightly_airflow.operators.base import SHARD_LABEL_TEMPLATE
from lightly_airflow.operators.branch import ExecutionModeBranchOperator
from lightly_airflow.operators.embed import EmbedPodOperator, EmbedShardOperator
from lightly_airflow.operators.list_files import ListNewFilesOperator
from lightly_airflow.operators.select import SelectAndCommitOperator
from lightly_airflow.operators.stages import ComputeMetadataOperator, LoadPredictionsOperator
from lightly_airflow.sensors import NewFilesSensor
from lightly_airflow.triggers import NewFilesEventTrigger


def _env(name: str, default: str, parse: Callable[[str], Any], expected: str) -> Any:
    """A deployment variable, parsed; a bad value stops the DAG from loading with an error naming the variable
    (shown in the UI's import errors before any run), never a run that fails after its listing."""
    raw = os.environ.get(name, "").strip() or default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is invalid: {expected} ({exc})") from None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise ValueError("not a boolean")


#: The trigger form's check of a URI param (JSON schema): an absolute path or ``<scheme>://``. The first task checks
#: the scheme and that the datasource exists, but a typo that reads as a relative path passed it: a datapool_uri
#: "s3//bucket/pool" or "file:/data/pool" became a folder relative to the worker's working directory, where the
#: run committed its pool. The form (and a run's conf, checked before the run is created) now refuses it, naming
#: the param.
URI_PATTERN = r"^(/|[A-Za-z][A-Za-z0-9+.-]*://)"
URI_FORMS = "file:///…, s3://bucket/…, gs://bucket/…, az://container/… or an absolute path"


def _uri(name: str, default: str | None) -> str | None:
    """A URI deployment variable (a param's default), checked against :data:`URI_PATTERN` here: a scheduled DAG
    with an invalid default does not load, and Airflow's own message names neither the param nor the variable."""
    value = os.environ.get(name, "").strip() or default
    if value is not None and not re.match(URI_PATTERN, value):
        raise ValueError(f"{name}={value!r} is invalid: use {URI_FORMS} (this would be a folder relative to the "
                         "worker's working directory).")
    return value


DATASOURCE_URI = _uri("LIGHTLY_DATASOURCE_URI", "file:///data/images")
DATAPOOL_URI = _uri("LIGHTLY_DATAPOOL_URI", "file:///data/datapool")
LIGHTLY_URI = _uri("LIGHTLY_LIGHTLY_URI", None)
WAIT_FOR_NEW_FILES_S = _env("LIGHTLY_WAIT_FOR_NEW_FILES_S", str(6 * 3600), float, "seconds")
POKE_INTERVAL_S = _env("LIGHTLY_POKE_INTERVAL_S", "300", float, "seconds")
EMBEDDING_MODEL = os.environ.get("LIGHTLY_EMBEDDING_MODEL", "").strip() or "efficientnet-lite0"
EMBEDDING_INPUT_SIZE = _env("LIGHTLY_EMBEDDING_INPUT_SIZE", "64", int, "an image side in pixels")
EMBEDDING_DIM = _env("LIGHTLY_EMBEDDING_DIM", "0", int, "a dimension (unset: the model's)") or None
EMBEDDING_WEIGHTS = os.environ.get("LIGHTLY_EMBEDDING_WEIGHTS", "").strip() or None
# The embed operators' partial() checks their literal options when the DAG loads; checked here first too, so the
# import error names the deployment variables.
try:
    EmbedOptions(model=EMBEDDING_MODEL, input_size=EMBEDDING_INPUT_SIZE, dim=EMBEDDING_DIM, weights_uri=EMBEDDING_WEIGHTS)
except ValueError as _exc:
    raise ValueError(
        f"The embedding settings LIGHTLY_EMBEDDING_MODEL={EMBEDDING_MODEL!r}, LIGHTLY_EMBEDDING_INPUT_SIZE="
        f"{EMBEDDING_INPUT_SIZE}, LIGHTLY_EMBEDDING_DIM={EMBEDDING_DIM}, LIGHTLY_EMBEDDING_WEIGHTS "
        f"{'set' if EMBEDDING_WEIGHTS else 'unset'} "
        f"do not work: {_exc}") from None
LIVE_PHOTO_VIDEOS = _env("LIGHTLY_LIVE_PHOTO_VIDEOS", "false", _bool, "true or false")
REVIEW = _env("LIGHTLY_REVIEW", "false", _bool, "true or false")
REVIEW_TIMEOUT_H = _env("LIGHTLY_REVIEW_TIMEOUT_H", "0", float, "hours (0: wait until someone answers)")
if REVIEW_TIMEOUT_H < 0:
    raise ValueError(f"LIGHTLY_REVIEW_TIMEOUT_H={REVIEW_TIMEOUT_H:g} is invalid: hours >= 0 (0: wait until someone "
                     "answers)")


def _reviewers(text: str) -> list[dict[str, str]]:
    """``alice, 7:bob`` -> HITL ``assigned_users`` (Airflow user ids: the simple auth manager's user names, FAB's
    numeric ids; optionally ``id:name``)."""
    users = []
    for part in text.split(","):
        if part.strip():
            user_id, _, name = part.partition(":")
            if not user_id.strip():
                raise ValueError(f"{part.strip()!r} has no user id")
            users.append({"id": user_id.strip(), "name": (name or user_id).strip()})
    return users


#: The three Lightly configs, written once: trigger-form param -> (the deployment variable of its default, the
#: parser in ``lightly_airflow.config`` that checks it).
CONFIG_VARIABLES = {
    "selection_config": ("LIGHTLY_SELECTION_CONFIG", "parse_selection_config"),
    "worker_config": ("LIGHTLY_WORKER_CONFIG", "parse_worker_config"),
    "lightly_config": ("LIGHTLY_LIGHTLY_CONFIG", "parse_lightly_config"),
}
#: The key of a param default that stands for a bucket's config file, read by each run's first task.
BUCKET_FILE_KEY = "$uri"


def _parser(param: str) -> Callable[[Any], Any]:
    import lightly_airflow.config

    return getattr(lightly_airflow.config, CONFIG_VARIABLES[param][1])


def _lightly_configs() -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
    """``({param: its default from the variable, None when unset}, {param: bucket URI})``.

    Inline JSON and a local file are read and checked here, when the DAG file is parsed (cheap; a problem stops
    the DAG from loading). A bucket's file is not read here (no network call at parse, every
    ``min_file_process_interval``): its default is ``{"$uri": <the URI>}``, read and checked by each run's first
    task (:func:`_read_bucket_configs`)."""
    from lightly_airflow.config import config_source, load_config

    defaults: dict[str, dict[str, Any] | None] = {}
    buckets: dict[str, str] = {}
    for param, (name, _) in CONFIG_VARIABLES.items():
        raw = os.environ.get(name, "").strip()
        if not raw:
            defaults[param] = None
        elif config_source(raw, name) == "bucket":
            buckets[param] = raw
            defaults[param] = {BUCKET_FILE_KEY: raw}
        else:
            defaults[param] = load_config(raw, name, _parser(param))
    return defaults, buckets


#: The Lightly configs a scheduled run uses (unset: the defaults below); a bad inline or local one stops the DAG
#: from loading; a bucket's (BUCKET_CONFIGS: param -> URI) is read by each run's first task.
CONFIG_DEFAULTS, BUCKET_CONFIGS = _lightly_configs()
SELECTION_CONFIG_ENV = CONFIG_DEFAULTS["selection_config"]
WORKER_CONFIG = CONFIG_DEFAULTS["worker_config"]
LIGHTLY_CONFIG = CONFIG_DEFAULTS["lightly_config"]

#: Who may answer a review; unset: every user Airflow lets answer Human-in-the-loop tasks of this DAG.
REVIEWERS = _env("LIGHTLY_REVIEWERS", "", _reviewers, "comma-separated Airflow user ids, each optionally id:name")
CONNECTIONS = {
    "datasource_conn_id": os.environ.get("LIGHTLY_DATASOURCE_CONN_ID") or None,
    "datapool_conn_id": os.environ.get("LIGHTLY_DATAPOOL_CONN_ID") or None,
    "lightly_conn_id": os.environ.get("LIGHTLY_LIGHTLY_CONN_ID") or None,
}
SCHEDULE = os.environ.get("LIGHTLY_SCHEDULE", "@daily").strip() or "@daily"
ON_NEW_FILES = SCHEDULE == "new-files"
NEW_FILES_QUEUE = os.environ.get("LIGHTLY_NEW_FILES_QUEUE", "").strip() or None
if NEW_FILES_QUEUE and not ON_NEW_FILES:
    raise ValueError(f"LIGHTLY_NEW_FILES_QUEUE is set but LIGHTLY_SCHEDULE={SCHEDULE!r}: the queue's notifications "
                     "start runs only with LIGHTLY_SCHEDULE=new-files; set it, or unset the queue.")
if NEW_FILES_QUEUE and not NEW_FILES_QUEUE.startswith(("https://", "http://")):
    raise ValueError(f"LIGHTLY_NEW_FILES_QUEUE={NEW_FILES_QUEUE!r} is invalid: an SQS queue URL "
                     "(https://sqs.<region>.amazonaws.com/<account>/<queue>), not its name or ARN.")
if NEW_FILES_QUEUE and not DATASOURCE_URI.startswith("s3://"):
    raise ValueError(f"LIGHTLY_NEW_FILES_QUEUE is set but LIGHTLY_DATASOURCE_URI={DATASOURCE_URI!r} is not in S3: "
                     "the queue's S3 event notifications announce files of an s3:// datasource; unset the queue "
                     "to watch this datasource by listing it.")

if ON_NEW_FILES:
    #: Event-driven: the triggerer watches the datasource with the defaults' query (what a run with the trigger
    #: form untouched processes) and each new set of files becomes an event of this asset, hence a run; or, with a
    #: queue, each batch of the bucket's S3 notifications of new files does (it deletes what it read). A worker
    #: config in a bucket is not read here (no network call at parse): the watcher gets its URI and reads it in the
    #: triggerer (again whenever the file changes), applying its keys to the query of each check.
    watcher_query = NewFilesQuery.build(
        datasource_uri=DATASOURCE_URI, datapool_uri=DATAPOOL_URI, lightly_uri=LIGHTLY_URI,
        worker_config=None if "worker_config" in BUCKET_CONFIGS else WORKER_CONFIG,
        live_photo_videos=LIVE_PHOTO_VIDEOS, **CONNECTIONS)
    watcher: Any = NewFilesEventTrigger(
        query=watcher_query,
        poke_interval=POKE_INTERVAL_S,
        worker_config_uri=BUCKET_CONFIGS.get("worker_config"),
        worker_config_variable=CONFIG_VARIABLES["worker_config"][0],
    )
    if NEW_FILES_QUEUE:
        from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

        # (the same query and bucket worker config: notifications of files its listing leaves out start no run)
        watcher = S3NotificationsTrigger(datasource_uri=DATASOURCE_URI, query=watcher_query,
                                         worker_config_uri=BUCKET_CONFIGS.get("worker_config"),
                                         worker_config_variable=CONFIG_VARIABLES["worker_config"][0],
                                         sqs_queue=NEW_FILES_QUEUE, aws_conn_id=CONNECTIONS["datasource_conn_id"],
                                         max_messages=10, num_batches=1, wait_time_seconds=20,
                                         waiter_delay=int(POKE_INTERVAL_S))
    schedule: object = [Asset(name="lightly-datasource", uri=DATASOURCE_URI, watchers=[AssetWatcher(
        name="lightly-new-files", trigger=watcher)])]
else:
    schedule = None if SCHEDULE.lower() == "none" else SCHEDULE

#: The default selection works on any datasource: it needs only the embeddings every run computes (no
#: prediction task, no custom metadata). Stay diverse, also against everything selected in earlier runs.
#: Give your own config (predictions, metadata, active learning) with LIGHTLY_SELECTION_CONFIG, in the trigger
#: form or the run's conf; the first task checks that its inputs exist in ``.lightly/``.
DEFAULT_SELECTION_CONFIG = {
    "n_samples": 40,
    "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
}
SELECTION_CONFIG = SELECTION_CONFIG_ENV or DEFAULT_SELECTION_CONFIG

datapool_asset = Asset(name="lightly-datapool", uri=DATAPOOL_URI)
FIRST_TASK = "wait_for_new_files"


def _config_template(param: str) -> str:
    """What the tasks after the first read for the config ``param``: the param, or, when its default is a bucket's
    file, the config the first task read and checked (its XCom of that name: the file's content, or the run's
    own config when its conf gave one)."""
    if param in BUCKET_CONFIGS:
        return f"{{{{ ti.xcom_pull(task_ids='{FIRST_TASK}', key='{param}') }}}}"
    return f"{{{{ params.{param} }}}}"


def _config_description(param: str, text: str) -> str:
    """The trigger form's description of a config param; with a bucket's file as its default, what that means."""
    if param not in BUCKET_CONFIGS:
        return text
    return (f"{text} Default {{\"{BUCKET_FILE_KEY}\": …}}: the file {BUCKET_CONFIGS[param]} "
            f"({CONFIG_VARIABLES[param][0]}), read and checked by the first task of each run; replace it with a "
            "JSON object to run with another config.")


def _read_bucket_configs(context: Any) -> None:
    """The first task reads each config whose default is a bucket's file (``{"$uri": <LIGHTLY_*_CONFIG>}``) with
    the environment's credentials and checks it, before it checks anything else; the task then works with the
    file's content, and pushes each such config (the run's own, when its conf replaced the default) for the
    tasks after it (:func:`_config_template`). A file that cannot be read or has a problem fails the run now
    (no retry), naming the variable, the URI and the fix. A try that resumes after waiting (deferred) keeps what
    it read before (Airflow clears a task's XComs when a try starts, not when it resumes)."""
    if not BUCKET_CONFIGS:
        return
    from airflow.sdk.exceptions import AirflowFailException

    from lightly_airflow.config import load_config

    task, ti = context["task"], context["ti"]
    for param, uri in BUCKET_CONFIGS.items():
        name = CONFIG_VARIABLES[param][0]
        value = context["params"].get(param)
        checked = ti.xcom_pull(task_ids=FIRST_TASK, key=param)
        if checked is not None:  # resumed after waiting (deferred): what this try read and checked before it
            value = checked
        elif isinstance(value, dict) and BUCKET_FILE_KEY in value:
            if value != {BUCKET_FILE_KEY: uri}:
                raise AirflowFailException(
                    f"Parameter {param!r} is {value!r}: only this deployment's {name} ({uri!r}) is read from a "
                    f"bucket. Fix: give the config itself as a JSON object, or leave the param's default.")
            try:
                value = load_config(uri, name, _parser(param))
            except ValueError as exc:
                raise AirflowFailException(f"The default of the param {param!r}, a bucket's file read by the first "
                                           f"task of each run with the environment's credentials: {exc}") from None
            task.log.info("%s: %s read from %s=%r", param, ", ".join(sorted(value)) or "no keys", name, uri)
        setattr(task, param, value)
        if checked is None:
            ti.xcom_push(key=param, value=value)


def _first_task_checks(context: Any) -> None:
    """The first task's checks before it waits: the conf's keys, the bucket configs, then the execution mode."""
    _check_conf_keys(context)
    _read_bucket_configs(context)
    _check_execution_mode(context)


def _check_conf_keys(context: Any) -> None:
    """A key of the run's conf that is no param but looks like one (a typo) fails the run now, naming it and the
    param; any other such key (a caller's own, e.g. lineage) is logged as not read.

    Airflow keeps such a key in the conf and validates only the params: a run triggered with
    ``{"selection_confg": {...}}`` ran with the defaults, selected and committed without a word."""
    import difflib

    from airflow.sdk.exceptions import AirflowFailException

    params = list(context["dag"].params)
    unknown = sorted(set(getattr(context.get("dag_run"), "conf", None) or {}) - set(params))
    close = {key: match[0] for key in unknown if (match := difflib.get_close_matches(key, params, 1, cutoff=0.75))}
    if close:
        raise AirflowFailException(
            f"The run's conf has {len(close)} key(s) that are no param of this DAG but look like one, which the run "
            f"would ignore and use the param's default instead: "
            f"{', '.join(f'{k!r} (did you mean {p!r}?)' for k, p in close.items())}. Fix: correct or remove them; the "
            f"params are {', '.join(params)}.")
    if unknown:
        context["task"].log.warning("The run's conf keys %s are no param of this DAG: not read (the params are %s).",
                                    ", ".join(map(repr, unknown)), ", ".join(params))


def _check_execution_mode(context: Any) -> None:
    """The first task's check of ``execution_mode: kubernetes`` (before it waits): the embed pods' Kubernetes
    configuration (the ``embed_kubernetes`` task's connection, kubeconfig or in-cluster settings) can be loaded;
    otherwise the run fails now, naming the sources tried and the fix, not in every embed task after the
    listing, the metadata and the predictions ran."""
    if context["params"].get("execution_mode") != "kubernetes":
        return
    from airflow.sdk.exceptions import AirflowFailException

    from lightly_airflow.operators.embed import KUBERNETES_SETTINGS, check_kubernetes_config
    from lightly_airflow.pipeline import ParamError

    pod_task = context["dag"].get_task("embed_kubernetes")
    settings = {k: pod_task.partial_kwargs[k] for k in KUBERNETES_SETTINGS if k in pod_task.partial_kwargs}
    try:
        source = check_kubernetes_config(**settings)
    except ParamError as exc:
        raise AirflowFailException(str(exc)) from None
    context["task"].log.info("execution_mode kubernetes: the embed pods' Kubernetes configuration: %s", source)
    # The pods run `lightly-airflow embed` with their own credentials: the run's connections never reach them
    # (no secret in a pod's spec). Said here, once, not as an access error in every pod after the listing.
    ignored = [f"{name}={context['params'][name]!r}" for name in CONNECTIONS if context["params"].get(name)]
    if ignored:
        context["task"].log.warning(
            "execution_mode kubernetes: the embed pods read the datasource and the datapool with the pods' own "
            "credentials (service account / workload identity, or env_vars and secrets of the embed_kubernetes "
            "task), not with the Airflow connections %s. Give the pods what those connections hold (e.g. an S3 "
            "endpoint_url as AWS_ENDPOINT_URL), or use execution_mode 'local'.", ", ".join(ignored))


with DAG(
    dag_id="lightly_datapool",
    description="Grow a curated datapool from new images and videos (every frame a sample): list, embed, "
    "metadata, predictions, select.",
    schedule=schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["lightly", "curation"],
    doc_md=__doc__,
    params={
        "datasource_uri": Param(
            DATASOURCE_URI, type="string", title="Datasource", pattern=URI_PATTERN,
            description=f"Folder or bucket prefix with the images and videos: {URI_FORMS}.",
        ),
        "lightly_uri": Param(
            LIGHTLY_URI, type=["null", "string"], title=".lightly/ location", pattern=f"^$|{URI_PATTERN}",
            description=f"Folder holding .lightly/ (predictions, metadata): {URI_FORMS}. Empty: inside the "
            "datasource.",
        ),
        "datapool_uri": Param(
            DATAPOOL_URI, type="string", title="Datapool", pattern=URI_PATTERN,
            description=f"Where the datapool table lives ({URI_FORMS}); the first run creates it.",
        ),
        "process_all": Param(
            False, type="boolean", title="Process all files",
            description="Reprocess every file, also those already in the datapool (backfills).",
        ),
        "live_photo_videos": Param(
            LIVE_PHOTO_VIDEOS, type="boolean", title="Live Photo clips as videos",
            description="Process the motion clip of an iPhone Live Photo (a short .MOV beside the photo of the same "
            "name) as a video, every frame a sample. Off: the photo is the sample, the clips are counted.",
        ),
        # The three configs' schemas say only "a JSON object" (the form's JSON editor): the first task checks
        # them and names each problem's JSON path and the fix, which a JSON-schema error of the form does not.
        "selection_config": Param(
            SELECTION_CONFIG, type="object", title="Selection config",
            description=_config_description("selection_config", "A Lightly selection config: n_samples or "
            "proportion_samples, and strategies (docs/selection.md). The first task checks it and names every "
            "problem's JSON path."),
        ),
        "worker_config": Param(
            WORKER_CONFIG or {}, type="object", title="Worker config",
            description=_config_description("worker_config", "Lightly worker_config keys, e.g. {\"datasource\": "
            "{\"enable_datapool_update\": false}} (docs/lightly-compat.md: what every key does here)."),
        ),
        "lightly_config": Param(
            LIGHTLY_CONFIG or {}, type="object", title="Lightly config",
            description=_config_description("lightly_config", "Lightly's lightly_config (embedding settings: "
            "model.num_ftrs, loader.batch_size, collate.input_size, …); training keys are accepted and noted as "
            "having no effect."),
        ),
        "datasource_conn_id": Param(
            CONNECTIONS["datasource_conn_id"], type=["null", "string"], title="Datasource connection",
            description="Airflow connection (aws, google_cloud_platform, wasb) of the datasource. Empty: ambient.",
        ),
        "datapool_conn_id": Param(
            CONNECTIONS["datapool_conn_id"], type=["null", "string"], title="Datapool connection",
            description="Airflow connection of the datapool's store. Empty: ambient credentials.",
        ),
        "lightly_conn_id": Param(
            CONNECTIONS["lightly_conn_id"], type=["null", "string"], title=".lightly/ connection",
            description="Airflow connection of the .lightly/ store. Empty: the datasource connection.",
        ),
        "tag_name": Param(
            None, type=["null", "string"], title="Tag name",
            description="Tag of this run's selection. Empty: derived from the run.",
        ),
        "query_tag_name": Param(
            None, type=["null", "string"], title="Query tag",
            description="Active learning: select only among the samples of this tag. Empty: every candidate.",
        ),
        "preselected_tag_name": Param(
            None, type=["null", "string"], title="Preselected tag",
            description="Active learning: samples counted as already selected (the labelled set). Empty: "
            "everything selected so far (initial-tag).",
        ),
        "n_samples_meaning": Param(
            "new", type="string", enum=["new", "total"], title="n_samples means",
            description="new: n_samples new picks. total: Lightly's active-learning meaning, the size of the "
            "labelled set (preselected + new) after this run.",
        ),
        "execution_mode": Param(
            "local", type="string", enum=["local", "kubernetes"], title="Execution mode",
            description="Embed in the Airflow worker on CPU, or in GPU pods on Kubernetes.",
        ),
    },
) as dag:
    common = {
        "datapool_uri": "{{ params.datapool_uri }}",
        "datasource_conn_id": "{{ params.datasource_conn_id }}",
        "datapool_conn_id": "{{ params.datapool_conn_id }}",
        "lightly_conn_id": "{{ params.lightly_conn_id }}",
    }

    #: The active-learning params (lightly_airflow/active_learning.py), checked by the first task.
    active_learning = {
        "query_tag_name": "{{ params.query_tag_name }}",
        "preselected_tag_name": "{{ params.preselected_tag_name }}",
        "n_samples_meaning": "{{ params.n_samples_meaning }}",
    }

    #: What the sensor and the list task both check (the same query: lightly_airflow/datasource/query.py).
    query = {
        "datasource_uri": "{{ params.datasource_uri }}",
        "lightly_uri": "{{ params.lightly_uri }}",
        "process_all": "{{ params.process_all }}",
        "live_photo_videos": "{{ params.live_photo_videos }}",
        **{param: f"{{{{ params.{param} }}}}" for param in CONFIG_VARIABLES},
        "active_learning": active_learning,
    }

    wait_for_new_files = NewFilesSensor(
        task_id=FIRST_TASK,
        wait=not ON_NEW_FILES,  # (event-driven: the event said there are new files; none left: skip at once)
        timeout=WAIT_FOR_NEW_FILES_S,
        poke_interval=POKE_INTERVAL_S,
        soft_fail=True,  # nothing new before the timeout: skip this run, do not fail it
        # A check that fails while waiting (a store's passing error: NewFilesCheckError) is retried as the other
        # tasks are; a problem with the run's parameters (AirflowFailException) is not: it fails at once.
        retries=2,
        pre_execute=_first_task_checks,
        tag_name="{{ params.tag_name }}",  # (checked before waiting, as the list task checks it)
        **query,
        **common,
    )

    #: The tasks after the first read a bucket's config from the first task (``_config_template``).
    configs = {param: _config_template(param) for param in CONFIG_VARIABLES}

    list_new_files = ListNewFilesOperator(
        task_id="list_new_files",
        tag_name="{{ params.tag_name }}",
        **{**query, **configs},
        **common,
    )
    manifests = list_new_files.output
    reuse_uri = "{{ ti.xcom_pull(task_ids='list_new_files', key='reuse_uri') }}"
    # worker_config.embeddings: a Lightly custom embeddings CSV replaces the model (resolved by the list task).
    embeddings_csv = "{{ ti.xcom_pull(task_ids='list_new_files', key='embeddings_csv') }}"
    # Embedding options the run's worker_config / lightly_config ask for (num_threads, loader.batch_size, …).
    embed_overrides = "{{ ti.xcom_pull(task_ids='list_new_files', key='embed_overrides') }}"

    choose_mode = ExecutionModeBranchOperator(
        task_id="choose_execution_mode",
        execution_mode="{{ params.execution_mode }}",
        local_task_id="embed_local",
        kubernetes_task_id="embed_kubernetes",
    )
    embed_local = EmbedShardOperator.partial(
        task_id="embed_local", map_index_template=SHARD_LABEL_TEMPLATE,
        model=EMBEDDING_MODEL, input_size=EMBEDDING_INPUT_SIZE, dim=EMBEDDING_DIM,
        weights_uri=EMBEDDING_WEIGHTS,
        reuse_uri=reuse_uri, embeddings_csv=embeddings_csv, option_overrides=embed_overrides, **common,
    ).expand(manifest_uri=manifests)
    embed_kubernetes = EmbedPodOperator.partial(
        task_id="embed_kubernetes", map_index_template=SHARD_LABEL_TEMPLATE,
        model=EMBEDDING_MODEL, input_size=EMBEDDING_INPUT_SIZE, dim=EMBEDDING_DIM,
        weights_uri=EMBEDDING_WEIGHTS,
        datapool_uri="{{ params.datapool_uri }}", reuse_uri=reuse_uri, embeddings_csv=embeddings_csv,
        option_overrides=embed_overrides,
    ).expand(manifest_uri=manifests)

    metadata = ComputeMetadataOperator.partial(
        task_id="compute_metadata", map_index_template=SHARD_LABEL_TEMPLATE, lightly_uri="{{ params.lightly_uri }}",
        **common,
    ).expand(manifest_uri=manifests)
    predictions = LoadPredictionsOperator.partial(
        task_id="load_predictions", map_index_template=SHARD_LABEL_TEMPLATE, lightly_uri="{{ params.lightly_uri }}",
        **common,
    ).expand(manifest_uri=manifests)

    selection = {
        "manifests": manifests,
        "tag_name": "{{ params.tag_name }}",
        **configs,
        "active_learning": active_learning,
        "asset": datapool_asset,
        "lightly_uri": "{{ params.lightly_uri }}",  # (frames and crops are written there, with its credentials)
        **common,
    }
    select = SelectAndCommitOperator(
        task_id="select_and_commit",
        review="propose" if REVIEW else None,
        trigger_rule="none_failed_min_one_success",
        **selection,
    )

    wait_for_new_files >> list_new_files >> choose_mode >> [embed_local, embed_kubernetes]
    [embed_local, embed_kubernetes, metadata, predictions] >> select

    if REVIEW:
        from lightly_airflow.operators.review import ReviewSelectionOperator

        # Waits (no worker slot held) until a person answers in Airflow's Required Actions; the next run waits too
        # (max_active_runs=1), so it selects against what this one commits.
        review_selection = ReviewSelectionOperator(
            task_id="review_selection", propose_task_id="select_and_commit", retries=0,
            discard_after=timedelta(hours=REVIEW_TIMEOUT_H) if REVIEW_TIMEOUT_H else None,
            assigned_users=REVIEWERS or None,
            # (reads the run's proposal record: a reviewer asked again reads why a Commit of it was refused)
            datapool_uri=common["datapool_uri"], datapool_conn_id=common["datapool_conn_id"],
        )
        commit_reviewed = SelectAndCommitOperator(
            task_id="commit_reviewed", review="decide", review_task_id="review_selection", **selection,
        )
        select >> review_selection >> commit_reviewed

try:  # (Airflow checks a cron expression only when it serialises the DAG, naming no variable)
    dag.timetable.validate()
except Exception as _exc:  # noqa: BLE001 - AirflowTimetableInvalid
    raise ValueError(f"LIGHTLY_SCHEDULE={SCHEDULE!r} is invalid ({_exc}): use a cron expression or preset (@daily, "
                     "@hourly, '0 6 * * *'), none (only triggered runs), or new-files (runs when new files land).") from None
