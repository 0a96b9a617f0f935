"""One training pair as tensors: the images, their keypoints and the PCK reference lengths."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...datasets.base import ImageAnnotation, Pair, keypoint_bbox
from ...images import load_image


@dataclass(frozen=True)
class PairSample:
    """A source/target pair ready for training.

    source, target: (3, H, W) / (3, H', W') float images in [0, 1].
    source_keypoints, target_keypoints: (K, 2) pixel (x, y), NaN where not visible.
    source_visible, target_visible: (K,) bool.
    source_size, target_size: the PCK reference length L of each image (max side of the object box,
        or of the image), in its own pixels; the ground-truth noise is a fraction of the target's.
    flip: (K,) left/right keypoint permutation of the category (keypoint i of a mirrored image is
        keypoint ``flip[i]``), needed by the pose-variant losses; None without a table.
    """

    source: torch.Tensor
    target: torch.Tensor
    source_keypoints: torch.Tensor
    target_keypoints: torch.Tensor
    source_visible: torch.Tensor
    target_visible: torch.Tensor
    source_size: float
    target_size: float
    flip: torch.Tensor | None = None

    @property
    def valid(self) -> torch.Tensor:
        """(K,) keypoints visible in both images."""
        return self.source_visible & self.target_visible


def reference_size(ann: ImageAnnotation, normalisation: str) -> float:
    """PCK reference length of one image: max side of its box ("bbox") or of the image ("image")."""
    if normalisation == "image":
        return float(max(ann.size))
    if normalisation != "bbox":
        raise ValueError(f"normalisation must be 'bbox' or 'image', got {normalisation!r}")
    box = ann.bbox if ann.bbox is not None else keypoint_bbox(ann.keypoints, ann.visible)
    return float(max(box[2] - box[0], box[3] - box[1]))


def load_pair_sample(pair: Pair, normalisation: str = "bbox", flip: torch.Tensor | None = None) -> PairSample:
    """Read both images of a dataset pair and convert its annotations to tensors (``flip``: see PairSample)."""

    def keypoints(ann: ImageAnnotation) -> tuple[torch.Tensor, torch.Tensor]:
        visible = torch.from_numpy(np.asarray(ann.visible, dtype=bool))
        kps = torch.from_numpy(np.asarray(ann.keypoints, dtype=np.float32)).clone()
        kps[~visible] = float("nan")
        return kps, visible

    if pair.source.num_keypoints != pair.target.num_keypoints:
        raise ValueError(f"pair {pair.source.path} / {pair.target.path}: different keypoint counts "
                         f"({pair.source.num_keypoints} vs {pair.target.num_keypoints})")
    src_kps, src_vis = keypoints(pair.source)
    tgt_kps, tgt_vis = keypoints(pair.target)
    return PairSample(
        source=load_image(pair.source.path, "source image"),
        target=load_image(pair.target.path, "target image"),
        source_keypoints=src_kps,
        target_keypoints=tgt_kps,
        source_visible=src_vis,
        target_visible=tgt_vis,
        source_size=reference_size(pair.source, normalisation),
        target_size=reference_size(pair.target, normalisation),
        flip=flip,
    )
