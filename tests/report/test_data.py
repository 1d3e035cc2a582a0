"""The numbers behind the report: PCA, subsampling, counts, balances, embedding extraction."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.report import data as D


def test_pca_matches_scikit_learn_on_digits() -> None:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    x = load_digits().data.astype(np.float32)
    ours = D.pca_2d(x)
    ref = PCA(n_components=2, svd_solver="full").fit_transform(x)
    for i in range(2):
        corr = np.corrcoef(ours[:, i], ref[:, i])[0, 1]
        assert abs(corr) > 0.9999
        assert np.isclose(ours[:, i].var(), ref[:, i].var(), rtol=1e-4)
    assert np.array_equal(ours, D.pca_2d(x)), "same input, same picture"


def test_randomized_pca_for_wide_embeddings_finds_the_top_plane() -> None:
    rng = np.random.default_rng(1)
    n, d = 3000, 512
    basis, _ = np.linalg.qr(rng.standard_normal((d, 2)))
    x = rng.standard_normal((n, 2)) * [10.0, 5.0] @ basis.T + rng.standard_normal((n, d)) * 0.1
    ours = D.pca_2d(x.astype(np.float32), fit_rows=1000)
    ref = (x - x.mean(axis=0)) @ basis
    for i in range(2):
        assert abs(np.corrcoef(ours[:, i], ref[:, i])[0, 1]) > 0.999
    assert ours[:, 0].var() > ours[:, 1].var()


def test_subsample_keeps_every_new_pick_and_shares_the_rest() -> None:
    groups = np.array([0] * 9000 + [1] * 3000 + [2] * 500)
    idx = D.subsample(groups, 2500)
    assert len(idx) == 2500 and len(np.unique(idx)) == 2500 and np.all(np.diff(idx) > 0)
    g = groups[idx]
    assert (g == 2).sum() == 500
    assert (g == 0).sum() == 1500 and (g == 1).sum() == 500  # 2000 shared 3:1
    assert np.array_equal(idx, D.subsample(groups, 2500))
    assert np.array_equal(D.subsample(groups, 20000), np.arange(len(groups)))
    only_new = D.subsample(np.full(100, 2), 10)
    assert len(only_new) == 10
    with pytest.raises(ValueError, match="max_points"):
        D.subsample(groups, 0)


def test_counts_come_from_statuses_and_selection(digits_run) -> None:
    c = D.counts(digits_run.rows, digits_run.summary, digits_run.preselected)
    st = digits_run.statuses
    assert (c.processed, c.ok, c.corrupt, c.duplicate, c.missing) == (
        len(st), st.count("ok"), st.count("corrupt"), st.count("duplicate"), 0)
    assert c.selected == len(digits_run.picked_keys) and c.preselected == digits_run.preselected.num_rows
    assert c.stop_reason == "n_samples reached"
    # Without a status column, the summary fills in; without `selected`, pick_rank decides.
    rows = pa.table({C.KEY: ["a", "b", "c"], C.PICK_RANK: pa.array([None, 0, 1], pa.int64())})
    c = D.counts(rows, {"corrupt": 4, "stop_reason": "minimum distance"}, None)
    assert (c.processed, c.corrupt, c.ok, c.selected, c.stop_reason) == (3, 4, None, 2, "minimum distance")


def test_balances_hand_computed(digits_run) -> None:
    rows, pre = digits_run.rows, digits_run.preselected
    bals = D.balances(rows, digits_run.config, pre)
    assert [b.column for b in bals] == ["metadata.digit", "predictions.cls.class_distribution"]
    meta, cls = bals
    sel = np.array(rows.column(C.SELECTED).to_pylist())
    ok = np.array(rows.column(C.STATUS).to_pylist()) == "ok"
    digit = np.array(rows.column("metadata.digit").to_pylist())
    picked = list(digit[sel]) + pre.column("metadata.digit").to_pylist()
    assert meta.classes == ["0", "1", "other classes"]
    np.testing.assert_allclose(meta.target, [0.5, 0.2, 0.3])
    np.testing.assert_allclose(meta.achieved, [picked.count("0") / len(picked), picked.count("1") / len(picked),
                                               1 - (picked.count("0") + picked.count("1")) / len(picked)])
    np.testing.assert_allclose(meta.available[:2], [(digit[ok] == "0").mean(), (digit[ok] == "1").mean()])
    assert cls.classes[0] == "zero" and cls.classes[-1] == "nine"
    np.testing.assert_allclose(cls.target, np.full(10, 0.1))
    probs = np.array(rows.column("predictions.cls.class_distribution").to_pylist())
    np.testing.assert_allclose(cls.achieved, probs[sel].sum(0) / probs[sel].sum(), rtol=1e-6)
    assert np.isclose(cls.achieved.sum(), 1.0) and np.isclose(cls.available.sum(), 1.0)


def test_balances_skip_what_the_rows_lack() -> None:
    rows = pa.table({C.KEY: ["a"], C.SELECTED: [True]})
    config = {"strategies": [
        {"input": {"type": "METADATA", "key": "weather"}, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}},
        {"input": {"type": "PREDICTIONS", "task": "det", "name": "CATEGORY_COUNT"}, "strategy": {"type": "WEIGHTS"}},
        "not a strategy entry",
    ]}
    assert D.balances(rows, config, None) == []


def test_embedding_matrix_skips_null_short_and_non_finite_rows() -> None:
    emb = pa.array([[1.0, 0.0], None, [0.0, 1.0], [1.0], [float("nan"), 0.0], []], pa.list_(pa.float32()))
    idx, mat = D.embedding_matrix(pa.table({C.EMBEDDING: emb}))
    assert idx.tolist() == [0, 2] and mat.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    idx, mat = D.embedding_matrix(pa.table({C.EMBEDDING: ["not", "a vector"]}))
    assert len(idx) == 0


def test_map_counts_a_re_listed_earlier_pick_once(digits_run) -> None:
    rows = digits_run.rows.slice(0, 100)
    pre = rows.slice(50, 10).select([C.KEY, C.EMBEDDING])  # already selected by an earlier run
    not_sel = pa.array([False] * 100)
    rows = rows.set_column(rows.column_names.index(C.SELECTED), C.SELECTED, not_sel)
    m = D.embedding_map(rows, pre, max_points=1000)
    assert m.total == {D.GROUP_NOT_SELECTED: 90, D.GROUP_EARLIER: 10, D.GROUP_NEW: 0}
    assert len(m.xy) == 100


def test_flat_metrics() -> None:
    flat = dict(D.flat_metrics({"metrics": {"b": {"y": 1.23456789, "x": float("nan")}, "a": list(range(30))}}))
    assert flat["b.y"] == "1.23457" and flat["b.x"] == "nan" and flat["a"].endswith("… (30 values)")


def _night_rows(night: list[bool | None], selected: list[bool]) -> pa.Table:
    n = len(night)
    rng = np.random.default_rng(3)
    return pa.table({
        C.KEY: [f"k{i:02d}" for i in range(n)], C.STATUS: ["ok"] * n,
        C.EMBEDDING: pa.array(rng.normal(size=(n, 4)).astype(np.float32).tolist(), pa.list_(pa.float32())),
        C.metadata_column("is_night"): pa.array(night, pa.bool_()), C.SELECTED: selected,
    })


@pytest.mark.parametrize("spelling", [("true", "false"), ("True", "False"), ("TRUE", "false")])
def test_balances_on_a_boolean_field_read_the_target_as_the_engine(spelling) -> None:
    """``{"true": 0.5, "false": 0.5}`` on a CATEGORICAL_BOOLEAN field: the engine balances the classes True/False
    (``selection.inputs.class_name``); the report's own chart matched the raw strings, drew one "other classes"
    bar with target 0 % and listed a false BALANCE miss."""
    from lightly_airflow.report.goals import count_listed_goals, missed_goals
    from lightly_airflow.selection import select

    yes, no = spelling
    config = {"n_samples": 4, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "METADATA", "key": "is_night"},
         "strategy": {"type": "BALANCE", "target": {yes: 0.5, no: 0.5}, "strength": 10}}]}
    night = [i % 4 == 0 for i in range(16)]
    rows = _night_rows(night, [False] * 16)
    engine = select(rows, config).objectives["strategies[1]"]
    picked = set(select(rows, config).indices.tolist())
    rows = _night_rows(night, [i in picked for i in range(16)])
    pre = pa.table({C.KEY: ["p0", "p1"], C.metadata_column("is_night"): pa.array([True, None], pa.bool_())})
    [bal] = D.balances(rows, config, None)
    assert bal.classes == ["False", "True"] == sorted(engine["classes"])
    np.testing.assert_allclose(bal.target, [0.5, 0.5])
    by_class = dict(zip(engine["classes"], engine["achieved"], strict=True))
    np.testing.assert_allclose(bal.achieved, [by_class["False"], by_class["True"]])
    np.testing.assert_allclose(bal.available, [0.75, 0.25])
    assert missed_goals(rows, config, {}, [bal]) == []
    assert count_listed_goals(rows, config, {}, None) == 0  # (the lightly.run.goals_missed gauge)
    [with_pre] = D.balances(rows, config, pre)  # an earlier True pick counts; one without the field counts for none
    np.testing.assert_allclose(with_pre.achieved, [2 / 5, 3 / 5])


def test_balances_on_boolean_class_predictions_use_the_engines_class_names() -> None:
    """A prediction task whose categories are JSON booleans: the classes are the engine's ``True``/``False``."""
    from lightly_airflow.selection import select

    probs = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]
    rows = pa.table({
        C.KEY: ["a", "b", "c", "d"], C.STATUS: ["ok"] * 4, C.SELECTED: [True, True, False, False],
        C.class_distribution_column("night"): pa.array(probs, pa.list_(pa.float32())),
    }).replace_schema_metadata({C.CATEGORIES_METADATA_KEY.encode(): b'{"night": [true, false]}'})
    config = {"n_samples": 2, "strategies": [{"input": {"type": "PREDICTIONS", "task": "night", "name": "CLASS_DISTRIBUTION"},
                                              "strategy": {"type": "BALANCE", "target": {"True": 0.5}}}]}
    engine = select(rows, config).objectives["strategies[0]"]
    [bal] = D.balances(rows, config, None)
    assert engine["classes"][0] == "True"
    assert bal.classes == ["True", "other classes"]
    np.testing.assert_allclose(bal.target, [0.5, 0.5])
    np.testing.assert_allclose(bal.achieved, [0.55, 0.45], rtol=1e-6)


