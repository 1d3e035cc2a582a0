"""The one rule for missing inputs (docs/selection.md): null-safe for every input type, counted, never preferred."""

import json
import logging

import numpy as np
import pyarrow as pa
import pytest
from selection_data import clustered, table_of
from test_exactness import reference_order

from lightly_airflow.selection import select

E = {"type": "EMBEDDINGS"}
MARGIN = {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}


def _cfg(n, *strategies):
    return {"n_samples": n, "strategies": list(strategies)}


def _with_nulls(values, every=7):
    return [None if i % every == 3 % every else v for i, v in enumerate(values)]


@pytest.mark.parametrize("strength", [1.0, -1.0])
def test_scores_with_nulls_take_the_least_preferred_value_for_either_strength(digits_table, strength):
    rng = np.random.default_rng(0)
    score = rng.random(digits_table.num_rows)
    vals = _with_nulls(score.tolist())
    t = digits_table.append_column("scores.cls.uncertainty_margin", pa.array(vals, pa.float64()))
    n = digits_table.num_rows
    r = select(t, _cfg(n, {"input": MARGIN, "strategy": {"type": "WEIGHTS", "strength": strength}}))
    missing = np.array([v is None for v in vals])
    assert r.metrics["missing_inputs"] == {"scores.cls.uncertainty_margin": int(missing.sum())}
    # A missing value ties with the least preferred value: 0 for a positive strength, the maximum otherwise.
    worst = 0.0 if strength > 0 else score[~missing].max()
    assert r.indices.tolist() == np.argsort(-strength * np.where(missing, worst, score), kind="stable").tolist()
    assert not missing[r.indices][: n - missing.sum() - 1].any()  # only the one worst sample ties
    assert r.objectives["strategies[0]"]["n_missing"] == int(missing.sum())


def test_negative_metadata_with_nulls_a_null_is_not_zero(digits_table):
    # Before: a null became 0.0, above every negative value, so missing samples were picked first.
    rng = np.random.default_rng(1)
    v = -1.0 - 4.0 * rng.random(digits_table.num_rows)
    vals = _with_nulls(v.tolist(), every=5)
    t = digits_table.append_column("metadata.temperature", pa.array(vals, pa.float64()))
    r = select(t, _cfg(50, {"input": {"type": "METADATA", "key": "temperature"}, "strategy": {"type": "WEIGHTS"}}))
    assert all(vals[i] is not None for i in r.indices)
    assert r.indices.tolist() == np.argsort(-np.array([x if x is not None else -np.inf for x in vals]),
                                            kind="stable")[:50].tolist()


def test_threshold_never_passes_a_missing_value(digits_table):
    score = np.linspace(0, 1, digits_table.num_rows)
    vals = _with_nulls(score.tolist())
    t = digits_table.append_column("scores.cls.uncertainty_margin", pa.array(vals, pa.float64()))
    r = select(t, _cfg(10_000, {"input": MARGIN, "strategy": {"type": "THRESHOLD", "threshold": 0.5,
                                                               "operation": "SMALLER"}},
                       {"input": MARGIN, "strategy": {"type": "WEIGHTS"}}))
    expected = [i for i, x in enumerate(vals) if x is not None and x < 0.5]
    assert sorted(r.indices.tolist()) == expected
    assert r.metrics["missing_inputs"]["scores.cls.uncertainty_margin"] == sum(x is None for x in vals)


def test_categorical_balance_with_null_labels_never_counts_them_as_a_class(digits_table):
    labels = digits_table.column("metadata.label").to_pylist()
    vals = _with_nulls(labels, every=3)
    t = digits_table.set_column(digits_table.schema.get_field_index("metadata.label"), "metadata.label",
                                pa.array(vals, pa.string()))
    strat = {"type": "BALANCE", "distribution": "UNIFORM"}
    for cfg in (_cfg(200, {"input": {"type": "METADATA", "key": "label"}, "strategy": strat}),
                _cfg(200, {"input": E, "strategy": {"type": "DIVERSITY"}},
                     {"input": {"type": "METADATA", "key": "label"}, "strategy": strat})):
        r = select(t, cfg)
        assert all(vals[i] is not None for i in r.indices)  # before: null rows took class "0"'s bonus
        assert r.metrics["missing_inputs"]["metadata.label"] == sum(v is None for v in vals)
        achieved = r.objectives[f"strategies[{len(cfg['strategies']) - 1}]"]["achieved"]
        assert max(achieved) - min(achieved) < 0.011


