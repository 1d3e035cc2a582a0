"""Readers of the .lightly/ folder."""

from __future__ import annotations

import pytest

from lightly_airflow.lightly_dir import (
    LightlyDir,
    LightlyFileError,
    check_relative_file_name,
    json_relpath,
    key_stem,
    lightly_root,
    parse_frame_name,
    read_lightly_file,
    read_relevant_filenames,
)


def test_paths():
    assert lightly_root("s3://b/p/") == "s3://b/p/.lightly"
    assert lightly_root("s3://b/p/.lightly") == "s3://b/p/.lightly"
    assert key_stem("a/b/img.1.png") == "a/b/img.1" and key_stem("noext") == "noext" and key_stem(".hidden") == ".hidden"
    assert json_relpath("predictions/cls", "sub/x.jpg") == "predictions/cls/sub/x.json"
    assert parse_frame_name("sub/video_1-099-mp4.png") == ("sub/video_1.mp4", 99)
    assert parse_frame_name("sub/photo-12.png") is None


@pytest.mark.parametrize("name", ["../a.png", "/abs.png", "a/../../b.png", "s3://x/a.png", "a\\b.png", "", 3, "a//b.png"])
def test_file_names_outside_the_datasource_are_rejected(name):
    assert check_relative_file_name(name) is not None


def test_reads_and_caches(tmp_path):
    root = tmp_path / ".lightly"
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "a.json").write_text('{"x": 1}')
    (root / "bad.json").write_text("{oops")
    (root / "relevant.txt").write_text("a/*\n!a/b.png\n")
    folder = LightlyDir(str(tmp_path))
    assert folder.read_json("metadata/a.json") == {"x": 1}
    (root / "metadata" / "a.json").write_text('{"x": 2}')
    assert folder.read_json("metadata/a.json") == {"x": 1}  # schema files are read once per shard
    assert folder.read_bytes("missing.json") is None
    with pytest.raises(FileNotFoundError):
        folder.read_json("missing.json")
    with pytest.raises(LightlyFileError, match="bad.json: invalid JSON"):
        folder.read_json("bad.json")
    got = folder.read_many(["metadata/a.json", "nope.json"])
    assert got == {"metadata/a.json": b'{"x": 2}', "nope.json": None}
    assert read_lightly_file(str(root), "metadata/a.json") == b'{"x": 2}'
    assert read_relevant_filenames(str(tmp_path), "relevant.txt") == "a/*\n!a/b.png\n"
    assert read_relevant_filenames(str(tmp_path), ".lightly/relevant.txt").startswith("a/*")
    with pytest.raises(FileNotFoundError, match="relevant_filenames_file"):
        read_relevant_filenames(str(tmp_path), "other.txt")
    with pytest.raises(ValueError, match="must not contain"):
        read_relevant_filenames(str(tmp_path), "../etc/passwd")


@pytest.mark.emulator
def test_reads_from_s3_and_metadata_shard_over_s3(s3_bucket, tmp_path):
    """.lightly/ and the images on an S3 emulator, the staging area local: batched reads, missing files."""
    import json

    import pyarrow.parquet as pq
    from metadata.conftest import encode, make_manifest, noise_image

    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.storage import filesystem

    fs, path = filesystem(s3_bucket.uri, s3_bucket.credentials)
    fs.pipe(f"{path}/.lightly/predictions/tasks.json", b'["cls"]')
    fs.pipe(f"{path}/.lightly/metadata/schema.json", json.dumps([{"name": "n", "path": "n", "valueDataType": "NUMERIC_INT"}]).encode())
    fs.pipe(f"{path}/.lightly/metadata/a.json", b'{"metadata": {"n": 5}}')
    fs.pipe(f"{path}/a.png", encode(noise_image(0, (8, 8))))
    fs.pipe(f"{path}/b.png", b"broken")
    folder = LightlyDir(s3_bucket.uri, s3_bucket.credentials)
    assert folder.read_json("predictions/tasks.json") == ["cls"]
    assert folder.read_many(["predictions/tasks.json", "x.json"]) == {"predictions/tasks.json": b'["cls"]', "x.json": None}

    manifest = make_manifest(tmp_path, ["a.png", "b.png", "gone.png"], lightly_uri=s3_bucket.uri)
    table = pq.read_table(manifest)
    meta = dict(table.schema.metadata)
    meta[b"lightly.datasource_uri"] = json.dumps(s3_bucket.uri).encode()
    pq.write_table(table.replace_schema_metadata(meta), manifest)
    counts = compute_metadata_shard(
        manifest, datasource_credentials=s3_bucket.credentials, lightly_credentials=s3_bucket.credentials
    )
    assert (counts["ok"], counts["corrupt"], counts["missing"]) == (1, 1, 1)
    rows = {r["key"]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert rows["a.png"]["metadata.n"] == 5


def _datasource_with_relevant_file(tmp_path, content: bytes):
    src = tmp_path / "src"
    for key in ("image_1.png", "subdir/image_2.png", "subdir/image_3.png", "subdir/image_40.png"):
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(b"\x89PNG\r\n\x1a\n")  # listing reads names only
    (src / ".lightly").mkdir()
    (src / ".lightly" / "relevant_filenames.txt").write_bytes(content)
    from lightly_airflow.datasource import NewFilesQuery

    return NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"),
                               worker_config={"relevant_filenames_file": ".lightly/relevant_filenames.txt"})


