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


def average_precision(scores: np.ndarray, positive: np.ndarray, num_positives: int | None = None) -> float:
    """Non-interpolated AP: ``Σ_t (R_t − R_{t−1}) · P_t`` over the distinct score thresholds t.

    scores: (n,); positive: (n,) bool; num_positives: P, the positives to be found (≥ the true
    positives among the n; default: their number). NaN when P is 0.
    Ties: predictions of equal score are one threshold (as scikit-learn's
    ``average_precision_score``): every positive of a tie block gets the precision at the block's
    end, so the result never depends on the input order. Without ties this is the mean, over the
    P positives, of the precision at each one's rank (0 for positives never predicted). The one AP
    of geocorr: KAP and cyclecorr's matchability AP both use it.
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    if scores.ndim != 1 or positive.shape != scores.shape:
        raise ValueError(f"scores and positive must both have shape (n,), got {scores.shape}, {positive.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores: contains NaN; rank only predictions that have a score")
    found = int(positive.sum())
    num_positives = found if num_positives is None else num_positives
    if num_positives < found:
        raise ValueError(f"num_positives ({num_positives}) is smaller than the true positives ({found})")
    if num_positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    block_end = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1]  # last index of each tie block
    true_positives = np.cumsum(hits)[block_end]
    precision = true_positives / (block_end + 1)
    new_positives = np.diff(true_positives, prepend=0)
    return float((new_positives * precision).sum() / num_positives)


def kap(scores: np.ndarray, correct: np.ndarray, target_visible: np.ndarray) -> np.ndarray:
    """KAP per α. scores: (n,); correct: (n, A) bool (within α · L); target_visible: (n,) bool -> (A,)."""
    correct, target_visible = np.asarray(correct, bool), np.asarray(target_visible, bool)
    if correct.ndim != 2 or len(correct) != len(target_visible):
        raise ValueError(f"correct must have shape ({len(target_visible)}, A), got {correct.shape}")
    positives = int(target_visible.sum())
    return np.array([average_precision(scores, correct[:, a] & target_visible, positives)
                     for a in range(correct.shape[1])])
