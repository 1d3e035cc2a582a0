"""A moved video's carried picks get their PNGs under their new frame names (``.lightly/frames/``) in the run
that moved them: an export of ``initial-tag`` names those PNGs. Before, only the run's own picks were written: the
moved picks' PNGs did not exist (real videos, real runs, a real Delta pool)."""

from __future__ import annotations

from pathlib import Path

from video.runs import run_once

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.video.synthetic import make_scene_video

CONFIG = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def test_a_moved_videos_carried_picks_have_their_pngs(tmp_path: Path) -> None:
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    make_scene_video(str(src / "clip.mp4"), "astronaut", 9, seed=1)
    run_once(f"file://{src}", f"file://{pool_dir}", "r1", config=CONFIG)
    pool = Datapool(f"file://{pool_dir}")
    picks = pool.selected().column(C.KEY).to_pylist()
    frames = src / ".lightly" / "frames"
    assert sorted(p.name for p in frames.iterdir() if p.is_file()) == sorted(picks)
    (src / "moved").mkdir()
    (src / "clip.mp4").rename(src / "moved" / "clip.mp4")
    _, _, summary = run_once(f"file://{src}", f"file://{pool_dir}", "r2", config=CONFIG)
    assert summary.moves["moved_selected"] == len(picks)
    assert sorted(p.name for p in (frames / "moved").iterdir()) == sorted(picks)


def test_a_dry_runs_note_counts_a_moved_video_once(tmp_path: Path) -> None:
    """A dry run's note counts moved files (a video once, not its frames: it said "12 of the 1 moved files")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lightly_airflow.pipeline import RunSummary, _note_moves_a_commit_would_make

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    make_scene_video(str(src / "clip.mp4"), "astronaut", 9, seed=1)
    run_once(f"file://{src}", f"file://{pool_dir}", "r1", config=CONFIG)
    snap = Datapool(f"file://{pool_dir}").snapshot()
    old = snap.read()
    old = old.filter(pc.equal(old.column(C.VIDEO), "clip.mp4"))
    n = old.num_rows
    rows = pa.table(
        {
            C.KEY: [f"moved/{k}" for k in old.column(C.KEY).to_pylist()],
            C.STATUS: ["duplicate"] * n,
            C.SELECTED: [False] * n,
            C.CONTENT_HASH: old.column(C.CONTENT_HASH),
            C.ETAG: old.column(C.ETAG),
            C.VIDEO: ["moved/clip.mp4"] * n,
            C.FRAME_INDEX: old.column(C.FRAME_INDEX),
            C.EMBEDDING: old.column(C.EMBEDDING),
        }
    )
    dry = RunSummary(run_id="dry", tag=None, version=snap.version, dry_run=True)
    _note_moves_a_commit_would_make(dry, snap, rows, [("moved/clip.mp4", "clip.mp4")])
    assert dry.notes[0].startswith("Dry run: a commit would let 1 of the 1 moved or renamed files take over")
