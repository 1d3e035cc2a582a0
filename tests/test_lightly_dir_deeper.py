"""A ``.lightly/`` file one or more folders *below* where Lightly looks for it: the datasource re-pointed to a
subfolder (Lightly's docs warn about it: key ``x.png``, file ``.lightly/metadata/images/x.json``, made when the
datasource was the parent folder and the key ``images/x.png``). Its fields took their ``defaultValue`` (its
predictions were "missing") without a word; each sample now names the file and the fix, and the search lists
a bounded number of folders, never the whole ``.lightly/`` tree."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from lightly_doc_examples import METADATA_SCHEMA
from metadata.conftest import encode, make_manifest, noise_image, write_tree

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import DEEPER_FOLDERS, LightlyDir
from lightly_airflow.metadata import compute_metadata_shard
from lightly_airflow.predictions import load_predictions_shard

DOC = {"file_name": "x.png", "type": "image", "metadata": {"weather": {"temperature": 10.5}}}


def test_metadata_files_one_folder_too_deep_are_named_with_the_fix(tmp_path: Path) -> None:
    keys = ["x.png", "y.png", "nothing.png"]
    tree: dict[str, object] = {k: encode(noise_image(i, (8, 8))) for i, k in enumerate(keys)}
    tree[".lightly/metadata/schema.json"] = METADATA_SCHEMA
    for stem in ("x", "y"):  # (made when the datasource was the parent folder: the key was images/<stem>.png)
        tree[f".lightly/metadata/images/{stem}.json"] = json.dumps({**DOC, "file_name": f"images/{stem}.png"})
    write_tree(tmp_path / "bucket", tree)
    counts = compute_metadata_shard(make_manifest(tmp_path, keys, lightly_uri=str(tmp_path / "bucket")))
    rows = {r[C.KEY]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert rows["x.png"][C.metadata_column("weather.temperature")] != 10.5  # still not read: names are the contract
    errors = {e[C.KEY]: e for e in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert set(errors) == {"x.png", "y.png"}  # nothing.png has no file anywhere: Lightly's "use the defaults"
    assert errors["x.png"]["reason"].startswith(
        "no metadata file, but .lightly/metadata/images/x.json exists: it lies in images/ below the image's folder "
        "(the top of the folder); Lightly mirrors the image's folders from the datasource's root")
    assert "Rename it to .lightly/metadata/x.json" in errors["x.png"]["reason"]
    assert errors["x.png"]["path"] == ".lightly/metadata/x.json"


def test_prediction_files_deeper_are_counted_as_misnamed(tmp_path: Path) -> None:
    """Prediction files two folders below the image's (``cam/2024/day1/x.json`` for ``cam/x.png``) and one of
    many sampled keys: found for every key past the probed sample too."""
    p = ".lightly/predictions/"
    schema = {"task_type": "classification", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}
    keys = [f"cam/img-{i:03d}.png" for i in range(40)] + ["cam/none.png"]
    files: dict[str, object] = {p + "tasks.json": ["t"], p + "t/schema.json": schema}
    files.update({f"{p}t/cam/2024/day1/img-{i:03d}.json": {"file_name": k, "predictions": [
        {"category_id": 0, "probabilities": [0.5, 0.5]}]} for i, k in enumerate(keys[:-1])})
    write_tree(tmp_path / "store", files)
    counts = load_predictions_shard(make_manifest(tmp_path, keys), lightly_uri=str(tmp_path / "store"))
    assert counts["misnamed"] == len(keys) - 1 and counts["with_predictions"] == 0
    reasons = {e[C.KEY]: e["reason"] for e in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert ("but .lightly/predictions/t/cam/2024/day1/img-039.json exists: it lies in 2024/day1/ below the image's "
            "folder cam/") in reasons["cam/img-039.png"]
    assert "Rename it to .lightly/predictions/t/cam/img-039.json" in reasons["cam/img-039.png"]
    assert reasons["cam/none.png"] == "no prediction file for task 't'"


def test_the_search_lists_a_bounded_number_of_folders(tmp_path: Path, caplog: Any) -> None:
    """Many folders below (a mirrored dataset of 200 folders) and files where they belong: at most
    :data:`DEEPER_FOLDERS` listings for the whole shard, the cut said once; nothing is invented."""
    files = {f".lightly/metadata/f{i:03d}/a.json": "{}" for i in range(200)}
    files.update({f".lightly/metadata/top-{i}.json": "{}" for i in range(500)})
    write_tree(tmp_path, files)
    folder = LightlyDir(str(tmp_path))
    keys = [f"missing-{i}.png" for i in range(300)] + [f"f{i:03d}/gone.png" for i in range(200)]
    with caplog.at_level(logging.INFO, logger="lightly_airflow.lightly_dir"):
        assert folder.find_misnamed("metadata", keys) == {}
    assert folder.folders_listed == DEEPER_FOLDERS
    assert caplog.text.count("looked for misplaced .lightly/ files in") == 1


def test_on_s3_too(s3_bucket: Any) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    client.put_object(Bucket=s3_bucket.name, Key="ds/.lightly/metadata/images/x.json", Body=b"{}")
    folder = LightlyDir(f"{s3_bucket.uri}/ds", s3_bucket.credentials)
    found = folder.find_misnamed("metadata", ["x.png", "y.png"])
    assert list(found) == ["x.png"] and found["x.png"][0] == "metadata/images/x.json"


def test_a_folder_a_read_found_files_in_is_not_listed(tmp_path: Path) -> None:
    """The shard read files of other keys in the key's own folder: the files are at the right level there (a
    folder that may hold 100,000: listing it for each shard cost ~100 ms), so nothing below it is looked for."""
    files = {f".lightly/metadata/img-{i:04d}.json": "{}" for i in range(2000)}
    files[".lightly/metadata/old/gone.json"] = "{}"
    write_tree(tmp_path, files)
    folder = LightlyDir(str(tmp_path))
    got = folder.read_many(["metadata/img-0000.json", "metadata/gone.json"])
    assert got["metadata/gone.json"] is None
    assert folder.find_misnamed("metadata", ["gone.png"]) == {}
    assert folder.folders_listed == 0
    fresh = LightlyDir(str(tmp_path))  # (no file read: the key's folder is listed, and old/ below it)
    assert fresh.find_misnamed("metadata", ["gone.png"])["gone.png"][0] == "metadata/old/gone.json"


def test_a_listing_the_store_refuses_never_sinks_the_shard(tmp_path: Path, caplog: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A role that reads objects but may not list them: the search says so once and finds nothing."""
    write_tree(tmp_path, {".lightly/metadata/images/x.json": "{}"})
    folder = LightlyDir(str(tmp_path))
    folder._real_root = None  # (list through the store's client, as on an object store)

    def refused(path: str, detail: bool = True) -> list[Any]:
        raise PermissionError(f"Access Denied: s3:ListBucket on {path}")

    monkeypatch.setattr(folder.fs, "ls", refused)  # (the file system object is shared: put back after the test)
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.lightly_dir"):
        assert folder.find_misnamed("metadata", ["x.png", "y.png"]) == {}
    assert caplog.text.count("cannot list") == 1 and "Access Denied" in caplog.text
