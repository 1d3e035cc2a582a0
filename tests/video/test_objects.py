"""Object-level selection on video frames: Lightly's frame predictions (``<video>-<frame>-<ext>.json``) and
``auto_tasks`` give objects cropped from the video pass's one decode of each frame, embedded, described and
selected on exactly as image objects are."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video, truncate

TASK = "det"


def _frame_rgb(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video decoded here with PyAV on its own (no rotation in these videos)."""
    import av

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return np.asarray(frame.to_ndarray(format="rgb24"))
    raise AssertionError(f"{path} has no frame {index}")


def _predictions(src: Path, boxes: dict[str, list[list[float]]]) -> None:
    folder = src / ".lightly" / "predictions" / TASK
    folder.mkdir(parents=True)
    (src / ".lightly" / "predictions" / "tasks.json").write_text(json.dumps([TASK]))
    (folder / "schema.json").write_text(json.dumps({"task_type": "object-detection", "categories": [
        {"id": 0, "name": "person"}, {"id": 1, "name": "car"}]}))
    for key, found in boxes.items():
        (folder / key.replace(".png", ".json")).write_text(json.dumps({"file_name": key, "predictions": [
            {"category_id": i % 2, "bbox": b, "score": 0.9 - 0.1 * i} for i, b in enumerate(found)]}))


def _run(src: Path, pool: Path, run_id: str, selection: dict[str, Any], worker: dict[str, Any] | None = None,
         *, process_all: bool = False, num_workers: int = 2, after_listing: Any = None,
         **select_options: Any) -> tuple[Any, list[dict[str, Any]], Any]:
    """The run's plain functions (what the DAG's tasks call), with the object settings the list task writes."""
    from lightly_airflow.config.selection import parse_selection_config
    from lightly_airflow.config.worker import parse_worker_config
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.objects.spec import objects_spec
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard
    from lightly_airflow.storage import read_parquet

    spec = objects_spec(parse_selection_config(selection), parse_worker_config(worker or {}))
    query = NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool}", process_all=process_all)
    listed = list_new(query, run_id=run_id, min_shard_size=1000, objects=spec)
    reuse = read_parquet(listed.reuse_uri) if listed.reuse_uri else None
    if after_listing is not None:
        after_listing()
    counts = []
    for m in listed.manifests:
        counts.append(embed_shard(m, device="cpu", input_size=64, reuse=reuse, num_workers=num_workers))
        compute_metadata_shard(m)
        load_predictions_shard(m, lightly_uri=f"file://{src}")
    summary = select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t",
                                manifests=listed.manifests, selection_config=selection, **select_options)
    return listed, counts, summary


