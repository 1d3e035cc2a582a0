"""A datasource and a datapool at ``abfs(s)://container@<account>.dfs.core.windows.net/…`` (the form Databricks and
Synapse write) on Azurite, end to end: the listing, a run's files and ``.lightly/`` read, the table committed and
read where the files are, and an export's URIs in the form the user gave, each opening its file."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from datasource.conftest import png_bytes
from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records, uri_location
from lightly_airflow.datasource import NewFilesQuery, QueryCredentials, list_table
from lightly_airflow.metadata import compute_metadata_shard
from lightly_airflow.pipeline import list_new, select_and_commit
from lightly_airflow.storage import filesystem, read_parquet, write_parquet

ACCOUNT = "devstoreaccount1"  # (Azurite's account, which the fixture's credentials name)
KEYS = ["a.png", "sub/b.png", "sub/deeper/c.png"]


def _account_uri(scheme: str, container: str, path: str) -> str:
    return f"{scheme}://{container}@{ACCOUNT}.dfs.core.windows.net/{path}"


def _fill(azure_container) -> None:  # noqa: ANN001
    """Three PNGs under ``ds/``, a custom metadata file for one of them and a file in ``.lightly/`` (never listed),
    written through ``az://container/ds`` (the spelling without the account)."""
    fs, root = filesystem(f"{azure_container.uri}/ds", azure_container.credentials)
    for i, key in enumerate(KEYS):
        fs.pipe_file(f"{root}/{key}", png_bytes(i, size=16))
    fs.pipe_file(f"{root}/.lightly/metadata/schema.json",
                 json.dumps([{"name": "weather", "path": "weather", "valueDataType": "CATEGORICAL_STRING"}]).encode())
    fs.pipe_file(f"{root}/.lightly/metadata/sub/b.json", b'{"metadata": {"weather": "rain"}}')
    fs.pipe_file(f"{root}/.lightly/ignored.png", png_bytes(9))


@pytest.mark.emulator
@pytest.mark.parametrize("scheme", ["abfs", "abfss"])
def test_a_datasource_that_names_its_account_is_listed(azure_container, scheme: str) -> None:
    """The listing of ``abfs(s)://c@<account>.dfs.core.windows.net/ds`` is that of ``az://c/ds``: List Blobs was sent
    to a container named ``c@<account>.dfs.core.windows.net`` (an HTTP 400 from Azure's URL parser), so the
    datasource could not be listed while adlfs read its files."""
    _fill(azure_container)
    creds = azure_container.credentials
    plain = list_table(f"{azure_container.uri}/ds", credentials=creds)
    full = list_table(_account_uri(scheme, azure_container.name, "ds"), credentials=creds)
    assert sorted(full.column(C.KEY).to_pylist()) == KEYS
    assert full.select([C.KEY, C.SIZE, C.ETAG]).sort_by(C.KEY).equals(plain.select([C.KEY, C.SIZE, C.ETAG]).sort_by(C.KEY))


def _embeddings(manifest: str, creds) -> None:  # noqa: ANN001
    """The embed stage's staging file: each image's 8x8 grey pixels read from the datasource (real reads)."""
    from PIL import Image

    from lightly_airflow.storage import join_uri

    table = read_parquet(manifest, creds)
    root = json.loads(table.schema.metadata[b"lightly.datasource_uri"])
    vectors = []
    for key in table.column(C.KEY).to_pylist():
        fs, path = filesystem(join_uri(root, key), creds)
        with fs.open(path, "rb") as fh:
            v = np.asarray(Image.open(fh).convert("L").resize((8, 8)), np.float32).ravel() - 128.0
        vectors.append((v / (np.linalg.norm(v) or 1.0)).tolist())
    out = pa.table({C.KEY: table.column(C.KEY), C.ETAG: table.column(C.ETAG).cast(pa.string()),
                    C.EMBEDDING: pa.array(vectors, pa.list_(pa.float32())), C.STATUS: ["ok"] * table.num_rows,
                    C.STATUS_REASON: pa.nulls(table.num_rows, pa.string())})
    meta = {C.EMBEDDING_MODEL_METADATA_KEY: json.dumps("pixels-8"), C.EMBEDDING_DIM_METADATA_KEY: json.dumps(64),
            C.EMBEDDING_INPUT_SIZE_METADATA_KEY: json.dumps(8)}
    write_parquet(out.replace_schema_metadata(meta), staging.sibling_uri(manifest, staging.EMBEDDINGS), creds)


@pytest.mark.emulator
def test_a_run_on_account_uris_commits_where_the_files_are_and_exports_the_users_uris(azure_container) -> None:
    """A run with its datasource at ``abfs://c@<account>…/ds`` and its datapool at ``abfss://c@<account>…/pool``:
    listed, its images and ``.lightly/metadata`` read, committed (delta-rs 1.6.6 reads ``az://c@<account>…`` as
    container ``c`` of that account: the table is under ``az://c/pool``, where adlfs wrote the staging files), read
    back, and exported with URIs under the datasource as the user spelled it, each opening its image."""
    _fill(azure_container)
    creds, container = azure_container.credentials, azure_container.name
    datasource, pool_uri = _account_uri("abfs", container, "ds"), _account_uri("abfss", container, "pool")
    config = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    run_id = "manual__2026-12-07T00:00:00+00:00"
    listed = list_new(NewFilesQuery.build(datasource_uri=datasource, datapool_uri=pool_uri), run_id=run_id,
                      credentials=QueryCredentials(creds, creds, creds))
    assert listed.new == 3 and listed.manifests
    for manifest in listed.manifests:
        counts = compute_metadata_shard(manifest, credentials=creds, datasource_credentials=creds,
                                        lightly_credentials=creds)
        assert (counts["ok"], counts["corrupt"], counts["missing"]) == (read_parquet(manifest, creds).num_rows, 0, 0), counts
        _embeddings(manifest, creds)
    summary = select_and_commit(datapool_uri=pool_uri, run_id=run_id, dag_id="curate", manifests=listed.manifests,
                                selection_config=config, datapool_credentials=creds, datasource_credentials=creds,
                                lightly_credentials=creds)
    assert summary.selected == 2 and summary.version is not None

    fs, root = filesystem(f"{azure_container.uri}/pool/_delta_log", creds)
    assert any(name.endswith("00000000000000000000.json") for name in fs.ls(root, detail=False))
    pool = Datapool(pool_uri, creds)
    rows = {r[C.KEY]: r for r in pool.read().to_pylist()}
    assert sorted(rows) == KEYS and rows["sub/b.png"][C.metadata_column("weather")] == "rain"
    assert Datapool(f"{azure_container.uri}/pool", creds).version() == pool.version() == summary.version  # (one table)

    records = export_records(pool, summary.tag, datasource_credentials=creds, check_files=True)
    assert len(records) == 2
    for record in records:
        assert record.uri == f"{datasource}/{record.key}"
        fs, path = uri_location(record.uri, creds)
        assert fs.cat_file(path) == png_bytes(KEYS.index(record.key), size=16)
