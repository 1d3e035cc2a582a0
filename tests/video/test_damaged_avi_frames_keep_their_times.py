"""AVI files with damaged chunks in their ``movi`` list: each frame keeps the time a player shows it at, and the
frames lost are counted like those of the other containers (one problem row with the fix, summed in the notes).

Before: FFmpeg times AVI chunks by counting those it read, so after 1.5 kB of flipped bytes (3 chunks skipped) or
3 kB of zeros (5 skipped) in a 48-frame file every later frame was listed three (five) frames early, and the file
was "the video ends early: 45 frames are readable of the 48" with the wrong fix and no lost-frame count.

The videos are all-intra MPEG-4 Part 2 (a camera's ``DX50``/``XVID`` AVI) with the frame number in their grey
level, so a decoded frame's content says which frame it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from .test_damaged_videos_count_their_lost_frames import RATE, N, W, _damage
from .test_damaged_videos_count_their_lost_frames import _video as _encoded


def _avi(path: Path) -> bytes:
    """48 all-intra MPEG-4 Part 2 frames (a camera's ``DX50``/``XVID`` AVI), frame i grey 5 * i on its left half."""
    return _encoded(path, "mpeg4")


def _shown(frame: Any) -> float:
    """The frame number a decoded frame shows (its grey level / 5)."""
    return float(frame.to_ndarray(format="rgb24")[4:-4, 4 : W // 2 - 8, 1].mean()) / 5


@pytest.mark.parametrize("how", ["flip", "zero"])
def test_frames_after_damaged_avi_chunks_keep_their_times(tmp_path: Path, how: str) -> None:
    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.index import index_video

    path = tmp_path / f"{how}.avi"
    path.write_bytes(_damage(_avi(tmp_path / "whole.avi"), how))
    with path.open("rb") as fh:  # (a file object, as the store hands it)
        info = index_video(fh)
    assert 0 < info.n_frames < N and info.seekable, (info.n_frames, info.problem)
    seconds = [info.seconds(i) for i in range(info.n_frames)]
    assert max(np.diff(np.asarray(seconds, dtype=float))) == pytest.approx((N - info.n_frames + 1) / RATE)
    # every frame decoded from the start, and a shard's range found by seeking, shows the frame of its time
    for wanted in (list(enumerate(info.pts)), list(enumerate(info.pts))[info.n_frames // 2 :]):
        with path.open("rb") as fh:
            got = {g.index: g.frame for g in decode_frames(fh, wanted, seekable=info.seekable)}
        assert sorted(got) == [i for i, _ in wanted]
        shown = {i: _shown(f) for i, f in got.items() if f is not None and not f.is_corrupt}
        assert len(shown) >= len(wanted) - 2  # (the damaged chunk's neighbours may not decode)
        late = {i: (round(s, 1), seconds[i] * RATE) for i, s in shown.items() if abs(s - seconds[i] * RATE) >= 1}
        assert not late, late

    problem = info.problem or ""
    said = re.search(r"^the video is damaged: (\d+) frames are missing", problem)
    assert said and int(said[1]) == info.lost_frames == N - info.n_frames, problem
    assert "ends early" not in problem and "Fix: upload an undamaged copy" in problem, problem


def test_a_healthy_avi_keeps_ffmpegs_times(tmp_path: Path) -> None:
    from lightly_airflow.video.avi import chunk_ticks
    from lightly_airflow.video.index import index_video

    path = tmp_path / "whole.avi"
    data = _avi(path)
    info = index_video(str(path))
    assert info.n_frames == N and info.pts == list(range(N)) and info.problem is None and info.lost_frames == 0
    ticks = chunk_ticks(str(path), 0)
    assert ticks is not None and sorted(ticks.values()) == list(range(N))
    assert all(data[pos - 8 : pos - 4] == b"00dc" for pos in ticks)  # (each at its chunk's data)
    assert chunk_ticks(str(path), 1) is None  # (no such stream)
    cut = tmp_path / "no-index.avi"  # a recording that stopped before its idx1 was written: FFmpeg's times
    cut.write_bytes(data[: data.rfind(b"idx1")])
    assert chunk_ticks(str(cut), 0) is None and index_video(str(cut)).pts == list(range(N))


def test_the_listing_counts_the_frames_a_damaged_avi_lost(tmp_path: Path) -> None:
    from lightly_airflow import columns as C
    from lightly_airflow.video.listing import expand_videos

    data = _avi(tmp_path / "whole.avi")
    source = tmp_path / "bucket"
    source.mkdir()
    (source / "cam.avi").write_bytes(_damage(data, "flip"))
    (source / "good.avi").write_bytes(data)
    files = pa.table({C.KEY: ["cam.avi", "good.avi"], C.SIZE: [1, 1], C.ETAG: ["a", "b"],
                      C.MTIME: pa.array([None] * 2, pa.timestamp("us", "UTC"))})
    notes: list[str] = []
    rows = expand_videos(files, f"file://{source}", notes=notes).to_pylist()
    cam = [r for r in rows if r[C.VIDEO] == "cam.avi"]
    problems = [r[C.VIDEO_PROBLEM] for r in cam if r[C.FRAME_INDEX] is None]
    frames = [r for r in cam if r[C.FRAME_INDEX] is not None]
    lost = N - len(frames)
    assert lost > 0 and len(problems) == 1 and problems[0].startswith(f"the video is damaged: {lost} frames are "
                                                                      "missing"), problems
    assert frames[-1][C.FRAME_SECONDS] == pytest.approx((N - 1) / RATE)  # the last frame at the end, not earlier
    assert not [r for r in rows if r[C.VIDEO] == "good.avi" and r[C.FRAME_INDEX] is None]
    assert notes == [f"{lost} frames are missing from 1 damaged videos (the demuxer skipped unreadable data; each "
                     f"video's problem row says where and the fix), e.g. 'cam.avi' ({lost})"], notes


def test_frames_counted_from_the_start_keep_their_place_after_a_packet_that_does_not_decode(tmp_path: Path) -> None:
    """Frames without timestamps (raw H.264/HEVC streams, timestamps that are no frame clock) are found by counting
    decoded frames: a packet that does not decode costs its own frame only. Before, every later frame took the
    number before its own and the last one was reported undecodable instead of the damaged one."""
    import av

    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.index import index_video

    data = bytearray(_avi(tmp_path / "whole.avi"))
    with av.open(str(tmp_path / "whole.avi")) as container:
        chunk = [p for p in container.demux(container.streams.video[0]) if p.size][20]
        at, size = chunk.pos, chunk.size
    data[at + 4 : at + size] = bytes(size - 4)  # frame 20's chunk zeroed: it stays a packet that does not decode
    path = tmp_path / "zeroed.avi"
    path.write_bytes(bytes(data))
    info = index_video(str(path))
    by_pts = {g.index: g for g in decode_frames(str(path), list(enumerate(info.pts)), seekable=info.seekable)}
    counted = {g.index: g for g in decode_frames(str(path), [(i, None) for i in range(info.n_frames)], seekable=False)}
    failed = [i for i, g in counted.items() if g.frame is None]
    assert failed and failed == [i for i, g in by_pts.items() if g.frame is None], failed
    assert "damaged data" in (counted[failed[0]].reason or "") and failed[-1] < info.n_frames - 1
    assert {i: round(_shown(g.frame)) for i, g in counted.items() if g.frame is not None} == {
        i: round(_shown(g.frame)) for i, g in by_pts.items() if g.frame is not None}
