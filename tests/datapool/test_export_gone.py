"""``datapool export`` says which exported samples' files are gone from the datasource: from the latest run's
listing record (no request to the datasource), or checked now with ``check_files``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records, gone_exports, key_uri, render, root_uri
from lightly_airflow.datasource.gone import GoneFiles, write_gone

from .conftest import DIM, MODEL, run_rows
from .counting_proxy import counting_proxy


def commit(pool: Datapool, digits: Any, keys: list[str], *, datasource: str, run_id: str,
           gone: list[str] | None = None) -> None:
    """A run of ``datasource`` selecting every key; ``gone``: what its listing found gone (as the list step
    records it: ``counts.gone`` and ``gone.parquet``)."""
    rows = run_rows(digits, range(len(keys)), picks=list(range(len(keys))))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    if gone:
        write_gone(GoneFiles(keys=gone), pool.uri, run_id, pool._credentials)
    pool.commit(rows, run_id=run_id, dag_id="curate", tag=run_id, config={},
                counts={"gone": len(gone)} if gone else {}, embedding_model=MODEL, embedding_dim=DIM,
                read_version=pool.version(), datasource_uri=datasource)


def test_export_names_the_samples_the_latest_listing_found_gone(tmp_path: Path, digits: Any, caplog: Any) -> None:
    a, b = str(tmp_path / "cam-a"), str(tmp_path / "cam-b")
    pool = Datapool(str(tmp_path / "pool"))
    keys = ["x 1.png", "y#2.png", "z.png"]
    commit(pool, digits, keys, datasource=a, run_id="r1")
    commit(pool, digits, ["x 1.png"], datasource=b, run_id="r2")  # the same key in another datasource
    commit(pool, digits, ["w.png"], datasource=a, run_id="r3", gone=["x 1.png", "y#2.png", "old.png"])
    with caplog.at_level(logging.WARNING):
        records = export_records(pool, "r1")
    gone = [key_uri(root_uri(a), "x 1.png"), key_uri(root_uri(a), "y#2.png")]
    assert [r.key for r in records] == keys  # still exported: the pool is history
    assert gone_exports(pool, records).uris == gone
    assert "2 of the 3 exported samples of tag 'r1' point to files that are no longer in the datasource" in caplog.text
    assert "run r3" in caplog.text and gone[0] in caplog.text
    # cam-b's x 1.png is not cam-a's: its latest listing found nothing gone.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert [r.key for r in export_records(pool, "r2")] == ["x 1.png"]
    assert "no longer in the datasource" not in caplog.text
    # A later run of cam-a whose listing found nothing gone (the files were restored): nothing is named.
    commit(pool, digits, ["v.png"], datasource=a, run_id="r4")
    assert gone_exports(pool, export_records(pool, "r1")).count == 0


def test_check_files_checks_each_exported_file_now(tmp_path: Path, digits: Any) -> None:
    src = tmp_path / "src"
    keys = ["a b.png", "c#d.png", "e%20f.png", "sub/g?.png"]
    for key in keys:
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(b"x")
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, digits, keys, datasource=str(src), run_id="r1")
    records = export_records(pool, "r1")
    assert gone_exports(pool, records, check_files=True).count == 0
    (src / "c#d.png").unlink()
    (src / "sub/g?.png").unlink()
    found = gone_exports(pool, records, check_files=True)
    assert (found.how, found.uris) == ("checked", [records[1].uri, records[3].uri])
    assert gone_exports(pool, records).count == 0  # no run's listing knows it yet
    assert render(records, "r1", "list").count("\n") == 4  # the document is unchanged


def test_the_listing_record_costs_no_datasource_request_and_check_files_one_per_file(s3_bucket: Any, digits: Any) -> None:
    """On S3: the default reads the pool's history and one ``gone.parquet``; ``check_files`` sends one HEAD
    per exported file (and one LIST for each missing one: s3fs looks for a folder of that name)."""
    import boto3

    datasource = f"{s3_bucket.uri}/images"
    keys = [f"img{i}.png" for i in range(6)]
    client = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    for key in keys:
        client.put_object(Bucket=s3_bucket.name, Key=f"images/{key}", Body=b"x")
    pool = Datapool(f"{s3_bucket.uri}/pool", s3_bucket.credentials)
    commit(pool, digits, keys, datasource=datasource, run_id="r1")
    client.delete_object(Bucket=s3_bucket.name, Key="images/img2.png")
    commit(pool, digits, ["new.png"], datasource=datasource, run_id="r2", gone=["img2.png"])
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        counted = Datapool(pool.uri, creds)
        records = export_records(counted, "r1")
        history = counted.history()
        requests.reset()
        assert gone_exports(counted, records, history=history).uris == [records[2].uri]
        listing = requests.reset()
        assert gone_exports(counted, records, check_files=True, credentials=creds).uris == [records[2].uri]
        checked = requests.reset()
    # (the HEAD and GET: the gone.parquet of run r2; no request to the datasource, none to the log again)
    assert listing == {"HEAD": 1, "GET": 1}, listing
    assert checked["HEAD"] == len(keys) and checked.get("LIST", 0) <= 1 and checked.get("GET", 0) == 0, checked


def test_the_cli_export_checks_files_with_check_files(tmp_path: Path, digits: Any, caplog: Any) -> None:
    from lightly_airflow.cli import main

    src = tmp_path / "src"
    src.mkdir()
    for key in ("a.png", "b.png"):
        (src / key).write_bytes(b"x")
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, digits, ["a.png", "b.png"], datasource=str(src), run_id="r1")
    (src / "b.png").unlink()
    out = tmp_path / "files.txt"
    with caplog.at_level(logging.WARNING):
        assert main(["datapool", "export", pool.uri, "--tag", "r1", "--out", str(out)]) == 0
    assert "no longer in the datasource" not in caplog.text  # (no run's listing knows it yet)
    with caplog.at_level(logging.WARNING):
        assert main(["datapool", "export", pool.uri, "--tag", "r1", "--out", str(out), "--check-files"]) == 0
    assert "1 of the 2 exported samples of tag 'r1' point to files that are no longer in the datasource (checked now)" \
        in caplog.text and "b.png" in caplog.text
    assert out.read_text().count("\n") == 2  # still exported


def test_export_says_which_images_a_browser_cannot_show(tmp_path: Path, digits: Any, caplog: Any) -> None:
    """iPhone photos (HEIC) and TIFF scans are exported as they are, but a labelling tool in the browser shows them
    blank (browsers other than Safari decode neither): the export said nothing. It names them and what to do."""
    pool = Datapool(str(tmp_path / "pool"))
    keys = ["IMG_0001.HEIC", "scan.tif", "photo.jpg", "modern.avif", "notes.heic.txt"]
    commit(pool, digits, keys, datasource=str(tmp_path / "phone"), run_id="r1")
    with caplog.at_level(logging.WARNING):
        records = export_records(pool, "r1")
    assert [r.key for r in records] == keys  # exported all the same
    assert "2 of the 5 exported samples of tag 'r1' are HEIC/TIFF images" in caplog.text, caplog.text
    assert "IMG_0001.HEIC" in caplog.text and "magick mogrify" in caplog.text
    caplog.clear()
    commit(pool, digits, ["photo.jpg"], datasource=str(tmp_path / "phone"), run_id="r2")
    with caplog.at_level(logging.WARNING):
        export_records(pool, "r2")
    assert "cannot show" not in caplog.text
