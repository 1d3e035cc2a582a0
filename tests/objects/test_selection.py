"""Object-level selection against the slow reference of the documented objective."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.objects.selection import ObjectDiversity, object_set, reference_object_diversity
from lightly_airflow.selection import select


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _data(n: int, seed: int, dim: int = 16, max_objects: int = 5, empty: float = 0.1):
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(6, dim)))
    keys = [f"img_{i:03d}.png" for i in range(n)]
    per_image, rows = [], []
    for key in keys:
        k = 0 if rng.random() < empty else int(rng.integers(1, max_objects + 1))
        objs = _unit(centres[rng.integers(0, 6, size=k)] + 0.3 * rng.normal(size=(k, dim))) if k else np.zeros((0, dim), np.float32)
        per_image.append(objs)
        for j, o in enumerate(objs):
            rows.append({C.KEY: C.object_id(key, "det", j), C.PARENT_KEY: key, C.OBJECT_TASK: "det",
                         C.EMBEDDING: o.tolist()})
    objects = pa.Table.from_pylist(rows, schema=pa.schema([
        (C.KEY, pa.string()), (C.PARENT_KEY, pa.string()), (C.OBJECT_TASK, pa.string()),
        (C.EMBEDDING, pa.list_(pa.float32()))]))
    image_emb = _unit(rng.normal(size=(n, dim)))
    candidates = pa.table({C.KEY: keys, C.EMBEDDING: pa.array(image_emb.tolist(), pa.list_(pa.float32()))})
    return keys, per_image, objects, candidates


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_diversity_matches_reference(seed: int) -> None:
    keys, per_image, objects, candidates = _data(60, seed)
    config = {"n_samples": 20, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}]}
    result = select(candidates, config, objects=objects)
    assert list(result.indices) == reference_object_diversity(per_image, None, 20)
    # Images without objects come last: never among the first picks while images with objects remain.
    assert all(len(per_image[i]) for i in result.indices)
    report = result.objectives["strategies[0]"]
    assert report["images_without_objects"] == sum(len(o) == 0 for o in per_image)
    assert report["task"] == "det" and report["objects"] == sum(len(o) for o in per_image)
    assert result.pick_details is not None and "selection.object_distance" in result.pick_details.column_names


def test_preselected_images_inform_their_objects() -> None:
    keys, per_image, objects, candidates = _data(50, 7)
    pre_keys = keys[:10]
    pre_objects = objects.filter(pa.compute.is_in(objects.column(C.PARENT_KEY), pa.array(pre_keys)))
    cand = candidates.slice(10)
    cand_objects = objects.filter(pa.compute.invert(pa.compute.is_in(objects.column(C.PARENT_KEY), pa.array(pre_keys))))
    config = {"n_samples": 15, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}]}
    result = select(cand, config, objects=cand_objects, preselected_objects=pre_objects)
    pre = np.concatenate([o for o in per_image[:10] if len(o)])
    expected = reference_object_diversity(per_image[10:], pre, 15)
    assert list(result.indices) == expected
    assert expected != reference_object_diversity(per_image[10:], None, 15)  # the context changed the order


def test_combined_with_weights_matches_reference_scores() -> None:
    keys, per_image, objects, candidates = _data(40, 3)
    rng = np.random.default_rng(3)
    w = rng.random(40)
    candidates = candidates.append_column(C.score_column("det", "s"), pa.array(w))
    config = {"n_samples": 10, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "SCORES", "task": "det", "score": "s"}, "strategy": {"type": "WEIGHTS", "strength": 2}}]}
    result = select(candidates, config, objects=objects)
    # Reference: recompute every candidate's product objective at every pick.
    selected: list[np.ndarray] = []
    order: list[int] = []
    for _ in range(10):
        scores = []
        for i, objs in enumerate(per_image):
            if i in order:
                scores.append(-np.inf)
                continue
            ds = [min([2.0] + [float(np.linalg.norm(o.astype(np.float64) - s)) for s in selected]) for o in objs]
            mean = sum(ds) / len(ds) if ds else 0.0
            scores.append(np.log(max(min(mean / 2, 1.0), 1e-6)) + 2 * np.log(max(w[i] / w.max(), 1e-6)))
        best = int(np.argmax(scores))
        order.append(best)
        selected.extend(per_image[best].astype(np.float64))
    assert list(result.indices) == order


def test_minimum_distance_stop_and_missing_task() -> None:
    keys, per_image, objects, candidates = _data(30, 5)
    objs = object_set(keys, objects, "det")
    div = ObjectDiversity(objs, 1.0, minimum_distance=0.5)
    config = {"n_samples": 30, "strategies": [{"input": {"type": "EMBEDDINGS", "task": "det"},
                                               "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.5}}]}
    result = select(candidates, config, objects=objects)
    assert result.stop_reason == "minimum_distance"
    for i in result.indices:
        assert not div.stops_before(int(i))
        div.pick(int(i))
    with pytest.raises(ValueError, match="no objects of task 'cars'"):
        select(candidates, {"n_samples": 3, "strategies": [
            {"input": {"type": "EMBEDDINGS", "task": "cars"}, "strategy": {"type": "DIVERSITY"}}]}, objects=objects)


def test_object_typicality_prefers_images_of_typical_objects() -> None:
    from lightly_airflow.objects.selection import object_typicality
    from lightly_airflow.selection.objectives import typicality

    keys, per_image, objects, candidates = _data(30, 9)
    objs = object_set(keys, objects, "det")
    typ = object_typicality(objs, 5)
    every = typicality(objs.x, 5)
    for i, o in enumerate(per_image):
        mine = every[objs.owner == i]
        assert typ[i] == (pytest.approx(mine.mean()) if len(o) else 0.0)
    result = select(candidates, {"n_samples": 5, "strategies": [
        {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "TYPICALITY", "num_nearest_neighbors": 5}}]},
        objects=objects)
    assert list(result.indices) == list(np.argsort(-typ, kind="stable")[:5])


def test_a_task_without_objects_says_why_when_the_objects_pass_dropped_them() -> None:
    """When every box of the task lay outside its image, or the task's boxes were on video frames that did not
    decode, the select task's error says so (the run summary's counts) instead of only suggesting the task is
    misspelled."""
    keys, _, objects, candidates = _data(10, 3)
    empty = objects.slice(0, 0).replace_schema_metadata({b"lightly.boxes_outside_image": b"7",
                                                         b"lightly.video_frames_failed": b"0"})
    with pytest.raises(ValueError, match=r"no objects of task 'det' in this run \(7 predicted boxes had no area "
                                         r"inside their images\): it must be"):
        object_set(keys, empty, "det", path="strategies[0].input")
    frames = empty.replace_schema_metadata({b"lightly.video_frames_failed": b"120"})
    with pytest.raises(ValueError, match=r"\(120 video frames with boxes did not decode\)"):
        select(candidates, {"n_samples": 3, "strategies": [
            {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}]}, objects=frames)
