"""``initial-tag`` is every selected row no newer row of its key replaced (docs/datapool.md, Tags and snapshots).

An image overwritten under its name (a new etag) and not selected again leaves ``initial-tag``; a newer row of the
same content (a ``process_all`` run: selected before, so not selected again) leaves the selection standing; a
newer selected version takes the key's place. Before, ``Snapshot.selected()`` took the latest row among the
selected rows only, so the overwritten image's former row stayed in ``initial-tag``. The SQL of ``selected()``,
``read(tag=…)`` and the count, and the in-memory rule of the listing's ``pool_files``, must agree.
"""

from __future__ import annotations

import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.snapshot import initial_tag_mask

from .conftest import commit_run, run_rows


def _initial(pool: Datapool) -> dict[str, str]:
    rows = pool.selected([C.KEY, C.RUN_ID])
    return dict(zip(rows.column(C.KEY).to_pylist(), rows.column(C.RUN_ID).to_pylist(), strict=True))


def test_an_overwritten_image_leaves_initial_tag_and_the_same_content_again_does_not(tmp_path, digits) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    commit_run(pool, run_rows(digits, range(0, 10), picks=[0, 1, 2, 3]), "r1")
    keys = run_rows(digits, range(0, 10)).column(C.KEY).to_pylist()
    # r2: samples 0 and 1 overwritten (new etags), 2 processed again unchanged (same etag), none selected;
    # sample 3 overwritten and selected again.
    changed = run_rows(digits, [0, 1, 3], picks=[2], etag_suffix="v2")
    same = run_rows(digits, [2])
    commit_run(pool, changed.slice(0, 3), "r2")
    commit_run(pool, same, "r3")
    # r4: sample 1 overwritten once more, back to its first content (an etag the key had before), not selected
    commit_run(pool, run_rows(digits, [1]), "r4")

    expected = {keys[2]: "r1", keys[3]: "r2"}
    assert _initial(pool) == expected
    assert sorted(pool.read(tag=C.INITIAL_TAG, columns=[C.KEY]).column(C.KEY).to_pylist()) == sorted(expected)
    tags = {t["name"]: t["count"] for t in pool.tags()}
    assert tags[C.INITIAL_TAG] == 2 and tags["r1"] == 4  # the run's tag stays what it selected
    assert sorted(pool.read(tag="r1", columns=[C.KEY]).column(C.KEY).to_pylist()) == sorted(keys[:4])
    # The in-memory rule (every row read, as the listing's pool_files does) agrees with the SQL.
    every = pool.snapshot().select(None, "")
    mask = initial_tag_mask(every)
    standing = every.filter(mask)
    assert dict(zip(standing.column(C.KEY).to_pylist(), standing.column(C.RUN_ID).to_pylist())) == expected
    # Earlier versions answer as of their version.
    first = pool.snapshot(pool.committed_version("r1"))
    assert sorted(first.selected([C.KEY]).column(C.KEY).to_pylist()) == sorted(keys[:4])
    assert int(pc.sum(initial_tag_mask(first.select(None, ""))).as_py()) == 4


def test_the_uis_initial_tag_grid_follows_the_same_rule(tmp_path, digits) -> None:
    """The UI's grid and count of ``initial-tag`` (``plugins.query.View``, its own SQL) hold the same samples as
    ``Snapshot.selected()``: an overwritten image's former pick is not shown."""
    from lightly_airflow.plugins.query import PoolSpec, Scope, View

    pool = Datapool(str(tmp_path / "pool"))
    commit_run(pool, run_rows(digits, range(0, 10), picks=[0, 1, 2, 3]), "r1")
    keys = run_rows(digits, range(0, 10)).column(C.KEY).to_pylist()
    commit_run(pool, run_rows(digits, [0, 1, 3], picks=[2], etag_suffix="v2"), "r2")
    expected = sorted([keys[2], keys[3]])
    assert sorted(pool.selected([C.KEY]).column(C.KEY).to_pylist()) == expected
    view = View(PoolSpec("main", str(tmp_path / "pool")))
    got = view.grid(Scope(tag=C.INITIAL_TAG), sort=None, descending=False, offset=0, limit=100)
    assert sorted(item[C.KEY] for item in got["items"]) == expected and got["total"] == 2
    run_tag = view.grid(Scope(tag="r1"), sort=None, descending=False, offset=0, limit=100)
    assert run_tag["total"] == 4  # a run's tag stays what it selected
