"""What a reader without lightly-airflow sees: the SQL of docs/datapool.md ("Reading the pool without
lightly-airflow") run by DataFusion on the raw Delta table returns exactly the rows ``read``/``selected`` return,
and a pool with a hand-made tag still compacts (its MERGE wrote ``string_view`` columns)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.compaction import compact
from lightly_airflow.datapool.tagging import create_tag

from .conftest import commit_run, run_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "datapool.md"
IDS = ["sample_id", "commit_version"]


def documented_queries() -> list[str]:
    """The SQL block of the section, each statement with ``delta_scan('…')`` read as the relation ``pool``."""
    section = DOC.read_text().split("### Reading the pool without lightly-airflow", 1)[1]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    sql = re.sub(r"delta_scan\('[^']*'\)", "pool", re.sub(r"--[^\n]*", "", block))
    return [q.strip() for q in sql.split(";") if q.strip()]


def outside(uri: str, sql: str, version: int | None = None) -> pa.Table:
    return QueryBuilder().register("pool", DeltaTable(uri, version=version)).execute(sql).read_all()


def ids(table: pa.Table) -> list[tuple[str, int]]:
    return list(zip(table.column(IDS[0]).to_pylist(), table.column(IDS[1]).to_pylist(), strict=True))


@pytest.fixture
def pool(tmp_path, digits) -> Datapool:
    """Picks 1 and 3 of r1 overwritten by r3 (another etag), keys 5..9 processed again by r2 (same content), a
    hand-made tag, and a column r2 added."""
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, run_rows(digits, range(0, 10), picks=[1, 3, 6]), "r1", tag="week-1")
    commit_run(pool, run_rows(digits, range(5, 15), picks=[9], extra_metadata="weather"), "r2")
    commit_run(pool, run_rows(digits, range(0, 4), etag_suffix="new"), "r3")
    create_tag(pool, "hand tag", pool.read(columns=IDS).slice(0, 3))
    return pool


def test_the_documented_queries_return_what_the_pool_reads(pool) -> None:
    uri = str(pool.uri)
    tag_sql, initial_sql, latest_sql = documented_queries()
    for tag in ("week-1", "hand tag"):
        theirs = outside(uri, tag_sql.replace("'week-1'", f"'{tag}'"))
        assert sorted(ids(theirs)) == sorted(ids(pool.read(tag=tag, columns=IDS))) and theirs.num_rows
    initial = outside(uri, initial_sql)
    # the overwritten picks 1 and 3 carry 'initial-tag' but left it; pick 6 (processed again unchanged) stands
    assert ids(initial) == ids(pool.selected(IDS)) and initial.num_rows == 2
    assert sorted(initial.column(C.KEY).to_pylist()) == ["digits/4/00014.png", "digits/6/00006.png"]
    latest = outside(uri, latest_sql)
    assert latest.num_rows == 15 and set(latest.column(C.RUN_ID).to_pylist()) == {"r1", "r2", "r3"}
    for version in range(pool.version() + 1):  # time travel: Delta's own versions are ours
        assert outside(uri, "SELECT count(*) AS n FROM pool", version)["n"][0].as_py() == pool.read(
            version=version, columns=[C.KEY]).num_rows


def test_a_pool_with_a_hand_made_tag_compacts(pool) -> None:
    before = {v: sorted(ids(pool.read(version=v, columns=IDS))) for v in range(pool.version() + 1)}
    tagged = sorted(ids(pool.read(tag="hand tag", columns=IDS)))
    result = compact(pool, force=True)
    assert result.version == pool.version() and result.files_removed > result.files_added
    assert sorted(ids(pool.read(columns=IDS))) == before[max(before)]
    assert sorted(ids(pool.read(tag="hand tag", columns=IDS))) == tagged
    assert all(sorted(ids(pool.read(version=v, columns=IDS))) == rows for v, rows in before.items())
    assert pool.read(columns=[C.metadata_column("weather")]).column(0).null_count == 14  # r1's and r3's rows


def test_the_documented_tag_query_leaves_out_rows_a_move_ended(tmp_path, digits) -> None:
    """The documented run-tag query returned the former key's row of a moved pick beside the key it moved to (the
    pool's own read leaves it out: the new key carries the tag)."""
    from .test_moves import commit, first_two_versions
    from .test_moves_chains import moved

    pool = first_two_versions(tmp_path, digits)  # r1 picked a/x.png and c.png; "hand" tags a/x.png
    assert commit(pool, moved(digits, "b/x.png", "a/x.png", 0), "r2", [("b/x.png", "a/x.png")]).moved == 1
    tag_sql = documented_queries()[0]
    for tag in ("r1", "hand"):
        theirs = outside(str(pool.uri), tag_sql.replace("'week-1'", f"'{tag}'"))
        assert sorted(theirs.column(C.KEY).to_pylist()) == sorted(pool.read(tag=tag, columns=[C.KEY]).column(
            C.KEY).to_pylist()) and "b/x.png" in theirs.column(C.KEY).to_pylist(), tag
        assert "a/x.png" not in theirs.column(C.KEY).to_pylist(), tag
