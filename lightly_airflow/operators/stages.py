"""The per-shard stages besides embedding: computed and custom metadata, and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightly_airflow.operators.base import LightlyBaseOperator, ShardLabel


class _ShardOperator(ShardLabel, LightlyBaseOperator):
    """A stage mapped over manifest shards; ``manifest_uri`` is what ``.expand()`` fills in.

    :param manifest_uri: one manifest shard of the run.
    :param lightly_uri: where ``.lightly/`` lives (default: the datasource recorded in the manifest).
    """

    template_fields: Sequence[str] = (*LightlyBaseOperator.template_fields, "manifest_uri", "lightly_uri")
    rendered_kinds = {"lightly_uri": str}

    def __init__(self, *, manifest_uri: str, lightly_uri: str | None = None, datapool_uri: str = "", **kwargs: Any) -> None:
        super().__init__(datapool_uri=datapool_uri, **kwargs)
        self.manifest_uri = manifest_uri
        self.lightly_uri = lightly_uri


class ComputeMetadataOperator(_ShardOperator):
    """Compute ``lightly.*`` metrics, corruption checks, content hashes and custom metadata of one shard."""

    def execute(self, context: Any) -> dict[str, Any]:
        from lightly_airflow.metadata import compute_metadata_shard

        self.read_rendered()
        result = compute_metadata_shard(
            self.manifest_uri,
            lightly_uri=self.lightly_uri or None,
            credentials=self.datapool_credentials,
            datasource_credentials=self.datasource_credentials,
            lightly_credentials=self.lightly_credentials,
        )
        self.shard_samples = sum(int(result[k]) for k in ("ok", "corrupt", "duplicate", "missing"))
        return result


class LoadPredictionsOperator(_ShardOperator):
    """Read the shard's ``.lightly/predictions`` files and turn them into scores and class distributions."""

    def execute(self, context: Any) -> dict[str, Any]:
        from lightly_airflow.predictions import load_predictions_shard

        self.read_rendered()
        result = load_predictions_shard(
            self.manifest_uri,
            lightly_uri=self.lightly_uri or None,
            credentials=self.datapool_credentials,
            lightly_credentials=self.lightly_credentials,
        )
        self.shard_samples = int(result["files"])
        return result
