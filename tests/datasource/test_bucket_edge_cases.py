"""A user's bucket as it really is: a datasource URI that names a file, a bucket that does not exist, a
relevant-filenames file written by ``find .`` or typed on another machine than the one that named the files."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from typing import Any

import pytest

from lightly_airflow.datasource import NewFilesQuery, find_new_files, read_bytes, read_many
from lightly_airflow.datasource.listing import list_table
from lightly_airflow.datasource.query import QueryCredentials
from lightly_airflow.datasource.relevant import RelevantFilenames, RelevantFilenamesError

from .conftest import Store, png_bytes

NFD = "cafe\u0301.jpg"  # (as a Mac names it)
NFC = "caf\u00e9.jpg"  # (as it is typed elsewhere)


def test_an_object_store_uri_that_names_a_file_is_refused_not_listed_empty(store: Store) -> None:
    store.put("images/a.jpg", png_bytes(1))
    with pytest.raises(NotADirectoryError, match=r"a\.jpg.* is a file.*point the datasource URI at"):
        list_table(f"{store.uri}/images/a.jpg", credentials=store.credentials)
    # an empty prefix stays an empty folder (a run waits for files); the folder itself lists its file
    if store.kind != "local":  # (a missing local folder is an error of its own)
        assert list_table(f"{store.uri}/empty", credentials=store.credentials).num_rows == 0
    assert list_table(f"{store.uri}/images/", credentials=store.credentials).column("key").to_pylist() == ["a.jpg"]


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure"])
def test_a_bucket_that_does_not_exist_is_named_with_the_fix(kind: str, request: pytest.FixtureRequest) -> None:
    bucket = request.getfixturevalue({"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}[kind])
    missing = f"nope-{uuid.uuid4().hex[:8]}"
    uri = bucket.uri.replace(bucket.name, missing) + "/images"
    with pytest.raises(FileNotFoundError) as info:
        list_table(uri, credentials=bucket.credentials)
    text = str(info.value)
    assert f"{uri} cannot be listed" in text and repr(missing) in text and "Fix: create it" in text
    assert "<?xml" not in text  # (Azure's whole answer was the message)


def test_relevant_lines_written_by_find_name_the_path_to_write() -> None:
    with pytest.raises(RelevantFilenamesError, match=r"line 2 .*write the path as 'sub/b\.jpg' .*find \. -type f"):
        RelevantFilenames.parse("a.jpg\r\n./sub/b.jpg\r\n")
    with pytest.raises(RelevantFilenamesError, match=r"write the path as 'sub/b\.jpg'\.$"):
        RelevantFilenames.parse("sub//b.jpg\n")
    with pytest.raises(RelevantFilenamesError) as info:
        RelevantFilenames.parse("../b.jpg\n")
    assert "write the path" not in str(info.value)  # (leaves the datasource: no path to suggest)


def test_a_name_that_differs_in_unicode_form_or_case_is_reported_with_the_key(store: Store, tmp_path: Any) -> None:
    store.put(NFD, png_bytes(1))
    store.put("IMG_2.JPG", png_bytes(2))
    store.put("c.jpg", png_bytes(3))
    store.put(".lightly/relevant.txt", f"\ufeff{NFC}\r\nimg_2.jpg\r\nc.jpg\r\nnope.jpg\r\n".encode())
    query = NewFilesQuery.build(datasource_uri=store.uri, datapool_uri=f"file://{tmp_path}/pool",
                                worker_config={"relevant_filenames_file": "relevant.txt"})
    found = find_new_files(query, QueryCredentials(datasource=store.credentials, lightly=store.credentials))
    assert found.files.column("key").to_pylist() == ["c.jpg"]
    skipped = dict(found.skips.skipped)
    assert sorted(skipped) == sorted([NFC, "img_2.jpg", "nope.jpg"])
    assert f"the datasource has no such file; it has {NFD!r}" in skipped[NFC] and "Unicode normalization" in skipped[NFC]
    assert "it has 'IMG_2.JPG', which differs in case" in skipped["img_2.jpg"]
    assert "has no such file" in skipped["nope.jpg"]


def test_keys_with_empty_or_dot_segments_are_skipped_with_the_name_to_rename_to(store: Store) -> None:
    if store.kind == "local":
        pytest.skip("a folder has no such names")
    store.put("a.jpg", b"single slash")
    store.put("/a.jpg", b"double slash")  # (ds//a.jpg: a folder prefix joined with a '/' too many)
    store.put("sub//b.jpg", b"b")
    skipped: list[tuple[str, str]] = []
    table = list_table(store.uri, credentials=store.credentials, skipped=skipped)
    assert table.column("key").to_pylist() == ["a.jpg"]  # (never ds//a.jpg's key read with ds/a.jpg's bytes)
    reasons = dict(skipped)
    assert sorted(reasons) == ["/a.jpg", "sub//b.jpg"]
    assert "rename the object to 'sub/b.jpg'" in reasons["sub//b.jpg"] and "path segment" in reasons["/a.jpg"]


def test_a_backslash_is_part_of_a_name_the_reader_reads(store: Store) -> None:
    if store.kind == "azure":
        pytest.skip("Azure turns '\\' into '/' in blob names")
    store.put("back\\slash.jpg", b"bytes")
    keys = list_table(store.uri, credentials=store.credentials).column("key").to_pylist()
    assert keys == ["back\\slash.jpg"]
    assert read_bytes(store.uri, keys[0], store.credentials) == b"bytes"
    assert read_many(store.uri, keys, store.credentials) == {keys[0]: b"bytes"}


def test_a_wrong_account_key_is_a_permission_error_with_the_fix(azure_container: Any) -> None:
    wrong = dataclasses.replace(azure_container.credentials, account_key=base64.b64encode(b"0" * 64).decode())
    with pytest.raises(PermissionError) as info:
        list_table(f"{azure_container.uri}/images", credentials=wrong)
    text = str(info.value)
    assert f"{azure_container.uri}/images cannot be listed" in text and "Fix: " in text and "<?xml" not in text


def test_lightly_files_named_in_the_other_unicode_form_are_found_and_named(store: Store) -> None:
    from lightly_airflow.lightly_dir import LightlyDir

    store.put(f"sp ace/{NFD}", png_bytes(1))
    store.put(f".lightly/metadata/sp ace/{NFC[:-4]}.json", b'{"file_name": "x", "type": "image", "metadata": {}}')
    folder = LightlyDir(store.uri, store.credentials)
    assert folder.read_bytes(f"metadata/sp ace/{NFD[:-4]}.json") is None  # (Lightly's name: the key's own bytes)
    found = folder.find_misnamed("metadata", [f"sp ace/{NFD}"])
    assert found[f"sp ace/{NFD}"][0] == f"metadata/sp ace/{NFC[:-4]}.json"
    assert "Unicode normalization form (NFC)" in found[f"sp ace/{NFD}"][1]


def test_a_name_with_a_tab_is_skipped_with_the_name_to_rename_to(store: Store) -> None:
    if store.kind == "azure":
        pytest.skip("adlfs drops the tab on upload too (the Azure listing is checked by the same filter)")
    store.put("tab\there.jpg", b"tab")
    store.put("tabhere.jpg", b"no tab")  # (what a URL parser reads for it)
    skipped: list[tuple[str, str]] = []
    keys = list_table(store.uri, credentials=store.credentials, skipped=skipped).column("key").to_pylist()
    assert keys == ["tabhere.jpg"]
    assert skipped == [("tab\there.jpg", skipped[0][1])] and "rename it to 'tab here.jpg'" in skipped[0][1]


def test_the_list_command_names_the_files_a_relevant_file_lists_that_are_missing(tmp_path: Any, capsys: Any) -> None:
    from lightly_airflow.cli import main

    root = tmp_path / "ds"
    root.mkdir()
    (root / NFD).write_bytes(png_bytes(1))
    (root / "b.jpg").write_bytes(png_bytes(2))
    rel = tmp_path / "relevant.txt"
    rel.write_text(f"{NFC}\nb.jpg\nnope.jpg\n", encoding="utf-8")
    assert main(["list", str(root), "--relevant-filenames", str(rel)]) == 0
    captured = capsys.readouterr()
    assert [line.split("  ")[-1] for line in captured.out.splitlines()] == ["b.jpg"]
    assert f"not listed: {NFC!r}: " in captured.err and f"it has {NFD!r}" in captured.err
    assert "not listed: 'nope.jpg': " in captured.err and "no such file" in captured.err
