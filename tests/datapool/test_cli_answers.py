"""What ``lightly-airflow datapool …`` answers where a user got something wrong or a tag holds nothing: the likely
tag for a typo, the pools below a parent folder, a word on stderr for an empty tag (never an empty file alone), and
Label Studio tasks it cannot resolve named."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records, label_studio_tasks
from lightly_airflow.storage import filesystem

from .conftest import commit_run, run_rows


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["datapool", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(params=["local", "s3_bucket"])
def parent(request, tmp_path) -> tuple[str, list[str]]:
    """A folder holding the pool ``p1`` (two runs: 'week 1' picks two, r2 picks none and adds a column), and the CLI's
    ``--storage-options`` for its store."""
    if request.param == "local":
        root, creds = str(tmp_path / "pools"), None
    else:
        bucket = request.getfixturevalue(request.param)
        root, creds = f"{bucket.uri}/pools", bucket.credentials
    return root, ([] if creds is None else ["--storage-options", json.dumps(creds.to_dict())])


def _pool(parent, digits) -> Datapool:
    from lightly_airflow.storage import StorageCredentials

    root, options = parent
    pool = Datapool(f"{root}/p1", StorageCredentials.from_dict(json.loads(options[1])) if options else None)
    commit_run(pool, run_rows(digits, range(0, 10), picks=[2, 5]), "r1", tag="week 1")
    commit_run(pool, run_rows(digits, range(10, 15), extra_metadata="weather"), "r2")
    return pool


def test_a_wrong_tag_or_folder_names_the_right_one(parent, digits, capsys) -> None:
    root, options = parent
    pool = _pool(parent, digits)
    for argv in (["export", f"{root}/p1", "--tag", "WEEK-1"], ["show", f"{root}/p1", "--tag", "week_1"]):
        code, out, err = _run(capsys, *argv, *options)
        assert code == 1 and out == "" and "Did you mean 'week 1'?" in err and f"datapool tags {root}/p1" in err
    code, _, err = _run(capsys, "show", f"{root}/p1", "--version", "1", "--columns", "key,metadata.weather", *options)
    assert code == 1 and f"['metadata.weather'] in version 1 of {root}/p1 (a column a run added is absent" in err
    code, _, err = _run(capsys, "tags", root, *options)  # the parent folder: the pool below is named
    assert code == 1 and f"It holds the datapool(s) {root}/p1: give one of them." in err
    code, _, err = _run(capsys, "history", f"{root}/p2", *options)
    assert code == 1 and f"No datapool at {root}/p2: nothing is there." in err
    fs, path = filesystem(f"{root}/p1", pool.credentials)
    fs.mkdir(f"{path}/notes")
    fs.pipe_file(f"{path}/notes/README.txt", b"a folder of notes, no pool")
    code, out, err = _run(capsys, "check", f"{root}/p1/notes", *options)
    assert code == 1 and "this is no datapool (nothing of one is here). Fix: check the URI" in out
    fs.rm(f"{path}/_delta_log", recursive=True)  # a deleted log is damage, not a wrong URI
    for argv in (["check", f"{root}/p1"], ["history", f"{root}/p1"]):
        code, out, err = _run(capsys, *argv, *options)
        assert code == 1 and "yet 3 data file(s) and 2 commit receipt(s) of a datapool are here: the log was " \
            "deleted and every version with it. Restore _delta_log/" in out + err


def test_many_tags_are_listed_in_part(tmp_path, digits, capsys) -> None:
    pool = Datapool(tmp_path / "pool")
    for r in range(23):
        commit_run(pool, run_rows(digits, [r], picks=[0]), f"run-{r:02d}")
    code, _, err = _run(capsys, "export", str(tmp_path / "pool"), "--tag", "run-7")
    likely = err.split("Did you mean ", 1)[1].split("?", 1)[0]
    assert code == 1 and "'run-07'" in likely.split(" or ") and "'run-18' and 4 more" in err  # 24 names, 20 listed


def test_an_empty_tag_says_so(parent, digits, capsys, caplog) -> None:
    root, options = parent
    _pool(parent, digits)
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.datapool.export"):
        code, out, _ = _run(capsys, "export", f"{root}/p1", "--tag", "r2", "--format", "label-studio", *options)
    assert code == 0 and json.loads(out) == []
    assert [r.getMessage() for r in caplog.records  # (the export's own warnings: a run before may leave INFO on)
            if r.name == "lightly_airflow.datapool.export" and r.levelno >= logging.WARNING] == [
        f"Tag 'r2' of {root}/p1 holds no samples (a run that selected none has its tag all the same): the export is "
        "empty. `lightly-airflow datapool tags` shows each tag's count."]
    code, out, err = _run(capsys, "show", f"{root}/p1", "--tag", "r2", "--format", "json", *options)
    assert code == 0 and json.loads(out) == [] and "Tag 'r2' holds no rows in" in err
    code, out, err = _run(capsys, "show", f"{root}/p1", "--tag", "r2", "--version", "1", *options)
    assert code == 0 and len(out.splitlines()) == 1
    assert f"Tag 'r2' holds no rows in version 1 of {root}/p1: it was made at version 2" in err
    code, out, err = _run(capsys, "show", f"{root}/p1", "--tag", "week 1", *options)  # rows: no note
    assert code == 0 and len(out.splitlines()) == 3 and err == ""


def test_label_studio_tasks_it_cannot_resolve_are_named(tmp_path, digits, caplog) -> None:
    keys = ["a b/frame 1.jpg", "ü/日本.png", "c,d.jpg", 'q"uote.jpg', "x#y?z.jpg", "100%.jpg", "what?.png"]
    rows = run_rows(digits, range(len(keys)), picks=list(range(len(keys))))
    rows = rows.set_column(rows.column_names.index(C.KEY), C.KEY, pa.array(keys))
    for source, cut in (("s3://bucket/raw", ["x#y?z.jpg", "what?.png"]), ("/data/raw", [])):
        pool = Datapool(tmp_path / source.replace("/", "_"))
        pool.commit(rows, run_id="r1", dag_id="d", tag="round 2", config={}, counts={}, embedding_model="m",
                    embedding_dim=64, read_version=None, datasource_uri=source)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lightly_airflow.datapool.export"):
            tasks = label_studio_tasks(export_records(pool, "round 2"), "round 2")
        # Label Studio's storages take the key as urlparse(uri, allow_fragments=False).path (io_storages/utils.py)
        unresolved = [t["meta"]["key"] for t in tasks if urlparse(t["data"]["image"], allow_fragments=False).path.lstrip(
            "/").removeprefix("raw/") != t["meta"]["key"] and "://" in t["data"]["image"] and not source.startswith("/")]
        assert unresolved == cut and [t["meta"]["key"] for t in tasks] == keys
        messages = [r.getMessage() for r in caplog.records if "Label Studio tasks" in r.getMessage()]
        assert messages == (["2 of the 7 Label Studio tasks of tag 'round 2' have a '?' in their key, e.g. "
                             "'x#y?z.jpg', 'what?.png': Label Studio's cloud storage reads a key only up to the '?' "
                             "and cannot show them. Rename those files, or label them from the csv export (exact "
                             "keys)."] if cut else [])
