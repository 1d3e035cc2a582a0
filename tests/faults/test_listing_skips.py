"""Whatever the listing skips reaches the run: the ListResult (XCom), the run summary, the problems file and
the report, with each key escaped (issue 14.5 and "nothing silent")."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.compute as pc

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.storage import read_parquet

from .runs import prepare

SELECTION = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_skipped_and_unsupported_entries_reach_the_summary_problems_and_report(tmp_path: Path) -> None:
    from lightly_airflow.pipeline import select_and_commit

    source, pool, outside = tmp_path / "images", tmp_path / "pool", tmp_path / "secret"
    keys = add_batch(source, Batch("few", (0, 8), ()))
    outside.mkdir()
    (outside / "passwd.png").write_bytes(b"root:x:0:0")
    os.symlink(outside / "passwd.png", source / "leak.png")
    os.symlink(outside / "passwd.png", source / "<img src=x onerror=alert(1)>\nline.png")  # markup and a newline in the name
    os.symlink(outside, source / "leaked-folder")
    (source / "notes.txt").write_text("not an image")
    (source / "labels.json").write_text("{}")
    os.close(os.open(os.path.join(os.fsencode(source), b"bad-\xff.png"), os.O_CREAT | os.O_WRONLY))

    found: dict = {}
    manifests = prepare(source, pool, "r1", SELECTION, result=found)
    listed = found["listed"]
    assert listed.new == len(keys) and listed.skipped == 4 and listed.unsupported == 2
    assert listed.to_dict()["skipped"] == 4  # the list task's XCom counts

    summary = select_and_commit(datapool_uri=f"file://{pool}", run_id="r1", dag_id="t", manifests=manifests,
                                selection_config=SELECTION)
    assert summary.version == 1 and summary.selected == 3
    assert summary.listing["skipped"] == 4 and summary.listing["unsupported"] == 2
    examples = dict((k, r) for k, r in summary.listing["skipped_examples"])
    assert set(examples) == {"leak.png", "<img src=x onerror=alert(1)>\nline.png", "leaked-folder", "bad-\\xff.png"}
    assert "outside the datasource" in examples["leak.png"] and "UTF-8" in examples["bad-\\xff.png"]
    assert sorted(summary.listing["unsupported_examples"]) == ["labels.json", "notes.txt"]
    # Every skipped entry is in the problems file, stage "listing".
    problems = read_parquet(summary.problems_uri)
    listing = problems.filter(pc.equal(problems.column("stage"), "listing"))
    assert sorted(listing.column("key").to_pylist()) == sorted(examples)
    # The report shows the count and the keys, escaped: no markup of a file name, its newline visible.
    page = Path(summary.report_uri.removeprefix("file://")).read_text()
    assert "skipped in listing" in page and "Not listed from the datasource (6)" in page
    assert "&lt;img src=x onerror=alert(1)&gt;\\nline.png" in page and "<img src=x" not in page
    assert "leaked-folder" in page and "notes.txt" in page and "bad-\\xff.png" in page


# listing.json as the list task wrote it before ListingSkips (every key) and in its first version (skipped
# entries and unsupported files only): a select-and-commit retried after an upgrade reads either.
PREVIOUS = {"skipped_count": 2, "skipped": [["leak.png", "a symbolic link"], ["bad-\\xff.png", "not UTF-8"]],
            "unsupported": 1, "unsupported_examples": ["notes.txt"], "os_files": 1, "os_files_examples": [".DS_Store"],
            "older_pixel_rules": 0, "video_streams_count": 1, "video_streams": [["album.mp4", "stream 1: cover art"]]}
FIRST = {"skipped_count": 2, "skipped": [["leak.png", "a symbolic link"], ["bad-\\xff.png", "not UTF-8"]],
         "unsupported": 1, "unsupported_examples": ["notes.txt"]}


def test_a_listing_json_written_by_an_earlier_version_still_reads(tmp_path: Path) -> None:
    import json

    from lightly_airflow import staging
    from lightly_airflow.datasource import ListingSkips
    from lightly_airflow.pipeline import select_and_commit

    # The file this version writes is the previous one's, key for key: a worker not yet upgraded reads it too.
    assert ListingSkips.from_dict(PREVIOUS).to_dict() == PREVIOUS
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("few", (0, 6), ()))
    for run_id, body in (("previous", PREVIOUS), ("first", FIRST)):
        manifests = prepare(source, pool, run_id, SELECTION)
        Path(staging.listing_uri(f"{pool}", run_id)).write_text(json.dumps(body))
        summary = select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                                    selection_config=SELECTION, dry_run=True)
        assert summary.listing["skipped"] == 2 and summary.listing["unsupported_examples"] == ["notes.txt"]
        assert summary.listing["skipped_examples"] == [["leak.png", "a symbolic link"], ["bad-\\xff.png", "not UTF-8"]]
        problems = read_parquet(summary.problems_uri)
        listing = problems.filter(pc.equal(problems.column("stage"), "listing"))
        assert sorted(listing.column("key").to_pylist()) == ["bad-\\xff.png", "leak.png"]
        page = Path(summary.report_uri.removeprefix("file://")).read_text()
        if body is PREVIOUS:
            assert summary.listing["os_files_examples"] == [".DS_Store"]
            assert summary.listing["unused_video_streams_examples"] == [["album.mp4", "stream 1: cover art"]]
            assert "Not listed from the datasource (4)" in page and "stream 1: cover art" in page
        else:
            assert "os_files" not in summary.listing and "unused_video_streams" not in summary.listing
            assert "Not listed from the datasource (3)" in page and "Video streams not used" not in page


def test_the_report_says_how_many_files_the_datasource_lists_and_how_many_the_run_left_alone(tmp_path: Path) -> None:
    """The cards count the files processed; the datasource's size and the files a run did not process again
    (unchanged since the pool processed them) were in the list task's XCom and the demo's printout only."""
    from lightly_airflow.pipeline import select_and_commit

    source, pool = tmp_path / "images", tmp_path / "pool"
    first = add_batch(source, Batch("few", (0, 6), ()))
    for run_id in ("r1", "r2"):
        manifests = prepare(source, pool, run_id, SELECTION)
        summary = select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                                    selection_config=SELECTION)
        page = Path(summary.report_uri.removeprefix("file://")).read_text()
        if run_id == "r1":
            assert (summary.listing["listed"], summary.listing["not_processed"]) == (len(first), 0)
            assert f"The datasource lists {len(first)} files; this run processed each" in page
            second = add_batch(source, Batch("more", (6, 10), ()))
        else:
            listed = len(first) + len(second)
            assert (summary.listing["listed"], summary.listing["not_processed"]) == (listed, len(first))
            assert (f"The datasource lists {listed} files; this run processed {len(second)} and did not process "
                    f"{len(first)}: the datapool processed them before (unchanged since") in page
