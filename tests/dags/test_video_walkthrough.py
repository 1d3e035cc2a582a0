"""Lightly's datapool walk-through on a bucket of videos, end to end through the example DAG (dag.test).

Run 1 selects frames with DIVERSITY (minimum distance 0.1, n_samples 100) and ``enable_training: false``;
two more videos arrive and run 2 (minimum distance 0.2) processes only their frames, keeping away from the
frames already selected; a later run sets ``process_all``. A truncated video is reported with its reason,
a video under a unicode name in a sub-folder is a video like any other, selected frames exist as PNGs.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import numpy as np
import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import add_walkthrough_videos, make_scene_video, truncate


def config(distance: float) -> dict:
    return {"n_samples": 100, "strategies": [{"input": {"type": "EMBEDDINGS"},
                                              "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": distance}}]}


def _defaults() -> dict:
    """Every optional Param at its default (in-process dag.test() runs share the DAG's params, so a value an
    earlier test passed must not leak into these runs): the DAG tests' own list, plus ours."""
    from test_lightly_datapool_run import BASE_CONF as DAG_TEST_DEFAULTS  # tests/dags is on sys.path

    return {**DAG_TEST_DEFAULTS, "worker_config": {"enable_training": False}}


BASE_CONF = _defaults()


def _run(dag, conf: dict, when: datetime):
    dagrun = copy.deepcopy(dag).test(run_conf={**BASE_CONF, **conf}, logical_date=when)
    return dagrun, {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def _own(pool, run_id: str):
    table = pool.read(run_id=run_id)
    return table.filter(pc.equal(table.column(C.RUN_ID), run_id))


def _unit(rows) -> np.ndarray:
    e = np.asarray(rows.column(C.EMBEDDING).to_pylist(), dtype=np.float64)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _min_pairwise(a: np.ndarray, b: np.ndarray | None = None) -> float:
    d = np.linalg.norm(a[:, None, :] - (a if b is None else b)[None, :, :], axis=-1)
    if b is None:
        d = d + np.eye(len(a)) * 9
    return float(d.min())


@pytest.mark.slow
def test_video_walkthrough(airflow_db, dagbag, tmp_path) -> None:
    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "bucket", tmp_path / "pool"
    first = add_walkthrough_videos(str(source), 0)
    make_scene_video(str(source / "cameras" / "café-ß.mp4"), "hubble_deep_field", 24, seed=7)
    make_scene_video(str(source / "broken.webm"), "immunohistochemistry", 30, seed=8)
    truncate(str(source / "broken.webm"), 0.5)
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}", "selection_config": config(0.1)}

    run1, states = _run(dag, conf, datetime(2026, 6, 1, tzinfo=UTC))
    assert str(run1.state) == "success", states
    pool = Datapool(f"file://{pool_dir}")
    rows1 = _own(pool, run1.run_id)
    videos1 = set(rows1.column(C.VIDEO).to_pylist())
    assert videos1 == {*first, "cameras/café-ß.mp4", "broken.webm"}
    assert "campus4-c0-07-avi.png" in rows1.column(C.KEY).to_pylist()  # frame 7 of 48
    by_key = {r[C.KEY]: r for r in rows1.to_pylist()}
    assert by_key["broken.webm"][C.STATUS] == C.STATUS_CORRUPT and "ends early" in by_key["broken.webm"][C.STATUS_REASON]
    assert any(r[C.VIDEO] == "broken.webm" and r[C.STATUS] == C.STATUS_OK for r in by_key.values())
    sel1 = rows1.filter(rows1.column(C.SELECTED))
    assert 0 < sel1.num_rows < 100  # stopped by the minimum distance, not by n_samples
    assert _min_pairwise(_unit(sel1)) >= 0.1
    for key in sel1.column(C.KEY).to_pylist():
        assert (source / ".lightly" / "frames" / key).is_file()

    second = add_walkthrough_videos(str(source), 1)
    run2, states = _run(dag, {**conf, "selection_config": config(0.2)}, datetime(2026, 6, 2, tzinfo=UTC))
    assert str(run2.state) == "success", states
    rows2 = _own(pool, run2.run_id)
    assert set(rows2.column(C.VIDEO).to_pylist()) == set(second)  # only the new videos' frames
    sel2 = rows2.filter(rows2.column(C.SELECTED))
    assert sel2.num_rows > 0
    assert _min_pairwise(_unit(sel2)) >= 0.2
    assert _min_pairwise(_unit(sel2), _unit(sel1)) >= 0.2  # away from the frames selected before
    union = set(sel1.column(C.KEY).to_pylist()) | set(sel2.column(C.KEY).to_pylist())
    assert set(pool.read(tag=C.INITIAL_TAG).column(C.KEY).to_pylist()) == union

    run3, states = _run(dag, {**conf, "worker_config": {"datasource": {"process_all": True}, "enable_training": False}},
                        datetime(2026, 6, 3, tzinfo=UTC))
    assert str(run3.state) == "success", states
    rows3 = _own(pool, run3.run_id)
    assert rows3.num_rows == rows1.num_rows + rows2.num_rows
    embed = [x for x in run3.get_task_instances() if x.task_id == "embed_local"]
    counts = [x.xcom_pull(task_ids="embed_local", map_indexes=x.map_index) for x in embed]
    assert sum(c["embedded"] for c in counts) == 0  # unchanged videos are never decoded again
