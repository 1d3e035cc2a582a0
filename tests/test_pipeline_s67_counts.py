"""The run summary's predictions counts (``derived_probabilities`` and the note of shards whose counts are not known)
come from one sum of the run's metadata (``pipeline._prediction_counts``); the summary summed the same metadata
twice, once for each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lightly_airflow import staging
from lightly_airflow.demo import Batch, add_batch

DIVERSE = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_the_summary_sums_the_predictions_counts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("a", (0, 12), ()))  # (the demo's digits predictions: a predictions shard)
    manifests = list_new(NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{pool}"),
                         run_id="manual__up", min_shard_size=6).manifests
    assert len(manifests) == 2
    for m in manifests:
        embed_shard(m, device="cpu", num_workers=1)
        compute_metadata_shard(m)
        load_predictions_shard(m, lightly_uri=f"file://{source}")
    outputs = [staging.sibling_uri(m, staging.PREDICTIONS) for m in manifests]
    # The first shard's file as one written before the stage counted (its counts not known); the last one's with
    # predictions of 'digits' without probabilities (as its task writes them: staging.with_counts).
    table = pq.read_table(outputs[0])
    pq.write_table(table.replace_schema_metadata({k: v for k, v in (table.schema.metadata or {}).items()
                                                  if not k.startswith(b"lightly.counts")}), outputs[0])
    pq.write_table(staging.with_counts(pq.read_table(outputs[-1]), staging.PREDICTIONS, {"digits": 3}), outputs[-1])
    calls: list[Any] = []
    summed_counts = staging.summed_counts

    def counting(sources: Any, stage: str) -> staging.StageCounts:  # (the real sum, its calls recorded)
        out = summed_counts(sources, stage)
        if stage == staging.PREDICTIONS and len(sources) == 1:  # (the run's merged metadata: the summary's sum)
            calls.append(out)
        return out

    monkeypatch.setattr(staging, "summed_counts", counting)
    summary = select_and_commit(datapool_uri=f"file://{pool}", run_id="manual__up", dag_id="t", manifests=manifests,
                                selection_config=DIVERSE)
    assert summary.derived_probabilities == {"digits": 3}
    assert [n for n in summary.notes if "counts of" in n] == [staging.counts_not_known_note(staging.PREDICTIONS, 1)]
    assert calls == [staging.StageCounts({"digits": 3}, not_known=1)]  # (summed once: it was twice)
