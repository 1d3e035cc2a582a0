"""COCO annotations of a tag's images: the boxes of their objects (object-level runs).

:func:`lightly_airflow.datapool.export.coco_images` builds the ``images`` (one per image of the tag, in pick
order: for an object-level run, the images containing the selected objects); this adds, per image, every
object the run that processed the image stored for it: ``bbox`` ``[x, y, w, h]`` as predicted, ``area``,
``score``, ``task``, ``object_id``, and one category per (task, category name) (an auto task's objects under
the task's name).
"""

from __future__ import annotations

from typing import Any

from lightly_airflow import columns as C


def add_object_annotations(doc: dict[str, Any], pool: Any, images: list[tuple[str, str | None]]) -> dict[str, Any]:
    """Fill ``doc['annotations']`` and ``doc['categories']`` for ``images`` (``(key, run_id)`` in the order of
    ``doc['images']``, ids from 1); a pool without object rows adds nothing."""
    from lightly_airflow.objects.run import objects_of_images

    image_id = {(key, run): i for i, (key, run) in enumerate(images, start=1)}
    objects = objects_of_images(pool, images, [C.KEY, C.PARENT_KEY, C.RUN_ID, C.OBJECT_TASK, C.OBJECT_INDEX,
                                               C.OBJECT_BBOX, C.OBJECT_CATEGORY, C.OBJECT_SCORE])
    if objects is None:
        return doc  # no object-level run has committed to this pool
    rows = objects.to_pylist()
    rows.sort(key=lambda r: (image_id[(r[C.PARENT_KEY], r[C.RUN_ID])], r[C.OBJECT_TASK], r[C.OBJECT_INDEX]))
    categories: dict[tuple[str, str], int] = {}
    for r in rows:
        cat = (r[C.OBJECT_TASK], r[C.OBJECT_CATEGORY] or r[C.OBJECT_TASK])
        if cat not in categories:
            categories[cat] = len(categories) + 1
            doc["categories"].append({"id": categories[cat], "name": cat[1], "supercategory": cat[0]})
        x, y, w, h = r[C.OBJECT_BBOX]
        ann: dict[str, Any] = {
            "id": len(doc["annotations"]) + 1, "image_id": image_id[(r[C.PARENT_KEY], r[C.RUN_ID])],
            "category_id": categories[cat], "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
            "task": r[C.OBJECT_TASK], "object_id": r[C.KEY],
        }
        if r[C.OBJECT_SCORE] is not None:
            ann["score"] = r[C.OBJECT_SCORE]
        doc["annotations"].append(ann)
    return doc
