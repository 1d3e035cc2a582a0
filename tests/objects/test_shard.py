"""The objects of a shard: cropped from one decode per image, embedded by the image encoder, described."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.objects.demo_data import TASK, add_images
from lightly_airflow.objects.spec import ObjectsSpec, write_spec
from lightly_airflow.storage import read_parquet


def _manifest(source: Path, pool: Path) -> str:
    from lightly_airflow.datasource import list_files, write_manifests

    listing = pa.Table.from_batches(list(list_files(f"file://{source}")))
    (uri,) = write_manifests(listing, f"file://{pool}", "run-1", datasource_uri=f"file://{source}",
                             lightly_uri=f"file://{source}")
    return uri


def test_objects_of_a_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lightly_airflow.embedding.images as images
    from lightly_airflow.embedding.runner import embed_shard

    source, pool = tmp_path / "src", tmp_path / "pool"
    preds = add_images(source, 0, 6, seed=3)
    # A keypoint task next to the detections: its objects are the keypoints' bounding boxes.
    kp_dir = source / ".lightly" / "predictions" / "people"
    kp_dir.mkdir()
    (kp_dir / "schema.json").write_text(json.dumps({"task_type": "keypoint-detection", "categories": []}))
    (kp_dir / "img_0000.json").write_text(json.dumps({"file_name": "img_0000.png", "predictions": [
        {"keypoints": [10, 10, 0.9, 40, 30, 0.8], "score": 0.7}]}))
    (source / ".lightly" / "predictions" / "tasks.json").write_text(json.dumps([TASK, "people"]))
    manifest = _manifest(source, pool)
    spec = ObjectsSpec(tasks=(TASK, "people"), padding=0.1,
                       auto_tasks=({"type": "TILING", "name": "tiles", "num_rows": 2, "num_cols": 2, "overlap": 0.0},))
    write_spec(spec, staging.run_dir(f"file://{pool}", "run-1"))

    decoded: dict[int, int] = {}
    real = images._open_rgb

    def counting(data: bytes, draft: int | None, fit: bool, key: str | None = None
                 ) -> tuple[Image.Image, tuple[int, int]]:
        if draft is None:
            decoded[len(data)] = decoded.get(len(data), 0) + 1
        return real(data, draft, fit, key)

    monkeypatch.setattr(images, "_open_rgb", counting)
    counts = embed_shard(manifest, input_size=64, device="cpu", batch_size=8, num_workers=0)
    objects = read_parquet(staging.sibling_uri(manifest, staging.OBJECTS))
    n_det = sum(len(p) for p in preds.values())
    assert counts["objects"]["objects"] == objects.num_rows == n_det + 1 + 6 * 4
    assert sum(decoded.values()) == 6  # one full decode per image, whatever its number of objects
    rows = objects.to_pylist()
    tiles = [r for r in rows if r[C.OBJECT_TASK] == "tiles"]
    assert sorted({r[C.PARENT_KEY] for r in tiles}) == sorted(preds) and len(tiles) == 24
    (person,) = [r for r in rows if r[C.OBJECT_TASK] == "people"]
    assert person[C.OBJECT_BBOX] == [10.0, 10.0, 30.0, 20.0] and person[C.OBJECT_CROP_BOX] == [8, 9, 34, 22]
    for r in rows:
        assert r[C.KEY] == C.object_id(r[C.PARENT_KEY], r[C.OBJECT_TASK], r[C.OBJECT_INDEX])
        assert r[C.METADATA_PREFIX + "lightly.width"] == r[C.OBJECT_CROP_BOX][2]
        assert r[C.METADATA_PREFIX + "lightly.sharpness"] >= 0 and len(r[C.EMBEDDING]) == 1280

    # A crop's embedding is the image encoder's embedding of that crop (resized like an image).
    from lightly_airflow.embedding.runner import _cached_encoder, resolve_device

    encoder = _cached_encoder("efficientnet-lite0", None, None, 64, resolve_device("cpu"), None)
    r = next(x for x in rows if x[C.OBJECT_TASK] == TASK)
    x, y, w, h = r[C.OBJECT_CROP_BOX]
    with Image.open(source / r[C.PARENT_KEY]) as img:
        crop = img.convert("RGB").crop((x, y, x + w, y + h)).resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=3.0)
    import torch

    batch = torch.zeros((8, 3, 64, 64), dtype=torch.uint8)
    batch[0] = torch.from_numpy(np.array(crop)).permute(2, 0, 1)
    with torch.inference_mode():
        expected = encoder(batch)[0].float().numpy()
    np.testing.assert_allclose(np.asarray(r[C.EMBEDDING]), expected, rtol=1e-4, atol=1e-5)


def test_no_spec_no_objects(tmp_path: Path) -> None:
    from lightly_airflow.embedding.runner import embed_shard

    source, pool = tmp_path / "src", tmp_path / "pool"
    add_images(source, 0, 2)
    manifest = _manifest(source, pool)
    counts = embed_shard(manifest, input_size=64, device="cpu", batch_size=8, num_workers=0)
    assert "objects" not in counts
    assert read_parquet(staging.sibling_uri(manifest, staging.OBJECTS), missing_ok=True) is None


def test_crops_run_on_the_image_pass_model_threads_and_get_thumbnails(tmp_path: Path) -> None:
    """The object pass gives torch the threads the image pass gives it (cores minus the decoding workers: an
    oversubscribed forward spun 10x slower on 2 cores), restores the count after, and writes a UI thumbnail per
    crop (the crop at full resolution) under the datapool's ``_thumbnails``."""
    import torch

    from lightly_airflow.datapool import sample_id
    from lightly_airflow.embedding.runner import _model_threads
    from lightly_airflow.objects.shard import embed_objects_shard
    from lightly_airflow.thumbnails import read_thumbnail

    source, pool = tmp_path / "src", tmp_path / "pool"
    preds = add_images(source, 0, 8, seed=4)
    manifest = _manifest(source, pool)
    write_spec(ObjectsSpec(tasks=(TASK,), padding=0.0), staging.run_dir(f"file://{pool}", "run-1"))

    class Recording:
        model_id, dim, input_size = "mean-colour", 3, 16

        def __init__(self) -> None:
            self.threads: list[int] = []

        def __call__(self, images: torch.Tensor) -> torch.Tensor:
            self.threads.append(torch.get_num_threads())
            return images.float().mean(dim=(2, 3))

    cpu = torch.device("cpu")
    with _model_threads(cpu) as expected:
        pass
    before = torch.get_num_threads()
    encoder = Recording()
    counts = embed_objects_shard(manifest, encoder=encoder, device=cpu, batch_size=4, num_workers=2)
    assert counts is not None and counts["objects"] == sum(len(p) for p in preds.values())
    assert encoder.threads and set(encoder.threads) == {expected}
    assert torch.get_num_threads() == before
    # Embedded as decoded, in order: each row's vector is its own crop's mean colour.
    objects = read_parquet(staging.sibling_uri(manifest, staging.OBJECTS))
    for r in objects.to_pylist():
        x, y, w, h = r[C.OBJECT_CROP_BOX]
        with Image.open(source / r[C.PARENT_KEY]) as img:
            crop = img.convert("RGB").crop((x, y, x + w, y + h)).resize((16, 16), Image.Resampling.BILINEAR,
                                                                        reducing_gap=3.0)
        np.testing.assert_allclose(r[C.EMBEDDING], np.asarray(crop, np.float32).mean(axis=(0, 1)), rtol=1e-5)
        thumb = read_thumbnail(f"file://{pool}", sample_id(r[C.KEY], r[C.ETAG]))
        assert thumb is not None and Image.open(io.BytesIO(thumb)).size == (w, h)
    assert counts["thumbnails"] == objects.num_rows and counts["thumbnails_failed"] == 0


