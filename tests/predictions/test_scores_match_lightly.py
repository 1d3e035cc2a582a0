"""Our scorers against Lightly's own, reimplemented here from its source as the reference.

Reference: lightly-ai/lightly, ``lightly/active_learning/scorers/{classification,detection,
semantic_segmentation,keypoint_detection}.py`` and ``lightly/active_learning/utils/object_detection_output.py``
at commit a74af664199649fa42b4c49ccef45a781ff3bf9d (the parent of a4f5b235 "Remove active learning (#1251)",
the last commit that has them). The reference keeps Lightly's steps, not ours: raw score, ``np.nan_to_num`` on
the score, then ``np.interp`` between the scores of a one-hot and of the uniform vector (which clips to
[0, 1]); ``np.partition(p, -2)`` for the margin; ``np.log2(p, where=p > 0)`` for the entropy; a Python loop
with a dict for ``object_frequency`` and ``np.interp(x, (min, max), (0.9, 1.0))`` across the images.
"""

from __future__ import annotations

import numpy as np
import pytest

from lightly_airflow.predictions import parse_prediction_file, parse_task_schema
from lightly_airflow.predictions import scorers as S


def lightly_classification(model_output: np.ndarray, normalize: bool = True) -> dict[str, np.ndarray]:
    """``ScorerClassification(model_output).calculate_scores()``."""
    mo = np.asarray(model_output, np.float64)
    if mo.shape[1] == 1:
        mo = np.concatenate([mo, 1 - mo], axis=1)
    zeros = np.zeros_like(mo)
    log_probs = np.log2(mo, out=zeros, where=mo > 0)
    part = np.partition(mo, -2, axis=1)
    raw = {S.LEAST_CONFIDENCE: 1 - np.max(mo, axis=1), S.MARGIN: 1 - (part[:, -1] - part[:, -2]),
           S.ENTROPY: -1 * np.sum(mo * log_probs, axis=1)}
    scores = {name: np.nan_to_num(v) for name, v in raw.items()}
    if not normalize:
        return scores
    c = mo.shape[1]
    sure = np.zeros((1, c))
    sure[0, 0] = 1
    lo, hi = lightly_classification(sure, False), lightly_classification(np.ones((1, c)) / c, False)
    return {k: np.interp(v, [float(lo[k][0]), float(hi[k][0])], [0, 1]) for k, v in scores.items()}


