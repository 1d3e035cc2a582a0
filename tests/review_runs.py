"""Reviewed runs for the review tests: a run proposes, another run's commit changes its picks, and a reviewer's
Commit of the first is refused at the commit (the datapool changed after the proposal)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faults.runs import prepare

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.review import PROPOSAL_FILE, Review, ReviewError

DIVERSE = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def select(pool: Path, run_id: str, manifests: list[str], review: Review | None = None, config: dict = DIVERSE) -> Any:
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                             selection_config=config, review=review)


def record(pool: Path, run_id: str) -> dict:
    """The run's proposal record (``proposal.json``)."""
    from lightly_airflow import staging

    return json.loads((Path(staging.reports_dir(str(pool), run_id)) / PROPOSAL_FILE).read_text())


def commit_refused(source: Path, pool: Path, mine: tuple[int, int] = (0, 12)) -> tuple[list[str], Review]:
    """Run ``manual__mine`` (the images ``mine`` of batch "a") proposes; ``manual__other`` (6 more) commits; alice's
    Commit of the proposal is refused. Returns the run's manifests and alice's answer."""
    add_batch(source, Batch("a", mine, ()))
    manifests = prepare(source, pool, "manual__mine", DIVERSE)
    select(pool, "manual__mine", manifests, Review("propose"))
    add_batch(source, Batch("b", (0, 6), ()))
    select(pool, "manual__other", prepare(source, pool, "manual__other", DIVERSE))
    alice = Review("decide", approved=True, by="alice", at=datetime.now(UTC).isoformat())
    with pytest.raises(ReviewError, match="the datapool changed after the proposal"):
        select(pool, "manual__mine", manifests, alice)
    return manifests, alice