def test_images_with_objects_are_decoded_once_with_the_same_embedding(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG with objects is decoded once: its own model input comes from the object pass's full decode, and its
    embedding equals the image pass's. A JPEG keeps the image pass's reduced (draft) decode, so it is decoded
    twice (cheaper than a full decode and resize, docs/objects.md); an image without objects once."""
    import lightly_airflow.embedding.images as images
    from lightly_airflow.embedding.runner import embed_shard

    source, plain, pool = tmp_path / "src", tmp_path / "plain", tmp_path / "pool"
    preds = add_images(source, 0, 8, seed=6)
    for key in ("img_0001.png", "img_0002.png"):  # two JPEGs among the PNGs
        with Image.open(source / key) as img:
            img.convert("RGB").save(source / key.replace(".png", ".jpg"), quality=95)
        (source / key).unlink()
        pred_file = source / ".lightly" / "predictions" / TASK / key.replace(".png", ".json")
        pred_file.write_text(pred_file.read_text().replace(key, key.replace(".png", ".jpg")))
        preds[key.replace(".png", ".jpg")] = preds.pop(key)
    with_objects = {k for k, p in preds.items() if p}
    assert {"img_0001.jpg", "img_0002.jpg"} & with_objects and any(not p for p in preds.values())
    reference = embed_shard(_manifest(source, plain), input_size=32, device="cpu", batch_size=4, num_workers=0)
    manifest = _manifest(source, pool)
    write_spec(ObjectsSpec(tasks=(TASK,), padding=0.1), staging.run_dir(f"file://{pool}", "run-1"))

    decodes: dict[str, int] = {}
    real = images._open_rgb

    def counting(data: bytes, draft: int | None, fit: bool, key: str | None = None
                 ) -> tuple[Image.Image, tuple[int, int]]:
        kind = "jpeg" if data[:3] == b"\xff\xd8\xff" else "png"
        decodes[kind] = decodes.get(kind, 0) + 1
        return real(data, draft, fit, key)

    monkeypatch.setattr(images, "_open_rgb", counting)
    counts = embed_shard(manifest, input_size=32, device="cpu", batch_size=4, num_workers=0)
    png_with = sum(1 for k in with_objects if k.endswith(".png"))
    jpg_with = sum(1 for k in with_objects if k.endswith(".jpg"))
    assert counts["objects"]["images_embedded"] == png_with > 0
    assert decodes["png"] == 6  # each PNG once, with or without objects
    assert decodes["jpeg"] == 2 + jpg_with  # the image pass's draft decode, plus a full one per JPEG with objects
    assert counts["embedded"] == 8
    got = read_parquet(staging.sibling_uri(manifest, staging.EMBEDDINGS)).sort_by(C.KEY)
    want = read_parquet(reference["output_uri"]).sort_by(C.KEY)
    assert got.column(C.STATUS).to_pylist() == ["ok"] * 8
    np.testing.assert_allclose(np.asarray(got.column(C.EMBEDDING).to_pylist()),
                               np.asarray(want.column(C.EMBEDDING).to_pylist()), rtol=1e-5, atol=1e-6)


class _MeanColour:
    """A stand-in encoder: a crop's vector is its mean colour."""

    model_id, dim, input_size = "mean-colour", 3, 16

    def __call__(self, images):  # noqa: ANN001, ANN204
        return images.float().mean(dim=(2, 3))


def _detections(tmp_path: Path, seed: int, boxes: dict[str, list[list[float]]]) -> tuple[Path, Path]:
    """Source ``a.png``, ``b.png`` (64 x 48 noise) with object-detection task ``det`` whose predictions are
    ``boxes`` per key; returns (source, pool) folders."""
    source, pool = tmp_path / "src", tmp_path / "pool"
    source.mkdir()
    rng = np.random.default_rng(seed)
    for key in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / key)
    folder = source / ".lightly" / "predictions"
    (folder / "det").mkdir(parents=True)
    (folder / "tasks.json").write_text(json.dumps(["det"]))
    (folder / "det" / "schema.json").write_text(json.dumps(
        {"task_type": "object-detection", "categories": [{"id": 0, "name": "thing"}]}))
    for key, bs in boxes.items():
        (folder / "det" / f"{key.removesuffix('.png')}.json").write_text(json.dumps({"file_name": key, "predictions": [
            {"category_id": 0, "bbox": b, "score": 0.9} for b in bs]}))
    return source, pool


