"""``datapool export`` cannot be injected: every hostile key round-trips through every format, one entry per
sample, and a decoded URI opens exactly the file it names (issue 14.3)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pytest
from datapool.conftest import DIM, MODEL, run_rows

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.errors import DatapoolError
from lightly_airflow.datapool.export import EXPORT_FORMATS, export_records, key_uri, render, root_uri, uri_key

from .hostile import HOSTILE_KEYS


def _pool_with_keys(uri: str, creds, digits, datasource_uri: str, keys: list[str]) -> Datapool:
    rows = run_rows(digits, range(len(keys)), picks=list(range(len(keys))))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    pool = Datapool(uri, creds)
    pool.commit(rows, run_id="r1", dag_id="curate", tag="hostile", config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=None, datasource_uri=datasource_uri)
    return pool


def _keys_back(fmt: str, text: str, root: str) -> list[str]:
    """Parse an export document as its consumer would, and decode each URI back to a key."""
    if fmt == "list":
        lines = text.split("\n")
        assert lines[-1] == ""
        return [uri_key(root, line) for line in lines[:-1]]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert all(uri_key(root, r["uri"]) == r["key"] for r in rows)
        return [uri_key(root, r["uri"]) for r in rows]
    if fmt == "label-studio":
        tasks = json.loads(text)
        assert all(t["meta"]["key"] == uri_key(root, t["data"]["image"]) for t in tasks)
        return [uri_key(root, t["data"]["image"]) for t in tasks]
    if fmt == "coco":
        images = json.loads(text)["images"]
        assert all(i["file_name"] == uri_key(root, i["coco_url"]) for i in images)
        return [uri_key(root, i["coco_url"]) for i in images]
    if fmt == "filenames":
        lines = text.split("\n")
        assert lines[-1] == ""
        return lines[:-1]
    if fmt == "labelbox":
        rows = json.loads(text)
        assert all(r["global_key"] == uri_key(root, r["row_data"]) for r in rows)
        return [r["global_key"] for r in rows]
    raise AssertionError(fmt)


@pytest.mark.parametrize("store", ["local", "s3_bucket"])
def test_hostile_keys_round_trip_through_every_format(store, request, tmp_path, digits, capsys) -> None:
    if store == "local":
        source = tmp_path / "images"
        for key in HOSTILE_KEYS:
            (source / key).parent.mkdir(parents=True, exist_ok=True)
            (source / key).write_bytes(key.encode())
        pool_uri, creds, datasource_uri = str(tmp_path / "pool"), None, str(source)
    else:
        bucket = request.getfixturevalue(store)
        pool_uri, creds, datasource_uri = bucket.uri + "/pool", bucket.credentials, bucket.uri + "/raw images"
    pool = _pool_with_keys(pool_uri, creds, digits, datasource_uri, HOSTILE_KEYS)
    root = root_uri(datasource_uri)
    records = export_records(pool, "hostile")
    assert [r.key for r in records] == HOSTILE_KEYS  # pick order
    for fmt in EXPORT_FORMATS:
        if fmt == "filenames" or (fmt == "list" and store != "local"):  # (raw keys: a line break cannot be a line)
            with pytest.raises(DatapoolError, match="line break in their key"):
                render(records, "hostile", fmt)
            continue
        text = render(records, "hostile", fmt)
        assert _keys_back(fmt, text, root) == HOSTILE_KEYS, fmt
        if fmt == "list":
            assert text.count("\n") == len(HOSTILE_KEYS)  # one line per sample
            for line in text.splitlines():
                parts = urlsplit(line)
                assert not parts.query and not parts.fragment and " " not in line and "\r" not in line
                assert line.startswith(root) and "/../" not in unquote(parts.path)
    if store == "local":
        # A consumer that decodes the file URI opens exactly the exported file, never another one.
        for r in records:
            path = Path(unquote(urlsplit(r.uri).path))
            assert path.read_bytes() == r.key.encode() and path.resolve().is_relative_to(source.resolve())
        # The CLI writes the same documents.
        for fmt in (f for f in EXPORT_FORMATS if f != "filenames"):
            out = tmp_path / f"export.{fmt}"
            assert main(["datapool", "export", pool_uri, "--tag", "hostile", "--format", fmt, "--out", str(out)]) == 0
            text = out.read_bytes().decode()
            assert _keys_back(fmt, text, root) == HOSTILE_KEYS
        capsys.readouterr()


def test_keys_that_are_not_file_names_are_refused_naming_the_key() -> None:
    for bad in ("../etc/passwd", "a/../../b", "/abs.png", "a//b.png", "./a.png", ""):
        with pytest.raises(DatapoolError, match="cannot be exported"):
            key_uri("file:///data/", bad)
    with pytest.raises(DatapoolError, match="relative path"):
        root_uri("relative/dir")
    # Object stores' tools read the raw key; a file:// URI is percent-encoded (RFC 8089)
    assert key_uri("s3://b/p/", "%2e%2e/x y#?.png") == "s3://b/p/%2e%2e/x y#?.png"
    assert key_uri("file:///data/", "%2e%2e/x y#?.png") == "file:///data/%252e%252e/x%20y%23%3F.png"
