"""Boxes computed from keypoints and the corner-format check (session 63 audit): a keypoint prediction without
``bbox`` gets the keypoints' extent ``[x0, y0, x1 - x0, y1 - y0]``, which cannot be corners written where Lightly
has a width and a height, yet a pose with a keypoint past the image's edge (a limb out of frame) read as "boxes
that look like corners" and the run told the user to rewrite a file that was right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from lightly_airflow import staging
from lightly_airflow.objects.run import load_run_objects, summary
from lightly_airflow.objects.shard import embed_objects_shard
from lightly_airflow.objects.spec import ObjectsSpec, write_spec


class _MeanColour:
    model_id, dim, input_size = "mean-colour", 3, 16

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean(dim=(2, 3))


def _pose_run(tmp_path: Path, predictions: list[dict[str, object]]) -> dict:
    """One 64x48 image with keypoint task ``pose`` predictions; the shard's counts and the run summary."""
    from lightly_airflow.datasource import list_files, write_manifests

    source, pool = tmp_path / "src", tmp_path / "pool"
    folder = source / ".lightly" / "predictions" / "pose"
    folder.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / "a.png")
    (folder.parent / "tasks.json").write_text(json.dumps(["pose"]))
    (folder / "schema.json").write_text(json.dumps({"task_type": "keypoint-detection",
                                                    "categories": [{"id": 0, "name": "person"}]}))
    (folder / "a.json").write_text(json.dumps({"file_name": "a.png", "predictions": predictions}))
    listing = pa.Table.from_batches(list(list_files(f"file://{source}")))
    (manifest,) = write_manifests(listing, f"file://{pool}", "run-1", datasource_uri=f"file://{source}",
                                  lightly_uri=f"file://{source}")
    spec = ObjectsSpec(tasks=("pose",))
    write_spec(spec, staging.run_dir(f"file://{pool}", "run-1"))
    counts = embed_objects_shard(manifest, encoder=_MeanColour(), device=torch.device("cpu"), batch_size=4,
                                 num_workers=1)
    assert counts is not None
    return {**counts, "summary": summary(load_run_objects([manifest]), None, spec)}


def test_a_pose_reaching_past_the_edge_is_clipped_not_called_corners(tmp_path: Path) -> None:
    """Keypoints (10, 10) and (70, 30) on a 64-pixel-wide image: the box (10, 10, 60, 20) reaches 6 pixels past the
    right edge (clipped, counted) and also "fits as corners" (10 < 60, 10 < 20): it was flagged as corner-format
    with the fix "write [x0, y0, x1 - x0, y1 - y0]". Now only the clipped box is counted and noted."""
    pose = {"category_id": 0, "keypoints": [10, 10, 0.9, 70, 30, 0.8], "score": 0.9}
    counts = _pose_run(tmp_path, [pose])
    assert counts["objects"] == 1 and counts["boxes_clipped"] == 1
    assert counts["images_with_corner_looking_boxes"] == 0
    notes = counts["summary"]["notes"]
    assert len(notes) == 1 and "1 predicted boxes reach more than a pixel past" in notes[0]


def test_a_keypoint_predictions_own_bbox_is_still_checked_as_corners(tmp_path: Path) -> None:
    """A keypoint prediction that gives its ``bbox`` is the user's box, as a detection's: corners there are
    flagged as before."""
    pose = {"category_id": 0, "keypoints": [12, 12, 0.9, 20, 14, 0.8], "bbox": [10, 10, 60, 20], "score": 0.9}
    counts = _pose_run(tmp_path, [pose])
    assert (counts["boxes_clipped"], counts["images_with_corner_looking_boxes"]) == (1, 1)