def test_boxes_outside_the_image_give_no_object_and_are_counted(tmp_path: Path) -> None:
    """Boxes predicted at another resolution (or for another image) can lie wholly outside the image: they used
    to become 1-pixel strips of the image border, embedded and selected on like objects. Now they give no
    object and are counted and logged, as are zero-area boxes inside it (they too used to become 1-pixel crops);
    a box partly inside is clipped as before."""
    import torch

    from lightly_airflow.objects.shard import embed_objects_shard

    boxes = [[4, 4, 20, 20], [-10, 30, 20, 30], [100, 5, 20, 20], [64, 0, 5, 5], [5, -30, 10, 30], [-50, -50, 10, 10],
             [30, 30, 0, 0], [30, 30, 0, 5]]  # ... and zero-area boxes inside it: a 1-pixel crop each
    source, pool = _detections(tmp_path, 5, {"a.png": boxes, "b.png": [[1000, 1000, 50, 50]]})
    manifest = _manifest(source, pool)
    write_spec(ObjectsSpec(tasks=("det",), padding=0.0), staging.run_dir(f"file://{pool}", "run-1"))
    counts = embed_objects_shard(manifest, encoder=_MeanColour(), device=torch.device("cpu"), batch_size=4,
                                 num_workers=2)
    assert counts is not None
    assert (counts["objects"], counts["boxes_outside_image"], counts["images_failed"]) == (2, 7, 0)
    rows = read_parquet(staging.sibling_uri(manifest, staging.OBJECTS)).to_pylist()
    assert [(r[C.PARENT_KEY], r[C.OBJECT_INDEX], r[C.OBJECT_CROP_BOX]) for r in rows] == [
        ("a.png", 0, [4, 4, 20, 20]), ("a.png", 1, [0, 30, 10, 18])]
    # ... and the run summary (XCom, report) says how many, summed over the shards.
    from lightly_airflow.objects.run import load_run_objects, summary

    spec = ObjectsSpec(tasks=("det",))
    assert summary(load_run_objects([manifest, manifest]), None, spec)["boxes_outside_image"] == 14


