"""A run that finds a gone selected file and a move onto a key written anew (``img0.png`` renamed to ``b.png`` and a
new ``img0.png``; ``img1.png`` deleted): the commit counts the selection the rename handed over apart
(``moved_replaced_selected``), since ``img0.png`` is listed, not gone. The report's gone box subtracted every
moved selection from the gone selected samples and said "None of the other samples is selected" while the deleted
``img1.png`` still was (real images, real runs, a real Delta pool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasource.helpers import image_adder, run_pipeline

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.datapool.moves import MOVED_REPLACED_SELECTED, recorded_move_counts


def renamed_onto_a_new_file_and_one_deleted(tmp_path: Path) -> tuple[Any, list[str]]:
    """r1 picks 3 of 8 images; then its first pick is renamed to ``b.png`` and a new file takes its name, its
    second pick is deleted; r2's summary and r1's picks."""
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    add = image_adder(src)
    add(*(f"img{i}.png" for i in range(8)))
    run_pipeline(src, pool_dir, "r1")
    picked = [r.key for r in export_records(Datapool(f"file://{pool_dir}"), "r1")]
    (src / picked[0]).rename(src / "b.png")
    add(picked[0])  # a new, different file under the old name
    (src / picked[1]).unlink()  # gone, selected, not moved
    summary, _ = run_pipeline(src, pool_dir, "r2")
    return summary, picked


def test_a_move_onto_a_key_written_anew_is_counted_apart_from_the_gone_keys(tmp_path: Path) -> None:
    summary, picked = renamed_onto_a_new_file_and_one_deleted(tmp_path)
    assert summary.listing["gone"] == 1 and summary.listing["gone_selected"] == 1
    assert summary.listing["gone_moved"] == 1  # (b.png: its former key is listed, with a new file)
    assert summary.moves == {"moved": 1, "moved_selected": 1, MOVED_REPLACED_SELECTED: 1}
    pool = Datapool(f"file://{tmp_path / 'pool'}")
    assert recorded_move_counts(pool.history()[-1]["counts"]) == summary.moves
    live = {r.key for r in export_records(pool, C.INITIAL_TAG)}
    assert picked[1] in live and "b.png" in live  # the deleted pick is still selected: a gone selected path
