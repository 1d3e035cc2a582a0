"""``datapool export`` hands object-store files to their tools: an exported ``s3://`` URI carries the key as it is
(``frame 11.jpg``, not ``frame%2011.jpg``), so s3fs and ``pyarrow.fs.S3FileSystem`` open exactly the exported file
(S3 on moto); a ``file://`` URI stays percent-encoded (RFC 8089) and ``url2pathname`` opens it. Viewable copies and
video frame PNGs get their URIs from the same function."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.errors import DatapoolError
from lightly_airflow.datapool.export import export_records, render, root_uri, uri_key

from .conftest import DIM, MODEL, run_rows
from .test_export_copies import halves, phone_heic

#: keys that broke the hand-off: a space, '+', '%', '#', '?', non-ASCII, and a key that looks encoded already
KEYS = ["imgs/city/frame 11.jpg", "a+b/plus+sign.jpg", "pct/100%.jpg", "h/frag#top.jpg", "q/what?x=1&y=2.jpg",
        "uni/ünïcödé 日本 🐱.jpg", "looks/encoded%20already.jpg", "plain/ok.jpg"]
FORMATS = ("list", "csv", "label-studio", "coco")


def _commit(pool: Datapool, digits: Any, keys: list[str], datasource: str, *, video: list[str | None] | None = None) -> None:
    rows = run_rows(digits, range(len(keys)), picks=list(range(len(keys))))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    if video is not None:
        rows = rows.append_column(C.VIDEO, pa.array(video, pa.string()))
    pool.commit(rows, run_id="r1", dag_id="curate", tag="t1", config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=None, datasource_uri=datasource)


def _uris(fmt: str, text: str) -> list[str]:
    """Each exported URI, read from the document as its consumer reads it."""
    if fmt == "list":
        return text.split("\n")[:-1]
    if fmt == "csv":
        return [r["uri"] for r in csv.DictReader(io.StringIO(text, newline=""))]
    if fmt == "label-studio":
        return [t["data"]["image"] for t in json.loads(text)]
    return [i["coco_url"] for i in json.loads(text)["images"]]


def _s3_openers(bucket: Any) -> tuple[Any, Any]:
    """The bytes of an ``s3://`` URI through s3fs, and through pyarrow's S3 filesystem (``bucket/key``)."""
    import pyarrow.fs as pafs
    import s3fs

    creds = bucket.credentials
    fs = s3fs.S3FileSystem(key=creds.access_key_id, secret=creds.secret_access_key,
                           client_kwargs={"endpoint_url": creds.endpoint_url, "region_name": "us-east-1"})
    fs.invalidate_cache()
    scheme, _, host = creds.endpoint_url.partition("://")
    arrow = pafs.S3FileSystem(access_key=creds.access_key_id, secret_key=creds.secret_access_key,
                              endpoint_override=host, scheme=scheme, region="us-east-1")

    def with_s3fs(uri: str) -> bytes:
        data: bytes = fs.cat_file(uri)
        return data

    def with_pyarrow(uri: str) -> bytes:
        assert uri.startswith("s3://")
        with arrow.open_input_stream(uri[len("s3://"):]) as fh:
            data: bytes = fh.read()
        return data

    return with_s3fs, with_pyarrow


def _s3_client(bucket: Any) -> Any:
    import boto3

    c = bucket.credentials
    return boto3.client("s3", endpoint_url=c.endpoint_url, aws_access_key_id=c.access_key_id,
                        aws_secret_access_key=c.secret_access_key, region_name="us-east-1")


def test_s3_exports_carry_raw_keys_that_s3fs_and_pyarrow_open(tmp_path: Path, s3_bucket: Any, digits: Any,
                                                              capsys: Any) -> None:
    folder = "data sets/ds2+x"  # the datasource folder has a space and a '+' too
    client = _s3_client(s3_bucket)
    content = {k: f"bytes of {k}".encode() for k in KEYS}
    for k, data in content.items():
        client.put_object(Bucket=s3_bucket.name, Key=f"{folder}/{k}", Body=data)
    pool_uri = str(tmp_path / "pool")
    pool = Datapool(pool_uri)
    datasource = f"{s3_bucket.uri}/{folder}"
    _commit(pool, digits, KEYS, datasource)
    root = root_uri(datasource)
    assert root == f"s3://{s3_bucket.name}/data sets/ds2+x/"
    with_s3fs, with_pyarrow = _s3_openers(s3_bucket)
    opts = json.dumps(s3_bucket.credentials.to_dict())
    for fmt in FORMATS:
        out = tmp_path / f"export-{fmt}"
        args = ["datapool", "export", pool_uri, "--tag", "t1", "--format", fmt, "--out", str(out)]
        if fmt == "csv":  # (and each exported file checked now: all there, none named gone)
            args += ["--check-files", "--datasource-storage-options", opts]
        assert main(args) == 0, capsys.readouterr().err
        uris = _uris(fmt, out.read_text(encoding="utf-8"))
        assert uris == [root + k for k in KEYS], fmt  # the raw key, in pick order
        assert "s3://" + s3_bucket.name + "/data sets/ds2+x/imgs/city/frame 11.jpg" in uris
        for key, uri in zip(KEYS, uris, strict=True):
            assert with_s3fs(uri) == content[key], (fmt, uri)
            assert with_pyarrow(uri) == content[key], (fmt, uri)
            assert uri_key(root, uri) == key
    capsys.readouterr()
    doc = json.loads((tmp_path / "export-coco").read_text())
    assert [i["file_name"] for i in doc["images"]] == KEYS  # COCO's file_name: the key, relative to the root
    tasks = json.loads((tmp_path / "export-label-studio").read_text())
    assert [t["meta"]["key"] for t in tasks] == KEYS and all(t["meta"]["uri"] == t["data"]["image"] for t in tasks)

    # --check-files checks each file by its raw key ('#' and '?' are no fragment or query to the store): all there,
    # then exactly the two deleted ones gone
    from lightly_airflow.datapool.export import gone_exports

    assert gone_exports(pool, export_records(pool, "t1"), check_files=True, credentials=s3_bucket.credentials).uris == []
    client.delete_object(Bucket=s3_bucket.name, Key=f"{folder}/h/frag#top.jpg")
    client.delete_object(Bucket=s3_bucket.name, Key=f"{folder}/q/what?x=1&y=2.jpg")
    gone = gone_exports(pool, export_records(pool, "t1"), check_files=True, credentials=s3_bucket.credentials)
    assert gone.uris == [root + "h/frag#top.jpg", root + "q/what?x=1&y=2.jpg"]


