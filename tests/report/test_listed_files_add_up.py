"""The report's first lines after real runs (list, metadata, embeddings, select and commit in process): how many
files the datasource lists, how many this run processed and did not, add up to the files on disk, with the "Not
listed from the datasource" section beside them, and the reason for not processing is true under both new-file
policies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from metadata.conftest import encode, noise_image

from lightly_airflow import columns as C
from lightly_airflow.datasource import NewFilesQuery
from lightly_airflow.metadata import compute_metadata_shard
from lightly_airflow.pipeline import RunSummary, list_new, select_and_commit
from report.test_stage_notes import _index_embeddings

SELECTION = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
LISTED = re.compile(r"The datasource lists (\d+) files; this run processed (?:each of them|(\d+))"
                    r"(?: \((\d+) samples, video frames included\))?(?: and did not process (\d+))?")
#: the listed line's reason for a Live Photo clip not processed (the clip is a listed file, counted once: there)
CLIP = "1 Live Photo motion clip (never a sample: the photo is; see below)"


def _run(source: Path, pool: Path, run_id: str, **query: Any) -> str:
    return run_with_summary(source, pool, run_id, **query)[1]


def run_with_summary(source: Path, pool: Path, run_id: str, **query: Any) -> tuple[RunSummary, str]:
    """A run's summary and report page."""
    listed = list_new(NewFilesQuery.build(datasource_uri=str(source), datapool_uri=str(pool), **query),
                      run_id=run_id, min_shard_size=50)
    for manifest in listed.manifests:
        compute_metadata_shard(manifest, thumbnails_uri="")
        _index_embeddings(manifest)
    summary = select_and_commit(datapool_uri=str(pool), run_id=run_id, dag_id="d", manifests=listed.manifests,
                                selection_config=SELECTION)
    assert summary.report_uri is not None
    return summary, Path(summary.report_uri.removeprefix("file://")).read_text()


def _numbers(page: str) -> tuple[int, int, int, int]:
    """(listed, processed files, samples, not processed) of the page's line."""
    found = LISTED.search(page)
    assert found, page.split('<p class="listed">', 1)[-1][:400]
    listed, processed, samples, not_processed = (int(g) if g else None for g in found.groups())
    assert listed is not None
    processed = listed - (not_processed or 0) if processed is None else processed
    return listed, processed, samples or processed, not_processed or 0


def _line(page: str) -> str:
    return page.split('<p class="listed">', 1)[1].split("</p>", 1)[0]


def _on_disk(source: Path) -> int:
    """The datasource's files, without ``.lightly/`` (the run's own folder: frames written, predictions)."""
    return sum(1 for p in source.rglob("*") if p.is_file() and ".lightly" not in p.relative_to(source).parts)


def _not_listed(page: str) -> int:
    found = re.search(r"<h2>Not listed from the datasource \((\d+)\)</h2>", page)
    return int(found.group(1)) if found else 0


@pytest.fixture
def second_run(tmp_path: Path) -> tuple[Path, Path]:
    return make_second_run(tmp_path)


