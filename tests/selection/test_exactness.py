"""DIVERSITY alone equals a slow, obviously-correct greedy farthest-point loop, ties included."""

import numpy as np
import pytest
from selection_data import clustered, table_of

from lightly_airflow.config import parse_selection_config
from lightly_airflow.selection import select
from lightly_airflow.selection.kernels import farthest_point_order


def brute_min_d2(x: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Every row's squared distance to its nearest selected vector, in float64, one vector at a time."""
    ref = np.full(len(x), np.inf)
    x64 = x.astype(np.float64)
    for v in selected.astype(np.float64):
        ref = np.minimum(ref, ((x64 - v) ** 2).sum(axis=1))
    return ref


def reference_order(x: np.ndarray, n: int, pre: np.ndarray | None = None) -> list[int]:
    """Greedy farthest point: d2 = min over selected of |x|²+|s|²-2x·s (float64, summed dim by dim)."""
    x64 = x.astype(np.float64)

    def sq_dist_to(v: np.ndarray) -> np.ndarray:
        v64 = v.astype(np.float64)
        dot = np.zeros(len(x))
        for j in range(x.shape[1]):
            dot += x64[:, j] * v64[j]
        nx = np.zeros(len(x))
        for j in range(x.shape[1]):
            nx += x64[:, j] * x64[:, j]
        nv = 0.0
        for j in range(x.shape[1]):
            nv += v64[j] * v64[j]
        return np.maximum(nx + nv - 2 * dot, 0.0)

    d2 = np.full(len(x), np.inf)
    for v in [] if pre is None else pre:
        d2 = np.minimum(d2, sq_dist_to(v))
    picks: list[int] = []
    for _ in range(n):
        masked = d2.copy()
        masked[picks] = -1
        i = int(np.argmax(masked))  # first maximum = lowest index
        picks.append(i)
        d2 = np.minimum(d2, sq_dist_to(x[i]))
    return picks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_matches_reference(seed):
    x = clustered(3000, seed=seed)
    picks, _, _ = farthest_point_order(x, 300)
    assert picks.tolist() == reference_order(x, 300)


def test_ties_and_duplicates_pick_lowest_index():
    # Lattice points (exact dot products) repeated: many exact ties and zero distances.
    rng = np.random.default_rng(3)
    base = rng.integers(-2, 3, size=(40, 8)).astype(np.float32)
    base[np.all(base == 0, axis=1)] = 1
    x = np.repeat(base, 5, axis=0)
    x = x[rng.permutation(len(x))]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    picks, _, _ = farthest_point_order(x, len(x))
    assert picks.tolist() == reference_order(x, len(x))


def test_preselected_count_as_selected():
    x = clustered(2000, seed=5)
    pre = clustered(200, seed=6)
    picks, _, _ = farthest_point_order(x, 150, preselected=pre)
    assert picks.tolist() == reference_order(x, 150, pre)


def test_preselected_rows_of_the_candidates_themselves():
    # Every candidate preselected (views into the matrix the state regroups in place): all distances 0,
    # so the order is simply the lowest indices first, like the reference.
    x = clustered(600, seed=8)
    picks, _, _ = farthest_point_order(x, 20, preselected=x)
    assert picks.tolist() == reference_order(x.copy(), 20, x.copy()) == list(range(20))


def test_select_diversity_alone_is_the_reference_order(digits_table):
    x = np.stack(digits_table.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
    cfg = {"n_samples": 100, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    result = select(digits_table, cfg)
    assert result.indices.tolist() == reference_order(x, 100)
    assert result.keys[0] == digits_table.column("key")[int(result.indices[0])].as_py()
    assert result.stop_reason == "n_reached"


def test_minimum_distance_stops():
    x = clustered(1500, seed=7)
    t = table_of(x)
    cfg = {"n_samples": 1500, "strategies": [{"input": {"type": "EMBEDDINGS"},
                                              "strategy": {"type": "DIVERSITY",
                                                           "stopping_condition_minimum_distance": 0.3}}]}
    r = select(t, cfg)
    assert r.stop_reason == "minimum_distance"
    assert 1 < len(r.indices) < 1500
    ref = reference_order(x, len(r.indices) + 1)
    assert r.indices.tolist() == ref[:-1]
    assert r.metrics["coverage_radius"] < 0.3 <= r.metrics["nn_distance_min"]


def test_pruned_kernel_with_regrouping_matches_reference_when_pruning_matters():
    # Tight clusters and k large enough that most groups are skipped; rows regrouped (permuted in place)
    # several times during the run and restored afterwards.
    from lightly_airflow.selection.kernels import FarthestPointState

    x = clustered(12000, d=16, clusters=30, intrinsic=2, seed=11)
    x_before = x.copy()
    state = FarthestPointState(x, capacity=1500, reorder_at=(8, 64, 300, 1000), mode="pruned")
    picks, dists, _ = farthest_point_order(x, 1500, state=state)
    assert picks.tolist() == reference_order(x_before, 1500)
    assert np.array_equal(x, x_before)  # the caller's rows are back in their order
    visited, exact, _, seen, _ = state.stats
    assert seen < 0.25 * 1500 * len(x)  # pruning skipped most points
    assert np.all(np.diff(dists[1:]) <= 1e-12)  # farthest-point distances never increase


@pytest.mark.parametrize("batch", [1, 3, 16, 64])
@pytest.mark.parametrize("state", ["compiled", "numpy"])
def test_combined_objectives_lazy_heap_equals_rescoring_every_pick(digits_table, batch, state, monkeypatch):
    # DIVERSITY x WEIGHTS x BALANCE through the lazy heap vs the dense path (rescoring all candidates): the
    # compiled heap over the compiled state, the numpy heap over the numpy state (each pass' batch varied).
    import pyarrow as pa

    from lightly_airflow.selection import engine

    heaps: list[str] = []
    for cls in (kernels_module().LazyMaxHeap, kernels_module().NumpyLazyHeap):
        monkeypatch.setattr(engine, cls.__name__, _recording(cls, heaps))
    if state == "compiled":
        monkeypatch.setattr(kernels_module(), "NUMPY_MAX_ROWS", -1)
        monkeypatch.setattr(kernels_module(), "NUMPY_MAX_ROWS_HEAP", -1)
        monkeypatch.setattr(kernels_module(), "NUMPY_MAX_WORK", -1)
    else:
        monkeypatch.setattr(kernels_module(), "NUMPY_BATCH", batch)

    rng = np.random.default_rng(0)
    t = digits_table.append_column("scores.cls.uncertainty_margin", pa.array(rng.random(digits_table.num_rows)))
    cfg = {"n_samples": 120, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strength": 2.0}},
        {"input": {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "label"},
         "strategy": {"type": "BALANCE", "target": {"0": 0.3, "1": 0.3}}}]}
    from lightly_airflow.selection import kernels

    # The heap reads distances between dense passes (pending vectors applied point by point) at any batch.
    monkeypatch.setattr(kernels, "BATCH", batch)
    lazy = select(t, cfg)
    assert lazy.indices.tolist() == _dense_select(engine, t, cfg)
    pre = t.slice(0, 40)
    cand = t.slice(40)
    assert select(cand, cfg, preselected=pre).indices.tolist() == _dense_select_pre(engine, cand, cfg, pre)
    assert heaps == ["LazyMaxHeap" if state == "compiled" else "NumpyLazyHeap"] * 2


def kernels_module():  # type: ignore[no-untyped-def]
    from lightly_airflow.selection import kernels

    return kernels


def _recording(cls, names):  # type: ignore[no-untyped-def]
    def make(*a, **k):  # type: ignore[no-untyped-def]
        names.append(cls.__name__)
        return cls(*a, **k)

    return make


def _dense_result(engine, table, cfg, pre=None):  # type: ignore[no-untyped-def]
    """The same selection with every score recomputed per pick (the engine's dense path)."""
    import functools

    real = engine.greedy
    engine.greedy = functools.partial(real, dense=True)
    try:
        return select(table, cfg, preselected=pre)
    finally:
        engine.greedy = real


def _dense_select_pre(engine, table, cfg, pre):
    return _dense_result(engine, table, cfg, pre).indices.tolist()


def _dense_select(engine, table, cfg):
    return _dense_result(engine, table, cfg).indices.tolist()


@pytest.mark.parametrize("mode", ["dense", "auto"])
@pytest.mark.parametrize("seed", [0, 1])
def test_dense_and_auto_paths_match_reference(mode, seed, monkeypatch):
    # Dense passes (the fallback when pruning does not pay) and the automatic switching between both paths,
    # on 3 threads x 4 blocks.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "3")
    monkeypatch.setattr(kernels, "MIN_WORK_PER_THREAD", 256 * 16)
    monkeypatch.setattr(kernels, "PASS_ROWS", 100)  # several sgemm chunks per block

    x = clustered(4000, d=16, clusters=20, intrinsic=2, seed=20 + seed)
    pre = clustered(30, d=16, clusters=20, intrinsic=2, seed=40 + seed)
    x_before = x.copy()
    state = FarthestPointState(x, capacity=1000, mode=mode)
    picks, _, _ = farthest_point_order(x, 1000, preselected=pre, state=state)
    assert picks.tolist() == reference_order(x_before, 1000, pre)
    assert np.array_equal(x, x_before)
    assert state.threads == 3 and state.nblk == 12
    if mode == "dense":
        # Batched: one pass per BATCH selected vectors at most, most picks proven by the lazy search.
        assert not state.switches and 1030 // kernels.BATCH <= state.dense_passes < 1030 // 2
        assert state.lazy_picks > 500
    else:
        assert ("pruned" in [m for _, m in state.switches]) and state.dense_passes >= 1


@pytest.mark.parametrize(("batch", "first", "candidates", "limit"),
                         [(1, 1, 4, 2), (3, 3, 8, 1000), (16, 16, 2, 1), (64, 64, 4000, 4000), (256, 5, 64, 256)])
def test_batched_dense_passes_and_lazy_search_match_reference(batch, first, candidates, limit, monkeypatch):
    # The dense mode's batch of pending vectors, the candidate list of the lazy search and its give-up
    # limit at extremes (tiny lists that often cannot prove the next pick, passes at every pick, one pass
    # for many picks; a batch of 5 that grows to the largest, 256, after 100 selected vectors); preselected
    # vectors go through the same batches. Picks equal the slow reference.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "BATCH", batch)
    monkeypatch.setattr(kernels, "FIRST_BATCH", first)
    monkeypatch.setattr(kernels, "BATCH_GROW_AT", 100)
    monkeypatch.setattr(kernels, "CANDIDATES", candidates)
    monkeypatch.setattr(kernels, "LAZY_LIMIT", limit)
    x = clustered(2500, d=12, clusters=15, intrinsic=3, seed=7)
    pre = clustered(40, d=12, clusters=15, intrinsic=3, seed=8)
    state = FarthestPointState(x.copy(), capacity=640, mode="dense")
    picks, dists, _ = farthest_point_order(state.x, 600, preselected=pre, state=state)
    assert picks.tolist() == reference_order(x, 600, pre)
    assert np.all(np.diff(dists) <= 1e-12)
    assert np.allclose(state.d2, brute_min_d2(x, np.concatenate([pre, x[picks]])), atol=1e-9)  # all current
    assert state.batch == batch  # (the growing case did grow)


def test_dense_passes_skip_rows_by_their_group_bound_and_a_broken_bound_breaks_the_order(monkeypatch):
    # A dense pass multiplies only the rows that their group's bound (distance of the owner's centre to the
    # nearest pending vector) cannot exclude: many rows are skipped and the picks are the reference's; with a
    # broken bound (delta < 0 excludes rows that would get nearer) they are not. (Batches of 64: 400 picks of
    # 3,000 rows in 4 passes of the default 128 leave each pass' bound little to skip at this size.)
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "FIRST_BATCH", 64)

    x = clustered(3000, seed=21)
    want = reference_order(x, 400)
    good = FarthestPointState(x.copy(), capacity=400, mode="dense")
    assert farthest_point_order(good.x, 400, state=good)[0].tolist() == want
    assert good.live_rows < 0.8 * good.dense_passes * len(x)
    bad = FarthestPointState(x.copy(), capacity=400, mode="dense")
    bad.delta = -0.3
    assert farthest_point_order(bad.x, 400, state=bad)[0].tolist() != want


def test_lazy_search_candidates_are_the_top_unselected_ties_to_the_lowest_index():
    # The lazy search's candidate list (one heap pass, no O(N) temporaries) against a full sort: largest d2
    # first, ties to the lowest original index, selected positions never listed, fewer when fewer are left.
    from lightly_airflow.selection.kernels import _top_candidates

    rng = np.random.default_rng(3)
    for trial in range(200):
        n = int(rng.integers(1, 2000))
        d2 = rng.integers(0, 8, n).astype(float) if trial % 2 else rng.random(n)  # (many ties when odd)
        d2[rng.random(n) < 0.1] = np.inf
        sel = rng.random(n) < rng.random()
        orig = rng.permutation(n).astype(np.int32)
        m = int(rng.integers(1, n + 1))
        unsel = np.flatnonzero(~sel)
        want = unsel[np.lexsort((orig[unsel], -d2[unsel]))][:m]
        cand, ckey = np.zeros(m, dtype=np.int64), np.zeros(m)
        size, more = _top_candidates(d2, sel, orig, m, cand, ckey)
        assert (size, more) == (len(want), len(unsel) > m)
        assert cand[:size].tolist() == want.tolist()
        assert ckey[:size].tolist() == d2[want].tolist()


@pytest.mark.parametrize("abort", [False, True])
def test_auto_switches_back_to_dense_passes_and_stays_exact(monkeypatch, abort):
    # Force the round trip dense -> pruned -> dense -> pruned and compare every pick with the reference;
    # with abort=True every pruned trial ends early (at its first pick: the time budget of ABORT_AFTER picks
    # is spent), mid-batch of the dense mode.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "SLOWER_BY", -1.0)  # and always find it slower
    monkeypatch.setattr(kernels, "ABORT_SLOWER_BY", -1.0 if abort else np.inf)
    monkeypatch.setattr(kernels, "ABORT_AFTER", 3)
    x = clustered(3000, seed=13)
    x_before = x.copy()
    k = 400 + 6 * kernels.CHECK_EVERY  # room for two dense -> pruned round trips at any BATCH
    state = kernels.FarthestPointState(x, capacity=k, mode="auto")
    picks, _, _ = farthest_point_order(x, k, state=state)
    assert picks.tolist() == reference_order(x_before, k)
    switches = state.switches
    assert [m for _, m in switches][:4] == ["pruned", "dense", "pruned", "dense"]
    trial = switches[1][0] - switches[0][0]
    assert trial == (1 if abort else 3 + kernels.CHECK_EVERY)  # (a promising trial regroups after 3 picks)
    assert np.array_equal(x, x_before)


def test_dense_pass_pair_bounds_compute_few_products_and_stay_exact(monkeypatch):
    # Every chunk of a dense pass either multiplies its gathered rows by every pending vector (sgemm,
    # PAIR_COST = inf) or computes only the (row, vector) pairs the pair bound d(c, j) >= 2 d(x, c) + δ cannot
    # exclude, nearest vectors first, ties to the earlier pick (PAIR_COST = 0): the reference's picks and the
    # same d2 and owners, bit for bit, both ways, far fewer products the second way; a broken bound breaks it.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    x = clustered(3000, seed=22)
    pre = clustered(20, seed=23)
    want = reference_order(x, 500, pre)
    states = {}
    for pair_cost in (0.0, np.inf):
        monkeypatch.setattr(kernels, "PAIR_COST", pair_cost)
        state = states[pair_cost] = FarthestPointState(x.copy(), capacity=520, mode="dense")
        picks = farthest_point_order(state.x, 500, preselected=pre, state=state)[0]
        assert picks.tolist() == want
        assert np.allclose(state.d2, brute_min_d2(x, np.concatenate([pre, x[picks]])), atol=1e-9)
    pairs, every = states[0.0], states[np.inf]
    assert np.array_equal(pairs.d2, every.d2) and np.array_equal(pairs.owner, every.owner)
    assert pairs.live_rows == every.live_rows and pairs.pairs < 0.3 * every.pairs
    monkeypatch.setattr(kernels, "PAIR_COST", 0.0)
    bad = FarthestPointState(x.copy(), capacity=520, mode="dense")
    bad.delta = -0.3
    assert farthest_point_order(bad.x, 500, preselected=pre, state=bad)[0].tolist() != want


def test_group_bounds_in_blocks_on_threads_equal_those_of_one_thread(monkeypatch):
    # A pass' group bounds run in blocks of GROUP_BLOCK groups on the selection threads, each block's pair lists
    # copied into the flat lists wherever its block lands: with blocks of 7 groups on 3 threads the picks are
    # the reference's and d2 and owners are bit for bit those of one thread in one block.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "PAIR_COST", 0.0)  # (pair lists on every pass)
    monkeypatch.setattr(kernels, "MIN_WORK_PER_THREAD", 256 * 16)
    x = clustered(3000, seed=24)
    pre = clustered(20, seed=25)
    states = {}
    for threads, block in ((1, 1024), (3, 7)):
        monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", str(threads))
        monkeypatch.setattr(kernels, "GROUP_BLOCK", block)
        state = states[threads] = FarthestPointState(x.copy(), capacity=520, mode="dense")
        picks = farthest_point_order(state.x, 500, preselected=pre, state=state)[0]
        assert picks.tolist() == reference_order(x, 500, pre)
        assert state.threads == threads and state.pairs > 0
    assert int(states[3].st[0]) > 10 * 7  # (many blocks)
    assert np.array_equal(states[1].d2, states[3].d2) and np.array_equal(states[1].owner, states[3].owner)


def test_many_preselected_bound_only_groups_owning_rows_and_list_long_pair_lists_unsorted(monkeypatch):
    # More preselected vectors than candidates: each becomes a group, most own no row. Passes then bound only
    # the groups that own one, and a group keeping more than PAIR_SORT_MAX pairs lists them unsorted (all for
    # every member): the reference's picks, and d2 and owners bit for bit those of bounding every group with
    # sorted lists.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "PAIR_COST", 0.0)  # (pair lists on every pass)
    monkeypatch.setattr(kernels, "BULK_INSERT_MIN", 10**9)  # (one at a time: test_nearest covers the bulk path)
    x = clustered(1500, d=16, clusters=12, intrinsic=3, seed=26)
    pre = clustered(2500, d=16, clusters=12, intrinsic=3, seed=27)
    want = reference_order(x, 200, pre)
    states = {}
    for name, live_at, sort_max in (("all", 10**9, kernels.BATCH), ("live", 0, 2)):
        monkeypatch.setattr(kernels, "LIVE_GROUPS_AT", live_at)
        monkeypatch.setattr(kernels, "PAIR_SORT_MAX", sort_max)
        state = states[name] = FarthestPointState(x.copy(), capacity=2700, mode="dense")
        assert farthest_point_order(state.x, 200, preselected=pre, state=state)[0].tolist() == want
    assert states["live"].bounded_groups < 0.8 * states["all"].bounded_groups
    assert np.array_equal(states["live"].d2, states["all"].d2)
    assert np.array_equal(states["live"].owner, states["all"].owner)


def test_catch_up_of_the_few_positions_above_the_lazy_value_replaces_passes_and_stay_exact(monkeypatch):
    # When the lazy search cannot prove the next pick, the positions whose stored d2 is at least the best
    # current value it found are brought up to date (the others cannot beat it) instead of a pass over every
    # row: fewer passes, the reference's picks, the same d2 and owners as with passes only (CATCH_UP_ROWS = 0).
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    x = clustered(6000, seed=24)
    pre = clustered(10, seed=25)
    want = reference_order(x, 700, pre)
    states = {}
    for rows in (kernels.CATCH_UP_ROWS, 0):
        monkeypatch.setattr(kernels, "CATCH_UP_ROWS", rows)
        state = states[rows] = FarthestPointState(x.copy(), capacity=710, mode="dense")
        picks = farthest_point_order(state.x, 700, preselected=pre, state=state)[0]
        assert picks.tolist() == want
        assert np.allclose(state.d2, brute_min_d2(x, np.concatenate([pre, x[picks]])), atol=1e-9)
    fast, slow = states[16384], states[0]
    assert fast.catch_ups >= 5 and slow.catch_ups == 0 and fast.dense_passes < slow.dense_passes
    assert np.array_equal(fast.d2, slow.d2) and np.array_equal(fast.owner[fast.pos], slow.owner[slow.pos])


def test_scans_between_passes_in_shares_on_threads_equal_those_of_one_share(monkeypatch):
    # The lazy search's candidates and the catch-up of the positions above its value run on the
    # selection threads, one share of the positions each (the shares' top lists merged, the shares' farthest
    # compared): the reference's picks, and d2, owners and every counter bit for bit those of one share. Every
    # row has a twin in another share: the farthest ties across shares (to the lowest index).
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "MIN_WORK_PER_THREAD", 256)
    monkeypatch.setattr(kernels, "CANDIDATES", 64)  # (fewer than a share holds: the merge leaves some out)
    half = clustered(3000, seed=31)
    x = np.concatenate([half, half])
    pre = clustered(10, seed=32)
    want = reference_order(x, 700, pre)
    states = {}
    for threads, scan_rows in ((1, kernels.SCAN_ROWS), (3, 700)):
        monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", str(threads))
        monkeypatch.setattr(kernels, "SCAN_ROWS", scan_rows)
        state = states[threads] = FarthestPointState(x.copy(), capacity=710, mode="dense")
        assert len(state._scans) == threads
        assert farthest_point_order(state.x, 700, preselected=pre, state=state)[0].tolist() == want
    one, three = states[1], states[3]
    assert three.catch_ups >= 5 and three.lazy_picks > 100
    assert (three.catch_ups, three.lazy_picks, three.dense_passes) == (one.catch_ups, one.lazy_picks, one.dense_passes)
    assert np.array_equal(one.d2, three.d2) and np.array_equal(one.owner, three.owner)


