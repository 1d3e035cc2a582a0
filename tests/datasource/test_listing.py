"""The same listing behaviour on local disk, S3 (moto), GCS (fake-gcs-server) and Azure (Azurite)."""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pytest

from lightly_airflow.columns import ETAG, KEY, MTIME, SIZE
from lightly_airflow.datasource import (
    MANIFEST_SCHEMA,
    MissingFileError,
    list_files,
    list_table,
    new_files,
    read_bytes,
    read_manifest,
    read_many,
    write_manifests,
)

from .conftest import Store, png_bytes

FILES = {
    "top.png": png_bytes(1),
    "a/b/deep.JPG": png_bytes(2),
    "a/b/c/d/deeper.jpeg": png_bytes(3),
    "unicode/Ünïcødé ñame.png": png_bytes(4),
    "with space/file name with spaces.Png": png_bytes(5),
    "empty/zero.png": b"",
    "frames/video_1-099-mp4.png": png_bytes(6),
    "notes.txt": b"not an image",
    "a/README.md": b"# not an image",
    ".lightly/predictions/task/top.png": png_bytes(7),
    "nested/.lightly/metadata/x.png": png_bytes(8),
}
IMAGES = sorted(k for k in FILES if not k.endswith((".txt", ".md")) and ".lightly/" not in k)


def fill(store: Store, files: dict[str, bytes] = FILES) -> None:
    for key, data in files.items():
        store.put(key, data)


def listing(store: Store, **kwargs) -> pa.Table:
    return list_table(store.uri, credentials=store.credentials, **kwargs)


def test_lists_nested_unicode_spaces_and_empty_files(store: Store) -> None:
    fill(store)
    # A sibling prefix that merely starts with the root's name is not inside the datasource.
    sibling = store.uri + "-other"
    Store(store.kind, sibling, store.credentials).put("outside.png", png_bytes(9))

    table = listing(store)
    assert table.schema.equals(MANIFEST_SCHEMA)
    assert table.column(KEY).to_pylist() == IMAGES  # sorted, relative, '/'-separated
    sizes = dict(zip(table.column(KEY).to_pylist(), table.column(SIZE).to_pylist()))
    assert sizes == {k: len(FILES[k]) for k in IMAGES}
    assert sizes["empty/zero.png"] == 0
    etags = table.column(ETAG).to_pylist()
    assert all(etags) and len(set(etags)) == len(etags)  # every file has distinct content here
    now = dt.datetime.now(dt.UTC)
    for mtime in table.column(MTIME).to_pylist():
        assert mtime.tzinfo is not None and abs((now - mtime).total_seconds()) < 3600
    # Every listed key reads back with the bytes that were written.
    for key in IMAGES:
        assert read_bytes(store.uri, key, store.credentials) == FILES[key]


def test_extensions_are_case_insensitive_and_configurable(store: Store) -> None:
    fill(store)
    only_txt = listing(store, extensions=[".TXT"])
    assert only_txt.column(KEY).to_pylist() == ["notes.txt"]
    everything = listing(store, extensions=["*"])
    assert everything.column(KEY).to_pylist() == sorted(k for k in FILES if ".lightly/" not in k)


def test_pages_are_bounded_and_complete(store: Store) -> None:
    fill(store)
    batches = list(list_files(store.uri, credentials=store.credentials, page_size=2))
    assert all(b.num_rows <= 2 for b in batches)
    assert len(batches) >= 3
    keys = [k for b in batches for k in b.column(KEY).to_pylist()]
    assert keys == IMAGES


def test_replaced_added_and_old_files_between_two_listings(store: Store) -> None:
    fill(store)
    first = listing(store)
    store.put("a/b/deep.JPG", png_bytes(20))  # replaced: new content under the same key
    store.put("later/added.png", png_bytes(21))  # added
    store.put("top.png", FILES["top.png"])  # rewritten with identical bytes
    second = listing(store)

    fresh = new_files(second, first).column(KEY).to_pylist()
    expected = {"a/b/deep.JPG", "later/added.png"}
    if store.kind == "azure":
        # Without a Content-MD5 an Azure rewrite gets a new ETag; with one (single-shot uploads) it does not.
        etag_top = second.filter(pa.compute.equal(second[KEY], "top.png"))[ETAG][0].as_py()
        if etag_top.startswith("etag:"):
            expected.add("top.png")
    assert set(fresh) == expected
    # By key only, a replaced file is not new.
    assert new_files(second, first, policy="key").column(KEY).to_pylist() == ["later/added.png"]


