"""Selection semantics against Lightly's documented rules, on tables small enough to work the answer out by hand.

Sources (docs.lightly.ai): "Selection Strategies" (THRESHOLD operations; DIVERSITY's
``stopping_condition_minimum_distance`` "will remove all samples which are closer to each other than" it),
"Selection Strategy Combination" ("the overall objective is the product of the objectives of each strategy",
the strength being "the exponent of the strategy objective", so a strategy's scale is irrelevant), and this
project's docs/selection.md "Semantics" where Lightly is silent (counts, ties, stop reasons, ``max_sum``).
Six of these were defects (found by this audit, fixed in the engine and the config model): BALANCE picked a class
whose target is 0 once the shares met the target, ``max_sum`` and ``target_range`` were passed by a float rounding,
``proportion_samples`` floored 28.999999999999996, ``n_samples`` above the candidates said ``n_reached``, and a
float32 column failed its own THRESHOLD boundary.
"""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow.config.selection import proportion_count
from lightly_airflow.selection import select

INF = float("inf")
NAN = float("nan")
# Three unit vectors whose pairwise distances are exactly 1.0 in float32 and float64 (|a|² = |b|² = 1, a·b = 0.5).
UNIT_DISTANCE_ONE = np.array([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, 0.5]])


def table(x: np.ndarray | None = None, **metadata: list) -> pa.Table:
    """Keys ``k0``, ``k1``, …; an ``embedding`` column from ``x``; ``metadata.<name>`` columns."""
    n = len(x) if x is not None else len(next(iter(metadata.values())))
    cols: dict = {"key": [f"k{i}" for i in range(n)]}
    if x is not None:
        cols["embedding"] = pa.array([list(map(float, row)) for row in x], type=pa.list_(pa.float32()))
    cols.update({f"metadata.{name}": values for name, values in metadata.items()})
    return pa.table(cols)


def meta(key: str, **strategy) -> dict:
    return {"input": {"type": "METADATA", "key": key}, "strategy": strategy}