def test_16_bit_images_keep_their_contrast(tmp_path: Path) -> None:
    """A 16-bit grayscale PNG/TIFF (values up to 65535) is scaled to 8 bits for its crops and its own model
    input, as the metadata pass scales it; Pillow's convert used to clip it to a white image."""
    from lightly_airflow.embedding.images import decode_image
    from lightly_airflow.objects.boxes import ObjectBox
    from lightly_airflow.objects.shard import crop_image

    ramp = np.linspace(0, 65535, 48 * 64).reshape(48, 64).astype(np.uint16)
    eight = Image.fromarray(np.clip(ramp.astype(np.float64) * 255.0 / 65535.0, 0, 255).astype(np.uint8)).convert("RGB")
    for fmt in ("PNG", "TIFF"):
        buf = io.BytesIO()
        Image.fromarray(ramp).save(buf, fmt)
        data = buf.getvalue()
        assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
        (crop,) = crop_image(data, [ObjectBox("t", 0, (8.0, 8.0, 32.0, 24.0))], (), 0.0, 16, 0)
        want = np.asarray(eight.crop((8, 8, 40, 32)).resize((16, 16), Image.Resampling.BILINEAR, reducing_gap=3.0))
        np.testing.assert_array_equal(crop.pixels, want)
        assert crop.pixels.std() > 10 and crop.metrics["luminance"] < 90
        full = np.asarray(eight.resize((16, 16), Image.Resampling.BILINEAR, reducing_gap=3.0))
        np.testing.assert_array_equal(decode_image(data, 16), full)