def test_object_level_selection_picks_frames_by_the_crops_of_their_predicted_boxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.rows import sample_id
    from lightly_airflow.embedding.options import EmbedOptions
    from lightly_airflow.embedding.runner import _cached_encoder
    from lightly_airflow.metadata.metrics import CROP_METRICS, compute_metrics
    from lightly_airflow.objects.crops import crop_relpath
    from lightly_airflow.objects.shard import embed_crops
    from lightly_airflow.thumbnails import read_thumbnail
    from lightly_airflow.video import frames as video_frames

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "street.mp4"), "astronaut", 12, seed=1)  # 160 x 120, frames street-00 .. -11
    make_scene_video(str(src / "walk.avi"), "coffee", 10, seed=2)
    make_scene_video(str(src / "cut.webm"), "chelsea", 40, seed=3)  # cut after the listing: its end does not decode
    boxes = {
        "street-02-mp4.png": [[10, 20, 40, 30], [100, 50, 50, 60]],
        "street-05-mp4.png": [[0, 0, 30, 30]],
        "street-09-mp4.png": [[120, 90, 80, 60]],  # partly outside: clipped
        "walk-03-avi.png": [[30, 30, 60, 40], [500, 500, 10, 10]],  # the second has no area inside the frame
        "cut-39-webm.png": [[5, 5, 20, 20]],  # a frame that does not decode (no objects, counted)
    }
    _predictions(src, boxes)
    analysed: list[int] = []
    real = video_frames.analyse_frame

    def counting(frame: Any, input_size: int | None, on_rgb: Any = None) -> Any:
        analysed.append(1)
        return real(frame, input_size, on_rgb)

    monkeypatch.setattr(video_frames, "analyse_frame", counting)
    selection = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    listed, counts, summary = _run(src, pool_dir, "r1", selection, {"object_level": {"padding": 0.1}},
                                   after_listing=lambda: truncate(str(src / "cut.webm"), 0.5))

    (objects,) = [c["objects"] for c in counts]
    assert objects["objects"] == 5  # 6 boxes on frames: one has no area inside its frame
    assert (objects["objects"], objects["video_frames_with_objects"], objects["boxes_outside_image"],
            objects["video_frames_failed"], objects["images_failed"]) == (5, 4, 1, 1, 0)
    assert "video_frames_skipped" not in objects and "video_frames_skipped" not in summary.objects
    assert summary.objects["video_frames_failed"] == 1 and summary.objects["boxes_outside_image"] == 1
    # One decode per frame: the frames with objects were cropped in the video pass's analysis of them.
    ok_frames = sum(1 for r in Datapool(f"file://{pool_dir}").read().to_pylist()
                    if r[C.VIDEO] and r[C.PARENT_KEY] is None and r[C.FRAME_INDEX] is not None
                    and r[C.STATUS] == C.STATUS_OK)
    assert len(analysed) == ok_frames

    rows = Datapool(f"file://{pool_dir}").read()
    objs = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).sort_by(C.KEY).to_pylist()
    frames = {r[C.KEY]: r for r in rows.filter(pc.is_null(rows.column(C.PARENT_KEY))).to_pylist()}
    assert sorted(r[C.KEY] for r in objs) == sorted(
        [C.object_id("street-02-mp4.png", TASK, i) for i in (0, 1)]
        + [C.object_id(k, TASK, 0) for k in ("street-05-mp4.png", "street-09-mp4.png", "walk-03-avi.png")])
    # The selection picks frames, by their objects, and the picked frames' objects are selected.
    picked = sorted(k for k, r in frames.items() if r[C.SELECTED])
    assert len(picked) == 2 and all(k in boxes for k in picked)
    assert sorted({r[C.PARENT_KEY] for r in objs if r[C.OBJECT_SELECTED]}) == picked

    encoder = _cached_encoder(EmbedOptions().model, None, None, 64, __import__("torch").device("cpu"), None)
    videos = {"street": src / "street.mp4", "walk": src / "walk.avi"}
    for row in objs:
        parent = frames[row[C.PARENT_KEY]]
        assert row[C.ETAG] == parent[C.ETAG] and row[C.OBJECT_CATEGORY] in ("person", "car")
        rgb = _frame_rgb(videos[parent[C.VIDEO].split(".")[0]], parent[C.FRAME_INDEX])
        x, y, w, h = row[C.OBJECT_CROP_BOX]
        region = np.ascontiguousarray(rgb[y : y + h, x : x + w])
        # The crop's metrics are those of the frame's own pixels in the padded, clipped box ...
        expected = compute_metrics(region, np.asarray(Image.fromarray(region).convert("L")), 0)
        for m in CROP_METRICS:
            assert row[C.lightly_metadata_column(m)] == pytest.approx(expected[m], rel=1e-6, abs=1e-9), m
        # ... its embedding is the encoder's of those pixels resized to the input ...
        small = np.array(Image.fromarray(region).resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=3.0))
        vector = embed_crops(encoder, __import__("torch").device("cpu"), small[None], 32)[0]
        np.testing.assert_allclose(row[C.EMBEDDING], vector, rtol=1e-4, atol=1e-5)
        # ... and its UI thumbnail shows them (JPEG).
        thumb = read_thumbnail(f"file://{pool_dir}", sample_id(row[C.KEY], row[C.ETAG]))
        assert thumb is not None
        with Image.open(io.BytesIO(thumb)) as im:
            shown = np.asarray(im.convert("RGB"), np.float64)
        assert shown.shape == region.shape and np.abs(shown - region).mean() < 8
    street9 = next(r for r in objs if r[C.PARENT_KEY] == "street-09-mp4.png")
    assert street9[C.OBJECT_CROP_BOX] == [116, 87, 44, 33]  # padded by 10 %, clipped to the 160 x 120 frame

    # The selected objects' crops are written as PNG (from the frame's pixels), like image crops.
    for row in objs:
        if row[C.OBJECT_SELECTED]:
            path = src / ".lightly" / crop_relpath(row[C.PARENT_KEY], TASK, row[C.OBJECT_INDEX])
            parent = frames[row[C.PARENT_KEY]]
            rgb = _frame_rgb(videos[parent[C.VIDEO].split(".")[0]], parent[C.FRAME_INDEX])
            x, y, w, h = row[C.OBJECT_CROP_BOX]
            with Image.open(path) as crop:
                np.testing.assert_array_equal(np.asarray(crop.convert("RGB")), rgb[y : y + h, x : x + w])
    assert summary.objects["crops"]["written"] == sum(1 for r in objs if r[C.OBJECT_SELECTED])
    assert summary.objects["crops"]["failed"] == 0
    # The COCO export gives the picked frames' PNGs with their objects' boxes as predicted.
    from urllib.parse import unquote

    from lightly_airflow.datapool.export import export_tag

    coco = export_tag(Datapool(f"file://{pool_dir}"), C.INITIAL_TAG, fmt="coco", datasource_uri=f"file://{src}")
    assert sorted(unquote(i["coco_url"]) for i in coco["images"]) == sorted(
        f"file://{src}/.lightly/frames/{k}" for k in picked)
    assert sorted(a["object_id"] for a in coco["annotations"]) == sorted(
        r[C.KEY] for r in objs if r[C.PARENT_KEY] in picked)
    assert all(a["bbox"] in boxes[a["object_id"].split("#")[0]] for a in coco["annotations"])
    # The report draws the picked frames with their objects (from the frames' PNGs).
    figure = Path(summary.report_uri.removeprefix("file://")).parent / "objects.png"
    with Image.open(figure) as im:
        assert im.height >= 2 * 128  # one strip per picked frame


