"""End to end: the example DAG grows a datapool from real images over incremental runs (dag.test on SQLite)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from lightly_airflow import columns as C
from lightly_airflow.demo import Batch, add_batch

SELECTION = {
    "n_samples": 12,
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "SCORES", "task": "digits", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
        {
            "input": {"type": "METADATA", "key": "lightly.sharpness"},
            "strategy": {"type": "THRESHOLD", "threshold": 1.0, "operation": "BIGGER"},
        },
        {"input": {"type": "METADATA", "key": "source"}, "strategy": {"type": "BALANCE", "target": {"digits": 0.75, "photos": 0.25}}},
    ],
}


def _rows_of(pool, run_id: str):
    """The rows a run wrote (a snapshot read by run id holds every earlier run's rows too)."""
    import pyarrow.compute as pc

    table = pool.read(run_id=run_id)
    return table.filter(pc.equal(table.column(C.RUN_ID), run_id))


#: Every optional Param at its default: in-process dag.test() runs in one session share the DAG's params,
#: and a conf value of an earlier run (a connection id) must not leak into the next test's run.
BASE_CONF = {
    "lightly_uri": None, "process_all": False, "worker_config": {}, "lightly_config": {}, "tag_name": None,
    "execution_mode": "local", "query_tag_name": None, "preselected_tag_name": None, "n_samples_meaning": "new",
    "datasource_conn_id": None, "datapool_conn_id": None, "lightly_conn_id": None,
}


def asset_events(run_id: str) -> list[tuple[str, dict]]:
    """``(asset name, extra)`` of every asset event a run emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run_id)
        ).all()
        return [(name, dict(extra)) for name, extra in rows]


def _run(dag, conf: dict, when: datetime):
    dagrun = copy.deepcopy(dag).test(run_conf={**BASE_CONF, **conf}, logical_date=when)
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    return dagrun, states


@pytest.mark.slow
def test_two_incremental_runs_then_nothing_new(airflow_db, dagbag, tmp_path) -> None:
    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}", "selection_config": SELECTION}

    first = add_batch(source, Batch("first", (0, 90), ("astronaut", "coffee")))
    run1, states = _run(dag, conf, datetime(2026, 3, 1, tzinfo=UTC))
    assert str(run1.state) == "success", states
    pool = Datapool(f"file://{pool_dir}")
    v1 = pool.version()
    rows1 = _rows_of(pool, run1.run_id)
    assert sorted(rows1.column(C.KEY).to_pylist()) == sorted(first)
    selected1 = rows1.filter(rows1.column(C.SELECTED)).column(C.KEY).to_pylist()
    assert len(selected1) == 12
    # What started the run, from the task's context (dag.test makes a manual run): in the commit and the report
    assert pool.history()[-1]["started_by"]["run_type"] == "manual"
    from lightly_airflow import staging

    report = (pool_dir / "_reports" / staging.run_slug(run1.run_id) / "index.html").read_text()
    assert "<b>Started by:</b> a manual trigger" in report
    # Airflow shows each task mapped over the shards as its shard and size (map_index_template), not its index
    import re

    manifests = run1.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files")
    for task_id in ("embed_local", "compute_metadata", "load_predictions"):
        tis = sorted((ti for ti in run1.get_task_instances() if ti.task_id == task_id), key=lambda ti: ti.map_index)
        labels = [re.fullmatch(r"(shard-\d{5}) · (\d+) samples", ti.rendered_map_index or "") for ti in tis]
        assert all(labels), (task_id, [ti.rendered_map_index for ti in tis])
        assert [m.group(1) for m in labels] == [m.rsplit("/", 1)[-1].removesuffix(".parquet") for m in manifests]
        assert sum(int(m.group(2)) for m in labels) == len(first)

    second = add_batch(source, Batch("second", (90, 150), ("chelsea",)))
    run2, states = _run(dag, conf, datetime(2026, 3, 2, tzinfo=UTC))
    assert str(run2.state) == "success", states
    rows2 = _rows_of(pool, run2.run_id)
    # Run 2 processed exactly the files that arrived after run 1.
    assert sorted(rows2.column(C.KEY).to_pylist()) == sorted(second)
    v2 = pool.version()
    assert v2 == v1 + 1
    selected2 = rows2.filter(rows2.column(C.SELECTED)).column(C.KEY).to_pylist()
    assert len(selected2) == 12 and not set(selected2) & set(selected1)

    tags = {t["name"]: t for t in pool.tags()}
    assert tags[C.INITIAL_TAG]["count"] == 24
    everything = pool.read(tag=C.INITIAL_TAG)
    assert sorted(everything.column(C.KEY).to_pylist()) == sorted(selected1 + selected2)
    # The snapshot of run 1 still reads back as it was.
    assert pool.read(version=v1).num_rows == len(first)

    # Nothing new: the run skips the rest and commits nothing.
    run3, states = _run(dag, conf, datetime(2026, 3, 3, tzinfo=UTC))
    assert states["wait_for_new_files"] == "skipped"  # waited (deferred) for the timeout, then skipped
    assert states["list_new_files"] == "skipped"
    assert states["select_and_commit"] == "skipped"
    assert pool.version() == v2


@pytest.mark.slow
def test_rerunning_a_committed_run_changes_nothing(airflow_db, dagbag, tmp_path) -> None:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.pipeline import select_and_commit

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("only", (200, 260), ()))
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}", "selection_config": SELECTION}
    run, states = _run(dag, conf, datetime(2026, 4, 1, tzinfo=UTC))
    assert str(run.state) == "success", states
    pool = Datapool(f"file://{pool_dir}")
    version, table = pool.version(), pool.read()

    manifests = run.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files")
    again = select_and_commit(
        datapool_uri=f"file://{pool_dir}", run_id=run.run_id, dag_id=dag.dag_id, manifests=manifests,
        selection_config=SELECTION,
    )
    assert again.already_committed and again.version == version
    assert pool.version() == version
    assert pool.read().num_rows == table.num_rows


def test_bad_params_fail_the_first_task_naming_the_parameter(airflow_db, dagbag, tmp_path) -> None:
    from lightly_airflow.pipeline import ParamError, validate_params

    with pytest.raises(ParamError, match=r"Parameter 'datasource_uri'.*does not exist.*Fix"):
        validate_params(
            datasource_uri=f"file://{tmp_path}/missing", datapool_uri=f"file://{tmp_path}/pool",
            lightly_uri=None, selection_config=SELECTION,
        )
    (tmp_path / "images").mkdir()
    bad = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "THRESHOLD"}}]}
    with pytest.raises(ParamError, match=r"(?s)Parameter 'selection_config'.*strategies\[0\]"):
        validate_params(
            datasource_uri=f"file://{tmp_path}/images", datapool_uri=f"file://{tmp_path}/pool",
            lightly_uri=None, selection_config=bad,
        )
    dag = dagbag.dags["lightly_datapool"]
    run, states = _run(
        dag, {"datasource_uri": f"file://{tmp_path}/missing", "datapool_uri": f"file://{tmp_path}/pool"},
        datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert states["wait_for_new_files"] == "failed"
    assert states["select_and_commit"] != "success"


@pytest.mark.slow
def test_s3_datasource_second_run_processes_exactly_the_added_and_changed_files(
    airflow_db, dagbag, s3_bucket, tmp_path, monkeypatch
) -> None:
    """The example DAG on a moto S3 datasource (through an Airflow connection) with a local datapool."""
    import json

    import boto3

    from lightly_airflow.datapool import Datapool

    creds = s3_bucket.credentials
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTLY_S3_TEST", json.dumps({
        "conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
        "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region},
    }))
    s3 = boto3.client("s3", endpoint_url=creds.endpoint_url, aws_access_key_id=creds.access_key_id,
                      aws_secret_access_key=creds.secret_access_key, region_name=creds.region)
    local = tmp_path / "local"
    keys = add_batch(local, Batch("cam", (300, 340), ("coffee",)))
    for key in keys:
        s3.upload_file(str(local / key), s3_bucket.name, f"images/{key}")

    dag = dagbag.dags["lightly_datapool"]
    pool_dir = tmp_path / "pool"
    conf = {
        "datasource_uri": f"{s3_bucket.uri}/images", "datasource_conn_id": "lightly_s3_test",
        "datapool_uri": f"file://{pool_dir}",
        "selection_config": {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]},
    }
    run1, states = _run(dag, conf, datetime(2026, 6, 1, tzinfo=UTC))
    assert str(run1.state) == "success", states
    pool = Datapool(f"file://{pool_dir}")
    assert sorted(_rows_of(pool, run1.run_id).column(C.KEY).to_pylist()) == sorted(keys)

    # Between the runs: one new file arrives, one existing file is replaced with other content.
    added = add_batch(local, Batch("cam2", (340, 341), ()))[0]
    s3.upload_file(str(local / added), s3_bucket.name, f"images/{added}")
    replaced = keys[3]
    s3.upload_file(str(local / keys[7]), s3_bucket.name, f"images/{replaced}")

    run2, states = _run(dag, conf, datetime(2026, 6, 2, tzinfo=UTC))
    assert str(run2.state) == "success", states
    assert sorted(_rows_of(pool, run2.run_id).column(C.KEY).to_pylist()) == sorted([added, replaced])


@pytest.mark.slow
def test_damaged_files_are_reported_and_every_good_file_is_committed(airflow_db, dagbag, tmp_path) -> None:
    """One run over a datasource with every kind of damage: the run commits, nothing is lost, all is reported."""
    import json
    import shutil
    from pathlib import Path

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from sqlalchemy import select

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.pipeline import reports_dir

    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    good = add_batch(source, Batch("cam", (400, 440), ("coffee",)))
    bad = source / "bad"
    bad.mkdir()
    (bad / "zero.png").write_bytes(b"")
    photo = next(k for k in good if k.endswith(".jpg"))
    data = (source / photo).read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (bad / "text.png").write_text("not an image at all")
    shutil.copy(source / good[0], bad / "copy.png")  # within a run, the lexicographically first key is the original
    broken_prediction = good[1]
    (source / ".lightly/predictions/digits" / f"{broken_prediction.rsplit('.', 1)[0]}.json").write_text("{not json")

    conf = {
        "datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}",
        "selection_config": {"n_samples": 10, "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
            {"input": {"type": "SCORES", "task": "digits", "score": "uncertainty_entropy"}, "strategy": {"type": "WEIGHTS"}},
        ]},
    }
    run, states = _run(dag := dagbag.dags["lightly_datapool"], conf, datetime(2026, 7, 1, tzinfo=UTC))
    assert str(run.state) == "success", states

    pool = Datapool(f"file://{pool_dir}")
    rows = {r["key"]: r for r in _rows_of(pool, run.run_id).to_pylist()}
    assert set(rows) == set(good) | {"bad/zero.png", "bad/truncated.jpg", "bad/text.png", "bad/copy.png"}
    for key in ("bad/zero.png", "bad/truncated.jpg", "bad/text.png"):
        assert rows[key][C.STATUS] == C.STATUS_CORRUPT and rows[key][C.STATUS_REASON], rows[key]
        assert not rows[key][C.SELECTED]
    assert rows[good[0]][C.STATUS] == C.STATUS_DUPLICATE
    assert rows[good[0]][C.DUPLICATE_OF] == "bad/copy.png" and rows["bad/copy.png"][C.STATUS] == C.STATUS_OK
    assert all(rows[k][C.STATUS] == C.STATUS_OK for k in good[1:])
    # The file with a broken prediction is still a sample, just without that score.
    assert rows[broken_prediction]["scores.digits.uncertainty_entropy"] is None
    assert sum(r[C.SELECTED] for r in rows.values()) == 10

    # The committed run's staging files are gone (its samples live in the pool); its report stays.
    from lightly_airflow.staging import run_dir

    assert not Path(run_dir(str(pool_dir), run.run_id)).exists()
    assert Path(reports_dir(str(pool_dir), run.run_id), "index.html").exists()
    problems = pq.read_table(f"{reports_dir(str(pool_dir), run.run_id)}/problems.parquet")
    reported = set(problems.column("key").to_pylist())
    assert {"bad/zero.png", "bad/truncated.jpg", "bad/text.png", broken_prediction} <= reported
    assert pc.all(pc.greater(pc.utf8_length(problems.column("reason")), 0)).as_py()

    # The datapool asset got an event whose extra says where the new snapshot is.
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run.run_id)).all()
        extras = [dict(e.extra) for e in events]
    assert extras and extras[0]["version"] == pool.version()
    assert extras[0]["datapool_uri"] == f"file://{pool_dir}" and extras[0]["selected"] == 10

    # The CLI reads the pool the DAG wrote.
    import subprocess
    import sys

    cli = str(Path(sys.executable).with_name("lightly-airflow"))
    out = subprocess.run([cli, "datapool", "show", str(pool_dir), "--tag", C.INITIAL_TAG, "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    assert sorted(r["key"] for r in json.loads(out)) == sorted(k for k, r in rows.items() if r[C.SELECTED])
    assert dag.dag_id == "lightly_datapool"


@pytest.mark.slow
def test_custom_embeddings_csv_from_the_worker_config_replaces_the_model(airflow_db, dagbag, tmp_path) -> None:
    """Lightly users bring `.lightly/embeddings/<name>.csv` and `worker_config.embeddings` unchanged."""
    import csv

    import numpy as np
    from sklearn.datasets import load_digits

    from lightly_airflow.datapool import Datapool

    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    keys = add_batch(source, Batch("csv", (500, 560), ()))
    pixels = load_digits().data[400 + 500 : 400 + 560]  # the same scans the images were written from
    (source / ".lightly/embeddings").mkdir(parents=True)
    with open(source / ".lightly/embeddings/pixels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filenames", *[f"embedding_{d}" for d in range(64)], "labels"])
        for key, row in zip(keys, pixels):
            writer.writerow([key, *row.tolist(), 0])
    conf = {
        "datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}",
        "worker_config": {"embeddings": "pixels.csv"},
        "selection_config": {"n_samples": 8, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]},
    }
    run, states = _run(dagbag.dags["lightly_datapool"], conf, datetime(2026, 8, 1, tzinfo=UTC))
    assert str(run.state) == "success", states
    pool = Datapool(f"file://{pool_dir}")
    assert pool.embedding_info()["dim"] == 64
    rows = _rows_of(pool, run.run_id)
    stored = np.array(rows.column(C.EMBEDDING).to_pylist(), dtype=np.float32)
    expected = pixels / np.linalg.norm(pixels, axis=1, keepdims=True)
    order = [keys.index(k) for k in rows.column(C.KEY).to_pylist()]
    np.testing.assert_allclose(stored, expected[order], atol=1e-6)
    assert sum(rows.column(C.SELECTED).to_pylist()) == 8

    bad = {**conf, "worker_config": {"embeddings": "missing.csv"}, "datapool_uri": f"file://{tmp_path}/pool2"}
    run, states = _run(dagbag.dags["lightly_datapool"], bad, datetime(2026, 8, 2, tzinfo=UTC))
    assert states["wait_for_new_files"] == "failed"  # the first task, before anything is listed or embedded
    assert states["list_new_files"] == "upstream_failed"


@pytest.mark.slow
def test_worker_config_process_all_reprocesses_everything_when_nothing_is_new(airflow_db, dagbag, tmp_path) -> None:
    """Lightly's datapool docs: ``{"datasource": {"process_all": true}, "enable_training": false}`` as
    worker_config with nothing new in the bucket must reprocess every file, not wait and skip (the sensor
    used to ignore worker_config.datasource.process_all)."""
    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    files = add_batch(source, Batch("only", (300, 340), ()))
    selection = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}", "selection_config": selection}
    run1, states = _run(dag, conf, datetime(2026, 5, 1, tzinfo=UTC))
    assert str(run1.state) == "success", states
    pool = Datapool(f"file://{pool_dir}")
    v1 = pool.version()

    worker = {"datasource": {"process_all": True}, "enable_training": False}
    run2, states = _run(dag, {**conf, "worker_config": worker}, datetime(2026, 5, 2, tzinfo=UTC))
    assert str(run2.state) == "success", states
    assert states["wait_for_new_files"] == "success" and states["list_new_files"] == "success"
    sensed = run2.get_task_instance("wait_for_new_files").xcom_pull(task_ids="wait_for_new_files")
    assert sensed["process_all"] is True and sensed["new"] == len(files)
    counts = run2.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files", key="counts")
    assert counts["process_all"] is True and counts["new"] == counts["seen"] == len(files)
    assert sorted(_rows_of(pool, run2.run_id).column(C.KEY).to_pylist()) == sorted(files)
    assert pool.version() == v1 + 1


def _plain_images(root, start: int, stop: int) -> list[str]:
    """Digit scans as PNGs and nothing else: a datasource without any .lightly/ folder."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    root.mkdir(parents=True, exist_ok=True)
    images = load_digits().images[start:stop]
    keys = []
    for i, img in zip(range(start, stop), images):
        pixels = (np.kron(img, np.ones((8, 8))) * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"scan_{i:04d}.png")
        keys.append(f"scan_{i:04d}.png")
    return keys


def _dag_default_selection_config() -> dict:
    import runpy
    from pathlib import Path

    dag_file = Path(__file__).resolve().parents[2] / "dags" / "lightly_datapool.py"
    return runpy.run_path(str(dag_file))["DEFAULT_SELECTION_CONFIG"]


@pytest.mark.slow
def test_default_config_works_on_a_datasource_without_lightly_folder(airflow_db, dagbag, tmp_path) -> None:
    """The DAG's default selection needs nothing from .lightly/; a config naming a missing prediction task
    fails the first task, before anything is listed or embedded."""
    import time

    from lightly_airflow.datapool import Datapool

    source, pool_dir = tmp_path / "plain", tmp_path / "pool"
    keys = _plain_images(source, 0, 60)
    default = _dag_default_selection_config()
    assert "task" not in str(default) and "source" not in str(default)
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}", "selection_config": default,
            "worker_config": {"enable_training": False}}
    run, states = _run(dagbag.dags["lightly_datapool"], conf, datetime(2026, 9, 1, tzinfo=UTC))
    assert str(run.state) == "success", states
    rows = _rows_of(Datapool(f"file://{pool_dir}"), run.run_id)
    assert rows.num_rows == len(keys)
    assert sum(rows.column(C.SELECTED).to_pylist()) == default["n_samples"]

    missing_task = {**conf, "datapool_uri": f"file://{tmp_path}/pool2", "selection_config": {"n_samples": 5, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "SCORES", "task": "my_classifier", "score": "uncertainty_margin"},
         "strategy": {"type": "WEIGHTS"}}]}}
    started = time.monotonic()
    run, states = _run(dagbag.dags["lightly_datapool"], missing_task, datetime(2026, 9, 2, tzinfo=UTC))
    assert states["wait_for_new_files"] == "failed", states
    assert states["list_new_files"] == "upstream_failed" and states["select_and_commit"] != "success"
    assert time.monotonic() - started < 60


