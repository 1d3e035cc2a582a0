"""A datasource of real photographs with pasted shapes and object-detection predictions of those shapes.

Used by the object-level tests and ``benchmarks/objects.py``: scikit-image's bundled photographs (a crop of
each, ``WIDTH`` x ``HEIGHT``) with 0-4 shapes (square, disk, triangle in four colours) pasted at random places,
and ``.lightly/predictions/<task>/`` files whose boxes are exactly the pasted shapes (category = the shape's
kind). Needs scikit-image (the ``demo`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TASK = "shapes"
WIDTH, HEIGHT = 160, 120
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "colorwheel", "coins")
SHAPES = ("square", "disk", "triangle")
COLOURS = {"red": (220, 30, 30), "green": (30, 190, 60), "blue": (40, 60, 220), "yellow": (240, 220, 20)}
CATEGORIES = [f"{c}-{s}" for s in SHAPES for c in COLOURS]


def _photo(name: str, rng: np.random.Generator) -> Image.Image:
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3].astype(np.uint8)
    h, w = img.shape[:2]
    scale = max(WIDTH / w, HEIGHT / h) * float(rng.uniform(1.0, 2.0))
    pil = Image.fromarray(img).resize((max(WIDTH, int(w * scale)), max(HEIGHT, int(h * scale))))
    x = int(rng.integers(0, pil.width - WIDTH + 1))
    y = int(rng.integers(0, pil.height - HEIGHT + 1))
    return pil.crop((x, y, x + WIDTH, y + HEIGHT))


def _paste(draw: ImageDraw.ImageDraw, shape: str, colour: tuple[int, int, int], x: int, y: int, s: int) -> None:
    if shape == "square":
        draw.rectangle((x, y, x + s - 1, y + s - 1), fill=colour)
    elif shape == "disk":
        draw.ellipse((x, y, x + s - 1, y + s - 1), fill=colour)
    else:
        draw.polygon([(x + s // 2, y), (x, y + s - 1), (x + s - 1, y + s - 1)], fill=colour)


def write_task(lightly_root: Path) -> None:
    """``tasks.json`` and the task's ``schema.json``."""
    folder = lightly_root / ".lightly" / "predictions"
    (folder / TASK).mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text(json.dumps([TASK]))
    schema = {"task_type": "object-detection", "categories": [{"id": i, "name": n} for i, n in enumerate(CATEGORIES)]}
    (folder / TASK / "schema.json").write_text(json.dumps(schema))


def add_images(root: Path, start: int, count: int, *, seed: int = 0, prefix: str = "img",
               kinds: tuple[str, ...] | None = None, shapes: tuple[int, int] = (0, 4)
               ) -> dict[str, list[dict[str, object]]]:
    """Write images ``<prefix>_<start..start+count-1>.png`` into ``root`` and their predictions into
    ``root/.lightly``; returns ``key -> predictions``.

    :param kinds: the categories pasted (default: all ``CATEGORIES``).
    :param shapes: the fewest and most shapes an image gets (``benchmarks/objects_scale.py``: 20 to 50).
    """
    root.mkdir(parents=True, exist_ok=True)
    write_task(root)
    allowed = list(kinds or CATEGORIES)
    out = {}
    for i in range(start, start + count):
        rng = np.random.default_rng(seed * 100_003 + i)
        img = _photo(PHOTOS[i % len(PHOTOS)], rng)
        draw = ImageDraw.Draw(img)
        preds = []
        for _ in range(int(rng.integers(shapes[0], shapes[1] + 1))):
            category = allowed[int(rng.integers(0, len(allowed)))]
            colour, shape = category.split("-")
            s = int(rng.integers(16, 40))
            x, y = int(rng.integers(0, WIDTH - s)), int(rng.integers(0, HEIGHT - s))
            _paste(draw, shape, COLOURS[colour], x, y, s)
            preds.append({"category_id": CATEGORIES.index(category), "bbox": [x, y, s, s],
                          "score": round(float(rng.uniform(0.5, 1.0)), 4)})
        key = f"{prefix}_{i:04d}.png"
        img.save(root / key)
        (root / ".lightly" / "predictions" / TASK / f"{prefix}_{i:04d}.json").write_text(
            json.dumps({"file_name": key, "predictions": preds}))
        out[key] = preds
    return out


def add_video(root: Path, name: str, n_frames: int, *, seed: int = 0, scene: str = "coffee",
              ext: str = "mp4") -> dict[str, list[dict[str, object]]]:
    """Write a video ``<name>.<ext>`` into ``root`` whose frames show shapes moving across a panning photo (0-3 at
    a time, each for a stretch of frames), and Lightly's per-frame predictions of them
    (``.lightly/predictions/<task>/<name>-<frame>-<ext>.json``); returns ``frame key -> predictions``."""
    from lightly_airflow.video.naming import frame_name
    from lightly_airflow.video.synthetic import scene as scene_photo
    from lightly_airflow.video.synthetic import scene_frames, write_video

    root.mkdir(parents=True, exist_ok=True)
    write_task(root)
    rng = np.random.default_rng(seed)
    tracks = []  # (category, size, first frame, last frame, start xy, velocity xy)
    for _ in range(max(1, n_frames // 8)):
        first = int(rng.integers(0, n_frames))
        s = int(rng.integers(16, 36))
        tracks.append((CATEGORIES[int(rng.integers(0, len(CATEGORIES)))], s, first,
                       min(n_frames - 1, first + int(rng.integers(4, 16))),
                       (float(rng.uniform(0, WIDTH - s)), float(rng.uniform(0, HEIGHT - s))),
                       (float(rng.uniform(-3, 3)), float(rng.uniform(-2, 2)))))
    key = f"{name}.{ext}"
    out: dict[str, list[dict[str, object]]] = {}

    def frames() -> Iterator[np.ndarray]:
        for i, rgb in enumerate(scene_frames(scene_photo(scene), n_frames, (WIDTH, HEIGHT), seed=seed)):
            img = Image.fromarray(rgb)
            draw = ImageDraw.Draw(img)
            preds = []
            for category, s, first, last, (x0, y0), (vx, vy) in tracks:
                if first <= i <= last:
                    x = int(np.clip(x0 + vx * (i - first), 0, WIDTH - s))
                    y = int(np.clip(y0 + vy * (i - first), 0, HEIGHT - s))
                    colour, shape = category.split("-")
                    _paste(draw, shape, COLOURS[colour], x, y, s)
                    preds.append({"category_id": CATEGORIES.index(category), "bbox": [x, y, s, s], "score": 0.9})
            frame_key = frame_name(key, i, n_frames)
            (root / ".lightly" / "predictions" / TASK / (frame_key.rsplit(".", 1)[0] + ".json")).write_text(
                json.dumps({"file_name": frame_key, "predictions": preds}))
            out[frame_key] = preds
            yield np.asarray(img)

    write_video(str(root / key), frames(), size=(WIDTH, HEIGHT))
    return out
