"""Datasets of the active-learning benchmark: all ship inside packages or are rendered here (no downloads).

Each dataset gives the classifier's features ``x`` (what the model learns from), the ``embedding`` the
selection sees (good or poor, chosen on purpose), labels ``y`` and, optionally, the clean labels of the
test split (noisy-label variant). Kinds:

* images: scikit-learn digits (pixels); silhouettes rendered with ``skimage.draw`` (10 shapes at random
  position, size and rotation; pixel embeddings are poor, the project's encoder is better); texture patches
  cut from ``skimage.data`` images (encoder features);
* tabular: wine, breast cancer (standardised features; "raw" = unscaled features L2-normalised, a poor
  embedding dominated by the largest-scale column);
* noisy labels (digits, 25% of the pool's labels replaced by a random class; the test labels are clean) and
  imbalanced classes (digits, class ``k`` kept with probability 0.6**k; balanced test set);
* hard synthetic (``make_classification``: 10 classes in 40 dimensions (12 informative), 15% label noise, a
  model that stays far from perfect) with a standardised embedding, or an embedding that carries no
  information at all (random vectors, independent of the data: the worst case for typicality/diversity);
* other images: silhouettes rendered at 28 px (a different regime of the same generator: the linear model
  reaches a higher accuracy) with pixel embeddings; faces vs non-faces (``skimage.data.lfw_subset``, 200
  images of 25×25 px, 2 classes) with pixel embeddings.

Encoder embeddings (EfficientNet-Lite0, the project's default model) are cached in the system temp dir.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Dataset:
    """One benchmark dataset (before the per-seed pool/test split)."""

    name: str
    kind: str
    x: np.ndarray  # classifier features, scaled for logistic regression
    embedding: np.ndarray  # what the selection engine sees (normalised by the engine)
    y: np.ndarray  # labels the oracle returns (noisy for the noisy variant)
    y_clean: np.ndarray  # labels the test split is scored with
    budget: int  # labels at the end of the curve
    test_size: float = 0.3
    balanced_test: bool = False  # imbalanced variant: test on a class-balanced subset
    model_key: str = ""  # datasets with the same key share x, y and splits (they differ in the embedding only)

    def __post_init__(self) -> None:
        self.model_key = self.model_key or self.name


# --------------------------------------------------------------------------------------------- encoder
def _cache_dir() -> Path:
    d = Path(tempfile.gettempdir()) / "lightly_airflow_bench_cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def encoder_embeddings(images: np.ndarray, tag: str) -> np.ndarray:
    """EfficientNet-Lite0 embeddings (64 px input) of uint8 images (N, H, W) or (N, H, W, 3); cached."""
    digest = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    path = _cache_dir() / f"{tag}-{digest}.npy"
    if path.exists():
        return np.load(path)
    import torch

    from lightly_airflow.embedding.encoders import get_encoder

    enc = get_encoder(input_size=64)
    t = torch.from_numpy(images)
    t = t[:, None].expand(-1, 3, -1, -1) if t.dim() == 3 else t.permute(0, 3, 1, 2)
    out = []
    with torch.no_grad():
        for s in range(0, len(t), 256):
            b = t[s : s + 256].float()
            b = torch.nn.functional.interpolate(b, size=(64, 64), mode="bilinear", align_corners=False)
            out.append(enc(b.round().clamp(0, 255).to(torch.uint8)).numpy())
    emb = np.concatenate(out).astype(np.float32)
    np.save(path, emb)
    return emb


# ------------------------------------------------------------------------------------------ silhouettes
def _polygon(k: int, r: float, rot: float, cx: float, cy: float, star: bool = False) -> tuple[np.ndarray, np.ndarray]:
    n = 2 * k if star else k
    ang = rot + np.arange(n) * 2 * np.pi / n
    rad = np.where(np.arange(n) % 2 == 1, r * 0.45, r) if star else np.full(n, r)
    return cy + rad * np.sin(ang), cx + rad * np.cos(ang)


def render_silhouettes(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` binary silhouettes (uint8 0/255, (n, size, size)) of 10 shape classes at random pose."""
    from skimage.draw import disk, ellipse, polygon

    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, size, size), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    for i in range(n):
        r = rng.uniform(0.28, 0.42) * size
        cx, cy = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
        rot = rng.uniform(0, 2 * np.pi)
        im = np.zeros((size, size), dtype=bool)
        c = int(y[i])
        shape = (size, size)
        if c == 0:  # disk
            im[disk((cy, cx), r, shape=shape)] = True
        elif c == 1:  # square
            im[polygon(*_polygon(4, r, rot, cx, cy), shape=shape)] = True
        elif c == 2:  # triangle
            im[polygon(*_polygon(3, r, rot, cx, cy), shape=shape)] = True
        elif c == 3:  # five-pointed star
            im[polygon(*_polygon(5, r, rot, cx, cy, star=True), shape=shape)] = True
        elif c == 4:  # ring
            im[disk((cy, cx), r, shape=shape)] = True
            im[disk((cy, cx), r * 0.55, shape=shape)] = False
        elif c == 5:  # ellipse
            im[ellipse(cy, cx, r, r * 0.45, shape=shape, rotation=rot)] = True
        elif c == 6:  # hexagon
            im[polygon(*_polygon(6, r, rot, cx, cy), shape=shape)] = True
        elif c == 7:  # cross
            for a in (rot, rot + np.pi / 2):
                im[ellipse(cy, cx, r, r * 0.22, shape=shape, rotation=a)] = True
        elif c == 8:  # crescent
            im[disk((cy, cx), r, shape=shape)] = True
            im[disk((cy + 0.45 * r * np.sin(rot), cx + 0.45 * r * np.cos(rot)), r * 0.85, shape=shape)] = False
        else:  # three-pointed star
            im[polygon(*_polygon(3, r, rot, cx, cy, star=True), shape=shape)] = True
        imgs[i] = im * np.uint8(255)
    return imgs, y


