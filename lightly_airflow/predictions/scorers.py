"""Scorers of Lightly's ``SCORES`` input (lightly-compat.md §4), pure vectorised numpy.

Classification uncertainty from probabilities ``p`` over ``C`` classes (one column means binary
``[p, 1 − p]``; NaN counts as 0), each in [0, 1]: 0 for a one-hot vector, 1 for the uniform one:

- ``uncertainty_least_confidence`` = (1 − max p) / (1 − 1/C)
- ``uncertainty_margin`` = 1 − (p₁ − p₂), the two largest probabilities
- ``uncertainty_entropy`` = −Σ p log₂ p / log₂ C

Object detection (and instance segmentation), per image from its boxes (0 when there are none): the three
uncertainties per box, image score = the maximum over boxes; ``objectness_least_confidence`` = 1 − mean box
score; ``object_frequency``: the first object of each class counts 1, every further one 0.25, and the totals
are min-max rescaled across all images of a run to [0.9, 1.0] (:func:`rescale_object_frequency`, applied by
the select task over every shard, because a shard alone cannot know the run's range).
Semantic segmentation: the three uncertainties per pixel, averaged over the image's labelled pixels.
Keypoints: ``mean_uncertainty`` = 1 − mean over instances of the mean keypoint confidence.
"""

from __future__ import annotations

import numpy as np

LEAST_CONFIDENCE = "uncertainty_least_confidence"
MARGIN = "uncertainty_margin"
ENTROPY = "uncertainty_entropy"
OBJECTNESS = "objectness_least_confidence"
OBJECT_FREQUENCY = "object_frequency"
MEAN_UNCERTAINTY = "mean_uncertainty"
UNCERTAINTY_SCORES = (LEAST_CONFIDENCE, MARGIN, ENTROPY)

OBJECT_FREQUENCY_RANGE = (0.9, 1.0)
FURTHER_OBJECT_WEIGHT = 0.25


