"""Build a local demo datasource of real images with a Lightly-style ``.lightly/`` folder.

Images: scikit-learn's handwritten digits (8×8 scans, written out at 64×64 like small camera crops) and
scikit-image's bundled photographs (with a few crops of each; the whole view of the :data:`PHONE_PHOTOS` as an
iPhone stores a photo: HEIC in 64-px tiles, turned by its ``irot``, EXIF orientation 6; with ``live_photos`` also its
Live Photo motion clip, a short ``.MOV`` of the same name, which is not a sample). ``.lightly/`` holds classification
predictions of a logistic-regression model trained on digits that are *not* in the datasource, and a custom
categorical metadata field ``source`` (``digits`` or ``photos``). Batches are added one at a time, so
incremental runs have something new to process. Needs the ``demo`` extra (scikit-learn, scikit-image).
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TASK = "digits"
PHOTOS = (
    "astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text",
)
#: Photos whose whole view is delivered as an iPhone's HEIC instead of a JPEG (one in each batch).
PHONE_PHOTOS = ("chelsea", "coffee", "moon")
#: Digits held out of the datasource to train the prediction model.
N_TRAIN = 400


@dataclass(frozen=True)
class Batch:
    """One delivery of files: digits ``[start, stop)`` of the non-training digits and some photos."""

    name: str
    digits: tuple[int, int]
    photos: tuple[str, ...]


BATCHES = (
    Batch("batch-1", (0, 500), PHOTOS[:9]),
    Batch("batch-2", (500, 900), PHOTOS[9:]),
)

#: The demo's own selection (passed explicitly by ``scripts/demo.py``; the DAG's default works on any
#: datasource): CORAL (DIVERSITY + WEIGHTS on the margin uncertainty of this datasource's ``digits``
#: predictions, strength 10; for an active-learning loop use ``lightly-airflow recipe active-learning``
#: instead, docs/selection.md), keep sharp images, and balance the custom
#: ``source`` field. Photos have no digit prediction: the WEIGHTS rule for a missing score applies to them
#: (docs/selection.md), and the run summary counts them.
SELECTION_CONFIG = {
    "n_samples": 40,
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {
            "input": {"type": "SCORES", "task": TASK, "score": "uncertainty_margin"},
            "strategy": {"type": "WEIGHTS", "strength": 10.0},
        },
        {
            "input": {"type": "METADATA", "key": "lightly.sharpness"},
            "strategy": {"type": "THRESHOLD", "threshold": 1.0, "operation": "BIGGER"},
        },
        {
            "input": {"type": "METADATA", "key": "source"},
            "strategy": {"type": "BALANCE", "target": {"digits": 0.8, "photos": 0.2}},
        },
    ],
}


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images, data.target


def _model_probabilities() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities of a small model for every non-training digit (and the images and labels)."""
    from sklearn.linear_model import LogisticRegression

    images, labels = _digits()
    flat = images.reshape(len(images), -1) / 16.0
    model = LogisticRegression(max_iter=2000, C=0.05)
    model.fit(flat[:N_TRAIN], labels[:N_TRAIN])
    return model.predict_proba(flat[N_TRAIN:]), images[N_TRAIN:], labels[N_TRAIN:]


