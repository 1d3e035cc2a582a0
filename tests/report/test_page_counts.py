"""The page as a user reads it after a run: what its sections claim agrees with the counts beside them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.report import write_report
from lightly_airflow.staging import ProblemLog
from lightly_airflow.storage import write_parquet


def test_all_ok_files_with_input_problems_are_not_called_without_problems(tmp_path: Path) -> None:
    """A run whose files are all ok but miss prediction files said "Every file of this run was read and checked
    without problems." right above "Problems with input files (1)"."""
    log = ProblemLog("predictions")
    log.add("a.png", "file", "no prediction file for task 'digits'", ".lightly/predictions/digits/a.json")
    out = tmp_path / "report"
    problems_uri = write_parquet(log.to_table(), str(out / "problems.parquet"))
    rows = pa.table({C.KEY: ["a.png", "b.png"], C.STATUS: [C.STATUS_OK] * 2, C.SELECTED: [True, False]})
    page = Path(write_report(rows, out_uri=str(out), config={},
                             summary={"run_id": "r", "problems": 1, "problems_uri": problems_uri})).read_text()
    assert "Problems with input files (1)" in page
    not_ok = page.split("<h2>Files not ok (0)</h2>", 1)[1].split("<h2>", 1)[0]
    assert "without problems" not in not_ok and "none corrupt, duplicate or missing" in not_ok


def test_a_dry_run_says_nothing_was_committed_in_its_first_screen(tmp_path: Path) -> None:
    """A dry run's page said so only as a grey "dry run: True" among the run id and tag, under a "2 selected" card:
    it read like a committed run whose tag holds 2 samples."""
    rows = pa.table({C.KEY: ["a.png", "b.png", "c.png"], C.STATUS: [C.STATUS_OK] * 3,
                     C.SELECTED: [True, True, False]})
    summary = {"run_id": "r", "tag": "t<1>", "version": 3, "dry_run": True, "selected": 2}
    page = Path(write_report(rows, out_uri=str(tmp_path / "dry"), summary=summary, config={})).read_text()
    head = page.split("<h2>", 1)[0]  # (the first screen: title, cards, stop reason, the run's state)
    assert "<b>Dry run:</b> nothing was committed: no datapool version, no tag &#x27;t&lt;1&gt;&#x27;" in head
    assert "dry run: True" not in page
    committed = Path(write_report(rows, out_uri=str(tmp_path / "real"), config={},
                                  summary={**summary, "dry_run": False})).read_text()
    assert "Dry run:" not in committed and "dry run: False" not in committed


def test_an_object_level_run_says_how_many_objects_it_had_and_selected(tmp_path: Path) -> None:
    """The objects section drew the selected images' boxes but the page never said the run's object counts
    (``summary["objects"]``), which the demo and the XCom print."""
    rows = pa.table({C.KEY: ["a.png", "b.png"], C.STATUS: [C.STATUS_OK] * 2, C.SELECTED: [True, False]})
    summary = {"run_id": "r", "objects": {"tasks": ["shapes", "<car>"], "objects": 1049, "selected": 17}}
    page = Path(write_report(rows, out_uri=str(tmp_path / "o"), summary=summary, config={},
                             objects_figure=lambda: None)).read_text()
    assert "17 of them selected. No selected image has objects." in page  # (the figure had nothing to draw)
    page = Path(write_report(rows, out_uri=str(tmp_path / "o2"), summary=summary, config={},
                             objects_figure=lambda: b"\x89PNG")).read_text()
    assert ("1,049 objects (tasks &#x27;shapes&#x27;, &#x27;&lt;car&gt;&#x27;) in this run&#x27;s images; 17 of them "
            "selected. The first") in page