def _with_distribution(table, rows):
    t = table.append_column("predictions.cls.class_distribution", pa.array(rows, pa.list_(pa.float64())))
    return t.replace_schema_metadata({"lightly.categories": json.dumps({"cls": [f"d{i}" for i in range(10)]})})


def test_class_distribution_balance_with_null_and_nan_rows(digits_table):
    # Before: flattening the list column dropped the null rows and the reshape crashed the run.
    labels = np.array([int(v) for v in digits_table.column("metadata.label").to_pylist()])
    rows = []
    for i, lab in enumerate(labels):
        p = np.full(10, 0.02)
        p[lab] = 0.82
        rows.append(None if i % 10 == 4 else (p * np.nan).tolist() if i % 10 == 6 else p.tolist())
    t = _with_distribution(digits_table, rows)
    r = select(t, _cfg(100, {"input": E, "strategy": {"type": "DIVERSITY"}},
                       {"input": {"type": "PREDICTIONS", "task": "cls", "name": "CLASS_DISTRIBUTION"},
                        "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}))
    assert len(r.indices) == 100
    assert all(i % 10 not in (4, 6) for i in r.indices)
    assert r.metrics["missing_inputs"] == {"predictions.cls.class_distribution": sum(i % 10 in (4, 6)
                                                                                   for i in range(len(rows)))}
    counts = np.bincount(labels[r.indices], minlength=10)
    assert counts.min() >= 8


def test_category_count_with_nulls_is_least_preferred(digits_table):
    n = digits_table.num_rows
    cars = 1 + np.arange(n) % 5  # no zero count: a zero ties with a missing count (both the floor)
    t = digits_table.append_column("predictions.det.category_count.car",
                                   pa.array(_with_nulls(cars.tolist(), every=4), pa.int64()))
    r = select(t, _cfg(n, {"input": {"type": "PREDICTIONS", "task": "det", "name": "CATEGORY_COUNT",
                                     "categories": ["car"]}, "strategy": {"type": "WEIGHTS"}}))
    missing = np.arange(n) % 4 == 3
    assert missing[r.indices][-missing.sum():].all()
    assert r.metrics["missing_inputs"] == {"predictions.det.category_count.*": int(missing.sum())}


def test_null_embeddings_are_no_candidates_and_the_rest_is_the_exact_order(caplog):
    x = clustered(800, seed=4)
    rows = [None if i % 9 == 2 else v for i, v in enumerate(list(x))]
    t = table_of(x)
    t = t.set_column(1, "embedding", pa.array(rows, type=pa.list_(pa.float32())))
    ok = np.array([r is not None for r in rows])
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.selection"):
        r = select(t, _cfg(60, {"input": E, "strategy": {"type": "DIVERSITY"}}))
    kept = np.flatnonzero(ok)
    assert r.indices.tolist() == kept[reference_order(x[ok], 60)].tolist()
    assert r.metrics["missing_inputs"] == {"embedding": int((~ok).sum())}
    assert "lack 'embedding'" in caplog.text
    # Typicality and similarity on the same table: the samples without embedding are skipped likewise.
    r2 = select(t, _cfg(30, {"input": E, "strategy": {"type": "TYPICALITY"}}))
    assert ok[r2.indices].all() and r2.metrics["missing_inputs"] == {"embedding": int((~ok).sum())}


def test_preselected_without_embedding_is_counted_and_ignored():
    x = clustered(600, seed=2)
    pre = clustered(50, seed=3)
    pre_rows = [None if i % 5 == 0 else v for i, v in enumerate(list(pre))]
    pre_t = table_of(pre).set_column(1, "embedding", pa.array(pre_rows, type=pa.list_(pa.float32())))
    r = select(table_of(x), _cfg(40, {"input": E, "strategy": {"type": "DIVERSITY"}}), preselected=pre_t)
    keep = np.array([v is not None for v in pre_rows])
    assert r.indices.tolist() == reference_order(x, 40, pre[keep])
    assert r.metrics["missing_inputs"] == {"preselected:embedding": int((~keep).sum())}
    assert r.objectives["strategies[0]"]["preselected"] == int(keep.sum())