def test_shares_of_permuted_rows_tie_to_the_lowest_original_index(monkeypatch):
    # After a pruned trial the rows sit permuted (position != original index). Here every twin pair is split
    # across shares with the later share holding the lower original index: the shares' farthest (the catch-ups)
    # and their merged lists must still tie to the lowest original index, as the reference does.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "MIN_WORK_PER_THREAD", 256)
    monkeypatch.setattr(kernels, "CANDIDATES", 64)
    monkeypatch.setattr(kernels, "SCAN_ROWS", 700)
    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "3")
    half = clustered(3000, seed=31)
    x = np.concatenate([half, half])  # (row i and row i + 3,000 are twins)
    pre = clustered(10, seed=32)
    want = reference_order(x, 700, pre)
    perm = np.concatenate([np.arange(3000, 6000), np.arange(3000)])  # (position p holds original row perm[p])
    state = FarthestPointState(x[perm].copy(), capacity=710, mode="dense")
    assert len(state._scans) == 3
    state.orig[:] = perm
    state.pos[:] = np.argsort(perm)
    picks, _, _ = farthest_point_order(x, 700, preselected=pre, state=state)
    assert state.catch_ups >= 5 and state.lazy_picks > 100
    assert picks.tolist() == want


def test_candidates_of_shares_merged_are_the_top_unselected_ties_to_the_lowest_index(monkeypatch):
    # The merged lists of the shares against a full sort, as for one list: many ties across shares, selected
    # positions, fewer unselected than wanted, a share with none unselected.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr(kernels, "SCAN_ROWS", 50)
    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "4")
    rng = np.random.default_rng(5)
    left = 0
    for trial in range(60):
        n = int(rng.integers(200, 1500))
        state = FarthestPointState(rng.standard_normal((n, 3)).astype(np.float32), capacity=16, mode="dense")
        assert len(state._scans) == 4
        d2 = rng.integers(0, 5, n).astype(float) if trial % 2 else rng.random(n)
        sel = rng.random(n) < (0.99 if trial % 3 == 0 else rng.random())
        if trial % 5 == 0:  # (every share but the last all selected: its own list is the merged one)
            sel[: state._scans[-1][0]] = True
        orig = rng.permutation(n).astype(state.orig.dtype)
        state._d2[:], state.sel[:], state.orig[:] = d2, sel, orig
        unsel = np.flatnonzero(~sel)
        monkeypatch.setattr(kernels, "CANDIDATES", int(rng.integers(1, len(unsel) + 3)))  # (more or fewer)
        state._candidates()
        want = unsel[np.lexsort((orig[unsel], -d2[unsel]))][: kernels.CANDIDATES]
        assert state._cand[: state._ncand].tolist() == want.tolist()
        assert state._ckey[: state._ncand].tolist() == d2[want].tolist()
        left_out = len(unsel) > kernels.CANDIDATES
        assert state._tail == (d2[want[-1]] if left_out else -1.0)
        left += left_out and trial % 5 == 0
    assert left >= 3


