"""The listing's account of files across runs says what is true: a key the listing skips by rule (a tab, an empty
path segment) that an earlier run processed is skipped with its count and fix, never gone and never counted twice;
a rename's fix never overwrites another file; ``process_all`` names no copy as moved; the ``key`` policy names the
changed files it leaves. Real files on local disk and on moto (S3), real listings, a real datapool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from datapool.conftest import DIM, MODEL, run_rows

from datasource.conftest import Store
from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.datapool import Datapool
from lightly_airflow.datasource import NewFilesQuery, QueryCredentials, find_new_files, list_table
from lightly_airflow.datasource.gone import gone_files

TAB = "t\tab.png"


def commit(store: Store, pool: str, digits: Any, run_id: str, extra: tuple[str, ...] = ()) -> None:
    """A run that processed every listed file (with its real etag) and ``extra`` keys (processed before the listing
    skipped such keys: their etag as the store gave it then, here a stand-in)."""
    listed = list_table(store.uri, credentials=store.credentials)
    keys = [*listed.column(C.KEY).to_pylist(), *extra]
    rows = run_rows(digits, range(len(keys)))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    etags = [*listed.column(C.ETAG).to_pylist(), *(f"before-the-rule:{k}" for k in extra)]
    rows = rows.set_column(rows.schema.get_field_index(C.ETAG), C.ETAG, pa.array(etags, pa.string()))
    datapool = Datapool(pool)
    datapool.commit(rows, run_id=run_id, dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL,
                    embedding_dim=DIM, read_version=datapool.version(), datasource_uri=store.uri)


def account(store: Store, pool: str, **query: Any) -> tuple[Any, Any]:
    """This run's listing (:func:`find_new_files`) and its gone files, as the list step computes them."""
    q = NewFilesQuery(datasource_uri=store.uri, datapool_uri=pool, **query)
    snapshot = Datapool(pool).snapshot()
    found = find_new_files(q, QueryCredentials(datasource=store.credentials, lightly=store.credentials),
                           known=lambda _u, _c: snapshot.known_files(), read_known_with_process_all=True)
    return found, gone_files(found, snapshot)


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_keys_a_run_processed_before_the_skip_rule_are_skipped_with_the_fix_not_gone(
    store: Store, tmp_path: Path, digits: Any
) -> None:
    from lightly_airflow.pipeline import list_new

    pool = f"file://{tmp_path}/pool"
    odd = [TAB] if store.kind == "local" else [TAB, "/a.png", "sub//b.png", "x//c.png", "x/./c.png"]  # (a folder
    # has no empty segment)
    for key in ["a.png", "sub/c.png", *odd]:
        store.put(key, key.encode())
    commit(store, pool, digits, "r1", extra=tuple(odd))
    store.put("new.png", b"new")
    listed = list_new(NewFilesQuery(datasource_uri=store.uri, datapool_uri=pool), run_id="r2",
                      credentials=QueryCredentials(store.credentials, None, store.credentials))
    assert (listed.gone, listed.skipped, listed.new) == (0, len(odd), 1)
    record = json.loads(Path(staging.listing_uri(str(tmp_path / "pool"), "r2")).read_text())
    reasons = dict(map(tuple, record["skipped"]))
    assert sorted(reasons) == sorted(odd) and record["skipped_count"] == len(odd) and "gone" not in record
    assert "rename it to 't ab.png'" in reasons[TAB]
    assert all("the datapool holds a sample of this key from an earlier run" in reasons[key] for key in odd)
    if store.kind == "s3":
        assert "rename the object to 'sub/b.png'" in reasons["sub//b.png"]
        # 'a.png' is another file: renaming '/a.png' onto it (the fix it was given) would overwrite it.
        assert "do not rename it to 'a.png', which would overwrite another file" in reasons["/a.png"]
        assert "rename the object to 'a.png'" not in reasons["/a.png"]
        for key in ("x//c.png", "x/./c.png"):  # (both to 'x/c.png': the second rename would overwrite the first)
            assert "do not rename it to 'x/c.png'" in reasons[key]
    # A relevant-filenames file naming a skipped key: skipped once, for its own reason (it is there), not also
    # "the datasource has no such file".
    store.put(".lightly/relevant.txt", f"a.png\n{TAB}\nnope.png\n".encode())
    found, gone = account(store, pool, relevant_filenames_file="relevant.txt")
    assert [key for key, _ in found.skips.skipped] == [TAB, "nope.png"], found.skips.skipped
    assert found.skips.skipped_count == 2 and gone.count == 0
    # Gone still means gone: the skipped key deleted is gone (and only it).
    store.delete(TAB)
    found, gone = account(store, pool, relevant_filenames_file="relevant.txt")
    assert gone.keys == [TAB] and sorted(key for key, _ in found.skips.skipped) == sorted([TAB, "nope.png"])
    assert "has no such file" in dict(found.skips.skipped)[TAB]


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_process_all_after_a_deletion_names_no_unchanged_copy_as_moved(
    store: Store, tmp_path: Path, digits: Any
) -> None:
    """A copy the pool processed under its own key in the same run as a deleted file is no move of it; a file
    renamed since is."""
    pool = f"file://{tmp_path}/pool"
    for key, data in [("a.png", b"same"), ("copy.png", b"same"), ("b.png", b"b")]:
        store.put(key, data)
    commit(store, pool, digits, "r1")
    store.delete("a.png")
    store.delete("b.png")
    store.put("renamed/b.png", b"b")
    for process_all in (False, True):
        found, gone = account(store, pool, process_all=process_all)
        assert gone.keys == ["a.png", "b.png"]
        assert gone.moved == [("renamed/b.png", "b.png")], (process_all, gone.moved)
        assert gone.listing_fields()["gone_moved"] == 1


