"""An object-level run whose select task is killed after its commit, then retried (session 63 audit): the retry
finishes the run (``pipeline.finish_committed_run``) and must say what an uninterrupted run says. It built the
object summary from the pool's object rows, which hold neither the shards' counts (boxes outside their image,
clipped boxes, rejected files ...) nor the selection's notes: the retried run's summary and report lost them.
Its crops are written once each, the same files as an uninterrupted run's.

Kills are simulated in process, at the steps ``tests/dags/test_kill_select_and_commit.py`` kills a child process
at (a ``BaseException`` that nothing in the select task catches, as a SIGKILL): right after the commit, while the
crops are written (after the first crop file), and after the report (before the staging files are removed)."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from object_pool import DAG_ID, run_objects_pipeline

from lightly_airflow.objects import ObjectsSpec
from lightly_airflow.objects.demo_data import TASK, WIDTH, add_images

IMAGES = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
OBJECTS = {"n_samples": 2,
           "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
SPEC = ObjectsSpec(tasks=(TASK,), upload=True, selection_tasks=(TASK,))


class Killed(BaseException):
    """The worker dies here (nothing in the select task catches it, as nothing survives a SIGKILL)."""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1 selected 2 of 5 images on their image embeddings (no objects of ``shapes`` in the pool); then 4 new
    images arrive, one with a box past the right edge (clipped) and one wholly outside the image."""
    root = tmp_path_factory.mktemp("retried-objects")
    source, pool = root / "src", root / "pool"
    add_images(source, 0, 5, seed=21, shapes=(1, 2))
    run_objects_pipeline(source, pool, "run-1", IMAGES, None)
    preds = add_images(source, 5, 4, seed=22, shapes=(1, 2))
    key = sorted(preds)[0]
    boxes = [*preds[key], {"category_id": 0, "bbox": [WIDTH - 10, 5, 30, 20], "score": 0.9},
             {"category_id": 0, "bbox": [WIDTH + 10, 5, 10, 10], "score": 0.9}]
    (source / ".lightly" / "predictions" / TASK / key.replace(".png", ".json")).write_text(
        json.dumps({"file_name": key, "predictions": boxes}))
    return root


def _run_2(base: Path, at: Path, monkeypatch: pytest.MonkeyPatch, kill: str | None) -> tuple[Any, Path, Path]:
    """Run 2 (object DIVERSITY) on a copy of ``base``, killed at ``kill`` and retried; its summary, its source
    (where its crops are) and its pool."""
    from lightly_airflow import pipeline
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.objects import crops

    source, pool = at / "src", at / "pool"
    shutil.copytree(base / "src", source)
    shutil.copytree(base / "pool", pool)
    calls: list[dict[str, Any]] = []
    real_select = pipeline.select_and_commit

    def select_then_retry(**kwargs: Any) -> Any:
        calls.append(kwargs)
        with monkeypatch.context() as m:
            if kill == "after-commit":
                real_commit = Datapool.commit

                def commit_then_die(self: Any, *a: Any, **k: Any) -> Any:
                    real_commit(self, *a, **k)
                    raise Killed

                m.setattr(Datapool, "commit", commit_then_die)
            elif kill == "mid-crops":
                real_write = crops.write_bytes

                def write_one_then_die(*a: Any, **k: Any) -> Any:
                    real_write(*a, **k)
                    raise Killed

                m.setattr(crops, "write_bytes", write_one_then_die)
            elif kill == "after-report":
                m.setattr(pipeline, "remove_staging", lambda *a, **k: (_ for _ in ()).throw(Killed()))
            try:
                done = real_select(**kwargs)
            except Killed:
                assert kill is not None
            else:
                assert kill is None, f"not killed at {kill}"
                return done
        return real_select(**kwargs)  # (the retry, as Airflow runs it: the same arguments)

    monkeypatch.setattr(pipeline, "select_and_commit", select_then_retry)
    summary = run_objects_pipeline(source, pool, "run-2", OBJECTS, SPEC)
    assert len(calls) == 1 and calls[0]["dag_id"] == DAG_ID
    return summary, source, pool


