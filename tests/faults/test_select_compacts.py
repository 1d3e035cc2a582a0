"""The select task merges the pool's small files after its commit, when due; a dry run commits nothing and merges
nothing (lightly_airflow.datapool.compaction)."""

from __future__ import annotations

from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.compaction import CompactionOptions
from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.pipeline import select_and_commit

from .runs import prepare


def test_the_select_task_compacts_after_its_commit_and_a_dry_run_does_not(tmp_path) -> None:
    config = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    every_two_files = CompactionOptions(min_small_files=4)
    summaries = []
    for i, run_id in enumerate(["manual__1", "manual__2", "manual__3"]):
        add_batch(source, Batch(f"b{i}", (i * 6, i * 6 + 6), ()))
        manifests = prepare(source, pool_dir, run_id, config)
        summaries.append(select_and_commit(
            datapool_uri=f"file://{pool_dir}", run_id=run_id, dag_id="t", manifests=manifests,
            selection_config=config, dry_run=run_id == "manual__3", compaction=every_two_files))
    first, second, dry = summaries
    assert first.version == 1 and first.compaction["version"] is None  # 2 files: not due
    assert second.version == 2 and second.compaction["version"] == 3 and second.compaction["files_removed"] == 4
    assert dry.dry_run and dry.compaction == {}
    pool = Datapool(f"file://{pool_dir}")
    assert pool.version() == 3 and len(pool.snapshot().table.file_uris()) == 2
    assert pool.snapshot().selected().num_rows == 4
    assert [t["name"] for t in pool.tags()][1:] == [first.tag, second.tag]
