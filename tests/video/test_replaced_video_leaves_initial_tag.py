"""A video replaced under its name: its former picks leave ``initial-tag``, and ``.lightly/frames/`` holds the
current version's picks only.

The pool keeps the latest row per key (docs/datapool.md), and a replaced video's frames keep their names, so a
former pick whose name the new version has again but does not select (a newer, unselected version of the frame),
or no longer has (a tombstone), is no sample of ``initial-tag`` any more; a newer row of the same content (a
``process_all`` run) leaves a selection standing. Before,
``Snapshot.selected()`` took the latest row among the *selected* rows only, so those former picks stayed in
``initial-tag`` (``selected()``, ``read(tag=…)``, the tag counts, the listing's ``pool_files`` and
``datapool export --tag initial-tag``); and the run that processed the new version rewrote the PNG of every
former pick from the new content, selected or not, so the export of the earlier run's tag handed pictures nobody
picked to the labelling tool, silently. Now a former pick's PNG is rewritten only where the new version selects
that frame (the earlier tag's export says so), and removed otherwise (the earlier tag's export says so too).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.compute as pc
import pytest

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video

from .runs import run_once


def _config(n: int) -> dict:
    return {"n_samples": n, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _picks(pool, run_id: str) -> dict[str, str]:
    rows = pool.read(run_id=run_id)
    rows = rows.filter(pc.and_(pc.equal(rows.column(C.RUN_ID), run_id), pc.fill_null(rows.column(C.SELECTED), False)))
    return dict(zip(rows.column(C.KEY).to_pylist(), (str(e) for e in rows.column(C.ETAG).to_pylist()), strict=True))


def test_a_replaced_videos_former_picks_leave_initial_tag_and_keep_no_png_of_other_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.export import export_records, replaced_frames
    from lightly_airflow.datasource.known import pool_files
    from lightly_airflow.video.export import png_etag

    src, pool_dir = tmp_path / "bucket", tmp_path / "pool"
    make_scene_video(str(src / "clip.mp4"), "astronaut", 24, seed=1)
    run_once(f"file://{src}", f"file://{pool_dir}", "r1", config=_config(10))
    pool = Datapool(f"file://{pool_dir}")
    first = _picks(pool, "r1")
    assert len(first) == 10

    make_scene_video(str(src / "clip.mp4"), "rocket", 12, seed=7)  # replaced: shorter, other content, same names
    _, _, s2 = run_once(f"file://{src}", f"file://{pool_dir}", "r2", config=_config(3))
    second = _picks(pool, "r2")
    assert len(second) == 3
    new_etag = next(iter(second.values()))
    assert new_etag not in set(first.values())
    names_again = {f"clip-{i:02d}-mp4.png" for i in range(12)}
    repicked = set(first) & set(second)  # selected in both versions: the PNG shows the new pick
    not_repicked = (set(first) & names_again) - set(second)  # the new version has the frame and did not pick it
    tombstoned = set(first) - names_again  # the new version has no such frame
    assert not_repicked and tombstoned, (sorted(first), sorted(second))  # the test covers both cases

    # initial-tag: every key whose latest row is selected, i.e. exactly r2's picks (r1's other picks left it).
    snap = pool.snapshot()
    selected = snap.selected([C.KEY, C.ETAG, C.RUN_ID])
    assert sorted(selected.column(C.KEY).to_pylist()) == sorted(second)
    assert set(selected.column(C.RUN_ID).to_pylist()) == {"r2"}
    assert sorted(pool.selected([C.KEY]).column(C.KEY).to_pylist()) == sorted(second)
    assert sorted(pool.read(tag=C.INITIAL_TAG, columns=[C.KEY]).column(C.KEY).to_pylist()) == sorted(second)
    counts = {t["name"]: t["count"] for t in pool.tags()}
    assert counts[C.INITIAL_TAG] == 3 and counts["r1"] == 10 and counts["r2"] == 3
    # A run's tag stays history: what that run selected, the former version's rows.
    r1_rows = pool.read(tag="r1", columns=[C.KEY, C.ETAG])
    assert dict(zip(r1_rows.column(C.KEY).to_pylist(), map(str, r1_rows.column(C.ETAG).to_pylist()))) == first
    # The listing's view of the pool (gone files are counted by it): selected = in initial-tag.
    files = pool_files(snap, f"file://{src}")
    assert files is not None
    assert sorted(k for k, s in zip(files.column(C.KEY).to_pylist(), files.column(C.SELECTED).to_pylist()) if s) \
        == sorted(second)

    # .lightly/frames/ holds one PNG per frame name, the current version's pick: r2's picks, from the new content.
    frames = src / ".lightly" / "frames"
    on_disk = {p.name: png_etag(p.read_bytes()) for p in frames.iterdir()}
    assert on_disk == {k: new_etag for k in second}, on_disk
    assert s2.frames["removed"] == len(not_repicked) + len(tombstoned)

    # The export of initial-tag names only PNGs that exist, and says nothing is replaced.
    caplog.set_level(logging.WARNING, logger="lightly_airflow.datapool.export")
    records = export_records(pool, C.INITIAL_TAG, datasource_uri=f"file://{src}")
    assert sorted(r.key for r in records) == sorted(second)
    assert all((frames / r.key).is_file() for r in records)
    assert not [m for m in caplog.messages if "replaced since" in m]

    # The export of r1's tag names its picks (history) and says their pictures were replaced or removed.
    caplog.clear()
    old = export_records(pool, "r1", datasource_uri=f"file://{src}")
    assert sorted(r.key for r in old) == sorted(first)
    found = replaced_frames(snap, pool.read(tag="r1", columns=[C.KEY, C.ETAG, "commit_version", C.VIDEO]), old)
    assert sorted(u.rsplit("/", 1)[-1] for u in found.replaced) == sorted(repicked)
    assert sorted(u.rsplit("/", 1)[-1] for u in found.removed) == sorted(not_repicked | tombstoned)
    warning = [m for m in caplog.messages if "replaced since" in m]
    assert len(warning) == 1 and "10 of the 10 exported samples of tag 'r1'" in warning[0]
    assert f"{len(not_repicked) + len(tombstoned)} were removed" in warning[0]
    # r2's own tag: its frames are the current picks, no warning.
    caplog.clear()
    export_records(pool, "r2", datasource_uri=f"file://{src}")
    assert not [m for m in caplog.messages if "replaced since" in m]

    # A newer row of the same content (process_all: every frame again, r2's picks not selected again as they were
    # selected before) leaves the selections standing: initial-tag, its count, pool_files and the PNGs stay.
    _, _, s3 = run_once(f"file://{src}", f"file://{pool_dir}", "r3", config=_config(3), process_all=True)
    assert s3.processed == 12
    assert sorted(pool.selected([C.KEY]).column(C.KEY).to_pylist()) == sorted([*second, *_picks(pool, "r3")])
    snap = pool.snapshot()
    assert {t["name"]: t["count"] for t in snap.tags()}[C.INITIAL_TAG] == 3 + len(_picks(pool, "r3"))
    assert pool.read(tag=C.INITIAL_TAG, columns=[C.KEY]).num_rows == 3 + len(_picks(pool, "r3"))
    files = pool_files(snap, f"file://{src}")
    assert files is not None
    assert sorted(k for k, s in zip(files.column(C.KEY).to_pylist(), files.column(C.SELECTED).to_pylist()) if s) \
        == sorted([*second, *_picks(pool, "r3")])
    caplog.clear()
    export_records(pool, "r2", datasource_uri=f"file://{src}")
    assert not [m for m in caplog.messages if "replaced since" in m]
    third = _picks(pool, "r3")
    assert {p.name: png_etag(p.read_bytes()) for p in frames.iterdir()} == {k: new_etag for k in [*second, *third]}
    # r2's picks still show in their PNGs (r3's rows of them are not selected: selected before), r3's picks too.
    again = replaced_frames(snap, pool.read(tag="r1", columns=[C.KEY, C.ETAG, "commit_version", C.VIDEO]), old)
    assert sorted(u.rsplit("/", 1)[-1] for u in again.replaced) == sorted(repicked | (set(first) & set(third)))
    assert sorted(u.rsplit("/", 1)[-1] for u in again.removed) == sorted(set(first) - set(second) - set(third))


def test_label_studio_tasks_of_frames_carry_the_video_frame_index_pts_and_seconds(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.export import export_records, label_studio_tasks

    src, pool_dir = tmp_path / "bucket", tmp_path / "pool"
    make_scene_video(str(src / "clip.mp4"), "coffee", 6, seed=3)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(src / "photo.jpg")
    run_once(f"file://{src}", f"file://{pool_dir}", "r1", config=_config(100))
    pool = Datapool(f"file://{pool_dir}")
    tasks = {t["meta"]["key"]: t for t in label_studio_tasks(export_records(pool, "r1", datasource_uri=f"file://{src}"), "r1")}
    assert len(tasks) == 7
    rows = {r[C.KEY]: r for r in pool.read(columns=[C.KEY, C.FRAME_INDEX, C.FRAME_PTS, C.FRAME_SECONDS]).to_pylist()}
    for i in range(6):
        key = f"clip-{i}-mp4.png"
        meta = tasks[key]["meta"]
        assert meta["video"] == "clip.mp4" and meta["frame_index"] == i
        assert meta["frame_pts"] == rows[key][C.FRAME_PTS] and isinstance(meta["frame_pts"], int)
        assert meta["frame_seconds"] == pytest.approx(i / 24, abs=1e-3)
        assert tasks[key]["data"]["image"].endswith(f"/.lightly/frames/{key}")
    image = tasks["photo.jpg"]["meta"]
    assert not {"video", "frame_index", "frame_pts", "frame_seconds"} & set(image)
    assert image["key"] == "photo.jpg" and image["tag"] == "r1"