@pytest.mark.parametrize("pair_cost", [0.0, np.inf])
def test_a_tie_between_pending_vectors_goes_to_the_earlier_pick_on_both_chunk_paths(pair_cost, monkeypatch):
    # Row e1 is owned by centre c; pending p1 (earlier) and p2 (later) are exactly as far from e1 (mirror
    # images), and p2 is the nearer to c, so the pair path meets p2 first: the owner is still p1, as when the
    # vectors are applied in pick order (sgemm path).
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    monkeypatch.setattr(kernels, "PAIR_COST", pair_cost)
    t, s = 0.3, 0.5
    x = np.array([[1, 0, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32)
    state = FarthestPointState(x.copy(), capacity=8, mode="dense")
    state.insert(np.array([np.cos(s), -np.sin(s), 0], dtype=np.float32))  # c: group 1
    state.sync()
    assert state.owner[state.pos[0]] == 1
    state.insert(np.array([np.cos(t), np.sin(t), 0], dtype=np.float32))  # p1: group 2
    state.insert(np.array([np.cos(t), -np.sin(t), 0], dtype=np.float32))  # p2: group 3
    state.sync()
    assert state.owner[state.pos[0]] == 2
    assert state.pairs >= 2


def test_ties_and_duplicates_in_dense_mode(monkeypatch):
    # Integer directions: many exactly equal distances. The pair path (PAIR_COST = 0) meets a row's pending
    # vectors nearest first, so ties between them go to the earlier pick explicitly: the same owners as the
    # sgemm path, which applies them in pick order.
    from lightly_airflow.selection import kernels
    from lightly_airflow.selection.kernels import FarthestPointState

    rng = np.random.default_rng(5)
    base = rng.integers(-2, 3, size=(30, 8)).astype(np.float32)
    base[np.all(base == 0, axis=1)] = 1
    x = np.repeat(base, 4, axis=0)[rng.permutation(120)]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    owners = []
    for pair_cost in (0.0, np.inf):
        monkeypatch.setattr(kernels, "PAIR_COST", pair_cost)
        for mode in ("dense", "auto"):
            state = FarthestPointState(x.copy(), capacity=len(x), mode=mode)
            picks, _, _ = farthest_point_order(x, len(x), state=state)
            assert picks.tolist() == reference_order(x, len(x))
        state = FarthestPointState(x.copy(), capacity=60, mode="dense")
        farthest_point_order(x, 60, state=state)
        owners.append(state.owner[state.pos].copy())
    assert np.array_equal(owners[0], owners[1])


@pytest.mark.parametrize(("batch", "candidates", "chunk", "grow_at"),
                         [(1, 1, 7, 512), (3, 5, 100, 512), (16, 256, 8192, 512), (64, 4000, 333, 512), (5, 64, 100, 90)])
def test_numpy_state_matches_reference(batch, candidates, chunk, grow_at, monkeypatch):
    # The numpy-only state (small inputs: no numba import) at extreme batch / candidate-list / chunk sizes,
    # with preselected vectors, non-unit norms and a wide dimension: picks equal the slow reference and
    # every distance is canonical after the last batch. grow_at: the batch triples from that many vectors on.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", batch)
    monkeypatch.setattr(kernels, "NUMPY_BATCH_GROW_AT", grow_at)
    monkeypatch.setattr(kernels, "NUMPY_BATCH_GROWTH", 3)
    monkeypatch.setattr(kernels, "NUMPY_CANDIDATES", candidates)
    monkeypatch.setattr(kernels, "CHUNK_ROWS", chunk)
    monkeypatch.setattr(kernels, "_BLOCK_VALUES", 1 if batch == 16 else 2**18)  # (blocks of 64 rows)
    x = clustered(1500, d=40, clusters=12, intrinsic=3, seed=31)
    x *= np.random.default_rng(4).uniform(0.5, 2.0, size=(len(x), 1)).astype(np.float32)
    pre = clustered(20, d=40, clusters=12, intrinsic=3, seed=32)
    state = kernels.NumpyDenseState(x.copy(), capacity=400)
    picks, dists, _ = farthest_point_order(state.x, 400, preselected=pre, state=state)
    assert picks.tolist() == reference_order(x, 400, pre)
    assert np.all(np.diff(dists) <= 1e-12)
    assert np.allclose(state.d2, brute_min_d2(x, np.concatenate([pre, x[picks]])), atol=1e-9)
    assert state._batch == (batch if grow_at > 420 else 3 * batch)


@pytest.mark.parametrize(("lo", "hi", "parts"), [(0, 10, 3), (5, 6, 4), (0, 8000, 2), (7, 7, 2), (3, 1000, 1)])
def test_even_shares_cover_the_range_in_order(lo, hi, parts):
    from lightly_airflow.selection.kernels import even_shares

    shares = even_shares(lo, hi, parts)
    assert len(shares) == parts
    assert shares[0][0] == lo and shares[-1][1] == hi
    assert all(a[1] == b[0] for a, b in zip(shares, shares[1:], strict=False))  # contiguous, in order
    sizes = [b - a for a, b in shares]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1


def test_canonical_norms_split_over_threads_keep_the_bits(monkeypatch):
    # Above MIN_WORK_PER_THREAD per thread the rows are cut into shares, one per thread (three here: uneven).
    from lightly_airflow.selection import kernels

    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "3")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3 * kernels.MIN_WORK_PER_THREAD // 256 + 7, 256)).astype(np.float32)
    assert np.array_equal(kernels.canonical_sqnorms_np(x), kernels.sequential_dots(x, x))


def test_numpy_state_equals_compiled_state_bit_for_bit():
    # Same canonical values (not just the same picks) on wide real-like vectors, ties and duplicates included.
    from lightly_airflow.selection import kernels

    rng = np.random.default_rng(9)
    x = rng.standard_normal((600, 1280)).astype(np.float32)
    x[300:] = x[:300]  # duplicates: exact ties
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert np.array_equal(kernels.canonical_sqnorms_np(x), kernels.canonical_sqnorms(x))
    a = kernels.NumpyDenseState(x.copy())
    b = kernels.FarthestPointState(x.copy(), mode="dense")
    pa_, da, _ = farthest_point_order(a.x, 400, state=a)
    pb, db, _ = farthest_point_order(b.x, 400, state=b)
    assert pa_.tolist() == pb.tolist() and np.array_equal(da, db)
    assert np.array_equal(a.d2, b.d2)
    assert pa_.tolist()[:300] == reference_order(x, 300)
    lattice = rng.integers(-2, 3, size=(30, 8)).astype(np.float32)
    lattice[np.all(lattice == 0, axis=1)] = 1
    y = np.repeat(lattice, 4, axis=0)[rng.permutation(120)]
    y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
    picks, _, _ = farthest_point_order(y, len(y), state=kernels.NumpyDenseState(y.copy()))
    assert picks.tolist() == reference_order(y, len(y))


def test_small_inputs_use_the_numpy_state_and_large_ones_the_compiled_one(monkeypatch):
    from lightly_airflow.selection import kernels

    x = clustered(300, d=8, seed=2)
    assert isinstance(kernels.farthest_point_state(x), kernels.NumpyDenseState)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS", 299)
    # above it, while candidates x picks is at most NUMPY_MAX_WORK (and no pool of NUMPY_POOL_WIDE)
    monkeypatch.setattr(kernels, "NUMPY_MAX_WORK", 300 * 40)
    assert isinstance(kernels.farthest_point_state(x, capacity=40), kernels.NumpyDenseState)
    assert isinstance(kernels.farthest_point_state(x, capacity=41), kernels.FarthestPointState)
    # (that rule was measured for DIVERSITY alone: a heap's state goes by the others, its own rows limit first)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP", 300)
    assert isinstance(kernels.farthest_point_state(x, capacity=41, alone=False), kernels.NumpyDenseState)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP", 299)
    assert isinstance(kernels.farthest_point_state(x, capacity=40, alone=False), kernels.FarthestPointState)
    assert isinstance(kernels.farthest_point_state(x, capacity=45, pool=5), kernels.NumpyDenseState)
    monkeypatch.setattr(kernels, "NUMPY_POOL_WIDE", 5)
    assert isinstance(kernels.farthest_point_state(x, capacity=45, pool=5), kernels.FarthestPointState)
    monkeypatch.setattr(kernels, "NUMPY_MAX_WORK", -1)
    assert isinstance(kernels.farthest_point_state(x), kernels.FarthestPointState)
    # wide inputs keep the numpy state up to NUMPY_MAX_ROWS_WIDE rows (the compiled bounds rarely pay there)
    monkeypatch.setattr(kernels, "NUMPY_WIDE_DIM", 16)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_WIDE", 400)
    wide = clustered(401, d=16, seed=3)
    assert isinstance(kernels.farthest_point_state(wide[:400]), kernels.NumpyDenseState)
    assert isinstance(kernels.farthest_point_state(wide), kernels.FarthestPointState)
    assert isinstance(kernels.farthest_point_state(x), kernels.FarthestPointState)  # (8 dimensions)
    # a heap's state stays numpy up to NUMPY_MAX_ROWS_HEAP_WIDE rows from NUMPY_HEAP_WIDE_DIM dimensions
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP", 100)
    monkeypatch.setattr(kernels, "NUMPY_HEAP_WIDE_DIM", 16)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP_WIDE", 401)
    assert isinstance(kernels.farthest_point_state(wide, alone=False), kernels.NumpyDenseState)
    assert isinstance(kernels.farthest_point_state(wide), kernels.FarthestPointState)  # (alone)
    assert isinstance(kernels.farthest_point_state(x, alone=False), kernels.FarthestPointState)  # (8 dimensions)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP_WIDE", 400)
    assert isinstance(kernels.farthest_point_state(wide, alone=False), kernels.FarthestPointState)
    # ... and at any size after a pool of NUMPY_POOL_WIDE vectors (the lazy pool skips most of its products)
    monkeypatch.setattr(kernels, "NUMPY_POOL_WIDE", 50)
    assert isinstance(kernels.farthest_point_state(wide, pool=50), kernels.NumpyDenseState)
    assert isinstance(kernels.farthest_point_state(wide, pool=50, alone=False), kernels.NumpyDenseState)
    assert isinstance(kernels.farthest_point_state(wide, pool=49), kernels.FarthestPointState)
    assert isinstance(kernels.farthest_point_state(x, pool=50), kernels.FarthestPointState)  # (8 dimensions)


def _states_made(monkeypatch, *modules) -> list[str]:  # type: ignore[no-untyped-def]
    """The class names of the states ``farthest_point_state`` makes from now on, called through ``modules``."""
    from lightly_airflow.selection import kernels

    made: list[str] = []
    real = kernels.farthest_point_state

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        state = real(*a, **k)
        made.append(type(state).__name__)
        return state

    for module in modules:
        monkeypatch.setattr(module, "farthest_point_state", spy)
    return made


def test_a_datapool_run_passes_its_pool_size_to_the_routing(monkeypatch):
    # Both callers (the order and the engine's DIVERSITY) route by the preselected vectors they will insert.
    from lightly_airflow.selection import kernels, objectives

    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS", 100)
    monkeypatch.setattr(kernels, "NUMPY_MAX_WORK", -1)
    monkeypatch.setattr(kernels, "NUMPY_WIDE_DIM", 16)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_WIDE", 100)
    monkeypatch.setattr(kernels, "NUMPY_POOL_WIDE", 60)
    made = _states_made(monkeypatch, kernels, objectives)
    x = clustered(400, d=16, seed=4)
    for pre in (x[:59], x[:60]):
        farthest_point_order(x[100:], 20, preselected=pre)
        cfg = parse_selection_config({"n_samples": 20, "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]})
        select(table_of(x[100:]), cfg, preselected=table_of(pre))
    assert made == ["FarthestPointState"] * 2 + ["NumpyDenseState"] * 2


def test_a_heap_reads_the_compiled_state_past_the_rows_limit_where_diversity_alone_keeps_numpy(monkeypatch):
    # Candidates x picks below NUMPY_MAX_WORK keep the numpy state for DIVERSITY alone; with WEIGHTS (a heap reads
    # the state) the rows limit decides: the compiled state and its heap, the same picks as rescoring every pick.
    from lightly_airflow.selection import engine, kernels, objectives

    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS", 100)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP", 200)
    monkeypatch.setattr(kernels, "NUMPY_MAX_WORK", 400 * 30)
    made = _states_made(monkeypatch, objectives)
    x = clustered(400, d=16, seed=5)
    t = table_of(x, **{"metadata.w": np.random.default_rng(3).random(len(x))})
    div = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}
    weights = {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}}
    select(t, {"n_samples": 30, "strategies": [div]})
    got = select(t, {"n_samples": 30, "strategies": [div, weights]}).indices.tolist()
    assert made == ["NumpyDenseState", "FarthestPointState"]
    assert got == _dense_select(engine, t, {"n_samples": 30, "strategies": [div, weights]})


