"""Large preselected sets: every candidate's nearest preselected vector at once (cells around pivots, triangle
bounds) gives the canonical values and owners of a slow brute force, and the picks of inserting one at a time."""

import numpy as np
import pytest
from selection_data import clustered, table_of

from lightly_airflow.config import parse_selection_config
from lightly_airflow.selection import kernels, nearest, select
from lightly_airflow.selection.kernels import FarthestPointState, canonical_sqnorms, farthest_point_order
from lightly_airflow.selection.nearest import nearest_selected


def brute_nearest(x: np.ndarray, pre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical squared distances (float64 products summed in dimension order) to every preselected vector;
    the smallest per row and the lowest index holding it."""
    x64, p64 = x.astype(np.float64), pre.astype(np.float64)
    dot = np.zeros((len(x), len(pre)))
    for j in range(x.shape[1]):
        dot += x64[:, j : j + 1] * p64[None, :, j]
    v = (canonical_sqnorms(x)[:, None] + canonical_sqnorms(pre)[None, :]) - 2.0 * dot
    v = np.where(v > 0.0, v, 0.0)
    return v.min(axis=1), v.argmin(axis=1)


def _data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "clustered":
        return clustered(2500, d=16, clusters=12, intrinsic=3, seed=60), clustered(6000, d=16, clusters=12,
                                                                               intrinsic=3, seed=61)
    if kind == "norms":  # not unit vectors, a wider dimension, fewer preselected than candidates
        x = clustered(1800, d=48, clusters=9, intrinsic=4, seed=62) * 1.7
        return x, clustered(900, d=48, clusters=9, intrinsic=4, seed=63) * 0.6
    if kind == "ties":  # coarse values: equal distances everywhere, candidates preselected, repeated vectors
        x = np.round(clustered(1500, d=6, clusters=5, intrinsic=2, seed=64), 1)
        pre = np.concatenate([x[:300], np.round(clustered(1200, d=6, clusters=5, intrinsic=2, seed=65), 1), x[:50]])
        return x, pre
    if kind == "spread":  # no clusters: the bounds keep most cells, the rows take every vector (dense)
        rng = np.random.default_rng(67)
        x, pre = rng.normal(size=(2000, 32)).astype(np.float32), rng.normal(size=(3000, 32)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True), pre / np.linalg.norm(pre, axis=1, keepdims=True)
    x = clustered(700, d=8, seed=66)  # a single preselected vector
    return x, x[3:4] + 0.01


@pytest.mark.parametrize("kind", ["clustered", "norms", "ties", "single", "spread"])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("all_dense", [False, True])
def test_nearest_selected_equals_the_brute_force_bit_for_bit(kind, threads, all_dense, monkeypatch):
    monkeypatch.setattr(nearest, "MIN_CELL", 4)  # (many small cells: most pairs skipped by the bounds)
    if all_dense:  # every chunk of rows multiplied by every vector, whatever its bounds keep
        monkeypatch.setattr(nearest, "DENSE_SHARE", -1.0)
    x, pre = _data(kind)
    d2, near, stats = nearest_selected(x, canonical_sqnorms(x), pre, canonical_sqnorms(pre), threads=threads)
    want_d2, want_near = brute_nearest(x, pre)
    assert np.array_equal(d2, want_d2)
    assert np.array_equal(near, want_near)  # the lowest index on ties: the one that inserting in order keeps
    assert stats.exact >= len(x)
    if all_dense:
        assert stats.dense_rows == len(x)
    elif kind == "clustered":
        assert stats.pairs < 0.5 * len(x) * len(pre) and stats.dense_rows == 0  # the bounds skip most pairs
    elif kind == "spread":
        assert stats.dense_rows == len(x)  # (the bounds keep more than DENSE_SHARE of the cells everywhere)


def test_the_second_stage_of_the_bounds_is_needed(monkeypatch):
    # Without the cells beyond each row's nearest pivot's, many rows miss their nearest vector: the test above
    # would see it.
    monkeypatch.setattr(nearest, "_needed_cells", lambda *args: 0)
    x, pre = _data("clustered")
    d2, _, _ = nearest_selected(x, canonical_sqnorms(x), pre, canonical_sqnorms(pre), threads=1)
    assert (d2 > brute_nearest(x, pre)[0]).sum() > 100


@pytest.mark.parametrize("mode", ["dense", "auto"])
def test_bulk_insert_gives_the_picks_and_values_of_inserting_one_at_a_time(mode, monkeypatch):
    monkeypatch.setattr(nearest, "MIN_CELL", 4)
    monkeypatch.setattr(kernels, "CHECK_EVERY", 16)  # (auto: pruned picks tried early on)
    x, pre = _data("clustered")
    states = {}
    for name, at_least in (("one at a time", 10**9), ("bulk", 1000)):
        monkeypatch.setattr(kernels, "BULK_INSERT_MIN", at_least)
        state = states[name] = FarthestPointState(x.copy(), capacity=len(pre) + 300, mode=mode)
        picks, dists, _ = farthest_point_order(state.x, 300, preselected=pre, state=state)
        states[name + " picks"] = picks, dists
    one, bulk = states["one at a time"], states["bulk"]
    assert (one.bulk_inserted, bulk.bulk_inserted) == (0, len(pre))
    assert bulk.bulk_groups < len(pre) // 2  # only the vectors nearest to some candidate became groups
    assert np.array_equal(states["bulk picks"][0], states["one at a time picks"][0])
    assert np.array_equal(states["bulk picks"][1], states["one at a time picks"][1])
    assert np.array_equal(bulk.d2, one.d2)
    if mode == "auto":
        assert bulk.switches and one.switches  # (both tried pruned picks; the arena, not owner, holds groups)
    else:  # each row's owner is the same vector (group numbers differ: empty groups are never made)
        assert np.array_equal(bulk.cvec[bulk.owner], one.cvec[one.owner])


def test_bulk_insert_only_before_picks_in_dense_mode_and_empty_sets(monkeypatch):
    monkeypatch.setattr(kernels, "BULK_INSERT_MIN", 10)
    x, pre = _data("norms")
    state = FarthestPointState(x.copy(), capacity=2000, mode="pruned")
    state.insert_many(pre[:20])  # (no dense passes: one at a time)
    assert state.bulk_inserted == 0
    state = FarthestPointState(x.copy(), capacity=2000, mode="dense")
    state.insert_many(pre[:0])
    state.insert_many(pre[:5])  # (below the minimum)
    state.insert_many(pre[5:40])  # (after other inserts: one at a time)
    assert state.bulk_inserted == 0 and state.n_added == 40
    with pytest.raises(ValueError, match="dimension 3, candidates 48"):
        FarthestPointState(x.copy(), capacity=10).insert_many(np.zeros((20, 3), dtype=np.float32))


@pytest.mark.parametrize("compiled_from_the_start", [True, False])
def test_select_with_a_large_preselected_set_equals_one_at_a_time(compiled_from_the_start, monkeypatch):
    # Through the engine (DIVERSITY x WEIGHTS: the lazy heap reads the state) with the compiled state from the
    # start, or with the numpy state (DIVERSITY alone: batches, no bulk insert) made compiled for the heap.
    if compiled_from_the_start:
        monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS", 100)
        monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP", 100)
        monkeypatch.setattr(kernels, "NUMPY_MAX_WORK", -1)  # (not by candidates x picks either)
    x, pre = _data("clustered")
    cand = table_of(x, **{"metadata.w": np.linspace(0.0, 1.0, len(x))})
    pre_t = table_of(pre)
    calls = []
    monkeypatch.setattr(nearest, "nearest_selected", lambda *a, **k: calls.append(1) or nearest_selected(*a, **k))
    for strategies in ([{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
                       [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
                        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}}]):
        cfg = parse_selection_config({"n_samples": 200, "strategies": strategies})
        got = {}
        for at_least in (10**9, 1000):
            monkeypatch.setattr(kernels, "BULK_INSERT_MIN", at_least)
            got[at_least] = select(cand, cfg, preselected=pre_t).indices.tolist()
        assert got[1000] == got[10**9] and len(got[1000]) == 200
    # (the bulk path ran once per compiled state; the numpy state's own heap serves DIVERSITY x WEIGHTS)
    assert len(calls) == (2 if compiled_from_the_start else 0)
