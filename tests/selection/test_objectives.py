"""Objectives as classes: their reports, the per-pick "why" table, and preselected BALANCE counts made visible."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from selection_data import clustered, table_of
from test_exactness import reference_order

from lightly_airflow.config.selection import StrategyEntry
from lightly_airflow.selection import select
from lightly_airflow.selection.objectives import REGISTRY

E = {"type": "EMBEDDINGS"}
MARGIN = {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}
LABEL = {"type": "METADATA", "key": "label"}


def _cfg(n, *strategies):
    return {"n_samples": n, "strategies": list(strategies)}


def test_every_strategy_type_but_threshold_has_an_objective_class():
    kinds = set(StrategyEntry.model_json_schema()["$defs"].keys())
    types = {k.removesuffix("Strategy").upper() for k in kinds if k.endswith("Strategy") and k != "Strategy"}
    assert types - {"THRESHOLD"} == set(REGISTRY)


def test_pick_details_record_each_objective_at_the_moment_of_the_pick(digits_table):
    rng = np.random.default_rng(0)
    margin = rng.random(digits_table.num_rows)
    t = digits_table.append_column("scores.cls.uncertainty_margin", pa.array(margin))
    r = select(t, _cfg(60, {"input": E, "strategy": {"type": "DIVERSITY"}},
                       {"input": MARGIN, "strategy": {"type": "WEIGHTS", "strength": 2.0}},
                       {"input": LABEL, "strategy": {"type": "BALANCE", "target": {"0": 0.5}}}))
    d = r.pick_details.to_pydict()
    assert d["key"] == r.keys and d["pick_rank"] == list(range(60))
    x = np.stack(t.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float64)
    labels = np.array(t.column("metadata.label").to_pylist())
    assert d["selection.distance"][0] is None  # nothing selected before the first pick
    for rank in range(1, 60):
        i, earlier = r.indices[rank], r.indices[:rank]
        assert d["selection.distance"][rank] == pytest.approx(np.linalg.norm(x[earlier] - x[i], axis=1).min(), abs=1e-6)
        assert d["selection.weight"][rank] == margin[i]
        share = (labels[earlier] == "0").mean()
        deficit = max(0.5 - share, 0.0) if labels[i] == "0" else max(0.5 - (1 - share), 0.0)
        assert d["selection.balance_deficit"][rank] == pytest.approx(deficit)
        gaps = [max(0.5 - share, 0.0), max(0.5 - (1 - share), 0.0)]
        expected = (math.log(max(min(d["selection.distance"][rank] / 2, 1), 1e-3))
                    + 2.0 * math.log(margin[i] / margin.max())
                    + math.log(max(deficit / max(gaps), 1e-6) if max(gaps) > 0 else 1.0))
        assert d["selection.score"][rank] == pytest.approx(expected, abs=1e-6)


def test_reports_are_what_the_selection_achieved(digits_table):
    rng = np.random.default_rng(1)
    margin = rng.random(digits_table.num_rows)
    t = digits_table.append_column("scores.cls.uncertainty_margin", pa.array(margin))
    r = select(t, _cfg(100, {"input": E, "strategy": {"type": "DIVERSITY"}},
                       {"input": MARGIN, "strategy": {"type": "WEIGHTS"}},
                       {"input": LABEL, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}))
    div, w, bal = (r.objectives[f"strategies[{i}]"] for i in range(3))
    assert div["kind"] == "DIVERSITY" and div["coverage_radius"] == r.metrics["coverage_radius"]
    assert div["min_distance_at_pick"] == pytest.approx(min(v for v in r.pick_details["selection.distance"].to_pylist()
                                                            if v is not None), abs=1e-6)
    assert w["mean_weight_selected"] == pytest.approx(margin[r.indices].mean(), abs=1e-6)
    assert w["mean_weight_all"] == pytest.approx(margin.mean(), abs=1e-6)
    labels = np.array(t.column("metadata.label").to_pylist())[r.indices]
    achieved = dict(zip(bal["classes"], bal["achieved"], strict=True))
    assert achieved == {c: pytest.approx((labels == c).mean(), abs=1e-6) for c in bal["classes"]}
    assert bal["target"] == [0.1] * 10 and json.dumps(r.metrics)  # JSON-serialisable as is


def test_pure_diversity_pick_distances_are_the_farthest_point_distances():
    x = clustered(1500, seed=9)
    r = select(table_of(x), _cfg(80, {"input": E, "strategy": {"type": "DIVERSITY"}}))
    assert r.indices.tolist() == reference_order(x, 80)
    dist = r.pick_details["selection.distance"].to_pylist()
    assert dist[0] is None and all(a >= b - 1e-12 for a, b in zip(dist[1:], dist[2:], strict=False))


def _with_label(table, value):
    return table.set_column(table.schema.get_field_index("metadata.label"), "metadata.label",
                            pa.array([value] * table.num_rows, pa.string()))


def test_preselected_balance_counts_are_used_or_visibly_not(digits_table):
    cfg = _cfg(100, {"input": LABEL, "strategy": {"type": "BALANCE", "target": {"0": 0.5, "1": 0.5}}})
    pre = _with_label(digits_table.slice(0, 100), "0")
    r = select(digits_table, cfg, preselected=pre)
    labels = np.array(digits_table.column("metadata.label").to_pylist())[r.indices]
    assert (labels == "1").sum() == 100  # the 100 preselected "0"s are counted: only "1"s are missing
    assert r.objectives["strategies[0]"]["preselected_counted"] == 100
    # A pool whose samples lack the column: counted as missing and reported, never silently dropped.
    r2 = select(digits_table, cfg, preselected=digits_table.slice(0, 30).drop_columns(["metadata.label"]))
    assert r2.metrics["missing_inputs"] == {"preselected:metadata.label": 30}
    assert r2.objectives["strategies[0]"]["preselected_counted"] == 0


def test_preselected_class_distribution_of_other_categories_is_an_error_not_ignored(digits_table):
    # Before: a ValueError inside the engine was swallowed and the preselected counts silently dropped.
    def with_probs(table, k):
        p = np.full((table.num_rows, k), 1.0 / k)
        t = table.append_column("predictions.cls.class_distribution", pa.array(list(p), pa.list_(pa.float64())))
        return t.replace_schema_metadata({"lightly.categories": json.dumps({"cls": [f"c{i}" for i in range(k)]})})

    cfg = _cfg(20, {"input": {"type": "PREDICTIONS", "task": "cls", "name": "CLASS_DISTRIBUTION"},
                    "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}})
    with pytest.raises(ValueError, match=r"strategies\[0\]\.input: .*preselected samples has 3 classes"):
        select(with_probs(digits_table, 10), cfg, preselected=with_probs(digits_table.slice(0, 5), 3))
