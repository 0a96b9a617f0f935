"""GECO's geometric metrics beyond PCK (Hartwig et al., ICCV 2025).

Each query keypoint (visible in the source) goes into a bucket by the target visibility of itself
and of its symmetric counterpart (``twin``; a keypoint that is its own twin has none):

- ``n11``: keypoint and counterpart visible; ``n10``: keypoint visible, counterpart hidden;
  ``n1x``: keypoint visible, no counterpart;
- ``n01``: keypoint hidden, counterpart visible; ``n00``: both hidden; ``n0x``: hidden, no
  counterpart.

On ``n11`` points, with d the distance of the prediction to a point and T = α · L the PCK threshold:
swap = ``d(counterpart) ≤ T < d(keypoint)`` (the prediction landed on the counterpart instead);
ambiguous = ``d(keypoint) ≤ T and d(counterpart) ≤ T`` (within the threshold of both).
"""
from __future__ import annotations

import numpy as np

BUCKETS = ("n11", "n10", "n1x", "n01", "n00", "n0x")


def visibility_buckets(keypoint_ids: np.ndarray, target_visible: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """Bucket name of each query keypoint of one pair.

    keypoint_ids: (n,) ids of the queries. target_visible: (K,) bool. twin: (K,) permutation.
    Returns (n,) str.
    """
    target_visible, twin = np.asarray(target_visible, bool), np.asarray(twin)
    if twin.shape != target_visible.shape:
        raise ValueError(f"twin must have shape {target_visible.shape}, got {twin.shape}")
    ids = np.asarray(keypoint_ids, dtype=int)
    first = np.where(target_visible[ids], "1", "0")
    has_twin = twin[ids] != ids
    second = np.where(~has_twin, "x", np.where(target_visible[twin[ids]], "1", "0"))
    return np.char.add(np.char.add("n", first), second)


def swap_and_ambiguous(
    predicted: np.ndarray, keypoint: np.ndarray, counterpart: np.ndarray, threshold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Swap and ambiguous flags of n11 predictions.

    predicted, keypoint, counterpart: (n, 2) pixels. threshold: (n, A) pixels (α · L).
    Returns two (n, A) bool arrays: swapped, ambiguous.
    """
    predicted, keypoint, counterpart = (np.asarray(a, np.float64) for a in (predicted, keypoint, counterpart))
    threshold = np.asarray(threshold, np.float64)
    if not predicted.shape == keypoint.shape == counterpart.shape or predicted.shape[1:] != (2,):
        raise ValueError("predicted, keypoint and counterpart must all have shape (n, 2), got "
                         f"{predicted.shape}, {keypoint.shape}, {counterpart.shape}")
    if threshold.ndim != 2 or len(threshold) != len(predicted):
        raise ValueError(f"threshold must have shape ({len(predicted)}, A), got {threshold.shape}")
    on_keypoint = np.linalg.norm(predicted - keypoint, axis=1)[:, None] <= threshold
    on_counterpart = np.linalg.norm(predicted - counterpart, axis=1)[:, None] <= threshold
    return on_counterpart & ~on_keypoint, on_counterpart & on_keypoint
