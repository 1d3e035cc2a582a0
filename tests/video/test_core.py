"""The video core: frame names, the demux index, exact frame-range decoding, the corruptness score."""

from __future__ import annotations

import contextlib
import os

import av
import numpy as np
import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.video import frame_name, index_video, parse_frame_name
from lightly_airflow.video.decode import decode_frames
from lightly_airflow.video.frames import FrameRow, analyse_frame, iter_frame_results
from lightly_airflow.video.listing import expand_videos, known_videos
from lightly_airflow.video.quality import frame_corruptness
from lightly_airflow.video.synthetic import CODECS, truncate


def full_decode(path: str) -> list[tuple[int | None, np.ndarray]]:
    with av.open(path) as c:
        return [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def test_frame_names_follow_lightly() -> None:
    assert frame_name("campus4-c0.avi", 7, 48) == "campus4-c0-07-avi.png"
    assert frame_name("sub/dir/clip.mp4", 7, 120) == "sub/dir/clip-007-mp4.png"
    assert frame_name("a/b.MOV", 0, 9) == "a/b-0-MOV.png"
    assert frame_name("x.webm", 99, 100) == "x-099-webm.png"
    assert frame_name("dashcam/2026-12-01.mkv", 5, 1800) == "dashcam/2026-12-01-0005-mkv.png"
    assert parse_frame_name("dashcam/2026-12-01-0005-mkv.png") == ("dashcam/2026-12-01.mkv", 5)
    assert parse_frame_name("sub/dir/clip-007-mp4.png") == ("sub/dir/clip.mp4", 7)
    with pytest.raises(ValueError, match="not a video"):
        frame_name("a.png", 0, 1)
    with pytest.raises(ValueError, match="outside"):
        frame_name("a.mp4", 5, 5)


@pytest.mark.parametrize("ext", ["mp4", "m4v", "mov", "avi", "webm", "mkv", "mpg", "mpeg", "mts", "m2ts", "ts"])
def test_index_counts_and_orders_frames_as_pyav_decodes(video_files: dict[str, str], ext: str) -> None:
    path = video_files[ext]
    info = index_video(path)
    decoded = full_decode(path)
    assert info.problem is None
    assert info.n_frames == len(decoded) == 31
    assert info.pts == [p for p, _ in decoded]
    assert info.seekable == (ext not in ("mpg", "mpeg", "mts", "m2ts", "ts"))
    secs = [info.seconds(i) for i in range(info.n_frames)]
    assert all(b > a for a, b in zip(secs, secs[1:]))


@pytest.mark.parametrize("ext", ["mp4", "avi", "webm", "mkv", "mpg", "mov", "m2ts", "ts"])
@pytest.mark.parametrize("start,stop", [(0, 5), (7, 19), (13, 14), (25, 31), (3, 31)])
def test_a_range_decodes_exactly_its_frames(video_files: dict[str, str], ext: str, start: int, stop: int) -> None:
    path = video_files[ext]
    info = index_video(path)
    decoded = full_decode(path)
    wanted = [(i, info.pts[i]) for i in range(start, stop)]
    got = list(decode_frames(path, wanted))
    assert [g.index for g in got] == list(range(start, stop))
    for g in got:
        assert g.reason is None
        assert np.array_equal(g.frame.to_ndarray(format="rgb24"), decoded[g.index][1])


def test_ranges_without_timestamps_count_frames_from_the_start(video_files: dict[str, str]) -> None:
    path = video_files["mp4"]
    decoded = full_decode(path)
    got = list(decode_frames(path, [(i, None) for i in (4, 5, 6, 20)]))
    assert [g.index for g in got] == [4, 5, 6, 20]
    for g in got:
        assert np.array_equal(g.frame.to_ndarray(format="rgb24"), decoded[g.index][1])


def test_truncated_video_keeps_decodable_frames_and_reports_the_rest(video_files: dict[str, str], tmp_path) -> None:
    path = str(tmp_path / "cut.avi")
    with open(video_files["avi"], "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    truncate(path, 0.5)
    info = index_video(path)
    assert 0 < info.n_frames < 31
    # Ask for all 31 frames the intact file had: the missing ones come back with a reason, nothing raises.
    full = index_video(video_files["avi"])
    got = list(decode_frames(path, [(i, full.pts[i]) for i in range(31)]))
    ok = [g for g in got if g.frame is not None]
    bad = [g for g in got if g.frame is None]
    assert len(got) == 31 and ok and bad
    assert all(g.reason for g in bad)


def test_unreadable_video_has_a_problem(tmp_path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"this is not a video" * 10)
    info = index_video(str(path))
    assert info.n_frames == 0 and info.problem and "cannot open" in info.problem


def test_corruptness_score() -> None:
    rng = np.random.default_rng(int(os.environ.get("S44SEED", "0")))
    textured = rng.integers(0, 256, (64, 96), dtype=np.uint8)
    assert frame_corruptness(textured) < 0.01
    assert frame_corruptness(np.full((64, 96), 128, np.uint8)) == 1.0  # uniform grey
    assert frame_corruptness(np.full((64, 96), 30, np.uint8)) == 1.0  # uniform dark
    assert frame_corruptness(textured, decoder_flagged=True) == 1.0  # the decoder's own verdict
    half = textured.copy()
    half[:32] = 128  # the top two macroblock rows concealed by the decoder's grey
    assert frame_corruptness(half) == pytest.approx(0.5)
    dark_bars = textured.copy()
    dark_bars[:16] = 0  # letterbox bars are not concealment
    assert frame_corruptness(dark_bars) < 0.01
    wall = textured.copy()
    wall[:32] = 128 + rng.integers(-1, 2, (32, 96))  # a flat grey wall keeps a grey level of texture
    assert frame_corruptness(wall) < 0.01


def test_a_saturated_object_on_a_grey_of_equal_luma_is_not_uniform() -> None:
    """A red square on a grey of the red's luma: the luma is exactly flat, so the luma-only rule called the
    frame uniform (score 1: corrupt). The colour channels tell it apart; one-colour frames stay uniform."""
    from lightly_airflow.metadata.kernels import pixel_sums

    def luma(rgb: np.ndarray) -> np.ndarray:
        return pixel_sums(np.ascontiguousarray(rgb))[2]  # the luma the metrics pass gives analyse_frame

    red = (255, 0, 0)
    scene = np.full((64, 96, 3), 76, np.uint8)  # 76 = luma of pure red (0.299 x 255)
    scene[16:48, 32:64] = red
    gray = luma(scene)
    assert gray.min() == gray.max() == 76  # the object is invisible in the luma
    assert frame_corruptness(gray) == 1.0  # luma alone: "uniform"
    assert frame_corruptness(gray, rgb=scene) == 0.0
    for colour in ((0, 0, 0), (76, 76, 76), (128, 128, 128), red, (20, 160, 90)):  # black, greys, colours
        plain = np.full((64, 96, 3), colour, np.uint8)
        assert frame_corruptness(luma(plain), rgb=plain) == 1.0, colour
    # a flat orange area of mid-grey luma (127) is no concealed grey fill; a real grey fill still is
    rng = np.random.default_rng(int(os.environ.get("S44SEED", "0")))
    textured = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    orange, fill = textured.copy(), textured.copy()
    orange[:32] = (255, 87, 0)
    fill[:32] = 128
    assert luma(orange)[0, 0] == 127 and frame_corruptness(luma(orange)) == pytest.approx(0.5)
    assert frame_corruptness(luma(orange), rgb=orange) < 0.01
    assert frame_corruptness(luma(fill), rgb=fill) == pytest.approx(0.5)


def test_a_saturated_object_on_a_grey_of_equal_luma_in_a_phone_video_is_not_corrupt(tmp_path) -> None:
    """The same frames encoded (H.264 4:2:0) as a phone stores portrait video: landscape, with a display matrix.
    The decode path passes the frame's colours in the coded orientation of its luma."""
    from lightly_airflow.video.synthetic import write_video

    scene = np.full((96, 160, 3), 76, np.uint8)
    scene[32:64, 48:96] = (255, 0, 0)
    path = str(tmp_path / "IMG_0001.MOV")
    write_video(path, [scene, np.full_like(scene, 76), np.full_like(scene, (255, 0, 0)), np.zeros_like(scene)],
                size=(160, 96), rotation=-90)
    with av.open(path) as container:
        decoded = list(container.decode(video=0))
    assert [f.rotation for f in decoded] == [-90] * 4
    scores = [analyse_frame(f, None)[3] for f in decoded]
    assert scores[0] < 0.1 and min(scores[1:]) > 0.1, scores  # (luma alone: 0.82 for the first)


def _luma(path: str) -> list[tuple[np.ndarray, bool]]:
    out = []
    with av.open(path) as c:
        for packet in c.demux(video=0):
            try:
                out += [(f.to_ndarray(format="gray"), bool(f.is_corrupt)) for f in packet.decode()]
            except av.error.FFmpegError:
                continue
    return out


def test_clean_frames_with_flat_grey_areas_stay_below_the_threshold(tmp_path) -> None:
    # The demo's "coffee" scene in MPEG-4 AVI (campus7-c0.avi of the walk-through) is a grey wall that the
    # codec turns into flat 8x8 blocks: 17 of its clean frames scored 0.14-0.16 with the former 8x8 score.
    from lightly_airflow.video.synthetic import make_scene_video

    for size in ((160, 120), (320, 240)):
        path = str(tmp_path / f"coffee-{size[0]}.avi")
        make_scene_video(path, "coffee", 40, seed=1, size=size)
        scores = [frame_corruptness(y, flagged) for y, flagged in _luma(path)]
        assert len(scores) == 40 and max(scores) < 0.05, max(scores)


def test_frames_of_a_video_damaged_in_the_middle_score_above_the_threshold(tmp_path) -> None:
    from lightly_airflow.video.synthetic import make_scene_video

    path = tmp_path / "clean.avi"
    make_scene_video(str(path), "coffee", 48, seed=1, size=(320, 240))
    clean = _luma(str(path))
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(int(os.environ.get("S44SEED", "0")))
    for k in range(3):  # overwrite 2 kB at 30 %, 50 % and 70 % of the file
        at = int(len(data) * (0.3 + 0.2 * k))
        data[at : at + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    decoded = _luma(str(damaged))
    bad = [i for i, ((y, flagged), (y0, _)) in enumerate(zip(decoded, clean))
           if np.abs(y.astype(int) - y0).mean() > 10]  # frames that really differ from the clean decode
    assert len(bad) >= 10
    scores = [frame_corruptness(y, flagged) for y, flagged in decoded]
    assert all(scores[i] > 0.1 for i in bad), [round(scores[i], 3) for i in bad]
    assert all(frame_corruptness(y) < 0.05 for y, _ in clean)


def test_expand_videos_and_known_videos(video_files: dict[str, str], tmp_path) -> None:
    import shutil

    root = tmp_path / "ds"
    (root / "sub").mkdir(parents=True)
    shutil.copy(video_files["mp4"], root / "sub" / "clip.mp4")
    (root / "bad.MOV").write_bytes(b"nope")
    files = pa.table({
        C.KEY: ["bad.MOV", "img.png", "sub/clip.mp4"], C.SIZE: [4, 10, 100], C.ETAG: ["e1", "e2", "e3"],
        C.MTIME: pa.array([None, None, None], pa.timestamp("us", "UTC")),
    })
    out = expand_videos(files, str(root))
    keys = out.column(C.KEY).to_pylist()
    assert keys == sorted(keys)
    assert "img.png" in keys and "bad.MOV" in keys
    frames = [k for k in keys if k.startswith("sub/clip-")]
    assert frames == [f"sub/clip-{i:02d}-mp4.png" for i in range(31)]
    rows = {r[C.KEY]: r for r in out.to_pylist()}
    assert rows["sub/clip-07-mp4.png"][C.VIDEO] == "sub/clip.mp4"
    assert rows["sub/clip-07-mp4.png"][C.FRAME_INDEX] == 7
    assert rows["sub/clip-07-mp4.png"][C.ETAG] == "e3"
    assert rows["sub/clip-07-mp4.png"][C.FRAME_SECONDS] == pytest.approx(7 / 24, abs=1e-3)
    assert "cannot open" in rows["bad.MOV"][C.VIDEO_PROBLEM]
    assert rows["img.png"][C.VIDEO] is None
    known = known_videos(out.select([C.KEY, C.ETAG]))
    pairs = set(zip(known.column(C.KEY).to_pylist(), known.column(C.ETAG).to_pylist()))
    assert ("sub/clip.mp4", "e3") in pairs and ("bad.MOV", "e1") in pairs


def test_one_decode_gives_model_input_metrics_hash_and_score(video_files: dict[str, str]) -> None:
    from lightly_airflow.metadata.metrics import compute_metrics

    path = video_files["webm"]
    info = index_video(path)
    decoded = full_decode(path)
    root, name = path.rsplit("/", 1)
    rows = [FrameRow(row=i, video=name, index=i, pts=info.pts[i]) for i in range(0, 31, 3)]
    rows.append(FrameRow(row=99, video=name, index=None, pts=None, problem="the video breaks after 31 frames"))
    results = {r.row: r for r in iter_frame_results(root, rows, input_size=32, workers=2)}
    assert set(results) == {r.row for r in rows}
    assert results[99].status == C.STATUS_CORRUPT and "breaks" in results[99].reason
    hashes = set()
    for i in range(0, 31, 3):
        res = results[i]
        assert res.status == C.STATUS_OK and res.small.shape == (32, 32, 3)
        rgb = decoded[i][1]
        gray = np.asarray(__import__("PIL.Image").Image.fromarray(rgb).convert("L"))
        expected = compute_metrics(rgb, gray, 0)
        assert res.metrics["sharpness"] == pytest.approx(expected["sharpness"], rel=1e-6)
        assert res.metrics["luminance"] == pytest.approx(expected["luminance"], rel=1e-6)
        assert res.metrics["width"] == 160 and res.metrics["height"] == 120
        assert res.corruptness < 0.1
        hashes.add(res.content_hash)
    assert len(hashes) == 11


def test_analyse_frame_flags_a_grey_frame() -> None:
    frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, np.uint8), format="rgb24")
    small, metrics, digest, score = analyse_frame(frame, 16)
    assert score == 1.0 and small.shape == (16, 16, 3) and len(digest) == 64


def test_frame_results_stream_before_the_chunk_is_decoded(video_files: dict[str, str]) -> None:
    # The model must start on the first frames while the rest of the chunk decodes: results are yielded as
    # each frame is analysed, not after the whole chunk (31 frames of one video: one chunk).
    path = video_files["mp4"]
    info = index_video(path)
    root, name = path.rsplit("/", 1)
    rows = [FrameRow(row=i, video=name, index=i, pts=info.pts[i]) for i in range(info.n_frames)]

    class Thumbs:  # counts the frames analysed so far (each one's thumbnail is made right after its analysis)
        def __init__(self) -> None:
            self.n = 0

        def add(self, sample_id: str, img: object) -> None:
            self.n += 1

    for workers in (1, 2):
        thumbs = Thumbs()
        it = iter_frame_results(root, rows, input_size=32, workers=workers, thumbs=thumbs)
        first = next(it)
        assert first.status == C.STATUS_OK and first.row == 0
        assert thumbs.n <= 8, thumbs.n  # not 31: the first result came before the rest was analysed (a few ahead)
        rest = list(it)
        assert [r.row for r in rest] == list(range(1, info.n_frames)) and thumbs.n == info.n_frames


@pytest.mark.parametrize("ext", sorted(CODECS))
def test_frame_seconds_count_from_the_start_of_the_video(video_files: dict[str, str], ext: str) -> None:
    """A frame's time is where a player shows it and where ``ffmpeg -ss`` seeks: from the file's start. MPEG-PS
    files (.mpg/.mpeg) start their clock at 0.54 s (camcorders, DVD rips: anywhere), so frame 0 read 0.54 s and a
    labeller sent to frame 10's 0.94 s landed 13 frames (0.54 s) later in the video."""
    info = index_video(video_files[ext])
    with av.open(video_files[ext]) as c:
        start = (c.start_time or 0) / 1_000_000
        tb = c.streams.video[0].time_base
        player = [float(f.pts * tb) - start for f in c.decode(video=0)]
    assert [info.seconds(i) for i in range(info.n_frames)] == pytest.approx(player, abs=1e-6)
    assert info.seconds(10) == pytest.approx(10 / 24, abs=0.002) or ext == "avi"  # B-frames: one frame's delay
    assert info.seconds(0) == pytest.approx(0, abs=0.05)


def test_a_clip_cut_without_reencoding_has_the_frames_pyav_decodes(tmp_path) -> None:
    """``ffmpeg -ss 1.5 -i in.mp4 -c copy clip.mp4`` (the usual way to cut a clip) keeps the packets from the
    keyframe before 1.5 s and an edit list that starts playback at 1.5 s: the packets before it are demuxed
    (flagged discard) but the decoder outputs no frame for them. They are no frames: counting them listed 5
    phantom frames (reported corrupt, negative times) and shifted every real frame's name by 5 from Lightly's
    (PyAV's) enumeration, so predictions and metadata of ``clip-000-mp4.png`` met another frame."""
    from lightly_airflow.video.synthetic import cut_without_reencoding, make_scene_video

    full = str(tmp_path / "full.mp4")
    make_scene_video(full, "astronaut", 120, seed=1, rate=30)
    clip = str(tmp_path / "clip.mp4")
    cut_without_reencoding(full, clip, 0.7)  # 99 frames from 21 on; 120 packets from the keyframe at 0
    with av.open(clip) as c:
        decoded = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    with av.open(clip) as c:
        discarded = sum(1 for p in c.demux(video=0) if p.size and p.is_discard)
    assert discarded > 0 and decoded[0][0] == 0  # the edit list is there and playback starts at the cut
    info = index_video(clip)
    assert info.problem is None  # not "ends early" because of the discarded packets the header counts
    assert info.n_frames == len(decoded) and info.pts == [p for p, _ in decoded]
    assert info.seconds(0) == 0.0
    wanted = [(i, info.pts[i]) for i in (0, 1, 40, len(decoded) - 1)]
    got = {d.index: d.frame.to_ndarray(format="rgb24") for d in decode_frames(clip, wanted) if d.frame is not None}
    assert sorted(got) == [i for i, _ in wanted]
    for i, arr in got.items():
        assert np.array_equal(arr, decoded[i][1])
    # The listing names them as Lightly does: 99 frames, two digits (the 120 packets made three).
    files = pa.table({C.KEY: ["clip.mp4"], C.SIZE: [1], C.ETAG: ["e"], C.MTIME: pa.array([None], pa.timestamp("us", "UTC"))})
    out = expand_videos(files, str(tmp_path))
    assert out.column(C.KEY).to_pylist() == [f"clip-{i:02d}-mp4.png" for i in range(99)]
    assert out.column(C.VIDEO_PROBLEM).null_count == 99


def test_the_report_says_when_the_timeline_leaves_videos_out(tmp_path) -> None:
    """The per-video timeline draws 30 videos; a run of a bucket of 35 dash-cam clips says it left 5 out."""
    from lightly_airflow.report.writer import write_report
    from lightly_airflow.video.report import MAX_VIDEOS

    def rows(n_videos: int) -> pa.Table:
        keys, videos, index, seconds, selected = [], [], [], [], []
        for v in range(n_videos):
            for i in range(4):
                keys.append(f"cam/{v:03d}-{i}-mp4.png")
                videos.append(f"cam/{v:03d}.mp4")
                index.append(i)
                seconds.append(i / 30)
                selected.append(i == v % 4)
        return pa.table({C.KEY: keys, C.VIDEO: videos, C.FRAME_INDEX: index, C.FRAME_SECONDS: seconds,
                         C.SELECTED: selected, C.STATUS: [C.STATUS_OK] * len(keys)})

    for n, out in ((MAX_VIDEOS + 5, "many"), (MAX_VIDEOS, "few")):
        uri = write_report(rows(n), out_uri=str(tmp_path / out), summary={"run_id": "r"}, config={})
        page = (tmp_path / out / "index.html").read_text()
        assert uri.endswith("index.html") and (tmp_path / out / "videos.png").is_file()
        said = f"{MAX_VIDEOS} of the run&#x27;s {n} videos are drawn" in page or f"{MAX_VIDEOS} of the run's {n} videos are drawn" in page
        assert said == (n > MAX_VIDEOS), out


class _FlakyStore:
    """A remote file whose connection drops after ``fail_after`` bytes (what fsspec raises once its retries are
    spent: a reset connection, a throttled request)."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        import io

        self._b = io.BytesIO(data)
        self._fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        if self._b.tell() + max(size, 0) > self._fail_after:
            raise ConnectionResetError("Connection reset by peer")
        return self._b.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._b.seek(offset, whence)

    def tell(self) -> int:
        return self._b.tell()


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi"])
def test_a_read_error_of_the_store_fails_the_task_instead_of_marking_the_video_broken(
    video_files: dict[str, str], ext: str
) -> None:
    """A connection reset half way through a remote video is the store's fault, not the video's: PyAV turned it
    into an FFmpeg error or dropped it (an early end of file), so a good video became ``cannot open``/``ends
    early``/corrupt frames, committed for good (an unchanged video is not read again). Now the error is raised,
    the task fails and Airflow retries it."""
    import io

    from lightly_airflow.video.source import RecordingReader

    with open(video_files[ext], "rb") as fh:
        data = fh.read()
    clean = index_video(RecordingReader(io.BytesIO(data)))  # the wrapper itself changes nothing
    assert clean.problem is None and clean.pts == index_video(video_files[ext]).pts
    wanted = [(i, clean.pts[i]) for i in range(clean.n_frames)]
    assert all(g.frame is not None for g in decode_frames(RecordingReader(io.BytesIO(data)), wanted))
    for fraction in (0.05, 0.6):
        with pytest.raises(ConnectionResetError):
            index_video(RecordingReader(_FlakyStore(data, int(len(data) * fraction))))
        with pytest.raises(ConnectionResetError):
            list(decode_frames(RecordingReader(_FlakyStore(data, int(len(data) * fraction))), wanted))


@pytest.mark.parametrize("ext", ["avi", "mpg"])
def test_a_striped_frame_has_a_high_uniform_row_ratio(tmp_path, ext: str) -> None:
    """Lightly Worker 2.7's ``lightly.uniformRowRatio`` per frame: a frame whose bottom third is fixed colour
    stripes (what a concealed slice looks like) scores ~1/3, the clean frames ~0. (MPEG-4/MPEG-2 at these
    settings decode the flat stripes exactly; H.264 at its default quality re-encodes them with ±2-8 levels of
    noise, which is no longer "uniform" at the 2-level tolerance: a decoder's own fill is exact.)"""
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    frames = [np.array(f) for f in scene_frames(scene("coffee"), 12, (160, 120), seed=3)]
    for i, y in enumerate(range(80, 120, 8)):
        frames[6][y : y + 8] = [(0, 140, 0), (200, 40, 200), (128, 128, 128)][i % 3]
    path = str(tmp_path / f"clip.{ext}")
    write_video(path, frames, size=(160, 120))
    info = index_video(path)
    rows = [FrameRow(row=i, video=f"clip.{ext}", index=i, pts=info.pts[i]) for i in range(info.n_frames)]
    results = list(iter_frame_results(str(tmp_path), rows, input_size=None))
    ratio = [r.metrics["uniformRowRatio"] for r in results]
    assert ratio[6] == pytest.approx(1 / 3, abs=0.05), ratio
    assert max(ratio[:6] + ratio[7:]) < 0.025, ratio


class _CountingReader:
    """The video's real bytes, counting what the demuxer reads (each extra pass from the start re-reads them)."""

    def __init__(self, path: str) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.read_bytes += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()


def _count_reads(monkeypatch) -> list[_CountingReader]:
    """Every video source the frame pass opens is read through a :class:`_CountingReader`; returns them."""
    from lightly_airflow.video import frames as frames_module

    readers: list[_CountingReader] = []
    real_open = frames_module.open_video_source

    @contextlib.contextmanager
    def counting_open(*args, **kwargs):
        with real_open(*args, **kwargs) as local_path:
            reader = _CountingReader(local_path)
            readers.append(reader)
            try:
                yield reader
            finally:
                reader.close()

    monkeypatch.setattr(frames_module, "open_video_source", counting_open)
    return readers


def test_a_long_raw_stream_is_decoded_once_per_shard(tmp_path, monkeypatch) -> None:
    """A raw ``.hevc`` elementary stream cannot seek, so each range is decoded from the start of the file: a
    shard's frames in chunks of ``CHUNK_FRAMES`` decoded the stream's start again for every chunk (O(n²) for a
    long stream: 4.6× the file for 4,000 frames), and the frame PNGs of k selected frames opened and decoded it
    k times. Now a video that cannot seek is one pass: each byte read once; frames identical to a full decode."""
    import hashlib

    from lightly_airflow.video import frames as frames_module
    from lightly_airflow.video.frames import frame_rows

    path = str(tmp_path / "GOPR0001.hevc")
    rng = np.random.default_rng(int(os.environ.get("S44SEED", "0")))
    base = rng.integers(0, 255, (48, 64, 3), np.uint8)
    with av.open(path, "w", format="hevc") as c:
        s = c.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"x265-params": "log-level=error:keyint=20:bframes=2", "preset": "ultrafast"}
        for i in range(120):
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 2 * i, axis=1)),
                                                         format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    size = os.path.getsize(path)
    expected = []
    for _, rgb in full_decode(path):
        digest = hashlib.sha256(rgb.tobytes())
        digest.update(f"{rgb.shape}".encode())
        expected.append(digest.hexdigest())
    assert len(expected) == 120

    readers = _count_reads(monkeypatch)
    monkeypatch.setattr(frames_module, "CHUNK_FRAMES", 16)  # 120 frames: 8 chunks, as 4,000 frames at 512
    files = pa.table({C.KEY: ["GOPR0001.hevc"], C.SIZE: [size], C.ETAG: ["e1"],
                      C.MTIME: pa.array([None], pa.timestamp("us", tz="UTC"))})
    rows = frame_rows(expand_videos(files, f"file://{tmp_path}"))
    assert len(rows) == 120 and all(r.pts is None for r in rows)
    for workers in (1, 2):
        readers.clear()
        got = {r.row: r for r in iter_frame_results(f"file://{tmp_path}", rows, input_size=None, workers=workers)}
        assert [got[r.row].content_hash for r in sorted(rows, key=lambda r: r.index or 0)] == expected
        assert sum(r.read_bytes for r in readers) <= 1.1 * size  # was 7.1x (8 chunks): the start decoded again per chunk

    # The selected frames' PNGs (export): eight frames spread over the stream, one pass.
    reader = _CountingReader(path)
    try:
        got_frames = list(decode_frames(reader, [(i, None) for i in (3, 17, 40, 41, 42, 77, 100, 119)]))
    finally:
        reader.close()
    assert [g.index for g in got_frames] == [3, 17, 40, 41, 42, 77, 100, 119] and all(g.frame for g in got_frames)
    assert reader.read_bytes <= 1.1 * size  # was one pass from the start per run of consecutive frames


