"""Square crops: the method sees every image as its object box resized to S×S (S = 128).

Boxes are ``(x0, y0, x1, y1)`` in pixel-centre coordinates (as in :mod:`geocorr.datasets.base`)
and are snapped outwards to whole pixels; the crop then covers the continuous extent
``[ix0 - 0.5, ix1 + 0.5]`` which maps onto ``[-0.5, S - 0.5]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...datasets.base import ImageAnnotation, keypoint_bbox
from ...images import load_image

__all__ = ["Crop", "load_crops"]


@dataclass(frozen=True)
class Crop:
    """A pixel-aligned box (first/last column ``ix0..ix1`` and row ``iy0..iy1``) resized to size×size."""

    ix0: int
    iy0: int
    ix1: int
    iy1: int
    size: int = 128

    @classmethod
    def from_box(cls, box, image_hw: tuple[int, int], size: int = 128) -> Crop:
        """box: (x0, y0, x1, y1) or None for the whole image; clipped to the image."""
        height, width = image_hw
        if box is None:
            return cls(0, 0, width - 1, height - 1, size)
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 >= x0 and y1 >= y0) or any(math.isnan(v) for v in (x0, y0, x1, y1)):
            raise ValueError(f"box must be (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0, got {tuple(box)}")
        ix0, iy0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        ix1, iy1 = min(math.ceil(x1), width - 1), min(math.ceil(y1), height - 1)
        if ix1 < ix0 or iy1 < iy0:
            raise ValueError(f"box {tuple(box)} lies outside the {width}×{height} image")
        return cls(ix0, iy0, ix1, iy1, size)

    @property
    def scale(self) -> tuple[float, float]:
        """Crop pixels per image pixel along (x, y)."""
        return self.size / (self.ix1 - self.ix0 + 1), self.size / (self.iy1 - self.iy0 + 1)

    def apply(self, image: Tensor) -> Tensor:
        """Image 3×H×W -> 3×size×size (bilinear, anti-aliased)."""
        if image.ndim != 3:
            raise ValueError(f"image must have shape 3×H×W, got {tuple(image.shape)}")
        patch = image[:, self.iy0 : self.iy1 + 1, self.ix0 : self.ix1 + 1].unsqueeze(0).float()
        resized = F.interpolate(patch, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                antialias=True)
        return resized[0].clamp(0, 1)

    def apply_labels(self, labels: Tensor) -> Tensor:
        """Label map H×W (long) -> size×size, nearest label at each crop pixel centre."""
        if labels.ndim != 2:
            raise ValueError(f"labels must have shape H×W, got {tuple(labels.shape)}")
        centres = torch.arange(self.size, dtype=torch.float64)
        xs = self.from_crop(torch.stack([centres, torch.zeros_like(centres)], 1))[:, 0]
        ys = self.from_crop(torch.stack([torch.zeros_like(centres), centres], 1))[:, 1]
        rows = ys.round().long().clamp(0, labels.shape[0] - 1)
        cols = xs.round().long().clamp(0, labels.shape[1] - 1)
        return labels[rows[:, None], cols[None, :]]

    def to_crop(self, points: Tensor) -> Tensor:
        """Image pixel coordinates N×2 -> crop pixel coordinates N×2."""
        sx, sy = self.scale
        origin = points.new_tensor([self.ix0 - 0.5, self.iy0 - 0.5])
        return (points - origin) * points.new_tensor([sx, sy]) - 0.5

    def from_crop(self, points: Tensor) -> Tensor:
        """Crop pixel coordinates N×2 -> image pixel coordinates N×2."""
        sx, sy = self.scale
        origin = points.new_tensor([self.ix0 - 0.5, self.iy0 - 0.5])
        return (points + 0.5) / points.new_tensor([sx, sy]) + origin


def load_crops(annotations: Sequence[ImageAnnotation], size: int = 128) -> Tensor:
    """Each annotated image cut to its box (the keypoint box when it has none) -> N×3×size×size."""
    crops = []
    for ann in annotations:
        image = load_image(ann.path, str(ann.path))
        box = ann.bbox if ann.bbox is not None else keypoint_bbox(ann.keypoints, ann.visible)
        crops.append(Crop.from_box(box, (image.shape[-2], image.shape[-1]), size).apply(image))
    return torch.stack(crops)
