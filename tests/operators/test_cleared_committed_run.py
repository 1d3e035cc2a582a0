"""A run that committed and is then cleared (Airflow's Clear on the finished run, or on its first tasks with their
downstream) processes nothing again: its commit is final, and its select task finds the commit and commits nothing,
so the files a cleared run listed were waited for (hours), listed, embedded and scored, then left out. The first
task and the list task now skip such a run at once, naming the version it committed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.operators.embed import EmbedShardOperator
from lightly_airflow.operators.list_files import ListNewFilesOperator
from lightly_airflow.operators.stages import ComputeMetadataOperator
from lightly_airflow.sensors import NewFilesSensor

SELECTION = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
RUN = "manual__2026-06-01T00:00:00+00:00"


class _TI:
    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value


def test_a_cleared_run_that_committed_skips_in_its_first_tasks(tmp_path: Path) -> None:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.pipeline import list_new, select_and_commit

    src, pool = tmp_path / "src", tmp_path / "pool"
    add_batch(src, Batch("first", (0, 4), ()))
    args = {"datasource_uri": str(src), "datapool_uri": str(pool), "selection_config": SELECTION}
    # The run, task by task as the example DAG runs it (no predictions: the selection uses embeddings alone)
    manifests = ListNewFilesOperator(task_id="list_new_files", **args).execute({"run_id": RUN, "ti": _TI()})
    for manifest in manifests:
        EmbedShardOperator(task_id="embed_local", manifest_uri=manifest, input_size=32).execute({"run_id": RUN})
        ComputeMetadataOperator(task_id="compute_metadata", manifest_uri=manifest).execute({"run_id": RUN})
    summary = select_and_commit(datapool_uri=str(pool), run_id=RUN, dag_id="lightly_datapool", manifests=manifests,
                                selection_config=SELECTION)
    assert summary.committed
    version = Datapool(str(pool)).version()
    rows = Datapool(str(pool)).read().num_rows
    added = add_batch(src, Batch("later", (4, 9), ()))  # files that land after the run committed

    # Why: what the run lists again (the files added since), its select task leaves out (it finds the run's commit)
    again = list_new(NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool)), run_id=RUN)
    assert again.new == len(added)
    summary = select_and_commit(datapool_uri=str(pool), run_id=RUN, dag_id="lightly_datapool",
                                manifests=again.manifests, selection_config=SELECTION)
    assert summary.already_committed and summary.version == version
    assert Datapool(str(pool)).version() == version and Datapool(str(pool)).read().num_rows == rows

    sensor = NewFilesSensor(task_id="wait_for_new_files", wait=True, deferrable=True, **args)
    with pytest.raises(AirflowSkipException, match=rf"Run {re.escape(repr(RUN))} committed version {version} of the datapool"):
        sensor.execute({"run_id": RUN})
    listing = ListNewFilesOperator(task_id="list_new_files", **args)
    ti = _TI()
    with pytest.raises(AirflowSkipException, match=r"(?s)committed version .* trigger one"):
        listing.execute({"run_id": RUN, "ti": ti})
    assert "counts" not in ti.pushed  # nothing listed, no manifest written

    # Another run (the next one) lists and processes them.
    manifests = ListNewFilesOperator(task_id="list_new_files", **args).execute({"run_id": "manual__next", "ti": _TI()})
    import pyarrow.parquet as pq

    assert sorted(k for m in manifests for k in pq.read_table(m).column("key").to_pylist()) == sorted(added)
    assert sensor.execute({"run_id": "manual__next"})["new"] == len(added)
    assert Datapool(str(pool)).version() == version

