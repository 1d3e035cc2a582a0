"""End to end on object level: a DAG run selects images by the crops of their detected objects."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow.compute as pc
import pytest
from PIL import Image
from test_lightly_datapool_run import _rows_of, _run  # the example DAG's runner, every Param at its default

from lightly_airflow import columns as C
from lightly_airflow.objects.crops import crop_relpath
from lightly_airflow.objects.demo_data import TASK, add_images
from lightly_airflow.objects.selection import reference_object_diversity

SELECTION = {
    "n_samples": 6,
    "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}],
}
WORKER = {"object_level": {"padding": 0.1}}


def _objects_by_image(rows, keys: list[str]) -> list[np.ndarray]:
    """Each image's unit crop embeddings, in ``keys`` order (objects in their index order)."""
    objs = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).sort_by([(C.PARENT_KEY, "ascending"),
                                                                          (C.OBJECT_INDEX, "ascending")])
    by: dict[str, list[np.ndarray]] = {}
    for parent, emb in zip(objs.column(C.PARENT_KEY).to_pylist(), objs.column(C.EMBEDDING).to_pylist(), strict=True):
        v = np.asarray(emb, np.float64)
        by.setdefault(parent, []).append((v / np.linalg.norm(v)).astype(np.float32))
    return [np.stack(by[k]) if k in by else np.zeros((0, 1280), np.float32) for k in keys]


@pytest.mark.slow
def test_object_level_diversity_over_two_runs(airflow_db, dagbag, tmp_path) -> None:
    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    first = add_images(source, 0, 24, seed=1)
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}",
            "selection_config": SELECTION, "worker_config": WORKER}
    run1, states = _run(dag, conf, datetime(2026, 6, 1, tzinfo=UTC))
    assert str(run1.state) == "success", states
    pool = Datapool(f"file://{pool_dir}")
    rows1 = _rows_of(pool, run1.run_id)

    images1 = rows1.filter(pc.is_null(rows1.column(C.PARENT_KEY)))
    objects1 = rows1.filter(pc.is_valid(rows1.column(C.PARENT_KEY)))
    assert sorted(images1.column(C.KEY).to_pylist()) == sorted(first)
    # One object row per predicted box, linked to its image (key, etag), with its box and category.
    assert objects1.num_rows == sum(len(p) for p in first.values())
    etag = dict(zip(images1.column(C.KEY).to_pylist(), images1.column(C.ETAG).to_pylist(), strict=True))
    for row in objects1.to_pylist():
        pred = first[row[C.PARENT_KEY]][row[C.OBJECT_INDEX]]
        assert row[C.KEY] == C.object_id(row[C.PARENT_KEY], TASK, row[C.OBJECT_INDEX])
        assert row[C.ETAG] == etag[row[C.PARENT_KEY]]
        assert row[C.OBJECT_BBOX] == [float(v) for v in pred["bbox"]]
        assert row[C.OBJECT_SCORE] == pred["score"] and row[C.OBJECT_CATEGORY]
        assert not row[C.SELECTED] and row[C.METADATA_PREFIX + "lightly.width"] == row[C.OBJECT_CROP_BOX][2]

    # The selection is the documented objective's greedy order (slow reference on the pool's crop embeddings).
    keys1 = sorted(first)  # candidates are in key order
    picked1 = images1.filter(images1.column(C.SELECTED)).sort_by(C.PICK_RANK).column(C.KEY).to_pylist()
    expected = [keys1[i] for i in reference_object_diversity(_objects_by_image(objects1, keys1), None, 6)]
    assert picked1 == expected
    assert all(first[k] for k in picked1)  # images with objects only (18 of 24 have some)

    # Selected objects' crops are PNGs of the padded boxes under .lightly/crops/<task>/.
    chosen = objects1.filter(objects1.column(C.OBJECT_SELECTED))
    assert sorted(set(chosen.column(C.PARENT_KEY).to_pylist())) == sorted(picked1)
    for row in chosen.to_pylist():
        path = source / ".lightly" / crop_relpath(row[C.PARENT_KEY], TASK, row[C.OBJECT_INDEX])
        with Image.open(path) as crop:
            assert crop.size == tuple(row[C.OBJECT_CROP_BOX][2:])
    written = list((source / ".lightly" / "crops" / TASK).glob("*.png"))
    assert len(written) == chosen.num_rows

    # The report shows the selected images with their objects' boxes and crops.
    (figure,) = list((pool_dir / "_reports").glob("*/objects.png"))
    with Image.open(figure) as fig:
        assert fig.height >= 6 * 128
    page = (figure.parent / "index.html").read_text()
    assert "Objects of the selected images" in page
    assert "The first 8 selected images with objects (pick order)" in page  # (the figure's cap, said)

    # COCO export of the run's tag: the images containing the selected objects, with their boxes.
    from lightly_airflow.datapool.export import export_tag

    tag1 = next(t["name"] for t in pool.tags() if t["run_id"] == run1.run_id)
    coco = export_tag(pool, tag1, fmt="coco")
    assert [img["file_name"] for img in coco["images"]] == picked1
    assert [img["coco_url"] for img in coco["images"]] == [f"file://{source}/{k}" for k in picked1]
    for img in coco["images"]:  # (COCO requires each image's size: the file's own, as the metadata step read it)
        with Image.open(f"{source}/{img['file_name']}") as im:
            assert (img["width"], img["height"]) == im.size
    assert len(coco["annotations"]) == chosen.num_rows
    boxes = {(a["image_id"], tuple(a["bbox"])) for a in coco["annotations"]}
    assert boxes == {(picked1.index(p) + 1, tuple(float(v) for v in pred["bbox"]))
                     for p in picked1 for pred in first[p]}

    # Run 2: only the new images' objects are added; run 1's selected objects are the context.
    second = add_images(source, 24, 16, seed=2)
    run2, states = _run(dag, conf, datetime(2026, 6, 2, tzinfo=UTC))
    assert str(run2.state) == "success", states
    rows2 = _rows_of(pool, run2.run_id)
    objects2 = rows2.filter(pc.is_valid(rows2.column(C.PARENT_KEY)))
    assert set(objects2.column(C.PARENT_KEY).to_pylist()) == {k for k, p in second.items() if p}
    assert objects2.num_rows == sum(len(p) for p in second.values())
    images2 = rows2.filter(pc.is_null(rows2.column(C.PARENT_KEY)))
    keys2 = sorted(second)
    picked2 = images2.filter(images2.column(C.SELECTED)).sort_by(C.PICK_RANK).column(C.KEY).to_pylist()
    pre = np.concatenate([o for o in _objects_by_image(objects1, picked1) if len(o)])
    expected2 = [keys2[i] for i in reference_object_diversity(_objects_by_image(objects2, keys2), pre, 6)]
    assert picked2 == expected2
    assert {t["name"]: t["count"] for t in pool.tags()}[C.INITIAL_TAG] == 12  # images only, never objects


