"""A dry run (``enable_datapool_update=false``) of a run with a moved file: it writes nothing, and its summary says
what a commit of it would do with the move (``datapool.moves``, planned on the version it read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from faults.runs import prepare
from PIL import Image

from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.pipeline import select_and_commit

SELECTION = {"strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}], "n_samples": 3}


def test_a_dry_run_says_what_a_commit_would_do_with_a_moved_file(tmp_path: Path) -> None:
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    rng = np.random.default_rng(0)
    src.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(src / f"img{i}.png")
    uri = f"file://{pool_dir}"
    select_and_commit(datapool_uri=uri, run_id="r1", dag_id="d", manifests=prepare(src, pool_dir, "r1", SELECTION),
                      selection_config=SELECTION)
    pool = Datapool(uri)
    picked = [r.key for r in export_records(pool, "initial-tag")]
    (src / "moved").mkdir()
    (src / picked[0]).rename(src / "moved" / picked[0])  # a re-organisation: same bytes, new key
    summary = select_and_commit(datapool_uri=uri, run_id="r2", dag_id="d", dry_run=True, selection_config=SELECTION,
                                manifests=prepare(src, pool_dir, "r2", SELECTION))
    assert summary.dry_run and summary.moved == 0 and pool.version() == 1
    assert ("Dry run: a commit would let 1 of the 1 moved or renamed files take over their former key's sample "
            "(its selection and tags; datapool.moves); nothing was written") in summary.notes
    assert picked[0] in {r.key for r in export_records(pool, "initial-tag")}  # nothing moved
