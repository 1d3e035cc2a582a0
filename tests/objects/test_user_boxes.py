"""What real users' prediction files hold (session 62 audit): boxes that overflow when padded, files rejected for
one bad box, EXIF-rotated photos, crop files that cannot be written. Each gives clear counts, never a silent loss
of objects and never the loss of an image's other objects."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.objects.boxes import crop_box
from lightly_airflow.objects.crops import crop_relpath, write_selected_crops
from lightly_airflow.objects.run import load_run_objects, summary
from lightly_airflow.objects.shard import embed_objects_shard
from lightly_airflow.objects.spec import ObjectsSpec, write_spec
from lightly_airflow.storage import read_parquet


class _MeanColour:
    """A stand-in encoder: a crop's vector is its mean colour."""

    model_id, dim, input_size = "mean-colour", 3, 16

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean(dim=(2, 3))


def _run(source: Path, pool: Path, predictions: dict[str, list[dict[str, object]]], padding: float = 0.0) -> dict:
    """Object task ``det`` with ``predictions`` per image key of ``source``; the shard's object counts."""
    from lightly_airflow.datasource import list_files, write_manifests

    folder = source / ".lightly" / "predictions"
    (folder / "det").mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text(json.dumps(["det"]))
    (folder / "det" / "schema.json").write_text(json.dumps(
        {"task_type": "object-detection", "categories": [{"id": 0, "name": "thing"}]}))
    for key, preds in predictions.items():
        (folder / "det" / f"{key.rsplit('.', 1)[0]}.json").write_text(json.dumps({"file_name": key,
                                                                                   "predictions": preds}))
    listing = pa.Table.from_batches(list(list_files(f"file://{source}")))
    (manifest,) = write_manifests(listing, f"file://{pool}", "run-1", datasource_uri=f"file://{source}",
                                  lightly_uri=f"file://{source}")
    write_spec(ObjectsSpec(tasks=("det",), padding=padding), staging.run_dir(f"file://{pool}", "run-1"))
    counts = embed_objects_shard(manifest, encoder=_MeanColour(), device=torch.device("cpu"), batch_size=4,
                                 num_workers=1)
    assert counts is not None
    counts["rows"] = read_parquet(staging.sibling_uri(manifest, staging.OBJECTS))
    counts["summary"] = summary(load_run_objects([manifest]), None, ObjectsSpec(tasks=("det",)))
    return counts


def _box(bbox: list[float], category: int = 0) -> dict[str, object]:
    return {"category_id": category, "bbox": bbox, "score": 0.9}


def test_a_box_whose_padded_edge_overflows_is_clipped_not_fatal_to_its_image(tmp_path: Path) -> None:
    """JSON and the prediction check allow any finite number: a 1.5e308-wide box padded by half reaches infinity,
    which ``math.ceil`` refused (``OverflowError``): the image lost all its objects and was counted as an
    unreadable image. Now the edge is clipped before rounding: the box covers the image, the other box stays."""
    assert crop_box((0, 0, 1.5e308, 10), 0.5, 64, 48) == (0, 0, 64, 13)
    assert crop_box((-1.5e308, 5, 1.5e308 + 20, 10), 0.5, 64, 48) == (0, 2, 64, 16)
    source = tmp_path / "src"
    source.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / "a.png")
    counts = _run(source, tmp_path / "pool", {"a.png": [_box([4, 4, 10, 10]), _box([0, 0, 1.5e308, 10])]},
                  padding=0.5)
    assert (counts["objects"], counts["images_failed"]) == (2, 0)
    assert counts["rows"].column(C.OBJECT_CROP_BOX).to_pylist() == [[1, 1, 16, 16], [0, 0, 64, 13]]


def test_a_prediction_file_rejected_for_one_bad_box_is_counted_and_named(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A prediction file with one problem (an unknown category id, a NaN or negative-width box, a file that is not
    JSON) gives its image no objects, as it gives it no scores. The object pass dropped such images' objects
    without a word (only the predictions stage listed the problem); now it counts the files
    (``prediction_files_rejected``, summed into the run summary) and names them with their first problem."""
    source = tmp_path / "src"
    source.mkdir()
    for key in ("good.png", "bad.png", "nan.png", "broken.png"):
        Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(source / key)
    preds = {"good.png": [_box([1, 1, 10, 10])], "bad.png": [_box([1, 1, 10, 10]), _box([2, 2, 5, 5], category=7)],
             "nan.png": [_box([1, 1, -4, 10])]}
    (source / ".lightly" / "predictions" / "det").mkdir(parents=True)
    (source / ".lightly" / "predictions" / "det" / "broken.json").write_text('{"file_name": "broken.png", "predi')
    caplog.set_level(logging.WARNING, logger="lightly_airflow.objects.shard")
    counts = _run(source, tmp_path / "pool", preds)
    assert counts["objects"] == 1 and counts["rows"].column(C.PARENT_KEY).to_pylist() == ["good.png"]
    assert counts["prediction_files_rejected"] == 3 and counts["summary"]["prediction_files_rejected"] == 3
    text = caplog.text
    assert "3 prediction files" in text and ".lightly/predictions/det/bad.json: predictions[1].category_id: unknown " \
        "category id 7" in text and ".lightly/predictions/det/nan.json: predictions[0].bbox" in text


def test_boxes_of_an_exif_rotated_photo_are_in_its_upright_pixels(tmp_path: Path) -> None:
    """A phone photo stored 64 x 48 with EXIF orientation 6 is shown 48 x 64: its boxes are read in the upright
    picture's pixels (as the metadata pass's width/height, the UI and video frames with a display matrix), so a
    box below the stored height is inside, and its crop is the upright picture's pixels."""
    source = tmp_path / "src"
    source.mkdir()
    stored = np.zeros((48, 64, 3), np.uint8)
    stored[:, :8] = 250  # the stored left columns: the upright picture's top rows (orientation 6 turns it clockwise)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(source / "phone.png", exif=exif.tobytes())
    counts = _run(source, tmp_path / "pool", {"phone.png": [_box([0, 0, 48, 8]), _box([0, 56, 48, 8])]})
    assert (counts["objects"], counts["boxes_outside_image"]) == (2, 0)
    means = np.asarray(counts["rows"].column(C.EMBEDDING).to_pylist())
    assert means[0].min() > 240 and means[1].max() < 10  # the bright top rows, the dark bottom rows