def test_frames_spread_over_an_mpeg_ps_are_found_in_one_pass(video_files: dict[str, str], caplog) -> None:
    """MPEG-PS cannot be seeked reliably: spread frames (with their pts) are matched in one pass from the start,
    exactly the frames of a full decode, without warning about the frames between them."""
    path = video_files["mpg"]
    info = index_video(path)
    decoded = full_decode(path)
    wanted = [(i, info.pts[i]) for i in (0, 4, 5, 13, 29, 30)]
    reader = _CountingReader(path)
    with caplog.at_level("WARNING"):
        got = list(decode_frames(reader, wanted))
    reader.close()
    assert [g.index for g in got] == [0, 4, 5, 13, 29, 30] and not caplog.records
    for g in got:
        assert np.array_equal(g.frame.to_ndarray(format="rgb24"), decoded[g.index][1])
    assert reader.read_bytes <= 1.1 * os.path.getsize(path)


@pytest.mark.parametrize("fmt,ext,codec", [("webm", "webm", "libvpx"), ("matroska", "mkv", "libx264")])
def test_a_variable_frame_rate_video_is_not_taken_for_a_truncated_one(tmp_path, fmt: str, ext: str, codec: str) -> None:
    """WebM/MKV announce a duration, not a frame count. A phone filming at 30 fps for a second, then 10 fps in
    the dark: FFmpeg probes 30 fps at the start, and duration × 30 = 298 "announced" frames of 120 made every
    such video ``ends early`` (an extra corrupt row). Its frames now cover the announced duration: no problem;
    the same file cut short still ends early."""

    from lightly_airflow.video.synthetic import scene, scene_frames

    path = str(tmp_path / f"phone.{ext}")
    _write_vfr(path, fmt, codec, scene_frames(scene("coffee"), 120, (96, 64), seed=1))
    info = index_video(path)
    decoded = full_decode(path)
    assert info.n_frames == len(decoded) == 120 and info.pts == [p for p, _ in decoded]
    assert info.problem is None
    truncate(path, 0.9)
    cut = index_video(path)
    assert 0 < cut.n_frames < 120 and cut.problem and "ends early" in cut.problem and "of the 9.92 s" in cut.problem


