"""Object-level selection against the slow reference of the documented objective."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.objects.selection import (
    ObjectDiversity,
    ObjectSet,
    nearest_distances,
    object_set,
    reference_object_diversity,
)
from lightly_airflow.selection import select
from lightly_airflow.selection.arrays import squared_norms


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _data(n: int, seed: int, dim: int = 16, max_objects: int = 5, empty: float = 0.1, spread: float = 0.3,
          copies: float = 0.0, centres: int = 6):
    """``centres``: clusters of objects; ``copies``: the fraction of images whose objects copy an earlier image's,
    half exactly (ties), half with noise of 3e-7 per coordinate (near-duplicates: distances that nearly tie)."""
    rng = np.random.default_rng(seed)
    centre = _unit(rng.normal(size=(centres, dim)))
    keys = [f"img_{i:03d}.png" for i in range(n)]
    per_image, rows = [], []
    for key in keys:
        k = 0 if rng.random() < empty else int(rng.integers(1, max_objects + 1))
        objs = _unit(centre[rng.integers(0, centres, size=k)] + spread * rng.normal(size=(k, dim))) if k else np.zeros((0, dim), np.float32)
        if copies and per_image and rng.random() < copies:
            objs = per_image[int(rng.integers(0, len(per_image)))]
            objs = objs if rng.random() < 0.5 else _unit(objs + 3e-7 * rng.normal(size=objs.shape))
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
    empty = staging.with_counts(objects.slice(0, 0), staging.OBJECTS, {"boxes_outside_image": 7,
                                                                        "video_frames_failed": 0})
    with pytest.raises(ValueError, match=r"no objects of task 'det' in this run \(7 predicted boxes had no area "
                                         r"inside their images\): it must be"):
        object_set(keys, empty, "det", path="strategies[0].input")
    frames = staging.with_counts(empty, staging.OBJECTS, {"video_frames_failed": 120})
    with pytest.raises(ValueError, match=r"\(120 video frames with boxes did not decode\)"):
        select(candidates, {"n_samples": 3, "strategies": [
            {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}]}, objects=frames)


def _large_objects(m: int, dim: int, per_image: int) -> tuple[list[str], pa.Table]:
    rng = np.random.default_rng(11)
    keys = [f"img_{i:05d}.png" for i in range(m // per_image)]
    emb = rng.normal(size=(m, dim)).astype(np.float32)
    return keys, pa.table({C.PARENT_KEY: np.repeat(np.array(keys), per_image), C.OBJECT_TASK: ["det"] * m,
                           C.EMBEDDING: pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim)
                           .cast(pa.list_(pa.float32()))})


def test_gathering_many_objects_holds_one_float32_copy_of_their_embeddings() -> None:
    """object_set (and take without a filter) of 60,000 crops: the unit embeddings are made in float64 blocks
    and not copied again when already in candidate order. Before: the whole matrix in float64 plus three
    float32 copies (peak 4x the float32 matrix; 140,000 crops of 256 dimensions: 550 MiB, now 171 MiB)."""
    import tracemalloc

    keys, objects = _large_objects(60_000, 64, 30)
    matrix_bytes = 60_000 * 64 * 4
    tracemalloc.start()
    try:
        objs = object_set(keys, objects, "det").take(np.arange(len(keys)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * matrix_bytes, f"peak {peak / matrix_bytes:.2f}x the float32 matrix"
    x = np.asarray(objects.column(C.EMBEDDING).combine_chunks().flatten(), np.float64).reshape(60_000, 64)
    np.testing.assert_array_equal(objs.x, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    assert list(objs.owner[:31]) == [0] * 30 + [1]


def test_a_pick_does_not_recompute_the_norms_of_every_object() -> None:
    """Each pick measures all M objects against the picked image's objects; the objects' squared norms are kept
    from the start (the same numbers), so a pick converts each block to float64 once and makes no second
    block-sized temporary (before: ``(xb * xb).sum`` per block per pick; 140,000 crops of 256 dimensions:
    505 -> 299 ms per pick, medians of 5 interleaved rounds)."""
    import tracemalloc

    from lightly_airflow.objects import selection as S

    keys, objects = _large_objects(S._BLOCK, 256, 2)  # (one block: its float64 copy is the only large array)
    div = ObjectDiversity(object_set(keys, objects, "det"))
    slow = ObjectDiversity(object_set(keys, objects, "det"))
    block_bytes = S._BLOCK * 256 * 8
    tracemalloc.start()
    try:
        div.pick(3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * block_bytes, f"peak {peak / block_bytes:.2f}x a float64 block"
    a, b = slow.starts[3], slow.starts[4]
    expected = np.minimum(2.0, S.nearest_distances(slow.objects.x, slow.objects.x[a:b]))
    # The same distances as computing the norms per call, within the float64 rounding of the dot product (the
    # pick sums a pair's D products in np.einsum's order, the formula for whole blocks in BLAS').
    np.testing.assert_allclose(div.d**2, expected**2, rtol=0, atol=_d2_tolerance(256, div.max_sqnorm))


def test_preselected_objects_are_measured_in_blocks_not_all_at_once() -> None:
    """The distance of every candidate object to its nearest preselected object: the (M, 256) float64 distances
    of each block of 256 preselected objects were materialised before their minimum (140,000 crops: 287 MB per
    block of an incremental run); now each block of candidate rows keeps only its minimum. Same distances."""
    import tracemalloc

    from lightly_airflow.objects import selection as S

    keys, objects = _large_objects(8 * S._BLOCK, 8, 4)
    pre = objects.slice(0, 512)
    objs = object_set(keys, objects, "det", pre)
    tracemalloc.start()
    try:
        div = ObjectDiversity(objs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    all_at_once = len(objs.x) * 256 * 8
    assert peak < all_at_once / 2, f"peak {peak / all_at_once:.2f}x the (M, 256) distances"
    x, p = objs.x.astype(np.float64), objs.pre.astype(np.float64)
    expected = np.full(len(x), 2.0)
    for start in range(0, len(p), 256):
        block = p[start : start + 256]
        d2 = (x * x).sum(axis=1)[:, None] + (block * block).sum(axis=1)[None, :] - 2.0 * (x @ block.T)
        np.minimum(expected, np.sqrt(np.maximum(d2, 0.0)).min(axis=1), out=expected)
    # (within the float64 rounding of the dot: the formula's dots by np.einsum, here by BLAS)
    np.testing.assert_allclose(div.d**2, expected**2, rtol=0, atol=_d2_tolerance(8, div.top))
    assert div.d.min() < 1e-6  # the preselected objects are among the candidates here: distance 0


def _pair_formula(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The float64 formula for each (row of ``x``, row of ``s``) pair, the dot by ``np.einsum`` (a pair's sum in
    one order wherever the pair lies): ``(len(x), len(s))``."""
    rows, cols = np.repeat(np.arange(len(x)), len(s)), np.tile(np.arange(len(s)), len(x))
    dots = np.einsum("ij,ij->i", x[rows], s[cols], dtype=np.float64).reshape(len(x), len(s))
    out: np.ndarray = np.sqrt(np.maximum(squared_norms(x)[:, None] + squared_norms(s)[None, :] - 2.0 * dots, 0.0))
    return out