def _crops(source: Path) -> dict[str, bytes]:
    root = source / ".lightly" / "crops"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _report_text(pool: Path, run_id: str) -> str:
    from lightly_airflow import staging

    return html.unescape((Path(staging.reports_dir(str(pool), run_id)) / "index.html").read_text())


@pytest.fixture(scope="module")
def whole(base: Path) -> tuple[Any, Path, Path]:
    """Run 2 uninterrupted."""
    with pytest.MonkeyPatch.context() as m:
        return _run_2(base, base / "whole", m, None)


@pytest.mark.parametrize("kill", ["after-commit", "mid-crops", "after-report"])
def test_a_retried_object_run_says_and_writes_what_an_uninterrupted_one_does(
        base: Path, whole: tuple[Any, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        kill: str) -> None:
    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool

    expected, source_0, pool_0 = whole
    got, source, pool = _run_2(base, tmp_path / kill, monkeypatch, kill)
    objects = json.loads(json.dumps(expected.objects))  # (a copy: the fixture's is shared)
    # (the scenario: the shards' counts and the selection's note are there to lose)
    assert (objects["boxes_clipped"], objects["boxes_outside_image"]) == (1, 1)
    assert len(objects["notes"]) == 2 and "selected before have no objects of task" in objects["notes"][1]
    assert objects["crops"]["written"] == objects["selected"] > 0 and objects["crops"]["failed"] == 0

    assert got.already_committed and got.version == expected.version
    crops = objects.pop("crops")
    assert crops.pop("uri") == f"{source_0}/.lightly/crops"
    assert got.objects.pop("crops") == {**crops, "uri": f"{source}/.lightly/crops"}
    assert got.objects == objects
    # The report (rebuilt by the retry after a kill before it) says the same about the objects.
    report = _report_text(pool, "run-2")
    for note in objects["notes"]:
        assert note in report and note in _report_text(pool_0, "run-2")
    # Each selected object's crop once, the same bytes; the pool's object rows once each.
    assert _crops(source) == _crops(source_0) and len(_crops(source)) == objects["selected"]
    rows = Datapool(f"file://{pool}").snapshot().read(columns=[C.KEY, C.PARENT_KEY])
    keys = [k for k, p in zip(rows.column(C.KEY).to_pylist(), rows.column(C.PARENT_KEY).to_pylist(), strict=True)
            if p is not None]
    assert len(keys) == len(set(keys)) == objects["committed"]
    assert not (pool / "_staging").exists() or not any((pool / "_staging").iterdir())


def test_an_embed_shard_retried_writes_the_same_objects_once(tmp_path: Path) -> None:
    """The object pass of an embed task run twice on its shard (a retry after a kill at its end): one staging file
    replaced whole, the same rows and counts, so the select task sums each shard's counts once."""
    import pyarrow.parquet as pq
    import torch

    from lightly_airflow import staging
    from lightly_airflow.objects.run import load_run_objects
    from lightly_airflow.objects.shard import embed_objects_shard

    from .test_user_boxes import _box, _MeanColour
    from .test_user_boxes import _run as run_det

    source = tmp_path / "src"
    add_images(source, 0, 3, seed=4, shapes=(1, 3))
    first = run_det(source, tmp_path / "pool", {"img_0000.png": [_box([150, 5, 20, 10])], "img_0001.png": []})
    folder, name = first["output_uri"].rsplit("/", 1)
    manifest = f"{folder.rsplit('/', 1)[0]}/{staging.MANIFEST}/{name}"  # (the shard's objects file's manifest)
    again = embed_objects_shard(manifest, encoder=_MeanColour(), device=torch.device("cpu"), batch_size=4,
                                num_workers=1)
    assert again is not None and first["boxes_clipped"] == again["boxes_clipped"] == 1
    timings = ("seconds", "rows", "summary")  # (and *_s, *_per_s: how long it took)
    assert {k: v for k, v in again.items() if not k.endswith("_s") and k not in timings} == \
        {k: v for k, v in first.items() if not k.endswith("_s") and k not in timings}
    assert pq.read_table(first["output_uri"]).equals(first["rows"])
    assert load_run_objects([manifest]).schema.metadata == first["rows"].schema.metadata