@pytest.mark.parametrize(("fmt", "ext", "codec"), [("matroska", "mkv", "libx264"), ("webm", "webm", "libvpx")])
def test_a_recording_segment_that_keeps_the_camera_s_clock_does_not_end_early(tmp_path, fmt: str, ext: str,
                                                                              codec: str) -> None:
    """FFmpeg's segment muxer (``-f segment`` without ``-reset_timestamps``, or ``-copyts``) keeps a camera's
    clock: the 2 s segment that starts at 40 s announces 42 s (Matroska's durations count from the segment's 0).
    Read as a span after its first frame, every such healthy segment but the first "ended early" (an extra
    corrupt row per video in a bucket of segmented recordings); the same segment cut short still does, of its
    own 2 s."""
    from fractions import Fraction

    path = str(tmp_path / f"seg020.{ext}")
    with av.open(path, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for i in range(50):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (9 * i) % 250, np.uint8), format="rgb24")
            f.pts, f.time_base = 40_000 + 40 * i, s.time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    info = index_video(path)
    assert info.n_frames == 50 and info.pts[0] == 40_000
    assert info.problem is None
    truncate(path, 0.5)
    cut = index_video(path)
    assert 0 < cut.n_frames < 50 and cut.problem and "ends early" in cut.problem and "of the 2.00 s" in cut.problem


