"""Shards whose stage counts are not known (staging files of a release before the stage counted: a run resumed after
an upgrade) are said in the run summary's notes and the object summary, never summed as 0 silently."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.demo import Batch, add_batch

DIVERSE = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _without_counts(path: str) -> None:
    """The staging file as a release before the stage counted wrote it."""
    table = pq.read_table(path)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if not k.startswith(b"lightly.counts")}
    pq.write_table(table.replace_schema_metadata(meta), path)


def test_a_run_says_which_predictions_shards_counts_are_not_known(tmp_path: Path) -> None:
    from faults.runs import prepare

    from lightly_airflow.pipeline import select_and_commit

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 12), ()))  # (the demo's digits predictions: a predictions shard)
    manifests = prepare(source, pool, "manual__up", DIVERSE)
    outputs = [staging.sibling_uri(m, staging.PREDICTIONS) for m in manifests]
    assert all(staging.summed_counts([pq.read_table(o)], staging.PREDICTIONS).not_known == 0 for o in outputs)
    _without_counts(outputs[0])
    summary = select_and_commit(datapool_uri=f"file://{pool}", run_id="manual__up", dag_id="t", manifests=manifests,
                                selection_config=DIVERSE)
    said = [n for n in summary.notes if "counts of" in n]
    assert said == ["the predictions counts of 1 shard are not known (their staging files were written by a release "
                    "before the predictions stage counted): the predictions figures leave those shards out. Fix, for "
                    "every count: clear the run's predictions tasks, then its select task"]


def test_the_object_summary_says_which_shards_drops_are_not_known(tmp_path: Path) -> None:
    from lightly_airflow.objects.run import load_run_objects, summary
    from lightly_airflow.objects.shard import objects_schema
    from lightly_airflow.objects.spec import ObjectsSpec

    schema = objects_schema("efficientnet-lite0", 4, 64)
    pool, run = str(tmp_path / "pool"), "manual__up"
    manifests = [staging.shard_uri(pool, run, staging.MANIFEST, i) for i in range(2)]
    for i, manifest in enumerate(manifests):
        table = pa.Table.from_pylist([{C.KEY: f"{i}.png#det#0", C.PARENT_KEY: f"{i}.png", C.OBJECT_TASK: "det",
                                       C.OBJECT_INDEX: 0, C.EMBEDDING: [0.5] * 4, C.STATUS: "ok"}], schema=schema)
        uri = staging.sibling_uri(manifest, staging.OBJECTS)
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(staging.with_counts(table, staging.OBJECTS, {"boxes_outside_image": 2}) if i == 0 else table, uri)
    out = summary(load_run_objects(manifests), None, ObjectsSpec(tasks=("det",)))
    assert out["boxes_outside_image"] == 2 and out["counts_not_known"] == 1
    assert any(n.startswith("the objects counts of 1 shard are not known") and "clear the run's embed tasks" in n
               for n in out["notes"])
