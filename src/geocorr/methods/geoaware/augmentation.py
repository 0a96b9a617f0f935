"""Mirroring keypoints for the pose-variant losses (double flip, single flip, self flip).

A horizontal mirror turns the left paw into a right paw, so the keypoint ids of a mirrored image
are permuted with the dataset's ``flip`` table (:func:`geocorr.datasets.symmetry.symmetry_table`):
the keypoint that had id ``i`` gets id ``flip[i]``. Then "left stays left" after the flip and the
mirrored variants of a pair teach the features an object's orientation; they are extra loss terms
of the pair's own training step (:meth:`.model.GeoAware.training_step`), not extra samples.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def flip_permutation(flip: Sequence[int] | torch.Tensor, num_keypoints: int) -> torch.Tensor:
    """The ``flip`` table as a (K,) long tensor, checked to be a permutation of 0..K-1."""
    perm = torch.as_tensor(flip, dtype=torch.long)
    if perm.shape != (num_keypoints,) or not torch.equal(perm.sort().values, torch.arange(num_keypoints)):
        raise ValueError(f"flip must be a permutation of 0..{num_keypoints - 1}, got {perm.tolist()}")
    return perm


def hflip_points(points: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror pixel coordinates (..., 2) of an image ``width`` pixels wide: x -> W - 1 - x."""
    return torch.stack([width - 1 - points[..., 0], points[..., 1]], dim=-1)


def hflip_keypoints(keypoints: torch.Tensor, visible: torch.Tensor, width: int,
                    flip: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints of the mirrored image, with ids permuted: id ``flip[i]`` is the mirrored point ``i``.

    keypoints: (K, 2) pixel (x, y); visible: (K,) bool -> ((K, 2), (K,)).
    """
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or visible.shape != keypoints.shape[:1]:
        raise ValueError(f"keypoints (K, 2) and visible (K,) expected, got {tuple(keypoints.shape)} "
                         f"and {tuple(visible.shape)}")
    perm = flip_permutation(flip, keypoints.shape[0])
    out_kps, out_vis = torch.empty_like(keypoints), torch.empty_like(visible)
    out_kps[perm] = hflip_points(keypoints, width)
    out_vis[perm] = visible
    return out_kps, out_vis