def test_a_video_that_cannot_seek_is_not_split_over_shards(tmp_path, monkeypatch) -> None:
    """Each manifest shard of a raw ``.hevc`` decoded it from its start up to its own range (S shards: ~S·n/2
    frames decoded for n). Its frames now stay in one shard, in order; a seekable MP4 is still split."""
    from lightly_airflow.datasource.manifest import write_manifests
    from lightly_airflow.staging import read_manifest
    from lightly_airflow.video.synthetic import write_video

    src = tmp_path / "src"
    src.mkdir()
    frames = [np.full((48, 64, 3), (7 * i) % 250, np.uint8) for i in range(90)]
    write_video(str(src / "b.mp4"), frames, size=(64, 48))
    with av.open(str(src / "a.hevc"), "w", format="hevc") as c:
        s = c.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"x265-params": "log-level=error", "preset": "ultrafast"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    for i in range(30):
        (src / f"img-{i:02d}.png").write_bytes(b"")  # images around the videos (never read here)
    keys = ["a.hevc", "b.mp4", *(f"img-{i:02d}.png" for i in range(30))]
    files = pa.table({C.KEY: keys, C.SIZE: [1] * len(keys), C.ETAG: [f"e{i}" for i in range(len(keys))],
                      C.MTIME: pa.array([None] * len(keys), pa.timestamp("us", tz="UTC"))})
    table = expand_videos(files, f"file://{src}")
    assert table.num_rows == 90 + 90 + 30
    uris = write_manifests(table, f"file://{tmp_path / 'pool'}", "r1", datasource_uri=f"file://{src}",
                           min_shard_size=20)
    shards = [read_manifest(u).table.column(C.VIDEO).to_pylist() for u in uris]
    with_hevc = [i for i, videos in enumerate(shards) if "a.hevc" in videos]
    with_mp4 = [i for i, videos in enumerate(shards) if "b.mp4" in videos]
    assert len(with_hevc) == 1 and shards[with_hevc[0]].count("a.hevc") == 90
    assert len(with_mp4) > 1 and sum(v.count("b.mp4") for v in shards) == 90
    assert sum(len(v) for v in shards) == 210 and len(uris) < 210 // 20  # fewer, not lost, rows

    # A very long one is cut into a few even pieces (a shard's memory stays bounded): here pieces of <= 40.
    from lightly_airflow.video import listing

    monkeypatch.setattr(listing, "SEQUENTIAL_SHARD_FRAMES", 40)
    uris = write_manifests(table, f"file://{tmp_path / 'pool'}", "r2", datasource_uri=f"file://{src}",
                           min_shard_size=20)
    shards = [read_manifest(u).table for u in uris]
    pieces = [[i for v, i in zip(t.column(C.VIDEO).to_pylist(), t.column(C.FRAME_INDEX).to_pylist()) if v == "a.hevc"]
              for t in shards]
    pieces = [p for p in pieces if p]
    assert [(p[0], len(p)) for p in pieces] == [(0, 30), (30, 30), (60, 30)]


