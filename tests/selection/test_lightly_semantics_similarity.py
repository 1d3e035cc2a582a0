"""SIMILARITY, TYPICALITY and a BALANCE remainder against Lightly's documented rules, on tables small enough to work
the answer out by hand (the sequel of ``test_lightly_semantics.py``, whose helpers these tests use).

Sources: docs.lightly.ai "Selection Input" (an ``EMBEDDINGS`` input with ``dataset_id`` + ``tag_name`` names "the
query images" of a similarity search), "Selection Strategy Combination" (the objective is "the product of the
objectives of each strategy", the strength "the exponent of the strategy objective"), "Examples and Use Cases"
(TYPICALITY alone "can result in selecting images only from a single high density cluster": combine it with
DIVERSITY), Lightly's ``SelectionConfigV4EntryStrategy`` (``num_nearest_neighbors``: "the number of nearest
datapoints used to compute the typicality of each sample"; ``stopping_condition_minimum_typicality``: "the minimal
allowed typicality of the selected samples"), the Lightly Worker's selection docs (BALANCE: "If the values of the
target do not sum up to 1, the remainder is assumed to be the target for the other classes", "not specified
classes do not influence the selection process"), and this project's docs/selection.md ("Semantics": SIMILARITY
``1 - d_query/2`` with ``d_query`` the distance to the nearest query embedding, TYPICALITY ``1/(1 + mean k-NN
distance)``, ties to the lowest row; "Exactness": every compared distance is a canonical float64 one).

The hand-worked layouts are points on the unit circle: two at angles α and β are ``2 sin(|α - β| / 2)`` apart, so a
candidate Δ from its nearest query has the similarity ``1 - sin(Δ / 2)``. Six defects this audit found (2026-12-07)
have a test each that failed before its fix: the query's own copy below a near-duplicate (float32 products), a
query set of another dimension, empty or with an all-zero row (numpy's errors, or a silently floored
similarity), ``num_nearest_neighbors`` above the candidates unsaid, and BALANCE's remainder without candidates
(3 a : 1 b).
"""

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_lightly_semantics import diversity, meta, run, table  # (tests/selection is on sys.path)

from lightly_airflow.config import parse_selection_config
from lightly_airflow.selection import select
from lightly_airflow.selection.queries import resolve_query_sets

QUERY = ("pool", "failures")


def at(*degrees: float) -> np.ndarray:
    """Unit vectors at these angles (a query, or the rows of a table)."""
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1)


def similarity(**strategy) -> dict:
    return {"input": {"type": "EMBEDDINGS", "dataset_id": QUERY[0], "tag_name": QUERY[1]},
            "strategy": {"type": "SIMILARITY", **strategy}}


