"""The Label Studio export writes each image's URI in the scheme Label Studio's cloud storage of that store resolves
(its import storages' ``url_scheme``: ``s3`` for S3, ``gs`` for GCS, ``azure-blob`` for Azure Blob Storage; the URIs
its own sync writes), so a task imported into a project with that storage is presigned/proxied: an Azure datasource
(``az://``, ``abfs://``) gives ``azure-blob://<container>/<key>``, ``gcs://`` gives ``gs://``, ``s3a://`` gives
``s3://``. The other formats (list, CSV, COCO) keep the store's own URI (what fsspec/adlfs read), and so does the
task's ``meta.uri``. No emulator: the export reads only the pool (the datasource is not touched)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records, label_studio_uri, render, root_uri, uri_key

from .conftest import DIM, MODEL, run_rows

KEYS = ["imgs/city/frame 11.jpg", "a+b/plus+sign.jpg", "h/frag#top.jpg", "uni/ünïcödé 日本.jpg", "plain/ok.jpg"]


def _commit(pool: Datapool, digits: Any, datasource: str) -> None:
    rows = run_rows(digits, range(len(KEYS)), picks=list(range(len(KEYS))))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(KEYS, pa.string()))
    pool.commit(rows, run_id="r1", dag_id="curate", tag="t1", config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=None, datasource_uri=datasource)


def _label_studio_resolves(uri: str, container: str, prefix: str) -> str | None:
    """The key Label Studio's Azure Blob import storage (container, prefix) presigns for a task's ``uri``, or
    ``None`` when that storage does not take it: ``can_resolve_scheme`` (``azure-blob://``), ``parse_bucket_uri``
    (the container must be the storage's, the path under its prefix: ``io_storages/utils.py``) and
    ``urlparse(uri, allow_fragments=False)``'s path as the blob (``io_storages/azure_blob/models.py``)."""
    if not uri.startswith("azure-blob://"):
        return None
    bucket, _, path = uri.split("://", 1)[1].partition("/")
    if bucket != container or not path.startswith(prefix):
        return None
    parsed = urlparse(uri, allow_fragments=False)
    return parsed.path.lstrip("/")


@pytest.mark.parametrize(("ours", "label_studio"), [
    ("az://box/data sets/a b.jpg", "azure-blob://box/data sets/a b.jpg"),
    ("abfs://box/x/y#1.png", "azure-blob://box/x/y#1.png"),
    ("abfss://box@acct.dfs.core.windows.net/x/y.png", "azure-blob://box/x/y.png"),  # the container alone
    ("AZ://box/k.jpg", "azure-blob://box/k.jpg"),
    ("gs://bucket/k 1.jpg", "gs://bucket/k 1.jpg"),
    ("gcs://bucket/k.jpg", "gs://bucket/k.jpg"),
    ("s3://bucket/k+1.jpg", "s3://bucket/k+1.jpg"),
    ("s3a://bucket/k.jpg", "s3://bucket/k.jpg"),
    ("file:///data/a%20b.jpg", "file:///data/a%20b.jpg"),  # not a cloud storage's: as it is
    ("imgs/a%20b.jpg", "imgs/a%20b.jpg"),  # a relative reference (no datasource)
])
def test_label_studio_uri_uses_the_scheme_of_label_studio_s_storage(ours: str, label_studio: str) -> None:
    assert label_studio_uri(ours) == label_studio


def test_an_azure_datasource_exports_azure_blob_uris_for_label_studio_only(tmp_path: Path, digits: Any,
                                                                          capsys: Any) -> None:
    pool_uri = str(tmp_path / "pool")
    pool = Datapool(pool_uri)
    datasource = "az://box/data sets/ds2"
    _commit(pool, digits, datasource)
    root = root_uri(datasource)
    outs = {}
    for fmt in ("list", "csv", "label-studio", "coco"):
        out = tmp_path / f"export-{fmt}"
        assert main(["datapool", "export", pool_uri, "--tag", "t1", "--format", fmt, "--out", str(out)]) == 0, \
            capsys.readouterr().err
        outs[fmt] = out.read_text(encoding="utf-8")
    ours = [root + k for k in KEYS]
    assert outs["list"].split("\n")[:-1] == ours  # the other formats keep the store's URI
    assert [r["uri"] for r in csv.DictReader(io.StringIO(outs["csv"], newline=""))] == ours
    assert [i["coco_url"] for i in json.loads(outs["coco"])["images"]] == ours
    tasks = json.loads(outs["label-studio"])
    images = [t["data"]["image"] for t in tasks]
    assert images == [f"azure-blob://box/data sets/ds2/{k}" for k in KEYS]  # the raw key, as its sync lists it
    assert [t["meta"]["uri"] for t in tasks] == ours and [t["meta"]["key"] for t in tasks] == KEYS
    assert [uri_key(root, t["meta"]["uri"]) for t in tasks] == KEYS
    # Label Studio's Azure Blob storage of that container (prefix "data sets/ds2") takes each task and presigns
    # exactly the blob of the key; an az:// task it would not resolve at all (its image stays a dead link).
    assert [_label_studio_resolves(u, "box", "data sets/ds2") for u in images] == [f"data sets/ds2/{k}" for k in KEYS]
    assert _label_studio_resolves(ours[0], "box", "data sets/ds2") is None


def test_gcs_and_abfs_datasources_and_the_ui_download(tmp_path: Path, digits: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from ui_client import ui_client

    for datasource, expected in (("gcs://bucket/raw", "gs://bucket/raw/"),
                                 ("abfs://box@acct.dfs.core.windows.net/raw", "azure-blob://box/raw/")):
        pool = Datapool(str(tmp_path / datasource.split(":")[0]))
        _commit(pool, digits, datasource)
        tasks = json.loads(render(export_records(pool, "t1"), "t1", "label-studio"))
        assert [t["data"]["image"] for t in tasks] == [expected + k for k in KEYS]
        assert [t["meta"]["uri"] for t in tasks] == [root_uri(datasource) + k for k in KEYS]
    # The UI's download is the same document: Azure for Label Studio, az:// in its CSV.
    pool = Datapool(str(tmp_path / "az"))
    _commit(pool, digits, "az://box/raw")
    with ui_client(monkeypatch, {"p": {"uri": str(tmp_path / "az")}}) as client:
        got = client.get("/lightly/pools/p/export", params={"format": "label-studio", "tag": "t1"})
        assert got.status_code == 200, got.text
        assert [t["data"]["image"] for t in got.json()] == [f"azure-blob://box/raw/{k}" for k in KEYS]
        text = client.get("/lightly/pools/p/export", params={"format": "csv", "tag": "t1"}).text
        assert [r["uri"] for r in csv.DictReader(io.StringIO(text, newline=""))] == [f"az://box/raw/{k}" for k in KEYS]
