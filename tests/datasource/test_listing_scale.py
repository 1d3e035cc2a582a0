"""Listing work that must not grow with what a run never looks at: cached local hashes, ``.lightly/`` folders, the
names of a relevant-filenames file."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from lightly_airflow.columns import ETAG, KEY
from lightly_airflow.datasource import NewFilesQuery, QueryCredentials, find_new_files, list_table, listing
from lightly_airflow.datasource.relevant import RelevantFilenames


class CountingPool(listing.ThreadPoolExecutor):  # type: ignore[misc]
    """The listing's hash thread pool, counting the work items it is handed."""

    items = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingPool.items += 1
        return super().submit(fn, *args, **kwargs)


def test_cached_local_hashes_start_no_hash_work_and_new_ones_go_in_chunks(tmp_path, monkeypatch) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    for i in range(300):
        (root / f"img-{i:03d}.png").write_bytes(f"image {i}".encode())
    first = list_table(str(root))  # hashes every file (and caches them)
    monkeypatch.setattr(listing, "ThreadPoolExecutor", CountingPool)
    CountingPool.items = 0
    again = list_table(str(root))
    assert again.equals(first)
    assert CountingPool.items == 0  # a sensor's next poke: every hash is cached (was one future per file: 300)
    for i in range(100):
        (root / f"img-{i:03d}.png").write_bytes(f"changed {i}".encode())
    changed = list_table(str(root))
    assert CountingPool.items == 2  # 100 files to hash: two chunks of at most 64 (was 100 futures)
    import hashlib

    etags = dict(zip(changed[KEY].to_pylist(), changed[ETAG].to_pylist(), strict=True))
    assert etags["img-005.png"] == "sha256:" + hashlib.sha256(b"changed 5").hexdigest()
    assert etags["img-205.png"] == "sha256:" + hashlib.sha256(b"image 205").hexdigest()


@pytest.mark.skipif(os.name != "posix", reason="symlinks and non-UTF-8 names")
def test_lightly_folders_are_not_walked(tmp_path) -> None:
    root = tmp_path / "ds"
    for folder in (root / ".lightly" / "predictions", root / "sub" / ".lightly" / "metadata"):
        folder.mkdir(parents=True)
        (folder / "x.json").write_text("{}")
        (folder / "pic.png").write_bytes(b"png")
        os.symlink(tmp_path, folder / "outside")  # would be reported as a skipped entry if walked
        (folder / os.fsdecode(b"bad-\xff.png")).write_bytes(b"png")  # ditto: a name that is not UTF-8
    (root / "sub" / "a.png").write_bytes(b"a")
    skipped: list[tuple[str, str]] = []
    stats: dict = {}
    table = pa.Table.from_batches(list(listing.list_files(str(root), skipped=skipped, stats=stats)))
    assert table[KEY].to_pylist() == ["sub/a.png"]
    assert skipped == []  # the .lightly/ folders' entries are nobody's business: not walked, not reported
    assert stats["listed"] == 1


