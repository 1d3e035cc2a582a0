"""Lightly's active-learning loop on a datapool through the Python API: three rounds on digits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from lightly_airflow import columns as C
from lightly_airflow.active_learning import ActiveLearningAgent, QueryOptions
from lightly_airflow.datapool import Datapool

N = 400


@pytest.fixture()
def digits_pool(tmp_path):
    digits = load_digits()
    x = digits.data[:N].astype(np.float32)
    emb = x / np.linalg.norm(x, axis=1, keepdims=True)
    keys = [f"digit_{i:04d}.png" for i in range(N)]
    rows = pa.table({
        C.KEY: keys, C.ETAG: [f"e{i}" for i in range(N)], C.STATUS: [C.STATUS_OK] * N,
        C.EMBEDDING: pa.array(emb.tolist(), pa.list_(pa.float32())),
        C.SELECTED: pa.array([False] * N), C.PICK_RANK: pa.array([None] * N, pa.int64()),
    })
    pool = Datapool((tmp_path / "pool").as_uri())
    pool.commit(rows, run_id="seed", dag_id="test", tag="seed", config={}, counts={}, embedding_model="pixels",
                embedding_dim=64, read_version=None)
    labels = {k: int(y) for k, y in zip(keys, digits.target[:N])}
    return pool, labels, {k: v for k, v in zip(keys, x)}


def _probabilities(labelled: list[str], unlabeled: list[str], labels: dict, pixels: dict) -> np.ndarray:
    model = LogisticRegression(max_iter=500).fit(np.array([pixels[k] for k in labelled]), [labels[k] for k in labelled])
    probs = model.predict_proba(np.array([pixels[k] for k in unlabeled]))
    full = np.zeros((len(unlabeled), 10))
    full[:, model.classes_] = probs  # classes not yet seen get probability 0
    return full


def test_three_rounds_through_the_python_api(digits_pool) -> None:
    pool, labels, pixels = digits_pool
    agent = ActiveLearningAgent(pool)
    assert agent.preselected_set == [] and len(agent.unlabeled_set) == N
    assert agent.unlabeled_set == sorted(agent.unlabeled_set)

    r1 = agent.query(30, "round-1")  # no model yet: DIVERSITY alone
    assert (r1.n_new, r1.n_preselected, r1.n_candidates) == (30, 0, N)
    assert len(set(r1.keys)) == 30

    agent = ActiveLearningAgent(pool)  # preselected: initial-tag, i.e. the labelled set
    assert agent.preselected_set == sorted(r1.keys) and len(agent.unlabeled_set) == N - 30
    with pytest.raises(ValueError, match="unlabeled_set"):
        agent.query(30, "round-2", predictions=np.zeros((5, 10)))
    probs = _probabilities(r1.keys, agent.unlabeled_set, labels, pixels)
    scores = agent.scores_from_predictions(probs)
    r2 = agent.query(30, "round-2", predictions=probs)
    assert r2.n_new == 30 and not set(r2.keys) & set(r1.keys)
    # the scores were committed with the picks:
    picked = pool.read(tag="round-2", columns=[C.KEY, C.score_column("active_learning", "uncertainty_margin")])
    assert picked.num_rows == 30
    mean_picked = np.mean(picked.column(1).to_numpy())
    assert mean_picked > np.mean(scores["uncertainty_margin"])  # WEIGHTS on the margin prefers uncertain samples

    # Lightly's meaning: n_samples is the labelled set's size after the query (90 = 60 preselected + 30 new).
    agent = ActiveLearningAgent(pool, n_samples_meaning="total")
    labelled = agent.preselected_set
    assert len(labelled) == 60
    probs = _probabilities(labelled, agent.unlabeled_set, labels, pixels)
    r3 = agent.query(90, "round-3", predictions=probs)
    assert (r3.n_new, r3.n_preselected) == (30, 60)
    tags = {t["name"]: t["count"] for t in pool.tags()}
    assert tags["round-1"] == tags["round-2"] == tags["round-3"] == 30 and tags[C.INITIAL_TAG] == 90

    version = pool.version()
    again = ActiveLearningAgent(pool, n_samples_meaning="total").query(90, "round-3", predictions=probs)
    assert again.already_committed and sorted(again.keys) == sorted(r3.keys) and pool.version() == version


def test_query_tag_and_preselected_tag(digits_pool) -> None:
    pool, _, _ = digits_pool
    r1 = ActiveLearningAgent(pool).query(20, "first")
    r2 = ActiveLearningAgent(pool).query(20, "second")
    agent = ActiveLearningAgent(pool, query_tag_name="second", preselected_tag_name="first")
    assert agent.unlabeled_set == sorted(r2.keys)  # only the query tag's samples, minus the preselected ones
    assert set(agent.query_set) == set(r2.keys)
    r3 = agent.query(5, "subset")
    assert set(r3.keys) <= set(r2.keys) and r3.n_new == 5 and r3.n_preselected == 20
    assert set(r1.keys).isdisjoint(r3.keys)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="n_samples_meaning"):
        QueryOptions(n_samples_meaning="all")
    assert QueryOptions(n_samples_meaning="total").new_picks(50, 60) == 0
    assert QueryOptions().new_picks(50, 60) == 50
