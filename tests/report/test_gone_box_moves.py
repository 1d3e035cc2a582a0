"""The report's "Files gone from the datasource" box after a commit with moves: how many selected samples moved
with their files is the commit's count (``moves.moved_selected``), not the listing's count of every moved pair's;
pairs the commit refused because the image has objects are said; an older commit without the count is not
guessed at; the sentences say one and many with the page's helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.report import write_report


def page(tmp_path: Path, name: str, listing: dict[str, Any], **summary: Any) -> str:
    rows = pa.table({C.KEY: ["n/a.png"], C.STATUS: [C.STATUS_OK], C.SELECTED: [False]})
    full = {"run_id": "r2", "version": 3, "committed": True, "listing": listing, **summary}
    return Path(write_report(rows, out_uri=str(tmp_path / name), config={}, summary=full)).read_text()


def gone(n_moved: int, selected: int, moved_selected: int) -> dict[str, Any]:
    """The listing of a run that found 3 gone files, ``n_moved`` of them moved (new keys ``n/<i>.png``)."""
    pairs = [[f"n/{i}.png", f"o/{i}.png"] for i in range(n_moved)]
    return {"listed": 9, "not_processed": 0, "new_keys": n_moved, "gone": 3, "gone_samples": 3,
            "gone_selected": selected, "gone_examples": ["o/0.png", "o/1.png", "o/9.png"], "gone_moved": n_moved,
            "gone_moved_selected": moved_selected, "gone_moved_examples": pairs}


def test_a_moved_selected_image_the_commit_refused_is_still_a_gone_selected_path(tmp_path: Path) -> None:
    """Two moved files, both selected in the listing; the commit took one over and refused the other (an image with
    objects): the box said "2 selected samples moved with their files … None of the other samples is selected",
    while the refused image's gone key kept its selection (an export still hands out its missing path)."""
    text = page(tmp_path, "refused", gone(2, 2, 2), moved=1,
                moves={"moved": 1, "moved_selected": 1, "moved_objects_not_carried": 1})
    assert ("1 selected sample moved with its file: the new key holds the selection now. 1 of their samples is "
            "selected (initial-tag): an export of those images hands a labelling tool paths that no longer exist") in text
    assert ("1 took over its former key&#x27;s sample (its selection and tags; the former key&#x27;s row is ended, and "
            "earlier versions still show it); 1 did not; 1 of them an image with objects, which a move does not carry: "
            "its former key keeps its selection and objects") in text
    many = page(tmp_path, "many", gone(3, 3, 3), moved=2, moves={"moved": 2, "moved_selected": 2})
    assert "2 selected samples moved with their files: the new keys hold the selection now. 1 of their samples is" in many
    assert "2 took over their former key&#x27;s sample" in many


def test_an_older_commit_without_the_count_is_not_guessed_at(tmp_path: Path) -> None:
    """A commit before ``moved_selected`` was counted: the box said every moved selected sample was taken over."""
    text = page(tmp_path, "older", gone(2, 2, 2), moved=1)
    assert "the selection now" not in text and "None of the other" not in text
    assert ("2 of their samples were selected (initial-tag) when this run listed them; up to 2 of those, of moved "
            "files, may have moved with their files, but this run&#x27;s commit (made before commits counted it) "
            "does not say how many: if any is still selected, an export of those images") in text


def test_nothing_taken_over_hands_over_no_selection(tmp_path: Path) -> None:
    text = page(tmp_path, "none", gone(1, 1, 1), moved=0, moves={"moved_objects_not_carried": 1})
    assert "the selection now" not in text and "1 of their samples is selected (initial-tag)" in text
    assert "0 took over their former key&#x27;s sample" in text and "1 of them an image with objects" in text
