"""A selected file renamed while a new file takes its old name (``img0.png`` -> ``b.png``, a new ``img0.png``):
the run recognises the move by content, ``b.png`` takes over the pick (``r1``'s tag, its rank, ``initial-tag``)
without being picked again, and the new ``img0.png`` is a new file the run may pick.

Before, the listing paired only gone keys (``img0.png`` is listed), the pool's row of the old content no longer
made ``b.png`` a duplicate (the run's new ``img0.png`` superseded it), so the run picked ``b.png``'s content again
as a sample of its own (``r2``), and ``r1`` still named ``img0.png``, now other content."""

from __future__ import annotations

from pathlib import Path

from datasource.helpers import image_adder, run_pipeline
from datasource.test_gone import gone_of
from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.datapool.moves import MOVED_FROM
from lightly_airflow.datasource import NewFilesQuery, find_new_files


def test_a_file_renamed_while_a_new_file_takes_its_name_keeps_its_pick(tmp_path: Path) -> None:
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    add = image_adder(src)
    add(*(f"img{i}.png" for i in range(8)))
    run_pipeline(src, pool_dir, "r1")
    pool = Datapool(f"file://{pool_dir}")
    picked = [r.key for r in export_records(pool, "r1")]
    (src / picked[0]).rename(src / "b.png")
    add(picked[0])  # a new, different file under the old name
    summary, manifests = run_pipeline(src, pool_dir, "r2")
    assert (summary.moved, summary.moves) == (1, {"moved": 1, "moved_selected": 1, "moved_replaced_selected": 1})
    assert summary.listing.get("gone", 0) == 0 and summary.listing["gone_moved"] == 1
    assert [r.key for r in export_records(pool, "r1")] == ["b.png", *picked[1:]]  # r1's picks, live keys, in order
    r2 = [r.key for r in export_records(pool, "r2")]
    assert "b.png" not in r2 and summary.selected == len(r2)  # the run did not pick that content again
    rows = pool.read().to_pylist()
    b = [r for r in rows if r[C.KEY] == "b.png"]
    assert [(r[C.STATUS], r[MOVED_FROM], set(r[C.TAGS])) for r in b] == [("ok", picked[0], {"r1", C.INITIAL_TAG})]
    now = [r for r in rows if r[C.KEY] == picked[0] and r["commit_version"] == summary.version]
    assert [r[C.STATUS] for r in now] == ["ok"]  # the new file, no tombstone beside it
    assert sorted(r.key for r in export_records(pool, C.INITIAL_TAG)) == sorted({"b.png", *picked[1:], *r2})
    again, _ = run_pipeline(src, pool_dir, "r2", manifests)  # a retry of the select task
    assert again.already_committed and again.moved == 1
    after = gone_of(src, pool_dir)  # the next listing: nothing new, gone or moved
    assert (after.count, after.moved) == (0, [])
    query = NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool_dir}")
    assert find_new_files(query).files.num_rows == 0
