"""Keypoint Average Precision, KAP@α (Mariotti et al., CVPR 2024, "Viewpoint-guided spherical maps").

PCK ignores keypoints hidden in the target, so a method is never asked whether a point is there at
all. KAP ranks every prediction of a source-visible keypoint by its score (highest first); a
prediction is a true positive when the keypoint is visible in the target and predicted within
α · L, otherwise a false positive (hidden keypoints always are). KAP is the average precision
``Σ_{true positives at rank r} precision@r / P`` with P the number of keypoints visible in the
target, i.e. the area under the precision-recall curve without interpolation.
"""
from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, positive: np.ndarray, num_positives: int) -> float:
    """Non-interpolated AP. scores: (n,); positive: (n,) bool; num_positives: P (≥ positives).

    Ties in score are ranked by input order (stable sort). NaN when P is 0.
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    if scores.ndim != 1 or positive.shape != scores.shape:
        raise ValueError(f"scores and positive must both have shape (n,), got {scores.shape}, {positive.shape}")
    if num_positives < positive.sum():
        raise ValueError(f"num_positives ({num_positives}) is smaller than the true positives ({positive.sum()})")
    if num_positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / num_positives)


def kap(scores: np.ndarray, correct: np.ndarray, target_visible: np.ndarray) -> np.ndarray:
    """KAP per α. scores: (n,); correct: (n, A) bool (within α · L); target_visible: (n,) bool -> (A,)."""
    correct, target_visible = np.asarray(correct, bool), np.asarray(target_visible, bool)
    if correct.ndim != 2 or len(correct) != len(target_visible):
        raise ValueError(f"correct must have shape ({len(target_visible)}, A), got {correct.shape}")
    positives = int(target_visible.sum())
    return np.array([average_precision(scores, correct[:, a] & target_visible, positives)
                     for a in range(correct.shape[1])])