def test_deleted_between_listing_and_reading_is_reported(store: Store) -> None:
    fill(store)
    table = listing(store)
    store.delete("a/b/deep.JPG")
    with pytest.raises(MissingFileError) as info:
        read_bytes(store.uri, "a/b/deep.JPG", store.credentials)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.key == "a/b/deep.JPG" and "a/b/deep.JPG" in str(info.value)

    got = read_many(store.uri, table.column(KEY).to_pylist(), store.credentials)
    assert isinstance(got["a/b/deep.JPG"], MissingFileError)
    assert {k: v for k, v in got.items() if k != "a/b/deep.JPG"} == {
        k: FILES[k] for k in IMAGES if k != "a/b/deep.JPG"
    }


def test_relevant_filenames_with_excludes_and_reincludes(store: Store) -> None:
    files = {
        "keep/one.png": png_bytes(1),
        "raw/a.png": png_bytes(2),
        "raw/tmp/b.png": png_bytes(3),
        "raw/tmp/keep me.png": png_bytes(4),
        "raw/sub/c.PNG": png_bytes(5),
        "raw/sub/skip_c.png": png_bytes(6),
        "other/d.png": png_bytes(7),
        "listed/exact name.png": png_bytes(8),
    }
    fill(store, files)
    text = "\n".join(
        [
            "# comment",
            "raw/* tmp/ !tmp/keep?me.png skip_*",
            "listed/exact name.png",
            "keep/one.png",
            "",
        ]
    )
    keys = listing(store, relevant_filenames=text).column(KEY).to_pylist()
    assert keys == ["keep/one.png", "listed/exact name.png", "raw/a.png", "raw/sub/c.PNG", "raw/tmp/keep me.png"]


def test_manifests_round_trip_on_the_store(store: Store) -> None:
    fill(store)
    files = new_files(listing(store), None)
    pool = store.uri.rsplit("/", 1)[0] + "/datapool"
    uris = write_manifests(
        files, pool, "manual__2026-01-01T00:00:00+00:00", datasource_uri=store.uri,
        lightly_uri="gs://elsewhere/meta", credentials=store.credentials, min_shard_size=2,
    )
    assert len(uris) == 3  # 7 files, at least 2 per shard
    tables = [read_manifest(u, store.credentials) for u in uris]
    assert [k for m in tables for k in m.keys] == IMAGES
    assert tables[0].metadata == {"lightly.datasource_uri": store.uri, "lightly.lightly_uri": "gs://elsewhere/meta"}
    assert (tables[0].datasource_uri, tables[0].lightly_uri) == (store.uri, "gs://elsewhere/meta")
    first_bytes = store.fs.cat_file(filesystem_path(store, uris[0]))

    # A retry with fewer files rewrites shard 0 and removes the stale higher shards.
    again = write_manifests(
        files.slice(0, 2), pool, "manual__2026-01-01T00:00:00+00:00", datasource_uri=store.uri,
        lightly_uri="gs://elsewhere/meta", credentials=store.credentials, min_shard_size=2,
    )
    assert again == uris[:1]
    for stale in uris[1:]:
        with pytest.raises(FileNotFoundError):
            read_manifest(stale, store.credentials)
    # A retry with the same files writes byte-identical shards.
    write_manifests(
        files, pool, "manual__2026-01-01T00:00:00+00:00", datasource_uri=store.uri,
        lightly_uri="gs://elsewhere/meta", credentials=store.credentials, min_shard_size=2,
    )
    assert store.fs.cat_file(filesystem_path(store, uris[0])) == first_bytes


def filesystem_path(store: Store, uri: str) -> str:
    from lightly_airflow.storage import filesystem

    return filesystem(uri, store.credentials)[1]