def make_second_run(tmp_path: Path) -> tuple[Path, Path]:
    """A pool of 6 images, then a datasource where one is deleted, two changed under their key, two new, one a
    copy, one corrupt, a Live Photo (photo and clip), a key the listing skips (a tab) and a text file."""
    source, pool = tmp_path / "src", tmp_path / "pool"
    (source / "a").mkdir(parents=True)
    for i in range(6):
        (source / f"a/{i}.png").write_bytes(encode(noise_image(i)))
    _run(source, pool, "r1")
    (source / "a/5.png").unlink()
    for i in (1, 2):
        (source / f"a/{i}.png").write_bytes(encode(noise_image(100 + i)))
    (source / "b").mkdir()
    for i in range(2):
        (source / f"b/{i}.png").write_bytes(encode(noise_image(200 + i)))
    shutil.copy(source / "a/0.png", source / "b/copy.png")
    (source / "b/bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    (source / "b/IMG_0001.JPG").write_bytes(encode(noise_image(300), "JPEG"))
    (source / "b/IMG_0001.MOV").write_bytes(b"\0" * 1000)
    (source / "b/tab\tname.png").write_bytes(encode(noise_image(301)))
    (source / "b/notes.txt").write_text("not an image")
    return source, pool


def test_listed_processed_and_not_processed_add_up_to_the_files_on_disk(second_run: tuple[Path, Path]) -> None:
    """The page said "The datasource lists 13 files; 6 of them this run did not process" beside "Not listed from the
    datasource (3)": the Live Photo clip was in both (13 + 3 for 15 files on disk), and the "9 processed" card
    (samples: the video's 3 frames) never met the 7 files processed. Then it said "lists 11 files (besides 1 Live
    Photo motion clip …)" above a table and a summary of 12 listed: the clip is a listed file, not processed."""
    source, pool = second_run
    from video.test_broken_videos_say_what_broke_and_the_fix import _video

    _video(source / "b/walk.mp4", n=3)
    page = _run(source, pool, "r2")
    listed, processed, samples, not_processed = _numbers(page)
    assert (listed, processed, samples, not_processed) == (12, 8, 10, 4)  # 2 changed, 2 new, 3 unchanged, the clip
    assert _line(page).endswith(f"the datapool processed 3 of them before (unchanged since); {CLIP}.")
    assert listed + _not_listed(page) == _on_disk(source) == 14  # (+ the tab key and the text file)
    assert page.count("IMG_0001.MOV") == 1  # (the clip's note, once: not under "Not listed" too)
    assert '<div class="n">10</div><div class="l">processed</div>' in page


def test_files_changed_under_the_key_policy_are_not_called_unchanged(second_run: tuple[Path, Path]) -> None:
    """With policy 'key' the two changed files were among "did not process (unchanged since the datapool processed
    them, or skipped as said below)": they changed, and the run's note says so."""
    source, pool = second_run
    page = _run(source, pool, "r2", policy="key")
    listed, processed, _, not_processed = _numbers(page)
    assert (listed, processed, not_processed) == (11, 5, 6)  # 2 new, the copy, the corrupt, the photo
    line = _line(page)
    assert "changed under the same key" in line and "(unchanged since the datapool processed them, or" not in line
    assert "2 listed files changed since the datapool processed them" in page


def test_process_all_does_not_count_the_live_photo_clip_as_processed(second_run: tuple[Path, Path]) -> None:
    """A process_all run said "The datasource lists 12 files; this run processed each": it never processes the clip
    (the clip is listed and not processed, as the summary says)."""
    source, pool = second_run
    (source / "b/tab\tname.png").unlink()  # (no skipped entry: the line can count every file)
    page = _run(source, pool, "r2", process_all=True)
    listed, processed, samples, not_processed = _numbers(page)
    assert (listed, processed, not_processed) == (11, 10, 1)
    assert _line(page).endswith(f"did not process 1: {CLIP}.")
    assert samples == 10 and '<div class="n">10</div><div class="l">processed</div>' in page
    assert listed + _not_listed(page) == _on_disk(source) == 12


def test_one_file_is_one_file(tmp_path: Path) -> None:
    """One deleted file read "1 files this datapool processed are no longer in the datasource … 1 of their samples
    are selected", one skipped entry "1 entries were skipped", one text file "1 files have an extension"; two read
    as two."""
    from lightly_airflow.report import write_report

    rows = pa.table({C.KEY: ["a.png"], C.STATUS: [C.STATUS_OK], C.SELECTED: [True]})
    for n, text in ((1, "1 file this datapool processed is no longer in the datasource"),
                    (2, "2 files this datapool processed are no longer in the datasource")):
        listing = {"gone": n, "gone_samples": n, "gone_selected": n, "gone_examples": ["b.png", "c.png"][:n],
                   "gone_moved": n, "gone_moved_examples": [["d.png", "b.png"], ["e.png", "c.png"]][:n],
                   "skipped": n, "skipped_examples": [["f\tg.png", "a tab"], ["h\ti.png", "a tab"]][:n],
                   "unsupported": n, "unsupported_examples": ["j.heic", "k.heic"][:n], "unlisted_images": {"heic": n},
                   "os_files": n, "os_files_examples": [".DS_Store", "._a.png"][:n]}
        page = Path(write_report(rows, out_uri=str(tmp_path / str(n)), config={},
                                 summary={"run_id": "r", "listing": listing})).read_text()
        assert text in page
        assert f"{n} of their samples {'is' if n == 1 else 'are'} selected (initial-tag)" in page
        assert f"{n} new file{'s' if n > 1 else ''} of this run {'has' if n == 1 else 'have'} the content" in page
        one = n == 1
        assert f"{n} {'entry was' if one else 'entries were'} skipped and never read" in page
        assert f"{n} {'file has' if one else 'files have'} an extension this run does not list" in page
        assert f"{n} .heic {'file is' if one else 'files are'} not listed" in page
        assert f"{n} OS or tool metadata {'file was' if one else 'files were'} skipped" in page


def test_a_run_that_committed_nothing_names_no_version_or_tag_as_its_own(tmp_path: Path) -> None:
    """A dry run's first line read "run id: r · tag: t · version: 3" above "nothing was committed: no datapool
    version, no tag 't'" (a proposal awaiting review's too): the version is the one the run read and selected from,
    the tag was not created."""
    from lightly_airflow.report import write_report

    rows = pa.table({C.KEY: ["a.png"], C.STATUS: [C.STATUS_OK], C.SELECTED: [True]})
    summary = {"run_id": "r", "tag": "t", "version": 3, "dry_run": True}
    page = Path(write_report(rows, out_uri=str(tmp_path / "dry"), summary=summary, config={})).read_text()
    sub = page.split('<p class="sub">', 1)[1].split("</p>", 1)[0]
    assert sub.startswith("run id: r · tag (not created): t · selected from datapool version: 3 · generated")
    proposal = {**summary, "dry_run": False, "committed": False,  # (RunSummary.to_dict of a proposal)
                "review": {"state": "awaiting review", "text": "awaiting review: nothing is committed until …"}}
    page = Path(write_report(rows, out_uri=str(tmp_path / "proposal"), summary=proposal, config={})).read_text()
    assert "tag (not created): t · selected from datapool version: 3" in page
    page = Path(write_report(rows, out_uri=str(tmp_path / "real"), config={},
                             summary={**summary, "dry_run": False, "committed": True})).read_text()
    assert "tag: t · version: 3" in page.split('<p class="sub">', 1)[1].split("</p>", 1)[0]
