"""Re-cropping an image whose predictions now have fewer objects removes its former higher-index crop files (they
were left beside the new ones: a folder synced to a labelling tool held crops of boxes that no longer exist), and
removes nothing the run writes, another image's crop or a file that is no crop."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.objects.crops import crop_relpath, write_selected_crops
from lightly_airflow.objects.spec import ObjectsSpec
from lightly_airflow.storage import filesystem, join_uri, write_bytes

SPEC = ObjectsSpec(tasks=("cars", "people"))


def _photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _objects(boxes: dict[tuple[str, str], int]) -> pa.Table:
    """``n`` selected objects per (parent key, task), the i-th box at (4i, 4i) of 20x16 pixels."""
    rows = [(p, t, i) for (p, t), n in boxes.items() for i in range(n)]
    return pa.table({
        C.PARENT_KEY: [p for p, _, _ in rows], C.OBJECT_TASK: [t for _, t, _ in rows],
        C.OBJECT_INDEX: pa.array([i for _, _, i in rows], pa.int64()),
        C.OBJECT_CROP_BOX: pa.array([[4 * i, 4 * i, 20, 16] for _, _, i in rows], pa.list_(pa.int64())),
        C.OBJECT_SELECTED: [True] * len(rows),
    })


def _crops(uri: str, creds: Any) -> set[str]:
    fs, root = filesystem(join_uri(uri, ".lightly", "crops"), creds)
    return {p[len(root.rstrip("/")) + 1:] for p in fs.find(root)}


def _run(uri: str, boxes: dict[tuple[str, str], int], creds: Any = None) -> dict[str, Any]:
    return write_selected_crops(_objects(boxes), SPEC, datasource_uri=uri, lightly_uri=uri,
                                datasource_credentials=creds, lightly_credentials=creds)


def _check(uri: str, creds: Any = None) -> None:
    for key, seed in (("a/img_1.jpg", 1), ("a/img_1-3.jpg", 2), ("a/img_1.png", 3)):
        write_bytes(_photo(seed), join_uri(uri, key), creds)
    before = {("a/img_1.jpg", "cars"): 4, ("a/img_1.jpg", "people"): 2, ("a/img_1-3.jpg", "cars"): 2,
              ("a/img_1.png", "cars"): 3}
    assert _run(uri, before, creds)["written"] == 11
    other = join_uri(uri, ".lightly", "crops", "cars", "a", "img_1-9-jpg.png.txt")  # no crop: never removed
    write_bytes(b"note", other, creds)
    everything = _crops(uri, creds)
    assert len(everything) == 12

    # img_1.jpg is re-cropped with 2 cars and no people: its crops cars 2, 3 and people 0, 1 are stale. The
    # neighbours whose names share its prefix (img_1-3.jpg's, img_1.png's) and the note stay.
    after = {("a/img_1.jpg", "cars"): 2, ("a/img_1-3.jpg", "cars"): 2, ("a/img_1-3.jpg", "people"): 1}
    counts = _run(uri, after, creds)
    gone = {crop_relpath("a/img_1.jpg", t, i)[len("crops/"):] for t, i in (("cars", 2), ("cars", 3),
                                                                           ("people", 0), ("people", 1))}
    new = {crop_relpath("a/img_1-3.jpg", "people", 0)[len("crops/"):]}
    assert _crops(uri, creds) == (everything - gone) | new
    assert (counts["written"], counts["failed"], counts["stale_removed"], counts["stale_failed"]) == (5, 0, 4, 0)

    # A retry of the same run removes nothing: it never removes what it writes.
    again = _run(uri, after, creds)
    assert (again["written"], again["stale_removed"]) == (5, 0)
    assert _crops(uri, creds) == (everything - gone) | new

    # An image that cannot be read now keeps its crops (nothing is removed on a partial picture of it).
    fs, path = filesystem(join_uri(uri, "a/img_1.png"), creds)
    fs.rm_file(path)
    broken = _run(uri, {("a/img_1.png", "cars"): 1}, creds)
    assert (broken["failed"], broken["stale_removed"]) == (1, 0)
    assert _crops(uri, creds) == (everything - gone) | new


def test_stale_crops_of_a_recropped_image_are_removed_on_local_disk(tmp_path: Path) -> None:
    _check(f"file://{tmp_path}")


def test_stale_crops_of_a_recropped_image_are_removed_on_s3(s3_bucket: Any) -> None:
    _check(join_uri(s3_bucket.uri, "src"), s3_bucket.credentials)


def test_an_image_replaced_with_fewer_objects_keeps_only_its_current_crops(tmp_path: Path) -> None:
    """The reported case end to end: an image replaced under its key, its predictions now one box of four, is
    selected again by a ``process_all`` run; its crops 1 to 3 of the former boxes were left beside the new crop 0."""
    import json

    from object_pool import run_objects_pipeline

    from lightly_airflow.objects.demo_data import TASK, add_images

    source, pool = tmp_path / "src", tmp_path / "pool"
    add_images(source, 0, 4, seed=5, shapes=(3, 4))
    spec = ObjectsSpec(tasks=(TASK,), padding=0.1, upload=True, selection_tasks=(TASK,))
    selection = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    run_objects_pipeline(source, pool, "r1", selection, spec)
    crops = source / ".lightly" / "crops" / TASK
    first = {p.name for p in crops.glob("*.png")}
    assert {f"img_0000-{i}-png.png" for i in range(4)} <= first

    preds = source / ".lightly" / "predictions" / TASK / "img_0000.json"
    data = json.loads(preds.read_text())
    preds.write_text(json.dumps({**data, "predictions": data["predictions"][:1]}))
    with Image.open(source / "img_0000.png") as img:
        img.load()
        img.putpixel((0, 0), (1, 2, 3))  # a new version of the image under its key
        img.save(source / "img_0000.png")
    summary = run_objects_pipeline(source, pool, "r2", selection, spec, process_all=True)
    assert {p.name for p in crops.glob("*.png")} == first - {f"img_0000-{i}-png.png" for i in (1, 2, 3)}
    # (written: the new crop 0 and those of the images kept selected, whose objects stay selected: 1 + 10 boxes)
    assert (summary.objects["crops"]["written"], summary.objects["crops"]["stale_removed"]) == (
        summary.objects["selected"], 3) == (11, 3)