def test_auto_tasks_tile_every_frame_and_reused_frames_are_cropped_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto_tasks`` TILING gives every frame its tiles (a broken video's own row is no frame: it has none and
    is not counted as a failed frame); a ``process_all`` run that reuses the frames' embeddings (no video
    decoded by the image pass) still crops and re-adds their objects, from a decode that serves the crops only:
    the frames' metrics, hash and corruptness are the pool's (reused), and computing them again in that decode
    (11 frames here) was thrown away."""
    from lightly_airflow.datapool import Datapool

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "a.mp4"), "astronaut", 6, seed=1)
    make_scene_video(str(src / "b.mov"), "rocket", 5, seed=2)
    (src / "junk.mp4").write_bytes(b"not a video" * 50)  # listed as one corrupt row with a video problem
    selection = {"n_samples": 3, "auto_tasks": [{"type": "TILING", "name": "tiles", "num_rows": 2, "num_cols": 2}],
                 "strategies": [{"input": {"type": "EMBEDDINGS", "task": "tiles"}, "strategy": {"type": "DIVERSITY"}}]}
    _, counts, summary = _run(src, pool_dir, "r1", selection)
    assert sum(c["objects"]["objects"] for c in counts) == 11 * 4
    assert sum(c["objects"]["video_frames_with_objects"] for c in counts) == 11
    assert sum(c["objects"]["video_frames_failed"] + c["objects"]["images_failed"] for c in counts) == 0
    rows = Datapool(f"file://{pool_dir}").read()
    objs = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY)))
    assert objs.num_rows == 44 and objs.column(C.EMBEDDING).null_count == 0
    assert sorted(set(map(tuple, objs.column(C.OBJECT_CROP_BOX).to_pylist()))) == [
        (0, 0, 80, 60), (0, 60, 80, 60), (80, 0, 80, 60), (80, 60, 80, 60)]
    picked = rows.filter(pc.fill_null(rows.column(C.SELECTED), False)).column(C.KEY).to_pylist()
    assert len(picked) == 3 and all(k.endswith(("-mp4.png", "-mov.png")) for k in picked)

    from lightly_airflow.video import frames as frames_module

    analysed: list[int] = []
    real_analyse = frames_module.analyse_frame

    def counting_analyse(*args: Any, **kwargs: Any) -> Any:
        analysed.append(1)
        return real_analyse(*args, **kwargs)

    monkeypatch.setattr(frames_module, "analyse_frame", counting_analyse)
    listed, counts2, _ = _run(src, pool_dir, "r2", selection, process_all=True)
    assert listed.reusable == 11 and sum(c["embedded"] for c in counts2) == 0
    assert not analysed  # was 11: each reused frame's metrics and hash computed for nothing
    assert sum(c["objects"]["objects"] for c in counts2) == 44
    rows2 = Datapool(f"file://{pool_dir}").read(run_id="r2")
    objs2 = rows2.filter(pc.and_(pc.is_valid(rows2.column(C.PARENT_KEY)), pc.equal(rows2.column(C.RUN_ID), "r2")))
    assert objs2.num_rows == 44
    by_key = {r[C.KEY]: r[C.EMBEDDING] for r in objs.to_pylist()}
    for r in objs2.to_pylist():  # the same pixels, the same encoder: the same crops and embeddings
        np.testing.assert_allclose(r[C.EMBEDDING], by_key[r[C.KEY]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_frames", [4, 512])  # many chunks decoded concurrently; one chunk, analysed in threads
def test_crops_analysed_ahead_of_the_model_stay_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_frames: int,
) -> None:
    """The frames' crops wait for the model in a bounded window (``objects.shard.MAX_CROP_BYTES_AHEAD``, as
    image crops do), not a whole video's: the decoding threads stop while the crops ahead of a slow consumer
    pass the budget, and every frame still comes, in order, with its crops."""
    import threading
    import time

    from lightly_airflow.video import frames as video_frames
    from lightly_airflow.video.frames import FrameRow, iter_frame_results

    make_scene_video(str(tmp_path / "long.mp4"), "astronaut", 40, seed=1)
    monkeypatch.setattr(video_frames, "CHUNK_FRAMES", chunk_frames)
    lock = threading.Lock()
    produced = [0]

    class Hook:
        budget = 10

        def cost(self, row: int) -> int:
            return 3

        def crop(self, row: int, rgb: np.ndarray) -> tuple[int, tuple[int, ...]]:
            with lock:
                produced[0] += 3
            return row, rgb.shape

    rows = [FrameRow(i, "long.mp4", i, None) for i in range(40)]
    consumed, most_ahead, order = 0, 0, []
    for result in iter_frame_results(str(tmp_path), rows, input_size=None, workers=3, objects=Hook()):
        assert result.objects == (result.row, (120, 160, 3))
        with lock:
            most_ahead = max(most_ahead, produced[0] - consumed)
        consumed += 3
        order.append(result.row)
        time.sleep(0.01)  # a slow model: the decoders run ahead as far as the budget lets them
    assert order == list(range(40))
    assert most_ahead <= Hook.budget + 3  # the budget, plus the consumer's next frame at most


def test_a_phone_videos_frames_are_cropped_upright(tmp_path: Path) -> None:
    """A portrait phone video is stored landscape with a display matrix; its predictions are made on the frames
    as players show them (96 wide, 160 high), so its boxes are cropped from the upright frame: a box below the
    stored picture's height crops the pixels the user sees there, and the exported crop equals them."""
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.metadata.metrics import compute_metrics
    from lightly_airflow.objects.crops import crop_relpath
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    upright = list(scene_frames(scene("astronaut"), 4, (96, 160), seed=3))  # portrait: 96 wide, 160 high
    stored = [np.ascontiguousarray(np.rot90(f, 1)) for f in upright]
    write_video(str(src / "IMG_0042.MOV"), stored, size=(160, 96), rotation=-90)
    _predictions(src, {"IMG_0042-1-MOV.png": [[8, 110, 80, 40]]})  # y + h = 150: inside 96 x 160 only
    selection = {"n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    _, counts, summary = _run(src, pool_dir, "r1", selection)
    assert counts[0]["objects"]["objects"] == 1 and counts[0]["objects"]["boxes_outside_image"] == 0
    rows = Datapool(f"file://{pool_dir}").read()
    (obj,) = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).to_pylist()
    assert obj[C.PARENT_KEY] == "IMG_0042-1-MOV.png" and obj[C.OBJECT_CROP_BOX] == [8, 110, 80, 40]
    shown = np.ascontiguousarray(np.rot90(_frame_rgb(src / "IMG_0042.MOV", 1), -1))  # as players show it
    assert shown.shape == (160, 96, 3)
    region = np.ascontiguousarray(shown[110:150, 8:88])
    expected = compute_metrics(region, np.asarray(Image.fromarray(region).convert("L")), 0)
    assert obj[C.lightly_metadata_column("luminance")] == pytest.approx(expected["luminance"], rel=1e-9)
    assert obj[C.lightly_metadata_column("meanRed")] == pytest.approx(expected["meanRed"], rel=1e-9)
    with Image.open(src / ".lightly" / crop_relpath(obj[C.PARENT_KEY], TASK, 0)) as crop:
        np.testing.assert_array_equal(np.asarray(crop.convert("RGB")), region)
    assert summary.objects["crops"]["written"] == 1