# Lightly's documented example (first_steps.rst, "Specifying Relevant Files"), saved the way Windows tools save it:
# Notepad's "UTF-8 with BOM" and CRLF, PowerShell 5's `>` (UTF-16 LE with a BOM), and big-endian UTF-16.
RELEVANT = "image_1.png\r\nsubdir/image_2.png\r\nsubdir/image_3.png\r\n"


@pytest.mark.parametrize("encoded", [RELEVANT.encode("utf-8"), "\ufeff".encode() + RELEVANT.encode(),
                                     RELEVANT.encode("utf-16"), b"\xfe\xff" + RELEVANT.encode("utf-16-be")],
                         ids=["utf-8", "utf-8 with BOM", "utf-16 le", "utf-16 be"])
def test_relevant_filenames_file_with_a_byte_order_mark_keeps_its_first_file(tmp_path, encoded):
    """A BOM left in the text made the first line '\\ufeffimage_1.png', which matches no key: image_1.png was
    dropped from the run without a word. UTF-16 files failed with a bare UnicodeDecodeError."""
    from lightly_airflow.datasource import find_new_files

    found = find_new_files(_datasource_with_relevant_file(tmp_path, encoded))
    assert sorted(found.files.column("key").to_pylist()) == ["image_1.png", "subdir/image_2.png", "subdir/image_3.png"]


def test_relevant_filenames_file_in_another_encoding_fails_the_first_task_naming_it(tmp_path):
    from lightly_airflow.pipeline import ParamError, list_new

    query = _datasource_with_relevant_file(tmp_path, "image_1.png\nsubdir/caf\xe9.png\n".encode("latin-1"))
    with pytest.raises(ParamError) as err:
        list_new(query, run_id="r1")
    assert err.value.param == "worker_config.relevant_filenames_file"
    assert "relevant_filenames.txt: not UTF-8 text" in str(err.value) and "save it as UTF-8" in str(err.value)


def test_relevant_files_that_the_datasource_lacks_are_reported_not_dropped(tmp_path):
    """'image_1.PNG' (another case), 'subdir/image_9.png' (deleted) and 'notes.txt' (not an image) were listed
    in the relevant-filenames file and silently matched nothing; now each is a skipped listing entry with the
    reason, logged, and written with the run's listing skips (problems file and report)."""
    from lightly_airflow import staging
    from lightly_airflow.datasource import find_new_files
    from lightly_airflow.pipeline import list_new

    query = _datasource_with_relevant_file(
        tmp_path, b"image_1.PNG\nsubdir/image_2.png\nsubdir/image_9.png\nnotes.txt\nsubdir/image_4*\n")
    found = find_new_files(query)
    assert sorted(found.files.column("key").to_pylist()) == ["subdir/image_2.png", "subdir/image_40.png"]
    assert sorted(k for k, _ in found.skips.skipped) == ["image_1.PNG", "notes.txt", "subdir/image_9.png"]
    assert all("listed in .lightly/relevant_filenames.txt, but the datasource has no such file" in r
               for _, r in found.skips.skipped)
    list_new(query, run_id="r1")
    written = staging.read_listing_skips(query.datapool_uri, "r1")
    assert written["skipped_count"] == 3 and sorted(e[0] for e in written["skipped"])[0] == "image_1.PNG"


def test_a_relevant_os_metadata_file_is_named_as_such(tmp_path):
    """A relevant-filenames file naming a file the listing keeps out as OS or tool metadata (a hidden folder,
    an AppleDouble sidecar) says so, instead of claiming the datasource has no such file."""
    from lightly_airflow.datasource import find_new_files

    query = _datasource_with_relevant_file(tmp_path, b"image_1.png\n.cache/image_5.png\nsubdir/._image_2.png\n")
    src = tmp_path / "src"
    for key in (".cache/image_5.png", "subdir/._image_2.png"):
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(b"\x89PNG\r\n\x1a\n")
    found = find_new_files(query)
    assert found.files.column("key").to_pylist() == ["image_1.png"]
    reasons = dict(found.skips.skipped)
    assert sorted(reasons) == [".cache/image_5.png", "subdir/._image_2.png"]
    assert all("OS or tool metadata file or lies in a hidden folder" in r for r in reasons.values())
    assert found.skips.os_files == 2
