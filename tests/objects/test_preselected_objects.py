"""A task added after images were selected: the pool has no objects of it for those images (session 63 audit).

Run 1 selects images on their image embeddings (no object work); run 2 selects new images by the DIVERSITY of
their ``shapes`` objects. The images run 1 selected have no objects in the pool, so object DIVERSITY cannot keep
new picks away from their shapes; nothing said so. Run 3 with ``process_all`` crops them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from object_pool import run_objects_pipeline as _run

from lightly_airflow.objects import ObjectsSpec
from lightly_airflow.objects.demo_data import TASK, add_images


def test_preselected_images_without_objects_of_a_new_task_are_counted_then_cropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source, pool = tmp_path / "src", tmp_path / "pool"
    preds = add_images(source, 0, 8, seed=11)
    images = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    first = _run(source, pool, "run-1", images, None)
    assert first.selected == 3
    preds.update(add_images(source, 8, 4, seed=12))
    objects = {"n_samples": 2,
               "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
    spec = ObjectsSpec(tasks=(TASK,), upload=False, selection_tasks=(TASK,))
    caplog.set_level(logging.WARNING, logger="lightly_airflow.objects.objectives")
    second = _run(source, pool, "run-2", objects, spec)
    report = second.metrics["objectives"]["strategies[0]"]
    assert report["preselected_objects"] == 0 and report["preselected_images_without_objects"] == 3
    assert "3 images selected before have no objects of task 'shapes'" in caplog.text
    assert "process_all" in caplog.text
    # ... and in the run summary's object notes (the report's notes), from the selection's report.
    (note,) = second.objects["notes"]
    assert note.startswith("strategies[0]: 3 images selected before have no objects of task 'shapes'")
    assert "process_all=true" in note

    # process_all crops every image again: the run's own objects of the 5 images selected so far count as selected
    # objects (the pool has none of run 1's picks: that run selected as if they had none), each image's shapes once.
    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool

    before = Datapool(f"file://{pool}").snapshot().selected([C.KEY]).column(C.KEY).to_pylist()
    assert len(before) == 5
    caplog.clear()
    third = _run(source, pool, "run-3", objects, spec, process_all=True)
    report = third.metrics["objectives"]["strategies[0]"]
    assert report["preselected_objects"] == sum(len(preds[k]) for k in before)
    assert report["preselected_images_without_objects"] == sum(not preds[k] for k in before)
    assert "images selected before have no objects" not in caplog.text
    assert "notes" not in third.objects


def test_preselected_images_without_boxes_are_counted_without_a_note_when_others_have_objects() -> None:
    """An image selected before may simply have no boxes of the task: counted, but the note (a task new to every
    preselected image) is only for a pool with no object of the task among them. The run's own objects of a
    preselected image (``process_all``) replace the pool's older ones, once each."""
    import numpy as np
    import pyarrow as pa

    from lightly_airflow import columns as C
    from lightly_airflow.objects.run import selection_notes
    from lightly_airflow.objects.selection import object_set

    def rows(parents: list[str], dim: int = 4) -> pa.Table:
        vectors = np.eye(dim, dtype=np.float32)[: len(parents)].tolist()
        return pa.table({C.PARENT_KEY: parents, C.OBJECT_TASK: [TASK] * len(parents),
                         C.EMBEDDING: pa.array(vectors, pa.list_(pa.float32()))})

    run, pool = rows(["new.png", "old-1.png"]), rows(["old-1.png", "old-1.png", "old-2.png"])
    objs = object_set(["new.png"], run, TASK, pool, preselected_keys=["old-1.png", "old-2.png", "empty.png"])
    assert (len(objs.x), len(objs.pre), objs.pre_without) == (1, 2, 1)  # old-1's own object once, old-2's; empty
    report = {"task": TASK, "preselected_objects": len(objs.pre), "preselected_images_without_objects": 1}
    assert selection_notes({"objectives": {"strategies[0]": report}}) == []
    objs = object_set(["new.png"], run.slice(0, 1), TASK, None, preselected_keys=["old-1.png", "old-2.png"])
    assert (len(objs.pre), objs.pre_without) == (0, 2)
    report = {"task": TASK, "preselected_objects": 0, "preselected_images_without_objects": 2}
    (note,) = selection_notes({"objectives": {"strategies[0]": report}})
    assert note.startswith("strategies[0]: 2 images selected before have no objects of task 'shapes'")
