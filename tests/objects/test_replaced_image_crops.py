"""Crops of images that changed after they were cropped (session 64 audit), end to end on real runs of a local pool:
an image selected again whose predictions now have no object kept all its former crops (nothing of it was written,
so nothing of it was pruned); an image replaced under its key and not selected again kept crops of pixels that no
longer exist; a task no image has objects of any more kept every image's crops of it; and a finished run re-run
(its staging files removed) said nothing of its crops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from object_pool import DAG_ID, run_objects_pipeline
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.objects import ObjectsSpec
from lightly_airflow.objects.demo_data import TASK, add_images

#: Image-level DIVERSITY: an image without objects is selected like any other; its objects' crops are uploaded.
IMAGES = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
SPEC = ObjectsSpec(tasks=(TASK,), upload=True, upload_tasks=(TASK,))


class Killed(BaseException):
    """The worker dies here (nothing in the select task catches it, as nothing survives a SIGKILL)."""


def _crops(source: Path) -> set[str]:
    root = source / ".lightly" / "crops"
    return {str(p.relative_to(root)) for p in root.rglob("*.png")}


def _mine(crops: set[str], stem: str) -> set[str]:
    return {c for c in crops if c.rsplit("/", 1)[-1].startswith(f"{stem}-")}


def _replace(source: Path, name: str, boxes: list[dict[str, Any]] | None = None) -> None:
    """A new version of ``name`` under its key (one pixel changed), its predictions ``boxes`` when given."""
    with Image.open(source / name) as img:
        img.load()
        img.putpixel((0, 0), tuple(255 - v for v in img.getpixel((0, 0))))
        img.save(source / name)
    if boxes is not None:
        preds = source / ".lightly" / "predictions" / TASK / name.replace(".png", ".json")
        preds.write_text(json.dumps({**json.loads(preds.read_text()), "predictions": boxes}))


def _first(root: Path) -> tuple[Path, Path, set[str]]:
    """Run 1 selected all 4 images, each with 2 to 3 objects, and wrote their crops: the source, the pool, the
    crops."""
    source, pool = root / "src", root / "pool"
    add_images(source, 0, 4, seed=9, shapes=(2, 3))
    run_objects_pipeline(source, pool, "r1", IMAGES, SPEC)
    crops = _crops(source)
    assert all(_mine(crops, f"img_000{i}") for i in range(4))
    return source, pool, crops


def test_an_image_selected_again_without_objects_keeps_no_crop(tmp_path: Path) -> None:
    """img_0000 replaced, its predictions now empty, is run 2's one candidate and selected: its former crops go
    (``stale_removed``); a re-run of the finished run (its staging files removed) says the same crop counts."""
    from lightly_airflow.pipeline import select_and_commit

    source, pool, before = _first(tmp_path)
    old = _mine(before, "img_0000")
    _replace(source, "img_0000.png", [])
    summary = run_objects_pipeline(source, pool, "r2", IMAGES, SPEC)
    assert summary.selected == 1 and summary.objects["selected"] == 0
    crops = summary.objects["crops"]
    assert _crops(source) == before - old
    assert (crops["written"], crops["stale_removed"], crops["replaced_removed"]) == (0, len(old), 0)

    # Run 2 cleared and re-run after it finished: nothing is written or removed again, the counts are run 2's.
    again = select_and_commit(datapool_uri=str(pool), run_id="r2", dag_id=DAG_ID, manifests=[],
                              selection_config=IMAGES)
    assert again.already_committed and again.objects["crops"] == crops
    assert _crops(source) == before - old


def test_a_replaced_image_not_selected_again_keeps_no_crop_of_its_former_picture(tmp_path: Path) -> None:
    """img_0000 and img_0001 replaced (same boxes), 2 new images: run 2 selects 1 of the 4 candidates. The replaced
    image it does not select keeps none of its crops (``replaced_removed``), the one it selects has its new crops,
    and the unchanged images keep theirs."""
    source, pool, before = _first(tmp_path)
    for name in ("img_0000.png", "img_0001.png"):
        _replace(source, name)
    add_images(source, 4, 2, seed=10, shapes=(1, 1))
    summary = run_objects_pipeline(source, pool, "r2", {**IMAGES, "n_samples": 1}, SPEC)
    rows = Datapool(f"file://{pool}").snapshot().read(columns=[C.KEY, C.RUN_ID, C.SELECTED]).to_pylist()
    (picked,) = [r[C.KEY] for r in rows if r[C.RUN_ID] == "r2" and r[C.SELECTED]]
    gone = {s for s in ("img_0000", "img_0001") if f"{s}.png" != picked}
    after = _crops(source)
    assert gone and not any(_mine(after, s) for s in gone), "crops of a former picture were kept"
    crops = summary.objects["crops"]
    n_gone = sum(len(_mine(before, s)) for s in gone)
    assert (crops["replaced_removed"], crops["replaced_failed"], crops["stale_removed"]) == (n_gone, 0, 0)
    # The selected image has its crops (written again), the unchanged images keep theirs.
    assert {c for c in before if not any(_mine({c}, s) for s in gone)} <= after
    assert _mine(after, picked.removesuffix(".png"))


def _task_gone_and_replaced(uri: str, creds: Any = None) -> None:
    """Both tasks uploaded; a.png was cropped with cars and people, its predictions now have cars only, and no image
    of the run has people: its people crops went unpruned (only the tasks of the run's selected objects were).
    b.png, replaced and selected again but unreadable now, keeps its crop; c.png, replaced and not selected, loses
    its crop (its task folder found by listing, a prefix on object stores)."""
    from lightly_airflow.objects.crops import write_selected_crops
    from lightly_airflow.storage import filesystem, join_uri, write_bytes

    from .test_stale_crops import _crops as crops_of
    from .test_stale_crops import _objects, _photo

    spec = ObjectsSpec(tasks=("cars", "people"))
    for key, seed in (("a.png", 1), ("b.png", 2), ("c.png", 3)):
        write_bytes(_photo(seed), join_uri(uri, key), creds)
    first = write_selected_crops(_objects({("a.png", "cars"): 2, ("a.png", "people"): 2, ("b.png", "people"): 1,
                                           ("c.png", "cars"): 1}), spec, datasource_uri=uri, lightly_uri=uri,
                                 datasource_credentials=creds, lightly_credentials=creds)
    assert first["written"] == 6
    fs, path = filesystem(join_uri(uri, "b.png"), creds)
    fs.rm_file(path)
    again = write_selected_crops(_objects({("a.png", "cars"): 2, ("b.png", "cars"): 1}), spec, datasource_uri=uri,
                                 lightly_uri=uri, datasource_credentials=creds, lightly_credentials=creds,
                                 replaced=["c.png", "b.png"])
    assert (again["written"], again["failed"], again["stale_removed"], again["replaced_removed"]) == (2, 1, 2, 1)
    assert crops_of(uri, creds) == {"cars/a-0-png.png", "cars/a-1-png.png", "people/b-0-png.png"}


def test_crops_of_a_gone_task_and_of_replaced_images_are_removed_on_local_disk(tmp_path: Path) -> None:
    _task_gone_and_replaced(f"file://{tmp_path}")


def test_crops_of_a_gone_task_and_of_replaced_images_are_removed_on_s3(s3_bucket: Any) -> None:
    from lightly_airflow.storage import join_uri

    _task_gone_and_replaced(join_uri(s3_bucket.uri, "src"), s3_bucket.credentials)


def test_a_run_killed_after_its_crops_and_retried_says_the_crops_it_removed(tmp_path: Path,
                                                                               monkeypatch: Any) -> None:
    """The select task killed after its crops (before its staging files are removed) and retried: the retry writes
    the crops again and finds nothing stale (the first attempt removed it); its summary said 0 removed where the
    uninterrupted run says how many."""
    from lightly_airflow import pipeline

    source, pool, before = _first(tmp_path)
    old = _mine(before, "img_0000")
    _replace(source, "img_0000.png", [])
    real_remove = pipeline.remove_staging
    calls: list[int] = []

    def killed_once(*a: Any, **k: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Killed
        return real_remove(*a, **k)

    monkeypatch.setattr(pipeline, "remove_staging", killed_once)
    real_select = pipeline.select_and_commit

    def select_then_retry(**kwargs: Any) -> Any:
        try:
            real_select(**kwargs)
        except Killed:
            return real_select(**kwargs)
        raise AssertionError("not killed")

    monkeypatch.setattr(pipeline, "select_and_commit", select_then_retry)
    summary = run_objects_pipeline(source, pool, "r2", IMAGES, SPEC)
    assert summary.already_committed and len(calls) == 2
    assert _crops(source) == before - old
    assert summary.objects["crops"]["stale_removed"] == len(old)


def test_frames_of_a_replaced_video_keep_no_crop_of_its_former_frames(tmp_path: Path) -> None:
    """street.mp4 (5 frames, one tile each, all selected and cropped) is replaced by a 3-frame recording: run 2
    selects one frame. Its frames 3 and 4 no longer exist (tombstones, ``superseded``; their rows keep the former
    etag, so they are no changed file) and its other frames show other pixels: none keeps a crop of the former
    video but the frame selected again (its new crop)."""
    from video.test_objects import _run

    from lightly_airflow.video.synthetic import make_scene_video

    src, pool = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "street.mp4"), "astronaut", 5, seed=1)
    selection = {"n_samples": 5, "auto_tasks": [{"type": "TILING", "name": "tiles", "num_rows": 1, "num_cols": 1,
                                                  "overlap": 0}],
                 "strategies": [{"input": {"type": "EMBEDDINGS", "task": "tiles"}, "strategy": {"type": "DIVERSITY"}}]}
    _, _, first = _run(src, pool, "r1", selection)
    assert first.objects["crops"]["written"] == 5 and len(_crops(src)) == 5
    make_scene_video(str(src / "street.mp4"), "coffee", 3, seed=2)
    _, _, second = _run(src, pool, "r2", {**selection, "n_samples": 1})
    rows = Datapool(f"file://{pool}").snapshot().read(columns=[C.KEY, C.RUN_ID, C.SELECTED]).to_pylist()
    (picked,) = [r[C.KEY] for r in rows if r[C.RUN_ID] == "r2" and r[C.SELECTED]]
    assert _crops(src) == {f"tiles/{picked.removesuffix('.png')}-0-png.png"}
    assert second.objects["crops"]["replaced_removed"] == 4


def test_replaced_images_are_those_whose_selection_a_newer_row_ends() -> None:
    """As ``initial-tag`` ends a selection: another etag (or none now) or a tombstone; an unchanged or new file is
    no replaced one."""
    import pyarrow as pa

    from lightly_airflow.objects.run import replaced_images

    known = pa.table({C.KEY: ["same", "changed", "gone", "frame-3"], C.ETAG: ["e1", "e2", "e3", "v1"]})
    rows = pa.table({C.KEY: ["same", "changed", "gone", "frame-3", "new"], C.ETAG: ["e1", "e2b", None, "v1", "e4"],
                     C.STATUS: ["ok", "ok", "missing", "missing", "ok"],
                     C.STATUS_REASON: [None, None, None, "superseded: the video was replaced", None]})
    assert replaced_images(known, rows) == ["changed", "frame-3", "gone"]
    assert replaced_images(None, rows) == ["frame-3"]  # (no former files: the tombstones only)
