"""The listed files' counts in the run summary (``listing``) and the report's table after real runs (list,
metadata, embeddings, select and commit in process), against the files on disk: listed = processed + not
processed, and each of those the sum of its parts (new keys, replaced, processed again; unchanged, changed under
the key policy, Live Photo clips, archived, expiring). The runs' datasource: :func:`second_run` (a pool of 6
images; then a.png 5 deleted, 1 and 2 changed, b/0 and b/1 new, b/copy.png, b/bad.png, a Live Photo, a key with a
tab, a text file)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from report.test_listed_files_add_up import CLIP, _not_listed, _on_disk, make_second_run, run_with_summary

#: the run summary's counts under each new-file policy (zeros left out); new keys: b/0, b/1, b/copy, b/bad and the
#: Live Photo's photo; replaced: a/1, a/2; unchanged: a/0, a/3, a/4; the clip b/IMG_0001.MOV
EXPECTED = {
    "content": {"listed": 11, "processed_files": 7, "new_keys": 5, "replaced": 2, "not_processed": 4, "unchanged": 3,
                "live_photo_clips": 1},
    "key": {"listed": 11, "processed_files": 5, "new_keys": 5, "not_processed": 6, "unchanged": 3,
            "changed_under_key": 2, "live_photo_clips": 1},
    # (the list step counted 0 not processed: the clip was neither processed nor counted)
    "process_all": {"listed": 11, "processed_files": 10, "new_keys": 5, "replaced": 2, "processed_again": 3,
                    "not_processed": 1, "live_photo_clips": 1},
}
NAMES = ("listed", "processed_files", "new_keys", "replaced", "processed_again", "not_processed", "unchanged",
         "changed_under_key", "live_photo_clips", "archived", "expiring")


@pytest.fixture
def second_run(tmp_path: Path) -> tuple[Path, Path]:
    return make_second_run(tmp_path)


def _table(page: str) -> dict[str, int]:
    """The report's listed-files table: label -> count."""
    table = page.split('<table class="files">', 1)[1].split("</table>", 1)[0]
    return {label.strip("\u2003"): int(n.replace(",", "")) for label, n in
            re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">([\d,]+)</td></tr>", table)}


@pytest.mark.parametrize("how", ["content", "key", "process_all"])
def test_summary_and_report_count_what_became_of_each_listed_file(second_run: tuple[Path, Path], how: str) -> None:
    source, pool = second_run
    query: dict[str, Any] = {"process_all": True} if how == "process_all" else {"policy": how}
    summary, page = run_with_summary(source, pool, "r2", **query)
    listing = summary.to_dict()["listing"]
    assert {k: listing[k] for k in NAMES if listing.get(k)} == EXPECTED[how]
    assert listing["listed"] + _not_listed(page) == _on_disk(source) == 13  # (the clip: listed, not processed)
    assert listing["listed"] == listing["processed_files"] + listing["not_processed"]
    assert listing["new_keys"] + listing["replaced"] + listing["processed_again"] == listing["processed_files"]
    line = page.split('<p class="listed">', 1)[1].split("</p>", 1)[0]
    assert line.startswith(f"The datasource lists {listing['listed']} files; "), line  # (the summary's number)
    assert line.endswith({"content": "processed 7 and did not process 4: the datapool processed 3 of them before "
                                     f"(unchanged since); {CLIP}.",
                          "key": "processed 5 and did not process 6: the datapool processed 5 of them before (unchanged "
                                 "since: 3; changed under the same key, which the new-file policy &#x27;key&#x27; "
                                 f"leaves: 2, a note names them); {CLIP}.",
                          "process_all": f"processed 10 and did not process 1: {CLIP}."}[how]), line
    table = _table(page)
    assert table["listed in the datasource"] == 11 and table["processed"] == EXPECTED[how]["processed_files"]
    assert table["not processed"] == EXPECTED[how]["not_processed"]
    assert table.get("replaced: new content under a key the datapool holds", 0) == EXPECTED[how].get("replaced", 0)
    assert table.get("changed under a key the datapool holds (new-file policy &#x27;key&#x27;)", 0) == \
        EXPECTED[how].get("changed_under_key", 0)