def test_projection_bound_only_for_selections_large_enough_to_repay_it():
    # The basis and lift cost about 7 passes' products; a selection of fewer than PROJECTION_MIN_PICKS vectors
    # does not win them back, so the state never builds them (same picks either way: the bound only skips work).
    from lightly_airflow.selection import kernels

    x = clustered(kernels.PROJECTION_MIN_PICKS, d=kernels.PROJECTION_MIN_DIM, clusters=10, intrinsic=6, seed=3)
    assert kernels.NumpyDenseState(x, capacity=kernels.PROJECTION_MIN_PICKS - 1).proj is None
    assert kernels.NumpyDenseState(x, capacity=10**6).proj is not None
    assert kernels.NumpyDenseState(x[:-1], capacity=10**6).proj is None  # (fewer rows than that: fewer picks)


def _projected_state(kernels, x, rank):
    state = kernels.NumpyDenseState(x.copy(), capacity=len(x))
    assert state.proj is not None and state.proj.rank == rank
    return state


@pytest.mark.parametrize(("batch", "block_values"), [(1, 2**18), (16, 2**18), (16, 1)])
def test_numpy_state_with_projection_bound_matches_reference(batch, block_values, monkeypatch):
    # The lifted-projection filter forced on small wide data (non-unit norms, preselected vectors): the same
    # picks as the slow reference, the same canonical values as the compiled state, and the filter really
    # skipped rows (so the test exercises it). block_values = 1: row gathers and float64 temporaries in
    # blocks of 64 rows (the memory bound of wide inputs), so every blocked loop runs many times.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "_BLOCK_VALUES", block_values)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_ROWS", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_DIM", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_PICKS", 0)
    monkeypatch.setattr(kernels, "PROJECTION_RANK", 12)
    monkeypatch.setattr(kernels, "NUMPY_BATCH", batch)
    x = clustered(1200, d=96, clusters=10, intrinsic=4, seed=41)
    x *= np.random.default_rng(5).uniform(0.5, 2.0, size=(len(x), 1)).astype(np.float32)
    pre = clustered(15, d=96, clusters=10, intrinsic=4, seed=42) * 1.5
    state = _projected_state(kernels, x, 12)
    picks, _, _ = farthest_point_order(state.x, 300, preselected=pre, state=state)
    assert picks.tolist() == reference_order(x, 300, pre)
    assert state.rows_exact < 0.5 * state.dense_passes * len(x)
    other = kernels.FarthestPointState(x.copy(), mode="dense")
    farthest_point_order(other.x, 300, preselected=pre, state=other)
    assert np.array_equal(state.d2, other.d2)


