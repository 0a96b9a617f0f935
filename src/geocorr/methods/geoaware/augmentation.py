"""Pose-variant pair augmentation: double flip, single flip and self flip.

A horizontal mirror turns the left paw into a right paw, so the keypoint ids of a mirrored image
are permuted with the dataset's ``flip`` table (:func:`geocorr.datasets.symmetry.symmetry_table`):
the keypoint that had id ``i`` gets id ``flip[i]``. Then "left stays left" after the flip and the
augmented pairs teach the features an object's orientation.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch

from .data import PairSample

# Published probabilities of adding each augmented pair (GeoAware's released setting).
POSE_VARIANTS: dict[str, float] = {"single_flip": 1.0, "double_flip": 1.0, "self_flip": 0.25}


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


def _hflip_view(image: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor,
                flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    kps, vis = hflip_keypoints(keypoints, visible, image.shape[-1], flip)
    return image.flip(-1), kps, vis


def pose_variant(sample: PairSample, variant: str, flip: Sequence[int] | torch.Tensor) -> PairSample:
    """One augmented pair.

    single_flip: mirrored source, original target; double_flip: both mirrored;
    self_flip: the source against its own mirror image (the target is dropped).
    """
    if variant not in POSE_VARIANTS:
        raise ValueError(f"unknown pose variant {variant!r}; known: {', '.join(POSE_VARIANTS)}")
    perm = flip_permutation(flip, sample.source_keypoints.shape[0])
    src = _hflip_view(sample.source, sample.source_keypoints, sample.source_visible, perm)
    if variant == "self_flip":
        return replace(sample, target=src[0], target_keypoints=src[1], target_visible=src[2],
                       target_size=sample.source_size)
    sample = replace(sample, source=src[0], source_keypoints=src[1], source_visible=src[2])
    if variant == "double_flip":
        tgt = _hflip_view(sample.target, sample.target_keypoints, sample.target_visible, perm)
        sample = replace(sample, target=tgt[0], target_keypoints=tgt[1], target_visible=tgt[2])
    return sample


def draw_variants(probabilities: Mapping[str, float] = POSE_VARIANTS,
                  generator: torch.Generator | None = None) -> list[str]:
    """The variants to add for one pair: each with its probability, in POSE_VARIANTS order."""
    unknown = set(probabilities) - set(POSE_VARIANTS)
    if unknown:
        raise ValueError(f"unknown pose variants {sorted(unknown)}; known: {', '.join(POSE_VARIANTS)}")
    chosen = []
    for variant in POSE_VARIANTS:
        p = float(probabilities.get(variant, 0.0))
        if not 0 <= p <= 1:
            raise ValueError(f"probability of {variant} must lie in [0, 1], got {p}")
        if torch.rand((), generator=generator) < p:
            chosen.append(variant)
    return chosen