def test_images_with_many_objects_are_decoded_ahead_within_a_memory_budget(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The decode window ahead of the model is cut short by the bytes of resized crops it holds (an image with
    thousands of objects is hundreds of MB of crops; 8 of them used to be decoded ahead), never below one
    image; the crops come out in row order, all of them."""
    import time

    import lightly_airflow.objects.shard as shard
    from lightly_airflow.objects.boxes import ObjectBox

    source = tmp_path / "src"
    source.mkdir()
    rng = np.random.default_rng(2)
    keys = [f"im{i}.png" for i in range(12)]
    for key in keys:
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / key)
    boxes = {row: [ObjectBox("det", i, (float(i), float(i), 10.0, 10.0)) for i in range(10)] for row in range(12)}
    monkeypatch.setattr(shard, "MAX_CROP_BYTES_AHEAD", 25 * 16 * 16 * 3, raising=False)  # two images' crops of 16 px
    decoded: list[int] = []
    taken: list[int] = []
    most_ahead = 0

    def on_crop(row: int, box: ObjectBox, part: Image.Image) -> None:
        if box.index == 0:
            decoded.append(row)

    for row, crops, problem, _, _ in shard.iter_crops(f"file://{source}", keys, list(range(12)), boxes,
                                                      ObjectsSpec(tasks=("det",)), 16, None, 4, on_crop):
        taken.append(row)
        most_ahead = max(most_ahead, len(decoded) - len(taken))
        assert problem is None and [c.box.index for c in crops] == list(range(10))
        time.sleep(0.03)  # a slow model: the decoders run ahead as far as the window lets them
    assert taken == list(range(12)) and sorted(decoded) == taken
    assert most_ahead <= 2  # the window (16 images for 4 workers) held at most 2 images of 10 objects


def test_video_frames_are_not_fetched_as_files_and_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightly's frame predictions (``clip-000-mp4.json`` for frame 0) name frames, which are not files of the
    datasource. The object pass used to fetch every such key (with auto_tasks: every frame of every video, one
    404 on an object store and a warning each) and count it as an unreadable image; frames are now cropped from
    their video's decode (``tests/video/test_objects.py``), never fetched as files, and frames that do not decode
    (here: the video is gone) give no objects and are counted."""
    import pyarrow.parquet as pq
    import torch

    from lightly_airflow.objects.run import load_run_objects, summary
    from lightly_airflow.objects.shard import embed_objects_shard

    source, pool = tmp_path / "src", tmp_path / "pool"
    add_images(source, 0, 2, seed=1)
    manifest = _manifest(source, pool)
    path = manifest.removeprefix("file://")
    table = pq.read_table(path)
    frames = ["clip-0-mp4.png", "clip-1-mp4.png"]  # frame rows, as video listing expands clip.mp4 into them
    n = table.num_rows
    extra = table.slice(0, 2)
    for name, values in ((C.KEY, frames), (C.ETAG, ["e0", "e1"])):
        i = extra.schema.get_field_index(name)
        extra = extra.set_column(i, extra.schema.field(i), pa.array(values, extra.schema.field(i).type))
    table = pa.concat_tables([table, extra])
    table = (table.append_column(C.VIDEO, pa.array([None] * n + ["clip.mp4"] * 2, pa.string()))
             .append_column(C.FRAME_INDEX, pa.array([None] * n + [0, 1], pa.int64()))
             .append_column(C.FRAME_PTS, pa.array([None] * n + [0, 512], pa.int64())))
    pq.write_table(table, path)
    for key in frames:
        (source / ".lightly" / "predictions" / TASK / key.replace(".png", ".json")).write_text(json.dumps(
            {"file_name": key, "predictions": [{"category_id": 0, "bbox": [0, 10, 100, 30], "score": 0.8}]}))
    spec = ObjectsSpec(tasks=(TASK,), auto_tasks=({"type": "TILING", "name": "tiles", "num_rows": 1, "num_cols": 2},))
    write_spec(spec, staging.run_dir(f"file://{pool}", "run-1"))
    import lightly_airflow.objects.shard as shard

    fetched: list[str] = []
    real = shard.filesystem

    def recording(uri, credentials=None):  # noqa: ANN001, ANN202
        fs, root = real(uri, credentials)
        cat = fs.cat_file

        class Spy:
            def cat_file(self, p):  # noqa: ANN001, ANN202
                fetched.append(p.rsplit("/", 1)[-1])
                return cat(p)

        return Spy(), root

    monkeypatch.setattr(shard, "filesystem", recording)
    counts = embed_objects_shard(manifest, encoder=_MeanColour(), device=torch.device("cpu"), batch_size=4,
                                 num_workers=2)
    assert counts is not None and counts["images_failed"] == 0 and counts["video_frames_failed"] == 2
    assert sorted(fetched) == ["img_0000.png", "img_0001.png"]
    assert summary(load_run_objects([manifest]), None, spec)["video_frames_failed"] == 2


def test_boxes_relative_to_the_image_size_are_flagged(tmp_path: Path) -> None:
    """YOLO-style boxes relative to the image size, given where Lightly's format has pixels, are all within
    [0, 1]: their crops are one pixel. They used to pass silently; the images are now counted (embed counts,
    run summary) and logged. Pixel boxes, even a 1x1 one at the origin, are not flagged."""
    import torch

    from lightly_airflow.objects.run import load_run_objects, summary
    from lightly_airflow.objects.shard import embed_objects_shard

    source, pool = _detections(tmp_path, 7, {"a.png": [[0.12, 0.3, 0.25, 0.4], [0.5, 0.5, 0.1, 0.2]],
                                            "b.png": [[0, 0, 1, 1], [5, 5, 20, 10]]})
    manifest = _manifest(source, pool)
    spec = ObjectsSpec(tasks=("det",))
    write_spec(spec, staging.run_dir(f"file://{pool}", "run-1"))
    counts = embed_objects_shard(manifest, encoder=_MeanColour(), device=torch.device("cpu"), batch_size=4,
                                 num_workers=0)
    assert counts is not None and counts["objects"] == 4
    assert counts["images_with_normalized_looking_boxes"] == 1
    assert summary(load_run_objects([manifest]), None, spec)["images_with_normalized_looking_boxes"] == 1


def test_a_crop_gets_the_uniform_row_ratio_of_its_own_pixels() -> None:
    """Crops share the image metrics: a tile over colour stripes scores ~1 on ``lightly.uniformRowRatio``, a
    tile of the natural photo above it 0 (the image itself: 0.5)."""
    from skimage import data as skdata

    from lightly_airflow.metadata.metrics import CROP_METRICS
    from lightly_airflow.objects.shard import crop_image

    photo = np.ascontiguousarray(skdata.astronaut()[:256, :256])
    for i, y in enumerate(range(128, 256, 8)):
        photo[y : y + 8] = [(0, 140, 0), (200, 40, 200)][i % 2]
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "PNG")
    tiles = {"type": "TILING", "name": "tiles", "num_rows": 2, "num_cols": 1, "overlap": 0.0}
    crops = crop_image(buf.getvalue(), [], (tiles,), 0.0, 32, 0)
    assert "uniformRowRatio" in CROP_METRICS
    assert [c.metrics["uniformRowRatio"] for c in crops] == [0.0, 1.0]


