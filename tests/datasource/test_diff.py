"""new_files (hash anti-join) and manifest sharding on local disk."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from lightly_airflow import staging
from lightly_airflow.datasource import MANIFEST_SCHEMA, new_files, read_manifest, shard_count, write_manifests


def table(rows: list[tuple[str, str]]) -> pa.Table:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return pa.Table.from_pylist(
        [{"key": k, "size": len(e), "etag": e, "mtime": when} for k, e in rows], schema=MANIFEST_SCHEMA
    )


def test_anti_join_by_content_and_by_key() -> None:
    listing = table([("c.png", "3"), ("a.png", "1"), ("b.png", "2-changed"), ("d.png", "4")])
    known = pa.table({
        "key": pa.array(["a.png", "b.png", "b.png", "c.png"]).dictionary_encode(),  # history: two etags of b
        "etag": ["1", "2", "2-older", "3"],
        "content_hash": ["h1", "h2", "h2o", "h3"],
    })
    assert new_files(listing, known).column("key").to_pylist() == ["b.png", "d.png"]
    assert new_files(listing, known, policy="key").column("key").to_pylist() == ["d.png"]
    assert new_files(listing.to_batches(max_chunksize=1), None).column("key").to_pylist() == ["a.png", "b.png", "c.png", "d.png"]
    assert new_files(listing, known).schema.equals(MANIFEST_SCHEMA)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="Unknown new-file policy"):
        new_files(table([]), None, policy="mtime")
    with pytest.raises(ValueError, match=r"lack columns \['etag'\]"):
        new_files(table([("a", "1")]), pa.table({"key": ["a"]}))


def test_shard_count_bounds() -> None:
    assert shard_count(0) == 0
    assert shard_count(1) == 1
    assert shard_count(255) == 1
    assert shard_count(512) == 2
    assert shard_count(10_000_000) == 1024
    assert shard_count(10_000_000, max_shards=7) == 7


def test_manifests_cover_every_file_once_and_stay_within_1024(tmp_path) -> None:
    rows = [(f"k/{i:06d}.png", str(i)) for i in range(3000)]
    files = table(rows[::-1])
    uris = write_manifests(files, str(tmp_path / "pool"), "scheduled__x", datasource_uri="s3://b/images",
                           min_shard_size=2, max_shards=1024)
    assert len(uris) == 1024
    assert uris[5] == staging.shard_uri(str(tmp_path / "pool"), "scheduled__x", "manifest", 5)
    keys = [k for u in uris for k in read_manifest(u).table.column("key").to_pylist()]
    assert keys == [k for k, _ in rows]
    sizes = [read_manifest(u).num_rows for u in uris]
    assert max(sizes) - min(sizes) <= 1
    assert read_manifest(uris[0]).lightly_uri == "s3://b/images"  # defaults to the datasource


def test_manifest_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="duplicate keys"):
        write_manifests(table([("a", "1"), ("a", "2")]), str(tmp_path), "r", datasource_uri="/d")
    assert write_manifests(table([]), str(tmp_path), "r", datasource_uri="/d") == []
    with pytest.raises(FileNotFoundError, match="run the listing task") as err:
        read_manifest(staging.shard_uri(str(tmp_path), "r", "manifest", 0))
    # Each task of a run on another machine's disk (Celery workers, GPU pods): say so for a local datapool.
    assert "every task of a run must see the same folder" in str(err.value)
    assert staging.missing_hint("s3://bucket/pool/_staging/r/manifest/shard-00000.parquet") == ""
    bad = tmp_path / "bad.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), bad)
    with pytest.raises(ValueError, match="is not a manifest shard"):
        read_manifest(str(bad))