@pytest.mark.parametrize("dim", [256, 1280])
def test_objects_duplicating_preselected_ones_tie_exactly_with_the_formula(dim: int) -> None:
    """The distances to the preselected objects are the float64 formula's for every object bit for bit (the picks'
    path: the float32 product, then the formula for the pairs in question, the dot by np.einsum), so candidates
    whose objects copy a preselected object exactly, wherever they lie among the objects, get the same distance
    and their images tie. Before: a BLAS product of each block of rows, whose sums depend on the row's place: 46-86 %
    of the objects here were off the formula in the last bits)."""
    keys, per_image, objects, _ = _data(220, 17, dim=dim, max_objects=6, spread=0.05, empty=0.0)
    pre_keys = pa.array(keys[:20])
    is_pre = pa.compute.is_in(objects.column(C.PARENT_KEY), pre_keys)
    pre = objects.filter(is_pre)
    copied = np.asarray(pre.column(C.EMBEDDING).to_pylist()[:4], np.float32)
    at = [keys[i] for i in (25, 90, 151, 219)]  # (these images' objects: the same four copies, in order)
    copies = [{C.KEY: f"copy_{k}_{j}", C.PARENT_KEY: k, C.OBJECT_TASK: "det", C.EMBEDDING: copied[j].tolist()}
              for k in at for j in range(4)]
    others = objects.filter(pa.compute.invert(pa.compute.is_in(objects.column(C.PARENT_KEY), pa.array(keys[:20] + at))))
    rows = pa.concat_tables([others, pa.Table.from_pylist(copies, objects.schema)])
    objs = object_set(keys[20:], rows, "det", pre)
    div = ObjectDiversity(objs)
    formula = _pair_formula(objs.x, objs.pre)
    np.testing.assert_array_equal(div.d, np.minimum(formula.min(axis=1), 2.0))
    np.testing.assert_array_equal(div.near, formula.argmin(axis=1))  # (the first on ties)
    rms = div.rms_distance()[[5, 70, 131, 199]]
    assert len(set(rms.tolist())) == 1, rms  # (the four images of copies tie exactly)


