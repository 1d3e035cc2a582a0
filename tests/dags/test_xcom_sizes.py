"""XCom carries URIs and small counts only: the largest value a demo-like run pushes, measured."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from test_lightly_datapool_run import SELECTION, _run

from lightly_airflow.demo import add_batch


def _xcoms(run_id: str) -> list[tuple[str, int, str, int]]:
    """``(task_id, map_index, key, size of the JSON value in bytes)`` of every XCom of a run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value)
                               .where(XComModel.run_id == run_id)).all()
    return [(t, m, k, len(v if isinstance(v, (str, bytes)) else json.dumps(v))) for t, m, k, v in rows]


@pytest.mark.slow
def test_a_demo_runs_xcoms_are_uris_and_small_counts(airflow_db, dagbag, tmp_path) -> None:
    """A demo-like run (the demo's first batch, 509 images, and 30 empty files): ~70 s."""
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    add_batch(source, 0)
    bad = source / "bad"
    bad.mkdir()
    for i in range(30):
        (bad / f"zero-{i:02d}.png").write_bytes(b"")
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool_dir}", "selection_config": SELECTION}
    run, states = _run(dagbag.dags["lightly_datapool"], conf, datetime(2026, 7, 1, tzinfo=UTC))
    assert str(run.state) == "success", states
    sizes = sorted(_xcoms(run.run_id), key=lambda r: -r[3])
    # Measured: the select task's summary 2,157 bytes, each shard's counts 0.4-0.6 kB, the rest smaller. A list of
    # keys, a table or a config copy per file would be far beyond this.
    assert sizes[0][:3] == ("select_and_commit", -1, "return_value") and sizes[0][3] < 4096, sizes[:5]
    assert all(size < 1024 for task, _, _, size in sizes if task != "select_and_commit"), sizes[:5]