def test_projection_bound_with_ties_and_duplicates(monkeypatch):
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "PROJECTION_MIN_ROWS", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_DIM", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_PICKS", 0)
    rng = np.random.default_rng(6)
    base = rng.integers(-2, 3, size=(40, 16)).astype(np.float32)
    base[np.all(base == 0, axis=1)] = 1
    y = np.repeat(base, 4, axis=0)[rng.permutation(160)]
    y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
    picks, _, _ = farthest_point_order(y, len(y), state=_projected_state(kernels, y, 4))
    assert picks.tolist() == reference_order(y, len(y))


def test_a_broken_projection_slack_changes_the_picks(monkeypatch):
    # The exactness tests above can fail: with the rounding slack of the lifted vectors replaced by a
    # negative one (bounds 5 % of the norms above the true lower bound) rows are skipped that a pick does
    # get nearer to, and the picks leave the reference order (on this data from -0.03 on; at -0.02 three
    # distances already differ from the compiled state's).
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "PROJECTION_MIN_ROWS", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_DIM", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_PICKS", 0)
    monkeypatch.setattr(kernels, "PROJECTION_RANK", 12)
    monkeypatch.setattr(kernels, "PROJECTION_SLACK", -0.05)
    x = clustered(1200, d=96, clusters=10, intrinsic=4, seed=41)
    picks, _, _ = farthest_point_order(x, 300, state=_projected_state(kernels, x, 12))
    assert picks.tolist() != reference_order(x, 300)


def test_lazy_canonical_values_match_the_compiled_state_when_read_midway(monkeypatch):
    # Values kept as float32 approximations between decisions are canonical whenever they are read: after
    # every pick (distance2 of arbitrary rows, d2 of all) they equal the compiled state's, bit for bit.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "PROJECTION_MIN_ROWS", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_DIM", 0)
    monkeypatch.setattr(kernels, "PROJECTION_MIN_PICKS", 0)
    x = clustered(900, d=64, clusters=9, intrinsic=3, seed=43)
    a = kernels.NumpyDenseState(x.copy())
    b = kernels.FarthestPointState(x.copy(), mode="dense")
    rng = np.random.default_rng(7)
    for step in range(60):
        i, r = a.farthest()
        assert (i, r) == b.farthest()
        rows = rng.integers(0, len(x), 5)
        assert [a.distance2(int(v)) for v in rows] == [b.distance2(int(v)) for v in rows]
        if step % 7 == 3:  # the coverage radius from the contenders only, before any full read
            assert a.max_d2() == b.max_d2() == float(b.d2.max())
        a.select(i)
        b.select(i)
        if step % 20 == 19:
            assert np.array_equal(a.d2, b.d2)
    assert a.stats[1] < 60 * len(x) // 4  # most improvements stayed float32 (canonical ones counted)


def _waiting_data():
    x = clustered(2000, d=48, clusters=12, intrinsic=4, seed=51)
    x *= np.random.default_rng(6).uniform(0.5, 2.0, size=(len(x), 1)).astype(np.float32)
    return x, clustered(10, d=48, clusters=12, intrinsic=4, seed=52)


@pytest.mark.parametrize(("batch", "candidates"), [(8, 4), (16, 16), (32, 64)])
def test_numpy_state_rows_wait_and_catch_up_exactly(batch, candidates, monkeypatch):
    # Rows far below the picks' distance wait instead of taking every batch: the same picks as the reference
    # and the same canonical values as the compiled state, with ~40 % fewer products than passes over every
    # row (so rows really waited, and caught up on what they missed where needed).
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", batch)
    monkeypatch.setattr(kernels, "NUMPY_CANDIDATES", candidates)
    x, pre = _waiting_data()
    products = {}
    for ahead in (0, 2):
        monkeypatch.setattr(kernels, "NUMPY_DEFER_AHEAD", ahead)
        state = kernels.NumpyDenseState(x.copy(), capacity=610)
        picks, _, _ = farthest_point_order(state.x, 600, preselected=pre, state=state)
        assert picks.tolist() == reference_order(x, 600, pre)
        products[ahead] = int(state.stats[3])  # (before reading every distance: that brings every row up to date)
        assert (state.rows_waited > 0) == (ahead > 0)
        other = kernels.FarthestPointState(x.copy(), mode="dense")
        farthest_point_order(other.x, 600, preselected=pre, state=other)
        assert np.array_equal(state.d2, other.d2)
    assert products[2] < 0.7 * products[0]


def _pool_kernels(monkeypatch, projection: bool, block: int):
    """The kernels module with small batches and pool blocks, and the projection bound forced on or not."""
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", 16)
    monkeypatch.setattr(kernels, "NUMPY_BULK_BLOCK", block)
    if projection:
        for name in ("PROJECTION_MIN_ROWS", "PROJECTION_MIN_DIM", "PROJECTION_MIN_PICKS"):
            monkeypatch.setattr(kernels, name, 0)
        monkeypatch.setattr(kernels, "PROJECTION_RANK", 12)
    return kernels


@pytest.mark.parametrize("projection", [False, True])
def test_numpy_state_inserts_a_pool_at_once_with_the_values_of_one_at_a_time(projection, monkeypatch):
    # A pool of preselected vectors (non-unit norms, some equal to candidates) applied in blocks at once: the
    # same canonical values and owners as inserting them one at a time and as the compiled state, the same
    # picks as the reference.
    kernels = _pool_kernels(monkeypatch, projection, block=37)
    x, _ = _waiting_data()
    pool = np.concatenate([clustered(300, d=48, clusters=12, intrinsic=4, seed=53) * 1.3, x[:20]])
    bulk = kernels.NumpyDenseState(x.copy(), capacity=700)
    one = kernels.NumpyDenseState(x.copy(), capacity=700)
    assert (bulk.proj is not None) == projection
    bulk.insert_many(pool)
    for row in pool:
        one.insert(row)
    assert bulk.dense_passes == 1 and one.dense_passes == len(pool) // 16
    assert np.array_equal(bulk.d2, one.d2) and np.array_equal(bulk._own, one._own)
    other = kernels.FarthestPointState(x.copy(), mode="dense")
    other.insert_many(pool)
    assert np.array_equal(bulk.d2, other.d2)
    state = kernels.NumpyDenseState(x.copy(), capacity=700)
    picks, _, _ = farthest_point_order(state.x, 300, preselected=pool, state=state)
    assert picks.tolist() == reference_order(x, 300, pool)
    with pytest.raises(ValueError, match="have dimension 48"):
        kernels.NumpyDenseState(x.copy()).insert_many(pool[:, :47])