def test_sequences_are_selected_by_the_objects_of_their_frames(tmp_path: Path) -> None:
    """With ``selected_sequence_length`` a sequence's objects are its frames' objects: object-level DIVERSITY
    picks whole sequences, first those with objects (a sequence without any has objective 0), and marks the
    objects of every frame it picked. It used to fail after the embed tasks with "no objects of task"."""
    from lightly_airflow.datapool import Datapool

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "street.mp4"), "astronaut", 12, seed=1)
    _predictions(src, {"street-03-mp4.png": [[10, 20, 40, 30]], "street-06-mp4.png": [[0, 0, 30, 30]],
                       "street-07-mp4.png": [[50, 40, 60, 50]]})
    selection = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    _, _, summary = _run(src, pool_dir, "r1", selection, selected_sequence_length=2)
    rows = Datapool(f"file://{pool_dir}").read()
    frames = rows.filter(pc.is_null(rows.column(C.PARENT_KEY)))
    picked = frames.filter(pc.fill_null(frames.column(C.SELECTED), False)).column(C.FRAME_INDEX).to_pylist()
    assert sorted(picked) == [2, 3, 6, 7]  # the two sequences (frames 2-3 and 6-7) with objects
    assert [s["frame_indices"] for s in summary.metrics["sequences"]] in ([[2, 3], [6, 7]], [[6, 7], [2, 3]])
    objs = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY)))
    assert objs.num_rows == 3 and all(objs.column(C.OBJECT_SELECTED).to_pylist())


