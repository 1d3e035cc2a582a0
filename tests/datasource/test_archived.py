"""Archived files (S3 Glacier / Deep Archive, Azure's Archive tier): not readable until restored.

A bucket with the common "to Glacier after 30 days" rule holds files a GET refuses. New ones are skipped by the
listing with the fix (and stay new until restored); one archived between the listing and a stage's read is that
file's problem, never the shard's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from lightly_airflow import columns as C
from lightly_airflow.datasource import NewFilesQuery, find_new_files
from lightly_airflow.datasource.listing import _s3_archived
from lightly_airflow.datasource.query import QueryCredentials
from lightly_airflow.pipeline import list_new

from .conftest import png_bytes


def _s3(bucket: Any) -> Any:
    return boto3.client("s3", endpoint_url=bucket.credentials.endpoint_url, aws_access_key_id="test",
                        aws_secret_access_key="test", region_name="us-east-1")


def test_restore_status_decides_whether_an_archived_object_is_readable() -> None:
    assert _s3_archived({"StorageClass": "STANDARD"}) is None
    assert _s3_archived({"StorageClass": "GLACIER_IR"}) is None  # (instant retrieval: read directly)
    assert _s3_archived({"StorageClass": "GLACIER"}) == "S3 GLACIER"
    assert _s3_archived({"StorageClass": "DEEP_ARCHIVE", "RestoreStatus": {"IsRestoreInProgress": True}}) == \
        "S3 DEEP_ARCHIVE (restore in progress)"
    restored = {"IsRestoreInProgress": False, "RestoreExpiryDate": "2026-12-09T00:00:00Z"}
    assert _s3_archived({"StorageClass": "GLACIER", "RestoreStatus": restored}) is None


def test_new_archived_files_are_skipped_with_the_fix_and_known_ones_are_not_mentioned(s3_bucket: Any,
                                                                                     tmp_path: Path) -> None:
    s3 = _s3(s3_bucket)
    for i, (key, storage_class) in enumerate([("a.png", "STANDARD"), ("b.png", "GLACIER"), ("c.png", "DEEP_ARCHIVE"),
                                               ("d.png", "GLACIER_IR")]):
        s3.put_object(Bucket=s3_bucket.name, Key=f"ds/{key}", Body=png_bytes(i), StorageClass=storage_class)
    uri, pool = f"{s3_bucket.uri}/ds", f"file://{tmp_path}/pool"
    creds = QueryCredentials(datasource=s3_bucket.credentials)
    found = find_new_files(NewFilesQuery.build(datasource_uri=uri, datapool_uri=pool), creds)
    assert found.listing.num_rows == 4  # (the datasource holds them)
    assert found.files.column("key").to_pylist() == ["a.png", "d.png"]
    skipped = dict(found.skips.skipped)
    assert sorted(skipped) == ["b.png", "c.png"]
    assert skipped["b.png"].startswith("archived in S3 GLACIER: it cannot be read until restored")
    assert "RestoreObject" in skipped["c.png"] and "S3 DEEP_ARCHIVE" in skipped["c.png"]
    # a pool that processed b.png before it was archived: not new, so not said again on every run
    known_b = found.listing.slice(1, 1).select(["key", "etag"])
    assert known_b.column("key").to_pylist() == ["b.png"]
    again = find_new_files(NewFilesQuery.build(datasource_uri=uri, datapool_uri=pool), creds,
                           known=lambda _uri, _creds: known_b)
    assert dict(again.skips.skipped).keys() == {"c.png"}


def test_azure_archive_tier_is_skipped(azure_container: Any, tmp_path: Path) -> None:
    import emulators  # (scripts/ is on sys.path: tests/conftest.py)
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(
        emulators.azure_connection_string(azure_container.credentials.endpoint_url)
    ).get_container_client(azure_container.name)
    client.upload_blob("ds/a.png", png_bytes(0))
    client.upload_blob("ds/b.png", png_bytes(1))
    client.get_blob_client("ds/b.png").set_standard_blob_tier("Archive")
    found = find_new_files(NewFilesQuery.build(datasource_uri=f"{azure_container.uri}/ds",
                                               datapool_uri=f"file://{tmp_path}/pool"),
                           QueryCredentials(datasource=azure_container.credentials))
    assert found.files.column("key").to_pylist() == ["a.png"]
    (key, reason), = found.skips.skipped
    assert key == "b.png" and reason.startswith("archived in Azure Archive") and "Hot or Cool" in reason


@pytest.mark.parametrize("stage", ["embed", "metadata"])
def test_a_file_archived_after_the_listing_is_that_files_problem_not_the_shards(s3_bucket: Any, tmp_path: Path,
                                                                                 stage: str) -> None:
    s3 = _s3(s3_bucket)
    for i in range(3):
        s3.put_object(Bucket=s3_bucket.name, Key=f"ds/img{i}.png", Body=png_bytes(i, size=40))
    uri, pool = f"{s3_bucket.uri}/ds", f"file://{tmp_path}/pool"
    listed = list_new(NewFilesQuery.build(datasource_uri=uri, datapool_uri=pool), run_id="r1",
                      credentials=QueryCredentials(datasource=s3_bucket.credentials))
    # the bucket's lifecycle moves one to Glacier before the stage reads it (same bytes, same ETag)
    s3.copy_object(Bucket=s3_bucket.name, Key="ds/img1.png", CopySource={"Bucket": s3_bucket.name, "Key": "ds/img1.png"},
                   StorageClass="GLACIER", MetadataDirective="COPY")
    (manifest,) = listed.manifests
    out = str(tmp_path / f"{stage}.parquet")
    if stage == "embed":
        from lightly_airflow.embedding import embed_shard

        counts = embed_shard(manifest, out, datasource_credentials=s3_bucket.credentials, input_size=32, dim=16,
                             num_workers=0)
        assert counts["missing"] == 1 and counts["embedded"] == 2
    else:
        from lightly_airflow.metadata import compute_metadata_shard

        compute_metadata_shard(manifest, out, datasource_credentials=s3_bucket.credentials,
                               lightly_credentials=s3_bucket.credentials)
    rows = pq.read_table(out).to_pylist()
    by_key = {r[C.KEY]: r for r in rows}
    assert by_key["img1.png"][C.STATUS] == C.STATUS_MISSING
    assert "archived, not readable until restored" in by_key["img1.png"][C.STATUS_REASON]
    assert {by_key[k][C.STATUS] for k in ("img0.png", "img2.png")} == {C.STATUS_OK}


def test_a_video_archived_after_the_listing_marks_its_frames_missing(s3_bucket: Any, tmp_path: Path) -> None:
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.video.synthetic import make_scene_video

    s3 = _s3(s3_bucket)
    for i, name in enumerate(["a.mp4", "b.mp4"]):
        make_scene_video(str(tmp_path / name), "coffee", 6, seed=i)
        s3.put_object(Bucket=s3_bucket.name, Key=f"ds/{name}", Body=(tmp_path / name).read_bytes())
    listed = list_new(NewFilesQuery.build(datasource_uri=f"{s3_bucket.uri}/ds", datapool_uri=f"file://{tmp_path}/pool"),
                      run_id="r1", credentials=QueryCredentials(datasource=s3_bucket.credentials))
    assert listed.new == 12
    s3.copy_object(Bucket=s3_bucket.name, Key="ds/b.mp4", CopySource={"Bucket": s3_bucket.name, "Key": "ds/b.mp4"},
                   StorageClass="GLACIER", MetadataDirective="COPY")
    (manifest,) = listed.manifests
    out = str(tmp_path / "embed.parquet")
    counts = embed_shard(manifest, out, datasource_credentials=s3_bucket.credentials, input_size=32, dim=16,
                         num_workers=0)
    assert counts["missing"] == 6 and counts["embedded"] == 6
    rows = pq.read_table(out).to_pylist()
    b_frames = [r for r in rows if r[C.KEY].startswith("b-")]
    assert len(b_frames) == 6 and {r[C.STATUS] for r in b_frames} == {C.STATUS_MISSING}
    assert all("archived, not readable until restored" in r[C.STATUS_REASON] for r in b_frames)


def test_a_store_that_refuses_restore_status_is_listed_without_it(s3_bucket: Any, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: Any) -> None:
    """An S3-compatible store (MinIO, Ceph, R2, …) that answers InvalidArgument to the RestoreStatus ask: the
    listing goes on without it, once said (here the refusal is made in front of moto, which takes the ask)."""
    import logging

    from lightly_airflow.datasource import list_table
    from lightly_airflow.storage import filesystem

    s3 = _s3(s3_bucket)
    s3.put_object(Bucket=s3_bucket.name, Key="ds/a.png", Body=png_bytes(0))
    s3.put_object(Bucket=s3_bucket.name, Key="ds/b.png", Body=png_bytes(1), StorageClass="GLACIER")
    fs, _ = filesystem(f"{s3_bucket.uri}/ds", s3_bucket.credentials)
    real = fs._call_s3
    asks: list[bool] = []

    async def refusing(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "list_objects_v2":
            asks.append("OptionalObjectAttributes" in kwargs)
            if "OptionalObjectAttributes" in kwargs:
                raise OSError("InvalidArgument: x-amz-optional-object-attributes is not supported")
        return await real(method, *args, **kwargs)

    monkeypatch.setattr(fs, "_call_s3", refusing)
    stats: dict[str, Any] = {}
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.datasource.listing"):
        listing = list_table(f"{s3_bucket.uri}/ds", credentials=s3_bucket.credentials, stats=stats, page_size=1)
    assert listing.column("key").to_pylist() == ["a.png", "b.png"] and stats["archived"] == {"b.png": "S3 GLACIER"}
    assert asks == [True, False, False] and caplog.text.count("refuses OptionalObjectAttributes") == 1
