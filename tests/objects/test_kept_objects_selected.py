"""A ``process_all`` run over unchanged images the pool selected before (session 64 audit): the images stay
selected (``initial-tag`` keeps their former rows: the run does not pick them again), but the run's new object
rows of them said ``object_selected`` false, so the UI's object page (``plugins/pages.py``) showed the objects of a
selected image as not selected. The objects of a selected image are selected: the committed rows now say so."""

from __future__ import annotations

from pathlib import Path

from object_pool import run_objects_pipeline

from lightly_airflow.objects import ObjectsSpec
from lightly_airflow.objects.demo_data import TASK, add_images

OBJECTS = {"n_samples": 2,
           "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
SPEC = ObjectsSpec(tasks=(TASK,), upload=True, selection_tasks=(TASK,))


def _crops(source: Path) -> dict[str, bytes]:
    root = source / ".lightly" / "crops"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_process_all_run_keeps_the_objects_of_selected_images_selected(tmp_path: Path) -> None:
    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool

    source, pool = tmp_path / "src", tmp_path / "pool"
    add_images(source, 0, 4, seed=41, shapes=(1, 2))
    run_objects_pipeline(source, pool, "run-1", OBJECTS, SPEC)
    snap = Datapool(f"file://{pool}").snapshot()
    chosen = set(snap.selected([C.KEY]).column(C.KEY).to_pylist())
    assert len(chosen) == 2
    crops = _crops(source)

    run_objects_pipeline(source, pool, "run-2", OBJECTS, SPEC, process_all=True)
    snap = Datapool(f"file://{pool}").snapshot()
    after = set(snap.selected([C.KEY]).column(C.KEY).to_pylist())
    assert after > chosen  # (they stay selected; the run picks 2 more)
    rows = snap.read(columns=[C.RUN_ID, C.PARENT_KEY, C.OBJECT_SELECTED]).to_pylist()
    objects = [r for r in rows if r[C.RUN_ID] == "run-2" and r[C.PARENT_KEY] is not None]
    assert {r[C.PARENT_KEY] for r in objects} >= chosen
    for row in objects:
        assert row[C.OBJECT_SELECTED] == (row[C.PARENT_KEY] in after), row
    # Their crops are the same files (rewritten with identical bytes), none removed.
    assert {k: v for k, v in _crops(source).items() if k in crops} == crops
