"""A run summary's ``moved`` is read from its ``moves`` (the commit's counts), not stored beside it: the two
cannot disagree, and the summary's dict (XCom, the report, the metrics) still carries ``moved``."""

from __future__ import annotations

from dataclasses import fields

from lightly_airflow.pipeline import RunSummary, _summary_from_record


def test_moved_is_read_from_moves() -> None:
    summary = RunSummary(run_id="r", tag="t", version=3, moves={"moved": 2, "moved_selected": 1})
    assert "moved" not in {f.name for f in fields(RunSummary)}
    assert summary.moved == 2 and summary.to_dict()["moved"] == 2
    assert _summary_from_record(summary.to_dict()).moved == 2  # (a recorded summary read back)
    assert RunSummary(run_id="r", tag=None, version=None).to_dict()["moved"] == 0
