"""``worker_config.datasource.input_expiration``: files a bucket's lifecycle rules delete soon are skipped or abort."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pyarrow as pa
import pytest

from lightly_airflow.datasource import NewFilesQuery, find_new_files
from lightly_airflow.datasource.expiration import Lifecycle, expiring_files, gcs_lifecycle, read_lifecycle, s3_lifecycle
from lightly_airflow.datasource.query import QueryCredentials
from lightly_airflow.datasource.records import MANIFEST_SCHEMA
from lightly_airflow.pipeline import ParamError, list_new

from .conftest import png_bytes

UTC = dt.UTC


def _files(rows: list[tuple[str, int, dt.datetime]]) -> pa.Table:
    return pa.table({"key": [k for k, _, _ in rows], "size": [s for _, s, _ in rows], "etag": ["e"] * len(rows),
                     "mtime": [t for _, _, t in rows]}, schema=MANIFEST_SCHEMA)


def test_s3_rules_days_round_up_to_midnight_dates_prefixes_and_sizes() -> None:
    lifecycle = s3_lifecycle({"Rules": [
        {"ID": "tmp-3d", "Status": "Enabled", "Filter": {"Prefix": "cams/tmp/"}, "Expiration": {"Days": 3}},
        {"ID": "big-30d", "Status": "Enabled", "Filter": {"And": {"Prefix": "cams/", "ObjectSizeGreaterThan": 1000}},
         "Expiration": {"Days": 30}},
        {"ID": "legacy", "Status": "Enabled", "Prefix": "cams/old/", "Expiration": {"Date": dt.datetime(2026, 12, 20)}},
        {"ID": "off", "Status": "Disabled", "Filter": {}, "Expiration": {"Days": 1}},
        {"ID": "archive", "Status": "Enabled", "Filter": {}, "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]},
        {"ID": "markers", "Status": "Enabled", "Filter": {}, "Expiration": {"ExpiredObjectDeleteMarker": True}},
        {"ID": "tagged", "Status": "Enabled", "Filter": {"Tag": {"Key": "scratch", "Value": "1"}},
         "Expiration": {"Days": 1}},
    ]})
    assert [r.rule_id for r in lifecycle.rules] == ["tmp-3d", "big-30d", "legacy"]
    assert len(lifecycle.notes) == 1 and "'tagged'" in lifecycle.notes[0] and "not applied" in lifecycle.notes[0]
    lifecycle.key_prefix = "cams/"
    created = dt.datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    files = _files([("tmp/a.jpg", 10, created), ("keep/b.jpg", 10, created), ("keep/big.jpg", 5000, created),
                    ("old/c.jpg", 10, created), ("tmp/late.jpg", 10, created + dt.timedelta(days=2))])
    # 2026-12-03 12:00: tmp/a.jpg goes at 12-05 00:00 (1.5 days: creation + 3 days = 12-04 10:30, to midnight)
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    found = expiring_files(files, lifecycle, now=now, min_days=2)
    assert found.mask.tolist() == [True, False, False, False, False]
    key, reason = found.reasons[0]
    assert key == "tmp/a.jpg" and "in 1.5 days (2026-12-05 00:00 UTC" in reason and "'tmp-3d'" in reason
    # a wider window takes the legacy Date rule (12-20) and the late tmp file (12-07 00:00) too, not the 30 days
    found = expiring_files(files, lifecycle, now=now, min_days=17)
    assert found.mask.tolist() == [True, False, False, True, True]
    assert "2026-12-20 00:00 UTC" in found.reasons[1][1] and "'legacy'" in found.reasons[1][1]
    found = expiring_files(files, lifecycle, now=now, min_days=40)
    assert found.mask.tolist() == [True, False, True, True, True]  # (big.jpg: larger than 1000 bytes)
    # after the deletion is due the file is still "expiring" (S3 deletes asynchronously)
    late = expiring_files(files, lifecycle, now=dt.datetime(2026, 12, 6, tzinfo=UTC), min_days=0)
    assert late.mask.tolist() == [True, False, False, False, False] and "now (its deletion is due)" in late.reasons[0][1]


def test_gcs_rules_age_created_before_prefix_suffix() -> None:
    lifecycle = gcs_lifecycle({"lifecycle": {"rule": [
        {"action": {"type": "Delete"}, "condition": {"age": 7, "matchesPrefix": ["data/raw/"],
                                                      "matchesSuffix": [".png"]}},
        {"action": {"type": "Delete"}, "condition": {"createdBefore": "2026-01-01"}},
        {"action": {"type": "Delete"}, "condition": {"isLive": False, "age": 1}},
        {"action": {"type": "Delete"}, "condition": {"numNewerVersions": 2}},
        {"action": {"type": "SetStorageClass", "storageClass": "ARCHIVE"}, "condition": {"age": 1}},
        {"action": {"type": "Delete"}, "condition": {"daysSinceCustomTime": 1}},
    ]}})
    assert [r.rule_id for r in lifecycle.rules] == ["rule 1", "rule 2"]
    assert len(lifecycle.notes) == 1 and "rule 6" in lifecycle.notes[0] and "daysSinceCustomTime" in lifecycle.notes[0]
    lifecycle.key_prefix = "data/"
    created = dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    files = _files([("raw/a.png", 1, created), ("raw/a.jpg", 1, created), ("other/b.png", 1, created),
                    ("raw/old.jpg", 1, dt.datetime(2025, 6, 1, tzinfo=UTC))])
    now = dt.datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    found = expiring_files(files, lifecycle, now=now, min_days=6.5)
    # a.png: created + 7 days exactly (GCS does not round), 6 days away; old.jpg: created before 2026: due now
    assert found.mask.tolist() == [True, False, False, True]
    assert "in 6.0 days (2026-12-08 10:00 UTC" in found.reasons[0][1]
    assert "now (its deletion is due)" in found.reasons[1][1] and "created before 2026-01-01" in found.reasons[1][1]
    assert expiring_files(files, lifecycle, now=now, min_days=5.9).mask.tolist() == [False, False, False, True]


def test_no_rules_local_and_azure_say_so(tmp_path: Any) -> None:
    assert expiring_files(_files([("a.jpg", 1, dt.datetime(2026, 1, 1, tzinfo=UTC))]), Lifecycle("s3"),
                          now=dt.datetime(2026, 12, 1, tzinfo=UTC), min_days=1000).count == 0
    assert "no lifecycle" in read_lifecycle(f"file://{tmp_path}").notes[0]
    az = read_lifecycle("az://container/folder")  # (no request: Azure's policies are not readable)
    assert az.rules == [] and "cannot be read through a container's connection" in az.notes[0]


def _s3_datasource(s3_bucket: Any, rules: list[dict[str, Any]]) -> tuple[str, Any]:
    client = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    if rules:
        client.put_bucket_lifecycle_configuration(Bucket=s3_bucket.name, LifecycleConfiguration={"Rules": rules})
    for i, key in enumerate(["cams/tmp/a.png", "cams/tmp/b.png", "cams/keep/c.png", "other/tmp/d.png"]):
        client.put_object(Bucket=s3_bucket.name, Key=key, Body=png_bytes(i))
    created = client.head_object(Bucket=s3_bucket.name, Key="cams/tmp/a.png")["LastModified"]
    return f"{s3_bucket.uri}/cams", created


TMP_3D = {"ID": "tmp-3d", "Status": "Enabled", "Filter": {"Prefix": "cams/tmp/"}, "Expiration": {"Days": 3}}


def test_s3_skip_reads_the_rules_and_reports_each_skipped_file(s3_bucket: Any, tmp_path: Any) -> None:
    uri, created = _s3_datasource(s3_bucket, [TMP_3D])
    creds = QueryCredentials(datasource=s3_bucket.credentials)
    worker = {"datasource": {"input_expiration": {"min_days_to_expiration": 5, "handling_strategy": "SKIP"}}}
    query = NewFilesQuery.build(datasource_uri=uri, datapool_uri=f"file://{tmp_path}/pool", worker_config=worker)
    found = find_new_files(query, creds, now=created + dt.timedelta(days=1))
    assert found.files.column("key").to_pylist() == ["keep/c.png"]
    assert found.listing.num_rows == 3 and found.expiring == []
    skipped = dict(found.skips.skipped)
    assert sorted(skipped) == ["tmp/a.png", "tmp/b.png"]
    assert "lifecycle rule 'tmp-3d'" in skipped["tmp/a.png"] and "input_expiration SKIP: not processed" in skipped[
        "tmp/a.png"]
    # outside the window nothing is skipped; without input_expiration the rules are not read at all
    assert find_new_files(query, creds, now=created - dt.timedelta(days=10)).files.num_rows == 3
    plain = NewFilesQuery.build(datasource_uri=uri, datapool_uri=f"file://{tmp_path}/pool")
    assert plain.min_days_to_expiration is None
    assert find_new_files(plain, creds, now=created + dt.timedelta(days=1)).files.num_rows == 3


def test_s3_abort_fails_the_list_step_naming_the_files(s3_bucket: Any, tmp_path: Any) -> None:
    uri, _ = _s3_datasource(s3_bucket, [TMP_3D])
    worker = {"datasource": {"input_expiration": {"min_days_to_expiration": 5, "handling_strategy": "ABORT"}}}
    query = NewFilesQuery.build(datasource_uri=uri, datapool_uri=f"file://{tmp_path}/pool", worker_config=worker)
    with pytest.raises(ParamError) as info:
        list_new(query, run_id="r1", credentials=QueryCredentials(datasource=s3_bucket.credentials))
    text = str(info.value)
    assert "input_expiration" in text and "2 of the files to process expire within 5 days" in text
    assert "'tmp/a.png'" in text and "'tmp/b.png'" in text and "handling_strategy to SKIP" in text
    assert not (tmp_path / "pool").exists()  # (nothing staged)


def test_s3_rule_by_tags_is_noted_in_the_run_and_no_rules_is_fine(s3_bucket: Any, tmp_path: Any) -> None:
    uri, created = _s3_datasource(s3_bucket, [
        {"ID": "scratch", "Status": "Enabled", "Filter": {"Tag": {"Key": "scratch", "Value": "1"}},
         "Expiration": {"Days": 1}}])
    worker = {"datasource": {"input_expiration": {"min_days_to_expiration": 5, "handling_strategy": "SKIP"}}}
    query = NewFilesQuery.build(datasource_uri=uri, datapool_uri=f"file://{tmp_path}/pool", worker_config=worker)
    creds = QueryCredentials(datasource=s3_bucket.credentials)
    found = find_new_files(query, creds, now=created)
    assert found.files.num_rows == 3 and found.skips.skipped == []
    assert len(found.skips.notes) == 1 and "'scratch'" in found.skips.notes[0] and "tags" in found.skips.notes[0]
    # the run's listing record keeps the note for the report
    result = list_new(query, run_id="r1", credentials=creds)
    assert result.new == 3
    from lightly_airflow import staging

    assert any("'scratch'" in n for n in staging.read_listing_skips(f"file://{tmp_path}/pool", "r1")["notes"])


def test_gcs_datasource_lifecycle_request_and_creation_time(gcs_bucket: Any) -> None:
    from lightly_airflow.storage import filesystem

    fs, root = filesystem(gcs_bucket.uri, gcs_bucket.credentials)
    fs.pipe_file(f"{root}/folder/a.png", png_bytes(0))
    lifecycle = read_lifecycle(f"{gcs_bucket.uri}/folder", gcs_bucket.credentials)
    assert lifecycle.store == "gs" and lifecycle.rules == [] and lifecycle.key_prefix == "folder/"
    from lightly_airflow.datasource import list_table

    listing = list_table(f"{gcs_bucket.uri}/folder", credentials=gcs_bucket.credentials)
    created = fs.info(f"{root}/folder/a.png")["timeCreated"]
    assert listing.column("mtime")[0].as_py() == dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
