"""A demux error in a merged decode pass (one pass serving several runs of wanted frames of a video) is tried again
instead of making every frame the pass had not reached ``corrupt`` for good.

Before: one failed read half way through a pass (a disk's or network mount's ``EIO``, a reset connection of a file
object) ended it, and the frames of the later runs were ``corrupt`` with "the video breaks here: OSError:
Input/output error. Fix: the video is damaged at this frame", committed as such: an unchanged video is never
decoded again, so the error was remembered for good though a second read passes. Now the frames decoded before the
error are kept, the rest are decoded again (each run with its own seek); a read error that fails again fails the
task with the video's name and the fix (Airflow retries it; nothing is committed ``corrupt``), and an error of the
data confined to one run costs that run's frames only."""

from __future__ import annotations

import contextlib
import errno
import io
from pathlib import Path

import av
import numpy as np
import pytest

from lightly_airflow.video.decode import _passes, _runs, _sample_table, decode_frames
from lightly_airflow.video.index import index_video
from lightly_airflow.video.source import VideoReadError
from lightly_airflow.video.synthetic import _encode, scene, scene_frames

N = 96
WANTED = [*range(0, 4), *range(20, 24), *range(40, 44), *range(60, 64)]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 MB H.264 MP4 (one keyframe: all the wanted runs are one pass), larger than FFmpeg's probe reads."""
    path = tmp_path_factory.mktemp("merged") / "clip.mp4"
    rng = np.random.default_rng(0)

    def pictures():  # noqa: ANN202
        for a in scene_frames(scene("astronaut"), N, (320, 240), seed=1):
            a = a.copy()
            a[::3, ::3] = rng.integers(0, 255, a[::3, ::3].shape, dtype=np.uint8)
            yield av.VideoFrame.from_ndarray(a, format="rgb24")

    _encode(str(path), "mp4", "libx264", {"g": "200", "preset": "ultrafast", "crf": "20"}, "yuv420p", pictures(),
            rate=24, size=(320, 240))
    return path


class _Disk(io.FileIO):
    """The video's bytes as a file object whose reads of ``bad`` (a byte range) fail ``times`` times (a disk's bad
    stretch), raising ``error``; with ``drops``, every read fails once one has (a mount that dropped out)."""

    def __init__(self, path: Path, bad: tuple[int, int], times: int, error: BaseException, drops: bool = False) -> None:
        super().__init__(str(path))
        self.bad, self.times, self.error, self.failed, self.drops = bad, times, error, 0, drops

    def read(self, size: int = -1) -> bytes:
        at = self.tell()
        end = at + (size if size is not None and size >= 0 else 1 << 40)
        if (at < self.bad[1] and end > self.bad[0] and self.failed < self.times) or (self.drops and self.failed):
            self.failed += 1
            raise self.error
        return super().read(size)


def _wanted(path: Path) -> list[tuple[int, int | None]]:
    info = index_video(str(path))
    wanted = [(i, info.pts[i]) for i in WANTED]
    with av.open(str(path)) as container:  # (the wanted runs are one pass: the case at stake)
        assert len(_passes(_runs(wanted), _sample_table(container.streams.video[0]))) == 1
    return wanted


def _pixels(path: Path) -> dict[int, np.ndarray]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    return {i: frames[i] for i in WANTED}


def test_a_read_error_that_passes_costs_no_frame(video: Path) -> None:
    wanted, size = _wanted(video), video.stat().st_size
    disk = _Disk(video, (size // 2, size // 2 + 1), 1, OSError(errno.EIO, "Input/output error"))
    with disk:
        got = list(decode_frames(disk, wanted))
    assert disk.failed == 1  # (the error happened, inside the pass)
    failed = [(g.index, g.reason) for g in got if g.frame is None]
    assert not failed, failed  # before: frames 60-63 "the video breaks here: OSError: Input/output error"
    clean = _pixels(video)
    assert sorted(g.index for g in got) == WANTED
    for g in got:
        assert np.array_equal(g.frame.to_ndarray(format="rgb24"), clean[g.index])


def test_a_read_error_that_stays_fails_the_task_naming_the_video(video: Path, monkeypatch) -> None:
    """A read error that fails again while the disk reads nothing else (a mount that dropped out) is no damage of the
    video: the task fails (and is retried) with the video's name and the fix, instead of committing its frames
    corrupt. (A bad stretch, which fails again while the rest of the file reads: ``tests/test_video_s67_bad_stretch.py``.)"""
    from lightly_airflow.video import frames as frames_module
    from lightly_airflow.video.frames import FrameRow, iter_frame_results

    wanted, size = _wanted(video), video.stat().st_size
    moov = video.read_bytes().rfind(b"moov") - 4  # (the index at the end stays readable: the frames' bytes fail)

    @contextlib.contextmanager
    def flaky_disk(datasource_uri, key, credentials=None, **kwargs):  # noqa: ANN001, ANN202
        with _Disk(video, (size // 2, moov), 10**6, OSError(errno.EIO, "Input/output error"), drops=True) as disk:
            yield disk

    monkeypatch.setattr(frames_module, "open_video_source", flaky_disk)
    rows = [FrameRow(row=i, video="cams/clip.mp4", index=index, pts=pts) for i, (index, pts) in enumerate(wanted)]
    seen = []
    with pytest.raises(VideoReadError) as raised:
        for result in iter_frame_results(str(video.parent), rows, input_size=None):
            seen.append(result)
    message = str(raised.value)
    assert message.startswith("video 'cams/clip.mp4': reading the video failed twice before frame")
    assert "not damage of the video" in message and "Fix: if it persists, check the disk" in message
    assert not [r for r in seen if r.status != "ok"]  # (no frame was marked corrupt before the task failed)


def test_an_error_of_the_data_in_one_run_costs_that_run_only(video: Path) -> None:
    """An error the demuxer hands on while reading one stretch of the file, again on the second read (damage there),
    makes that run's frames corrupt with the error and the fix; the later runs are decoded by their own seeks."""
    wanted = _wanted(video)
    with av.open(str(video)) as container:
        entries = container.streams.video[0].index_entries
        start, end = entries[41].pos, entries[42].pos + entries[42].size  # (frames 41-42 of the run 40-43)
    with _Disk(video, (start, end), 2, ValueError("damaged chunk")) as disk:
        got = {g.index: g for g in decode_frames(disk, wanted)}
    failed = sorted(i for i, g in got.items() if g.frame is None)
    assert failed and set(failed) <= set(range(40, 44)), failed  # before: every frame from the error on: 41-63
    assert all(got[i].frame is not None for i in [*range(0, 4), *range(20, 24), *range(60, 64)])
    why = got[failed[0]].reason or ""
    assert "damaged chunk" in why and "again when decoded a second time" in why and "Fix:" in why