def test_the_ui_shows_frames_their_boxes_and_their_objects_crops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame is no file of the datasource: its page's picture, its objects' crops and the size its boxes are
    drawn at all came back as 404 / "size could not be read". The picture is the run's PNG of a selected frame,
    else the frame decoded now, pixel for pixel the frame's own decode."""
    from ui_client import ui_client

    from lightly_airflow.datapool import Datapool

    src, pool_dir = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "street.mp4"), "astronaut", 12, seed=1)  # 160 x 120
    boxes = {"street-02-mp4.png": [[10, 20, 40, 30]], "street-07-mp4.png": [[60, 40, 50, 50]]}
    _predictions(src, boxes)
    selection = {"n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    _run(src, pool_dir, "r1", selection)
    rows = Datapool(f"file://{pool_dir}").read().to_pylist()
    frames = {r[C.KEY]: r for r in rows if r[C.PARENT_KEY] is None}
    objects = {r[C.PARENT_KEY]: r for r in rows if r[C.PARENT_KEY] is not None}
    picked = next(k for k, r in frames.items() if r[C.SELECTED])
    unpicked = "street-05-mp4.png"  # no PNG was written for it: decoded when asked
    assert not (src / ".lightly" / "frames" / unpicked).exists() and (src / ".lightly" / "frames" / picked).exists()

    with ui_client(monkeypatch, {"v": {"uri": f"file://{pool_dir}"}}) as client:
        for key in (picked, unpicked):
            got = client.get(f"/lightly/pools/v/samples/{frames[key][C.SAMPLE_ID]}/image")
            assert got.status_code == 200 and got.headers["content-type"] == "image/png", (key, got.text[:200])
            shown = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB"))
            np.testing.assert_array_equal(shown, _frame_rgb(src / "street.mp4", frames[key][C.FRAME_INDEX]))
        # A frame with predicted boxes: they are drawn at the frame's size.
        api = client.get(f"/lightly/api/pools/v/samples/{frames['street-07-mp4.png'][C.SAMPLE_ID]}").json()
        assert api["image_size"] == [160, 120]
        page = client.get(f"/lightly/pools/v/samples/{frames['street-07-mp4.png'][C.SAMPLE_ID]}").text
        assert "could not be read" not in page
        # Its video plays in the page from the frame's time; the file is served in byte ranges as it is now
        frame = frames["street-07-mp4.png"]
        video = f"/lightly/pools/v/samples/{frame[C.SAMPLE_ID]}/video"
        assert f'src="{video}?version=1#t={frame[C.FRAME_SECONDS]:.3f}"' in page and "<h3>In its video</h3>" in page
        raw = (src / "street.mp4").read_bytes()
        head = client.get(video, headers={"Range": "bytes=0-99"})
        assert head.status_code == 206 and head.content == raw[:100]
        assert head.headers["content-range"] == f"bytes 0-99/{len(raw)}" and head.headers["accept-ranges"] == "bytes"
        assert head.headers["content-type"] == "video/mp4" and "media-src 'self'" in head.headers["content-security-policy"]
        rest = client.get(video, headers={"Range": "bytes=100-"})
        assert rest.status_code == 206 and rest.content == raw[100:]
        assert client.get(video, headers={"Range": "bytes=-10"}).content == raw[-10:]
        whole = client.get(video)
        assert whole.status_code == 200 and whole.content == raw
        past = client.get(video, headers={"Range": f"bytes={len(raw)}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(raw)}"
        # An object of a frame: its crop is cut from the frame, and drawn on the frame at the frame's size.
        obj = objects["street-02-mp4.png"]
        x, y, w, h = obj[C.OBJECT_CROP_BOX]
        got = client.get(f"/lightly/pools/v/samples/{obj[C.SAMPLE_ID]}/image")
        assert got.status_code == 200, got.text[:200]
        crop = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB"))
        np.testing.assert_array_equal(crop, _frame_rgb(src / "street.mp4", 2)[y:y + h, x:x + w])
        assert client.get(f"/lightly/api/pools/v/samples/{obj[C.SAMPLE_ID]}").json()["image_size"] == [160, 120]
        page = client.get(f"/lightly/pools/v/samples/{obj[C.SAMPLE_ID]}").text
        assert 'frame 2 of video <code>street.mp4</code></a>: ' in page and '<p class="objname">Object of <a' in page and "In its frame" in page
        assert client.get(f"/lightly/pools/v/samples/{obj[C.SAMPLE_ID]}/video").status_code == 404  # not a frame