def test_only_the_files_the_filters_keep_are_stated(tmp_path, monkeypatch) -> None:
    """A YOLO-style folder (a label ``.txt`` beside every image) and a relevant-filenames file naming some images: the
    walk stat'ed every file, labels and unnamed images included (a system call each, most of a warm listing's time)."""
    root = tmp_path / "ds"
    for i in range(40):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "labels").mkdir(exist_ok=True)
        (root / "images" / f"{i:02d}.png").write_bytes(b"x" * (i + 1))
        (root / "labels" / f"{i:02d}.txt").write_text("0 0.5 0.5 0.1 0.1")
    (root / "readme.md").write_text("labels are YOLO")
    os.symlink(root / "images" / "01.png", root / "images" / "link.png")  # (a link inside the root: its target)
    stated: list[str] = []
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        stated.append(os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    table = list_table(str(root), relevant_filenames="images/01.png\nimages/07.png\nimages/link.png\nimages/99.png")
    assert table.column(KEY).to_pylist() == ["images/01.png", "images/07.png", "images/link.png"]
    assert table.column("size").to_pylist() == [2, 8, 2]
    files = [p for p in list(stated) if p.startswith(str(root) + os.sep) and os.path.splitext(p)[1]]
    assert sorted(set(files)) == sorted(str(root / "images" / n) for n in ("01.png", "07.png"))  # (was: all 82)
    stated.clear()
    everything = list_table(str(root))
    assert everything.num_rows == 41  # (no labels: not an image extension)
    files = [p for p in list(stated) if p.startswith(str(root) + os.sep) and os.path.splitext(p)[1]]
    assert not [p for p in files if p.endswith((".txt", ".md"))] and len(set(files)) == 40  # (the link: its target)


def test_relevant_filenames_are_parsed_and_sorted_once(tmp_path) -> None:
    root = tmp_path / "ds"
    (root / ".lightly").mkdir(parents=True)
    names = [f"img-{i:04d}.png" for i in range(2500)]
    for name in names[::2]:
        (root / name).write_bytes(name.encode())
    text = "\n".join(reversed(names)) + "\n"
    (root / ".lightly" / "relevant.txt").write_text(text)
    parsed = RelevantFilenames.parse(text)
    assert RelevantFilenames.parse(text) is parsed  # the listing, its unmatched names and gone files: one parse
    value_set = parsed.exact_array
    assert value_set.to_pylist() == sorted(names)
    query = NewFilesQuery(datasource_uri=f"file://{root}", datapool_uri=f"file://{tmp_path}/pool",
                          relevant_filenames_file="relevant.txt")
    found = find_new_files(query, QueryCredentials(), known=lambda _uri, _creds: None)
    assert found.files[KEY].to_pylist() == names[::2]
    assert [k for k, _ in found.skips.skipped] == names[1::2]  # listed by name, not in the datasource: in order
    assert parsed.exact_array is value_set  # every page masked with the one sorted array (was sorted per page)


def test_kept_hashes_hold_only_the_files_a_listing_used_and_a_broken_file_is_hashing_again(tmp_path, monkeypatch,
                                                                                           caplog) -> None:
    import hashlib

    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    root.mkdir()
    for name in ("a.png", "b.png"):
        (root / name).write_bytes(name.encode())
    (tmp_path / "other.png").write_bytes(b"other")
    monkeypatch.setattr(listing, "_HASHES", listing._HashCache())
    list_table(str(root))
    list_table(str(tmp_path))  # another folder's listing in the same process: not kept for this datasource
    cache = str(tmp_path / "hashes.parquet")
    assert listing.save_hashes(cache, [str(root)]) == 2
    assert sorted(os.path.basename(p) for p in pq.read_table(cache)["path"].to_pylist()) == ["a.png", "b.png"]
    (root / "b.png").unlink()  # a new process: a.png's hash is used, b.png's is gone, so the file is written anew
    monkeypatch.setattr(listing, "_HASHES", listing._HashCache())
    assert listing.load_hashes(cache) == 2
    assert list_table(str(root))[ETAG].to_pylist() == ["sha256:" + hashlib.sha256(b"a.png").hexdigest()]
    assert listing.save_hashes(cache, [str(root)]) == 1
    monkeypatch.setattr(listing, "_HASHES", listing._HashCache())
    assert listing.load_hashes(cache) == 1
    list_table(str(root))
    assert listing.save_hashes(cache, [str(root)]) == -1  # nothing changed: the file is left as it is
    with open(cache, "wb") as fh:
        fh.write(b"not parquet")
    assert listing.load_hashes(cache) == 0
    assert "cannot be read" in caplog.text and "hashing the datasource's files again" in caplog.text


@pytest.mark.parametrize("kind", ["s3_bucket", "gcs_bucket"])
def test_object_store_listing_skips_past_lightly_folders_and_lists_the_same_files(kind, request) -> None:
    """A page that ends inside a ``.lightly/`` folder continues after the folder's last possible key (S3 and GCS
    list in byte order): its metadata and prediction files are not fetched page by page; every other key is."""
    bucket = request.getfixturevalue(kind)
    uri = f"{bucket.uri}/ds"
    fs = listing.filesystem(uri, bucket.credentials)[0]
    root = f"{bucket.name}/ds"
    files = {f"{root}/.lightly/predictions/t/img-{i:04d}.json": b"{}" for i in range(450)}
    files.update({f"{root}/sub/.lightly/metadata/img-{i:04d}.json": b"{}" for i in range(250)})
    for key in (".lightly-old.png", ".lightly0.png", "a.png", "sub/a.png", "sub/.lightlyx.png", "z.png"):
        files[f"{root}/{key}"] = b"png"  # ('-' sorts before '/', '0' and 'x' after it: listed, as any sample)
    fs.pipe(files)
    stats: dict = {}
    table = pa.Table.from_batches(list(listing.list_files(uri, credentials=bucket.credentials, page_size=100,
                                                          stats=stats)))
    assert table[KEY].to_pylist() == [".lightly-old.png", ".lightly0.png", "a.png", "sub/.lightlyx.png", "sub/a.png",
                                      "z.png"]
    # 706 objects in pages of 100: a page that ends in a .lightly/ folder is its last (3 requests, 203 objects;
    # was 8 requests, every object)
    assert stats["listed"] == 203


@pytest.mark.parametrize(("prefix", "held", "nested"), [("", 5000, 50), ("ds/deep/", 5000, 150), ("ds/", 4, 150)])
def test_azure_listing_reads_no_lightly_folder_and_lists_the_same_files(prefix, held, nested, azure_container,
                                                                        tmp_path, monkeypatch) -> None:
    """Azure has no "list after": the datasource's top level is listed with delimiter ``/``, so no entry of its
    ``.lightly/`` folder is received (counted around the SDK call), and a flat listing whose page ends inside a
    deeper one goes on level by level with what sorts after it; every other blob is listed once, in order, as on
    disk. Names around the folder's boundary: ``-`` and ``.a`` sort before ``.lightly/``, ``.lightlyz`` after.
    ``held``: the blobs of a level held back before its first folder (4: later folders listed under a prefix each);
    ``nested``: the files in ``-x/.lightly/`` (50: the first flat page would end inside the datasource's own)."""
    monkeypatch.setattr(listing, "_AZURE_HELD", held)
    images = [f"img-{i:04d}.png" for i in range(150)]
    keys = [*images, "-a.jpg", "-x/a.png", ".a.jpg", ".lightly-x/b.jpg", ".lightlyz.jpg", ".lightlyz/c.jpg",
            "a.jpg", "a.lightly/d.png", "b/1.png", "b2/1.png", "c/z.png", "c2.png", "d/e/f.png", "d/e/g.jpg",
            "img-zz/h.png"]
    lightly = [f".lightly/predictions/t/img-{i:04d}.json" for i in range(300)]
    lightly += [f"-x/.lightly/metadata/{i:04d}.json" for i in range(nested)]
    lightly += [f"c/.lightly/metadata/{i:04d}.json" for i in range(150)]
    local = tmp_path / "local"
    for key in keys + lightly:
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(b"png" if key in keys else b"{}")
    uri = f"{azure_container.uri}/{prefix}".rstrip("/")
    fs = listing.filesystem(uri, azure_container.credentials)[0]
    fs.pipe({f"{azure_container.name}/{prefix}{key}": b"png" if key in keys else b"{}" for key in keys + lightly})

    received: list[str] = []
    requests = listing._azure_request

    async def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        items, token = await requests(*args, **kwargs)
        received.extend(item.name[len(prefix):] for item in items)
        return items, token

    monkeypatch.setattr(listing, "_azure_request", counted)
    stats: dict = {}
    table = pa.Table.from_batches(list(listing.list_files(uri, credentials=azure_container.credentials,
                                                          page_size=100, stats=stats, extensions=["*"])))
    expected = list_table(str(local), extensions=["*"])[KEY].to_pylist()
    assert table[KEY].to_pylist() == expected
    assert expected[:5] == ["-a.jpg", "-x/a.png", ".a.jpg", ".lightlyz.jpg", "a.jpg"]  # (hidden folders: not samples)
    inside = [name for name in received if listing._lightly_folder(name, 0) not in (None, name)]
    assert not [name for name in inside if name.startswith(".lightly/")]  # the datasource's own: none (was all 300)
    assert len(inside) <= 2 * 100  # nested ones: the page of a flat listing that ended inside each (was all)
    assert stats["listed"] == len(keys) + len(inside)  # each listed once (was every blob)
