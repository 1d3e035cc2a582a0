"""Files deleted from the datasource after a run processed them are counted by the next listing (never silently),
and only those: a key a filter leaves out, another datasource's key, an object row or a listed video's frames
are not gone."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datapool.conftest import DIM, MODEL, run_rows

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.datapool import Datapool
from lightly_airflow.datasource import NewFilesQuery, find_new_files
from lightly_airflow.datasource.gone import GONE_FILE, gone_files


def commit(pool_uri: str, digits: Any, keys: list[str], *, datasource: str, run_id: str, picks: tuple[int, ...] = (),
           extra: dict[str, pa.Array] | None = None) -> None:
    """One committed run whose rows have ``keys`` (``picks``: indices of the selected ones, in pick order)."""
    rows = run_rows(digits, range(len(keys)), picks=list(picks))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    for name, values in (extra or {}).items():
        rows = rows.append_column(name, values)
    pool = Datapool(pool_uri)
    pool.commit(rows, run_id=run_id, dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=pool.version(), datasource_uri=datasource)


def put(root: Path, *keys: str) -> None:
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(key.encode())


def gone_of(src: Path, pool: Path, **query: Any) -> Any:
    q = NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool}", **query)
    snapshot = Datapool(q.datapool_uri).snapshot()
    found = find_new_files(q, known=lambda _u, _c: snapshot.known_files())
    return gone_files(found, snapshot)


KEYS = ["a/1.png", "a/2.png", "b/3.jpg", "b/4.jpg"]


def test_deleted_files_are_counted_selected_first_and_logged(tmp_path: Path, digits: Any, caplog: Any) -> None:
    src, pool = tmp_path / "src", tmp_path / "pool"
    put(src, *KEYS)
    commit(str(pool), digits, KEYS, datasource=str(src), run_id="r1", picks=(3,))
    assert gone_of(src, pool).count == 0
    (src / "a/2.png").unlink()
    (src / "b/4.jpg").unlink()
    with caplog.at_level(logging.WARNING):
        gone = gone_of(src, pool)
    assert gone.keys == ["b/4.jpg", "a/2.png"]  # the selected one first
    assert (gone.count, gone.samples, gone.selected) == (2, 2, 1)
    assert "2 files the datapool holds (2 samples, 1 of them selected) are no longer in the datasource" in caplog.text
    assert "'b/4.jpg'" in caplog.text
    (src / "b/4.jpg").write_bytes((src / "a/1.png").read_bytes())  # (back: one file gone, said in the singular)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert gone_of(src, pool).count == 1
    assert "1 file the datapool holds (1 sample, 0 of them selected) is no longer in the datasource" in caplog.text


def test_keys_only_filtered_out_are_not_gone(tmp_path: Path, digits: Any) -> None:
    """An extension this run does not list, a relevant-filenames file, OS files: not listed, yet present."""
    src, pool = tmp_path / "src", tmp_path / "pool"
    keys = [*KEYS, "c/5.tif"]
    put(src, *keys)
    commit(str(pool), digits, keys, datasource=str(src), run_id="r1")
    assert gone_of(src, pool, extensions=("png", "jpg")).count == 0  # .tif present, just not listed
    (src / ".lightly").mkdir()
    (src / ".lightly/relevant.txt").write_text("a/*\n")
    assert gone_of(src, pool, relevant_filenames_file="relevant.txt").count == 0  # b/ not relevant
    (src / "a/1.png").unlink()
    (src / "b/3.jpg").unlink()
    (src / "c/5.tif").unlink()
    # Only a/1.png: b/3.jpg is outside the relevant files and c/5.tif has an extension the run does not list.
    assert gone_of(src, pool, relevant_filenames_file="relevant.txt", extensions=("png", "jpg")).keys == ["a/1.png"]
    assert gone_of(src, pool).keys == ["a/1.png", "b/3.jpg", "c/5.tif"]
    # A file the relevant-filenames file names exactly is gone too (the listing also reports the name unmatched).
    (src / ".lightly/relevant.txt").write_text("a/1.png\na/2.png\n")
    assert gone_of(src, pool, relevant_filenames_file="relevant.txt").keys == ["a/1.png"]


def test_other_datasources_and_prefixes_are_not_compared(tmp_path: Path, digits: Any) -> None:
    """Keys are relative to each run's datasource: a run of another bucket or of a narrower prefix is not
    compared with this listing (their keys would all look deleted)."""
    src, other, pool = tmp_path / "src", tmp_path / "other", tmp_path / "pool"
    put(src, *KEYS)
    put(other, "x/9.png")
    commit(str(pool), digits, ["x/9.png"], datasource=str(other), run_id="r0")
    commit(str(pool), digits, KEYS, datasource=str(src), run_id="r1")
    commit(str(pool), digits, ["3.jpg"], datasource=str(src / "b"), run_id="r2")  # a narrower prefix
    assert gone_of(src, pool).count == 0
    assert gone_of(src / "b", pool).count == 0
    assert gone_of(src / "a", pool).count == 0  # no run of that prefix: nothing to compare
    (src / "b/3.jpg").unlink()
    assert gone_of(src / "b", pool).keys == ["3.jpg"]
    assert gone_of(src, pool).keys == ["b/3.jpg"]


def test_a_video_counts_once_with_its_frames_and_objects_never(tmp_path: Path, digits: Any) -> None:
    src, pool = tmp_path / "src", tmp_path / "pool"
    put(src, "v/clip.mp4", "img.png")
    keys = ["v/clip-0-mp4.png", "v/clip-1-mp4.png", "v/clip-2-mp4.png", "img.png", "img.png#det#0", "img.png#det#1"]
    extra = {
        C.VIDEO: pa.array(["v/clip.mp4"] * 3 + [None] * 3, pa.string()),
        C.PARENT_KEY: pa.array([None] * 4 + ["img.png"] * 2, pa.string()),
    }
    commit(str(pool), digits, keys, datasource=str(src), run_id="r1", picks=(1,), extra=extra)
    assert gone_of(src, pool).count == 0  # frames and object ids are no keys of the datasource
    (src / "v/clip.mp4").unlink()
    gone = gone_of(src, pool)
    assert (gone.keys, gone.samples, gone.selected) == (["v/clip.mp4"], 3, 1)
    (src / "img.png").unlink()
    assert gone_of(src, pool).keys == ["v/clip.mp4", "img.png"]  # its objects are not counted


def test_skipped_entries_are_not_gone(tmp_path: Path, digits: Any) -> None:
    """A key the listing skips (a symlink to a folder, not followed) is present, not gone."""
    src, pool = tmp_path / "src", tmp_path / "pool"
    put(src, *KEYS)
    commit(str(pool), digits, [*KEYS, "linked.png"], datasource=str(src), run_id="r1")
    (src / "linked.png").symlink_to(src / "a")  # now a symlinked folder: skipped, never read
    (src / "b/3.jpg").unlink()
    assert gone_of(src, pool).keys == ["b/3.jpg"]


def test_the_list_step_carries_the_count_to_xcom_the_listing_record_and_gone_parquet(
    tmp_path: Path, digits: Any
) -> None:
    from lightly_airflow.pipeline import list_new

    src, pool = tmp_path / "src", tmp_path / "pool"
    put(src, *KEYS)
    commit(str(pool), digits, KEYS, datasource=f"file://{src}", run_id="r1", picks=(0,))
    (src / "a/1.png").unlink()
    put(src, "c/new.png")
    listed = list_new(NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool}"), run_id="r2")
    assert listed.gone == 1
    record = json.loads(Path(staging.listing_uri(str(pool), "r2")).read_text())
    assert (record["gone"], record["gone_selected"], record["gone_examples"]) == (1, 1, ["a/1.png"])
    gone_file = Path(staging.reports_dir(str(pool), "r2")) / GONE_FILE
    assert pq.read_table(gone_file).column(C.KEY).to_pylist() == ["a/1.png"]


@pytest.mark.parametrize("deleted", [False, True])
def test_a_full_run_reports_deleted_files_and_the_export_names_them(
    tmp_path: Path, deleted: bool, caplog: Any
) -> None:
    """Two runs, then files deleted (selected and not), a third run: its summary and report say so, and
    ``datapool export`` warns about the exported samples whose file is gone (and only with deletions)."""
    from datasource.helpers import image_adder, run_pipeline
    from lightly_airflow.cli import main
    from lightly_airflow.datapool.export import export_records

    src, pool = tmp_path / "src", tmp_path / "pool"
    add = image_adder(src)

    def run(run_id: str) -> Any:
        return run_pipeline(src, pool, run_id)[0]

    add(*(f"img{i}.png" for i in range(8)))
    run("r1")
    selected = [r.key for r in export_records(Datapool(f"file://{pool}"), "initial-tag")]
    unselected = sorted({f"img{i}.png" for i in range(8)} - set(selected))
    if deleted:
        for key in [selected[0], unselected[0]]:
            (src / key).unlink()
        (src / "moved").mkdir()
        (src / unselected[1]).rename(src / "moved" / unselected[1])  # a re-organisation
    add("new0.png", "new1.png")
    summary = run("r2")
    report = Path(summary.report_uri.removeprefix("file://")).read_text()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["datapool", "export", str(pool), "--tag", "initial-tag", "--out", str(tmp_path / "x.txt")]) == 0
    if not deleted:
        assert "gone" not in summary.listing and "Files gone from the datasource" not in report
        assert "no longer in the datasource" not in caplog.text
        return
    assert summary.listing["gone"] == 3 and summary.listing["gone_selected"] == 1
    assert set(summary.listing["gone_examples"]) == {selected[0], *unselected[:2]}
    assert summary.listing["gone_examples"][0] == selected[0]  # selected first
    assert summary.listing["gone_moved_examples"] == [[f"moved/{unselected[1]}", unselected[1]]]
    assert "Files gone from the datasource (3)" in report and selected[0] in report
    assert f"moved/{unselected[1]} (was {unselected[1]})" in report
    entry = Datapool(f"file://{pool}").history()[-1]
    assert entry["counts"]["gone"] == 3
    exported = (tmp_path / "x.txt").read_text().splitlines()
    assert f"file://{src}/{selected[0]}" in exported  # still exported: the pool is history
    assert f"1 of the {len(exported)} exported samples of tag 'initial-tag' point to files" in caplog.text
    assert f"{src}/{selected[0]}" in caplog.text and unselected[0] not in caplog.text


def test_on_s3_the_count_costs_no_request_to_the_datasource(s3_bucket: Any, digits: Any) -> None:
    """The listing the run makes anyway is the only look at the datasource: no HEAD per pool key, no second
    LIST; the pool is read once more (its key columns) only when a known key is not listed."""
    import boto3
    from datapool.counting_proxy import counting_proxy

    from lightly_airflow.datasource import QueryCredentials

    client = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    for key in KEYS:
        client.put_object(Bucket=s3_bucket.name, Key=f"raw/{key}", Body=key.encode())
    datasource, pool_uri = f"{s3_bucket.uri}/raw", f"{s3_bucket.uri}/pool"
    rows = run_rows(digits, range(len(KEYS)), picks=[1])
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(KEYS, pa.string()))
    Datapool(pool_uri, s3_bucket.credentials).commit(
        rows, run_id="r1", dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL, embedding_dim=DIM,
        read_version=None, datasource_uri=datasource)
    client.delete_object(Bucket=s3_bucket.name, Key="raw/a/2.png")
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        query = NewFilesQuery(datasource_uri=datasource, datapool_uri=pool_uri)
        snapshot = Datapool(pool_uri, creds).snapshot()
        found = find_new_files(query, QueryCredentials(creds, creds, creds),
                               known=lambda _u, _c: snapshot.known_files())
        snapshot.history()
        requests.reset()
        snapshot.known_files()
        known_cost = requests.reset()  # what the listing step reads of the pool anyway
        gone = gone_files(found, snapshot)
        cost = requests.reset()
        client.put_object(Bucket=s3_bucket.name, Key="raw/a/2.png", Body=b"back")
        found = find_new_files(query, QueryCredentials(creds, creds, creds),
                               known=lambda _u, _c: snapshot.known_files())
        requests.reset()
        assert gone_files(found, snapshot).count == 0
        nothing_gone = requests.reset()
    assert (gone.keys, gone.selected) == (["a/2.png"], 1)
    assert cost.get("LIST", 0) == 0 and cost.get("HEAD", 0) == 0 and cost.get("PUT", 0) == 0, cost
    assert cost["GET"] <= known_cost["GET"], (cost, known_cost)  # one more read of the pool's key columns
    assert sum(nothing_gone.values()) == 0, nothing_gone  # every known key listed: the pool is not read again
    # The list step on S3: the count in its XCom, every key in gone.parquet beside the run's report.
    from lightly_airflow.pipeline import list_new
    from lightly_airflow.storage import join_uri, read_parquet

    client.delete_object(Bucket=s3_bucket.name, Key="raw/b/3.jpg")
    client.put_object(Bucket=s3_bucket.name, Key="raw/c/new.png", Body=b"new")
    creds = QueryCredentials(s3_bucket.credentials, s3_bucket.credentials, s3_bucket.credentials)
    assert list_new(query, run_id="r2", credentials=creds).gone == 1
    record = read_parquet(join_uri(staging.reports_dir(pool_uri, "r2"), GONE_FILE), s3_bucket.credentials)
    assert record.column(C.KEY).to_pylist() == ["b/3.jpg"]