@pytest.mark.parametrize("projection", [False, True])
def test_a_pool_goes_in_lazily_and_the_picks_stay_exact(projection, monkeypatch):
    # After a pool inserted at once, rows take its blocks only while their bound reaches the picks' distance:
    # the same picks as the reference and values as the compiled state with far fewer products than applying
    # the whole pool to every row; rows that stopped counted as up to date (a broken epoch) change the picks.
    kernels = _pool_kernels(monkeypatch, projection, block=40)
    x, _ = _waiting_data()
    pool = clustered(3200, d=48, clusters=12, intrinsic=4, seed=51)[2000:]  # (more of the candidates' kind)
    pool *= np.random.default_rng(9).uniform(0.5, 2.0, size=(len(pool), 1)).astype(np.float32)
    want = reference_order(x, 200, pool)
    products = {}
    for lazy in (0, 1):
        monkeypatch.setattr(kernels, "NUMPY_POOL_LAZY", lazy)
        state = kernels.NumpyDenseState(x.copy(), capacity=1400)
        assert farthest_point_order(state.x, 200, preselected=pool, state=state)[0].tolist() == want
        products[lazy] = int(state.stats[3])
        other = kernels.FarthestPointState(x.copy(), mode="dense")
        farthest_point_order(other.x, 200, preselected=pool, state=other)
        assert np.array_equal(state.d2, other.d2)
    assert products[1] < 0.6 * products[0]
    catch_up = kernels.NumpyDenseState._catch_up

    def forgetful(self, rows, total, stop_below=0.0):
        catch_up(self, rows, total, stop_below)
        self._epoch[rows] = total

    monkeypatch.setattr(kernels.NumpyDenseState, "_catch_up", forgetful)
    state = kernels.NumpyDenseState(x.copy(), capacity=1400)
    assert farthest_point_order(state.x, 200, preselected=pool, state=state)[0].tolist() != want


def test_waiting_rows_that_could_hold_the_maximum_catch_up_at_once(monkeypatch):
    # Every row told to wait after each pass: only the catch-up of the rows whose bound reaches the best
    # lower bound of the others keeps the picks exact; without it they differ within the first picks.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", 16)
    monkeypatch.setattr(kernels, "NUMPY_CANDIDATES", 16)
    monkeypatch.setattr(kernels.NumpyDenseState, "_wait_below",
                        lambda self: np.inf if np.isfinite(self._last) else 0.0)
    x, pre = _waiting_data()
    want = reference_order(x, 600, pre)
    state = kernels.NumpyDenseState(x.copy(), capacity=610)
    assert farthest_point_order(state.x, 600, preselected=pre, state=state)[0].tolist() == want
    monkeypatch.setattr(kernels.NumpyDenseState, "_close", lambda self: None)
    state = kernels.NumpyDenseState(x.copy(), capacity=610)
    assert farthest_point_order(state.x, 600, preselected=pre, state=state)[0].tolist()[:50] != want[:50]


def test_waiting_rows_read_midway_match_the_compiled_state(monkeypatch):
    # distance2 of any row (waiting ones included), the coverage radius and every distance, read between
    # picks: bit for bit the compiled state's.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", 8)
    monkeypatch.setattr(kernels, "NUMPY_CANDIDATES", 8)
    x, _ = _waiting_data()
    a = kernels.NumpyDenseState(x.copy())
    b = kernels.FarthestPointState(x.copy(), mode="dense")
    rng = np.random.default_rng(8)
    waiting_reads = 0
    for step in range(300):
        i, r = a.farthest()
        assert (i, r) == b.farthest()
        rows = rng.integers(0, len(x), 5)
        waiting_reads += int(np.sum((a._epoch[rows] < a.n_added - a._npend) & ~a.sel[rows]))
        assert [a.distance2(int(v)) for v in rows] == [b.distance2(int(v)) for v in rows]
        if step % 37 == 20:
            assert a.max_d2() == b.max_d2() == float(b.d2.max())
        a.select(i)
        b.select(i)
        if step % 100 == 99:
            assert np.array_equal(a.d2, b.d2)
    assert waiting_reads > 50 and a.rows_waited > 0


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 64, 65, 200])
def test_sequential_dots_sum_in_dimension_order(m):
    # Bit for bit the in-order float64 sum (np.add.accumulate), for every block size, a single row included
    # (numpy would sum one row pairwise).
    from lightly_airflow.selection.kernels import sequential_dots

    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, 1280)).astype(np.float32)
    b = rng.standard_normal((m, 1280))
    for other in (a, b):
        ref = np.add.accumulate(a.astype(np.float64) * other.astype(np.float64), axis=1)[:, -1]
        assert np.array_equal(sequential_dots(a, other), ref)


def test_parallel_pruned_picks_equal_the_serial_ones():
    # The pruned update with groups on two threads (numba prange) against one thread, forced for every pruned
    # pick of a small input (which would otherwise run on one thread): the same picks, canonical values,
    # groups and member order; and the slow reference's picks. Preselected vectors and duplicates included.
    from lightly_airflow.selection import kernels

    x = clustered(2500, d=24, clusters=15, intrinsic=3, seed=51)
    x[2000:] = x[:500]
    pre = clustered(10, d=24, clusters=15, intrinsic=3, seed=52)
    states = []
    for parallel in (False, True):
        st = kernels.FarthestPointState(x.copy(), capacity=500, mode="pruned", reorder_at=(64,))
        st.threads, st.parallel_pruned, st._par_check = 2, parallel, -1  # noqa: SLF001 (no trials)
        picks, dists, _ = farthest_point_order(st.x, 400, preselected=pre, state=st)
        states.append((picks, dists, st))
    (pa_, da, a), (pb, db, b) = states
    assert pa_.tolist() == pb.tolist() == reference_order(x, 400, pre)
    assert np.array_equal(da, db) and np.array_equal(a.d2, b.d2)
    g = int(a.st[0])
    assert np.array_equal(a.gsize[:g], b.gsize[:g]) and np.array_equal(a.grad2[:g], b.grad2[:g])
    for k in range(g):
        sa, sb = a.mem[a.gstart[k] : a.gstart[k] + a.gsize[k]], b.mem[b.gstart[k] : b.gstart[k] + b.gsize[k]]
        assert np.array_equal(a.orig[sa], b.orig[sb])
    assert np.array_equal(a.stats[[1, 2]], b.stats[[1, 2]])


def test_auto_pruned_mode_times_serial_and_parallel_picks(monkeypatch):
    # With more than one thread, pruned picks are timed serial then parallel and the faster kept (recorded).
    from lightly_airflow.selection import kernels

    x = clustered(3000, d=16, seed=53)
    st = kernels.FarthestPointState(x.copy(), mode="pruned")
    st.threads = 2
    st._par_check = 0  # noqa: SLF001
    k = 6 * kernels.CHECK_EVERY + 8  # past the second timing (at a doubling)
    picks, _, _ = farthest_point_order(st.x, k, state=st)
    assert picks.tolist() == reference_order(x, k)
    assert st.parallel_choices and st.parallel_choices[0][0] == 2 * kernels.CHECK_EVERY + 2  # (the first pick: untimed)
    assert st.parallel_choices[1][0] == 2 * st.parallel_choices[0][0] + 2 * kernels.CHECK_EVERY  # (at a doubling)


@pytest.mark.parametrize("dim", [96, 1280])
def test_float32_lift_stays_within_its_proven_error(dim):
    # The lifted vectors come from one float32 sgemm: each stored z(x) is within eps(x) of the exact lift by an
    # orthonormal basis (float64 here), rows lying in the basis' span (rho ~ 0, where the error of rho is a
    # square root of the error of |P^T x|^2) and long rows included; the bound is not vacuous (< 1 % of |x|
    # for generic rows, < 5 % in the span).
    from lightly_airflow.selection import kernels

    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, dim)).astype(np.float32)
    x[:50] *= 30.0
    sqn = kernels.canonical_sqnorms_np(x)
    proj = kernels.LiftedProjection(x, sqn, 16)
    inside = (proj.p @ rng.standard_normal((16, 80))).T.astype(np.float32)  # in the span of P
    rows = np.concatenate([x, inside])
    rows_sqn = kernels.canonical_sqnorms_np(rows)
    z, eps = proj.lift(rows, rows_sqn)
    px = rows.astype(np.float64) @ proj.p
    exact = np.concatenate([px, np.sqrt(np.maximum(rows_sqn - (px**2).sum(axis=1), 0.0))[:, None]], axis=1)
    err = np.linalg.norm(z.astype(np.float64) - exact, axis=1)
    assert np.all(err <= eps), float((err / eps).max())
    assert np.all(eps[:600] < 0.01 * np.sqrt(sqn)) and np.all(eps < 0.05 * np.sqrt(rows_sqn))  # (in-span rows: sqrt)
    stored = np.linalg.norm(proj.z.astype(np.float64) - exact[:600], axis=1)  # (the lift of the state's rows)
    assert np.all(stored <= proj.eps), float((stored / proj.eps).max())