_COPIES = """
import numpy as np, pyarrow as pa
from lightly_airflow import columns as C
from lightly_airflow.objects.run import with_object_metadata
from lightly_airflow.objects.selection import object_set

m, dim = 40_000, 256
emb = np.random.default_rng(0).normal(size=(m, dim)).astype(np.float32)  # (numpy memory: not Arrow's pool)
keys = [f"img_{i:05d}.png" for i in range(m // 40)]
table = pa.table({C.PARENT_KEY: np.repeat(np.array(keys), 40), C.OBJECT_TASK: ["det"] * m,
                  C.EMBEDDING: pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim).cast(pa.list_(pa.float32())),
                  C.lightly_metadata_column("sharpness"): np.arange(m, dtype=np.float64)})
table = pa.concat_tables([table.slice(0, 15_000), table.slice(15_000)])  # (two chunks, as from the shards)
pool = pa.default_memory_pool()
base = pool.max_memory()
rows = with_object_metadata(pa.table({C.KEY: keys}), table, ("det",))
after_metadata = pool.max_memory()
objs = object_set(keys, table, "det")
print(after_metadata - base, pool.max_memory() - base, emb.nbytes)
"""


def test_crop_metadata_and_object_set_do_not_copy_the_crop_embeddings() -> None:
    """The select task filtered the whole object table per task (a copy of every crop embedding) to average 11
    crop metrics, filtered it again in ``object_set`` and combined its chunks (two more copies) before making
    the float32 matrix: 140,000 crops of 1,280 dimensions: +0.6-0.9 GB and 1.5-2.6 s for the crop metadata,
    +1.5-1.9 GB for the object set; now +0-31 MB, 0.05 s and +0.8 GB (the float32 matrix itself). Arrow's
    allocations in a fresh interpreter (its peak starts there): below a tenth of the embeddings."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _COPIES], capture_output=True, text=True, check=True, timeout=300)
    metadata_peak, object_set_peak, embedding_bytes = map(int, out.stdout.split())
    assert metadata_peak < embedding_bytes / 10, (metadata_peak, embedding_bytes)
    assert object_set_peak < embedding_bytes / 10, (object_set_peak, embedding_bytes)


def _float64_pick(self: ObjectDiversity, i: int) -> None:
    """``ObjectDiversity.pick`` before the float32 filter, the reference: the float64 formula for every object at
    every pick (:func:`nearest_distances`)."""
    a, b = self.starts[i], self.starts[i + 1]
    if b > a:
        np.minimum(self.d, nearest_distances(self.objects.x, self.objects.x[a:b], self.xn), out=self.d)
    self.picked += 1


def _d2_tolerance(dim: int, max_sqnorm: float) -> float:
    """How far two float64 evaluations of ``|x|² + |s|² - 2 x·s`` may differ when BLAS sums the ``D`` (exact)
    float64 products of ``x·s`` in two orders: each within ``γ_D |x||s|`` (``u = 2^-53``) of the exact dot."""
    return 2 * 2 * (dim * 2.0**-53 / (1 - dim * 2.0**-53)) * max_sqnorm + 1e-15


@pytest.mark.parametrize("dim,spread,copies", [(256, 0.3, 0.0), (256, 0.05, 0.4), (1280, 0.05, 0.4)])
def test_each_pick_gives_the_distances_of_the_float64_formula(dim: int, spread: float, copies: float) -> None:
    """After every pick the objects' distances are those of the float64 formula for every object (the pick before
    the float32 filter), within a few float64 rounding errors of the dot product (a pick sums the D products of a
    pair in np.einsum's order, the formula for whole blocks in OpenBLAS', whose order depends on the matrix's shape;
    the values before already depended on the 8,192-row block an object fell in)."""
    keys, _, objects, _ = _data(150, 4, dim=dim, max_objects=8, spread=spread, copies=copies)
    objs = object_set(keys, objects, "det")
    new, old = ObjectDiversity(objs), ObjectDiversity(objs)
    tol = _d2_tolerance(dim, new.max_sqnorm)
    order: list[int] = []
    for _ in range(40):
        bonus = new.log_bonus()
        bonus[order] = -np.inf
        i = int(np.argmax(bonus))
        order.append(i)
        new.pick(i)
        _float64_pick(old, i)
        np.testing.assert_allclose(new.d**2, old.d**2, rtol=0, atol=tol)
    report = new.report()
    assert report["measured_rows"] == 40 * len(objs.x)
    assert report["exact_rows"] < report["measured_rows"] / 4  # (the float32 filter ruled most rows out)


def _picks_equal_the_float64_formula(objs: ObjectSet, picks: int) -> ObjectDiversity:
    """The greedy on ``objs`` by the picks' path and by the float64 formula for every object (``_float64_pick``): the
    same argmax at every pick and the same distances within the float64 rounding of the dot; the picks' state."""
    new, old = ObjectDiversity(objs), ObjectDiversity(objs)
    tol = _d2_tolerance(objs.x.shape[1], new.top)
    order: list[int] = []
    for pick in range(picks):
        bonus, reference = new.log_bonus(), old.log_bonus()
        bonus[order] = reference[order] = -np.inf
        i = int(np.argmax(bonus))
        assert i == int(np.argmax(reference)), f"pick {pick}"
        order.append(i)
        new.pick(i)
        _float64_pick(old, i)
        np.testing.assert_allclose(new.d**2, old.d**2, rtol=0, atol=tol)
    return new


