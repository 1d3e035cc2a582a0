"""List the datasource and write the run's manifest shards; skip the run when nothing is new."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from lightly_airflow.datasource import DEFAULT_EXTENSIONS, POLICIES, NewFilesQuery
from lightly_airflow.hooks.storage import UnsupportedConnectionError, query_credentials
from lightly_airflow.objects import objects_spec
from lightly_airflow.operators.base import LightlyBaseOperator, run_origin, skip_a_committed_run
from lightly_airflow.pipeline import (
    ParamError,
    check_run_tag,
    list_new,
    validate_params,
)
from lightly_airflow.run_metrics import list_metrics

#: ``RunOrigin.run_type`` (``DagRun.run_type``'s value) of runs created by ``airflow backfill create``.
BACKFILL = "backfill"


class ListNewFilesOperator(LightlyBaseOperator):
    """Validate the run's parameters, list new files and shard them into manifests.

    Returns the manifest shard URIs (what the stages map over; Airflow maps only over return values) and
    pushes the counts under the XCom key ``counts``. Raises a skip when nothing is new, so the run ends
    without an empty commit.

    :param datasource_uri: folder or bucket prefix with the images (file://, s3://, gs://, az://).
    :param lightly_uri: where ``.lightly/`` lives; defaults to the datasource.
    :param process_all: reprocess every file, also those the datapool already holds (as does
        ``worker_config.datasource.process_all``).
    :param selection_config: the Lightly selection config, validated here before any work starts.
    :param worker_config: Lightly worker-config keys (``relevant_filenames_file``, ...), validated here.
    :param lightly_config: Lightly's embedding settings (``model``, ``loader``, ``collate``), validated here;
        the embed options they ask for are pushed under the XCom key ``embed_overrides``.
    :param active_learning: the active-learning params (query/preselected tag, ``n_samples_meaning``),
        checked here against the datapool's tags.
    :param max_shards: upper bound on manifest shards; default: the deployment's ``[core] max_map_length``
        (1024 unless changed), read when the task runs. With 1024 hard-coded, a deployment that lowered it (say to
        1) had a run of 512 new files write 2 shards, and Airflow refused the list task's return value ("pushed
        value is too large to map") after the listing, on every retry.
    :param tag_name: the run's tag, checked here (name, ``initial-tag``, used by another run) so a tag the
        commit would refuse fails this first task.
    :param extensions: file extensions to list (give the wait-for-new-files sensor the same ones).
    :param policy: ``content`` (a changed file is new) or ``key`` (only new keys); as the sensor's.
    :param live_photo_videos: process a Live Photo's motion clip (a short ``.MOV`` beside the photo of the same
        name) as a video too; default: the photo is the sample, the clip is counted and reported; as the sensor's
        (templated).
    """

    template_fields: Sequence[str] = (
        *LightlyBaseOperator.template_fields, "datasource_uri", "lightly_uri", "process_all", "live_photo_videos",
        "tag_name",
        "selection_config", "worker_config", "lightly_config", "active_learning",
    )
    rendered_kinds = {"selection_config": dict, "worker_config": dict, "lightly_config": dict, "active_learning": dict,
                      "lightly_uri": str, "tag_name": str}
    text_value_fields = ("active_learning",)  # QueryOptions: tag names and a meaning

    def __init__(
        self,
        *,
        datasource_uri: str,
        lightly_uri: str | None = None,
        process_all: bool | str = False,
        selection_config: dict[str, Any] | str | None = None,
        worker_config: dict[str, Any] | str | None = None,
        lightly_config: dict[str, Any] | str | None = None,
        active_learning: dict[str, Any] | None = None,
        max_shards: int | None = None,
        tag_name: str | None = None,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        policy: str = "content",
        live_photo_videos: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if policy not in POLICIES:
            raise ValueError(f"ListNewFilesOperator {kwargs.get('task_id')!r}: unknown policy {policy!r}; use one of {POLICIES}.")
        self.extensions = [extensions] if isinstance(extensions, str) else list(extensions)
        self.policy = policy
        self.live_photo_videos = live_photo_videos
        self.datasource_uri = datasource_uri
        self.lightly_uri = lightly_uri
        self.process_all = process_all
        self.selection_config = selection_config
        self.worker_config = worker_config
        self.lightly_config = lightly_config
        self.active_learning = active_learning
        self.max_shards = max_shards
        self.tag_name = tag_name

    def query(self, worker_config: Any = None) -> NewFilesQuery:
        """What this run processes: the same :class:`NewFilesQuery` the wait-for-new-files sensor builds.

        :param worker_config: the parsed worker config (default: this task's ``worker_config``).
        """
        return NewFilesQuery.build(
            datasource_uri=self.datasource_uri,
            datapool_uri=self.datapool_uri,
            worker_config=self.worker_config if worker_config is None else worker_config,
            lightly_uri=self.lightly_uri,
            datasource_conn_id=self.datasource_conn_id,
            datapool_conn_id=self.datapool_conn_id,
            lightly_conn_id=self.lightly_conn_id,
            extensions=self.extensions,
            policy=self.policy,
            process_all=self.process_all,
            live_photo_videos=self.live_photo_videos,
        )

    def shard_limit(self) -> int:
        """``max_shards``, at most what Airflow maps (``[core] max_map_length``: its API refuses a longer list)."""
        from airflow.sdk.configuration import conf

        limit = int(conf.getint("core", "max_map_length", fallback=1024))
        if self.max_shards is not None and self.max_shards <= limit:
            return self.max_shards
        if self.max_shards is not None:
            self.log.warning("max_shards=%d is more than Airflow maps ([core] max_map_length=%d): at most %d shards.",
                             self.max_shards, limit, limit)
        return limit

    def execute(self, context: Any) -> list[str]:
        self.read_rendered()
        try:
            checked = validate_params(
                datasource_uri=self.datasource_uri,
                datapool_uri=self.datapool_uri,
                lightly_uri=self.lightly_uri,
                selection_config=self.selection_config,
                worker_config=self.worker_config,
                datasource_credentials=self.datasource_credentials,
                lightly_credentials=self.lightly_credentials,
                datapool_credentials=self.datapool_credentials,
                active_learning=self.active_learning or None,
                lightly_config=self.lightly_config,  # (model.num_ftrs against an embeddings CSV, among others)
            )
            worker, overrides = checked.worker, checked.embed_overrides
            check_run_tag(self.datapool_uri, self.tag_name or None, context["run_id"], self.datapool_credentials)
        except (ParamError, UnsupportedConnectionError) as exc:
            raise AirflowFailException(str(exc)) from None  # a retry cannot fix a bad parameter or connection
        skip_a_committed_run(self.datapool_uri, context["run_id"], self.datapool_credentials, self.log)
        try:
            query = self.query(worker)
        except ValueError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        process_all = query.process_all
        origin = run_origin(context)
        if origin is not None:
            self.log.info("Run %s started by %s.", context["run_id"], origin.text())
        backfill = origin is not None and origin.run_type == BACKFILL
        if backfill:
            self.log.info(
                "Backfill run %s: %s.", context["run_id"],
                "reprocessing every file (process_all)" if process_all
                else "only files the datapool has not seen are processed; pass process_all=true to reprocess",
            )
        try:
            result = list_new(query, run_id=context["run_id"], credentials=query_credentials(query, self.credentials),
                              max_shards=self.shard_limit(), objects=objects_spec(checked.selection, worker),
                              embed_overrides=overrides)
        except ParamError as exc:
            raise AirflowFailException(str(exc)) from None  # a misnamed file or task: a retry cannot fix it
        counts = {k: v for k, v in result.to_dict().items() if k not in ("manifests", "reuse_uri")}
        counts["shards"] = len(result.manifests)
        counts["backfill"] = backfill
        context["ti"].xcom_push(key="counts", value=counts)
        self.send_metrics(list_metrics(counts))
        context["ti"].xcom_push(key="reuse_uri", value=result.reuse_uri)
        context["ti"].xcom_push(key="embeddings_csv", value=checked.embeddings_csv)  # (validate_params read it)
        if overrides:
            self.log.info("Embedding options from the Lightly configs: %s", overrides)
        context["ti"].xcom_push(key="embed_overrides", value=overrides)
        if not result.manifests:
            self.log.info("Nothing new in %s (%d files seen): skipping the rest of this run.", self.datasource_uri, result.seen)
            if origin is not None and origin.watcher_events:
                self.log.info("(The watcher's announced files were processed since, by another run, or are no longer "
                              "new by content.)")
            raise AirflowSkipException(f"No new files in {self.datasource_uri}.")
        self.log.info("%d new files in %d manifest shards.", result.new, len(result.manifests))
        return result.manifests
