"""A file moved in the datasource between two runs: the second run's commit lets the new key take over the gone
key's selection (``datapool.moves``), its summary counts it, exports name the live key, version 1 keeps the old
one, a retry changes nothing and the next listing no longer counts the old key gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasource.helpers import image_adder, run_pipeline
from datasource.test_gone import gone_of
from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records


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