def _write_predictions(source, task: str, probs_by_key: dict) -> None:
    """A classification task in .lightly/predictions/ (Lightly's format) with one file per image."""
    import json

    folder = source / ".lightly" / "predictions"
    (folder / task).mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text(json.dumps([task]))
    (folder / task / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": i, "name": str(i)} for i in range(10)]}))
    for key, p in probs_by_key.items():
        stem = key.rsplit(".", 1)[0]
        (folder / task / f"{stem}.json").write_text(json.dumps(
            {"file_name": key, "predictions": [{"category_id": int(p.argmax()), "probabilities": p.tolist()}]}))


@pytest.mark.slow
def test_active_learning_loop_through_the_dag(airflow_db, dagbag, tmp_path) -> None:
    """Three rounds of Lightly's loop: a diverse start, then margin-weighted picks among the unlabelled
    samples with the labelled set preselected; the last round counts n_samples as the labelled set's size."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from lightly_airflow.datapool import Datapool

    digits = load_digits()
    source, pool_dir = tmp_path / "al", tmp_path / "pool"
    keys = _plain_images(source, 0, 150)
    labels = dict(zip(keys, digits.target[:150]))
    pixels = dict(zip(keys, digits.data[:150]))
    dag = dagbag.dags["lightly_datapool"]
    pool = Datapool(f"file://{pool_dir}")
    base = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}"}
    diverse = {"n_samples": 15, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    run, states = _run(dag, {**base, "selection_config": diverse, "tag_name": "round-1"}, datetime(2026, 10, 1, tzinfo=UTC))
    assert str(run.state) == "success", states

    coral = {"strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "SCORES", "task": "al", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}}]}
    for round_no, (n, meaning) in enumerate([(15, "new"), (45, "total")], start=2):
        labelled = pool.selected(columns=[C.KEY]).column(C.KEY).to_pylist()
        model = LogisticRegression(max_iter=500).fit([pixels[k] for k in labelled], [labels[k] for k in labelled])
        probs = np.zeros((len(keys), 10))
        probs[:, model.classes_] = model.predict_proba([pixels[k] for k in keys])
        _write_predictions(source, "al", dict(zip(keys, probs)))
        conf = {**base, "process_all": True, "tag_name": f"round-{round_no}", "n_samples_meaning": meaning,
                "selection_config": {"n_samples": n, **coral}}
        run, states = _run(dag, conf, datetime(2026, 10, round_no, tzinfo=UTC))
        assert str(run.state) == "success", states
        rows = _rows_of(pool, run.run_id)
        picked = rows.filter(rows.column(C.SELECTED))
        assert picked.num_rows == 15  # round 3: 45 total - 30 labelled = 15 new
        assert not set(picked.column(C.KEY).to_pylist()) & set(labelled)
    tags = {t["name"]: t["count"] for t in pool.tags()}
    assert tags["round-1"] == tags["round-2"] == tags["round-3"] == 15 and tags[C.INITIAL_TAG] == 45

    bad = {**base, "preselected_tag_name": "no-such-tag", "process_all": True, "selection_config": diverse}
    run, states = _run(dag, bad, datetime(2026, 10, 9, tzinfo=UTC))
    assert states["wait_for_new_files"] == "failed" and states["select_and_commit"] != "success"


@pytest.mark.slow
def test_the_datapool_asset_gets_an_event_only_when_a_version_is_committed(airflow_db, dagbag, tmp_path) -> None:
    """Downstream DAGs scheduled on the datapool asset (labelling export, training) run when it grows: a dry
    run (``enable_datapool_update: false``) commits nothing and must not wake them."""
    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("dry", (300, 320), ()))
    diverse = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}", "selection_config": diverse}

    dry, states = _run(dag, {**conf, "worker_config": {"datasource": {"enable_datapool_update": False}}},
                       datetime(2026, 5, 1, tzinfo=UTC))
    assert str(dry.state) == "success" and states["select_and_commit"] == "success", states
    assert Datapool(f"file://{pool_dir}").version() is None  # nothing committed
    assert asset_events(dry.run_id) == []

    real, states = _run(dag, conf, datetime(2026, 5, 2, tzinfo=UTC))
    assert str(real.state) == "success", states
    version = Datapool(f"file://{pool_dir}").version()
    [(name, extra)] = asset_events(real.run_id)
    # (the run committed to its own pool, not the deployment's LIGHTLY_DATAPOOL_URI: the event is on that pool's
    # asset, so DAGs scheduled on the deployment's "lightly-datapool" are not woken for a pool they do not read)
    deployment_pool = dag.task_dict["select_and_commit"].asset.uri
    assert deployment_pool != f"file://{pool_dir}"
    assert name == f"file://{pool_dir}" and extra["version"] == version and extra["version"] is not None
    assert extra["datapool_uri"] == f"file://{pool_dir}" and extra["selected"] == 5 and extra["processed"] == 20
