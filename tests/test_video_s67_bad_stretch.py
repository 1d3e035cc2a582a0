"""A stretch of a video that its disk or store never reads (a bad sector: every read of bytes [a, b) fails with
``EIO``) costs the frames of that stretch only; the task does not fail on every retry.

Before: a read error that failed again at the same place raised ``VideoReadError`` so that Airflow retried the task,
right for a mount that dropped out, but a bad sector fails every retry in the same way, and one video sank the run.
Now, while the disk still reads the video elsewhere (its start or end), the frames from the failed one up to the next
keyframe past the bad bytes are ``corrupt`` "unreadable" with the frame range and the fix, and every other frame is
decoded; a disk that reads nothing any more still fails the task (retried)."""

from __future__ import annotations

import contextlib
import errno
import io
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from lightly_airflow import columns as C
from lightly_airflow.video import frames as frames_module
from lightly_airflow.video.frames import FrameResult, FrameRow, iter_frame_results
from lightly_airflow.video.index import index_video
from lightly_airflow.video.source import VideoReadError
from lightly_airflow.video.synthetic import _encode, scene, scene_frames

N, GOP = 96, 12


def _write(path: Path, fmt: str) -> Path:
    rng = np.random.default_rng(0)

    def pictures() -> Iterator[av.VideoFrame]:
        for a in scene_frames(scene("astronaut"), N, (320, 240), seed=1):
            a = a.copy()
            a[::3, ::3] = rng.integers(0, 255, a[::3, ::3].shape, dtype=np.uint8)
            yield av.VideoFrame.from_ndarray(a, format="rgb24")

    _encode(str(path), fmt, "libx264", {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0",
                                        "preset": "ultrafast", "crf": "20"}, "yuv420p", pictures(), rate=24,
            size=(320, 240))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3 MB H.264 MP4 (its index last) and the same frames as an MPEG-TS, a keyframe every 12 frames."""
    folder = tmp_path_factory.mktemp("bad-stretch")
    return {"mp4": _write(folder / "clip.mp4", "mp4"), "ts": _write(folder / "clip.ts", "mpegts")}


class _Disk:
    """A video's bytes whose reads overlapping ``bad`` always fail with ``EIO`` (a bad sector); with ``drops``, every
    read fails once one has (a mount that dropped out). ``open()`` gives a file object of it."""

    def __init__(self, path: Path, bad: tuple[int, int], drops: bool = False, more: tuple[tuple[int, int], ...] = ()) -> None:
        self.path, self.bad, self.drops, self.failed, self.more = path, bad, drops, 0, more

    def open(self) -> io.FileIO:
        disk = self

        class File(io.FileIO):
            def read(self, size: int | None = -1) -> bytes:
                at = self.tell()
                end = at + (size if size is not None and size >= 0 else 1 << 40)
                if any(at < b and end > a for a, b in (disk.bad, *disk.more)) or (disk.drops and disk.failed):
                    disk.failed += 1
                    raise OSError(errno.EIO, "Input/output error")
                return super().read(size)

        return File(str(self.path))


def _frame_bytes(path: Path, first: int, last: int) -> tuple[int, int]:
    """The byte range of the packets of frames ``first``-``last`` (by a demux of the file)."""
    info = index_video(str(path))
    wanted = {info.pts[i] for i in range(first, last + 1)}
    with av.open(str(path)) as container:
        spans = [(p.pos, p.pos + p.size) for p in container.demux(container.streams.video[0])
                 if p.pts in wanted and p.pos is not None and p.pos >= 0]
    return min(a for a, _ in spans), max(b for _, b in spans)


def _read(path: Path) -> dict[int, FrameResult]:
    """Every frame's result read from the undamaged file (through the real source, also after :func:`_run` put the bad
    disk in its place)."""
    from lightly_airflow.video import source

    info = index_video(str(path))
    rows = [FrameRow(row=i, video=path.name, index=i, pts=info.pts[i]) for i in range(N)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(frames_module, "open_video_source", source.open_video_source)
        return {r.row: r for r in iter_frame_results(str(path.parent), rows, input_size=None)}


def _run(path: Path, disk: _Disk, monkeypatch: pytest.MonkeyPatch, key: str) -> dict[int, FrameResult]:
    info = index_video(str(path))
    assert info.n_frames == N and info.problem is None

    @contextlib.contextmanager
    def bad_disk(datasource_uri: str, key: str, credentials: object = None, **kwargs: object) -> Iterator[io.FileIO]:
        with disk.open() as fh:
            yield fh

    monkeypatch.setattr(frames_module, "open_video_source", bad_disk)
    rows = [FrameRow(row=i, video=key, index=i, pts=info.pts[i]) for i in range(N)]
    return {r.row: r for r in iter_frame_results(str(path.parent), rows, input_size=None)}


def test_a_bad_sector_in_an_mp4_costs_its_frames_only(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = videos["mp4"]
    disk = _Disk(path, _frame_bytes(path, 41, 42))
    got = _run(path, disk, monkeypatch, "cams/clip.mp4")  # before: VideoReadError on every try
    assert disk.failed >= 3  # (every read of the stretch failed: first pass, the retry, the third try)
    lost = sorted(i for i, r in got.items() if r.status != C.STATUS_OK)
    # the frames from the first unreadable one (FFmpeg reads 32 KiB at a time: frame 40 shares a read with 41) to the
    # next keyframe past the bad bytes (48)
    assert lost == list(range(lost[0], 48)) and 38 <= lost[0] <= 41, lost
    why = got[41].reason or ""
    assert why.startswith("unreadable:") and "Input/output error" in why and f"frames {lost[0]}-47" in why
    assert "Fix: copy the video again from a good copy" in why and got[41].status == C.STATUS_CORRUPT
    assert f"video 'cams/clip.mp4': {len(lost)} frames ({lost[0]}…47) cannot be read from its disk" in caplog.text
    clean = _read(path)
    for i in range(N):  # every other frame is kept, with the pixels a clean read decodes (its content hash)
        if i not in lost:
            assert got[i].status == C.STATUS_OK and got[i].content_hash == clean[i].content_hash, (i, got[i].reason)


def test_a_bad_sector_in_a_transport_stream_costs_its_frames_only(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """An MPEG-TS has no index to seek past the stretch by time: it is read on from the first bytes past the stretch
    (FFmpeg's seek by byte; the demuxer finds the next packet's sync byte) and its frames are known by their pts.
    Before, every frame from the stretch to the end was lost (frames 56-95 of 96 here)."""
    path = videos["ts"]
    disk = _Disk(path, _frame_bytes(path, 60, 61))
    got = _run(path, disk, monkeypatch, "cams/clip.ts")
    lost = sorted(i for i, r in got.items() if r.status != C.STATUS_OK)
    # the frames from the first unreadable one to the next keyframe past the bad bytes (72: frames 62-71 refer to 60)
    assert lost == list(range(lost[0], 72)) and 56 <= lost[0] <= 60, lost
    clean = _read(path)
    for i in range(N):  # every other frame is kept, with the pixels a clean read decodes (its content hash)
        if i not in lost:
            assert got[i].status == C.STATUS_OK and got[i].content_hash == clean[i].content_hash, (i, got[i].reason)
    why = got[lost[0]].reason or ""
    assert why.startswith("unreadable:") and f"frames {lost[0]}-71 of this video cannot be read" in why


def test_two_bad_sectors_in_a_transport_stream(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A second bad stretch further on is read past the same way: each costs the frames up to the next keyframe past
    it."""
    path = videos["ts"]
    disk = _Disk(path, _frame_bytes(path, 30, 30), more=(_frame_bytes(path, 64, 64),))
    got = _run(path, disk, monkeypatch, "cams/clip.ts")
    lost = sorted(i for i, r in got.items() if r.status != C.STATUS_OK)
    # each stretch costs the frames from the first unreadable one (a read shares frames) to the next keyframe past it
    first_lost = [i for i in lost if i < 48]
    assert first_lost == list(range(first_lost[0], 36)) and 24 <= first_lost[0] <= 30, lost
    second_lost = [i for i in lost if i >= 48]
    assert second_lost == list(range(second_lost[0], 72)) and 60 <= second_lost[0] <= 64, lost
    clean = _read(path)
    assert all(got[i].content_hash == clean[i].content_hash for i in range(N) if i not in lost)
    assert all(got[i].status == C.STATUS_OK for i in [*range(36, 60), *range(72, N)])


