"""A worker killed right after its commit: the retry writes everything the run writes after its commit (issue
14.7): the selected video frames' PNGs, the selected objects' crops, the report, the commit receipt, and
removes the staging files; nothing is committed twice and a second retry writes nothing new.

The run's stages run through the plain functions (what the DAG's tasks call); the select task runs the real
``select_and_commit`` in a child process that SIGKILLs itself right after ``Datapool.commit`` returns.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C

from .runs import prepare as _prepare

KILLED_AFTER_COMMIT = textwrap.dedent(
    """
    import json, os, signal, sys
    from lightly_airflow import pipeline
    from lightly_airflow.datapool import Datapool

    pool_uri, run_id, manifests, selection = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    real_commit = Datapool.commit

    def commit_then_die(self, *a, **k):
        real_commit(self, *a, **k)
        os.kill(os.getpid(), signal.SIGKILL)

    Datapool.commit = commit_then_die
    pipeline.select_and_commit(datapool_uri=pool_uri, run_id=run_id, dag_id="t", manifests=manifests,
                               selection_config=selection)
    print("finished")
    """
)
VIDEO_SELECTION = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _kill_after_commit(pool: Path, run_id: str, manifests: list[str], selection: dict) -> None:
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT, f"file://{pool}", run_id, json.dumps(manifests),
         json.dumps(selection)], capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert "finished" not in child.stdout


def _retry(pool: Path, run_id: str, manifests: list[str], selection: dict):
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                             selection_config=selection)


def _finished(pool: Path, run_id: str, summary) -> None:
    """One version, the report and the receipt there, the staging files gone."""
    from lightly_airflow import staging
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.receipts import read_receipt

    assert summary.already_committed and summary.version == 1 and Datapool(f"file://{pool}").version() == 1
    assert (pool / "_reports" / staging.run_slug(run_id) / "index.html").is_file()
    assert read_receipt(f"file://{pool}", run_id)["version"] == 1
    assert not (pool / "_staging" / staging.run_slug(run_id)).exists()


def test_a_kill_after_the_commit_of_a_video_run_writes_the_selected_frames_on_retry(tmp_path) -> None:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.video.synthetic import make_scene_video

    source, pool = tmp_path / "videos", tmp_path / "pool"
    make_scene_video(str(source / "a.avi"), "astronaut", 12, seed=1)
    make_scene_video(str(source / "sub" / "b c.mp4"), "coffee", 12, seed=2)
    manifests = _prepare(source, pool, "r1", VIDEO_SELECTION)
    _kill_after_commit(pool, "r1", manifests, VIDEO_SELECTION)
    rows = Datapool(f"file://{pool}").read()
    picked = rows.filter(rows.column(C.SELECTED)).column(C.KEY).to_pylist()
    assert len(picked) == 6 and rows.num_rows == 24
    frames = source / ".lightly" / "frames"
    assert not any((frames / k).exists() for k in picked)  # the worker died before writing them

    summary = _retry(pool, "r1", manifests, VIDEO_SELECTION)
    _finished(pool, "r1", summary)
    assert summary.frames["written"] == 6 and summary.frames["failed"] == 0
    assert sorted(str(p.relative_to(frames)) for p in frames.rglob("*.png")) == sorted(picked)
    assert all((frames / k).read_bytes().startswith(b"\x89PNG") for k in picked)
    stamps = {k: (frames / k).stat().st_mtime_ns for k in picked}
    again = _retry(pool, "r1", manifests, VIDEO_SELECTION)  # a second retry: nothing to do, nothing rewritten
    assert again.already_committed and {k: (frames / k).stat().st_mtime_ns for k in picked} == stamps
    assert Datapool(f"file://{pool}").read().num_rows == 24


def test_a_kill_after_the_commit_of_an_object_run_writes_the_crops_on_retry(tmp_path) -> None:
    pytest.importorskip("skimage")
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.objects.crops import crop_relpath
    from lightly_airflow.objects.demo_data import TASK, add_images, write_task

    source, pool = tmp_path / "images", tmp_path / "pool"
    write_task(source)
    add_images(source, 0, 12, seed=3)
    selection = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    worker = {"object_level": {"padding": 0.1}}
    manifests = _prepare(source, pool, "r1", selection, worker)
    _kill_after_commit(pool, "r1", manifests, selection)
    rows = Datapool(f"file://{pool}").read()
    chosen = rows.filter(pc.fill_null(rows.column(C.OBJECT_SELECTED), False))
    expected = sorted(crop_relpath(r[C.PARENT_KEY], TASK, r[C.OBJECT_INDEX]) for r in chosen.to_pylist())
    assert expected and not (source / ".lightly" / "crops").exists()  # the worker died before writing them

    summary = _retry(pool, "r1", manifests, selection)
    _finished(pool, "r1", summary)
    assert summary.objects["crops"]["written"] == len(expected) and summary.objects["crops"]["failed"] == 0
    lightly = source / ".lightly"
    assert sorted(str(p.relative_to(lightly)) for p in (lightly / "crops").rglob("*.png")) == expected
    page = next((pool / "_reports").glob("*/index.html")).read_text()
    assert "Objects of the selected images" in page  # the rebuilt report draws them as the first one would
    again = _retry(pool, "r1", manifests, selection)
    assert again.already_committed and Datapool(f"file://{pool}").version() == 1


def test_a_retry_after_the_commit_answers_with_the_committing_attempts_metrics_notes_and_warnings(tmp_path) -> None:
    """The retry's summary (the task's XCom, and the report it rebuilds) is the one the committing attempt recorded
    before its commit, not one rebuilt from the commit's counts alone (which had no metrics, notes or warnings)."""
    from lightly_airflow.video.synthetic import make_scene_video

    selection = {"n_samples": 6, "strategies": [  # (more neighbours than the 12 frames: warned)
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY", "num_nearest_neighbors": 50}}]}
    source, pool = tmp_path / "videos", tmp_path / "pool"
    make_scene_video(str(source / "a.mp4"), "astronaut", 12, seed=1)
    manifests = _prepare(source, pool, "r1", selection)
    _kill_after_commit(pool, "r1", manifests, selection)
    retried = _retry(pool, "r1", manifests, selection)
    _finished(pool, "r1", retried)
    again = _retry(pool, "r1", manifests, selection)  # (staging files gone, report there)
    for summary in (retried, again):
        assert summary.already_committed and summary.version == 1 and summary.selected == 6
        assert summary.metrics["coverage_radius"] > 0 and summary.metrics["n_selected"] == 6
        assert set(summary.metrics["objectives"]) == {"strategies[0]", "strategies[1]"}
        assert any("num_nearest_neighbors" in w for w in summary.warnings), summary.warnings
    assert (again.metrics, again.warnings, again.notes) == (retried.metrics, retried.warnings, retried.notes)
