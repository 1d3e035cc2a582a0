"""Select from the run's samples and commit one datapool version: the only task that writes the datapool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from airflow.sdk import Asset, AssetAlias
from airflow.sdk.exceptions import AirflowFailException

from lightly_airflow.links import ReportLink
from lightly_airflow.operators.base import LightlyBaseOperator, run_origin


class SelectAndCommitOperator(LightlyBaseOperator):
    """Run the selection over the run's staging files and commit the datapool snapshot with its tags.

    Idempotent: a retry (or a re-run of a finished run) finds the run's commit and does nothing. Emits an
    event on ``asset`` (when given) whose extra holds the datapool URI, version, tag and counts, so downstream
    DAGs (labelling export, training) can be scheduled on the datapool — only when the run committed a
    version, and on the asset of the pool it committed to (a run whose ``datapool_uri`` is not ``asset``'s emits
    on ``Asset(uri=datapool_uri)`` instead: :meth:`committed_asset`): the task's outlet is the alias ``<asset name>-commits``, through which it adds the event (a
    static outlet gets an event on every success, also of a dry run that committed nothing).

    :param manifests: the run's manifest shard URIs (the list task's ``manifests`` XCom).
    :param selection_config: the Lightly selection config.
    :param tag_name: the run's tag; default derived from the run id.
    :param worker_config: Lightly worker-config keys; ``datasource.enable_datapool_update=false`` is a dry run.
    :param lightly_config: Lightly's embedding settings; keys without effect are listed in the summary's notes.
    :param active_learning: ``{"query_tag_name", "preselected_tag_name", "n_samples_meaning"}`` (templated
        values), see :mod:`lightly_airflow.active_learning`.
    :param asset: the datapool asset to emit an event on.
    :param compaction: when the pool's small data files are merged after a commit: a
        :class:`~lightly_airflow.datapool.compaction.CompactionOptions` or its fields as a dict (e.g.
        ``{"mode": "off"}`` when another engine optimises the table); default ``auto``.
    :param review: review before commit (:mod:`lightly_airflow.review`): ``propose`` selects and writes the report
        and the proposal, commits nothing (and emits no event); ``decide`` reads the reviewer's answer from the
        Human-in-the-loop task ``review_task_id`` (Airflow's ``HITLOperator`` with the options
        :data:`~lightly_airflow.review.COMMIT` and :data:`~lightly_airflow.review.DISCARD`) and commits the proposal
        if its picks are still the reviewed ones, or discards it. Default: select and commit at once.
    :param review_task_id: with ``review="decide"``, the task whose result is the reviewer's answer.
    :param lightly_uri: where the run's ``.lightly/`` lives, as the list task was given it (templated; default: inside
        the datasource): the selected video frames' PNGs and objects' crops are written there after the commit, with
        ``lightly_conn_id``, else the datasource's connection when ``.lightly/`` is on the datasource's store, else
        the environment's credentials, as the list task and the shard tasks read it. Without it a ``.lightly/`` on
        another cloud than the datasource was written with the datasource's connection, which refuses it: the
        run failed after its commit, on every retry, without its frames or crops.
    :param embed_task_ids: the tasks whose results are the run's embedding counts (each shard's), added up into
        the ``lightly.embed.*`` gauges (:func:`~lightly_airflow.run_metrics.embed_metrics`); default: the upstream
        tasks that embed (:class:`~lightly_airflow.operators.embed.EmbedShardOperator` /
        :class:`~lightly_airflow.operators.embed.EmbedPodOperator`, mapped or not).
    """

    template_fields: Sequence[str] = (
        *LightlyBaseOperator.template_fields, "manifests", "selection_config", "tag_name", "worker_config",
        "lightly_config", "active_learning", "lightly_uri",
    )
    rendered_kinds = {"manifests": list, "selection_config": dict, "worker_config": dict, "lightly_config": dict,
                      "active_learning": dict, "tag_name": str, "lightly_uri": str}
    text_value_fields = ("active_learning",)  # QueryOptions: tag names and a meaning
    ui_color = "#b9e4d5"
    operator_extra_links = (ReportLink(),)

    def __init__(
        self,
        *,
        manifests: list[str] | Any,
        selection_config: dict[str, Any] | str,
        tag_name: str | None = None,
        worker_config: dict[str, Any] | str | None = None,
        lightly_config: dict[str, Any] | str | None = None,
        active_learning: dict[str, Any] | None = None,
        asset: Asset | None = None,
        compaction: Any = None,
        review: Literal["propose", "decide"] | None = None,
        review_task_id: str | None = None,
        embed_task_ids: Sequence[str] | None = None,
        lightly_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        from lightly_airflow.datapool.compaction import CompactionOptions

        alias = None if asset is None else AssetAlias(name=f"{asset.name}-commits")
        if alias is not None:
            kwargs["outlets"] = [*kwargs.get("outlets", []), alias]
        super().__init__(**kwargs)
        self.manifests = manifests
        self.selection_config = selection_config
        self.tag_name = tag_name
        self.worker_config = worker_config
        self.lightly_config = lightly_config
        self.active_learning = active_learning
        self.asset = asset
        self.asset_alias = alias
        try:  # wrong options fail when the DAG is parsed, not after a run's embedding
            self.compaction = compaction if isinstance(compaction, CompactionOptions) else CompactionOptions(
                **(compaction or {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.task_id}: compaction {compaction!r} is not valid: {exc}") from None
        if review not in (None, "propose", "decide"):
            raise ValueError(f"{self.task_id}: review must be 'propose', 'decide' or None, not {review!r}.")
        if (review == "decide") != bool(review_task_id):
            raise ValueError(f"{self.task_id}: review='decide' reads the reviewer's answer from review_task_id (the "
                             "Human-in-the-loop task); give both or neither.")
        self.review = review
        self.review_task_id = review_task_id
        self.embed_task_ids = embed_task_ids
        self.lightly_uri = lightly_uri

    def execute(self, context: Any) -> dict[str, Any]:
        from lightly_airflow.config import parse_lightly_config, parse_worker_config
        from lightly_airflow.pipeline import select_and_commit
        from lightly_airflow.review import Review, ReviewError
        from lightly_airflow.run_metrics import run_metrics

        self.read_rendered()
        review = None
        if self.review == "propose":
            review = Review("propose")
        elif self.review == "decide":
            try:  # (no answer: the review task was marked done by hand; a retry cannot answer it)
                review = Review.from_response(context["ti"].xcom_pull(task_ids=self.review_task_id),
                                              str(self.review_task_id))
            except ReviewError as exc:
                raise AirflowFailException(str(exc)) from None
            self.log.info("Review: %s", review.text())
        worker = parse_worker_config(self.worker_config or {})
        manifests = [m for m in (self.manifests or []) if m]
        try:
            summary = select_and_commit(
                datapool_uri=self.datapool_uri,
                run_id=context["run_id"],
                dag_id=context["dag"].dag_id,
                manifests=manifests,
                selection_config=self.selection_config,
                tag=self.tag_name or None,
                dry_run=not worker.datasource.enable_datapool_update,
                datapool_credentials=self.datapool_credentials,
                active_learning=self.active_learning or None,
                notes=[*(f"worker_config.{note}" for note in worker.notes()),
                       *(f"lightly_config.{note}" for note in parse_lightly_config(self.lightly_config or {}).notes())],
                corruption_threshold=worker.corruptness_check.corruption_threshold,
                selected_sequence_length=worker.selected_sequence_length,
                datasource_credentials=self.datasource_credentials,
                lightly_credentials=self.lightly_credentials,
                compaction=self.compaction,
                started_by=run_origin(context),
                review=review,
            )
        except ReviewError as exc:  # (the reviewed picks cannot be committed: a retry selects the same again)
            if exc.summary is not None:  # (a refused Commit: the run's figures as any run's, committed 0, then fail)
                self.send_metrics({**run_metrics(exc.summary), **self.embed_metrics(context)})
            raise AirflowFailException(str(exc)) from None
        out = summary.to_dict()
        self.send_metrics({**run_metrics(out), **self.embed_metrics(context)})
        if self.asset is not None and self.asset_alias is not None and summary.committed:
            context["outlet_events"][self.asset_alias].add(self.committed_asset(), extra={
                "datapool_uri": self.datapool_uri,
                "version": summary.version,
                "tag": summary.tag,
                "selected": summary.selected,
                "processed": summary.processed,
            })
        return out

    def committed_asset(self) -> Asset:
        """The asset whose event says the pool grew: ``asset``, or, when this run committed to another pool (a
        trigger form's ``datapool_uri``), that pool's own asset (its URI, named by it): downstream DAGs scheduled
        on ``asset`` read ``asset``'s pool, which this run did not change."""
        assert self.asset is not None
        from lightly_airflow.storage import place_key

        # (however spelt: compared as written, a pool spelt S3:// or s3a:// sent its event to another asset)
        if place_key(self.datapool_uri) == place_key(str(self.asset.uri)):
            return self.asset
        self.log.info("Run committed to %s, not to the pool of asset %r (%s): its event goes to the asset of %s.",
                      self.datapool_uri, self.asset.name, self.asset.uri, self.datapool_uri)
        return Asset(uri=self.datapool_uri)

    def embed_metrics(self, context: Any) -> dict[str, float]:
        """The run's ``lightly.embed.*`` gauges: the counts the embed tasks returned for each shard (small dicts in
        XCom, from the worker or the pod's ``return.json``), added up; sent from here, on the Airflow side, since a
        pod has no metrics set up and shards side by side would overwrite one gauge. None without embed tasks."""
        from lightly_airflow.run_metrics import embed_metrics

        task_ids = list(self.embed_task_ids) if self.embed_task_ids is not None else sorted(
            t.task_id for t in self.upstream_list
            if getattr(getattr(t, "operator_class", type(t)), "returns_embed_counts", False))
        if not task_ids:
            self.log.info("No embed tasks upstream (embed_task_ids): no lightly.embed metrics.")
            return {}
        try:
            values = embed_metrics(context["ti"].xcom_pull(task_ids=task_ids) or [])
        except Exception as exc:  # noqa: BLE001 - metrics are never worth a failed run
            self.log.warning("The embedding metrics could not be read from %s (the run is not affected): %s: %s",
                             ", ".join(task_ids), type(exc).__name__, exc)
            return {}
        self.log.info("Embedding metrics from %d shard results of %s.", int(values.get("lightly.embed.shards", 0)),
                      ", ".join(task_ids))
        return values