def test_file_copied_in_with_an_old_mtime_is_new(tmp_path) -> None:
    root = tmp_path / "ds"
    (root / "a").mkdir(parents=True)
    (root / "a" / "first.png").write_bytes(png_bytes(1))
    first = list_table(str(root))
    copied = root / "a" / "copied.png"
    copied.write_bytes(png_bytes(2))
    old = dt.datetime(2001, 1, 1, tzinfo=dt.UTC).timestamp()
    os.utime(copied, (old, old))
    second = list_table(f"file://{root}")
    assert new_files(second, first).column(KEY).to_pylist() == ["a/copied.png"]
    mtime = second.filter(pa.compute.equal(second[KEY], "a/copied.png"))[MTIME][0].as_py()
    assert mtime.year == 2001


def test_local_etag_is_the_content_sha256_and_tracks_rewrites(tmp_path) -> None:
    import hashlib

    root = tmp_path / "ds"
    root.mkdir()
    path = root / "x.png"
    path.write_bytes(b"one")
    etag = list_table(str(root))[ETAG][0].as_py()
    assert etag == "sha256:" + hashlib.sha256(b"one").hexdigest()
    # Same size and mtime but different bytes: the signature (ctime/inode) changes, so the hash is recomputed.
    st = path.stat()
    path.write_bytes(b"two")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert list_table(str(root))[ETAG][0].as_py() == "sha256:" + hashlib.sha256(b"two").hexdigest()


def test_missing_local_root_and_bad_arguments(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_table(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="page_size"):
        list_table(str(tmp_path), page_size=0)
    with pytest.raises(ValueError, match="extension"):
        list_table(str(tmp_path), extensions=[""])
    with pytest.raises(ValueError, match="Unsupported URI scheme"):
        list_table("ftp://host/x")
    with pytest.raises(ValueError, match="must not contain"):
        read_bytes(str(tmp_path), "../etc/passwd")


JUNK = {
    "a/b/._deep.JPG": b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ",  # AppleDouble sidecar
    "__MACOSX/a/b/._deep.JPG": b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ",
    "__MACOSX/a/b/deep.JPG": png_bytes(2),
    "a/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "a/Thumbs.db": b"\xd0\xcf\x11\xe0",
    "Desktop.ini": b"[.ShellClassInfo]",
    ".ipynb_checkpoints/top-checkpoint.png": png_bytes(1),
    ".Trash-1000/files/old.png": png_bytes(10),
    ".git/objects/ab/cdef": b"x\x01",
    "a/@eaDir/deep.JPG/SYNOPHOTO_THUMB_XL.jpg": png_bytes(11),  # a Synology NAS' thumbnails
    "a/.#top.png": b"user@host.1234",  # an editor's lock file
}
NOT_JUNK = {  # look alike, but are images
    "a/.hidden.png": png_bytes(12),
    "x._y.png": png_bytes(13),
    "a_._b.png": png_bytes(14),
    "Thumbs.db.png": png_bytes(15),
    "Icons/icon.png": png_bytes(16),
}


def test_os_and_tool_metadata_files_are_never_samples_but_counted(store: Store) -> None:
    fill(store, {**FILES, **JUNK, **NOT_JUNK})
    for extensions in (None, ["*"]):  # not even when every file is listed
        stats: dict = {}
        table = list_table(store.uri, credentials=store.credentials, stats=stats,
                           **({"extensions": extensions} if extensions else {}))
        keys = table.column(KEY).to_pylist()
        assert not set(keys) & set(JUNK) and set(NOT_JUNK) <= set(keys)
        assert stats["os_files"] == len(JUNK)
        assert stats["os_files_examples"] == sorted(JUNK, key=str.encode)[:5]  # the first few, in key order
        assert stats["unsupported"] == (2 if extensions is None else 0)  # notes.txt, a/README.md; .lightly/ uncounted
    # With a relevant-filenames file only OS files among the relevant ones are counted.
    stats = {}
    table = listing(store, relevant_filenames="a/*", stats=stats)
    assert "a/.hidden.png" in table.column(KEY).to_pylist()
    assert stats["os_files"] == sum(k.startswith("a/") for k in JUNK)
