"""The objects of images that stay selected, when ``preselected_tag_name`` names a run's tag (session 65).

A ``process_all`` run does not pick again the images the pool selected before; they stay in ``initial-tag``, and
so their new object rows say ``object_selected`` (``test_kept_objects_selected``). Without
``preselected_tag_name`` the images left out of the candidates are exactly those (one mask serves both,
``pipeline._PoolView.before``); with it, the candidates leave out only that tag's samples, while every image of
``initial-tag`` stays selected: the objects of an image another run selected must say so too."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from object_pool import run_objects_pipeline

from lightly_airflow.objects import ObjectsSpec
from lightly_airflow.objects.demo_data import TASK, add_images

SPEC = ObjectsSpec(tasks=(TASK,), upload=False, selection_tasks=(TASK,))


def _objects(n: int) -> dict[str, object]:
    return {"n_samples": n,
            "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}


def test_objects_of_images_selected_outside_the_preselected_tag_stay_selected(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightly_airflow import columns as C
    from lightly_airflow import pipeline
    from lightly_airflow.datapool import Datapool

    source, pool = tmp_path / "src", tmp_path / "pool"
    add_images(source, 0, 4, seed=41, shapes=(1, 2))
    first = run_objects_pipeline(source, pool, "run-1", _objects(2), SPEC)
    add_images(source, 4, 2, seed=42, shapes=(1, 2))
    run_objects_pipeline(source, pool, "run-2", _objects(2), SPEC)  # (both new images)
    snap = Datapool(f"file://{pool}").snapshot()
    in_first = set(snap.read(tag=first.tag, columns=[C.KEY]).column(C.KEY).to_pylist())
    chosen = set(snap.selected([C.KEY]).column(C.KEY).to_pylist())
    assert len(in_first) == 2 and len(chosen) == 4

    # Run 3 processes every image again; its candidates leave out only run 1's picks, and it picks one.
    monkeypatch.setattr(pipeline, "select_and_commit", partial(
        pipeline.select_and_commit, active_learning={"preselected_tag_name": first.tag}))
    third = run_objects_pipeline(source, pool, "run-3", _objects(1), SPEC, process_all=True)
    assert third.candidates == 4 and third.selected == 1
    snap = Datapool(f"file://{pool}").snapshot()
    after = set(snap.selected([C.KEY]).column(C.KEY).to_pylist())
    rows = snap.read(columns=[C.KEY, C.RUN_ID, C.PARENT_KEY, C.SELECTED, C.OBJECT_SELECTED]).to_pylist()
    picked = {r[C.KEY] for r in rows if r[C.RUN_ID] == "run-3" and r[C.SELECTED]}
    assert len(picked) == 1 and after == chosen | picked
    assert (chosen - in_first) - picked  # (a pick of run 2's that run 3 did not pick again)
    objects = [r for r in rows if r[C.RUN_ID] == "run-3" and r[C.PARENT_KEY] is not None]
    # Every image still selected, run 2's picks too, has its objects selected; no other image has.
    assert {r[C.PARENT_KEY] for r in objects if r[C.OBJECT_SELECTED]} == after
    assert all(r[C.OBJECT_SELECTED] == (r[C.PARENT_KEY] in after) for r in objects)
