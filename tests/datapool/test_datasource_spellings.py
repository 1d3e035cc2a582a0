"""One datasource spelled two ways between runs (``gcs://`` then ``gs://``, ``S3://b/x/`` then ``s3://b/x``,
``file:///x/./src/`` then ``/x/src``) is one place (:func:`lightly_airflow.storage.place`): the files deleted
since the earlier run are counted gone, no "another datasource" note is written, and an export spells the place
one way and names the gone files its latest listing found. Before, each comparison took the spellings for two
datasources: nothing was ever counted gone, the note said the pool was fed by another datasource, and an export
read an older run's gone files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records, gone_exports, root_uri
from lightly_airflow.datasource import NewFilesQuery, QueryCredentials
from lightly_airflow.datasource.gone import GoneFiles, write_gone
from lightly_airflow.datasource.query import ListingSkips
from lightly_airflow.pipeline import _listing_notes, list_new
from lightly_airflow.storage import StorageCredentials, place

from .conftest import DIM, MODEL, run_rows

KEYS = ["a/1.png", "a/2.png", "b/3.jpg"]


@pytest.mark.parametrize(("one", "other"), [
    ("gcs://bucket/raw/", "gs://bucket/raw"),
    ("GS://bucket/raw", "gs://bucket/raw"),
    ("S3://bucket/raw/", "s3://bucket/raw"),
    ("s3a://bucket/raw", "s3://bucket/raw/"),
    ("abfss://box@acct.dfs.core.windows.net/raw/", "az://box/raw"),
    ("abfs://box/raw", "az://box/raw/"),
    ("file:///data/./src/", "/data/src"),
    ("FILE:///data//src", "file:///data/src"),
    ("local:///data/src", "/data/x/../src"),
])
def test_spellings_the_storage_layer_reads_as_one_folder_are_one_place(one: str, other: str) -> None:
    assert place(one) == place(other)


@pytest.mark.parametrize(("one", "other"), [
    ("s3://bucket/raw", "s3://Bucket/raw"),  # (a bucket name is case-sensitive)
    ("s3://bucket/raw", "s3://bucket/./raw"),  # (object keys are literal: this lists the keys under ./raw/)
    ("s3://bucket/raw", "gs://bucket/raw"),
    ("az://box/raw", "az://box/raw2"),
])
def test_other_folders_stay_apart(one: str, other: str) -> None:
    assert place(one) != place(other)


def _commit(pool: Datapool, digits: Any, keys: list[str], datasource: str, run_id: str, *,
            gone: list[str] | None = None) -> None:
    rows = run_rows(digits, range(len(keys)), picks=list(range(len(keys))))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    if gone:  # (as the list step records what its listing found gone)
        write_gone(GoneFiles(keys=gone), pool.uri, run_id, pool._credentials)
    pool.commit(rows, run_id=run_id, dag_id="curate", tag=run_id, config={},
                counts={"gone": len(gone)} if gone else {}, embedding_model=MODEL, embedding_dim=DIM,
                read_version=pool.version(), datasource_uri=datasource)


def _list(datasource: str, pool_uri: str, run_id: str, creds: StorageCredentials | None) -> tuple[int, list[str]]:
    """The real list step: (files counted gone, the run's listing notes)."""
    query = NewFilesQuery(datasource_uri=datasource, datapool_uri=pool_uri)
    result = list_new(query, run_id=run_id, credentials=QueryCredentials(creds, creds, creds))
    notes = _listing_notes(ListingSkips.from_dict(staging.read_listing_skips(pool_uri, run_id, creds)))
    return result.gone, notes


def test_local_datasource_spelled_otherwise_by_an_earlier_run(tmp_path: Path, digits: Any) -> None:
    src = tmp_path / "src"
    for key in [*KEYS, "c/new.png"]:
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(key.encode())
    pool_uri = str(tmp_path / "pool")
    _commit(Datapool(pool_uri), digits, KEYS, f"file://{tmp_path}/./src/", "r1")
    (src / "a/2.png").unlink()
    gone, notes = _list(str(src), pool_uri, "r2", None)
    assert gone == 1  # was 0: the earlier run's rows were taken for another datasource's
    assert not [n for n in notes if "another datasource" in n], notes


def test_s3_datasource_spelled_otherwise_by_an_earlier_run(s3_bucket: Any, digits: Any) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    for key in [*KEYS, "c/new.png"]:
        client.put_object(Bucket=s3_bucket.name, Key=f"raw/{key}", Body=key.encode())
    pool_uri = f"{s3_bucket.uri}/pool"
    _commit(Datapool(pool_uri, s3_bucket.credentials), digits, KEYS, f"S3://{s3_bucket.name}/raw/", "r1")
    client.delete_object(Bucket=s3_bucket.name, Key="raw/b/3.jpg")
    gone, notes = _list(f"s3a://{s3_bucket.name}/raw", pool_uri, "r2", s3_bucket.credentials)
    assert gone == 1
    assert not [n for n in notes if "another datasource" in n], notes
    # Another folder of the same bucket is another datasource: said, and nothing of it counted gone.
    client.put_object(Bucket=s3_bucket.name, Key="other/a/1.png", Body=b"other picture")
    gone, notes = _list(f"s3://{s3_bucket.name}/other", pool_uri, "r3", s3_bucket.credentials)
    assert gone == 0
    assert [n for n in notes if f"another datasource (s3://{s3_bucket.name}/raw/)" in n], notes


def test_export_spells_a_place_one_way_and_reads_its_latest_listing(tmp_path: Path, digits: Any,
                                                                   caplog: Any) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    _commit(pool, digits, ["x 1.png", "y.png"], "gcs://bucket/raw/", "r1")
    _commit(pool, digits, ["z.png"], "gs://bucket/raw", "r2", gone=["x 1.png"])
    with caplog.at_level(logging.WARNING):
        records = export_records(pool, "r1")
    # (keys raw: an object store's) the latest run's spelling, not two spellings of one bucket in one export
    assert [r.uri for r in records] == ["gs://bucket/raw/x 1.png", "gs://bucket/raw/y.png"]
    assert gone_exports(pool, records).uris == ["gs://bucket/raw/x 1.png"]
    assert "1 of the 2 exported samples of tag 'r1' point to files that are no longer" in caplog.text
    # Exported with the earlier spelling given explicitly: the same file, the same listing.
    spelled = export_records(pool, "r1", datasource_uri="gcs://bucket/raw")
    assert gone_exports(pool, spelled).uris == ["gcs://bucket/raw/x 1.png"]
    # A later run of the place whose listing found nothing gone (restored) wins over an older spelling's.
    _commit(pool, digits, ["w.png"], "gcs://bucket/raw", "r3")
    assert gone_exports(pool, export_records(pool, "r1")).count == 0


def test_a_local_root_is_written_as_it_is_read(tmp_path: Path) -> None:
    assert root_uri(f"file://{tmp_path}/./a b/") == root_uri(f"{tmp_path}/a b") == f"file://{tmp_path}/a%20b/"