def diversity(**strategy) -> dict:
    return {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", **strategy}}


def run(t: pa.Table, strategies: list, n: int = 10, **kw):
    return select(t, {"n_samples": n, "strategies": strategies}, **kw)


# ------------------------------------------------------------------------------------------------ THRESHOLD
@pytest.mark.parametrize(("operation", "kept"), [
    ("BIGGER", ["k3"]), ("BIGGER_EQUAL", ["k1", "k3"]), ("SMALLER", ["k0"]), ("SMALLER_EQUAL", ["k0", "k1"]),
])
def test_threshold_at_the_boundary_value_and_on_a_missing_value(operation, kept):
    """Values 1, 2, NaN, 3 against threshold 2: the strict operations drop the sample at exactly 2, the _EQUAL
    ones keep it; the missing value fails every operation (docs/selection.md "Missing inputs") and is counted."""
    t = table(np.eye(4), m=[1.0, 2.0, NAN, 3.0])
    r = run(t, [meta("m", type="THRESHOLD", threshold=2.0, operation=operation), meta("m", type="WEIGHTS")])
    assert sorted(r.keys) == kept
    assert r.metrics["missing_inputs"] == {"metadata.m": 1}
    assert r.metrics["n_after_thresholds"] == len(kept)


def test_threshold_on_a_float32_column_compares_at_the_columns_precision():
    t = table(m=pa.array([0.1, 0.2, 0.3, 0.4], type=pa.float32()))
    r = run(t, [meta("m", type="THRESHOLD", threshold=0.3, operation="SMALLER_EQUAL"), meta("m", type="WEIGHTS")])
    assert r.keys == ["k2", "k1", "k0"]


# ------------------------------------------------------------------------------------------------ DIVERSITY
@pytest.mark.parametrize("extra", [[], [meta("m", type="WEIGHTS")], [meta("m", type="WEIGHTS", strength=-1)]],
                         ids=["alone", "with-weights", "negative-weights"])
def test_minimum_distance_exactly_at_a_pairs_distance_keeps_the_pair(extra):
    """Three samples pairwise exactly 1.0 apart, ``stopping_condition_minimum_distance: 1.0``: none is *closer*
    than 1.0 (Lightly's words), so all three are selected, on each of the greedy's paths (k-center alone, the
    lazy heap, the dense rescoring)."""
    t = table(UNIT_DISTANCE_ONE, m=[1.0, 1.0, 1.0])
    r = run(t, [diversity(stopping_condition_minimum_distance=1.0), *extra], n=3)
    assert r.keys == ["k0", "k1", "k2"]
    assert r.stop_reason == "n_reached"


def test_minimum_distance_counts_the_preselected_and_stops_below_it():
    """Antipodal samples are 2.0 apart: with the preselected ``(1, 0)`` the candidate ``(-1, 0)`` (distance 2.0,
    not closer than 2.0) is picked, then ``(0.6, 0.8)`` (closer than 2.0 to both) stops the run."""
    pre = table(np.array([[1.0, 0.0]]))
    t = table(np.array([[0.6, 0.8], [-1.0, 0.0]]), m=[1.0, 1.0])
    r = run(t, [diversity(stopping_condition_minimum_distance=2.0)], preselected=pre)
    assert r.keys == ["k1"]
    assert r.stop_reason == "minimum_distance"


# ------------------------------------------------------------------------------------------------ combination
def test_weights_and_diversity_combine_as_a_product_whatever_the_weights_scale():
    """Embeddings (1,0), (0,1), (0.8,0.6) with weights 1.0, 0.1, 0.9, both strengths 1. First pick: the largest
    weight, k0 (nothing selected yet). Second: k2's product is (d = 0.632)·0.9 = 0.569, k1's (d = 1.414)·0.1 =
    0.141, so k2; the engine's score is the log of the product with d halved: log(0.316·0.9). The order is the
    same with every weight ×10 ("the scale of each strategy objective is irrelevant")."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    for scale in (1.0, 10.0):
        t = table(x, m=[1.0 * scale, 0.1 * scale, 0.9 * scale])
        r = run(t, [diversity(), meta("m", type="WEIGHTS")], n=3)
        assert r.keys == ["k0", "k2", "k1"]
        score = r.pick_details.column("selection.score").to_pylist()
        assert score[1] == pytest.approx(np.log(np.sqrt(0.4) / 2 * 0.9))


def test_strength_is_the_exponent_of_the_objective():
    """Weights 1.0 (k0, distance 0.2 to the preselected) vs 0.25 (k1, distance 2.0): with both strengths 1 the
    product is 0.1·1.0 = 0.1 vs 1.0·0.25 = 0.25, k1 wins; with WEIGHTS strength 3 it is 0.1 vs 0.0156, k0 wins."""
    pre = table(np.array([[1.0, 0.0]]))
    x = np.array([[0.98, np.sqrt(1 - 0.98**2)], [-1.0, 0.0]])  # k0 at distance 0.2 from (1, 0)
    t = table(x, m=[1.0, 0.25])
    assert run(t, [diversity(), meta("m", type="WEIGHTS")], n=1, preselected=pre).keys == ["k1"]
    assert run(t, [diversity(), meta("m", type="WEIGHTS", strength=3)], n=1, preselected=pre).keys == ["k0"]


# ------------------------------------------------------------------------------------------------ WEIGHTS
def test_weights_negative_strength_prefers_low_values_and_constant_input_keeps_the_row_order():
    t = table(m=[2.0, 1.0, 3.0])
    assert run(t, [meta("m", type="WEIGHTS", strength=-1)]).keys == ["k1", "k0", "k2"]
    assert run(table(m=[5.0, 5.0, 5.0]), [meta("m", type="WEIGHTS")]).keys == ["k0", "k1", "k2"]


def test_missing_weight_is_never_picked_before_a_strictly_better_value():
    """NaN ranks with the least preferred value (docs/selection.md "Missing inputs"), never above a better one.
    With strength -1 the least preferred value is the largest (1.0, k2): the missing k0 ties with it and, on the
    lower row, is picked before it (the documented tie), but after 0.2 and 0.5."""
    t = table(m=[NAN, 0.5, 1.0, 0.2])
    assert run(t, [meta("m", type="WEIGHTS")]).keys == ["k2", "k1", "k3", "k0"]
    assert run(t, [meta("m", type="WEIGHTS", strength=-1)]).keys == ["k3", "k1", "k0", "k2"]
    # (the documented tie with a real 0, which scores the floor too: docs/selection.md "Missing inputs")
    assert run(table(m=[NAN, 0.0, 1.0]), [meta("m", type="WEIGHTS")]).keys == ["k2", "k0", "k1"]


def test_max_sum_reached_exactly_is_not_passed():
    """Weights 0.2, 0.1, 0.05 with ``stopping_condition_max_sum: 0.3``: 0.2, then 0.1 (sum 0.3, not above),
    then 0.05 would make 0.35: stop. Expected k0, k1."""
    r = run(table(m=[0.2, 0.1, 0.05]), [meta("m", type="WEIGHTS", stopping_condition_max_sum=0.3)])
    assert r.keys == ["k0", "k1"]
    assert r.stop_reason == "max_sum"


def test_an_infinite_weight_is_missing_and_adds_nothing_to_the_sum():
    """Weights 0.2, inf, 0.1, -inf with ``stopping_condition_max_sum: 0.5``: the infinities are missing values
    (least preferred, counted), and a missing value adds nothing to the sum, so all four are picked: the inf rows
    last. (Filled by ``nan_to_num``, an inf added 1.8e308 and stopped the selection at once.)"""
    r = run(table(m=[0.2, INF, 0.1, -INF]), [meta("m", type="WEIGHTS", stopping_condition_max_sum=0.5)])
    assert r.keys == ["k0", "k2", "k1", "k3"] and r.stop_reason == "no_candidates_left"
    assert r.metrics["missing_inputs"] == {"metadata.m": 2}


def test_target_range_max_sum_reached_exactly_is_inside_the_range():
    """``target_range: {max_sum: 0.3}`` on 0.2, 0.1, 0.05: 0.2, then 0.1 (sum 0.3 ≤ 0.3), then 0.05 (the only
    one left, out of range). Expected k0, k1, k2."""
    r = run(table(m=[0.2, 0.1, 0.05]), [meta("m", type="WEIGHTS", target_range={"max_sum": 0.3})])
    assert r.keys == ["k0", "k1", "k2"]


# ------------------------------------------------------------------------------------------------ BALANCE
def test_balance_target_below_one_gives_the_remainder_to_the_other_classes():
    """Classes a×6, b×3, c×3, target a 0.25, b 0.25 (sum 0.5): the remaining 0.5 is the other classes' (c), so 4
    picks are 1 a, 1 b, 2 c."""
    t = table(c=["a"] * 6 + ["b"] * 3 + ["c"] * 3)
    r = run(t, [meta("c", type="BALANCE", target={"a": 0.25, "b": 0.25})], n=4)
    classes = [t.column("metadata.c")[int(i)].as_py() for i in r.indices]
    assert sorted(classes) == ["a", "b", "c", "c"]


def test_balance_target_above_one_is_refused_and_an_absent_class_is_reported():
    t = table(c=["a"] * 6 + ["b"] * 3 + ["c"] * 3)
    with pytest.raises(ValueError, match="sum to at most 1"):
        run(t, [meta("c", type="BALANCE", target={"a": 0.7, "b": 0.6})], n=4)
    r = run(t, [meta("c", type="BALANCE", target={"a": 0.5, "z": 0.5}, strength=1000)], n=4)
    assert r.objectives["strategies[0]"]["targets_not_among_candidates"] == ["z"]
    assert len(r.keys) == 4


@pytest.mark.parametrize(("target", "n"), [
    ({"b": 1.0}, 3), ({"a": 0.0, "b": 0.5, "c": 0.5}, 4), ({"b": 0.6, "c": 0.4}, 6),
])
def test_balance_never_picks_a_class_whose_target_is_zero_while_others_are_left(target, n):
    """Classes a, b, c ×5. ``{b: 1.0}`` is "100 % b" (the remainder 0 is a's and c's target): three b. With
    ``{a: 0, b: .5, c: .5}`` and ``{b: .6, c: .4}`` (a gets the remainder 0) no a either: b and c are left."""
    t = table(c=["a"] * 5 + ["b"] * 5 + ["c"] * 5)
    r = run(t, [meta("c", type="BALANCE", target=target)], n=n)
    picked = [t.column("metadata.c")[int(i)].as_py() for i in r.indices]
    assert len(picked) == n
    assert "a" not in picked


# ------------------------------------------------------------------------------------------------ counts
@pytest.mark.parametrize(("p", "n", "expected"), [(0.29, 100, 29), (0.57, 100, 57), (0.58, 100, 58)])
def test_proportion_samples_is_the_floor_of_the_exact_product(p, n, expected):
    assert proportion_count(p, n) == expected


def test_n_samples_above_the_candidates_stops_with_no_candidates_left():
    r = run(table(m=[1.0, 2.0]), [meta("m", type="WEIGHTS")], n=5)
    assert r.keys == ["k1", "k0"]
    assert r.stop_reason == "no_candidates_left"


def test_preselected_samples_do_not_count_toward_n_samples():
    """docs/lightly-compat.md: ``n_samples`` is the number of new picks (``n_samples_meaning: total`` is the
    pipeline's switch for Lightly's labelled-set total); the engine picks n_samples new ones."""
    pre = table(np.array([[1.0, 0.0, 0.0]]))
    r = run(table(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.8, 0.0]]), m=[1.0] * 3), [diversity()],
            n=2, preselected=pre)
    assert r.keys == ["k0", "k1"]


# ------------------------------------------------------------------------------------------------ ties, RANDOM
def test_ties_go_to_the_lowest_row_on_every_path():
    t = table(np.eye(4), m=[1.0] * 4)
    assert run(t, [diversity()]).keys == ["k0", "k1", "k2", "k3"]
    assert run(t, [diversity(), meta("m", type="WEIGHTS")]).keys == ["k0", "k1", "k2", "k3"]


_RANDOM_CONFIG = {"n_samples": 5, "strategies": [
    {"input": {"type": "RANDOM", "random_seed": 42}, "strategy": {"type": "WEIGHTS"}},
    {"input": {"type": "RANDOM"}, "strategy": {"type": "WEIGHTS"}},  # (follows the engine's seed)
]}
_RANDOM_SCRIPT = """
import json, sys, pyarrow as pa
from lightly_airflow.selection import select
t = pa.table({"key": [f"k{i}" for i in range(20)]})
print(json.dumps(select(t, json.loads(sys.argv[1]), seed=7).keys))
"""


def test_random_with_a_seed_is_the_same_in_another_process():
    """RANDOM with ``random_seed`` (and one following the engine's seed) draws the same in a fresh process."""
    here = select(pa.table({"key": [f"k{i}" for i in range(20)]}), _RANDOM_CONFIG, seed=7).keys
    out = subprocess.run([sys.executable, "-c", _RANDOM_SCRIPT, json.dumps(_RANDOM_CONFIG)],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here
    assert len(set(here)) == 5
