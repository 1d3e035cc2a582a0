"""End to end on real runs of a local pool (session 65 audit): crops written by an object-level run for an image that
is then replaced under its key are removed by the next run that knows it, also one without object-level work
(image-level; the select task did no crop step at all) or with ``crops.enable_upload`` off (it returned before
any removal). The unchanged images keep theirs (their pixels are still there); the run summary counts them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from object_pool import run_objects_pipeline

from lightly_airflow.objects import ObjectsSpec
from lightly_airflow.objects.demo_data import TASK, add_images

from .test_replaced_image_crops import IMAGES, _first, _mine, _replace
from .test_replaced_image_crops import _crops as crops_of


@pytest.mark.parametrize("spec", [None, ObjectsSpec(tasks=(TASK,), upload=False, selection_tasks=(TASK,))],
                         ids=["image-level run", "uploads off"])
def test_the_next_run_removes_the_crops_of_a_replaced_image(tmp_path: Path, spec: Any) -> None:
    source, pool, before = _first(tmp_path)
    _replace(source, "img_0000.png")
    add_images(source, 4, 1, seed=11, shapes=(1, 1))
    selection = IMAGES if spec is None else {
        "n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
    summary = run_objects_pipeline(source, pool, "r2", {**selection, "n_samples": 1}, spec)
    old = _mine(before, "img_0000")
    assert crops_of(source) == before - old, "crops of img_0000's former picture were kept"
    crops = summary.objects["crops"]
    assert (crops["replaced_removed"], crops["replaced_failed"], crops.get("written", 0)) == (len(old), 0, 0)
