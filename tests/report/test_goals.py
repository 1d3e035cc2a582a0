"""The report names every goal a run missed, with cause and count (the demo's 20 % photos that got 0 %)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.datapool.tagging import readable_tag
from lightly_airflow.report import write_report
from lightly_airflow.report.data import balances
from lightly_airflow.report.goals import missed_goals
from lightly_airflow.report.plots import robust_range

SCORE = C.score_column("digits", "uncertainty_margin")
CONFIG = {
    "n_samples": 12,
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "SCORES", "task": "digits", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "source"},
         "strategy": {"type": "BALANCE", "target": {"digits": 0.8, "photos": 0.2}}},
    ],
}


def _rows(n_digits: int = 40, n_photos: int = 10, picked: int = 10) -> pa.Table:
    n = n_digits + n_photos
    source = ["digits"] * n_digits + ["photos"] * n_photos
    score = [0.1 * (i % 7) for i in range(n_digits)] + [None] * n_photos  # photos: no digit prediction
    rng = np.random.default_rng(0)
    return pa.table({
        C.KEY: [f"k{i:03d}" for i in range(n)],
        C.STATUS: ["ok"] * n,
        C.EMBEDDING: pa.array(rng.normal(size=(n, 8)).astype(np.float32).tolist(), pa.list_(pa.float32())),
        C.metadata_column("source"): source,
        SCORE: pa.array(score, pa.float64()),
        C.SELECTED: [i < picked for i in range(n)],
        C.PICK_RANK: pa.array([i if i < picked else None for i in range(n)], pa.int64()),
        C.lightly_metadata_column("sharpness"): [1.0 + (i % 5) for i in range(n - 1)] + [1e6],
    })


def test_the_demos_missed_photo_share_is_named_with_its_cause():
    rows = _rows()
    goals = missed_goals(rows, CONFIG, {"stop_reason": "no candidate left with a weight"}, balances(rows, CONFIG, None))
    by_goal = {g.goal: g for g in goals}
    stop = by_goal["select 12 samples"]
    assert stop.outcome == "selected 10" and stop.count == 2 and "no candidate left" in stop.cause
    missing = by_goal[f"WEIGHTS on {SCORE}"]
    assert missing.count == 10 and "10 of 50 ok samples have no value" in missing.outcome
    balance = next(g for g in goals if g.goal.startswith("BALANCE on metadata.source"))
    assert "photos: target 20%, achieved 0%" in balance.outcome
    assert f"all 10 of 10 ok 'photos' samples lack {SCORE}" in balance.cause


def test_no_missed_goals_when_met():
    rows = _rows(n_digits=40, n_photos=10, picked=12)
    rows = rows.set_column(rows.schema.get_field_index(SCORE), SCORE, pa.array([0.5] * 50, pa.float64()))
    sel = [i < 10 or i in (40, 41) for i in range(50)]  # 10 digits, 2 photos: 83 % / 17 %
    rows = rows.set_column(rows.schema.get_field_index(C.SELECTED), C.SELECTED, pa.array(sel))
    assert missed_goals(rows, CONFIG, {}, balances(rows, CONFIG, None)) == []


def test_report_page_flags_missed_goals_and_clips_outliers(tmp_path: Path):
    index = write_report(_rows(), out_uri=str(tmp_path / "r"), summary={"run_id": "r1", "problems_uri": "x"},
                         config=CONFIG, links={"Airflow run": "/dags/d/runs/r1", "datapool": "../../"})
    html = Path(index).read_text()
    assert "Missed goals (3)" in html and "photos: target 20%, achieved 0%" in html
    assert '<a href="/dags/d/runs/r1" target=_top>Airflow run</a>' in html and '<a href="problems.parquet">' in html
    values = np.r_[np.linspace(0, 1, 200), 1e6]
    lo, hi, outside = robust_range(values)
    assert hi < 2 and outside >= 2  # one extreme value no longer stretches the axis
    assert robust_range(np.linspace(0, 1, 200))[2] == 0


def test_default_tags_read_as_dates_and_stay_unique():
    assert readable_tag("scheduled__2026-03-01T00:00:00+00:00") == "scheduled-2026-03-01-00:00"
    assert readable_tag("manual__2026-12-01T12:59:21.324745+00:00", {"manual-2026-12-01-12:59"}) == "manual-2026-12-01-12:59-2"
    assert readable_tag("asset_triggered__2026-01-02T03:04:05+00:00") == "asset-triggered-2026-01-02-03:04"
    assert readable_tag("my run") == "my-run"


def test_the_select_steps_own_warnings_are_on_the_page(tmp_path: Path):
    rows = _rows(n_digits=40, n_photos=10, picked=12)
    index = write_report(rows, out_uri=str(tmp_path / "r"), config={},
                         summary={"warnings": ["strategies[2] BALANCE: class 'photos' got 0% of the selection"]})
    html = Path(index).read_text()
    assert "Missed goals (1)" in html and "class &#x27;photos&#x27; got 0% of the selection" in html


def test_the_count_goal_is_this_runs_new_picks_with_n_samples_meaning_total():
    """``n_samples: 12`` with ``n_samples_meaning: total`` and 2 selected before asks this run for 10 new picks
    (the summary's ``n_wanted``): 10 selected is no miss (it was "select 12 samples, selected 10")."""
    from lightly_airflow.report.goals import count_listed_goals

    rows = _rows(n_digits=40, n_photos=10, picked=10)
    config = {"n_samples": 12, "strategies": CONFIG["strategies"][:1]}
    summary = {"n_wanted": 10, "pool_selected_before": 2, "stop_reason": "n_reached"}
    assert missed_goals(rows, config, summary, []) == []
    assert count_listed_goals(rows, config, summary, None) == 0
    [goal] = missed_goals(rows, config, {}, [])  # (without the run's target: the config's count)
    assert goal.goal == "select 12 samples" and goal.count == 2
    [goal] = missed_goals(rows, config, {**summary, "n_wanted": 11, "candidates": 10}, [])
    assert goal.goal == "select 11 new samples (n_samples 12 in total, 2 selected before)"
    assert goal.outcome == "selected 10" and goal.count == 1 and goal.cause.startswith("only 10 candidates")
    assert missed_goals(rows, config, {**summary, "n_wanted": 0}, []) == []  # (the labelled set was full)
