"""SIMILARITY query sets come from a datapool tag or a Parquet file, named as Lightly names them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.config import parse_selection_config
from lightly_airflow.datapool import Datapool
from lightly_airflow.selection import select
from lightly_airflow.selection.queries import resolve_query_sets


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = d.data.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, d.target


def _config(dataset_id: str, tag: str):
    return parse_selection_config({"n_samples": 30, "strategies": [
        {"input": {"type": "EMBEDDINGS", "dataset_id": dataset_id, "tag_name": tag}, "strategy": {"type": "SIMILARITY"}},
    ]})


def _pool_with_a_tag_of_threes(path, x, y) -> str:
    """A datapool whose run selected (and so tagged) every image of the digit 3 among 200 samples."""
    idx = np.arange(200)
    threes = [int(i) for i in idx if y[i] == 3]
    rank = {i: r for r, i in enumerate(threes)}
    rows = pa.table({
        C.KEY: [f"digits/{i:04d}.png" for i in idx],
        C.ETAG: [f"e{i}" for i in idx],
        C.STATUS: [C.STATUS_OK] * len(idx),
        C.EMBEDDING: pa.array([x[i].tolist() for i in idx], pa.list_(pa.float32(), 64)),
        C.SELECTED: [int(i) in rank for i in idx],
        C.PICK_RANK: pa.array([rank.get(int(i)) for i in idx], pa.int64()),
    })
    uri = f"file://{path}"
    pool = Datapool(uri)
    pool.commit(rows, run_id="run-1", dag_id="d", tag="threes", config={}, counts={}, embedding_model="m",
                embedding_dim=64, read_version=None)
    return uri


def test_query_set_from_a_datapool_tag_steers_similarity(tmp_path, digits) -> None:
    x, y = digits
    uri = _pool_with_a_tag_of_threes(tmp_path / "pool", x, y)
    config = _config(uri, "threes")
    queries = resolve_query_sets(config)
    assert queries[(uri, "threes")].shape == (int((y[:200] == 3).sum()), 64)
    candidates = pa.table({C.KEY: [f"c{i}" for i in range(200, 1000)],
                           C.EMBEDDING: pa.array([x[i].tolist() for i in range(200, 1000)], pa.list_(pa.float32(), 64))})
    result = select(candidates, config, query_embeddings=queries)
    assert (y[200 + result.indices] == 3).mean() >= 0.9


def test_query_set_from_a_parquet_file_filters_by_tag(tmp_path, digits) -> None:
    x, y = digits
    tags = [["sevens"] if y[i] == 7 else [] for i in range(300)]
    pq.write_table(pa.table({C.EMBEDDING: pa.array([x[i].tolist() for i in range(300)], pa.list_(pa.float32())),
                             C.TAGS: tags}), tmp_path / "queries.parquet")
    queries = resolve_query_sets(_config("queries.parquet", "sevens"), base=str(tmp_path))
    assert queries[("queries.parquet", "sevens")].shape == (sum(1 for t in tags if t), 64)


def test_a_missing_query_set_names_the_input_and_the_fix(tmp_path, digits) -> None:
    x, y = digits
    uri = _pool_with_a_tag_of_threes(tmp_path / "pool", x, y)
    with pytest.raises(ValueError, match=r"strategies\[0\]\.input.*'nope'.*Fix"):
        resolve_query_sets(_config(uri, "nope"))
    with pytest.raises(ValueError, match=r"strategies\[0\]\.input.*Fix"):
        resolve_query_sets(_config(str(tmp_path / "no-such-pool"), "threes"))