def test_report_names_the_relevant_filenames_file_and_its_matches(second_run: tuple[Path, Path]) -> None:
    """The page did not say which relevant-filenames file the run applied, nor how many of its names matched; its
    "Not listed from the datasource" counted a name that matches no file as a file on disk."""
    source, pool = second_run
    (source / ".lightly").mkdir(exist_ok=True)
    (source / ".lightly/picks.txt").write_text("a/0.png\na/1.png\nb/gone.png\nb/*\n")
    summary, page = run_with_summary(source, pool, "r2", relevant_filenames_file="picks.txt")
    relevant = summary.to_dict()["listing"]["relevant_filenames"]
    assert relevant == {"file": f"{source}/.lightly/picks.txt", "names": 3, "names_matched": 2, "patterns": 1}
    line = page.split("Relevant filenames: ", 1)[1].split("</p>", 1)[0]
    assert line.startswith(f"{source}/.lightly/picks.txt lists 3 file names (2 of them in the datasource; "
                           "the other is in the problems file) and 1 folder or pattern line")
    assert summary.to_dict()["listing"]["listed"] == 8  # a/0, a/1 and b/'s 6 (the tab key is skipped)
    # b/gone.png is a name, no file on disk: "Not listed from the datasource (3)" counted it with the tab key and the
    # text file; the files on disk are the 8 listed, those 2 and a/2, a/3, a/4, which picks.txt does not select
    assert _not_listed(page) == 2 and _on_disk(source) == 8 + 2 + 3
    assert ("2 entries were skipped and never read (of them, 1 name of the relevant-filenames file is no file on "
            "disk: counted apart, as said above); every one is in the problems file") in page


def test_each_reason_for_not_processing_is_counted_and_an_older_summary_gets_no_table(tmp_path: Path) -> None:
    """A ``process_all`` run that left archived and expiring files read "did not process …: the datapool processed
    them before (unchanged since …)"; a summary written before the parts were counted has no table (its parts
    would all read 0)."""
    import pyarrow as pa

    from lightly_airflow import columns as C
    from lightly_airflow.report import write_report

    rows = pa.table({C.KEY: ["a.png"], C.STATUS: [C.STATUS_OK], C.SELECTED: [True]})
    listing = {"listed": 10, "not_processed": 4, "new_keys": 5, "replaced": 1, "unchanged": 1, "archived": 2,
               "expiring": 1, "skipped": 4, "skipped_examples": [["a\tb.png", "a tab"], ["g.png", "archived in S3 "
                                                                 "GLACIER"]]}
    page = Path(write_report(rows, out_uri=str(tmp_path / "new"), config={},
                             summary={"run_id": "r", "listing": listing})).read_text()
    assert ("this run processed 6 and did not process 4: the datapool processed 1 of them before (unchanged since); "
            "2 archived, not restored; 1 expiring (input_expiration SKIP).") in page
    # (the 3 archived and expiring files were counted twice: listed, and "Not listed from the datasource (4)")
    assert "Not listed from the datasource (1)" in page
    assert ("4 entries were skipped and never read (of them, 3 archived or expiring files are listed: counted above "
            "with the files not processed)") in page
    assert _table(page) == {"listed in the datasource": 10, "processed": 6,
                            "new: a key the datapool does not hold": 5,
                            "replaced: new content under a key the datapool holds": 1, "not processed": 4,
                            "unchanged since the datapool processed them": 1,
                            "archived, not restored (in the problems file)": 2,
                            "expiring under input_expiration SKIP (in the problems file)": 1}
    older = Path(write_report(rows, out_uri=str(tmp_path / "old"), config={},
                              summary={"run_id": "r", "listing": {"listed": 10, "not_processed": 4}})).read_text()
    assert '<table class="files">' not in older and "(unchanged since, or, under the new-file policy" in older