def test_a_crop_file_that_cannot_be_written_is_counted_and_the_others_are_written(tmp_path: Path) -> None:
    """A crop file that cannot be written (here a folder stands where the file goes; on a store: a refused
    upload) raised out of the writing threads: the run summary said 0 written and -1 failed, whatever was
    written. Now that crop counts as failed and every other crop is written and counted."""
    source = tmp_path / "src"
    source.mkdir()
    for key in ("a.png", "b.png"):
        Image.fromarray(np.full((48, 64, 3), 50, np.uint8)).save(source / key)
    objects = pa.table({C.PARENT_KEY: ["a.png", "a.png", "b.png"], C.OBJECT_TASK: ["det"] * 3,
                        C.OBJECT_INDEX: pa.array([0, 1, 0], pa.int64()),
                        C.OBJECT_CROP_BOX: pa.array([[0, 0, 8, 8], [4, 4, 8, 8], [1, 1, 5, 5]], pa.list_(pa.int64())),
                        C.OBJECT_SELECTED: [True, True, True]})
    blocked = source / ".lightly" / crop_relpath("a.png", "det", 0)
    blocked.mkdir(parents=True)
    counts = write_selected_crops(objects, ObjectsSpec(tasks=("det",)), datasource_uri=f"file://{source}",
                                  lightly_uri=f"file://{source}")
    assert (counts["written"], counts["failed"]) == (2, 1)
    for key, index in (("a.png", 1), ("b.png", 0)):
        assert (source / ".lightly" / crop_relpath(key, "det", index)).is_file()


def test_a_task_whose_files_were_all_rejected_says_so_when_selecting(tmp_path: Path) -> None:
    """A schema.json numbering its categories from 1 while the model writes 0 rejects every prediction file: the
    select task's error only suggested a misspelled task; now it counts the rejected files."""
    from lightly_airflow.objects.selection import object_set

    source = tmp_path / "src"
    source.mkdir()
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(source / "a.png")
    pool = tmp_path / "pool"
    counts = _run(source, pool, {"a.png": [_box([1, 1, 10, 10], category=3)]})
    assert counts["objects"] == 0
    objects = load_run_objects([next(iter((pool / "_staging").glob("*/manifest/*.parquet"))).as_uri()])
    with pytest.raises(ValueError, match=r"no objects of task 'det' in this run \(1 prediction files had a problem"):
        object_set(["a.png"], objects, "det", path="strategies[0].input")


def test_images_differing_in_the_extension_s_case_get_their_own_crop_files(tmp_path: Path) -> None:
    """``p.JPG`` and ``p.jpg`` are two files on a case-sensitive store; the crop path lowercased the extension, so
    the second image's crop replaced the first's without a word."""
    source = tmp_path / "src"
    source.mkdir()
    for key, value in (("p.JPG", 30), ("p.jpg", 220)):
        Image.fromarray(np.full((48, 64, 3), value, np.uint8)).save(source / key, format="PNG")
    objects = pa.table({C.PARENT_KEY: ["p.JPG", "p.jpg"], C.OBJECT_TASK: ["det"] * 2,
                        C.OBJECT_INDEX: pa.array([0, 0], pa.int64()),
                        C.OBJECT_CROP_BOX: pa.array([[0, 0, 8, 8]] * 2, pa.list_(pa.int64())),
                        C.OBJECT_SELECTED: [True, True]})
    counts = write_selected_crops(objects, ObjectsSpec(tasks=("det",)), datasource_uri=f"file://{source}",
                                  lightly_uri=f"file://{source}", workers=1)
    assert counts["written"] == 2
    files = sorted((source / ".lightly" / "crops" / "det").glob("*.png"))
    assert [f.name for f in files] == ["p-0-JPG.png", "p-0-jpg.png"]
    assert [int(np.asarray(Image.open(f)).mean()) for f in files] == [30, 220]
