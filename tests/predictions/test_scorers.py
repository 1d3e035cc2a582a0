"""The §4 scorers against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightly_airflow.predictions import (
    rescale_object_frequency,
    score_classification,
    score_keypoint_detection,
    score_object_detection,
    score_semantic_segmentation,
)


def test_classification_hand_computed():
    s = score_classification(np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    # row 0: LC = 0.3 / (2/3); margin = 1 - 0.5; entropy = -(.7 log .7 + .2 log .2 + .1 log .1) / log 3
    entropy0 = -(0.7 * math.log2(0.7) + 0.2 * math.log2(0.2) + 0.1 * math.log2(0.1)) / math.log2(3)
    np.testing.assert_allclose(s["uncertainty_least_confidence"], [0.45, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(s["uncertainty_margin"], [0.5, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(s["uncertainty_entropy"], [entropy0, 0.0, 1.0], atol=1e-12)


def test_single_column_is_binary_and_nan_is_zero():
    s = score_classification(np.array([0.8, 0.5]))
    np.testing.assert_allclose(s["uncertainty_least_confidence"], [0.4, 1.0])
    np.testing.assert_allclose(s["uncertainty_margin"], [0.4, 1.0])
    s = score_classification(np.array([[np.nan, 1.0]]))
    assert s["uncertainty_entropy"][0] == 0.0 and s["uncertainty_margin"][0] == 0.0
    assert score_classification(np.zeros((0, 3)))["uncertainty_margin"].shape == (0,)


def test_object_detection_hand_computed():
    # image 0: two cars and a bus; image 1: no boxes; image 2: one car.
    image = np.array([0, 0, 0, 2])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [1.0, 0.0]])
    scores = np.array([0.9, 0.6, 0.3, 1.0])
    cats = np.array([0, 0, 1, 0])
    s = score_object_detection(image, probs, scores, cats, 3, rescale=False)
    np.testing.assert_allclose(s["uncertainty_least_confidence"], [0.8, 0.0, 0.0])  # max(0.2, 0.8, 0.4)
    np.testing.assert_allclose(s["uncertainty_margin"], [0.8, 0.0, 0.0])
    np.testing.assert_allclose(s["objectness_least_confidence"], [0.4, 0.0, 0.0])
    np.testing.assert_allclose(s["object_frequency"], [2.25, 0.0, 1.0])
    rescaled = score_object_detection(image, probs, scores, cats, 3)["object_frequency"]
    np.testing.assert_allclose(rescaled, [1.0, 0.9, 0.9 + 0.1 / 2.25])


def test_rescale_object_frequency_edge_cases():
    np.testing.assert_allclose(rescale_object_frequency([2.0, 2.0]), [1.0, 1.0])
    out = rescale_object_frequency([1.0, np.nan, 3.0])
    assert out[0] == pytest.approx(0.9) and np.isnan(out[1]) and out[2] == pytest.approx(1.0)


def test_semantic_segmentation_is_the_pixel_mean():
    # image 0: 3 pixels certain, 1 pixel uniform -> mean LC 0.25; image 1: nothing labelled.
    s = score_semantic_segmentation(np.array([0, 0]), np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([3, 1]), 2)
    np.testing.assert_allclose(s["uncertainty_least_confidence"], [0.25, 0.0])
    np.testing.assert_allclose(s["uncertainty_entropy"], [0.25, 0.0])


def test_keypoint_mean_uncertainty():
    s = score_keypoint_detection(np.array([0, 0, 2]), np.array([0.5, 1.0, 0.2]), 3)
    np.testing.assert_allclose(s["mean_uncertainty"], [0.25, 0.0, 0.8])