def test_an_audio_file_with_cover_art_is_no_video(tmp_path) -> None:
    """A song saved as ``.mp4`` (AAC with its album cover as an attached picture) was a one-frame video of the
    cover; it is now a file without video, reported as such (one ``corrupt`` row, never a frame sample)."""
    from av.stream import Disposition

    path = str(tmp_path / "song.mp4")
    with av.open(path, "w", format="mp4") as c:
        audio = c.add_stream("aac", rate=44100)
        cover = c.add_stream("mjpeg", rate=1)
        cover.width = cover.height = 64
        cover.pix_fmt = "yuvj420p"
        cover.disposition = Disposition.attached_pic
        for p in cover.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")):
            c.mux(p)
        for p in cover.encode():
            c.mux(p)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for p in audio.encode(frame):
                c.mux(p)
        for p in audio.encode():
            c.mux(p)
    with av.open(path) as c:
        assert [s.disposition & Disposition.attached_pic for s in c.streams.video] == [Disposition.attached_pic]
    info = index_video(path)
    assert info.n_frames == 0 and info.problem == "the file holds no video stream, only an attached picture (cover art)"


def _write_mpeg_ps(path: str, n: int, size: tuple[int, int] = (64, 48)) -> None:
    """An MPEG-PS (MPEG-2 with B-frames) of ``n`` frames at ``path``, whatever its extension says.

    Its picture is the same wherever the test's folder is (it was seeded by the path's length: 3 of 40 lengths, 72,
    80 and 82, the ``pytest-6`` folder of one CI run, made the muxer leave packets without a timestamp, and the
    tests that count on timestamps failed by where they ran). It fits one 32 KiB I/O buffer of FFmpeg's, whose
    MPEG-PS demuxer reads a file's end to estimate its duration: a file of 34 KiB (other seeds) was read twice
    in all, which the tests' read counts would take for a second decoding pass."""
    from lightly_airflow.video.synthetic import write_video

    rng = np.random.default_rng(76)
    base = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
    write_video(path, (np.roll(base, 2 * i, axis=1) for i in range(n)), ext="mpg", size=size)
    assert os.path.getsize(path) <= 32768, os.path.getsize(path)


