"""SelectAndCommitOperator's event goes on the asset of the pool the run committed to."""

from __future__ import annotations

from airflow.sdk import Asset

from lightly_airflow.operators.select import SelectAndCommitOperator

DEPLOYMENT = Asset(name="lightly-datapool", uri="s3://curation/pool")


def _op(datapool_uri: str) -> SelectAndCommitOperator:
    return SelectAndCommitOperator(task_id="select_and_commit", manifests=[], selection_config={"n_samples": 1},
                                   datapool_uri=datapool_uri, asset=DEPLOYMENT)


def test_the_deployments_pool_gets_the_declared_asset() -> None:
    # (however spelt: compared as written, ``S3://`` or ``s3a://`` sent the event to another asset, and the DAGs
    # scheduled on the deployment's did not run)
    for uri in ("s3://curation/pool", "s3://curation/pool/", "S3://curation/pool", "s3a://curation/pool/"):
        assert _op(uri).committed_asset() is DEPLOYMENT


def test_another_pool_gets_its_own_asset_not_the_declared_one() -> None:
    asset = _op("s3://curation/other-pool").committed_asset()
    assert asset.uri == "s3://curation/other-pool" and asset.name == "s3://curation/other-pool"
    assert asset != DEPLOYMENT
