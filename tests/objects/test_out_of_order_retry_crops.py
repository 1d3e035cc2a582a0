"""An out-of-order retry of an object run's crops (session 64 audit): run 2 commits and is killed before it writes
its crops; the images are replaced under their keys (more boxes each) and run 3 selects them again and writes their crops; then run 2's select task is cleared and its retry (``pipeline.
finish_committed_run``) wrote and pruned those images by run 2's older rows: run 3's crops of the new boxes were
removed and the others overwritten with run 2's boxes. The retry now leaves the images a later version processed
again (``objects.run.processed_later``) alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from object_pool import run_objects_pipeline

from lightly_airflow.objects import ObjectsSpec
from lightly_airflow.objects.demo_data import TASK, add_images

OBJECTS = {"n_samples": 10,
           "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
SPEC = ObjectsSpec(tasks=(TASK,), upload=True, selection_tasks=(TASK,))


class Killed(BaseException):
    """The worker dies here (nothing in the select task catches it)."""


def _crops(source: Path) -> dict[str, bytes]:
    root = source / ".lightly" / "crops"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_retry_after_a_later_run_leaves_the_later_runs_crops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightly_airflow import objects
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.objects.run import processed_later

    source, pool = tmp_path / "src", tmp_path / "pool"
    preds = add_images(source, 0, 3, seed=31, shapes=(1, 2))
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real_write = objects.write_crops

    def killed_before_crops(*a: Any, **k: Any) -> Any:
        calls.append((a, k))
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(objects, "write_crops", killed_before_crops)
        with pytest.raises(Killed):
            run_objects_pipeline(source, pool, "run-2", OBJECTS, SPEC)
    assert len(calls) == 1 and not (source / ".lightly" / "crops").exists()
    v2 = Datapool(f"file://{pool}").snapshot().version
    assert v2 is not None

    # The images are replaced under their keys, with more boxes each (crop indices past run 2's).
    now = add_images(source, 0, 3, seed=32, shapes=(3, 4))
    run_objects_pipeline(source, pool, "run-3", OBJECTS, SPEC)
    later = _crops(source)
    assert len(later) == sum(len(b) for b in now.values()) > sum(len(b) for b in preds.values())

    # Run 2's retry writes its crops with the arguments the run had, and the images processed later.
    (rows_arg, spec_arg, meta_arg), kwargs = calls[0]
    skipped = processed_later(Datapool(f"file://{pool}"), v2)
    assert skipped == sorted(preds)
    counts = real_write(rows_arg, spec_arg, meta_arg, **kwargs, later=skipped)
    assert _crops(source) == later
    assert (counts["written"], counts["stale_removed"], counts["later_skipped"]) == (0, 0, 3)


def test_the_select_tasks_retry_after_a_later_run_leaves_its_crops(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The same, through the select task's retry (``pipeline.select_and_commit`` finds run 2 committed and
    finishes it, ``finish_committed_run``)."""
    from lightly_airflow import objects, pipeline

    source, pool = tmp_path / "src", tmp_path / "pool"
    add_images(source, 0, 3, seed=31, shapes=(1, 2))
    calls: list[dict[str, Any]] = []
    real_select = pipeline.select_and_commit

    def killed_before_crops(*a: Any, **k: Any) -> Any:
        raise Killed

    def select(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_select(**kwargs)

    with monkeypatch.context() as m:
        m.setattr(objects, "write_crops", killed_before_crops)
        m.setattr(pipeline, "select_and_commit", select)
        with pytest.raises(Killed):
            run_objects_pipeline(source, pool, "run-2", OBJECTS, SPEC)
    add_images(source, 0, 3, seed=32, shapes=(3, 4))
    run_objects_pipeline(source, pool, "run-3", OBJECTS, SPEC)
    later = _crops(source)
    retried = real_select(**calls[0])  # (run 2's select task cleared: Airflow runs it again, the same arguments)
    assert retried.already_committed and _crops(source) == later
    assert retried.objects["crops"]["later_skipped"] == 3