def _digit_png(image: np.ndarray, rng: np.random.Generator) -> bytes:
    gray = (image / 16.0 * 255).astype(np.uint8)
    big = Image.fromarray(gray).resize((64, 64), Image.Resampling.BICUBIC)
    arr = np.asarray(big, dtype=np.float32)
    tint = rng.uniform(0.7, 1.0, size=3)  # a paper/ink colour per scan
    rgb = np.clip(arr[..., None] * tint + rng.normal(0, 4, size=arr.shape + (3,)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _phone_heic(img: Image.Image) -> bytes:
    """``img`` as an iPhone stores it: the sensor's picture (turned clockwise) in tiles, an ``irot`` that turns it
    back, the EXIF orientation beside it."""
    from lightly_airflow.heif import encode_heic

    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Apple"
    sensor = np.ascontiguousarray(np.rot90(np.asarray(img), -1))
    return encode_heic(sensor[: sensor.shape[0] // 2 * 2, : sensor.shape[1] // 2 * 2], rotation=90,
                       exif=exif.tobytes(), tile=64, qp=20)


def live_photo_clip(img: Image.Image, frames: int = 12) -> bytes:
    """A Live Photo's motion clip of the photo ``img``: a short H.264 QuickTime movie (``.MOV``), the camera
    drifting a little across the picture, as an iPhone writes it beside the HEIC (~3 s there, 12 frames here)."""
    import tempfile

    from lightly_airflow.video.synthetic import scene_frames, write_video

    rgb = np.asarray(img.convert("RGB"))
    size = (img.width // 2 * 2, img.height // 2 * 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mov"
        write_video(str(path), scene_frames(rgb, frames, size, pan=0.02), rate=15, size=size)
        return path.read_bytes()


def _photo_files(name: str, live_photos: bool = False) -> list[tuple[str, bytes]]:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    img = Image.fromarray(arr).convert("RGB")
    w, h = img.size
    views = [("full", img), ("crop-a", img.crop((0, 0, w // 2, h // 2))), ("crop-b", img.crop((w // 2, h // 2, w, h)))]
    out = []
    for label, view in views:
        small = view.resize((max(64, view.width // 2), max(64, view.height // 2)))
        if label == "full" and name in PHONE_PHOTOS:
            out.append((f"{name}-{label}.HEIC", _phone_heic(small)))
            if live_photos:
                out.append((f"{name}-{label}.MOV", live_photo_clip(small)))
            continue
        buf = io.BytesIO()
        small.save(buf, format="JPEG", quality=90)
        out.append((f"{name}-{label}.jpg", buf.getvalue()))
    return out


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _lightly_schemas(root: Path) -> None:
    lightly = root / ".lightly"
    _write_json(lightly / "predictions" / "tasks.json", [TASK])
    _write_json(
        lightly / "predictions" / TASK / "schema.json",
        {"task_type": "classification", "categories": [{"id": i, "name": str(i)} for i in range(10)]},
    )
    _write_json(
        lightly / "metadata" / "schema.json",
        [{"name": "source", "path": "source", "defaultValue": "unknown", "valueDataType": "CATEGORICAL_STRING"}],
    )


def add_batch(root: str | Path, batch: Batch | int, *, live_photos: bool = False) -> list[str]:
    """Write one batch of images (and their ``.lightly/`` files) under ``root``; return the new keys.

    :param root: the datasource folder (created if missing).
    :param batch: a :class:`Batch` or its index in :data:`BATCHES`.
    :param live_photos: each HEIC photo gets its Live Photo clip beside it (a ``.MOV`` of the same name: not a
        sample, so not among the keys returned).
    """
    root = Path(root)
    batch = BATCHES[batch] if isinstance(batch, int) else batch
    _lightly_schemas(root)
    probs, images, _labels = _model_probabilities()
    rng = np.random.default_rng(zlib.crc32(batch.name.encode()))
    keys = []
    lightly = root / ".lightly"
    for i in range(*batch.digits):
        key = f"{batch.name}/digits/scan-{i:04d}.png"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_digit_png(images[i], rng))
        stem = key.rsplit(".", 1)[0]
        p = probs[i].astype(float)
        _write_json(
            lightly / "predictions" / TASK / f"{stem}.json",
            {"file_name": key, "predictions": [{"category_id": int(np.argmax(p)), "probabilities": p.tolist()}]},
        )
        _write_json(lightly / "metadata" / f"{stem}.json", {"file_name": key, "type": "image", "metadata": {"source": "digits"}})
        keys.append(key)
    for name in batch.photos:
        for file_name, data in _photo_files(name, live_photos):
            key = f"{batch.name}/photos/{file_name}"
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_bytes(data)
            if file_name.endswith(".MOV"):
                continue
            stem = key.rsplit(".", 1)[0]
            _write_json(lightly / "metadata" / f"{stem}.json", {"file_name": key, "type": "image", "metadata": {"source": "photos"}})
            keys.append(key)
    return keys


def build(root: str | Path, batches: int = 1) -> list[str]:
    """Write the first ``batches`` batches under ``root``; return all keys written."""
    keys: list[str] = []
    for i in range(batches):
        keys += add_batch(root, i)
    return keys