def test_file_exports_stay_percent_encoded_and_url2pathname_opens_them(tmp_path: Path, digits: Any) -> None:
    source = tmp_path / "data sets" / "ds2+x"
    for k in KEYS:
        (source / k).parent.mkdir(parents=True, exist_ok=True)
        (source / k).write_bytes(f"bytes of {k}".encode())
    pool = Datapool(str(tmp_path / "pool"))
    _commit(pool, digits, KEYS, str(source))
    records = export_records(pool, "t1")
    for fmt in FORMATS:
        uris = _uris(fmt, render(records, "t1", fmt))
        assert uris[0].endswith("/data%20sets/ds2%2Bx/imgs/city/frame%2011.jpg"), uris[0]
        for key, uri in zip(KEYS, uris, strict=True):
            parts = urlsplit(uri)
            assert parts.scheme == "file" and not parts.query and not parts.fragment and " " not in uri
            assert Path(url2pathname(parts.path)).read_bytes() == f"bytes of {key}".encode(), uri


def test_viewable_copies_and_frame_pngs_on_s3_carry_raw_keys(tmp_path: Path, s3_bucket: Any, digits: Any) -> None:
    """A HEIC with '#', '?' and a space in its key is copied to S3 under the raw key and exported as that copy's
    raw URI; a selected video frame is exported as its PNG in ``.lightly/frames/`` under the raw key."""
    from PIL import Image

    from lightly_airflow.video.export import frame_png_uri

    client = _s3_client(s3_bucket)
    heic_key, frame_key = "phone/IMG #1 ?x=1 ü.HEIC", "clips/street 1+2.mp4/frame 000007.png"
    client.put_object(Bucket=s3_bucket.name, Key=f"src/{heic_key}", Body=phone_heic(halves((200, 30, 30), (30, 30, 200))))
    png = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(png, format="PNG")
    lightly = f"{s3_bucket.uri}/lightly out"
    frame_at = frame_png_uri(lightly, frame_key)
    client.put_object(Bucket=s3_bucket.name, Key=frame_at.split("/", 3)[3], Body=png.getvalue())
    pool = Datapool(str(tmp_path / "pool"))
    _commit(pool, digits, [heic_key, frame_key], f"{s3_bucket.uri}/src", video=[None, "clips/street 1+2.mp4"])
    copies = f"{s3_bucket.uri}/copies here"
    records = export_records(pool, "t1", lightly_uri=lightly, viewable_copies=copies,
                             datasource_credentials=s3_bucket.credentials, copies_credentials=s3_bucket.credentials)
    assert [r.uri for r in records] == [f"{copies}/{heic_key}.jpg", frame_at]
    with_s3fs, with_pyarrow = _s3_openers(s3_bucket)
    for opener in (with_s3fs, with_pyarrow):
        copy = Image.open(io.BytesIO(opener(records[0].uri)))
        assert copy.format == "JPEG" and copy.size == (64, 32)  # upright: the phone's irot applied
        assert opener(records[1].uri) == png.getvalue()


def test_a_raw_key_with_a_line_break_is_refused_in_a_list_and_kept_exact_elsewhere(tmp_path: Path, digits: Any) -> None:
    keys = ["ok/a b.png", "nl/a\nfile:/etc/passwd.png"]
    pool = Datapool(str(tmp_path / "pool"))
    _commit(pool, digits, keys, "s3://bucket/raw")
    records = export_records(pool, "t1")
    with pytest.raises(DatapoolError, match=r"1 of the 2 samples .* line break .*'nl/a\\nfile:/etc/passwd.png'"):
        render(records, "t1", "list")
    for fmt in ("csv", "label-studio", "coco"):
        assert _uris(fmt, render(records, "t1", fmt)) == ["s3://bucket/raw/" + k for k in keys]
