"""A datapool with a long history, made cheaply: one tiny run (two rows, one selected, and its tag) a version, as
an hourly DAG commits 8,760 a year. Run ``r`` commits version ``r + 1`` (version 0: the pool made); its run id is
``manual__run-{r:03d}``, its tag ``t{r:03d}``."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool


def commit_tiny_run(pool: Datapool, run: int) -> None:
    rows = pa.table({
        C.KEY: [f"r{run}/{i}.jpg" for i in range(2)], C.ETAG: [f"e{run}-{i}" for i in range(2)], C.STATUS: ["ok"] * 2,
        C.EMBEDDING: pa.array([[0.1, 0.2, 0.3, float(run)]] * 2, pa.list_(pa.float32(), 4)),
        C.SELECTED: [True, False], C.PICK_RANK: pa.array([0, None], pa.int64()),
    })
    pool.commit(rows, run_id=f"manual__run-{run:03d}", dag_id="hourly", tag=f"t{run:03d}", config={}, counts={},
                embedding_model="m", embedding_dim=4, read_version=pool.version() if run else None)


def build_long_pool(uri: str, runs: int) -> Datapool:
    pool = Datapool(uri)
    for run in range(runs):
        commit_tiny_run(pool, run)
    return pool


def strip_initial_tag_counts(path: Path) -> None:
    """The pool's log as a writer before recorded ``initial-tag`` counts left it: no ``initial_tag_count`` in any
    commit (a process reading it afterwards must not hold its history cached)."""
    from lightly_airflow.datapool.snapshot import INITIAL_TAG_COUNT, METADATA_KEY

    for entry in sorted((path / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in entry.read_text().splitlines()]
        for action in actions:
            meta = action.get("commitInfo", {}).get(METADATA_KEY)
            if isinstance(meta, str):
                action["commitInfo"][METADATA_KEY] = json.dumps({k: v for k, v in json.loads(meta).items()
                                                                 if k != INITIAL_TAG_COUNT})
            elif isinstance(meta, dict):
                meta.pop(INITIAL_TAG_COUNT, None)
        entry.write_text("".join(json.dumps(a) + "\n" for a in actions))
