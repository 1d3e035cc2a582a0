"""The report's "files on disk skipped in listing" card and the list task's ``lightly.list.skipped`` gauge after
real listings, against the files on disk: both counted every skipped entry of the listing, so the archived files
(listed, in the counts table as "not processed") and the relevant-filenames file's names that match no file (no
file on disk, counted apart) read twice. Now each counts the files on disk the listing could not or would not list,
the skipped part of "Not listed from the datasource"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
from datasource.conftest import png_bytes

from lightly_airflow import columns as C
from lightly_airflow.datasource import NewFilesQuery, find_new_files
from lightly_airflow.datasource.query import QueryCredentials
from lightly_airflow.pipeline import list_new
from lightly_airflow.run_metrics import list_metrics
from report.test_listed_files_add_up import _not_listed, _on_disk, make_second_run, run_with_summary

CARD = re.compile(r'<div class="n">([\d,]+)</div><div class="l">files on disk skipped in listing</div>')


def _card(page: str) -> int:
    found = CARD.search(page)
    return int(found.group(1).replace(",", "")) if found else 0


def test_a_name_of_no_file_is_not_a_skipped_file_on_the_card(tmp_path: Path) -> None:
    """picks.txt names b/gone.png, which no file is: the card read 2 (the tab key and that name) beside "Not listed
    from the datasource (2)" (the tab key and the text file)."""
    source, pool = make_second_run(tmp_path)
    (source / ".lightly").mkdir(exist_ok=True)
    (source / ".lightly/picks.txt").write_text("a/0.png\na/1.png\nb/gone.png\nb/*\n")
    summary, page = run_with_summary(source, pool, "r2", relevant_filenames_file="picks.txt")
    listing = summary.to_dict()["listing"]
    assert listing["skipped"] == 2 and listing["unsupported"] == 1  # (the tab key and b/gone.png; notes.txt)
    assert _card(page) == 1  # the tab key
    # the files on disk: those listed, those picks.txt does not select (a/2, a/3, a/4), the card's and notes.txt
    assert listing["listed"] + 3 + _card(page) + listing["unsupported"] == _on_disk(source) == 13
    assert _not_listed(page) == _card(page) + listing["unsupported"]


def test_archived_files_are_not_skipped_files_on_the_card_or_the_gauge(s3_bucket: Any, tmp_path: Path) -> None:
    """Two archived files of four on S3: the listing lists them (not processed: the table's "archived") and skips
    them as entries; the card and the gauge read 2 skipped besides."""
    s3 = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    for i, (key, storage_class) in enumerate([("a.png", "STANDARD"), ("b.png", "GLACIER"), ("c.png", "DEEP_ARCHIVE"),
                                               ("d.png", "STANDARD")]):
        s3.put_object(Bucket=s3_bucket.name, Key=f"ds/{key}", Body=png_bytes(i), StorageClass=storage_class)
    query = NewFilesQuery.build(datasource_uri=f"{s3_bucket.uri}/ds", datapool_uri=f"file://{tmp_path}/pool")
    creds = QueryCredentials(datasource=s3_bucket.credentials)
    counts = list_new(query, run_id="r1", credentials=creds).to_dict()
    assert counts["skipped"] == 2 and counts["files"]["archived"] == 2 and counts["files"]["listed"] == 4
    assert list_metrics(counts)["lightly.list.skipped"] == 0  # (4 files on disk, 4 listed)

    from lightly_airflow.report import write_report

    listing = find_new_files(query, creds).skips.summary()
    rows = pa.table({C.KEY: ["a.png", "d.png"], C.STATUS: [C.STATUS_OK] * 2, C.SELECTED: [True, False]})
    page = Path(write_report(rows, out_uri=str(tmp_path / "report"), config={},
                             summary={"run_id": "r1", "listing": listing})).read_text()
    assert _card(page) == 0 and "skipped in listing" not in page
    assert listing["listed"] + _not_listed(page) == 4


def test_a_name_of_no_file_is_not_a_skipped_file_on_the_gauge(tmp_path: Path) -> None:
    """The list task's counts carry the relevant-filenames file it applied, so the gauge leaves out its names of no
    file as the card does (it counted them: the counts did not say how many there were)."""
    source = tmp_path / "src"
    (source / "a").mkdir(parents=True)
    for i in range(3):
        (source / f"a/{i}.png").write_bytes(png_bytes(i))
    (source / ".lightly").mkdir()
    (source / ".lightly/picks.txt").write_text("a/0.png\na/1.png\nb/gone.png\n")
    query = NewFilesQuery.build(datasource_uri=source.as_uri(), datapool_uri=f"file://{tmp_path}/pool",
                                relevant_filenames_file="picks.txt")
    counts = list_new(query, run_id="r1").to_dict()
    assert counts["skipped"] == 1 and counts["relevant_filenames"]["names"] == 3  # (b/gone.png: a name of no file)
    assert counts["relevant_filenames"]["names_matched"] == 2
    assert list_metrics(counts)["lightly.list.skipped"] == 0  # (3 files on disk: 2 listed, 1 not selected)