# --------------------------------------------------------------------------------------------- textures
TEXTURE_SOURCES = ("brick", "grass", "gravel", "camera", "moon", "coins", "text", "page", "cell", "clock")


def texture_patches(n: int, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` grayscale patches (uint8) cut at random places out of 10 ``skimage.data`` images; label = source."""
    import skimage.data

    rng = np.random.default_rng(seed)
    sources = [np.asarray(getattr(skimage.data, name)(), dtype=np.uint8) for name in TEXTURE_SOURCES]
    y = rng.integers(0, len(sources), n)
    out = np.empty((n, size, size), dtype=np.uint8)
    for i, c in enumerate(y):
        im = sources[c]
        r0 = rng.integers(0, im.shape[0] - size)
        c0 = rng.integers(0, im.shape[1] - size)
        p = im[r0 : r0 + size, c0 : c0 + size].astype(np.float64)
        p = p * rng.uniform(0.7, 1.3) + rng.normal(0, 12, p.shape)  # contrast and noise
        out[i] = np.clip(p, 0, 255).astype(np.uint8)
    return out, y


# -------------------------------------------------------------------------------------------- datasets
def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)


def digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data / 16.0
    return Dataset("digits", "images, pixel embedding", x, _l2(d.data), d.target, d.target, 300)


def digits_noisy() -> Dataset:
    base = digits()
    rng = np.random.default_rng(12345)
    y = base.y.copy()
    flip = rng.random(len(y)) < 0.25
    y[flip] = rng.integers(0, 10, int(flip.sum()))
    return Dataset("digits-noisy25", "noisy labels (25%)", base.x, base.embedding, y, base.y, 300)


def digits_imbalanced() -> Dataset:
    base = digits()
    rng = np.random.default_rng(54321)
    keep = rng.random(len(base.y)) < 0.6 ** base.y
    # Keep a balanced reserve for the test split: 15 per class regardless of the imbalance.
    reserve = np.zeros(len(base.y), dtype=bool)
    for c in range(10):
        reserve[np.flatnonzero(base.y == c)[:15]] = True
    m = keep | reserve
    return Dataset("digits-imbalanced", "imbalanced (0.6^k)", base.x[m], base.embedding[m], base.y[m],
                   base.y[m], 300, balanced_test=True)


def silhouettes(embedding: str) -> Dataset:
    imgs, y = render_silhouettes(1500, seed=7)
    x = imgs.reshape(len(imgs), -1) / 255.0
    if embedding == "pixels":
        emb = _l2(x)
        kind = "images, pixel embedding (poor)"
    else:
        emb = encoder_embeddings(imgs, "silhouettes")
        kind = "images, encoder embedding"
    return Dataset(f"silhouettes-{embedding}", kind, x, emb, y, y, 300, model_key="silhouettes")


def textures() -> Dataset:
    imgs, y = texture_patches(1600, seed=11)
    emb = encoder_embeddings(imgs, "textures")
    # The model is a linear probe on the encoder's features (the usual fine-tuning-free setup), reduced to 32
    # principal components so that logistic regression converges in milliseconds.
    centred = emb - emb.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return Dataset("textures-encoder", "images, encoder features", _standardise(centred @ vt[:32].T), emb, y, y, 300)


def _tabular(name: str, loader: Callable, embedding: str, budget: int) -> Dataset:
    d = loader()
    x = _standardise(d.data)
    if embedding == "std":
        emb, kind = _l2(x), "tabular, standardised embedding"
    else:
        emb, kind = _l2(d.data), "tabular, raw-scale embedding (poor)"
    return Dataset(f"{name}-{embedding}", kind, x, emb, d.target, d.target, budget, model_key=name)


def wine(embedding: str) -> Dataset:
    from sklearn.datasets import load_wine

    return _tabular("wine", load_wine, embedding, 80)


def breast_cancer(embedding: str) -> Dataset:
    from sklearn.datasets import load_breast_cancer

    return _tabular("breast_cancer", load_breast_cancer, embedding, 150)


def synthetic_hard(embedding: str) -> Dataset:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=2000, n_features=40, n_informative=12, n_redundant=4, n_classes=10,
                               n_clusters_per_class=1, flip_y=0.15, class_sep=1.2, random_state=3)
    x = _standardise(x)
    if embedding == "std":
        emb, kind = _l2(x), "tabular, hard (15% noise), standardised embedding"
    else:  # an embedding that says nothing about the samples
        emb, kind = np.random.default_rng(4).normal(size=(len(y), 32)), "tabular, hard, random embedding (useless)"
    return Dataset(f"synthetic-{embedding}", kind, x, emb, y, y, 300, model_key="synthetic")


def silhouettes28() -> Dataset:
    imgs, y = render_silhouettes(1500, size=28, seed=8)
    pixels = imgs.reshape(len(imgs), -1) / 255.0
    # The model: logistic regression on 48 principal components of the pixels (784 raw pixels make every fit
    # take seconds); the selection sees the L2-normalised pixels.
    centred = pixels - pixels.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return Dataset("silhouettes28-pixels", "images (28 px), pixel embedding (poor)",
                   _standardise(centred @ vt[:48].T), _l2(pixels), y, y, 300)


def faces() -> Dataset:
    import skimage.data

    imgs = np.asarray(skimage.data.lfw_subset(), dtype=np.float64)  # 100 faces, then 100 non-faces
    y = np.repeat([0, 1], len(imgs) // 2)
    x = imgs.reshape(len(imgs), -1)
    return Dataset("faces-pixels", "images (faces vs not, 2 classes), pixel embedding", _standardise(x), _l2(x),
                   y, y, 80)


DATASETS: dict[str, Callable[[], Dataset]] = {
    "digits": digits,
    "digits-noisy25": digits_noisy,
    "digits-imbalanced": digits_imbalanced,
    "silhouettes-pixels": lambda: silhouettes("pixels"),
    "silhouettes-encoder": lambda: silhouettes("encoder"),
    "textures-encoder": textures,
    "wine-std": lambda: wine("std"),
    "wine-raw": lambda: wine("raw"),
    "breast_cancer-std": lambda: breast_cancer("std"),
    "breast_cancer-raw": lambda: breast_cancer("raw"),
    "synthetic-std": lambda: synthetic_hard("std"),
    "synthetic-random": lambda: synthetic_hard("random"),
    "silhouettes28-pixels": silhouettes28,
    "faces-pixels": faces,
}