def test_an_mpeg_ps_named_mp4_is_planned_by_its_container(tmp_path, monkeypatch) -> None:
    """The planner decided "cannot seek" by the file's extension while the decoder and the index go by the opened
    container's format: an MPEG-PS renamed ``.mp4`` was planned as seekable, so every 512-frame chunk decoded it
    from its start (8.0x the file read here with 8 chunks, quadratic in its length) and its frames were split
    over shards. The index's own flag (``video_seekable`` in the manifest) now plans it: one chunk, one shard,
    one pass; every frame as a full decode has it."""
    import hashlib

    from lightly_airflow.datasource.manifest import write_manifests
    from lightly_airflow.staging import read_manifest
    from lightly_airflow.video import frames as frames_module
    from lightly_airflow.video.frames import frame_rows

    src = tmp_path / "src"
    src.mkdir()
    path = str(src / "renamed.mp4")
    _write_mpeg_ps(path, 128)
    assert "mpeg" in av.open(path).format.name and not index_video(path).seekable
    expected = []
    for _, rgb in full_decode(path):
        digest = hashlib.sha256(rgb.tobytes())
        digest.update(f"{rgb.shape}".encode())
        expected.append(digest.hexdigest())
    files = pa.table({C.KEY: ["renamed.mp4"], C.SIZE: [1], C.ETAG: ["e1"],
                      C.MTIME: pa.array([None], pa.timestamp("us", tz="UTC"))})
    table = expand_videos(files, f"file://{src}")
    assert table.num_rows == 128 and table.column(C.VIDEO_SEEKABLE).to_pylist() == [False] * 128

    uris = write_manifests(table, f"file://{tmp_path / 'pool'}", "r1", datasource_uri=f"file://{src}",
                           min_shard_size=20)
    assert len(uris) == 1  # was 6 shards, each decoding the stream from its start

    readers = _count_reads(monkeypatch)
    monkeypatch.setattr(frames_module, "CHUNK_FRAMES", 16)  # 128 frames: 8 chunks, as 4,096 frames at 512
    assert read_manifest(uris[0]).table.column(C.VIDEO_SEEKABLE).to_pylist() == [False] * 128
    rows = frame_rows(table)
    got = {r.row: r for r in iter_frame_results(f"file://{src}", rows, input_size=None, workers=2)}
    assert [got[r.row].content_hash for r in sorted(rows, key=lambda r: r.index or 0)] == expected
    assert sum(r.read_bytes for r in readers) <= 1.1 * os.path.getsize(path)


def test_an_unseekable_video_is_not_split_when_another_video_s_frames_sort_inside_its_own(tmp_path) -> None:
    """Frame names of ``clip.mpg`` and ``clip-2.mpg`` interleave in key order (``clip-19-mpg.png``,
    ``clip-2-00-mpg.png`` … ``clip-2-29-mpg.png``, ``clip-20-mpg.png``): the shard planner kept consecutive rows
    of a video together only, so ``clip.mpg``'s frames were cut where ``clip-2.mpg``'s began and its two parts
    went to two shards, each decoding it from its start. Now each such video's frames are in one shard, in any
    key order."""
    from lightly_airflow.datasource.manifest import write_manifests
    from lightly_airflow.staging import read_manifest

    src = tmp_path / "src"
    src.mkdir()
    _write_mpeg_ps(str(src / "clip.mpg"), 90)
    _write_mpeg_ps(str(src / "clip-2.mpg"), 30)
    keys = ["clip.mpg", "clip-2.mpg", *(f"img-{i:02d}.png" for i in range(30))]
    files = pa.table({C.KEY: keys, C.SIZE: [1] * len(keys), C.ETAG: [f"e{i}" for i in range(len(keys))],
                      C.MTIME: pa.array([None] * len(keys), pa.timestamp("us", tz="UTC"))})
    table = expand_videos(files, f"file://{src}")
    videos = table.column(C.VIDEO).to_pylist()
    first, last = videos.index("clip.mpg"), len(videos) - 1 - videos[::-1].index("clip.mpg")
    assert "clip-2.mpg" in videos[first:last]  # the names really interleave
    uris = write_manifests(table, f"file://{tmp_path / 'pool'}", "r1", datasource_uri=f"file://{src}",
                           min_shard_size=20)
    shards = [read_manifest(u).table.column(C.VIDEO).to_pylist() for u in uris]
    for video, n in (("clip.mpg", 90), ("clip-2.mpg", 30)):
        holding = [i for i, v in enumerate(shards) if video in v]
        assert len(holding) == 1 and shards[holding[0]].count(video) == n, (video, [v.count(video) for v in shards])
    assert sum(len(v) for v in shards) == 150 and len(uris) > 1