def test_crop_metrics_equal_the_image_metrics_of_the_crop() -> None:
    """The object pass computes a crop's metrics with the metadata pass's compiled sums and luma
    (:func:`~lightly_airflow.metadata.metrics.rgb_metrics`): they equal ``compute_metrics`` of the crop and its Pillow grey exactly (the stored
    ``lightly.*`` values do not change), for a photo's crops, flat and striped ones, and crops of 1 and 2 pixels."""
    from skimage import data as skdata

    from lightly_airflow.metadata.metrics import CROP_METRICS, compute_metrics, rgb_metrics

    photo = skdata.astronaut()
    flat = np.full((20, 30, 3), (12, 200, 77), np.uint8)
    striped = np.repeat(np.array([[(0, 140, 0)], [(200, 40, 200)]], np.uint8), 15, axis=1).repeat(5, axis=0)
    regions = [photo[y : y + h, x : x + w] for y, x, h, w in
               ((0, 0, 40, 30), (100, 200, 3, 251), (300, 17, 97, 5), (511, 511, 1, 1), (7, 9, 2, 1))]
    for region in (*regions, flat, striped):
        region = np.ascontiguousarray(region)
        gray = np.asarray(Image.fromarray(region).convert("L"), dtype=np.uint8)
        want = compute_metrics(region, gray, 0)
        got = rgb_metrics(region, 0)
        assert {m: got[m] for m in CROP_METRICS} == {m: want[m] for m in CROP_METRICS}, region.shape


