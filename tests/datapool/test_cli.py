"""``lightly-airflow datapool …`` on a pool written by the datapool API."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool

from .conftest import DIM, MODEL, run_rows


@pytest.fixture
def pool_uri(tmp_path, digits) -> str:
    pool = Datapool(tmp_path / "pool")
    for run_id, tag, indices, picks in (("r1", "week-1", range(0, 20), [4, 2]), ("r2", None, range(20, 30), [1])):
        rows = run_rows(digits, indices, picks=picks, corrupt=[0])
        pool.commit(rows, run_id=run_id, dag_id="curate", tag=tag, config={"n_samples": len(picks)},
                    counts={"new": rows.num_rows}, embedding_model=MODEL, embedding_dim=DIM,
                    read_version=pool.version(), datasource_uri="s3://images/raw")
    return str(tmp_path / "pool")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_history_and_tags(pool_uri, capsys) -> None:
    code, out, _ = _run(capsys, "datapool", "history", pool_uri, "--format", "json")
    history = json.loads(out)
    assert code == 0 and [h["run_id"] for h in history] == [None, "r1", "r2"]
    assert history[1]["tag"] == "week-1" and history[1]["counts"] == {"new": 20} and history[1]["selected"] == 2
    code, out, _ = _run(capsys, "datapool", "tags", pool_uri)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["name", "run_id", "version", "count"]
    assert [line.split() for line in lines[1:]] == [["initial-tag", "2", "3"], ["week-1", "r1", "1", "2"], ["r2", "r2", "2", "1"]]


def test_show_formats(pool_uri, capsys, tmp_path) -> None:
    code, out, _ = _run(capsys, "datapool", "show", pool_uri, "--tag", "week-1", "--format", "json")
    rows = json.loads(out)  # exactly one JSON document on stdout
    assert code == 0 and [sorted(r) for r in rows] == [sorted([C.KEY, C.RUN_ID, C.TAGS, C.SELECTED, C.STATUS])] * 2
    assert all(r[C.TAGS] == ["week-1", C.INITIAL_TAG] and r[C.SELECTED] for r in rows)

    code, out, _ = _run(capsys, "datapool", "show", pool_uri, "--run", "r1", "--format", "csv", "--columns", "key,status,embedding")
    records = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(records) == 20 and sum(r[C.STATUS] == "corrupt" for r in records) == 1
    assert len(json.loads(next(r for r in records if r[C.STATUS] == "ok")[C.EMBEDDING])) == DIM

    code, out, _ = _run(capsys, "datapool", "show", pool_uri, "--version", "1")
    assert code == 0 and out.splitlines()[0].split() == [C.KEY, C.RUN_ID, C.TAGS, C.SELECTED, C.STATUS]
    assert len(out.splitlines()) == 21

    target = tmp_path / "all.parquet"
    code, _, err = _run(capsys, "datapool", "show", pool_uri, "--columns", "all", "--format", "parquet", "--out", str(target))
    assert code == 0 and pq.read_table(target).num_rows == 30 and "wrote 30 rows" in err
    code, _, err = _run(capsys, "datapool", "show", pool_uri, "--format", "parquet")
    assert code == 1 and "--out" in err


def test_export(pool_uri, capsys, tmp_path) -> None:
    code, out, _ = _run(capsys, "datapool", "export", pool_uri, "--tag", "week-1")
    pool = Datapool(pool_uri)
    picked = pool.read(tag="week-1", columns=[C.KEY, C.PICK_RANK]).sort_by(C.PICK_RANK).column(C.KEY).to_pylist()
    assert code == 0 and out.splitlines() == [f"s3://images/raw/{k}" for k in picked]
    target = tmp_path / "tasks.json"
    code, _, _ = _run(capsys, "datapool", "export", pool_uri, "--tag", C.INITIAL_TAG, "--format", "label-studio",
                      "--datasource-uri", "gs://other/root", "--out", str(target))
    tasks = json.loads(target.read_text())
    assert code == 0 and len(tasks) == 3
    assert tasks[0]["data"]["image"] == f"gs://other/root/{picked[0]}" and tasks[0]["meta"]["tag"] == C.INITIAL_TAG


def test_a_pool_fed_from_two_datasources_exports_each_sample_from_its_own(tmp_path, digits, capsys) -> None:
    """A pool grown from two datasources (two DAGs, or a bucket moved) holds keys relative to different roots.
    ``initial-tag`` (and a hand-made tag) spans both: every URI was built on the latest run's datasource, so the
    first run's samples pointed into the second bucket (the same key there is another file, or none). The UI's
    export already used each sample's run."""
    from lightly_airflow.datapool.tagging import create_tag

    pool = Datapool(tmp_path / "pool")
    sources = {"r1": "s3://old-bucket/raw", "r2": "gs://new-bucket/raw"}
    for run_id, indices in (("r1", range(0, 10)), ("r2", range(10, 20))):
        pool.commit(run_rows(digits, indices, picks=[1, 4]), run_id=run_id, dag_id="curate", tag=None, config={},
                    counts={}, embedding_model=MODEL, embedding_dim=DIM, read_version=pool.version(),
                    datasource_uri=sources[run_id])
    selected = pool.selected([C.KEY, C.RUN_ID])
    expected = sorted(f"{sources[r]}/{k}" for k, r in zip(selected.column(C.KEY).to_pylist(),
                                                          selected.column(C.RUN_ID).to_pylist(), strict=True))
    assert len(expected) == 4
    code, out, _ = _run(capsys, "datapool", "export", str(tmp_path / "pool"), "--tag", C.INITIAL_TAG)
    assert code == 0 and sorted(out.splitlines()) == expected
    rows = pool.read(columns=[C.KEY, C.SAMPLE_ID, "commit_version", C.SELECTED])
    create_tag(pool, "mixed", rows.filter(rows.column(C.SELECTED)), made_by="curator")
    code, out, _ = _run(capsys, "datapool", "export", str(tmp_path / "pool"), "--tag", "mixed", "--format", "csv")
    assert code == 0 and sorted(line.split(",")[0] for line in out.splitlines()[1:]) == expected
    code, out, _ = _run(capsys, "datapool", "export", str(tmp_path / "pool"), "--tag", "r1",
                        "--datasource-uri", "file:///mnt/mirror")  # the user's root wins for every sample
    assert code == 0 and all(line.startswith("file:///mnt/mirror/") for line in out.splitlines())