def typicality(k: int, **strategy) -> dict:
    return {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY", "num_nearest_neighbors": k, **strategy}}


def queried(t: pa.Table, strategies: list, query: np.ndarray, n: int = 10, **kw):
    return run(t, strategies, n, query_embeddings={QUERY: np.asarray(query, dtype=np.float32)}, **kw)


def details(r, column: str) -> list:
    return r.pick_details.column(f"selection.{column}").to_pylist()


# ----------------------------------------------------------------------------------------------- SIMILARITY
# Candidates at 90°, -30°, 0° (the query's own copy), 180°, 60°, 30°; the query at 0°. Similarities 1 - sin(Δ/2):
# k2 1, k1 and k5 0.741 (mirror images: the same bits, a tie), k4 0.5, k0 0.293, k3 0 (antipodal).
SIX = at(90, -30, 0, 180, 60, 30)


def test_similarity_ranks_by_distance_to_the_query_and_a_tie_goes_to_the_lower_row():
    r = queried(table(SIX), [similarity()], at(0))
    assert r.keys == ["k2", "k1", "k5", "k4", "k0", "k3"]
    expected = [1.0, 1 - np.sin(np.radians(15)), 1 - np.sin(np.radians(15)), 0.5, 1 - np.sin(np.radians(45)), 0.0]
    assert details(r, "similarity") == pytest.approx(expected, abs=1e-6)
    assert r.stop_reason == "no_candidates_left"  # (n_samples 10 above the 6 candidates)


def test_similarity_query_is_normalised_and_negative_strength_prefers_the_farthest():
    """A query of length 5 ranks as the unit one (embeddings are compared on the unit sphere); strength -1 makes the
    objective ``similarity^-1``: the antipodal k3 (similarity 0, floored at 1e-6) first, the query's copy last, the
    tie k1/k5 still to the lower row."""
    assert queried(table(SIX), [similarity()], [[5.0, 0.0]]).keys == ["k2", "k1", "k5", "k4", "k0", "k3"]
    assert queried(table(SIX), [similarity(strength=-1)], at(0)).keys == ["k3", "k0", "k4", "k1", "k5", "k2"]


def test_similarity_to_a_query_set_is_to_its_nearest_member():
    """Queries at 0° and 90°; candidates at 45° (22.5° from both, 0.617), 10° (0.913), 95° (5° from the second query,
    0.956). The nearest query counts, not the set's centre (45°, which would put k0 first)."""
    r = queried(table(at(45, 10, 95)), [similarity()], at(0, 90))
    assert r.keys == ["k2", "k1", "k0"]
    assert details(r, "similarity") == pytest.approx([1 - np.sin(np.radians(2.5)), 1 - np.sin(np.radians(5)),
                                                      1 - np.sin(np.radians(22.5))], abs=1e-6)


@pytest.mark.parametrize("others", [0, 40], ids=["one-query", "41-queries-screened"])
def test_the_querys_own_copy_ranks_before_a_near_duplicate(others):
    """Lightly prefers "samples close to the query": a candidate identical to the query (distance 0, similarity 1)
    comes before a near-duplicate 3e-4 away (similarity 1 - 1.5e-4), whatever the vectors (20 random 64-d ones);
    with 40 more queries too (above ``SIMILARITY_DENSE_QUERIES`` the float32 product screens the columns)."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        q = rng.normal(size=64)
        q /= np.linalg.norm(q)
        v = rng.normal(size=64)
        v -= v.dot(q) * q
        v /= np.linalg.norm(v)
        near = q * np.cos(3e-4) + v * np.sin(3e-4)
        queries = np.vstack([q[None], rng.normal(size=(others, 64))])
        r = queried(table(np.stack([near, q]).astype(np.float32)), [similarity()], queries, n=2)
        assert r.keys == ["k1", "k0"], f"seed {seed}: similarities {details(r, 'similarity')}"


@pytest.mark.parametrize("n_queries", [1, 16, 17, 300])
def test_distances_to_the_query_set_are_the_float64_ones(n_queries):
    """:func:`min_distance_to` on float32 rows equals the float64 formula on every row, screened or not: 2,000
    clustered rows (near-duplicates of the queries among them) and queries of several sizes."""
    from lightly_airflow.selection.arrays import squared_norms
    from lightly_airflow.selection.objectives import min_distance_to

    rng = np.random.default_rng(n_queries)
    q = rng.normal(size=(n_queries, 48))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    x = (q[rng.integers(0, n_queries, 2000)] + rng.normal(scale=rng.choice([1e-4, 1e-2, 1.0], (2000, 1)),
                                                           size=(2000, 48))).astype(np.float32)
    x64 = x.astype(np.float64)
    d2 = squared_norms(x64)[:, None] + squared_norms(q)[None, :] - 2.0 * (x64 @ q.T)
    # (the same formula summed in another order: squared distances agree to float64's rounding of |x|² ~ 1)
    assert min_distance_to(x, q) ** 2 == pytest.approx(np.maximum(d2.min(axis=1), 0.0), rel=1e-12, abs=1e-14)


# Candidates at 0° (the query's copy), 10°, 90°, 180°; the query at 0°: similarities 1, 0.913, 0.293, 0 (1e-6).
FOUR = at(0, 10, 90, 180)


def test_similarity_with_diversity_is_the_product_and_its_strength_the_exponent():
    """First pick: k0 (similarity 1; nothing selected yet). Second: k1's product is (d/2 = sin 5° = 0.087)·0.913 =
    0.080, k2's 0.707·0.293 = 0.207, k3's 1·1e-6: k2; then k1 (0.080 against 0.707e-6), then k3. With SIMILARITY
    strength 3 the second pick is k1 (0.087·0.761 = 0.066 against 0.707·0.0251 = 0.018)."""
    assert queried(table(FOUR), [diversity(), similarity()], at(0)).keys == ["k0", "k2", "k1", "k3"]
    assert queried(table(FOUR), [diversity(), similarity(strength=3)], at(0)).keys == ["k0", "k1", "k2", "k3"]


def test_similarity_with_weights_and_a_negative_weights_strength():
    """Weights 0.1, 1.0, 0.5, 1.0 (objective v/max): products k0 0.1, k1 0.913, k2 0.146, k3 1e-6: k1, k2, k0, k3.
    WEIGHTS strength -1 divides by the weight: k0 10, k1 0.913, k2 0.586, k3 1e-6: k0, k1, k2, k3."""
    t = table(FOUR, m=[0.1, 1.0, 0.5, 1.0])
    assert queried(t, [similarity(), meta("m", type="WEIGHTS")], at(0)).keys == ["k1", "k2", "k0", "k3"]
    assert queried(t, [similarity(), meta("m", type="WEIGHTS", strength=-1)], at(0)).keys == ["k0", "k1", "k2", "k3"]


def test_similarity_to_the_preselected_samples_against_diversity_from_them():
    """The query tag is the datapool's earlier selection, also passed as preselected (a Lightly user's "more like what
    we have"). Candidates at 10°, 90°, 180°, the preselected query at 0°. SIMILARITY alone: k0, k1, k2. DIVERSITY
    alone (away from the preselected): k2, k1, k0. Both: k0 0.087·0.913 = 0.080, k1 0.707·0.293 = 0.207, k2 1·1e-6:
    k1; then k0 (0.080) before k2 (0.707e-6)."""
    t, pre = table(at(10, 90, 180)), table(at(0))
    assert queried(t, [similarity()], at(0), preselected=pre).keys == ["k0", "k1", "k2"]
    assert queried(t, [diversity()], at(0), preselected=pre).keys == ["k2", "k1", "k0"]
    assert queried(t, [diversity(), similarity()], at(0), preselected=pre).keys == ["k1", "k0", "k2"]


def _query_file(tmp_path, rows: list, tags: list | None = None) -> object:
    """A Parquet query set ``q.parquet`` and the parsed config naming it (tag ``failures``)."""
    cols: dict = {"embedding": pa.array(rows, type=pa.list_(pa.float32()))}
    if tags is not None:
        cols["tags"] = tags
    pq.write_table(pa.table(cols), tmp_path / "q.parquet")
    return parse_selection_config({"n_samples": 3, "strategies": [
        {"input": {"type": "EMBEDDINGS", "dataset_id": "q.parquet", "tag_name": "failures"},
         "strategy": {"type": "SIMILARITY"}}]})


def test_an_empty_query_tag_is_an_error_naming_the_input(tmp_path):
    config = _query_file(tmp_path, [[1.0, 0.0]], tags=[["other"]])
    with pytest.raises(ValueError, match=r"strategies\[0\]\.input: the query set tag 'failures'.*holds no samples"):
        resolve_query_sets(config, base=str(tmp_path))


def test_a_query_set_of_another_dimension_is_an_error_naming_the_input(tmp_path):
    """A query datapool embedded with another model (3-d) against 2-d candidates: the error names the input, both
    dimensions, as the preselected samples' one does ("preselected embeddings have dimension 3, candidates 2")."""
    config = _query_file(tmp_path, [[1.0, 0.0, 0.0]])
    queries = resolve_query_sets(config, base=str(tmp_path))
    with pytest.raises(ValueError, match=r"strategies\[0\]\.input.*dimension 3.*2"):
        select(table(FOUR), config, query_embeddings=queries)


def test_an_empty_query_matrix_given_to_select_is_an_error_naming_the_input():
    with pytest.raises(ValueError, match=r"strategies\[0\]\.input.*no (query )?samples|strategies\[0\]\.input.*empty"):
        queried(table(FOUR), [similarity()], np.zeros((0, 2)))


def test_an_all_zero_query_embedding_is_refused_like_a_missing_one(tmp_path):
    """Query rows (0, 0) and (0, 1). Today the candidate (1, 0) (1.414 from the real query, similarity 0.293) gets
    0.5 from the zero row and ties with (0.6, 0.8) mis-ranked: a zero vector has no direction, so, like a null or
    NaN query embedding, it is an error naming the query set."""
    config = _query_file(tmp_path, [[0.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"strategies\[0\]\.input"):
        queries = resolve_query_sets(config, base=str(tmp_path))
        select(table(np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])), config, query_embeddings=queries)


# ----------------------------------------------------------------------------------------------- TYPICALITY
# D (-1, 0), C (0.6, -0.8), A (1, 0), B (0.6, 0.8) as rows k0..k3. Distances: A-B = A-C = √0.8 = 0.894, B-C = 1.6,
# A-D = 2, B-D = C-D = √3.2 = 1.789 (B and C mirror images: the same bits). With k = 2 nearest neighbours:
# A 1/(1 + 0.894) = 0.528, B = C 1/(1 + (0.894 + 1.6)/2) = 0.445, D 1/(1 + 1.789) = 0.359.
KITE = np.array([[-1.0, 0.0], [0.6, -0.8], [1.0, 0.0], [0.6, 0.8]])
TYP_A = 1 / (1 + np.sqrt(0.8))
TYP_BC = 1 / (1 + (np.sqrt(0.8) + 1.6) / 2)
TYP_D = 1 / (1 + np.sqrt(3.2))


def test_typicality_is_the_k_nearest_neighbour_density_and_a_tie_goes_to_the_lower_row():
    r = run(table(KITE), [typicality(2)])
    assert r.keys == ["k2", "k1", "k3", "k0"]
    assert details(r, "typicality") == pytest.approx([TYP_A, TYP_BC, TYP_BC, TYP_D], abs=1e-6)


def test_typicality_with_k_at_least_the_candidates_uses_every_other_candidate():
    """k = 20 on 4 candidates: each one's mean distance to the 3 others. A (0.894, 0.894, 2) 0.442, B = C (0.894,
    1.6, 1.789) 0.412, D (2, 1.789, 1.789) 0.350: the same order. One candidate alone has typicality 1."""
    r = run(table(KITE), [typicality(20)])
    assert r.keys == ["k2", "k1", "k3", "k0"]
    a = 1 / (1 + (2 * np.sqrt(0.8) + 2) / 3)
    bc = 1 / (1 + (np.sqrt(0.8) + 1.6 + np.sqrt(3.2)) / 3)
    d = 1 / (1 + (2 + 2 * np.sqrt(3.2)) / 3)
    assert details(r, "typicality") == pytest.approx([a, bc, bc, d], abs=1e-6)
    one = run(table(KITE[:1]), [typicality(20)])
    assert one.keys == ["k0"] and details(one, "typicality") == [1.0]


def test_typicality_exact_duplicates_are_the_densest_place():
    """A twice and D: each A's 2 nearest are the other A (0) and D (2), mean 1, typicality 0.5; D's are both A
    (2, 2): 1/3. The duplicates come first (TYPICALITY alone keeps to one dense place, as Lightly warns)."""
    r = run(table(KITE[[2, 2, 0]]), [typicality(2)])
    assert r.keys == ["k0", "k1", "k2"]
    assert details(r, "typicality") == pytest.approx([0.5, 0.5, 1 / 3], abs=1e-9)


def test_typicality_negative_strength_prefers_the_outlier():
    assert run(table(KITE), [typicality(2, strength=-1)]).keys == ["k0", "k1", "k3", "k2"]


def test_minimum_typicality_stops_below_it_and_keeps_a_sample_exactly_at_it():
    """``stopping_condition_minimum_typicality`` is "the minimal allowed typicality of the selected samples": at 0.4
    A, C, B are picked and D (0.359) stops the run; at exactly B's and C's typicality they are still allowed."""
    r = run(table(KITE), [typicality(2, stopping_condition_minimum_typicality=0.4)])
    assert (r.keys, r.stop_reason) == (["k2", "k1", "k3"], "minimum_typicality")
    exact = details(run(table(KITE), [typicality(2)]), "typicality")[1]
    r = run(table(KITE), [typicality(2, stopping_condition_minimum_typicality=exact)])
    assert (r.keys, r.stop_reason) == (["k2", "k1", "k3"], "minimum_typicality")


def test_typicality_with_diversity_is_the_product_and_its_strength_the_exponent():
    """First pick A (most typical; nothing selected yet). Second: B and C score (0.894/2)·0.445 = 0.199, D
    (2/2)·0.359 = 0.359: D; then C (the lower row of the tie), B. With TYPICALITY strength 5 the second pick is C
    (0.447·0.445⁵ = 0.0078 against 1·0.359⁵ = 0.0059), then B (0.0078 against (1.789/2)·0.0059 = 0.0053), then D."""
    assert run(table(KITE), [typicality(2), diversity()]).keys == ["k2", "k0", "k1", "k3"]
    assert run(table(KITE), [typicality(2, strength=5), diversity()]).keys == ["k2", "k1", "k3", "k0"]


def test_num_nearest_neighbors_above_the_candidates_is_logged(caplog):
    """k = 20 (Lightly's default) on 4 candidates computes the density over 3 neighbours (the values above): a run
    log line says so, naming ``num_nearest_neighbors`` and the count it used, and so do the run's warnings (the
    report's missed goals, the metrics), from the objective's report."""
    from lightly_airflow.pipeline import selection_warnings

    t = table(KITE)
    with caplog.at_level(logging.WARNING):
        r = run(t, [typicality(20)])
    assert any("num_nearest_neighbors=20: only 3 other candidates" in rec.getMessage() for rec in caplog.records)
    config = parse_selection_config({"n_samples": 10, "strategies": [typicality(20)]})
    assert [w for w in selection_warnings(t, config, r.metrics) if "TYPICALITY" in w] == [
        "strategies[0] TYPICALITY: num_nearest_neighbors=20, but only 3 other candidates have an embedding: each "
        "typicality is the mean distance to all of them. Fix: a smaller num_nearest_neighbors."]
    assert "num_nearest_neighbors_used" not in run(t, [typicality(2)]).metrics["objectives"]["strategies[0]"]


# ----------------------------------------------------------------------------------------------- BALANCE
def _classes(t: pa.Table, r) -> list:
    return sorted(t.column("metadata.c")[int(i)].as_py() for i in r.indices)


@pytest.mark.parametrize(("classes", "n", "expected"), [
    (["a"] * 6 + ["b"] * 6, 4, ["a", "a", "b", "b"]),
    (["b"] * 6 + ["a"] * 6, 4, ["a", "a", "b", "b"]),
    (["a"] * 6 + ["b"] * 6 + ["c"], 9, ["a"] * 4 + ["b"] * 4 + ["c"]),
], ids=["a-rows-first", "b-rows-first", "other-class-runs-out"])
def test_balance_remainder_without_candidates_keeps_the_named_classes_at_their_ratio(classes, n, expected):
    """Target ``{a: 0.25, b: 0.25}``: the remaining 0.5 is "the target for the other classes". Where no other class
    has a candidate (or its one candidate, c, is taken), that share cannot be met (Lightly: "Restrictions in the
    input dataset") and "not specified classes do not influence the selection": a and b have the same target, so
    nothing may prefer one to the other: as many a as b, whatever the row order."""
    t = table(c=classes)
    r = run(t, [meta("c", type="BALANCE", target={"a": 0.25, "b": 0.25})], n=n)
    assert _classes(t, r) == expected