def test_a_manifest_without_the_seekable_flag_plans_an_mpeg_ps_by_its_container(tmp_path, monkeypatch, caplog) -> None:
    """A staged run of the previous version resumed after the upgrade: its manifest has no ``video_seekable``,
    and the planner went by timestamps alone, so an MPEG-PS (timestamps present) was decoded from its start once
    per chunk (8.0x the file read here with 8 chunks, quadratic in its length). A missing flag is now unknown:
    the container's header, opened once per video, decides as the index does; the MP4 beside it still seeks.
    Logged once; every frame as a full decode has it."""
    import hashlib
    import logging

    from lightly_airflow.datasource.manifest import write_manifests
    from lightly_airflow.staging import read_manifest
    from lightly_airflow.video import frames as frames_module
    from lightly_airflow.video.frames import frame_rows
    from lightly_airflow.video.synthetic import write_video

    src = tmp_path / "src"
    src.mkdir()
    _write_mpeg_ps(str(src / "dvd.mpg"), 128)
    rng = np.random.default_rng(1)
    write_video(str(src / "phone.mp4"), (rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(40)), size=(64, 48))
    expected = []
    for _, rgb in full_decode(str(src / "dvd.mpg")):
        digest = hashlib.sha256(rgb.tobytes())
        digest.update(f"{rgb.shape}".encode())
        expected.append(digest.hexdigest())
    keys = ["dvd.mpg", "phone.mp4"]
    files = pa.table({C.KEY: keys, C.SIZE: [1, 1], C.ETAG: ["e1", "e2"],
                      C.MTIME: pa.array([None, None], pa.timestamp("us", tz="UTC"))})
    old = expand_videos(files, f"file://{src}").drop_columns([C.VIDEO_SEEKABLE])  # as the previous version wrote
    uris = write_manifests(old, f"file://{tmp_path / 'pool'}", "r1", datasource_uri=f"file://{src}",
                           min_shard_size=1000)
    manifest = read_manifest(uris[0]).table
    assert C.VIDEO_SEEKABLE not in manifest.column_names and None not in manifest.column(C.FRAME_PTS).to_pylist()

    readers = _count_reads(monkeypatch)
    monkeypatch.setattr(frames_module, "CHUNK_FRAMES", 16)  # 128 frames: 8 chunks, as 4,096 frames at 512
    rows = [r for r in frame_rows(manifest) if r.video == "dvd.mpg"]
    with caplog.at_level(logging.INFO, logger=frames_module.__name__):
        got = {r.row: r for r in iter_frame_results(f"file://{src}", rows, input_size=None, workers=2)}
    assert [got[r.row].content_hash for r in sorted(rows, key=lambda r: r.index or 0)] == expected
    # the header (MPEG-PS has none: FFmpeg probes its packets, here the whole small file) and one pass
    assert sum(r.read_bytes for r in readers) <= 2.1 * os.path.getsize(src / "dvd.mpg")  # was 8.0x
    said = [r.getMessage() for r in caplog.records if "video_seekable" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("1 of this shard's videos") and "1 cannot seek" in said[0] and "dvd.mpg" in said[0], said

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=frames_module.__name__):
        planned = frames_module._chunks(frame_rows(manifest), frames_module._probe(f"file://{src}", None, *_fs(src)))
    sizes = {chunk[0].video: [] for chunk in planned}
    for chunk in planned:
        sizes[chunk[0].video].append(len(chunk))
    assert sizes == {"dvd.mpg": [128], "phone.mp4": [16, 16, 8]}  # the MP4 still seeks to each chunk
    said = [r.getMessage() for r in caplog.records if "video_seekable" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("2 of this shard's videos") and "phone.mp4" not in said[0], said


def _fs(folder) -> tuple:
    from lightly_airflow.storage import filesystem

    return filesystem(f"file://{folder}")


def _write_vfr(path: str, fmt: str, codec: str, frames, *, stream_time_base: bool = False) -> None:
    """A video at a 1/1000 time base with a variable frame rate: frames 33 ms apart, from the 31st 100 ms apart
    (a camera that slows down in the dark), as FFmpeg writes one with ``-enc_time_base 1:1000 -fps_mode vfr``.
    ``stream_time_base``: the stream's time base too (AVI: its header then counts milliseconds)."""
    from fractions import Fraction

    with av.open(path, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=30)
        t = 0
        for i, rgb in enumerate(frames):
            if i == 0:
                s.width, s.height, s.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
                s.codec_context.time_base = Fraction(1, 1000)
                if stream_time_base:
                    s.time_base = Fraction(1, 1000)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += 33 if i < 30 else 100
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _write_vfr_avi(path: str) -> None:
    """An AVI whose header counts milliseconds: 60 frames of :func:`_write_vfr` (3,923 ms)."""
    rng = np.random.default_rng(5)
    _write_vfr(path, "avi", "mpeg4", (rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(60)),
               stream_time_base=True)


def test_an_avi_with_a_millisecond_time_base_and_variable_frame_rate_does_not_end_early(tmp_path) -> None:
    """An AVI's header counts time-base ticks (``dwLength``), frames only where a frame lasts one tick: at 1/1000
    its count is the duration in ms (3,923 "frames" for 60), and such a video was flagged "ends early: 60 frames
    are readable of the 3923" (an extra corrupt row). Its frames now cover the duration it announces: no
    problem; the same file cut short still ends early."""
    from lightly_airflow.video.synthetic import truncate

    path = str(tmp_path / "vfr.avi")
    _write_vfr_avi(path)
    with av.open(path) as c:
        assert c.streams.video[0].frames > 1000  # the header's "frame count": milliseconds
    info = index_video(path)
    assert info.n_frames == len(full_decode(path)) == 60
    assert info.problem is None, info.problem

    cut = str(tmp_path / "cut.avi")
    with open(path, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read())
    truncate(cut, 0.5)
    info = index_video(cut)
    assert 0 < info.n_frames < 60 and info.problem is not None and "ends early" in info.problem


HDR_PATCHES = [(180, 60, 60), (60, 180, 60), (40, 60, 200), (224, 172, 140), (128, 128, 128), (235, 235, 235),
               (20, 20, 20)]


@pytest.mark.parametrize("transfer", ["pq", "hlg"])
def test_an_hdr_video_is_seen_as_an_sdr_screen_shows_it(tmp_path, transfer: str) -> None:
    """A phone's HDR video (HLG, BT.2020, 10 bits) or an HDR10 one (PQ) read as SDR was dull or nearly black: the
    frames are tone-mapped to sRGB as players show HDR on an ordinary screen, for the metrics, the model input,
    the thumbnail and the frame PNG alike (one conversion at decode). PQ shows the colours it encodes; HLG's
    display rendering (its system gamma 1.2) darkens mid-tones a little, as on a TV."""
    from PIL import Image

    from lightly_airflow.video.export import _png
    from lightly_airflow.video.synthetic import write_hdr_video

    side = 16
    row = np.concatenate([np.full((2 * side, side, 3), c, np.uint8) for c in HDR_PATCHES], axis=1)
    path = str(tmp_path / f"clip-{transfer}.mp4")
    write_hdr_video(path, [row] * 4, transfer, size=(row.shape[1], row.shape[0]))
    want = np.array(HDR_PATCHES, dtype=float)

    def centres(rgb: np.ndarray) -> np.ndarray:
        return np.array([rgb[side, i * side + side // 2] for i in range(len(HDR_PATCHES))], dtype=float)

    with av.open(path) as container:
        stored = next(container.decode(video=0))
        assert stored.format.name == "yuv420p10le" and stored.color_primaries == 9
        as_sdr = centres(stored.reformat(format="rgb24").to_ndarray())  # (the values read as SDR: the old reading)
    info = index_video(path)
    root, name = path.rsplit("/", 1)
    rows = [FrameRow(row=i, video=name, index=i, pts=info.pts[i]) for i in range(4)]
    pictures: list[Image.Image] = []

    class Thumbs:
        def add(self, sample_id: str, img: Image.Image) -> None:
            pictures.append(img)

    results = list(iter_frame_results(root, rows, input_size=2 * side, workers=1, thumbs=Thumbs()))
    assert [r.status for r in results] == [C.STATUS_OK] * 4
    got = next(decode_frames(path, [(0, info.pts[0])])).frame
    seen = centres(np.asarray(Image.open(__import__("io").BytesIO(_png(got, "etag")))))
    error, old_error = np.abs(seen - want), np.abs(as_sdr - want)
    if transfer == "pq":  # (greys as encoded; swscale's gamut mapping takes a little of saturated colours)
        assert error[4:].max() <= 2 and error.max() <= 20 and error.mean() <= 5, seen
        assert old_error.max() >= 90  # (read as SDR: white at 141, black at 41)
    else:  # HLG's display light: the scene light times its luminance^0.2 (BT.2100's OOTF, system gamma 1.2)
        v = want / 255
        lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        shown = lin * ((lin @ [0.2126, 0.7152, 0.0722]) ** 0.2)[:, None]
        expected = np.where(shown <= 0.0031308, shown * 12.92, 1.055 * shown ** (1 / 2.4) - 0.055) * 255
        error = np.abs(seen - expected)
        assert error[4:].max() <= 2 and error.max() <= 20 and error.mean() <= 5, (seen, expected)
        assert np.abs(as_sdr - expected).mean() >= 15 and as_sdr[5].max() <= 190  # (read as SDR: white at 180, pale)
    # The metrics and thumbnails of the shard see the same colours as the frame PNG.
    thumb = np.asarray(pictures[0].resize((row.shape[1], row.shape[0]), Image.Resampling.NEAREST))
    assert np.abs(centres(thumb) - seen).max() <= 3
    luminance = (np.array([0.299, 0.587, 0.114]) * np.asarray(Image.open(__import__("io").BytesIO(
        _png(got, "etag"))), dtype=float).reshape(-1, 3).mean(axis=0)).sum() / 255 * 100
    assert results[0].metrics["luminance"] == pytest.approx(luminance, abs=0.5)
    assert results[0].small.shape == (2 * side, 2 * side, 3)


PLAYER_PATCHES = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (200, 60, 40),
                  (128, 128, 128)]
MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}  # (Kr, Kb)


def _write_patches(path: str, size: tuple[int, int], matrix: str, tag: str | None) -> None:
    """Flat colour patches as limited-range 4:2:0 YUV made with ``matrix`` (the RGB a player shows for the stream),
    encoded losslessly by libx264; the stream's colour matrix is tagged ``tag`` or left unspecified."""
    from lightly_airflow.video.synthetic import _encode

    kr, kb = MATRICES[matrix]
    w, h = size
    pw = w // len(PLAYER_PATCHES)
    rgb = np.zeros((h, w, 3))
    for i, c in enumerate(PLAYER_PATCHES):
        rgb[:, i * pw:(i + 1) * pw] = np.array(c) / 255
    y = kr * rgb[..., 0] + (1 - kr - kb) * rgb[..., 1] + kb * rgb[..., 2]
    cb, cr = (rgb[..., 2] - y) / (2 * (1 - kb)), (rgb[..., 0] - y) / (2 * (1 - kr))
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, values in zip(frame.planes, (16 + 219 * y, 128 + 224 * cb[::2, ::2], 128 + 224 * cr[::2, ::2]),
                             strict=True):
        buf = np.zeros((values.shape[0], plane.line_size), dtype=np.uint8)
        buf[:, : values.shape[1]] = np.clip(np.round(values), 0, 255)
        plane.update(buf.tobytes())
    options = {"qp": "0", "preset": "ultrafast"}
    if tag:
        options["x264-params"] = f"log-level=error:colormatrix={tag}"
    _encode(path, "mp4", "libx264", options, "yuv420p", [frame, frame], rate=10, size=size)


@pytest.mark.parametrize(("size", "matrix", "tag"), [
    pytest.param((1280, 720), "bt709", None, id="untagged-hd"),  # players read BT.709 (it was read as BT.601)
    pytest.param((640, 480), "bt601", None, id="untagged-sd"),  # BT.601, as before
    pytest.param((1280, 720), "bt601", "smpte170m", id="bt601-hd"),  # a tagged matrix is read as tagged
    pytest.param((1280, 720), "bt709", "bt709", id="bt709-hd"),
])
def test_untagged_hd_video_is_read_with_the_matrix_players_guess(tmp_path, size, matrix: str, tag: str | None) -> None:
    """A stream without a colour matrix tag (screen recordings, ffmpeg outputs without ``-colorspace``) is read as
    players read it: BT.709 when HD, BT.601 when SD. swscale read every untagged stream as BT.601, so an untagged
    720p clip's red came out at 232 and (200, 60, 40) at (186, 46, 41) in the metrics, the model input, the
    thumbnail and the frame PNG. Tagged streams are read by their tag."""
    import io

    from PIL import Image

    from lightly_airflow.video.export import _png

    path = str(tmp_path / "clip.mp4")
    _write_patches(path, size, matrix, tag)
    w, h = size
    pw = w // len(PLAYER_PATCHES)
    want = np.array(PLAYER_PATCHES, dtype=float)

    def centres(rgb: np.ndarray) -> np.ndarray:
        sx, sy = rgb.shape[1] / w, rgb.shape[0] / h
        return np.array([rgb[int(h // 2 * sy), int((i * pw + pw // 2) * sx)] for i in range(len(PLAYER_PATCHES))],
                        dtype=float)

    info = index_video(path)
    got = next(decode_frames(path, [(0, info.pts[0])])).frame
    assert got.colorspace == {None: 2, "bt709": 1, "smpte170m": 6}[tag]
    png = np.asarray(Image.open(io.BytesIO(_png(got, "etag"))).convert("RGB"))
    assert png.shape == (h, w, 3)
    assert np.abs(centres(png) - want).max() <= 3, centres(png)

    root, name = path.rsplit("/", 1)
    pictures: list[Image.Image] = []

    class Thumbs:
        def add(self, sample_id: str, img: Image.Image) -> None:
            pictures.append(img)

    results = list(iter_frame_results(root, [FrameRow(row=0, video=name, index=0, pts=info.pts[0])], input_size=64,
                                      workers=1, thumbs=Thumbs()))
    assert [r.status for r in results] == [C.STATUS_OK]
    assert np.abs(centres(np.asarray(pictures[0].convert("RGB"))) - want).max() <= 4
    assert np.abs(centres(results[0].small) - want).max() <= 8  # (64 px: patches 8 px wide, bilinear)
    luminance = (np.array([0.299, 0.587, 0.114]) * want.mean(axis=0)).sum() / 255 * 100  # (patches fill the frame)
    assert results[0].metrics["luminance"] == pytest.approx(luminance, abs=0.5)


def test_a_transport_stream_is_told_from_a_typescript_file_by_its_sync_bytes(video_files: dict[str, str]) -> None:
    from lightly_airflow.video.index import is_transport_stream, transport_stream_problem

    for ext in ("ts", "mts", "m2ts"):  # 188-byte packets, and BDAV's 192 with a timecode first
        with open(video_files[ext], "rb") as fh:
            assert is_transport_stream(fh.read(1024)), ext
    with open(video_files["mp4"], "rb") as fh:
        mp4 = fh.read(1024)
    code = "export const x: number = 1;\nconsole.log(`é ${x}`);\n".encode() * 40
    for head in (mp4, code, b"", b"G" + b"\0" * 1023):  # ("G" is 0x47: one sync byte is no stream)
        assert not is_transport_stream(head)
    assert "text (a TypeScript" in transport_stream_problem(code[:1023])  # (a character cut at the end)
    assert "another kind of file" in transport_stream_problem(mp4)
    assert "another kind of file" in transport_stream_problem(b"\0" * 64)


def test_a_zero_byte_video_is_reported_as_an_empty_file(tmp_path) -> None:
    """A 0-byte ``.mp4`` (an upload that did not finish) was ``cannot open the video: InvalidDataError: Invalid data
    found when processing input``, the reason of a damaged file; it now says it is empty and the fix, from a path
    and from a file object (a remote video) alike. Junk bytes keep FFmpeg's reason."""
    import io

    from lightly_airflow.video.index import EMPTY_VIDEO, index_video

    empty, junk = tmp_path / "empty.mp4", tmp_path / "junk.mp4"
    empty.write_bytes(b"")
    junk.write_bytes(bytes(range(256)) * 8)
    for source in (str(empty), io.BytesIO(b"")):
        info = index_video(source)
        assert info.n_frames == 0 and info.problem == EMPTY_VIDEO
        assert info.problem.startswith("empty file (0 bytes)")
    info = index_video(str(junk))
    assert info.n_frames == 0 and info.problem.startswith("cannot open the video: InvalidDataError")
    # through the listing's indexing, an empty .ts too (not "not an MPEG transport stream: text (a TypeScript …?)")
    from lightly_airflow.video.listing import index_videos

    (tmp_path / "seg.ts").write_bytes(b"")
    found = index_videos(str(tmp_path), ["empty.mp4", "seg.ts"])
    assert {k: v.problem for k, v in found.items()} == {"empty.mp4": EMPTY_VIDEO, "seg.ts": EMPTY_VIDEO}


def test_an_mp4_cut_before_its_index_says_so(video_files: dict[str, str], tmp_path) -> None:
    """An MP4 whose index (the ``moov`` box, written last by PyAV and most recorders) was cut off by an upload that
    did not finish was ``cannot open the video: InvalidDataError …``, the reason of junk bytes; it now says the file
    was cut short and the fix, from a path and from a file object (a remote video) alike, in the listing's index
    and in the embed step's decode."""
    import io
    from pathlib import Path

    path = tmp_path / "cut.mp4"
    data = Path(video_files["mp4"]).read_bytes()
    assert b"moov" in data[len(data) // 2 :]  # (the index sits at the end: what a cut removes)
    path.write_bytes(data[: len(data) // 2])
    for source in (str(path), io.BytesIO(path.read_bytes())):
        info = index_video(source)
        assert info.n_frames == 0, info
        assert "no index (no 'moov' box)" in info.problem and "cut short" in info.problem, info.problem
        assert f"({len(data) // 2:,} of " in info.problem and "upload the complete file again" in info.problem
    (got,) = list(decode_frames(str(path), [(0, 0)]))
    assert got.frame is None and "cut short" in got.reason
    # an intact MP4 opens as before, and junk with an 'ftyp' but no boxes to follow keeps FFmpeg's reason
    assert index_video(video_files["mp4"]).n_frames == 31
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x04ftypjunkjunk" * 4)
    assert index_video(str(junk)).problem.startswith("cannot open the video:")
