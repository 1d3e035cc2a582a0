"""Grow a curated datapool from a bucket of images and videos, run by run.

wait for new files ─► list new files ─► embed (mapped over shards: in-process, or GPU pods) ─┐
              ├─► compute metadata (mapped) ───────────────────────────┼─► select & commit the datapool
              └─► load predictions (mapped) ───────────────────────────┘

Every default below can be changed in the trigger form; a scheduled run uses the defaults, which come from
environment variables so one DAG file serves every deployment:

- ``LIGHTLY_DATASOURCE_URI`` / ``LIGHTLY_DATAPOOL_URI`` / ``LIGHTLY_LIGHTLY_URI``: where images and videos, the
  datapool and ``.lightly/`` live; ``LIGHTLY_DATASOURCE_CONN_ID`` / ``LIGHTLY_DATAPOOL_CONN_ID`` /
  ``LIGHTLY_LIGHTLY_CONN_ID``: Airflow connections that reach them (unset: ambient credentials).
- ``LIGHTLY_SCHEDULE`` (``@daily``): when runs start: a cron expression or preset, ``none`` (only runs you
  trigger), or ``new-files``: event-driven, a run starts when new files land. Then the triggerer lists the
  datasource every ``LIGHTLY_POKE_INTERVAL_S`` and announces each new file once (the asset
  ``lightly-datasource``'s watcher, ``NewFilesEventTrigger``; docs/datasources.md, "Runs when new files
  land"), and a run that finds nothing new skips at once instead of waiting.
- ``LIGHTLY_NEW_FILES_QUEUE`` (unset): with ``new-files``, the URL of an SQS queue that receives the datasource
  bucket's S3 event notifications (``s3:ObjectCreated:*``): the watcher then polls that queue
  (``S3NotificationsTrigger``, Airflow's ``SqsSensorTrigger`` that fires only for notifications of files the
  runs list; long polls of 20 s, every ``LIGHTLY_POKE_INTERVAL_S`` when it is empty; the datasource's
  connection) instead of listing the bucket, for buckets too large to list every interval; what a run processes
  is still decided by its listing (docs/datasources.md, "Runs when new files land").
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
  absolute path, ``file://`` or bucket URI of a JSON or YAML (``.yaml``/``.yml``) file as Lightly users keep them,
  read whenever the DAG file is parsed (a bucket's file with the environment's credentials: the DAG processor's).
  A value that cannot be read or has a problem stops the DAG from loading, with an import error naming the variable,
  each problem's JSON path (``strategies[0].strategy.strength``) and the fix; the first task still checks the inputs
  the config reads (``.lightly/``, the embeddings CSV).
- ``execution_mode`` ``kubernetes`` (trigger form): the first task checks, before it waits, that the embed pods'
  Kubernetes configuration can be loaded (the cncf-kubernetes ``KubernetesHook``: the ``kubernetes_default``
  connection's in-cluster setting, kubeconfig path or kubeconfig, else the in-cluster environment
  ``KUBERNETES_SERVICE_HOST``/``_PORT``, else ``~/.kube/config`` or ``$KUBECONFIG``), and fails in seconds naming the
  sources it tried and the fix (``local``, or configure the connection).
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


DATASOURCE_URI = os.environ.get("LIGHTLY_DATASOURCE_URI", "file:///data/images")
DATAPOOL_URI = os.environ.get("LIGHTLY_DATAPOOL_URI", "file:///data/datapool")
LIGHTLY_URI = os.environ.get("LIGHTLY_LIGHTLY_URI") or None
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


def _config_value(name: str, parse: Callable[[Any], Any]) -> Callable[[str], dict[str, Any] | None]:
    """A parser for ``_env``: a Lightly config given as inline JSON (``{...}``) or as the path or URI of a JSON or
    YAML file (``.yaml``/``.yml``), read as the ``--config`` files of the command line are
    (:func:`~lightly_airflow.config.errors.read_config_text`; a bucket's file with the environment's credentials,
    whenever the DAG file is parsed), checked with ``parse`` (every problem with its JSON path) and returned as
    the dict the trigger form shows; empty: ``None`` (the built-in default)."""

    def value(raw: str) -> dict[str, Any] | None:
        import json

        from lightly_airflow.config.errors import ConfigError, decode_user_text, describe_json_error, read_config_text
        from lightly_airflow.storage import filesystem, local_path, protocol_of

        if not raw:
            return None
        text, where = raw, "the inline JSON"
        if not raw.startswith("{"):
            where = "the file it names"
            try:
                if protocol_of(raw) == "file":
                    from pathlib import Path

                    text = read_config_text(Path(local_path(raw)), name)
                else:
                    fs, path = filesystem(raw)
                    text = decode_user_text(fs.cat_file(path))
            except FileNotFoundError:
                raise ValueError(f"{where} does not exist (inline JSON starts with '{{'); give inline JSON, or "
                                 "the path or URI of a JSON or YAML file") from None
            except Exception as exc:  # noqa: BLE001 - OSError, a store's credential errors: named, never raw
                raise ValueError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
        if raw.lower().endswith((".yaml", ".yml")):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"{where} is not valid YAML: {exc}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is not valid JSON: {describe_json_error(exc)}") from None
        try:
            json.dumps(data)  # (the trigger form and a run's conf hold JSON: no YAML dates or sets)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} holds a value JSON cannot hold ({exc})") from None
        try:
            parse(data)
        except ConfigError as exc:
            raise ValueError(f"{where}: {exc}\nFix: correct the listed keys (docs/lightly-compat.md, "
                             f"docs/selection.md), or unset {name} to use the default") from None
        return dict(data)

    return value


def _lightly_configs() -> tuple[Any, Any, Any]:
    from lightly_airflow.config import parse_lightly_config, parse_selection_config, parse_worker_config

    expected = "a Lightly config: inline JSON, or the path or URI of a JSON or YAML file"
    return (
        _env("LIGHTLY_SELECTION_CONFIG", "", _config_value("LIGHTLY_SELECTION_CONFIG", parse_selection_config),
             expected),
        _env("LIGHTLY_WORKER_CONFIG", "", _config_value("LIGHTLY_WORKER_CONFIG", parse_worker_config), expected),
        _env("LIGHTLY_LIGHTLY_CONFIG", "", _config_value("LIGHTLY_LIGHTLY_CONFIG", parse_lightly_config), expected),
    )


#: The Lightly configs a scheduled run uses (unset: the defaults below); a bad one stops the DAG from loading.
SELECTION_CONFIG_ENV, WORKER_CONFIG, LIGHTLY_CONFIG = _lightly_configs()

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
    #: queue, each batch of the bucket's S3 notifications of new files does (it deletes what it read).
    watcher: Any = NewFilesEventTrigger(
        query=NewFilesQuery.build(datasource_uri=DATASOURCE_URI, datapool_uri=DATAPOOL_URI, lightly_uri=LIGHTLY_URI,
                                  worker_config=WORKER_CONFIG, live_photo_videos=LIVE_PHOTO_VIDEOS, **CONNECTIONS),
        poke_interval=POKE_INTERVAL_S,
    )
    if NEW_FILES_QUEUE:
        from lightly_airflow.triggers.s3_notifications import S3NotificationsTrigger

        watcher = S3NotificationsTrigger(datasource_uri=DATASOURCE_URI, sqs_queue=NEW_FILES_QUEUE,
                                         aws_conn_id=CONNECTIONS["datasource_conn_id"], max_messages=10,
                                         num_batches=1, wait_time_seconds=20, waiter_delay=int(POKE_INTERVAL_S))
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
            DATASOURCE_URI, type="string", title="Datasource",
            description="Folder or bucket prefix with the images and videos: file://, s3://, gs://, az://.",
        ),
        "lightly_uri": Param(
            LIGHTLY_URI, type=["null", "string"], title=".lightly/ location",
            description="Folder holding .lightly/ (predictions, metadata). Empty: inside the datasource.",
        ),
        "datapool_uri": Param(DATAPOOL_URI, type="string", title="Datapool", description="The datapool table."),
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
            description="A Lightly selection config: n_samples or proportion_samples, and strategies "
            "(docs/selection.md). The first task checks it and names every problem's JSON path.",
        ),
        "worker_config": Param(
            WORKER_CONFIG or {}, type="object", title="Worker config",
            description="Lightly worker_config keys, e.g. {\"datasource\": {\"enable_datapool_update\": false}} "
            "(docs/lightly-compat.md: what every key does here).",
        ),
        "lightly_config": Param(
            LIGHTLY_CONFIG or {}, type="object", title="Lightly config",
            description="Lightly's lightly_config (embedding settings: model.num_ftrs, loader.batch_size, "
            "collate.input_size, …); training keys are accepted and noted as having no effect.",
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
        "selection_config": "{{ params.selection_config }}",
        "worker_config": "{{ params.worker_config }}",
        "lightly_config": "{{ params.lightly_config }}",
        "active_learning": active_learning,
    }

    wait_for_new_files = NewFilesSensor(
        task_id="wait_for_new_files",
        wait=not ON_NEW_FILES,  # (event-driven: the event said there are new files; none left: skip at once)
        timeout=WAIT_FOR_NEW_FILES_S,
        poke_interval=POKE_INTERVAL_S,
        soft_fail=True,  # nothing new before the timeout: skip this run, do not fail it
        retries=0,
        pre_execute=_check_execution_mode,
        **query,
        **common,
    )

    list_new_files = ListNewFilesOperator(
        task_id="list_new_files",
        tag_name="{{ params.tag_name }}",
        **query,
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
        "selection_config": "{{ params.selection_config }}",
        "tag_name": "{{ params.tag_name }}",
        "worker_config": "{{ params.worker_config }}",
        "lightly_config": "{{ params.lightly_config }}",
        "active_learning": active_learning,
        "asset": datapool_asset,
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