def test_a_disk_that_reads_nothing_any_more_fails_the_task(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount that dropped out (every read fails, the start and end of the file too) is no bad stretch: the task
    fails with the video's key and the fix, and Airflow retries it; nothing is marked."""
    path = videos["mp4"]
    disk = _Disk(path, _frame_bytes(path, 41, 42), drops=True)
    with pytest.raises(VideoReadError) as raised:
        _run(path, disk, monkeypatch, "cams/clip.mp4")
    message = str(raised.value)
    assert message.startswith("video 'cams/clip.mp4': reading the video failed twice before frame")
    assert "do not read either" in message and "Fix: if it persists, check the disk" in message


def test_a_read_error_that_passes_loses_no_frame_at_the_end_of_the_file(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A read error that passes on the second try costs nothing, also when the pass reads to the end of the file:
    FFmpeg's I/O context kept the error and handed it out again at the end ("PyAVCallbackError: Error in PyAV
    callback"), so the retried pass failed before the last frames and the task failed ("reading the video failed twice
    before frame 94"); each try after a read error now reads through a newly opened file."""
    path = videos["mp4"]
    disk = _Disk(path, _frame_bytes(path, 41, 42))
    real = disk.open

    def once() -> io.FileIO:  # (the stretch fails on its first read only: a read error that passes)
        fh = real()
        inner = type(fh).read

        def read(size: int | None = -1) -> bytes:
            if disk.failed:
                return io.FileIO.read(fh, size)
            return inner(fh, size)

        fh.read = read  # type: ignore[method-assign]
        return fh

    disk.open = once  # type: ignore[method-assign]
    got = _run(path, disk, monkeypatch, "cams/clip.mp4")
    assert disk.failed == 1
    clean = _read(path)
    bad = {i: got[i].reason for i in range(N) if got[i].status != C.STATUS_OK}
    assert not bad, bad
    assert all(got[i].content_hash == clean[i].content_hash for i in range(N))


@pytest.fixture(scope="module")
def mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same frames in Matroska: its index pass reads the whole file (each frame's time is with its data)."""
    return _write(tmp_path_factory.mktemp("bad-stretch-mkv") / "clip.mkv", "matroska")


def test_listing_a_video_with_a_bad_sector_keeps_the_frames_before_it(mkv: Path) -> None:
    """The list task's index pass of a video with a bad stretch: before, ``VideoReadError`` on every retry (the run
    never got past its first task); now the frames before the stretch are listed and the video's problem says why the
    rest cannot be read, with the fix."""
    info = index_video(str(mkv))
    assert info.n_frames == N and info.problem is None
    disk = _Disk(mkv, _frame_bytes(mkv, 50, 51))
    with disk.open() as fh:
        got = index_video(fh)
    assert disk.failed >= 2
    assert 40 <= got.n_frames <= 51 and got.pts == info.pts[: got.n_frames]
    assert (got.problem or "").startswith(f"unreadable after {got.n_frames} frames: reading the video failed there twice")
    assert "Input/output error" in (got.problem or "") and "Fix: copy the video again from a good copy" in (got.problem or "")
    dropped = _Disk(mkv, _frame_bytes(mkv, 50, 51), drops=True)  # (a mount that dropped out: the task is retried)
    with dropped.open() as fh, pytest.raises(VideoReadError):
        index_video(fh)


def test_a_stretch_that_fails_again_on_an_object_store_fails_the_task(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """On an object store (the video read through a :class:`RecordingReader`) a range that fails again while the
    file's ends read is the network's (a proxy's limit, throttling), not a bad sector: the task fails with the store's
    own error and is retried; no frame is marked unreadable (that would be for good)."""
    from lightly_airflow.video.source import RecordingReader

    path = videos["mp4"]
    disk = _Disk(path, _frame_bytes(path, 41, 42))
    info = index_video(str(path))

    @contextlib.contextmanager
    def store(datasource_uri: str, key: str, credentials: object = None, **kwargs: object) -> Iterator[RecordingReader]:
        with disk.open() as fh:
            yield RecordingReader(fh)

    monkeypatch.setattr(frames_module, "open_video_source", store)
    rows = [FrameRow(row=i, video="cams/clip.mp4", index=i, pts=info.pts[i]) for i in range(N)]
    with pytest.raises(OSError, match="Input/output error"):
        list(iter_frame_results(str(path.parent), rows, input_size=None))
    assert disk.failed >= 2


def test_listing_a_transport_stream_with_a_bad_sector_keeps_the_frames_after_it(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list task's index pass of an MPEG-TS reads on past the stretch from its first bytes that read (a seek by
    byte): before, the frames after it were not listed (47 of 96 here), so never sampled. The frames in the stretch
    cannot be listed (their times are in the bytes that do not read): they are counted as lost, and the problem says
    why, with the fix; the listed frames after it decode with the pixels of a clean read."""
    path = videos["ts"]
    clean = index_video(str(path))
    disk = _Disk(path, _frame_bytes(path, 50, 51))
    with disk.open() as fh:
        got = index_video(fh)
    assert disk.failed >= 2
    missing = [i for i, t in enumerate(clean.pts) if t not in set(got.pts)]
    # the frames whose packets are in the bytes that fail (FFmpeg reads 32 KiB at a time: a few around 50-51)
    assert missing == list(range(missing[0], missing[-1] + 1)) and 44 <= missing[0] <= 50 and 51 <= missing[-1] <= 56
    assert got.pts == [t for t in clean.pts if t in set(got.pts)] and got.n_frames == N - len(missing)
    assert got.lost_frames == len(missing)
    problem = got.problem or ""
    assert problem.startswith(f"unreadable after {missing[0]} frames: reading the video failed there twice")
    assert f"its {missing[0]} frames before it and {N - 1 - missing[-1]} after it are kept as samples" in problem
    assert "damaged: " not in problem and "Fix: copy the video again from a good copy" in problem
    # the frames task decodes what was listed (by pts): those after the stretch up to their keyframe are unreadable
    @contextlib.contextmanager
    def bad_disk(datasource_uri: str, key: str, credentials: object = None, **kwargs: object) -> Iterator[io.FileIO]:
        with disk.open() as fh:
            yield fh

    reference = _read(path)
    monkeypatch.setattr(frames_module, "open_video_source", bad_disk)
    rows = [FrameRow(row=clean.pts.index(t), video="cams/clip.ts", index=i, pts=t) for i, t in enumerate(got.pts)]
    frames = {r.row: r for r in iter_frame_results(str(path.parent), rows, input_size=None)}
    kept = [i for i, r in frames.items() if r.status == C.STATUS_OK]
    assert [i for i in kept if i > missing[-1]] == list(range(60, N))  # (the next keyframe past the stretch: 60)
    assert all(frames[i].content_hash == reference[i].content_hash for i in kept)
    assert all((frames[i].reason or "").startswith("unreadable:") for i in frames if i not in kept)


def test_a_bad_sector_in_an_mp4s_header_makes_the_video_a_problem_not_a_failed_task(videos: dict[str, Path]) -> None:
    """A bad stretch inside the ``moov`` box (the sample table FFmpeg reads to open an MP4) failed the list task on
    every retry (``VideoReadError``: the run never got past its first task); now the video is listed with no frames
    and a problem naming the bad stretch and the fix, like a video that cannot be opened, and the run goes on."""
    path = videos["mp4"]
    data = path.read_bytes()
    moov = data.index(b"moov") - 4
    disk = _Disk(path, (moov + 400, moov + 500))
    with disk.open() as fh:
        got = index_video(fh)
    assert disk.failed >= 2
    assert got.n_frames == 0
    assert (got.problem or "").startswith("unreadable after 0 frames: opening the video failed twice (")
    assert "a bad stretch of its disk in the header" in (got.problem or "") and "Fix: copy the video again" in (got.problem or "")
    dead = _Disk(path, (moov + 400, moov + 500), drops=True)  # (a disk that reads nothing any more: retried)
    with dead.open() as fh, pytest.raises(VideoReadError):
        index_video(fh)
