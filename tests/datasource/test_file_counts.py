"""What became of each listed file, counted by ``find_new_files`` (``NewFiles.skips``, the run summary's ``listing``):
processed (new keys, new content under a known key, unchanged processed again with ``process_all``) and not
processed (unchanged, changed under the key policy, Live Photo clips, archived, expiring): real listings of
local and moto S3 datasources against real pools' identities; the parts add up to the files listed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow.datasource import NewFilesQuery, find_new_files, new_files
from lightly_airflow.datasource.diff import split_new_files
from lightly_airflow.datasource.query import QueryCredentials
from lightly_airflow.datasource.records import MANIFEST_SCHEMA

from .conftest import png_bytes
from .test_archived import _s3
from .test_expiration import TMP_3D, _s3_datasource


def _counts(found: Any) -> dict[str, int]:
    skips = found.skips
    assert skips.adds_up(), skips.file_counts()
    assert skips.listed == found.listing.num_rows and skips.processed_files == found.files.num_rows
    return {k: v for k, v in skips.file_counts().items() if v}


def _known(found: Any) -> Any:
    return lambda _uri, _creds: found.listing.select(["key", "etag"])


@pytest.mark.parametrize("process_all", [False, True])
def test_new_replaced_unchanged_and_live_photo_clips(tmp_path: Path, process_all: bool) -> None:
    """A pool of a.png, b.png, c.png; then b.png replaced, d.png new, and a Live Photo (photo and clip). Under
    ``process_all`` the clip was not processed, yet the list step counted 0 files not processed."""
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(["a.png", "b.png", "c.png"]):
        (src / name).write_bytes(png_bytes(i))
    query = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"))
    first = find_new_files(query)
    assert _counts(first) == {"listed": 3, "processed_files": 3, "new_keys": 3}  # (no pool yet)
    (src / "b.png").write_bytes(png_bytes(10))
    (src / "d.png").write_bytes(png_bytes(11))
    (src / "IMG_1.JPG").write_bytes(png_bytes(12))
    (src / "IMG_1.MOV").write_bytes(b"\0" * 100)
    again = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"), process_all=process_all)
    found = find_new_files(again, known=_known(first), read_known_with_process_all=True)
    if process_all:  # a.png and c.png processed again; the clip never
        assert _counts(found) == {"listed": 6, "processed_files": 5, "new_keys": 2, "replaced": 1,
                                  "processed_again": 2, "not_processed": 1, "live_photo_clips": 1}
    else:
        assert _counts(found) == {"listed": 6, "processed_files": 3, "new_keys": 2, "replaced": 1,
                                  "not_processed": 3, "unchanged": 2, "live_photo_clips": 1}
    assert set(found.skips.summary()) >= {"listed", "new_keys", "replaced", "not_processed", "unchanged"}


def test_key_policy_counts_files_changed_under_their_key(tmp_path: Path) -> None:
    """Policy ``key``: b.png changed under its key is not processed, counted apart from the unchanged (only a
    note's text said how many); a changed Live Photo clip counts once, as a clip."""
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(["a.png", "b.png", "IMG_1.JPG"]):
        (src / name).write_bytes(png_bytes(i))
    (src / "IMG_1.MOV").write_bytes(b"\0" * 100)
    query = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"), policy="key")
    first = find_new_files(query)
    (src / "b.png").write_bytes(png_bytes(10))
    (src / "IMG_1.MOV").write_bytes(b"\1" * 100)
    (src / "c.png").write_bytes(png_bytes(11))
    found = find_new_files(query, known=_known(first))
    assert found.files.column("key").to_pylist() == ["c.png"]
    assert _counts(found) == {"listed": 5, "processed_files": 1, "new_keys": 1, "not_processed": 4, "unchanged": 2,
                              "changed_under_key": 1, "live_photo_clips": 1}
    assert any(n.startswith("1 listed files changed since the datapool processed them") and "'b.png'" in n
               for n in found.skips.notes)


def test_archived_files_are_not_processed_under_process_all(s3_bucket: Any, tmp_path: Path) -> None:
    """``process_all`` on a bucket with Glacier objects: the list step processed 2 of 4 listed files and counted
    0 not processed."""
    s3 = _s3(s3_bucket)
    for i, (key, storage_class) in enumerate([("a.png", "STANDARD"), ("b.png", "GLACIER"), ("c.png", "DEEP_ARCHIVE"),
                                               ("d.png", "STANDARD")]):
        s3.put_object(Bucket=s3_bucket.name, Key=f"ds/{key}", Body=png_bytes(i), StorageClass=storage_class)
    creds = QueryCredentials(datasource=s3_bucket.credentials)
    query = NewFilesQuery.build(datasource_uri=f"{s3_bucket.uri}/ds", datapool_uri=f"file://{tmp_path}/pool",
                                process_all=True)
    found = find_new_files(query, creds)
    assert found.files.column("key").to_pylist() == ["a.png", "d.png"]
    assert _counts(found) == {"listed": 4, "processed_files": 2, "new_keys": 2, "not_processed": 2, "archived": 2}
    known = find_new_files(query, creds, known=_known(found), read_known_with_process_all=True)
    assert _counts(known) == {"listed": 4, "processed_files": 2, "processed_again": 2, "not_processed": 2,
                              "archived": 2}


@pytest.mark.parametrize("process_all", [False, True])
def test_expiring_files_skipped_are_counted(s3_bucket: Any, tmp_path: Path, process_all: bool) -> None:
    uri, created = _s3_datasource(s3_bucket, [TMP_3D])
    worker = {"datasource": {"input_expiration": {"min_days_to_expiration": 5, "handling_strategy": "SKIP"}}}
    query = NewFilesQuery.build(datasource_uri=uri, datapool_uri=f"file://{tmp_path}/pool", worker_config=worker,
                                process_all=process_all)
    found = find_new_files(query, QueryCredentials(datasource=s3_bucket.credentials), now=created + dt.timedelta(days=1))
    assert _counts(found) == {"listed": 3, "processed_files": 1, "new_keys": 1, "not_processed": 2, "expiring": 2}


def test_relevant_filenames_file_applied_is_recorded(tmp_path: Path) -> None:
    """Which relevant-filenames file applied, its names, how many the datasource holds, its pattern lines."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "c.png", "sub/x.png", "sub/y.png"]):
        (src / name).write_bytes(png_bytes(i))
    (src / ".lightly").mkdir()
    (src / ".lightly/relevant.txt").write_text("# picks\na.png\nb.png\nmissing.png\nsub/*\n")
    query = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"),
                                relevant_filenames_file="relevant.txt")
    found = find_new_files(query)
    assert found.listing.column("key").to_pylist() == ["a.png", "b.png", "sub/x.png", "sub/y.png"]
    relevant = found.skips.relevant
    assert relevant is not None and Path(relevant.file.removeprefix("file://")).read_text().startswith("# picks")
    assert (relevant.names, relevant.names_matched, relevant.patterns) == (3, 2, 1)
    summary = found.skips.summary()["relevant_filenames"]
    assert summary == {"file": relevant.file, "names": 3, "names_matched": 2, "patterns": 1}
    assert type(found.skips).from_summary(found.skips.summary()).relevant == relevant


def test_one_join_splits_like_the_two_policies() -> None:
    """:func:`split_new_files` (one anti-join) against :func:`new_files` under each policy, on random listings and
    pools (keys held with several contents, keys new, contents new)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        keys = [f"k{i}" for i in rng.integers(0, 60, 40)]
        listing = pa.table({"key": sorted(set(keys))}).append_column(
            "etag", pa.array([str(rng.integers(0, 3)) for _ in set(keys)]))
        listing = listing.append_column("size", pa.array([1] * listing.num_rows, pa.int64())).append_column(
            "mtime", pa.array([0] * listing.num_rows, pa.timestamp("us", tz="UTC"))).select(MANIFEST_SCHEMA.names)
        known = pa.table({"key": [f"k{i}" for i in rng.integers(0, 60, 50)],
                          "etag": [str(e) for e in rng.integers(0, 3, 50)]})
        new, held = split_new_files(listing, known)
        assert new.equals(new_files(listing, known, policy="content"))
        assert new.filter(pa.compute.invert(held)).equals(new_files(listing, known, policy="key"))
        assert held.to_pylist() == [k in set(known.column("key").to_pylist()) for k in new.column("key").to_pylist()]