_DIVERSITY = {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}


@pytest.mark.parametrize("case", ["clustered", "near_duplicates", "dim_1280", "preselected", "weights",
                                  "minimum_distance"])
def test_pick_orders_equal_those_of_the_float64_formula_for_every_object(case: str, monkeypatch) -> None:
    """The engine's picks with the triangle-inequality bound and the float32 filter (both rule rows out in every
    case here) equal those with the float64 formula for every object at every pick, on clustered objects,
    near-duplicate and duplicate objects (distances that nearly tie, ties), 256 and 1,280 dimensions, after
    preselected images, combined with WEIGHTS and with the minimum-distance stop."""
    dim = 1280 if case == "dim_1280" else 256
    keys, per_image, objects, candidates = _data(
        120, 13, dim=dim, max_objects=8, spread=0.1 if case == "clustered" else 0.05,
        copies=0.0 if case == "clustered" else 0.4)
    config: dict = {"n_samples": 100 if case == "near_duplicates" else 50, "strategies": [dict(_DIVERSITY)]}
    pre = None
    if case == "preselected":
        is_pre = pa.compute.is_in(objects.column(C.PARENT_KEY), pa.array(keys[:30]))
        objects, pre, candidates = objects.filter(pa.compute.invert(is_pre)), objects.filter(is_pre), candidates.slice(30)
    if case == "weights":
        w = np.random.default_rng(13).random(len(keys))
        candidates = candidates.append_column(C.score_column("det", "s"), pa.array(w))
        config["strategies"].append({"input": {"type": "SCORES", "task": "det", "score": "s"},
                                     "strategy": {"type": "WEIGHTS", "strength": 2}})
    if case == "minimum_distance":
        config["strategies"][0] = {"input": _DIVERSITY["input"],
                                   "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.85}}
    result = select(candidates, config, objects=objects, preselected_objects=pre)
    report = result.objectives["strategies[0]"]
    assert report["exact_rows"] < report["measured_rows"] / 2  # (the filter ruled out most rows: not the old path)
    assert report["bound_rows"] > 0  # (and the triangle-inequality bound some without a product)
    monkeypatch.setattr(ObjectDiversity, "pick", _float64_pick)
    reference = select(candidates, config, objects=objects, preselected_objects=pre)
    assert list(result.indices) == list(reference.indices)
    assert result.stop_reason == reference.stop_reason
    if case == "minimum_distance":
        assert result.stop_reason == "minimum_distance" and 10 < len(result.indices) < 50


def test_the_float32_filter_skips_the_rows_it_rules_out_and_needs_its_margin() -> None:
    """A pick whose objects nearly duplicate objects selected before (3e-7 per coordinate: the distances to the old
    and the new ones nearly tie, closer than float32 products resolve) among objects near other selected objects:
    the filter computes in float64 only rows near the pick's objects, not those at distance 0, every row that gets
    nearer among them, and the result equals the float64 formula for every row. Without the rounding margin (the bound of the float32 product's
    error) the near-ties lose some of their improvements."""
    from lightly_airflow.objects.selection import lower_to_nearest, squared_norms

    rng = np.random.default_rng(5)
    dim = 256
    first, other = _unit(rng.normal(size=(8, dim))), _unit(rng.normal(size=(8, dim)))
    near_first = _unit(first[rng.integers(0, 8, 1000)] + 0.04 * rng.normal(size=(1000, dim)))
    near_other = _unit(other[rng.integers(0, 8, 3000)] + 0.04 * rng.normal(size=(3000, dim)))
    near_first[:200] = first[np.arange(200) % 8]  # (the objects selected before, at distance 0)
    x = np.concatenate([near_first, near_other])
    again = _unit(first + 3e-7 * rng.normal(size=first.shape))
    xn = squared_norms(x)
    d = nearest_distances(x, np.concatenate([first, other]), xn)
    d[:200] = 0.0  # (never nearer: not computed although the float32 product puts them near the pick's objects)
    expected = np.minimum(d, nearest_distances(x, again, xn))
    tol = _d2_tolerance(dim, float(xn.max()))
    got = d.copy()
    exact = lower_to_nearest(got, x, again, xn, float(xn.max()))
    np.testing.assert_allclose(got**2, expected**2, rtol=0, atol=tol)
    improved = int((expected**2 < d**2 - tol).sum())
    assert 100 < improved <= exact <= len(near_first) - 200, (improved, exact)  # (not one of the 3,000 near other)
    no_margin = d.copy()
    lower_to_nearest(no_margin, x, again, xn, float(xn.max()), margin_scale=0.0)
    assert np.abs(no_margin**2 - expected**2).max() > 100 * tol  # (the test's near-ties need the margin)


def test_the_bound_skips_far_objects_and_needs_its_margin_where_distances_nearly_tie() -> None:
    """A pick's objects ``s`` each a step (2e-3) from a preselected object ``c``, with an object ``x`` just past the
    middle of each pair (nearest to ``c`` now, slightly nearer to ``s``: ``|s - c|`` and ``2 d`` nearly tie, closer
    than float32 products resolve), and objects near other preselected objects, far from every ``s``. The
    triangle-inequality bound rules out the far objects without a product, keeps every ``x``, and the distances
    equal the float64 formula for every object. Without its margin (the float32 product's error) and slack the
    bound rules out some ``x`` that get nearer: their distances stay too large."""
    rng = np.random.default_rng(8)
    dim, k = 256, 200
    c = _unit(rng.normal(size=(k, dim)))
    s = _unit(c + 2e-3 * _unit(rng.normal(size=(k, dim))))
    x = _unit(0.49 * c.astype(np.float64) + 0.51 * s)
    far_c = _unit(rng.normal(size=(50, dim)))
    far = _unit(far_c[np.arange(400) % 50] + 0.01 * rng.normal(size=(400, dim)))
    rows = np.concatenate([s, x, far])
    objs = ObjectSet(rows, np.repeat([0, 1, 2], [k, k, 400]), 3, np.concatenate([c, far_c]), "det")
    xn = squared_norms(rows)
    before = np.minimum(2.0, nearest_distances(rows, objs.pre, xn))
    expected = np.minimum(before, nearest_distances(rows, s, xn))
    assert (expected[k : 2 * k] < before[k : 2 * k] - 1e-5).all()  # (every x gets nearer)
    tol = _d2_tolerance(dim, float(xn.max()))
    div = ObjectDiversity(objs)
    div.pick(0)
    np.testing.assert_allclose(div.d**2, expected**2, rtol=0, atol=tol)
    report = div.report()
    assert report["bound_picks"] == 1 and report["bound_rows"] >= 400, report  # (the far objects: no product)
    no_margin = ObjectDiversity(objs)
    no_margin.bound_margin_scale = 0.0
    no_margin.pick(0)
    assert np.abs(no_margin.d**2 - expected**2).max() > 100 * tol  # (the near-ties need the margin)


@pytest.mark.parametrize("copies", [0.0, 0.4])
def test_the_bound_rules_out_most_objects_of_clustered_data_with_the_same_picks_and_distances(copies: float) -> None:
    """On clustered objects (and with duplicate and near-duplicate images, ``copies``) the triangle-inequality bound
    rules out most objects of most picks without a product, counted in the report, and every pick's distances
    and the pick order equal those of the float64 formula for every object."""
    keys, _, objects, _ = _data(300, 21, dim=64, max_objects=4, spread=0.03, copies=copies, centres=40)
    objs = object_set(keys, objects, "det")
    new, old = ObjectDiversity(objs), ObjectDiversity(objs)
    tol = _d2_tolerance(64, new.max_sqnorm)
    order: list[int] = []
    for pick in range(80):
        bonus = new.log_bonus()
        bonus[order] = -np.inf
        i = int(np.argmax(bonus))
        reference = old.log_bonus()
        reference[order] = -np.inf
        assert i == int(np.argmax(reference)), f"pick {pick}"
        order.append(i)
        new.pick(i)
        _float64_pick(old, i)
        np.testing.assert_allclose(new.d**2, old.d**2, rtol=0, atol=tol)
    report = new.report()
    assert report["bound_picks"] + report["unbounded_picks"] == 79  # (every pick after the first)
    assert report["bound_rows"] > report["measured_rows"] / 2, report


@pytest.mark.parametrize("dim,name,message", [(64, "bound", "the bound is tried again"),
                                              (256, "screen", "the projected screen ruled out")])
def test_the_bound_and_the_screen_are_left_out_where_they_do_not_pay_and_say_so(
        dim: int, name: str, message: str, caplog) -> None:
    """Objects without clusters (uniform on the sphere): the bound rules out almost nothing (and at 256 dimensions
    the projected screen: 32 directions hold an eighth of the distances), so after a pick where it did not pay the
    next picks go without it (2, 4, … 16 picks, then it is tried again), logged once and counted; the distances
    are still those of the float64 formula."""
    import logging

    rng = np.random.default_rng(4)
    x = _unit(rng.normal(size=(2000, dim)))
    objs = ObjectSet(x, np.repeat(np.arange(200), 10), 200, np.zeros((0, dim), np.float32), "det")
    new, old = ObjectDiversity(objs), ObjectDiversity(objs)
    with caplog.at_level(logging.INFO, logger="lightly_airflow.objects.selection"):
        for i in range(60):
            new.pick(i)
            _float64_pick(old, i)
    np.testing.assert_allclose(new.d**2, old.d**2, rtol=0, atol=_d2_tolerance(dim, new.max_sqnorm))
    report = new.report()
    assert report[f"{name}_picks"] + report[f"un{name}ed_picks"] == 59
    assert report[f"{name}_picks"] <= 8 and report[f"{name}_rows"] < report["measured_rows"] / 20, report
    assert sum(message in r.getMessage() for r in caplog.records) == 1


def test_an_image_is_ranked_by_the_root_mean_square_of_its_objects_distances() -> None:
    """Lightly's engine (lightly-mundig's subpart diversity) ranks an image by the mean of its objects' squared
    distances and stops on their root mean square: an image with objects at chord distances 0.2 and 1.7 from the
    one selected object (rms 1.21, mean 0.95) goes before one with both at 1.0 (rms and mean 1.0)."""
    def at(d: float) -> list[float]:  # (a unit vector at chord distance d from (1, 0))
        theta = 2.0 * np.arcsin(d / 2.0)
        return [float(np.cos(theta)), float(np.sin(theta))]

    x = np.array([at(1.0), [at(1.0)[0], -at(1.0)[1]], at(0.2), at(1.7)], dtype=np.float32)
    objects = ObjectSet(x, np.array([0, 0, 1, 1]), 2, np.array([[1.0, 0.0]], dtype=np.float32), "det")
    div = ObjectDiversity(objects)
    np.testing.assert_allclose(div.rms_distance(), [1.0, np.sqrt((0.04 + 2.89) / 2)], atol=1e-6)
    assert int(np.argmax(div.log_bonus())) == 1
    assert reference_object_diversity([x[:2], x[2:]], objects.pre, 1) == [1]
    assert ObjectDiversity(objects, minimum_distance=1.2).stops_before(0)  # (rms 1.0; the mean would be too)
    assert not ObjectDiversity(objects, minimum_distance=1.2).stops_before(1)  # (rms 1.21; the mean 0.95 stops)


def _selected_distance(div: ObjectDiversity, rows: np.ndarray) -> np.ndarray:
    """The float64 formula's distance of each object of ``rows`` to the selected object its ``near`` names."""
    n_pre = len(div.objects.pre)
    ids = div.near[rows]
    sel = np.where((ids < n_pre)[:, None], div.objects.pre[np.minimum(ids, max(n_pre - 1, 0))],
                   div.objects.x[div.picked_rows[np.maximum(ids - n_pre, 0)]])
    x, s = div.objects.x[rows].astype(np.float64), sel.astype(np.float64)
    return np.sqrt(np.maximum((x * x).sum(1) + (s * s).sum(1) - 2.0 * (x * s).sum(1), 0.0))


@pytest.mark.parametrize("few_pairs", [0, 10**9])
@pytest.mark.parametrize("kind", ["clustered", "uniform", "near_duplicates"])
def test_the_pairs_a_float32_product_leaves_give_the_picks_and_distances_of_the_float64_formula(
        kind: str, few_pairs: int, monkeypatch) -> None:
    """A pick computes the float64 formula only for the (object, new object) pairs its float32 product cannot
    rule out (in the block's pass, or all blocks' pairs together after: ``few_pairs``): on clustered objects,
    objects uniform on the sphere and duplicate and near-duplicate images, after preselected images, every pick
    equals the float64 formula for every object (the argmax, the distances) and each object's nearest selected
    object is one at its distance."""
    from lightly_airflow.objects import selection as S

    monkeypatch.setattr(S, "_BLOCK", 256)  # (several blocks, rows gathered or whole)
    monkeypatch.setattr(S, "_FEW_PAIRS", few_pairs)
    spread = {"clustered": 0.05, "uniform": 10.0, "near_duplicates": 0.05}[kind]
    keys, _, objects, _ = _data(160, 31, dim=256, max_objects=8, spread=spread,
                                copies=0.4 if kind == "near_duplicates" else 0.0, centres=8)
    pre_keys = pa.array(keys[:20])
    is_pre = pa.compute.is_in(objects.column(C.PARENT_KEY), pre_keys)
    objs = object_set(keys[20:], objects.filter(pa.compute.invert(is_pre)), "det", objects.filter(is_pre))
    new = _picks_equal_the_float64_formula(objs, 60)
    tol = _d2_tolerance(256, new.top)
    measured = np.flatnonzero(new.near >= 0)
    np.testing.assert_allclose(_selected_distance(new, measured) ** 2, new.d[measured] ** 2, rtol=0, atol=tol)
    report = new.report()
    assert report["exact_rows"] < report["measured_rows"] / 2, report  # (the float32 product ruled rows out)


def test_new_objects_that_nearly_tie_are_all_computed_and_need_the_margin() -> None:
    """A pick whose objects come in near-duplicate pairs (3e-7 per coordinate: an object's distances to the two
    nearly tie, closer than float32 products resolve) and objects around them: the distances and nearest new
    objects equal the float64 formula's for every object. Without the margin (the float32 product's error) only
    the float32 product's nearest of the two is computed: distances too large."""
    from lightly_airflow.objects.selection import lower_to_nearest

    rng = np.random.default_rng(12)
    dim = 256
    base = _unit(rng.normal(size=(10, dim)))
    s = np.concatenate([base, _unit(base + 3e-7 * rng.normal(size=base.shape))])
    x = _unit(base[rng.integers(0, 10, 3000)] + 0.05 * rng.normal(size=(3000, dim)))
    xn = squared_norms(x)
    arg = np.empty(len(x), dtype=np.int64)
    expected = nearest_distances(x, s, xn, arg)
    tol = _d2_tolerance(dim, float(xn.max()))
    d, near = np.full(len(x), 2.0), np.full(len(x), -1, dtype=np.int64)
    assert lower_to_nearest(d, x, s, xn, float(xn.max()), near=near) == len(x)
    np.testing.assert_allclose(d**2, expected**2, rtol=0, atol=tol)
    assert (near == arg).mean() > 0.99  # (the same nearest new object but where two tie within rounding)
    no_margin = np.full(len(x), 2.0)
    lower_to_nearest(no_margin, x, s, xn, float(xn.max()), margin_scale=0.0)
    assert np.abs(no_margin**2 - expected**2).max() > 100 * tol  # (the near-ties need the margin)


def test_the_bound_in_angles_rules_out_more_and_covers_rows_off_the_unit_sphere() -> None:
    """Objects on a great circle through a preselected object ``c`` (angle 0) and a pick's object ``s`` (angle 2.0
    rad): objects at angle 0.95 are ruled out by the angles (2 x 0.95 < 2.0) though not by the chords (|s - c|
    1.68 < 2 |x - c| 1.83); objects just past the middle (angles 1.0 + 3.5e-5 ... 7e-5, |c| = 1, |s| = 1 + 1e-4)
    get nearer to ``s`` (past 1.0 + 2.7e-5) though angles on the unit sphere alone would rule them out (up to
    1.0 + 7.8e-5: ``s`` is off it), and must be kept: the distances equal the float64 formula's."""
    rng = np.random.default_rng(3)
    dim = 64
    e = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T  # (two orthonormal directions)

    def at(angle: np.ndarray, norm: float = 1.0) -> np.ndarray:
        return (norm * (np.cos(angle)[:, None] * e[0] + np.sin(angle)[:, None] * e[1])).astype(np.float32)

    c, s = at(np.zeros(1)), at(np.full(1, 2.0), 1.0 + 1e-4)
    far = at(np.full(200, 0.95) + 1e-3 * rng.random(200))
    tie = at(1.0 + rng.uniform(3.5e-5, 7e-5, 50))
    rows = np.concatenate([s, far, tie])
    objs = ObjectSet(rows, np.repeat([0, 1, 2], [1, 200, 50]), 3, c, "det")
    xn = squared_norms(rows)
    before = np.minimum(2.0, nearest_distances(rows, c, xn))
    expected = np.minimum(before, nearest_distances(rows, s, xn))
    assert (expected[201:] < before[201:]).all() and (expected[1:201] == before[1:201]).all()
    div = ObjectDiversity(objs)
    div.pick(0)
    np.testing.assert_allclose(div.d**2, expected**2, rtol=0, atol=_d2_tolerance(dim, div.top))
    assert div.report()["bound_rows"] >= 200, div.report()  # (the objects at 0.95: by the angles only)


def _low_rank(images: int, per_image: int, rank: int, dim: int, seed: int, copies: float = 0.0) -> ObjectSet:
    """Objects spread evenly over a ``rank``-dimensional subspace (no clusters: the triangle-inequality bound rules
    out little), 1e-3 off it per coordinate; ``copies``: the share of images copying an earlier one's objects, half
    exactly, half with 3e-7 of noise (ties, near ties)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, rank)))[0]
    x = _unit(rng.normal(size=(images * per_image, rank)) @ basis.T + 1e-3 * rng.normal(size=(images * per_image, dim)))
    for i in range(1, images):
        if rng.random() < copies:
            j = int(rng.integers(0, i))
            same = x[j * per_image : (j + 1) * per_image]
            x[i * per_image : (i + 1) * per_image] = same if rng.random() < 0.5 else _unit(same + 3e-7 * rng.normal(size=same.shape))
    return ObjectSet(x, np.repeat(np.arange(images), per_image), images, np.zeros((0, dim), np.float32), "det")


@pytest.mark.parametrize("copies", [0.0, 0.4])
def test_the_projected_screen_rules_out_most_objects_with_the_same_picks_and_distances(copies: float) -> None:
    """At 256 dimensions a pick first screens the objects with their projection on 32 directions (a product of 33
    columns instead of 256): on objects near a 20-dimensional subspace without clusters, where the bound rules out
    little (with duplicate and near-duplicate images), it rules out most rows, counted in the report, and every
    pick's distances and the pick order equal those of the float64 formula for every object."""
    new = _picks_equal_the_float64_formula(_low_rank(300, 8, 20, 256, 22, copies), 80)
    assert new.projection is not None
    report = new.report()
    assert report["screen_picks"] + report["unscreened_picks"] == 79  # (every pick after the first)
    assert report["screen_rows"] > report["measured_rows"] / 2, report


def test_the_projected_screen_keeps_every_object_a_new_object_brings_nearer_and_needs_its_margin() -> None:
    """Objects of rank 20 in 256 dimensions (the projection holds all of each distance): every object that the new
    objects bring nearer by only 1e-9 is kept, those twice as far as their distance are ruled out; on exactly
    orthonormal directions, without the float32 product's margin, the projected rows' rounding (blur) and the
    slack some objects brought nearer are ruled out (float32 errors of ~1e-7 on the projected distances)."""
    import dataclasses

    from lightly_airflow.objects.selection import float64_slack, projection

    rng = np.random.default_rng(8)
    basis = np.linalg.qr(rng.normal(size=(256, 20)))[0]
    x = _unit(rng.normal(size=(3000, 20)) @ basis.T)
    top = max(1.0, float(squared_norms(x).max()))
    proj = projection(x, top)
    assert proj is not None
    new = proj.against(100, 110)  # (a pick of the objects 100 … 109)
    nearest = _pair_formula(x, x[100:110]).min(axis=1)
    rows = np.flatnonzero(nearest > 0.01)  # (not the new objects: at 0 up to rounding)
    slack = float64_slack(256, top)
    assert proj.may_get_nearer(0, rows, nearest[rows] + 1e-9, new, slack).all()
    assert not proj.may_get_nearer(0, rows, nearest[rows] / 2, new, slack).any()
    # Exactly orthonormal directions spanning the objects (float64, then float32): the projected distances are the
    # distances up to the float32 roundings, which the margin, the blur and the slack cover.
    full = np.linalg.qr(np.concatenate([basis, rng.normal(size=(256, 12))], axis=1))[0]
    y = np.ones((33, len(x)), np.float32)
    y[:32] = (x.astype(np.float64) @ full).T
    exact = dataclasses.replace(proj, y=y, yn=squared_norms(y[:32].T), tally=[])
    new = exact.against(100, 110)
    assert exact.may_get_nearer(0, rows, nearest[rows] + 1e-9, new, slack).all()
    loose = dataclasses.replace(exact, margin=0.0, blur=0.0)
    assert not loose.may_get_nearer(0, rows, nearest[rows] + 1e-9, new, 0.0).all()


@pytest.mark.parametrize("copies", [0.0, 0.4])
def test_the_bound_multiplies_only_the_picked_objects_their_projection_leaves_in_question(copies: float) -> None:
    """At 256 dimensions the bound first bounds each picked object's distance to the new objects by their
    projections (33 columns), and multiplies in full only the picked objects some object still in question is
    nearest to: over 200 picks on clustered objects (with duplicate and near-duplicate images) it multiplies under a
    quarter of the picked objects it multiplied at every pick before (every one, counted in the report), and every
    pick's distances and the pick order equal those of the float64 formula for every object."""
    keys, _, objects, _ = _data(300, 21, dim=256, max_objects=4, spread=0.03, copies=copies, centres=40)
    objs = object_set(keys, objects, "det")
    new = _picks_equal_the_float64_formula(objs, 200)
    assert new.projection is not None
    owners = objs.owner[new.picked_rows]
    selected_before = int(np.flatnonzero(np.diff(owners, prepend=-1)).sum())  # (Σ over picks: objects picked before)
    report = new.report()
    assert report["bound_picks"] > 180, report  # (it paid at nearly every pick)
    assert report["bound_centres"] < selected_before / 4, (report, selected_before)


def test_the_projections_of_the_picked_objects_are_left_out_where_they_spare_no_product_and_say_so(caplog) -> None:
    """Objects of 200 small clusters in random directions at 256 dimensions: 32 projected directions cannot tell the
    clusters apart, so the picked objects' projections leave every one in question; after a pick where they spared
    none of the bound's product the next picks' bound goes without them (2, 4, … 16 picks, then they are tried
    again), logged once and counted, and the picks and distances are those of the float64 formula."""
    import logging

    keys, _, objects, _ = _data(300, 5, dim=256, max_objects=4, spread=0.03, centres=200)
    objs = object_set(keys, objects, "det")
    with caplog.at_level(logging.INFO, logger="lightly_airflow.objects.selection"):
        new = _picks_equal_the_float64_formula(objs, 120)
    report = new.report()
    assert report["bound_picks"] > 60, report  # (the clusters: the bound pays)
    assert report["projected_picks"] + report["unprojected_picks"] == report["bound_picks"]
    assert report["projected_picks"] <= 12, report
    assert sum("projections left every one" in r.getMessage() for r in caplog.records) == 1