def lightly_detection(images: list[tuple[list[int], np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``ScorerObjectDetection`` with the default config (frequency_penalty 0.25, min_score 0.9); an image is
    ``(labels, scores, class_probabilities)``."""
    n_objs = []
    for labels, _, _ in images:
        objs: dict[int, float] = {}
        for label in labels:
            objs[label] = objs[label] + 0.25 if label in objs else 1
        n_objs.append(sum(objs.values()))
    lo, hi = min(n_objs), max(n_objs)
    out = {S.OBJECT_FREQUENCY: np.nan_to_num(np.asarray([np.interp(x, (lo, hi), (0.9, 1.0)) for x in n_objs])),
           S.OBJECTNESS: np.nan_to_num(np.asarray([1.0 - np.mean(s) if len(s) else 0.0 for _, s, _ in images]))}
    for name in S.UNCERTAINTY_SCORES:
        out[name] = np.asarray([float(np.max(lightly_classification(p)[name])) if len(p) else 0.0
                                for _, _, p in images])
    return out


def _classification_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = [("one column", rng.random((50, 1))), ("one column edges", np.array([[0.0], [1.0], [0.5], [1e-30]]))]
    for c in (2, 3, 5, 10, 100, 1000):
        ties = np.zeros((3, c))
        ties[:, :2] = 0.5
        tiny, holes = rng.dirichlet(np.ones(c), 20), rng.dirichlet(np.ones(c), 20)
        tiny[:, 0], holes[:, ::2] = 1e-30, 0.0  # log 0 and a denormal-sized term
        cases += [
            (f"dirichlet {c}", rng.dirichlet(np.full(c, 0.3), 100)),
            (f"one-hot {c}", np.eye(c)[rng.integers(0, c, 20)]),
            (f"uniform {c}", np.full((2, c), 1 / c)),
            (f"tie {c}", ties),
            (f"sum 0.995 {c}", rng.dirichlet(np.ones(c), 20) * 0.995),
            (f"tiny {c}", tiny),
            (f"zeros {c}", holes),
        ]
    return cases


@pytest.mark.parametrize(("case", "probs"), _classification_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_classification_scores_match_lightly(case, probs):
    ours, ref = S.score_classification(probs), lightly_classification(probs)
    assert ours.keys() == ref.keys()
    for name in ref:
        np.testing.assert_allclose(ours[name], ref[name], rtol=0, atol=1e-12, err_msg=f"{case}: {name}")


def test_nan_probability_counts_as_zero_not_as_a_certain_prediction():
    """A deliberate difference (docs/metadata-and-predictions.md): Lightly scores a row holding a NaN 0 on all
    three (NaN propagates into the raw score, then ``np.nan_to_num``), which ranks a broken prediction as the
    most certain one; we count the NaN as probability 0, as the file check does when it sums the row."""
    ours = S.score_classification(np.array([[np.nan, 0.5, 0.5]]))
    ref_with_zero = lightly_classification(np.array([[0.0, 0.5, 0.5]]))
    assert all(v[0] == 0.0 for v in lightly_classification(np.array([[np.nan, 0.5, 0.5]])).values())
    for name in S.UNCERTAINTY_SCORES:
        assert ours[name][0] == pytest.approx(ref_with_zero[name][0]) and ours[name][0] > 0.6


@pytest.mark.parametrize("c", [1, 2, 3, 7, 50])
def test_detection_scores_match_lightly(c):
    """Images with 0, 1 and many boxes, box scores 0 and 1, one-hot boxes, runs whose images all count the same
    (``object_frequency`` 1.0, as ``np.interp`` over an empty range gives)."""
    rng = np.random.default_rng(c)
    for _ in range(60):
        images = []
        for _ in range(int(rng.integers(1, 10))):
            b = int(rng.choice([0, 0, 1, 2, 5, 30]))
            probs = rng.dirichlet(np.ones(c), b) if c > 1 else rng.random((b, 1))
            if b and rng.random() < 0.3:
                probs[0] = np.eye(c)[0] if c > 1 else [1.0]
            images.append((rng.integers(0, max(c, 2), b).tolist(), rng.choice([0.0, 1.0, 0.5, rng.random()], b), probs))
        index = np.repeat(np.arange(len(images)), [len(im[0]) for im in images])
        ours = S.score_object_detection(index, np.concatenate([im[2] for im in images]),
                                        np.concatenate([im[1] for im in images]),
                                        np.concatenate([im[0] for im in images]).astype(np.int64), len(images))
        ref = lightly_detection(images)
        assert set(ours) == set(ref)
        for name in ref:
            np.testing.assert_allclose(ours[name], ref[name], rtol=0, atol=1e-12, err_msg=name)


def test_semantic_segmentation_is_lightlys_per_pixel_mean():
    """Lightly scores every pixel's vector and takes ``np.mean``; we weight each segment's score by its area."""
    rng = np.random.default_rng(3)
    areas = np.array([1, 7, 30, 2, 5])
    probs = rng.dirichlet(np.ones(4), len(areas))
    index = np.array([0, 0, 0, 1, 1])
    ours = S.score_semantic_segmentation(index, probs, areas, 3)
    for image in (0, 1):
        pixels = np.repeat(probs[index == image], areas[index == image], axis=0)
        for name, v in lightly_classification(pixels).items():
            assert ours[name][image] == pytest.approx(float(np.mean(v)), abs=1e-12)
    assert all(ours[name][2] == 0.0 for name in S.UNCERTAINTY_SCORES)  # no labelled pixels


def test_keypoint_mean_uncertainty_matches_lightly():
    instances = [[[0.9, 0.1, 0.5], [1.0]], [[0.0, 0.0]], [], [[1.0, 1.0, 1.0, 1.0]]]
    ref = [1.0 - np.mean([np.mean(i) for i in image]) if image else 0.0 for image in instances]
    index = np.repeat(np.arange(len(instances)), [len(i) for i in instances])
    conf = [float(np.mean(i)) for image in instances for i in image]
    np.testing.assert_allclose(S.score_keypoint_detection(index, np.array(conf), len(instances))["mean_uncertainty"],
                               ref, atol=1e-12)


def test_score_names_are_lightlys():
    """The names ``calculate_scores()`` returns per scorer in the reference source, which SCORES inputs name."""
    classification = ("uncertainty_least_confidence", "uncertainty_margin", "uncertainty_entropy")
    assert S.scores_for_task_type("classification") == classification
    assert S.scores_for_task_type("semantic-segmentation") == classification
    for task_type in ("object-detection", "instance-segmentation"):
        assert set(S.scores_for_task_type(task_type)) == {"object_frequency", "objectness_least_confidence",
                                                          *classification}
    assert S.scores_for_task_type("keypoint-detection") == ("mean_uncertainty",)


@pytest.mark.parametrize("score", [0.5, 0.6, 0.9, 1.0])
def test_one_category_detector_without_probabilities_scores_like_lightly(score):
    """A one-class detector (``person``) writes boxes with a score and no probabilities. Lightly's
    ``ObjectDetectionOutput.from_scores`` gives each box ``[score, 1 - score]``; we gave ``[1]``, so all three
    uncertainties were 0 for every image whatever the scores (0.6 should give least confidence 0.8)."""
    schema, _ = parse_task_schema("people", {"task_type": "object-detection", "categories": [{"id": 0, "name": "person"}]})
    obj = {"file_name": "a.png", "predictions": [{"category_id": 0, "bbox": [0, 0, 4, 4], "score": score},
                                                 {"category_id": 0, "bbox": [1, 1, 4, 4], "score": 1.0}]}
    preds, problems = parse_prediction_file(obj, schema, "a.png")
    assert problems == [] and preds is not None
    ours = S.score_object_detection(np.zeros(2, np.int64), np.stack(preds.probabilities), np.asarray(preds.scores),
                                    np.asarray(preds.category_index), 1)
    ref = lightly_detection([([0, 0], np.array([score, 1.0]), np.array([[score, 1 - score], [0.0, 1.0]]))])
    for name in S.UNCERTAINTY_SCORES:
        assert ours[name][0] == pytest.approx(ref[name][0], abs=1e-12), name
    assert ours[S.LEAST_CONFIDENCE][0] == pytest.approx(2 * (1 - score))


def test_one_category_score_under_one_half_is_uniform_as_for_several_categories():
    """Our rule for a prediction without probabilities (its category never below the others) holds for one
    category too: the labels' ``"score": 0`` gives the uniform binary vector, not a confident 'not a person'."""
    schema, _ = parse_task_schema("people", {"task_type": "object-detection", "categories": [{"id": 0, "name": "person"}]})
    obj = {"file_name": "a.png", "predictions": [{"category_id": 0, "bbox": [0, 0, 4, 4], "score": 0}]}
    preds, _ = parse_prediction_file(obj, schema, "a.png")
    assert preds is not None and preds.probabilities[0].tolist() == [0.5]
