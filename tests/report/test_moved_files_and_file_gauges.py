"""Files moved or renamed in the datasource, and the run's file gauges, after real runs (list, metadata, embeddings,
select and commit in process): the report's "files | count" table and its "Files gone from the datasource" box
say how many new files have a gone file's content and how many took over its sample (the summary's ``moved``),
and :func:`~lightly_airflow.run_metrics.run_metrics` sends the summary's counts a user alerts on."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from metadata.conftest import encode, noise_image

from lightly_airflow.run_metrics import METRICS, run_metrics
from report.test_listed_file_counts import _table
from report.test_listed_files_add_up import _not_listed, _on_disk, make_second_run, run_with_summary

MOVED = "of them, moved or renamed: the content of a file gone from the datasource"
TOOK_OVER = "of those, took over the gone file&#x27;s sample (its selection and tags)"


def _moved_run(tmp_path: Path) -> tuple[Path, Path]:
    """A pool of 4 images and a corrupt file, then a/3.png moved to c/3.png and the corrupt file to c/bad.png."""
    source, pool = tmp_path / "src", tmp_path / "pool"
    (source / "a").mkdir(parents=True)
    for i in range(4):
        (source / f"a/{i}.png").write_bytes(encode(noise_image(i)))
    (source / "a/bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    run_with_summary(source, pool, "r1")
    (source / "c").mkdir()
    shutil.move(source / "a/3.png", source / "c/3.png")
    shutil.move(source / "a/bad.png", source / "c/bad.png")
    return source, pool


def test_moved_files_are_counted_and_said(tmp_path: Path) -> None:
    """The table had no row for the new files that are moved ones, and the box said each "takes over its former
    key's sample when that sample was ok" whether or not it did: the corrupt file's new key took nothing over."""
    source, pool = _moved_run(tmp_path)
    summary, page = run_with_summary(source, pool, "r2")
    listing = summary.to_dict()["listing"]
    assert (listing["gone"], listing["gone_moved"], summary.moved) == (2, 2, 1)
    # (a/3.png was selected: its selection moved to c/3.png, so no selected path is gone; the box said "1 of their
    # samples is selected: an export hands a labelling tool paths that no longer exist")
    assert (listing["gone_selected"], listing["gone_moved_selected"]) == (1, 1)
    assert ("1 selected sample moved with its file: the new key holds the selection now. None of the other samples "
            "is selected.") in page and "paths that no longer exist" not in page
    table = _table(page)
    assert (table["listed in the datasource"], table["new: a key the datapool does not hold"]) == (5, 2)
    assert (table[MOVED], table[TOOK_OVER]) == (2, 1)
    assert table["listed in the datasource"] + _not_listed(page) == _on_disk(source) == 5
    assert ("1 took over its former key&#x27;s sample (its selection and tags; the former key&#x27;s row is ended, "
            "and earlier versions still show it); 1 did not (the select task&#x27;s log names each with why: a former "
            "sample that was not ok, an image with objects") in page
    values = run_metrics(summary.to_dict())
    assert values["lightly.run.files_moved"] == 1.0 and set(values) <= set(METRICS)


def test_a_dry_run_says_what_a_commit_would_take_over(tmp_path: Path) -> None:
    """A dry run's summary counts ``moved`` 0 (nothing committed): the page must not read "0 took over"."""
    import pyarrow as pa

    from lightly_airflow import columns as C
    from lightly_airflow.report import write_report

    rows = pa.table({C.KEY: ["c/3.png"], C.STATUS: [C.STATUS_OK], C.SELECTED: [True]})
    listing = {"listed": 1, "not_processed": 0, "new_keys": 1, "gone": 1, "gone_samples": 1, "gone_examples": ["a.png"],
               "gone_moved": 1, "gone_moved_examples": [["c/3.png", "a/3.png"]]}
    summary = {"run_id": "r", "version": 1, "dry_run": True, "committed": False, "moved": 0, "listing": listing}
    page = Path(write_report(rows, out_uri=str(tmp_path / "dry"), config={}, summary=summary)).read_text()
    assert "each one takes over its former key&#x27;s sample (its selection" in page and "when a run commits it" in page
    assert _table(page)[MOVED] == 1 and TOOK_OVER not in page
    committed = {**summary, "dry_run": False, "committed": True, "moved": 1}
    page = Path(write_report(rows, out_uri=str(tmp_path / "real"), config={}, summary=committed)).read_text()
    assert "it took over its former key&#x27;s sample (its selection" in page and _table(page)[TOOK_OVER] == 1


def test_the_file_gauges_are_the_summarys_counts(tmp_path: Path) -> None:
    """The summary counted replaced files, files changed under the key policy and moved files, but no gauge sent
    them: a datasource whose files change under their keys (a re-export overwriting images) went unseen."""
    source, pool = make_second_run(tmp_path)
    summary, _ = run_with_summary(source, pool, "r2", policy="key")
    values = run_metrics(summary.to_dict())
    files = {k: v for k, v in values.items() if re.match(r"lightly\.run\.(files_|frames_)", k)}
    assert files == {"lightly.run.files_replaced": 0, "lightly.run.files_changed_under_key": 2,
                     "lightly.run.files_archived": 0, "lightly.run.files_expiring": 0, "lightly.run.files_moved": 0}
    # policy content: the two changed files are replaced (new samples under their keys)
    again = make_second_run(tmp_path / "content")
    summary, _ = run_with_summary(*again, "r2")
    assert run_metrics(summary.to_dict())["lightly.run.files_replaced"] == 2
    # a summary that does not count the listed files (written before, or its parts 0) sends none of their gauges
    older = {**summary.to_dict(), "listing": {"listed": 11, "not_processed": 4}}
    assert not any(k.startswith("lightly.run.files_") and k != "lightly.run.files_moved" for k in run_metrics(older))
    # selected frames whose PNG could not be written (the counts of video.export): a labeller gets no image for them
    frames = {"written": 3, "rewritten": 0, "existing": 0, "removed": 0, "failed": 2, "folder": "file:///x"}
    assert run_metrics({**summary.to_dict(), "frames": frames})["lightly.run.frames_failed"] == 2
    assert "lightly.run.frames_failed" not in values  # (a run of images wrote no frames: no gauge, not 0)