def _as_probabilities(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2:
        raise ValueError(f"probabilities must be a (N, C) array, got shape {p.shape}.")
    p = np.nan_to_num(p, nan=0.0, posinf=1.0, neginf=0.0)
    if p.shape[1] == 1:
        p = np.concatenate([p, 1.0 - p], axis=1)
    return np.clip(p, 0.0, 1.0)


def score_classification(probs: np.ndarray) -> dict[str, np.ndarray]:
    """The three uncertainty scores of each row of ``probs``.

    :param probs: ``(N, C)`` probabilities (``(N,)`` or ``(N, 1)``: binary ``[p, 1 − p]``).
    :returns: ``{name: (N,) float64}`` for ``uncertainty_least_confidence``, ``_margin``, ``_entropy``.
    """
    p = _as_probabilities(probs)
    n, c = p.shape
    if n == 0:
        return {name: np.zeros(0) for name in UNCERTAINTY_SCORES}
    if c < 2:  # no classes at all: nothing is uncertain
        return {name: np.zeros(n) for name in UNCERTAINTY_SCORES}
    top2 = np.partition(p, (c - 2, c - 1), axis=1)[:, -2:]
    p1, p2 = top2[:, 1], top2[:, 0]
    least_confidence = (1.0 - p1) / (1.0 - 1.0 / c)
    margin = 1.0 - (p1 - p2)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -plogp.sum(axis=1) / np.log2(c)
    return {
        LEAST_CONFIDENCE: np.clip(least_confidence, 0.0, 1.0),
        MARGIN: np.clip(margin, 0.0, 1.0),
        ENTROPY: np.clip(entropy, 0.0, 1.0),
    }


def _per_image_mean(image_index: np.ndarray, values: np.ndarray, n_images: int, weights: np.ndarray | None = None) -> np.ndarray:
    w = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    total = np.bincount(image_index, weights=values * w, minlength=n_images)
    count = np.bincount(image_index, weights=w, minlength=n_images)
    out = np.zeros(n_images)
    np.divide(total, count, out=out, where=count > 0)
    return out


def object_frequency_totals(image_index: np.ndarray, category_ids: np.ndarray, n_images: int) -> np.ndarray:
    """Per image: 1 for the first object of each class plus 0.25 for every further object of that class."""
    image_index = np.asarray(image_index, np.int64)
    category_ids = np.asarray(category_ids, np.int64)
    if image_index.size == 0:
        return np.zeros(n_images)
    pairs = np.stack([image_index, category_ids], axis=1)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    per_pair = 1.0 + FURTHER_OBJECT_WEIGHT * (counts - 1)
    return np.bincount(unique[:, 0], weights=per_pair, minlength=n_images)


def rescale_object_frequency(totals: np.ndarray) -> np.ndarray:
    """Min-max rescale object-frequency totals to [0.9, 1.0] (all equal -> 1.0; NaN stays NaN).

    :param totals: the raw totals of every image of the run.
    """
    t = np.asarray(totals, np.float64)
    lo_out, hi_out = OBJECT_FREQUENCY_RANGE
    finite = np.isfinite(t)
    out = np.full(t.shape, np.nan)
    if not finite.any():
        return out
    lo, hi = t[finite].min(), t[finite].max()
    if hi - lo <= 0:
        out[finite] = hi_out
    else:
        out[finite] = lo_out + (t[finite] - lo) / (hi - lo) * (hi_out - lo_out)
    return out


def score_object_detection(
    image_index: np.ndarray,
    probabilities: np.ndarray,
    scores: np.ndarray,
    category_ids: np.ndarray,
    n_images: int,
    *,
    rescale: bool = True,
) -> dict[str, np.ndarray]:
    """Per-image detection scores from all boxes of ``n_images`` images.

    :param image_index: ``(B,)`` the image each box belongs to (0..n_images-1).
    :param probabilities: ``(B, C)`` class probabilities of each box.
    :param scores: ``(B,)`` box (objectness) scores.
    :param category_ids: ``(B,)`` each box's category.
    :param n_images: number of images (images without boxes score 0).
    :param rescale: rescale ``object_frequency`` to [0.9, 1] over these images; ``False`` returns raw totals
        (for a shard, to be rescaled across the run later).
    """
    image_index = np.asarray(image_index, np.int64)
    out: dict[str, np.ndarray] = {}
    if image_index.size:
        per_box = score_classification(np.asarray(probabilities, np.float64).reshape(image_index.size, -1))
    else:
        per_box = {name: np.zeros(0) for name in UNCERTAINTY_SCORES}
    for name, values in per_box.items():
        image = np.zeros(n_images)
        np.maximum.at(image, image_index, values)
        out[name] = image
    mean_score = _per_image_mean(image_index, np.nan_to_num(np.asarray(scores, np.float64)), n_images)
    has_boxes = np.bincount(image_index, minlength=n_images) > 0
    out[OBJECTNESS] = np.where(has_boxes, 1.0 - mean_score, 0.0)
    totals = object_frequency_totals(image_index, category_ids, n_images)
    out[OBJECT_FREQUENCY] = rescale_object_frequency(totals) if rescale else totals
    return out


def score_semantic_segmentation(
    image_index: np.ndarray, probabilities: np.ndarray, areas: np.ndarray, n_images: int
) -> dict[str, np.ndarray]:
    """Per-pixel uncertainties averaged over each image's labelled pixels.

    Every pixel of a segment carries that segment's probability vector, so the per-pixel mean is the
    area-weighted mean of the segments' scores.

    :param image_index: ``(S,)`` the image of each segment.
    :param probabilities: ``(S, C)`` each segment's class probabilities.
    :param areas: ``(S,)`` pixels in each segment.
    :param n_images: number of images (images without labelled pixels score 0).
    """
    image_index = np.asarray(image_index, np.int64)
    if image_index.size:
        per_segment = score_classification(np.asarray(probabilities, np.float64).reshape(image_index.size, -1))
    else:
        per_segment = {name: np.zeros(0) for name in UNCERTAINTY_SCORES}
    areas = np.asarray(areas, np.float64)
    return {name: _per_image_mean(image_index, v, n_images, weights=areas) for name, v in per_segment.items()}


def score_keypoint_detection(image_index: np.ndarray, instance_confidence: np.ndarray, n_images: int) -> dict[str, np.ndarray]:
    """``mean_uncertainty`` = 1 − mean over instances of each instance's mean keypoint confidence.

    :param image_index: ``(K,)`` the image of each instance.
    :param instance_confidence: ``(K,)`` each instance's mean keypoint confidence.
    :param n_images: number of images (images without instances score 0).
    """
    image_index = np.asarray(image_index, np.int64)
    conf = np.clip(np.nan_to_num(np.asarray(instance_confidence, np.float64)), 0.0, 1.0)
    mean_conf = _per_image_mean(image_index, conf, n_images)
    has = np.bincount(image_index, minlength=n_images) > 0
    return {MEAN_UNCERTAINTY: np.where(has, 1.0 - mean_conf, 0.0)}


def scores_for_task_type(task_type: str) -> tuple[str, ...]:
    """The score names a task type produces (the ``score`` values a SCORES input may name for it)."""
    if task_type == "classification" or task_type == "semantic-segmentation":
        return UNCERTAINTY_SCORES
    if task_type in ("object-detection", "instance-segmentation"):
        return (*UNCERTAINTY_SCORES, OBJECTNESS, OBJECT_FREQUENCY)
    if task_type == "keypoint-detection":
        return (MEAN_UNCERTAINTY,)
    raise ValueError(f"Unknown task_type {task_type!r}.")
