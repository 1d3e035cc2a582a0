"""A file moved in the datasource between two runs: the second run's commit lets the new key take over the gone
key's selection (``datapool.moves``), its summary counts it, exports name the live key, version 1 keeps the old
one, a retry changes nothing and the next listing no longer counts the old key gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from faults.runs import prepare
from PIL import Image

from datasource.test_gone import gone_of
from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.pipeline import select_and_commit

SELECTION = {"strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}], "n_samples": 3}


def test_a_moved_selected_file_takes_over_its_selection(tmp_path: Path) -> None:
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    rng = np.random.default_rng(0)

    def add(*names: str) -> None:
        for name in names:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(src / name)

    def run(run_id: str, manifests: Any = None) -> Any:
        manifests = prepare(src, pool_dir, run_id, SELECTION) if manifests is None else manifests
        return select_and_commit(datapool_uri=f"file://{pool_dir}", run_id=run_id, dag_id="d", manifests=manifests,
                                 selection_config=SELECTION), manifests

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
