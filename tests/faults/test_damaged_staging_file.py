"""A shard task's staging file cut short (a store or copy that stopped half-way, a file emptied by hand) or with
bytes changed inside a page (a disk or copy that flipped them; the footer intact, so the file opens): the select
task names the file and the task to run again instead of a bare "Parquet magic bytes not found", a bare
"ZSTD decompression failed" or — the changed bytes decoded to other values without any error — other keys and
embeddings, commits nothing, and once that task ran again (a cleared task, as Airflow retries it) the run commits what an untouched
run commits: every file once, the same statuses, embeddings and picks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.demo import Batch, add_batch

from .runs import prepare

SELECTION = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
COLUMNS = [C.KEY, C.STATUS, C.STATUS_REASON, C.SELECTED, C.PICK_RANK, C.EMBEDDING]


def _select(pool: Path, manifests: list[str]) -> object:
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id="r1", dag_id="t", manifests=manifests,
                             selection_config=SELECTION)


def _pool_rows(pool: Path) -> object:
    from lightly_airflow.datapool import Datapool

    return Datapool(f"file://{pool}").read(columns=COLUMNS).sort_by(C.KEY)


def _cut(uri: str) -> Path:
    path = Path(uri.removeprefix("file://"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _largest_chunk(source: Path | pa.BufferReader) -> tuple[int, int]:
    """The byte range of the data pages of the file's largest column chunk (after its dictionary page)."""
    meta = pq.ParquetFile(source).metadata
    chunk = max((meta.row_group(r).column(c) for r in range(meta.num_row_groups) for c in range(meta.num_columns)),
                key=lambda col: col.total_compressed_size)
    return chunk.data_page_offset, (chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size


def _change(uri: str, at: str = "middle") -> Path:
    """Flip 16 bytes of the largest column chunk's data page: in its ``middle`` (compressed values) or at its
    ``header``; the file keeps its length and footer."""
    path = Path(uri.removeprefix("file://"))
    start, end = _largest_chunk(path)
    assert end - start > 120, "the page is too small to change its values only"
    data = bytearray(path.read_bytes())
    offset = start + (end - start) // 2 if at == "middle" else start
    data[offset:offset + 16] = bytes(b ^ 0xFF for b in data[offset:offset + 16])
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def untouched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("untouched")
    add_batch(root / "images", Batch("few", (0, 12), ()))
    _select(root / "pool", prepare(root / "images", root / "pool", "r1", SELECTION))
    return root / "images", _pool_rows(root / "pool")


def _embed(source: Path, pool: Path, manifest: str) -> None:
    from lightly_airflow.embedding import embed_shard

    embed_shard(manifest, device="cpu", num_workers=1)


def _metadata(source: Path, pool: Path, manifest: str) -> None:
    from lightly_airflow.metadata import compute_metadata_shard

    compute_metadata_shard(manifest)


def _predictions(source: Path, pool: Path, manifest: str) -> None:
    from lightly_airflow.predictions import load_predictions_shard

    load_predictions_shard(manifest, lightly_uri=f"file://{source}")


def _all(source: Path, pool: Path, manifest: str) -> None:
    assert prepare(source, pool, "r1", SELECTION) == [manifest]  # the list task's retry: the same manifests


@pytest.mark.parametrize(("damaged", "task", "rerun", "damage"), [
    (lambda m: staging.sibling_uri(m, staging.EMBEDDINGS), "embed task of this shard", _embed, _cut),
    (lambda m: staging.sibling_uri(m, staging.METADATA), "metadata task of this shard", _metadata, _cut),
    (lambda m: staging.sibling_uri(m, staging.PREDICTIONS), "predictions task of this shard", _predictions, _cut),
    (lambda m: staging.errors_uri(m, staging.METADATA), "metadata task of this shard", _metadata, _cut),
    (lambda m: m, "list task of this run", _all, _cut),
    (lambda m: m.rsplit(f"/{staging.MANIFEST}/", 1)[0] + f"/{staging.LISTING_FILE}", "list task of this run", _all,
     _cut),
    (lambda m: staging.sibling_uri(m, staging.EMBEDDINGS), "embed task of this shard", _embed, _change),
    (lambda m: m, "list task of this run", _all, _change),
], ids=["embeddings", "metadata", "predictions", "metadata-errors", "manifest", "listing-json",
        "embeddings-changed", "manifest-changed"])
def test_a_damaged_staging_file_is_named_and_a_rerun_of_its_task_commits_the_untouched_result(
        tmp_path: Path, untouched: tuple[Path, object], damaged, task: str, rerun, damage) -> None:
    from lightly_airflow.datapool import Datapool

    source, expected = untouched
    pool = tmp_path / "pool"
    manifests = prepare(source, pool, "r1", SELECTION)
    path = damage(damaged(manifests[0]))
    with pytest.raises(staging.DamagedStagingFile) as err:
        _select(pool, manifests)
    assert f"Staging file file://{path} is damaged" in str(err.value) and f"clear the {task}" in str(err.value)
    assert Datapool(f"file://{pool}").version() is None  # nothing committed
    rerun(source, pool, manifests[0])  # only the task the message names runs again (cleared in Airflow)
    summary = _select(pool, manifests)
    assert summary.version == 1 and summary.problems == 0
    rows = _pool_rows(pool)
    keys = rows.column(C.KEY).to_pylist()
    assert len(keys) == len(set(keys)) == 12 and pc.all(pc.equal(rows.column(C.STATUS), C.STATUS_OK)).as_py()
    assert rows.equals(expected)


def test_a_damaged_or_missing_reuse_file_names_itself_and_the_list_task(tmp_path: Path) -> None:
    """The list task writes the pool's embeddings of unchanged files (``reuse-embeddings.parquet``) for the embed
    tasks; cut short or gone, the embed task named neither the file nor the task (pyarrow's bare error)."""
    from lightly_airflow.embedding import embed_shard

    add_batch(tmp_path / "images", Batch("few", (0, 6), ()))
    manifest = prepare(tmp_path / "images", tmp_path / "pool", "r1", SELECTION)[0]
    reuse = tmp_path / "pool" / "reuse.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({C.KEY: ["x"] * 200, C.ETAG: ["e"] * 200}), reuse)
    _cut(str(reuse))
    with pytest.raises(staging.DamagedStagingFile, match=r"reuse\.parquet is damaged.*clear the list task"):
        embed_shard(manifest, device="cpu", num_workers=1, reuse_uri=str(reuse))
    reuse.unlink()
    with pytest.raises(FileNotFoundError, match=r"reuse\.parquet does not exist: the list task of this run writes it"):
        embed_shard(manifest, device="cpu", num_workers=1, reuse_uri=str(reuse))


def _objects_table(n: int = 400) -> pa.Table:
    return pa.table({C.KEY: [f"img-{i:04d}.png#object-{i % 7}" for i in range(n)],
                     C.PARENT_KEY: [f"img-{i:04d}.png" for i in range(n)],
                     C.EMBEDDING: pa.array([[float(i % 13) / (j + 1) for j in range(16)] for i in range(n)],
                                           pa.list_(pa.float32()))})


@pytest.mark.parametrize("at", ["middle", "header"])
def test_changed_bytes_inside_a_page_are_named_as_damage_also_for_object_files(tmp_path: Path, at: str) -> None:
    """Objects files are read by the select task beside the other stages (``objects.run.load_run_objects``), which
    read them past ``read_staging``: cut short they gave pyarrow's bare error, changed other values or a bare
    ``OSError``."""
    from lightly_airflow.objects.run import load_run_objects
    from lightly_airflow.storage import write_parquet

    manifest = staging.shard_uri(f"file://{tmp_path}/pool", "r1", staging.MANIFEST, 0)
    uri = write_parquet(_objects_table(), staging.sibling_uri(manifest, staging.OBJECTS))
    assert load_run_objects([manifest]).num_rows == 400
    _change(uri, at)
    with pytest.raises(staging.DamagedStagingFile, match=rf"Staging file {uri} is damaged: .*clear the embed task"):
        load_run_objects([manifest])
    write_parquet(_objects_table(), uri)
    _cut(uri)
    with pytest.raises(staging.DamagedStagingFile, match=rf"Staging file {uri} is damaged: .*clear the embed task"):
        load_run_objects([manifest])


@pytest.mark.parametrize("at", ["header", "dictionary"])
def test_a_file_of_the_previous_version_without_page_checksums_is_named_when_it_fails_to_decode(
        tmp_path: Path, at: str) -> None:
    """A staged run of the previous version (no page checksums) resumed after the upgrade: a changed page header or
    dictionary page gave a bare ``OSError`` ("Couldn't deserialize thrift", "ZSTD decompression failed"). (Bytes
    changed inside such a file's values can decode to other values: nothing tells then.)"""
    path = tmp_path / "pool" / "_staging" / "r1" / "embeddings" / "shard-00000.parquet"
    path.parent.mkdir(parents=True)
    table = _objects_table()
    pq.write_table(table, path, compression="zstd")  # (as storage.write_parquet wrote them before)
    data = bytearray(path.read_bytes())
    meta = pq.ParquetFile(path).metadata.row_group(0).column(0)  # the keys: a dictionary page, then the indices
    offset = meta.data_page_offset if at == "header" else meta.dictionary_page_offset + 24
    data[offset:offset + 16] = bytes(b ^ 0xFF for b in data[offset:offset + 16])
    path.write_bytes(bytes(data))
    with pytest.raises(staging.DamagedStagingFile, match=rf"Staging file file://{path} is damaged: .*clear the embed"):
        staging.read_staging(f"file://{path}", None, staging.WRITER[staging.EMBEDDINGS])


def test_a_store_error_is_not_taken_for_damage(tmp_path: Path) -> None:
    """Only what the file's bytes decode to is damage: an error of the store (here a folder where the file
    should be; on object stores permissions, credentials, the network) stays what it is."""
    folder = tmp_path / "pool" / "_staging" / "r1" / "embeddings" / "shard-00000.parquet"
    folder.mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        staging.read_staging(f"file://{folder}", None, staging.WRITER[staging.EMBEDDINGS])
    assert staging.read_staging(f"file://{folder.parent}/shard-00001.parquet", None, "x") is None


def test_a_changed_staging_file_on_s3_is_named_and_a_missing_one_is_none(s3_bucket) -> None:
    """The same on an object store (the bytes are fetched in one read, then decoded)."""
    from lightly_airflow.storage import filesystem, write_parquet

    creds = s3_bucket.credentials
    manifest = staging.shard_uri(f"{s3_bucket.uri}/pool", "r1", staging.MANIFEST, 0)
    uri = write_parquet(_objects_table(), staging.sibling_uri(manifest, staging.EMBEDDINGS), creds)
    writer = staging.WRITER[staging.EMBEDDINGS]
    assert staging.read_staging(uri, creds, writer).equals(_objects_table())
    fs, path = filesystem(uri, creds)
    data = bytearray(fs.cat_file(path))
    start, end = _largest_chunk(pa.BufferReader(bytes(data)))
    middle = start + (end - start) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    fs.pipe_file(path, bytes(data))
    with pytest.raises(staging.DamagedStagingFile, match=rf"Staging file {uri} is damaged: .*clear the embed task"):
        staging.read_staging(uri, creds, writer)
    assert staging.read_staging(uri.replace("shard-00000", "shard-00001"), creds, writer) is None