def test_a_missed_boolean_class_names_the_input_its_samples_lack() -> None:
    """The BALANCE miss on a boolean field names the other strategy's input that every night sample lacks."""
    from lightly_airflow.report.goals import missed_goals

    score = C.score_column("det", "uncertainty_margin")
    night = [i % 4 == 0 for i in range(16)]
    rows = _night_rows(night, [not n and i < 9 for i, n in enumerate(night)]).append_column(
        score, pa.array([None if n else 0.5 for n in night], pa.float64()))
    config = {"n_samples": 6, "strategies": [
        {"input": {"type": "SCORES", "task": "det", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "is_night"},
         "strategy": {"type": "BALANCE", "target": {"true": 0.5, "false": 0.5}}}]}
    [goal] = [g for g in missed_goals(rows, config, {}, D.balances(rows, config, None)) if g.goal.startswith("BALANCE")]
    assert "True: target 50%, achieved 0%" in goal.outcome
    assert f"all 4 of 4 ok 'True' samples lack {score}" in goal.cause


def test_balances_on_a_numeric_field_spell_classes_as_the_engine() -> None:
    """Numbers as classes (``str`` of the value, as the engine); a NaN is no class (the sample lacks the value)."""
    from lightly_airflow.selection import select

    lanes = [1.0, 2.0, float("nan"), 1.0, 2.0, 1.0, float("nan"), 2.0]
    rows = pa.table({C.KEY: [f"k{i}" for i in range(8)], C.STATUS: ["ok"] * 8,
                     C.metadata_column("lane"): pa.array(lanes, pa.float64()), C.SELECTED: [i < 3 for i in range(8)]})
    config = {"n_samples": 3, "strategies": [{"input": {"type": "METADATA", "key": "lane"},
                                              "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}]}
    engine = select(rows, config).objectives["strategies[0]"]
    [bal] = D.balances(rows, config, None)
    assert bal.classes == engine["classes"] == ["1.0", "2.0"]
    np.testing.assert_allclose(bal.target, [0.5, 0.5])
    np.testing.assert_allclose(bal.achieved, [0.5, 0.5])  # (the NaN pick counts for no class)
    np.testing.assert_allclose(bal.available, [0.5, 0.5])
