"""The storage module reaches every emulated store with the same credentials object."""

from __future__ import annotations

from datetime import UTC

import pytest

from lightly_airflow.storage import StorageCredentials, filesystem, protocol_of


@pytest.mark.parametrize("fixture", ["s3_bucket", "gcs_bucket", "azure_container"])
def test_write_list_read_roundtrip(fixture: str, request: pytest.FixtureRequest) -> None:
    bucket = request.getfixturevalue(fixture)
    fs, path = filesystem(bucket.uri + "/nested dir/ünï.txt", bucket.credentials)
    with fs.open(path, "wb") as f:
        f.write(b"hello")
    root_fs, root = filesystem(bucket.uri, bucket.credentials)
    found = root_fs.find(root, detail=True)
    assert [info["size"] for info in found.values()] == [5]
    assert fs.cat(path) == b"hello"


def test_local_paths_and_file_uris_are_the_same_store(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("x")
    fs, path = filesystem(f"file://{tmp_path}/a.txt")
    assert fs.cat(path) == b"x"
    assert protocol_of(str(tmp_path)) == "file"


def test_unsupported_scheme_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"ftp.*s3://"):
        protocol_of("ftp://host/x")


def test_secrets_never_appear_in_repr() -> None:
    creds = StorageCredentials(access_key_id="AKIA", secret_access_key="s3cr3t", region="eu-west-1")
    assert "s3cr3t" not in repr(creds)
    assert creds.delta_options("s3")["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert creds.fsspec_options("s3") == {"key": "AKIA", "secret": "s3cr3t", "client_kwargs": {"region_name": "eu-west-1"}}


def test_unknown_credential_keys_are_named() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        StorageCredentials.from_dict({"endpoint": "http://x"})


def test_azurite_endpoints_use_delta_rs_emulator_mode(monkeypatch) -> None:
    monkeypatch.delenv("AZURITE_BLOB_STORAGE_URL", raising=False)
    local = StorageCredentials(account_name="devstoreaccount1", account_key="k", endpoint_url="http://127.0.0.1:4242/devstoreaccount1")
    opts = local.delta_options("az")
    assert opts["AZURE_STORAGE_USE_EMULATOR"] == "true" and "AZURE_STORAGE_ENDPOINT" not in opts
    import os

    assert os.environ["AZURITE_BLOB_STORAGE_URL"] == "http://127.0.0.1:4242"
    remote = StorageCredentials(account_name="acct", account_key="k", endpoint_url="https://acct.blob.core.usgovcloudapi.net")
    assert remote.delta_options("az")["AZURE_STORAGE_ENDPOINT"] == "https://acct.blob.core.usgovcloudapi.net"
    assert "AZURE_STORAGE_USE_EMULATOR" not in remote.delta_options("az")


def test_map_io_keeps_the_order_and_raises_the_first_items_error(monkeypatch) -> None:
    import time

    from lightly_airflow import storage

    monkeypatch.setattr(storage, "IO_THREADS", 4)
    # later items finish first: the results still come in the items' order
    assert storage.map_io(lambda i: (time.sleep(0.002 * (12 - i)), i * i)[1], list(range(12))) == [
        i * i for i in range(12)]
    started: list[int] = []

    def read(i: int) -> int:
        started.append(i)
        if i == 3:
            raise ValueError("item 3")  # fails first in time
        time.sleep(0.05)
        if i == 1:
            raise ValueError("item 1")  # ... but comes first in order
        return i

    with pytest.raises(ValueError, match="item 1"):
        storage.map_io(read, list(range(200)))
    assert len(started) < 50  # the calls not yet started were cancelled


def test_write_parquet_keeps_vectors_out_of_dictionaries(tmp_path) -> None:
    """Embeddings (floats inside lists) are written in plain pages, everything else may use a dictionary, and the
    values come back unchanged."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lightly_airflow.storage import write_parquet

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    table = pa.table({
        "key": pa.array([f"k{i % 7}" for i in range(300)]),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16),
        "scores": pa.array([[0.25, 0.75]] * 300, pa.list_(pa.float64())),
        "meta": pa.array([{"camera": "front", "sharpness": 1.5}] * 300),
    })
    uri = write_parquet(table, str(tmp_path / "t.parquet"))
    meta = pq.ParquetFile(uri).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" not in encodings["embedding.list.element"]
    assert "RLE_DICTIONARY" not in encodings["scores.list.element"]
    for leaf in ("key", "meta.camera", "meta.sharpness"):
        assert "RLE_DICTIONARY" in encodings[leaf], leaf
    assert pq.read_table(uri).equals(table)


def test_a_sas_token_reaches_the_connection_s_own_azure_endpoint(azure_container, caplog) -> None:
    """An Azure connection with a SAS token and a custom endpoint (Azurite here; a sovereign cloud or a private
    endpoint in use) reads that endpoint: without an account key, adlfs was given the account name and the token
    alone and went to ``<account>.blob.core.windows.net``. A token credential at an https endpoint goes through
    adlfs' ``account_host``; at an http one (only a key or a SAS reach it) the fallback is logged."""
    import logging
    from datetime import datetime, timedelta

    import emulators  # (scripts/ is on sys.path: tests/conftest.py)
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    fs, root = filesystem(f"{azure_container.uri}/ds/a.txt", azure_container.credentials)
    fs.pipe_file(root, b"hello")
    sas = generate_account_sas(emulators.AZURE_ACCOUNT, emulators.AZURE_KEY, ResourceTypes(container=True,
                               object=True), AccountSasPermissions(read=True, list=True),
                               expiry=datetime.now(UTC) + timedelta(hours=1))
    creds = StorageCredentials(account_name=emulators.AZURE_ACCOUNT, sas_token=f"?{sas}",  # (as the portal copies it)
                               endpoint_url=azure_container.credentials.endpoint_url)
    fs, root = filesystem(f"{azure_container.uri}/ds", creds)
    assert fs.ls(root, detail=False) == [f"{azure_container.name}/ds/a.txt"]
    assert fs.cat_file(f"{root}/a.txt") == b"hello"
    https = StorageCredentials(account_name="acct", endpoint_url="https://acct.blob.core.chinacloudapi.cn/",
                               azure_credential=object())
    assert https.fsspec_options("az")["account_host"] == "acct.blob.core.chinacloudapi.cn"
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.storage"):
        opts = StorageCredentials(account_name="acct", endpoint_url="http://127.0.0.1:1/acct", azure_credential=object()
                                  ).fsspec_options("az")
    assert "account_host" not in opts and "reaches a custom http endpoint only with an account key" in caplog.text
    # (anonymous requests need no credential: a connection string with the endpoint alone reaches it; read on
    # Azurite in tests/hooks/test_azure_connections.py)
    anon = StorageCredentials(account_name="acct", endpoint_url="http://127.0.0.1:1/acct", anonymous=True)
    assert anon.fsspec_options("az") == {"connection_string": "BlobEndpoint=http://127.0.0.1:1/acct;"}
