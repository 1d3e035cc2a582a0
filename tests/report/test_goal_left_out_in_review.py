"""A reviewed commit that left picks out misses its ``n_samples`` because of the reviewer, not the engine: the
report's missed goal says so (it said "the engine stopped: n_reached")."""

from __future__ import annotations

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.report.goals import missed_goals
from lightly_airflow.review import Review

CONFIG = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_a_goal_missed_by_picks_left_out_in_review_names_the_reviewer() -> None:
    rows = pa.table({C.KEY: [f"k{i}" for i in range(10)], C.STATUS: ["ok"] * 10,
                     C.SELECTED: [i < 3 for i in range(10)]})
    summary = {"selected": 3, "candidates": 10, "metrics": {"stop_reason": "n_reached"},
               "review": Review("decide", approved=True, by="alice", dropped=("k3",)).to_dict()}
    [goal] = missed_goals(rows, CONFIG, summary, [])
    assert (goal.outcome, goal.count) == ("selected 3", 1)
    assert goal.cause == "the reviewer left out 1 of the run's picks (committed as not selected)"
    # Fewer picks than asked even before the review: both causes
    short = {**summary, "candidates": 4, "metrics": {"stop_reason": "min_distance"},
             "review": Review("decide", approved=True, dropped=("k3",)).to_dict()}
    [goal] = missed_goals(rows.slice(0, 3), {**CONFIG, "n_samples": 6}, short, [])
    assert goal.cause == ("the reviewer left out 1 of the run's picks (committed as not selected); only 4 candidates "
                          "(ok, new, not selected before); the engine stopped: min_distance")