@pytest.mark.parametrize(("projection", "rows"), [(False, None), (True, None), (False, (8, 2))])
def test_numpy_heap_after_a_lazy_pool_picks_as_rescoring_every_pick(projection, rows, monkeypatch):
    # DIVERSITY x WEIGHTS x BALANCE after a pool: the numpy heap's picks are those of rescoring every candidate
    # per pick and of the compiled heap, while its state takes the pool lazily and rows below the heap's key
    # level wait (some never take the whole history); a row read while it still waits on a lazy pool catches up
    # on what it missed first (the same canonical values as the compiled state). rows = (HEAP_ROWS,
    # HEAP_ROWS_LATE): fills of 8 rows that end at a waiting row after 2.
    kernels = _pool_kernels(monkeypatch, projection, block=37)
    monkeypatch.setattr(kernels, "HEAP_BAND_ROWS", 64)
    if rows is not None:
        monkeypatch.setattr(kernels, "HEAP_ROWS", rows[0])
        monkeypatch.setattr(kernels, "HEAP_ROWS_LATE", rows[1])
    from lightly_airflow.selection import engine

    x, _ = _waiting_data()
    pool = clustered(400, d=48, clusters=12, intrinsic=4, seed=54) * 1.2
    rng = np.random.default_rng(7)
    cand = table_of(x, **{"metadata.w": rng.random(len(x)),
                          "metadata.label": [str(v) for v in rng.integers(0, 3, len(x))]})
    pre = table_of(pool)
    cfg = {"n_samples": 150, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strength": 2.0}},
        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "label"},
         "strategy": {"type": "BALANCE", "target": {"0": 0.5, "1": 0.3}}}]}
    heaps: list = []

    def record(*a, **k):  # type: ignore[no-untyped-def]
        heaps.append(kernels.NumpyLazyHeap(*a, **k))
        return heaps[-1]

    monkeypatch.setattr(engine, "NumpyLazyHeap", record)
    got = select(cand, cfg, preselected=pre).indices.tolist()
    assert len(got) == 150 and got == _dense_select_pre(engine, cand, cfg, pre)
    heap = heaps[0]
    state = heap.state
    assert state._lazy_pool and heap.evaluated > 0 and heap.bands > 0 and state.rows_waited > 0
    assert (state.proj is not None) == projection
    if rows is not None:
        assert heap.cut > 0, heap.summary()
    behind = (state._epoch < state.n_added) & ~state.sel  # (after the metrics' coverage radius too)
    assert behind.sum() > 100, int(behind.sum())
    assert state.stats[3] < 0.9 * len(x) * state.n_added  # (every row taking every vector: 1.1e6; here 0.92e6)
    alone = {"n_samples": 150, "strategies": cfg["strategies"][:1]}
    assert select(cand, alone, preselected=pre).indices.tolist() == _dense_select_pre(engine, cand, alone, pre)
    lazy = kernels.NumpyDenseState(x.copy(), capacity=600)
    lazy.insert_many(pool)
    waiting = np.flatnonzero(lazy._epoch != lazy._flushed)
    assert len(waiting) > 100
    lazy.select(int(waiting[0]))  # (a pending vector too)
    rows = waiting[1:60]
    other = kernels.FarthestPointState(x.copy(), mode="dense")
    other.insert_many(pool)
    other.select(int(waiting[0]))
    assert [lazy.distance2(int(i)) for i in rows] == other.d2[rows].tolist()
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS", -1)
    monkeypatch.setattr(kernels, "NUMPY_MAX_ROWS_HEAP", -1)
    monkeypatch.setattr(kernels, "NUMPY_MAX_WORK", -1)
    assert select(cand, cfg, preselected=pre).indices.tolist() == got


@pytest.mark.parametrize("diversity", [True, False])
def test_numpy_heap_front_evicts_and_breaks_ties_as_rescoring_every_pick(diversity, monkeypatch):
    # A front of 6 rows filled 2 at a time: rows go back to the heaps and come again many times; duplicated
    # embeddings and weights in three values make ties of whole keys (lowest index first) between the front
    # and the heaps. DIVERSITY x WEIGHTS x BALANCE and WEIGHTS x BALANCE alone (no state: exact keys) pick as
    # rescoring every candidate per pick.
    from lightly_airflow.selection import engine, kernels

    cand = _tied_heap_inputs(monkeypatch, front=6, rows=2, batch=8, n=150, clusters=6, seed=(61, 9), every=3,
                             labels=True)
    strategies = [
        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "label"},
         "strategy": {"type": "BALANCE", "target": {"0": 0.5, "1": 0.3}}}]
    if diversity:
        strategies.insert(0, {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strength": 0.5}})
    cfg = {"n_samples": 120, "strategies": strategies}
    heaps: list = []

    def record(*a, **k):  # type: ignore[no-untyped-def]
        heaps.append(kernels.NumpyLazyHeap(*a, **k))
        return heaps[-1]

    monkeypatch.setattr(engine, "NumpyLazyHeap", record)
    got = select(cand, cfg).indices.tolist()
    assert len(got) == 120 and got == _dense_select(engine, cand, cfg)
    # (each pick came through the front; without DIVERSITY the keys are exact, and since BALANCE ranks by the
    # next pick's deficit no row is evaluated twice here)
    assert heaps[0].evaluated > 120 if diversity else heaps[0].evaluated >= 120
    if diversity:  # (keys fall: rows go back to the heaps and come again)
        assert heaps[0].returned > 60


@pytest.mark.parametrize("balance", [False, True])
@pytest.mark.parametrize("plan_rows", [2, 5, 32])
def test_numpy_heap_plans_pick_as_rescoring_every_pick(plan_rows, balance, monkeypatch):
    # DIVERSITY x WEIGHTS (x BALANCE: the plan counts its picks' classes for the bonuses of the next): the heap
    # plans the picks after each one among the front's rows of highest bounds (of each label). Duplicated
    # embeddings and weights in three values (ties of whole keys, lowest index first), a small front filled 3 rows
    # at a time (plans end at bounds of the front's other rows and the heaps' tops), with and without a pool: the
    # picks are those of rescoring every candidate per pick, most came from plans.
    from lightly_airflow.selection import engine, kernels

    monkeypatch.setattr(kernels, "HEAP_PLAN_ROWS", plan_rows)
    cand = _tied_heap_inputs(monkeypatch, front=12, rows=3, batch=16, n=400, clusters=8, seed=(63, 11), every=4,
                             labels=balance)
    cfg = {"n_samples": 200, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strength": 0.5}},
        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}}]}
    if balance:
        cfg["strategies"].append({"input": {"type": "METADATA", "key": "label"},
                                  "strategy": {"type": "BALANCE", "target": {"0": 0.5, "1": 0.3}}})
    heaps: list = []

    def record(*a, **k):  # type: ignore[no-untyped-def]
        heaps.append(kernels.NumpyLazyHeap(*a, **k))
        return heaps[-1]

    monkeypatch.setattr(engine, "NumpyLazyHeap", record)
    got = select(cand, cfg)
    assert len(got.indices) == 200 and got.indices.tolist() == _dense_select(engine, cand, cfg)
    heap = heaps[0]
    assert heap.plans > 0 and heap.planned > 50, (heap.plans, heap.planned)
    # The selection's distances (each pick's, read from what the plan computed) are the dense path's too.
    dense = _dense_result(engine, cand, cfg).pick_details
    assert got.pick_details.column("selection.distance").to_pylist() == dense.column("selection.distance").to_pylist()
    pre = table_of(clustered(60, d=24, clusters=4, intrinsic=3, seed=64))
    after = select(cand, cfg, preselected=pre).indices.tolist()
    assert after == _dense_select_pre(engine, cand, cfg, pre)
    assert heaps[-1].planned > 50


@pytest.mark.parametrize("plan_rows", [2, 5, 32])
def test_numpy_state_plans_pick_the_farthest_points_exactly(plan_rows, monkeypatch):
    # DIVERSITY alone: farthest() plans the picks after each one among its candidates (a pass every 16 picks,
    # some in the middle of a plan; 24 candidates) and the candidates take a plan's picks at once. Exact
    # duplicates tie (lowest index first): the picks are the reference's, the distances bit for bit those of a
    # state that never plans, and most picks came from plans, with a pool too.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", 16)
    monkeypatch.setattr(kernels, "NUMPY_CANDIDATES", 24)
    x = clustered(900, d=24, clusters=8, intrinsic=3, seed=66)
    x = np.concatenate([x, x[::3]])
    pool = clustered(80, d=24, clusters=4, intrinsic=3, seed=67)
    for pre in (None, pool):
        got = []
        for rows in (plan_rows, 0):
            monkeypatch.setattr(kernels, "NUMPY_PLAN_ROWS", rows)
            state = kernels.NumpyDenseState(x.copy(), capacity=400)
            got.append((*farthest_point_order(state.x, 300, preselected=pre, state=state)[:2], state))
        (picks, dists, state), (picks0, dists0, state0) = got
        assert picks.tolist() == reference_order(x, 300, pre) == picks0.tolist()
        assert dists.tolist() == dists0.tolist()
        assert state.planned > (150 if plan_rows > 2 else 50) and state0.planned == 0, state.planned


