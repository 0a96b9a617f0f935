"""GeoAware's geometry-aware subset (Zhang et al., CVPR 2024, "Telling Left from Right").

A keypoint pair is geometry-aware when the keypoint is visible in both images and at least two
keypoints of its semantic subgroup (the four paws, the two eyes, the wheels …) are visible in the
target — i.e. another keypoint of its subgroup is visible there, a chance to confuse them.
The subgroups are the published ones (``geo_groups`` of :func:`geocorr.datasets.symmetry.symmetry_table`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def group_of(groups: Sequence[Sequence[int]], num_keypoints: int) -> np.ndarray:
    """(K,) subgroup index of each keypoint; a keypoint in no listed group is its own group."""
    out = np.full(num_keypoints, -1)
    for g, members in enumerate(groups):
        for k in members:
            if not 0 <= k < num_keypoints:
                raise ValueError(f"geo_groups: keypoint id {k} out of range for {num_keypoints} keypoints")
            out[k] = g
    alone = np.flatnonzero(out < 0)
    out[alone] = len(groups) + np.arange(len(alone))
    return out


def geometry_aware(source_visible: np.ndarray, target_visible: np.ndarray,
                   groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Which keypoints of one pair are geometry-aware.

    source_visible, target_visible: (K,) bool. groups: lists of keypoint ids. Returns (K,) bool.
    """
    source_visible = np.asarray(source_visible, dtype=bool)
    target_visible = np.asarray(target_visible, dtype=bool)
    if source_visible.ndim != 1 or target_visible.shape != source_visible.shape:
        raise ValueError(f"source_visible and target_visible must both have shape (K,), got "
                         f"{source_visible.shape} and {target_visible.shape}")
    group = group_of(groups, len(source_visible))
    visible_in_group = np.bincount(group[target_visible], minlength=group.max() + 1)
    return source_visible & target_visible & (visible_in_group[group] >= 2)
