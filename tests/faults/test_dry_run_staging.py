"""A dry run (enable_datapool_update=false) leaves no staging files behind, and a retry of its select task
answers with the summary it recorded instead of failing on the files it removed."""

from __future__ import annotations

import json

from lightly_airflow import staging
from lightly_airflow.datapool import Datapool
from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.pipeline import DRY_RUN_SUMMARY, select_and_commit

from .runs import prepare

CONFIG = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_a_dry_run_removes_its_staging_files_and_its_retry_answers_the_same(tmp_path) -> None:
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("few", (0, 12), ()))
    manifests = prepare(source, pool, "manual__dry", CONFIG)
    run_dir = pool / "_staging" / staging.run_slug("manual__dry")
    assert run_dir.is_dir() and any(run_dir.rglob("*.parquet"))

    def select():
        return select_and_commit(datapool_uri=f"file://{pool}", run_id="manual__dry", dag_id="t", manifests=manifests,
                                 selection_config=CONFIG, dry_run=True)

    first = select()
    assert first.dry_run and first.selected == 4 and first.version is None
    assert not run_dir.exists()  # every sample's embedding was kept there before
    recorded = pool / "_reports" / staging.run_slug("manual__dry") / DRY_RUN_SUMMARY
    assert json.loads(recorded.read_text())["selected"] == 4
    assert not Datapool(f"file://{pool}").exists()

    again = select()  # the select task retried (or cleared) after it finished
    assert again == first and not run_dir.exists()

    # A real run afterwards is not affected by the dry run's record.
    manifests = prepare(source, pool, "manual__real", CONFIG)
    real = select_and_commit(datapool_uri=f"file://{pool}", run_id="manual__real", dag_id="t", manifests=manifests,
                             selection_config=CONFIG)
    assert real.version == 1 and real.selected == 4 and not real.dry_run
