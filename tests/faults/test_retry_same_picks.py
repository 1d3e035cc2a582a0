"""A retried select-and-commit picks what the failed attempt would have, also with RANDOM inputs (the
active-learning recipe's power sampling): their seed derives from the run id, not from the clock."""

from __future__ import annotations

import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.demo import Batch, add_batch

from .runs import prepare

RANDOM_ONLY = {"n_samples": 5, "strategies": [{"input": {"type": "RANDOM"}, "strategy": {"type": "WEIGHTS"}}]}


def _picks(source, pool, run_id: str) -> list[str]:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.pipeline import select_and_commit

    manifests = prepare(source, pool, run_id, RANDOM_ONLY)
    select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                      selection_config=RANDOM_ONLY)
    rows = Datapool(f"file://{pool}").read(columns=[C.KEY, C.SELECTED])
    return sorted(rows.filter(pc.field(C.SELECTED)).column(C.KEY).to_pylist())


def test_random_picks_repeat_for_the_same_run_id_and_differ_for_another(tmp_path) -> None:
    source = tmp_path / "images"
    add_batch(source, Batch("few", (0, 40), ()))
    first = _picks(source, tmp_path / "pool-a", "manual__r1")
    again = _picks(source, tmp_path / "pool-b", "manual__r1")  # what a retry of the same run computes
    other = _picks(source, tmp_path / "pool-c", "manual__r2")
    assert len(first) == 5
    assert first == again
    assert first != other