def test_numpy_state_drops_its_plan_when_another_row_is_selected(monkeypatch):
    # A caller that selects another row than farthest()'s answer, or inserts a vector, gets the farthest row
    # computed again: the same answers as a state that never plans, whatever it selects.
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", 16)
    x = clustered(500, d=16, clusters=6, intrinsic=3, seed=68)
    states = []
    for rows in (32, 0):
        monkeypatch.setattr(kernels, "NUMPY_PLAN_ROWS", rows)
        states.append(kernels.NumpyDenseState(x.copy(), capacity=300))
    rng = np.random.default_rng(14)
    for step in range(200):
        answers = [s.farthest() for s in states]
        assert answers[0] == answers[1], step
        i = answers[0][0]
        if step % 7 == 3:
            i = int(rng.choice(np.flatnonzero(~states[0].sel)))
        vec = x[int(rng.integers(len(x)))] * 0.9
        for s in states:
            s.select(i)
            if step % 11 == 5:
                s.insert(vec)
    assert states[0].planned > 40 and states[1].planned == 0


def _tied_heap_inputs(monkeypatch, *, front, rows, batch, n, clusters, seed, every, labels=False):  # type: ignore[no-untyped-def]
    """A small heap front filled ``rows`` at a time, passes every ``batch`` picks, and candidates whose ties are
    exact: every ``every``-th embedding duplicated, weights in three values (and labels in three classes);
    ``seed``: the embeddings' and the weights' (labels')."""
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "HEAP_FRONT", front)
    monkeypatch.setattr(kernels, "HEAP_ROWS", rows)
    monkeypatch.setattr(kernels, "NUMPY_BATCH", batch)
    x = clustered(n, d=24, clusters=clusters, intrinsic=3, seed=seed[0])
    x = np.concatenate([x, x[::every]])  # (exact duplicates: equal distances)
    rng = np.random.default_rng(seed[1])
    columns = {"metadata.w": rng.integers(1, 4, len(x)) / 3.0}
    if labels:
        columns["metadata.label"] = [str(v) for v in rng.integers(0, 3, len(x))]
    return table_of(x, **columns)


def test_numpy_heap_drops_its_plan_when_another_row_is_taken(monkeypatch):
    # A caller that takes another row than the one returned (or adds a vector to the state) gets the best row
    # computed again, not the plan's next: the same answers as a heap that never plans, whatever is taken.
    from lightly_airflow.selection import kernels

    x = clustered(300, d=16, clusters=6, intrinsic=3, seed=65)
    w = np.random.default_rng(12).random(len(x))
    heaps = []
    for rows in (32, 0):
        monkeypatch.setattr(kernels, "HEAP_PLAN_ROWS", rows)
        state = kernels.NumpyDenseState(x.copy(), capacity=300)
        heaps.append((state, kernels.NumpyLazyHeap(w, state, 1.0)))
    rng = np.random.default_rng(13)
    for step in range(120):
        answers = [h.best() for _, h in heaps]
        assert answers[0] == answers[1], step
        i = answers[0][0]
        if step % 7 == 3:  # another row than the best, some times
            i = int(rng.choice(np.flatnonzero(~heaps[0][1].taken)))
        for state, h in heaps:
            h.take(i)
            state.select(i)
        if step % 11 == 5:
            vec = x[int(rng.integers(len(x)))] * 0.9
            for state, _ in heaps:
                state.insert(vec)
    assert heaps[0][1].planned > 20 and heaps[1][1].planned == 0


def test_numpy_heap_drops_its_plan_when_the_bonuses_differ(monkeypatch):
    # With labels, a plan counts on the bonuses its own picks bring (bonus_after); a caller passing other
    # bonuses (here, sometimes) gets the best row computed again: the same answers as a heap that never plans.
    from lightly_airflow.selection import kernels

    x = clustered(300, d=16, clusters=6, intrinsic=3, seed=69)
    rng = np.random.default_rng(15)
    w, labels = rng.random(len(x)), rng.integers(0, 3, len(x))  # (label 2: no class)

    def bonus_after(more: np.ndarray) -> np.ndarray:
        return np.append(-0.05 * (counts + more), -1.0)

    heaps = []
    for rows in (32, 0):
        monkeypatch.setattr(kernels, "HEAP_PLAN_ROWS", rows)
        state = kernels.NumpyDenseState(x.copy(), capacity=300)
        heaps.append((state, kernels.NumpyLazyHeap(w, state, 1.0, labels=labels, n_labels=3,
                                                   bonus_after=bonus_after)))
    counts = np.zeros(2)
    for step in range(150):
        bonus = bonus_after(np.zeros(2))
        if step % 9 == 4:
            bonus[int(rng.integers(2))] += 0.01
        answers = [h.best(bonus) for _, h in heaps]
        assert answers[0] == answers[1], step
        i = answers[0][0]
        for state, h in heaps:
            h.take(i)
            state.select(i)
        if labels[i] < 2:
            counts[labels[i]] += 1
    assert heaps[0][1].planned > 20 and heaps[1][1].planned == 0


def test_work_cuts_from_blocks_equal_those_of_the_whole_running_sum():
    # A catch-up splits its rows over the threads by the vectors each missed, block by block (the whole running
    # sum was 8 bytes a row): the same cuts as np.searchsorted over np.cumsum, at any block size and share count.
    from lightly_airflow.selection.kernels import work_cuts

    rng = np.random.default_rng(3)
    for n in (1, 5, 1000):
        for work in (rng.integers(0, 40, n), np.zeros(n, dtype=np.int64), np.full(n, 7)):
            total = int(work.sum())
            for parts in (1, 2, 3, 8):
                want = np.searchsorted(np.cumsum(work), np.linspace(0, total, parts + 1)[1:-1], side="right")
                for block in (1, 7, 333, 4096):
                    blocks = [(a, work[a : a + block]) for a in range(0, n, block)]
                    assert work_cuts(blocks, total, parts, n) == want.tolist(), (n, parts, block)


@pytest.mark.parametrize("scan_rows", [7, 300])
def test_numpy_state_scans_in_blocks_of_rows_as_in_one(scan_rows, monkeypatch):
    # The numpy state's whole-row scans (a pass' rows, the best bound, the argmax, the candidates and their tail,
    # the waiting rows to close, the catch-up's shares, every distance) in blocks of rows: the same picks, the
    # same canonical values and the same work (passes, products, rows waited, plans) as in one block, with
    # rows that wait, a pool that goes in lazily, three pass threads, and duplicates (ties to the lowest row).
    from lightly_airflow.selection import kernels

    monkeypatch.setattr(kernels, "NUMPY_BATCH", 16)
    monkeypatch.setattr(kernels, "NUMPY_CANDIDATES", 32)
    monkeypatch.setattr(kernels, "NUMPY_BULK_BLOCK", 40)
    monkeypatch.setattr(kernels, "NUMPY_MIN_WORK_PER_THREAD", 64)
    monkeypatch.setattr(kernels, "MIN_WORK_PER_THREAD", 64)
    monkeypatch.setenv("LIGHTLY_SELECTION_THREADS", "3")
    x, pre = _waiting_data()
    x[1500:] = x[:500]  # (exact ties)
    pool = clustered(600, d=48, clusters=12, intrinsic=4, seed=55) * 1.2
    runs = {}
    for rows in (2**16, scan_rows):
        monkeypatch.setattr(kernels, "NUMPY_SCAN_ROWS", rows)
        for name, p in (("pre", pre), ("pool", pool)):
            state = kernels.NumpyDenseState(x.copy(), capacity=1000)
            assert state._threads == 3
            picks, dists, _ = farthest_point_order(state.x, 400, preselected=p, state=state)
            work = (state.dense_passes, state.rows_waited, state.plans, state.planned, state.stats.tolist())
            radius = state.max_d2()
            runs[rows, name] = (picks.tolist(), dists.tolist(), work, radius, state.d2.copy(), state._own.copy())
    for name, p in (("pre", pre), ("pool", pool)):
        one, blocks = runs[2**16, name], runs[scan_rows, name]
        assert one[:4] == blocks[:4], name
        assert np.array_equal(one[4], blocks[4]) and np.array_equal(one[5], blocks[5])
        assert one[2][1] > 0  # (rows waited)
        assert one[0] == reference_order(x, 400, p)


@pytest.mark.parametrize("shape", ["uniform", "waiting", "ties", "inf", "spikes"])
def test_top_rows_takes_the_m_highest_values_whatever_the_sample_threshold_leaves(shape: str) -> None:
    """The candidates of every dense pass: a sampled threshold first (large inputs), argpartition where fewer than m
    rows reach it (many tied or infinite values); the same values as sorting, each row once."""
    from lightly_airflow.selection.kernels import top_rows

    rng = np.random.default_rng(7)
    for n, m in ((100_000, 256), (20_000, 256), (9_000, 256), (300, 256), (100, 256)):
        hi = rng.random(n) ** 3
        if shape == "waiting":
            hi[rng.random(n) < 0.95] = -2.0  # (rows that wait: most of them, the highest sampled values among them)
        elif shape == "ties":
            hi = np.round(hi * 4) / 4  # (five values: the threshold sits on a tie)
        elif shape == "inf":
            hi[rng.random(n) < 0.002] = np.inf  # (rows nothing was applied to yet)
        elif shape == "spikes" and n >= 8 * m:
            hi[:: n // (8 * m)][:12] = 10.0  # (the sample's highest values: a threshold that fewer than m rows reach)
        top = top_rows(hi, m)
        assert len(top) == min(m, n) and len(np.unique(top)) == len(top)
        np.testing.assert_array_equal(np.sort(hi[top]), np.sort(hi)[n - len(top):])
