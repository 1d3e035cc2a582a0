"""A video moved in the datasource (same bytes, new key): its frames take over the former video's frames' samples
in the run's commit (``datapool.moves``), as a moved image takes over its sample.

Before, the pairing found the move (``moved/clip.mp4`` was ``clip.mp4``) but the commit refused it ("the new key is
not among the run's rows": a video has no row of its own, its frames have): the new frames stayed duplicates that
no run could ever select, ``initial-tag`` and the first run's tag kept naming frames of a file that no longer
exists, and every later run counted ``clip.mp4`` gone. Real videos (PyAV), real runs, a real Delta pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from video.runs import run_once

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records
from lightly_airflow.datapool.moves import MOVED_FROM, MOVED_PREFIX, plan_moves
from lightly_airflow.datapool.tagging import create_tag
from lightly_airflow.video.synthetic import make_scene_video

N_FRAMES, N_PICKS = 12, 4
CONFIG = {"n_samples": N_PICKS, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _latest(pool: Datapool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(pool.read().to_pylist(), key=lambda r: r["commit_version"]):
        out[r[C.KEY]] = r
    return out


def _run(src: Path, pool_dir: Path, run_id: str) -> Any:
    return run_once(f"file://{src}", f"file://{pool_dir}", run_id, config=CONFIG)


def test_a_moved_videos_frames_take_over_their_selection_tags_and_ranks(tmp_path: Path) -> None:
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    make_scene_video(str(src / "clip.mp4"), "astronaut", N_FRAMES, seed=1)
    _run(src, pool_dir, "r1")
    pool = Datapool(f"file://{pool_dir}")
    picks = pool.selected().column(C.KEY).to_pylist()  # (pick order)
    assert len(picks) == N_PICKS and all(k.startswith("clip-") for k in picks)
    ranks = {k: r[C.PICK_RANK] for k, r in _latest(pool).items() if r[C.SELECTED]}
    rows = pool.read(columns=[C.SAMPLE_ID, "commit_version", C.KEY])
    create_tag(pool, "hand-made", rows.filter(pc.is_in(rows.column(C.KEY), pa.array(picks[:2]))))

    (src / "moved").mkdir()
    (src / "clip.mp4").rename(src / "moved" / "clip.mp4")  # a re-organisation: same bytes, new key
    listed, _, summary = _run(src, pool_dir, "r2")
    assert summary.listing["gone_moved"] == 1  # (the listing paired the video: that was never the problem)
    assert summary.moved == 1 and summary.moves == {"moved": 1, "moved_selected": N_PICKS}
    assert pool.history()[-1]["counts"]["moved"] == 1

    now = {f"moved/{k}" for k in picks}
    assert pool.selected().column(C.KEY).to_pylist() == [f"moved/{k}" for k in picks]  # same order
    latest = _latest(pool)
    for k in picks:
        new, old = latest[f"moved/{k}"], latest[k]
        assert (new[C.STATUS], new[C.SELECTED], new[MOVED_FROM], new[C.VIDEO]) == ("ok", True, k, "moved/clip.mp4")
        assert new[C.PICK_RANK] == ranks[k] and "r1" in new[C.TAGS] and "initial-tag" in new[C.TAGS]
        assert (old[C.STATUS], old[C.VIDEO]) == ("missing", "clip.mp4")
        assert old[C.STATUS_REASON].startswith(f"{MOVED_PREFIX}'moved/{k}'")
        assert old[C.FRAME_INDEX] == new[C.FRAME_INDEX]
    # every frame moved, the unselected ones too (each a sample of the moved file, no duplicate left behind)
    frames = [r for r in latest.values() if r[C.VIDEO] == "moved/clip.mp4"]
    assert len(frames) == N_FRAMES and all(r[C.STATUS] == "ok" and r[MOVED_FROM] for r in frames)
    assert {r.key for r in export_records(pool, "initial-tag")} == now
    assert [r.key for r in export_records(pool, "r1")] == [f"moved/{k}" for k in picks]  # r1's picks, live
    assert {r.key for r in export_records(pool, "hand-made")} == {f"moved/{k}" for k in picks[:2]}
    assert set(picks) <= set(pool.read(version=summary.version - 1, tag="initial-tag").column(C.KEY).to_pylist())

    # the next listing: nothing gone, nothing new; the moved frames are known under their video's new key
    (src / "other").mkdir()
    make_scene_video(str(src / "other" / "b.mp4"), "coffee", 6, seed=3)
    listed, _, third = _run(src, pool_dir, "r3")
    assert not third.listing.get("gone") and not third.listing.get("gone_moved") and third.moved == 0
    known = pool.known_files().column(C.KEY).to_pylist()
    assert not any(k.startswith("clip-") for k in known) and f"moved/{picks[0]}" in known

    # moved back: a new file again, and it takes its frames' samples back
    (src / "moved" / "clip.mp4").rename(src / "clip.mp4")
    _, _, back = _run(src, pool_dir, "r4")
    assert back.moved == 1 and set(pool.selected().column(C.KEY).to_pylist()) >= set(picks)
    assert not any(k.startswith("moved/") for k in pool.selected().column(C.KEY).to_pylist())


def test_a_moved_video_whose_frames_do_not_all_pair_up_is_not_taken_over(tmp_path: Path) -> None:
    """A run holding only some of the moved video's frames (the old video's other frames have no counterpart) takes
    over none: a part would leave the other frames live under a video that is gone; the run's rows stay as they
    are and the log says why."""
    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    make_scene_video(str(src / "clip.mp4"), "astronaut", N_FRAMES, seed=1)
    _run(src, pool_dir, "r1")
    pool = Datapool(f"file://{pool_dir}")
    snap = pool.snapshot()
    old = snap.read()
    old = old.filter(pc.equal(old.column(C.VIDEO), "clip.mp4"))
    keys = [f"moved/{k}" for k in old.column(C.KEY).to_pylist()]
    rows = pa.table(
        {
            C.KEY: keys,
            C.STATUS: ["duplicate"] * len(keys),
            C.SELECTED: [False] * len(keys),
            C.CONTENT_HASH: old.column(C.CONTENT_HASH),
            C.ETAG: old.column(C.ETAG),
            C.VIDEO: ["moved/clip.mp4"] * len(keys),
            C.FRAME_INDEX: old.column(C.FRAME_INDEX),
            C.EMBEDDING: old.column(C.EMBEDDING),
        }
    )
    whole = plan_moves(snap, rows, [("moved/clip.mp4", "clip.mp4")])
    assert len(whole) == N_FRAMES and {m.file for m in whole} == {"moved/clip.mp4"}
    assert {(m.new_key, m.old_key) for m in whole} == {(f"moved/{k}", k) for k in old.column(C.KEY).to_pylist()}
    assert plan_moves(snap, rows.slice(0, N_FRAMES - 1), [("moved/clip.mp4", "clip.mp4")]) == []
