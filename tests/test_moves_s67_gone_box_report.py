"""The report's gone box of a run with a gone selected file and a move onto a key written anew
(``tests/test_moves_s67_gone_box.py``): it said the moved file "has the content of a gone file" (its former key is
listed, with a new file) and subtracted the selection that rename handed over from the gone selected samples: "1
selected sample moved with its file … None of the other samples is selected", while the deleted pick still was."""

from __future__ import annotations

from pathlib import Path

from test_moves_s67_gone_box import renamed_onto_a_new_file_and_one_deleted


def test_the_gone_box_says_what_moved_onto_a_key_written_anew(tmp_path: Path) -> None:
    summary, picked = renamed_onto_a_new_file_and_one_deleted(tmp_path)
    page = Path(summary.report_uri.removeprefix("file://")).read_text()
    assert "the content of a gone file" not in page
    assert (
        "1 new file of this run has the content of a file that left its key (moved or renamed?): the key is "
        "gone, or holds a new file now (a rename while a new file took the old name), e.g. b.png (was "
        f"{picked[0]})"
    ) in page
    assert "moved with its file" not in page and "None of the other samples" not in page
    assert "1 of their samples is selected (initial-tag): an export of those images hands a labelling tool" in page