def test_the_key_policy_names_the_changed_files_it_does_not_process(tmp_path: Path, digits: Any) -> None:
    """A file replaced under its key is not processed with policy 'key' (by design), but the run says so: the
    report had counted it "unchanged since the datapool processed it"."""
    from lightly_airflow.pipeline import list_new

    store = Store("local", f"file://{tmp_path}/ds", None)
    pool = f"file://{tmp_path}/pool"
    for key in ("a.png", "b.png"):
        store.put(key, key.encode())
    commit(store, pool, digits, "r1")
    store.put("b.png", b"replaced")
    store.put("new.png", b"new")
    found, _ = account(store, pool, policy="key")
    assert found.files.column(C.KEY).to_pylist() == ["new.png"]
    assert len(found.skips.notes) == 1 and "1 listed files changed since the datapool processed them" in found.skips.notes[0]
    assert "'b.png'" in found.skips.notes[0] and "policy='content'" in found.skips.notes[0]
    assert account(store, pool)[0].skips.notes == []  # (policy 'content' processes it: nothing to say)
    list_new(NewFilesQuery(datasource_uri=store.uri, datapool_uri=pool, policy="key"), run_id="r2")
    record = json.loads(Path(staging.listing_uri(str(tmp_path / "pool"), "r2")).read_text())
    assert record["notes"] == found.skips.notes and record["not_processed"] == 2


def test_the_list_command_neither_calls_a_skipped_key_missing_nor_renames_it_onto_a_file(tmp_path: Path, capsys: Any) -> None:
    from lightly_airflow.cli import main

    root = tmp_path / "ds"
    root.mkdir()
    (root / "a.png").write_bytes(b"a")
    (root / TAB).write_bytes(b"tab")
    rel = tmp_path / "relevant.txt"
    rel.write_text(f"a.png\n{TAB}\n")
    assert main(["list", str(root), "--relevant-filenames", str(rel)]) == 0
    err = capsys.readouterr().err
    assert "1 files" in err and "has no such file" not in err, err
    (root / "t ab.png").write_bytes(b"another file")  # (the name the tab's fix renames to)
    assert main(["list", str(root)]) == 0
    assert "skipped: 't\\tab.png': " in (err := capsys.readouterr().err) and "do not rename it to 't ab.png'" in err


def test_a_pool_key_the_listing_skips_costs_no_second_read_of_the_pool(s3_bucket: Any, tmp_path: Path,
                                                                       digits: Any) -> None:
    """Every known key listed or skipped: the pool (here on S3) is not read again to look for gone files."""
    from datapool.counting_proxy import counting_proxy

    store = Store("local", f"file://{tmp_path}/ds", None)
    for key in ("a.png", TAB):
        store.put(key, key.encode())
    pool = f"{s3_bucket.uri}/pool"
    listed = list_table(store.uri)
    rows = run_rows(digits, range(2))
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(["a.png", TAB], pa.string()))
    rows = rows.set_column(rows.schema.get_field_index(C.ETAG), C.ETAG,
                           pa.array([listed.column(C.ETAG)[0].as_py(), "before-the-rule"], pa.string()))
    Datapool(pool, s3_bucket.credentials).commit(
        rows, run_id="r1", dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL,
        embedding_dim=DIM, read_version=None, datasource_uri=store.uri)
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        snapshot = Datapool(pool, creds).snapshot()
        found = find_new_files(NewFilesQuery(datasource_uri=store.uri, datapool_uri=pool),
                               QueryCredentials(None, creds, None), known=lambda _u, _c: snapshot.known_files())
        snapshot.history()
        requests.reset()
        gone = gone_files(found, snapshot)
        cost = requests.reset()
    assert gone.count == 0 and [key for key, _ in found.unlisted] == [TAB]
    assert sum(cost.values()) == 0, cost