def test_objects_of_a_jpeg_above_the_pixel_limit_are_cropped_from_its_reduced_decode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A JPEG above ``PIL.Image.MAX_IMAGE_PIXELS`` (a 300 Mpx aerial photo with detections) is decoded reduced by the
    image pass, but the object pass, the crop export, the report's figure and the UI's crop decoded it whole and
    failed ("decompression bomb"): no object of it was embedded. Its boxes stay in its full-size pixels (the
    stored crop boxes too); the crops are cut from the reduced decode (here 1/4 scale). The limit is lowered to
    10,000 pixels so a 400x300 photo stands in for the big one."""
    from lightly_airflow.objects.boxes import ObjectBox
    from lightly_airflow.objects.crops import crop_relpath, write_selected_crops
    from lightly_airflow.objects.report import objects_png
    from lightly_airflow.objects.shard import crop_image
    from lightly_airflow.plugins.media import read_crop

    array = np.zeros((300, 400, 3), np.uint8)
    array[:150, :200] = (255, 0, 0)  # red top left, blue bottom right, black elsewhere
    array[150:, 200:] = (0, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=95)
    (tmp_path / "aerial.jpg").write_bytes(buf.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    boxes = [ObjectBox("cars", 0, (20.0, 20.0, 160.0, 120.0)), ObjectBox("cars", 1, (220.0, 168.0, 160.0, 120.0)),
             ObjectBox("cars", 2, (390.0, 290.0, 50.0, 50.0))]  # partly outside: clipped as usual
    red, blue, corner = crop_image(buf.getvalue(), boxes, (), 0.0, 16, 0)
    assert (red.crop_box, blue.crop_box, corner.crop_box) == ((20, 20, 160, 120), (220, 168, 160, 120), (390, 290, 10, 10))
    assert red.pixels[..., 0].min() > 200 and red.pixels[..., 2].max() < 60
    assert blue.pixels[..., 2].min() > 200 and blue.pixels[..., 0].max() < 60

    objects = pa.table({C.PARENT_KEY: ["aerial.jpg"] * 2, C.OBJECT_TASK: ["cars"] * 2,
                        C.OBJECT_INDEX: pa.array([0, 1], pa.int64()),
                        C.OBJECT_CROP_BOX: pa.array([list(red.crop_box), list(blue.crop_box)], pa.list_(pa.int64())),
                        C.OBJECT_SELECTED: [True, True]})
    uri = f"file://{tmp_path}"
    counts = write_selected_crops(objects, ObjectsSpec(tasks=("cars",)), datasource_uri=uri, lightly_uri=uri)
    assert counts["written"] == 2 and counts["failed"] == 0  # was 0 written, 2 failed
    with Image.open(tmp_path / ".lightly" / crop_relpath("aerial.jpg", "cars", 1)) as crop:
        assert crop.size == (40, 30)  # the reduced decode's pixels (1/4 of 160x120)
        assert np.asarray(crop.convert("RGB"))[..., 2].min() > 200
    assert objects_png(objects, ["aerial.jpg"], uri) is not None  # was None: the picture could not be read
    served = Image.open(io.BytesIO(read_crop(str(tmp_path), "aerial.jpg", list(red.crop_box), None)))
    assert served.size == (40, 30) and np.asarray(served.convert("RGB"))[..., 0].min() > 200


def test_an_image_with_objects_under_another_format_s_extension_is_corrupt_not_embedded(tmp_path: Path) -> None:
    """A ``.jpg`` holding a PNG is corrupt in every pass ("wrong type for its extension", ``pixels.wrong_extension``):
    with objects, the object pass handed the image pass its model input from its own decode, which spared the file
    the image pass' check, and the image was embedded as ok and its objects cropped."""
    from lightly_airflow.embedding.runner import embed_shard

    source, pool = tmp_path / "src", tmp_path / "pool"
    preds = add_images(source, 0, 4, seed=6)
    key = next(k for k, p in preds.items() if p)  # (a PNG with objects)
    (source / key).rename(source / key.replace(".png", ".jpg"))
    pred_file = source / ".lightly" / "predictions" / TASK / key.replace(".png", ".json")
    pred_file.write_text(pred_file.read_text().replace(key, key.replace(".png", ".jpg")))
    manifest = _manifest(source, pool)
    write_spec(ObjectsSpec(tasks=(TASK,), padding=0.1), staging.run_dir(f"file://{pool}", "run-1"))
    counts = embed_shard(manifest, input_size=32, device="cpu", batch_size=4, num_workers=0)
    got = read_parquet(staging.sibling_uri(manifest, staging.EMBEDDINGS))
    rows = dict(zip(got.column(C.KEY).to_pylist(), zip(got.column(C.STATUS).to_pylist(),
                                                        got.column(C.STATUS_REASON).to_pylist(), strict=True),
                    strict=True))
    status, reason = rows[key.replace(".png", ".jpg")]
    assert status == "corrupt" and "the file is PNG but its extension is .jpg; rename it to .png" in reason, reason
    assert counts["embedded"] == 3 and counts["objects"]["images_failed"] == 1, counts
    objects_file = read_parquet(staging.sibling_uri(manifest, staging.OBJECTS))  # (its counts: summed into the summary)
    assert staging.summed_counts([objects_file], staging.OBJECTS).counts["images_failed"] == 1