def test_errors_exit_1_with_a_message(pool_uri, capsys, tmp_path) -> None:
    code, _, err = _run(capsys, "datapool", "history", str(tmp_path / "missing"))
    assert code == 1 and "No datapool" in err
    code, _, err = _run(capsys, "datapool", "show", pool_uri, "--columns", "nope")
    assert code == 1 and "Unknown column" in err
    code, _, err = _run(capsys, "datapool", "tags", pool_uri, "--storage-options", '{"endpoint": "x"}')
    assert code == 1 and "endpoint" in err


def test_storage_options_reach_s3(s3_bucket, digits, capsys) -> None:
    uri = s3_bucket.uri + "/pool"
    pool = Datapool(uri, s3_bucket.credentials)
    rows = run_rows(digits, range(0, 10), picks=[3])
    pool.commit(rows, run_id="r1", dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=None)
    code, out, _ = _run(capsys, "datapool", "show", uri, "--tag", "r1", "--format", "json",
                        "--storage-options", json.dumps(s3_bucket.credentials.to_dict()))
    assert code == 0 and [r[C.KEY] for r in json.loads(out)] == [rows.column(C.KEY)[3].as_py()]


def test_a_hand_made_tag_is_listed_read_and_exported_like_a_run_tag(pool_uri, capsys) -> None:
    """A tag made in the UI (datapool.tagging) may hold unselected rows; the CLI must know it and export all of it."""
    from lightly_airflow.datapool.tagging import create_tag

    pool = Datapool(pool_uri)
    rows = pool.read(columns=[C.KEY, C.SAMPLE_ID, "commit_version", C.SELECTED])
    unselected = rows.filter(pc.invert(rows.column(C.SELECTED))).slice(0, 5)
    chosen = pa.concat_tables([unselected, rows.filter(rows.column(C.SELECTED)).slice(0, 1)])
    made = create_tag(pool, "hand-picked", chosen, made_by="curator")
    tags = {t["name"]: t for t in pool.tags()}
    assert tags["hand-picked"]["run_id"] is None and tags["hand-picked"]["version"] == made["version"]
    assert tags["hand-picked"]["count"] == 6
    read = pool.read(tag="hand-picked", columns=[C.KEY])
    assert sorted(read.column(C.KEY).to_pylist()) == sorted(chosen.column(C.KEY).to_pylist())
    code, out, _ = _run(capsys, "datapool", "export", pool_uri, "--tag", "hand-picked")
    assert code == 0 and sorted(out.splitlines()) == sorted(f"s3://images/raw/{k}" for k in chosen.column(C.KEY).to_pylist())
    # the version before the tag does not know it, and run tags still read only selected rows
    assert pool.read(tag="week-1").num_rows == 2


def test_compact_merges_the_small_files_and_says_when_there_is_nothing_to_do(pool_uri, capsys) -> None:
    before = Datapool(pool_uri).snapshot().read().sort_by(C.SAMPLE_ID)
    code, out, _ = _run(capsys, "datapool", "compact", pool_uri, "--format", "json")
    assert code == 0 and json.loads(out) == {"version": None, "files_removed": 0, "files_added": 0, "small_files": 4,
                                             "seconds": 0.0, "reason": "4 small files, fewer than 50"}
    code, out, _ = _run(capsys, "datapool", "compact", pool_uri, "--min-small-files", "4")
    assert code == 0 and out.startswith(f"{pool_uri}: 4 files merged into 2 as version 3 in "), out
    assert Datapool(pool_uri).snapshot().read().sort_by(C.SAMPLE_ID) == before
    code, out, _ = _run(capsys, "datapool", "compact", pool_uri, "--force")
    assert code == 0 and out == f"{pool_uri}: not compacted (nothing to merge).\n"
    code, _, err = _run(capsys, "datapool", "compact", pool_uri, "--min-small-files", "1")
    assert code == 1 and "min_small_files must be at least 2, got 1" in err
