"""A file moved in the datasource between two runs: the second run's commit lets the new key take over the gone
key's selection (``datapool.moves``), its summary counts it, exports name the live key, version 1 keeps the old
one, a retry changes nothing and the next listing no longer counts the old key gone."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from datasource.helpers import image_adder, run_pipeline
from datasource.test_gone import gone_of
from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.datasource import ListingSkips
from lightly_airflow.datasource.gone import read_gone, read_moves, write_gone


def test_a_moved_selected_file_takes_over_its_selection(tmp_path: Path) -> None:
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    add = image_adder(src)

    def run(run_id: str, manifests: Any = None) -> Any:
        return run_pipeline(src, pool_dir, run_id, manifests)

    add(*(f"img{i}.png" for i in range(8)))
    run("r1")
    pool = Datapool(f"file://{pool_dir}")
    picked = [r.key for r in export_records(pool, "initial-tag")]
    (src / "moved").mkdir()
    (src / picked[0]).rename(src / "moved" / picked[0])  # a re-organisation: same bytes, new key
    add("new0.png")
    summary, manifests = run("r2")
    assert summary.moved == 1 and any("took over their former key's sample" in n for n in summary.notes)
    assert summary.listing["gone"] == 1 and pool.history()[-1]["counts"]["moved"] == 1
    now = {r.key for r in export_records(pool, "initial-tag")}
    assert f"moved/{picked[0]}" in now and picked[0] not in now
    assert [r.key for r in export_records(pool, "r1")][0] == f"moved/{picked[0]}"  # r1's first pick, live
    assert picked[0] in pool.read(version=summary.version - 1, tag="initial-tag").column(C.KEY).to_pylist()
    again, _ = run("r2", manifests)  # a retry of the select task
    assert again.already_committed and again.version == summary.version and again.moved == 1
    assert gone_of(src, pool_dir).count == 0  # the next listing: the moved key is accounted for, not gone


def test_a_file_renamed_while_a_new_file_takes_its_name_is_paired_by_its_content(tmp_path: Path) -> None:
    """``img0.png`` renamed to ``b.png`` and a new ``img0.png`` written: nothing is gone (the old name is listed),
    yet ``b.png`` holds the content that left ``img0.png`` and is paired with it, and the pair is recorded for the
    commit (``moved.parquet``, ``gone_moved``) though no ``gone.parquet`` is written. Before, only gone keys were
    paired: the listing paired nothing, and the commit never heard of the move. A file overwritten in place and a
    copy (its original unchanged) are no moves."""
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    add = image_adder(src)
    add(*(f"img{i}.png" for i in range(4)))
    run_pipeline(src, pool_dir, "r1")
    (src / "img0.png").rename(src / "b.png")
    add("img0.png", "img1.png")  # new content under the old name; img1.png overwritten in place
    shutil.copy(src / "img2.png", src / "c.png")  # a copy
    gone = gone_of(src, pool_dir)
    assert (gone.count, gone.moved) == (0, [("b.png", "img0.png")])
    skips = replace(ListingSkips(), **gone.listing_fields())
    assert ListingSkips.from_dict(skips.to_dict()).gone_moved == 1  # (the select task reads the moves by it)
    uri = f"file://{pool_dir}"
    assert write_gone(gone, uri, "r2", None) is None  # (no gone.parquet: nothing is gone)
    assert read_moves(uri, "r2", None) == [("b.png", "img0.png")] and read_gone(uri, "r2", None) is None
