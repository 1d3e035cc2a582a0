"""The report's "Problems with input files": the run's ``problems.parquet`` by kind, readable at 100,000 rows (the
most frequent kinds, a few examples each, counts for the rest), and a file that cannot be read is said, not hidden."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.report import write_report
from lightly_airflow.report.problems import EXAMPLES, MAX_KINDS
from lightly_airflow.staging import ProblemLog
from lightly_airflow.storage import write_parquet


def _rows() -> pa.Table:
    return pa.table({C.KEY: ["a.png", "b.png"], C.STATUS: ["ok", "ok"], C.SELECTED: [True, False]})


def test_100000_problems_of_60_kinds_give_a_short_page_with_counts(tmp_path: Path) -> None:
    log = ProblemLog("predictions")
    words = [f"{a}{b}" for a in "abcdefghijklmnopqrst" for b in "xyz"]  # 60 kinds
    for i in range(100_000):
        w = words[(i // 2) % 60] if i % 2 else words[i % 3]  # three kinds hold half the rows
        log.add(f"img/{i:06d}.png", "file", f"bad {w} in .lightly/predictions/t/img/{i:06d}.json at index {i}",
                f".lightly/predictions/t/img/{i:06d}.json")
    out = tmp_path / "report"
    problems_uri = write_parquet(log.to_table(), str(out / "problems.parquet"))
    started = time.monotonic()
    index = write_report(_rows(), out_uri=str(out), config={},
                         summary={"run_id": "r", "problems": 100_000, "problems_uri": problems_uri})
    took = time.monotonic() - started
    page = Path(index).read_text()
    assert "Problems with input files (100,000)" in page
    assert "100,000 problems of 60 kinds with the run" in page
    assert f"… and {60 - MAX_KINDS:,} more kinds" in page
    assert page.count('<td class="key">img/') == MAX_KINDS * EXAMPLES  # a few examples a kind, not 100,000 rows
    assert "bad ax in … at index N" in page  # the kind: what differs between files left out
    assert len(page) < 200_000, len(page)
    assert took < 20, took


def test_an_unreadable_problems_file_is_said_on_the_page(tmp_path: Path) -> None:
    index = write_report(_rows(), out_uri=str(tmp_path / "r"), config={},
                         summary={"run_id": "r", "problems": 3, "problems_uri": str(tmp_path / "nowhere.parquet")})
    page = Path(index).read_text()
    assert "Problems with input files (3)" in page
    assert "could not be read for this page: FileNotFoundError" in page
