"""End to end: a Lightly Worker user's datasource, `.lightly/` folder and configs, as Lightly's docs write them
and as Windows tools save them, run through the example DAG (dag.test on SQLite)."""

from __future__ import annotations

import copy
import html
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lightly_doc_examples import METADATA_SCHEMA

from lightly_airflow import columns as C

BASE_CONF = {
    "lightly_uri": None, "process_all": False, "worker_config": {}, "lightly_config": {}, "tag_name": None,
    "execution_mode": "local", "query_tag_name": None, "preselected_tag_name": None, "n_samples_meaning": "new",
    "datasource_conn_id": None, "datapool_conn_id": None, "lightly_conn_id": None,
}


def _user_folder(root):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images
    keys = []
    for i in range(48):
        key = f"{'subdir/' if i % 2 else ''}image_{i}.png"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.kron(images[i], np.ones((8, 8))) * 255 / 16).astype(np.uint8)).save(root / key)
        keys.append(key)
    meta = root / ".lightly" / "metadata"
    (meta / "subdir").mkdir(parents=True)
    (meta / "schema.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(METADATA_SCHEMA, indent=4).encode())
    for i, key in enumerate(keys):
        weather = ("sunny", "cloudy", "rainy")[i % 3]
        doc = {"file_name": key, "type": "image", "metadata": {
            "scene": "highway", "weather": {"description": weather, "temperature": 10.5, "air_pressure": 1},
            "vehicle_id": 321}}
        text = json.dumps(doc, indent=4)
        path = meta / f"{key.rsplit('.', 1)[0]}.json"
        if i == 3:  # a number written as a string: reported, that value takes its default
            path.write_text(text.replace("10.5", '"10.5"'))
        elif i % 5 == 0:
            path.write_bytes(text.encode("utf-16"))  # PowerShell 5
        else:
            path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # Notepad, "UTF-8 with BOM"
    # relevant_filenames.txt (first_steps.rst): a listed file first, then a prefix with gitignore rules.
    relevant = "image_0.png\r\nimage_2.png\r\nsubdir/* subdir/image_4* !subdir/image_41.png\r\n"
    (root / ".lightly" / "relevant_filenames.txt").write_bytes(b"\xef\xbb\xbf" + relevant.encode())
    wanted = {"image_0.png", "image_2.png"} | {k for k in keys if k.startswith("subdir/")
                                               and not (k.startswith("subdir/image_4") and k != "subdir/image_41.png")}
    return wanted


@pytest.mark.slow
def test_a_lightly_users_folder_and_configs_run_as_documented(airflow_db, dagbag, tmp_path) -> None:
    from lightly_airflow.datapool import Datapool

    source, pool_dir = tmp_path / "bucket", tmp_path / "pool"
    wanted = _user_folder(source)
    conf = {
        **BASE_CONF,
        "datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}",
        # camelCase, as Lightly's client writes it
        "worker_config": {"relevantFilenamesFile": ".lightly/relevant_filenames.txt",
                          "corruptnessCheck": {"corruptionThreshold": 0.1}, "useDatapool": True,
                          "enableTraining": False},
        "lightly_config": {"loader": {"batch_size": 16, "shuffle": True, "num_workers": -1, "drop_last": True},
                           "trainer": {"gpus": 1, "max_epochs": 100, "precision": 32}},
        "selection_config": {"nSamples": 9, "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
            {"input": {"type": "METADATA", "key": "lightly.sharpness"},
             "strategy": {"type": "THRESHOLD", "threshold": 0, "operation": "BIGGER_EQUAL"}},
            {"input": {"type": "METADATA", "key": "weather.description"},
             "strategy": {"type": "BALANCE", "target": {"sunny": 0.2, "cloudy": 0.4}}}]},
    }
    dagrun = copy.deepcopy(dagbag.dags["lightly_datapool"]).test(run_conf=conf, logical_date=datetime(2026, 4, 1, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert str(dagrun.state) == "success", states
    rows = Datapool(f"file://{pool_dir}").read()
    assert sorted(rows.column(C.KEY).to_pylist()) == sorted(wanted)
    by_key = {r[C.KEY]: r for r in rows.to_pylist()}
    assert by_key["image_0.png"][C.metadata_column("weather.description")] == "sunny"  # UTF-16 file
    assert by_key["image_2.png"][C.metadata_column("weather.temperature")] == 10.5  # UTF-8 with BOM
    assert by_key["subdir/image_41.png"][C.metadata_column("vehicle_id")] == 321
    assert by_key["subdir/image_3.png"][C.metadata_column("weather.temperature")] == 0.0  # the default
    assert by_key["subdir/image_3.png"][C.metadata_column("vehicle_id")] == 321  # the file's other values
    assert sum(r[C.SELECTED] for r in by_key.values()) == 9
    import pyarrow.parquet as pq

    from lightly_airflow.pipeline import reports_dir

    problems = pq.read_table(f"{reports_dir(str(pool_dir), dagrun.run_id)}/problems.parquet").to_pylist()
    assert [(p["key"], p["field"]) for p in problems] == [("subdir/image_3.png", "metadata.weather.temperature")]
    assert "expected a number for NUMERIC_FLOAT, found str '10.5'" in problems[0]["reason"]
    # lightly_config's training keys: accepted, and "has no effect here, because …" in the summary and report
    summary = dagrun.get_task_instance("select_and_commit").xcom_pull(task_ids="select_and_commit")
    notes = [n for n in summary["notes"] if n.startswith("lightly_config.")]
    assert [n.split("=")[0] for n in notes] == ["lightly_config.loader.drop_last", "lightly_config.loader.shuffle",
                                                "lightly_config.trainer"]
    assert all(": has no effect here, because " in n for n in notes)
    report = (Path(reports_dir(str(pool_dir), dagrun.run_id)) / "index.html").read_text()
    assert "Notes (3)" in report
    assert all(html.escape(n) in report for n in notes)
