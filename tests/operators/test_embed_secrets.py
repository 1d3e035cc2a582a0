"""A credential in an embedding URI (weights, reuse file, embeddings CSV) is refused before it reaches a pod's spec."""

from __future__ import annotations

import pytest

from lightly_airflow.operators.embed import EmbedPodOperator, EmbedShardOperator

SHARD = "s3://bucket/pool/_staging/run/manifest/shard-00000.parquet"


@pytest.mark.parametrize("uri", [
    "https://user:hunter2@models.example.com/resnet18.pt",
    "az://models/resnet18.pt?sv=2024-01-01&sig=c2VjcmV0",
    "gs://models/resnet18.pt?X-Goog-Signature=abc123",
])
@pytest.mark.parametrize("operator", [EmbedPodOperator, EmbedShardOperator])
def test_a_weights_uri_with_a_credential_fails_when_the_dag_loads(operator, uri) -> None:
    """The pod's arguments (``--weights <uri>``) are its spec, readable by anyone who may list pods."""
    with pytest.raises(ValueError, match="weights_uri is invalid") as info:
        operator(task_id="embed", manifest_uri=SHARD, model="resnet-18", weights_uri=uri)
    assert "hunter2" not in str(info.value) and "c2VjcmV0" not in str(info.value) and "abc123" not in str(info.value)
    with pytest.raises(ValueError, match="weights_uri is invalid"):  # the mapped form the example DAG uses
        operator.partial(task_id="embed", model="resnet-18", weights_uri=uri)


def test_a_rendered_reuse_uri_with_a_credential_never_reaches_the_pods_arguments() -> None:
    op = EmbedPodOperator(task_id="embed", manifest_uri=SHARD, reuse_uri="{{ params.reuse }}")
    op.reuse_uri = "az://pool/_staging/run/reuse.parquet?sv=1&sig=c2VjcmV0"  # (as rendered)
    with pytest.raises(ValueError, match="reuse_uri is invalid"):
        op.embed_arguments()