@pytest.mark.slow
def test_object_metadata_keys_select_in_a_run(airflow_db, dagbag, tmp_path) -> None:
    """A METADATA input on the crops' metric means (``objects.<task>.lightly.width``, docs/objects.md) through the
    whole DAG: the first task accepts it (it used to refuse it as custom metadata missing from schema.json) and
    the THRESHOLD keeps only images whose objects are on average wider than 20 px."""
    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    add_images(source, 0, 16, seed=3)
    key = f"objects.{TASK}.lightly.width"
    selection = {"n_samples": 4, "strategies": [
        {"input": {"type": "METADATA", "key": key}, "strategy": {"type": "THRESHOLD", "threshold": 20,
                                                                 "operation": "BIGGER"}},
        *SELECTION["strategies"]]}
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}",
            "selection_config": selection, "worker_config": WORKER}
    run, states = _run(dag, conf, datetime(2026, 6, 2, tzinfo=UTC))
    assert str(run.state) == "success", states
    rows = _rows_of(Datapool(f"file://{pool_dir}"), run.run_id)
    objects = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).to_pylist()
    images = rows.filter(pc.is_null(rows.column(C.PARENT_KEY)))
    picked = images.filter(images.column(C.SELECTED)).column(C.KEY).to_pylist()
    assert len(picked) == 4
    for k in picked:
        widths = [o[C.METADATA_PREFIX + "lightly.width"] for o in objects if o[C.PARENT_KEY] == k]
        assert widths and sum(widths) / len(widths) > 20
    wide = {k for k in images.column(C.KEY).to_pylist()
            if (w := [o[C.METADATA_PREFIX + "lightly.width"] for o in objects if o[C.PARENT_KEY] == k])
            and sum(w) / len(w) > 20}
    assert len(wide) < images.num_rows  # (the threshold excludes some images)
