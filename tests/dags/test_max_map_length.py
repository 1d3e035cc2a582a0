"""A run never makes more manifest shards than the deployment's ``[core] max_map_length`` lets Airflow map."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from PIL import Image
from test_lightly_datapool_run import BASE_CONF


@pytest.mark.slow
def test_a_lower_max_map_length_bounds_the_shards(airflow_db, dagbag, tmp_path, monkeypatch) -> None:
    """512 new files make 2 shards of 256; with ``max_map_length`` 1 the list task makes 1 and the run maps it
    (the tasks after the listing are marked successful: this is about the listing's XCom). Before, the list task
    wrote 2 and Airflow refused its return value ("pushed value is too large to map"), on every retry."""
    source = tmp_path / "images"
    source.mkdir()
    Image.new("RGB", (8, 8)).save(source / "0000.png")
    data = (source / "0000.png").read_bytes()
    for i in range(1, 512):  # (content differs by a trailing byte: PNG readers ignore it)
        (source / f"{i:04d}.png").write_bytes(data + i.to_bytes(2, "big"))
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "1")
    # (an explicit selection config: under dag.test the DAG's defaults can be an earlier test's run conf, as the
    # serialized DAG is written again only after an interval)
    conf = {**BASE_CONF, "datasource_uri": f"file://{source}", "datapool_uri": f"file://{tmp_path / 'pool'}",
            "selection_config": {"n_samples": 2, "strategies": [
                {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}}
    run = copy.deepcopy(dagbag.dags["lightly_datapool"]).test(
        run_conf=conf, logical_date=datetime(2031, 3, 7, tzinfo=UTC),
        mark_success_pattern="embed_|compute_metadata|load_predictions|select_and_commit")
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["list_new_files"] == "success", states
    manifests = run.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files")
    assert len(manifests) == 1
