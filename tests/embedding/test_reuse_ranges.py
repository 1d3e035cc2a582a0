"""Every embed task of a ``process_all`` run reads the run's one reuse file for its shard's rows. It fetched the
whole file (191 MB for a one-hour 30 fps video, 422 shards: 78.5 GiB downloaded per run) to keep 256 rows; the
file is now sorted by key in small row groups and a task fetches its footer and the row groups whose key range
holds its shard's keys: the same rows, a small part of the bytes, damage in them still named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileOpener

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.storage import write_parquet
from lightly_airflow.video.naming import frame_name

FRAMES = 8_000  # frames of the video; the pool holds every other one (the others are absent from the file)


def _reuse_table() -> pa.Table:
    keys = [frame_name("videos/hour.mp4", i, FRAMES) for i in range(0, FRAMES, 2)]
    keys += keys[1550:1552]  # two keys twice in the file
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(keys), 128), dtype=np.float32)
    table = pa.table({C.KEY: keys, C.ETAG: [f"e{i}" for i in range(len(keys))],
                      C.EMBEDDING: pa.FixedSizeListArray.from_arrays(vectors.ravel(), 128)})
    return table.take(rng.permutation(table.num_rows))  # (the pool's order is not the keys' order)


def _shard_keys() -> pa.Array:
    """A manifest shard's keys (256 in a row of the listing, half of them not in the pool), unsorted, one twice."""
    keys = [frame_name("videos/hour.mp4", i, FRAMES) for i in range(3_000, 3_256)]
    return pa.array([*np.random.default_rng(1).permutation(keys).tolist(), keys[7]], pa.string())


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes read from local files through fsspec (a count; every read still happens)."""
    counted: list[int] = []
    read = LocalFileOpener.read

    def counting(self: LocalFileOpener, *args: object, **kwargs: object) -> bytes:
        data = read(self, *args, **kwargs)
        counted.append(len(data))
        return data

    monkeypatch.setattr(LocalFileOpener, "read", counting)
    return counted


def test_an_embed_task_fetches_only_the_row_groups_holding_its_shard_s_keys(tmp_path: Path, bytes_read: list[int]
                                                                            ) -> None:
    table = _reuse_table()
    uri = staging.write_reuse_file(table, f"file://{tmp_path / 'pool'}", "r1")
    path = Path(uri.removeprefix("file://"))
    assert pq.ParquetFile(path).metadata.num_row_groups == 4  # 4,002 rows, sorted, in row groups of 1,024
    keys = _shard_keys()
    whole = staging.rows_with(pq.read_table(path), C.KEY, keys)  # what the whole file's filter keeps
    assert whole.num_rows == 130  # 128 of the 256 keys are in the pool, two of them twice

    kept = staging.read_staging(uri, None, staging.WRITER[staging.MANIFEST], keep=(C.KEY, keys))
    assert kept is not None and kept.equals(whole)
    assert 0 < sum(bytes_read) < path.stat().st_size / 3  # the footer and one or two row groups (whole: all 4)

    bytes_read.clear()
    absent = pa.array(["videos/other-1-mp4.png", "zzz"])
    none = staging.read_staging(uri, None, staging.WRITER[staging.MANIFEST], keep=(C.KEY, absent))
    assert none is not None and none.num_rows == 0 and none.schema.equals(whole.schema)
    assert sum(bytes_read) < path.stat().st_size / 10  # (the footer only)


def test_a_reuse_file_in_the_earlier_layout_is_read_with_the_same_rows(tmp_path: Path) -> None:
    """A file written before (the pool's order, one row group): every row group may hold the keys, all read."""
    table = _reuse_table()
    uri = write_parquet(table, f"file://{tmp_path / 'reuse.parquet'}")
    keys = _shard_keys()
    kept = staging.read_staging(uri, None, staging.WRITER[staging.MANIFEST], keep=(C.KEY, keys))
    assert kept is not None and kept.equals(staging.rows_with(table, C.KEY, keys))


def test_changed_bytes_in_the_row_groups_a_task_reads_name_the_file_and_the_list_task(tmp_path: Path) -> None:
    uri = staging.write_reuse_file(_reuse_table(), f"file://{tmp_path / 'pool'}", "r1")
    path = Path(uri.removeprefix("file://"))
    meta = pq.ParquetFile(path).metadata
    keys = _shard_keys()
    read = staging.row_groups_with(meta, C.KEY, keys)
    assert read and len(read) < meta.num_row_groups
    at = meta.schema.to_arrow_schema().get_field_index(C.EMBEDDING)  # (the one leaf after key and etag)
    chunk = meta.row_group(read[0]).column(at)
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))
    with pytest.raises(staging.DamagedStagingFile, match=r"reuse-embeddings\.parquet is damaged.*clear the list task"):
        staging.read_staging(uri, None, staging.WRITER[staging.MANIFEST], keep=(C.KEY, keys))


@pytest.mark.parametrize("fixture", ["s3_bucket", "gcs_bucket", "azure_container"])
def test_range_reads_keep_the_same_rows_on_every_store(request: pytest.FixtureRequest, fixture: str) -> None:
    bucket = request.getfixturevalue(fixture)
    table = _reuse_table()
    uri = staging.write_reuse_file(table, f"{bucket.uri}/pool", "r1", bucket.credentials)
    keys = _shard_keys()
    kept = staging.read_staging(uri, bucket.credentials, staging.WRITER[staging.MANIFEST], keep=(C.KEY, keys))
    assert kept is not None and kept.equals(staging.rows_with(table.sort_by(C.KEY), C.KEY, keys))
    assert staging.read_staging(f"{bucket.uri}/pool/none.parquet", bucket.credentials,
                                staging.WRITER[staging.MANIFEST], keep=(C.KEY, keys)) is None


def test_a_store_error_on_a_range_stays_the_store_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The footer is fetched, then the store fails (network, permissions): the task fails with the store's error,
    which a retry may fix, not with "damaged file, clear the list task"."""
    uri = staging.write_reuse_file(_reuse_table(), f"file://{tmp_path / 'pool'}", "r1")
    read, calls = LocalFileOpener.read, []

    def failing_after_the_footer(self: LocalFileOpener, *args: object, **kwargs: object) -> bytes:
        calls.append(args)
        if len(calls) > 1:
            raise PermissionError("Access Denied (the store's answer to a range read)")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(LocalFileOpener, "read", failing_after_the_footer)
    with pytest.raises(PermissionError, match="Access Denied"):
        staging.read_staging(uri, None, staging.WRITER[staging.MANIFEST], keep=(C.KEY, _shard_keys()))
