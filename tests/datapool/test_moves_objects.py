"""A moved image with objects (tests/object_pool.py's pool, made by the pipeline's stages): a move does not carry
object rows (their keys, crops and ``object_selected`` follow the image's key), so the commit refuses the pair
whole, says why and counts it: the gone key keeps its selection and its objects, the new file stays a duplicate
(a move without them left the live key's selection with no objects while the gone key's stayed live)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from object_pool import DAG_ID, N_SAMPLES, build_object_pool, run_objects_pipeline

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.moves import OBJECTS_NOT_CARRIED, objects_refused_note, plan_moves
from lightly_airflow.pipeline import RunSummary, _note_moves_a_commit_would_make, select_and_commit


def latest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["commit_version"]):
        out[r[C.KEY]] = r
    return out


def test_a_moved_image_with_objects_is_not_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from lightly_airflow.objects import ObjectsSpec
    from lightly_airflow.objects.demo_data import TASK

    made = build_object_pool(tmp_path)
    pool = Datapool(made.uri)
    before = latest(pool.read().to_pylist())
    image = sorted(k for k, r in before.items() if r[C.SELECTED] and r[C.PARENT_KEY] is None)[0]
    objects = {k: r[C.OBJECT_SELECTED] for k, r in before.items() if r[C.PARENT_KEY] == image}
    assert objects  # (the demo pastes shapes on every image)
    (made.source / "moved").mkdir()
    (made.source / image).rename(made.source / "moved" / image)  # a re-organisation: same bytes, new key

    # the plan on the pool as it is: the pair refused, and counted
    snap = pool.snapshot()
    old = before[image]  # (the new file as the run finds it: a duplicate of the gone key, not embedded)
    rows = pa.table({C.KEY: [f"moved/{image}"], C.STATUS: ["duplicate"], C.SELECTED: [False],
                     C.CONTENT_HASH: [old[C.CONTENT_HASH]], C.EMBEDDING: pa.nulls(1, pa.list_(pa.float32()))})
    refused: dict[str, int] = {}
    with caplog.at_level(logging.WARNING, "lightly_airflow.datapool.moves"):
        assert plan_moves(snap, rows, [(f"moved/{image}", image)], refused) == []
    assert refused == {OBJECTS_NOT_CARRIED: 1}
    assert f"the image has {len(objects)} object row(s), which a move does not carry" in caplog.text
    dry = RunSummary(run_id="dry", tag=None, version=snap.version, dry_run=True)
    _note_moves_a_commit_would_make(dry, snap, rows, [(f"moved/{image}", image)])
    assert dry.notes == ["Dry run: a commit would let 0 of the 1 moved or renamed files take over their former key's "
                         "sample (its selection and tags; datapool.moves); nothing was written", objects_refused_note(1)]

    # a third run of the pipeline: no move, the gone key keeps its selection and objects
    selection = {"n_samples": N_SAMPLES,
                 "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
    spec = ObjectsSpec(tasks=(TASK,), padding=0.1, upload=False, selection_tasks=(TASK,))
    run_id = "scheduled__2026-05-03T00:00:00+00:00"
    summary = run_objects_pipeline(made.source, made.path, run_id, selection, spec)
    assert summary.moved == 0 and pool.history()[-1]["counts"][OBJECTS_NOT_CARRIED] == 1
    # (the committed run said it only in its log and the commit's counts: its notes and report say it now)
    assert summary.moves == {OBJECTS_NOT_CARRIED: 1} and objects_refused_note(1) in summary.notes
    page = Path(summary.report_uri.removeprefix("file://")).read_text()
    assert "1 moved image(s) have object rows, which a move does not carry" in page
    assert "1 of them an image with objects, which a move does not carry: its former key keeps its selection" in page
    # a retry after the commit (a worker killed past it) answers with the commit's notes (its record has none)
    again = select_and_commit(datapool_uri=str(made.path), run_id=run_id, dag_id=DAG_ID, manifests=[],
                              selection_config=selection)
    assert again.already_committed and again.moves == summary.moves
    assert again.notes.count(objects_refused_note(1)) == 1
    after = latest(pool.read().to_pylist())
    assert after[image][C.SELECTED] and after[image][C.STATUS] == "ok"
    assert after[f"moved/{image}"][C.STATUS] == "duplicate"
    assert {k: r[C.OBJECT_SELECTED] for k, r in after.items() if r[C.PARENT_KEY] == image} == objects
    assert not any(r[C.PARENT_KEY] == f"moved/{image}" for r in after.values())
