"""A run's conf key that is no param of the DAG (a typo) fails the first task, naming it; Airflow ignores it."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime

import pytest
from test_lightly_datapool_run import BASE_CONF

from lightly_airflow.demo import Batch, add_batch


@pytest.mark.slow
def test_a_misspelt_conf_key_fails_the_first_task_naming_it_and_the_param(airflow_db, dagbag, tmp_path, capfd) -> None:
    """``airflow dags trigger -c '{"selection_confg": {"n_samples": 500, ...}}'``: Airflow keeps the unknown key in
    the conf and the run selected and committed with the default config (40 diverse samples), saying nothing.
    (The tasks after the first are marked successful: a run that gets past the first task shows the defect.)"""
    source = tmp_path / "images"
    add_batch(source, Batch("cam", (0, 3), ()))
    conf = {**BASE_CONF, "datasource_uri": source.as_uri(), "datapool_uri": (tmp_path / "pool").as_uri(),
            "selection_confg": {"n_samples": 2, "strategies": [
                {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}}
    started = time.monotonic()
    run = copy.deepcopy(dagbag.dags["lightly_datapool"]).test(
        run_conf=conf, logical_date=datetime(2031, 3, 8, tzinfo=UTC),
        mark_success_pattern="list_new_files|choose_execution_mode|embed_|compute_metadata|load_predictions|select_")
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["wait_for_new_files"] == "failed", states
    assert states["select_and_commit"] == "upstream_failed", states
    assert time.monotonic() - started < 60
    logged = "".join(capfd.readouterr())
    assert "'selection_confg' (did you mean 'selection_config'?)" in logged
    assert "Fix: correct or remove" in logged


def test_a_conf_key_like_no_param_is_logged_as_not_read_and_one_like_a_param_fails(capsys) -> None:
    """A caller's own conf key (lineage, say) is said in the log and the run goes on; one a letter or two from a
    param (``process``, ``worker_conf``) is a typo that would leave the param at its default: it fails."""
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    module = runpy.run_path(str(Path(__file__).resolve().parents[2] / "dags" / "lightly_datapool.py"))
    dag = module["dag"]
    context = {"dag": dag, "task": dag.get_task("wait_for_new_files"),
               "dag_run": SimpleNamespace(conf={"datasource_uri": "/x", "triggered_by": "etl", "lineage_id": 7})}
    capsys.readouterr()
    module["_check_conf_keys"](context)
    warnings = [line for line in capsys.readouterr().out.splitlines() if "[warning" in line]
    assert len(warnings) == 1 and "'lineage_id', 'triggered_by' are no param of this DAG: not read" in warnings[0]
    for typo, param in (("process", "process_all"), ("worker_conf", "worker_config")):
        context["dag_run"] = SimpleNamespace(conf={typo: True, "triggered_by": "etl"})
        with pytest.raises(AirflowFailException, match=rf"'{typo}' \(did you mean '{param}'\?\)"):
            module["_check_conf_keys"](context)
