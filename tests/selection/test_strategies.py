"""Every strategy on real data (scikit-learn digits): thresholds, weights, balance, similarity, typicality."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightly_airflow.selection import select

E = {"type": "EMBEDDINGS"}


def _cfg(n, *strategies):
    return {"n_samples": n, "strategies": list(strategies)}


def test_threshold_filters_then_weights_rank(digits_table):
    rng = np.random.default_rng(0)
    score = rng.random(digits_table.num_rows)
    t = digits_table.append_column("scores.cls.uncertainty_margin", pa.array(score))
    inp = {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}
    r = select(t, _cfg(20, {"input": inp, "strategy": {"type": "THRESHOLD", "threshold": 0.9,
                                                        "operation": "SMALLER"}},
                       {"input": inp, "strategy": {"type": "WEIGHTS"}}))
    expected = np.argsort(-np.where(score < 0.9, score, -1), kind="stable")[:20]
    assert r.indices.tolist() == expected.tolist()
    r_neg = select(t, _cfg(5, {"input": inp, "strategy": {"type": "WEIGHTS", "strength": -1}}))
    assert r_neg.indices.tolist() == np.argsort(score, kind="stable")[:5].tolist()


def test_weights_max_sum_stops(digits_table):
    t = digits_table.append_column("metadata.size", pa.array(np.full(digits_table.num_rows, 2.0)))
    r = select(t, _cfg(100, {"input": {"type": "METADATA", "key": "size"},
                             "strategy": {"type": "WEIGHTS", "stopping_condition_max_sum": 9}}))
    assert len(r.indices) == 4 and r.stop_reason == "max_sum"


def test_balance_target_with_partial_target_and_diversity(digits_table):
    r = select(digits_table, _cfg(200, {"input": E, "strategy": {"type": "DIVERSITY"}},
                                  {"input": {"type": "METADATA", "key": "label"},
                                   "strategy": {"type": "BALANCE", "target": {"0": 0.5, "1": 0.2}}}))
    labels = np.array(digits_table.column("metadata.label").to_pylist())[r.indices]
    assert abs((labels == "0").mean() - 0.5) < 0.02
    assert abs((labels == "1").mean() - 0.2) < 0.02
    report = r.objectives["strategies[1]"]
    assert report["kind"] == "BALANCE" and r.metrics["objectives"] == r.objectives
    cls = report["classes"]
    assert report["target"][cls.index("0")] == 0.5 and report["target"][cls.index("__other__")] == 0.3
    assert abs(report["achieved"][cls.index("0")] - 0.5) < 0.02
    assert len(set(r.indices.tolist())) == 200


def test_balance_class_distribution_uniform(digits_table):
    labels = np.array([int(v) for v in digits_table.column("metadata.label").to_pylist()])
    probs = np.full((len(labels), 10), 0.02)
    probs[np.arange(len(labels)), labels] = 0.82
    t = digits_table.append_column("predictions.cls.class_distribution",
                                   pa.array(list(probs), type=pa.list_(pa.float64())))
    t = t.replace_schema_metadata({"lightly.categories": json.dumps({"cls": [f"d{i}" for i in range(10)]})})
    r = select(t, _cfg(100, {"input": {"type": "PREDICTIONS", "task": "cls", "name": "CLASS_DISTRIBUTION"},
                             "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}))
    counts = np.bincount(labels[r.indices], minlength=10)
    assert counts.max() - counts.min() <= 1


def test_preselected_diversity_keeps_away(digits_table):
    cfg = _cfg(30, {"input": E, "strategy": {"type": "DIVERSITY"}})
    pre = digits_table.slice(0, 300)
    r = select(digits_table, cfg, preselected=pre)
    x = np.stack(digits_table.column("embedding").to_numpy(zero_copy_only=False))
    d = np.linalg.norm(x[r.indices][:, None] - x[:300][None], axis=2).min(axis=1)
    assert d.min() > 0.3
    assert not set(r.indices.tolist()) & set(range(300)) or d.min() > 0


def test_similarity_prefers_query_class(digits_table):
    labels = np.array(digits_table.column("metadata.label").to_pylist())
    x = np.stack(digits_table.column("embedding").to_numpy(zero_copy_only=False))
    query = x[labels == "3"][:5]
    cfg = _cfg(20, {"input": {"type": "EMBEDDINGS", "dataset_id": "pool", "tag_name": "threes"},
                    "strategy": {"type": "SIMILARITY"}})
    r = select(digits_table, cfg, query_embeddings={("pool", "threes"): query})
    assert (labels[r.indices] == "3").mean() >= 0.9
    with pytest.raises(ValueError, match="no query embeddings for dataset_id='pool'"):
        select(digits_table, cfg)


def test_typicality_stop_and_random_seed(digits_table):
    r = select(digits_table, _cfg(500, {"input": E, "strategy": {"type": "TYPICALITY", "num_nearest_neighbors": 5,
                                                               "stopping_condition_minimum_typicality": 0.8}}))
    assert r.stop_reason == "minimum_typicality" and 0 < len(r.indices) < 500
    rnd = _cfg(10, {"input": {"type": "RANDOM", "random_seed": 7}, "strategy": {"type": "WEIGHTS"}})
    assert select(digits_table, rnd).keys == select(digits_table, rnd).keys


def test_missing_column_names_input_column_and_producer(digits_table):
    with pytest.raises(ValueError) as info:
        select(digits_table, _cfg(5, {"input": {"type": "SCORES", "task": "det", "score": "uncertainty_entropy"},
                                      "strategy": {"type": "WEIGHTS"}}))
    msg = str(info.value)
    assert "strategies[0].input" in msg and "scores.det.uncertainty_entropy" in msg
    assert ".lightly/predictions/det/" in msg


def test_cli_writes_keys_and_metrics(tmp_path, digits_table):
    pq.write_table(digits_table, tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(json.dumps(_cfg(25, {"input": E, "strategy": {"type": "DIVERSITY"}})))
    out = tmp_path / "o.parquet"
    proc = subprocess.run([sys.executable, "-m", "lightly_airflow.cli", "select", "--samples",
                           str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.json"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    t = pq.read_table(out)
    assert t.column("key").to_pylist() == select(digits_table, json.loads((tmp_path / "c.json").read_text())).keys
    metrics = json.loads(t.schema.metadata[b"lightly.selection_metrics"])
    assert metrics["stop_reason"] == "n_reached" and metrics["n_selected"] == 25
    assert "coverage_radius" in proc.stderr
