"""The data model every keypoint dataset loader returns.

Coordinates are pixels in the original image, pixel-centre convention: ``(x, y) = (0, 0)`` is the
centre of the top-left pixel, so an image of width W spans ``[-0.5, W - 0.5]`` horizontally.
Keypoints are indexed by the dataset's own 0-based keypoint ids; a keypoint that is not annotated
in an image has ``visible = False`` and its coordinates are NaN.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ImageAnnotation:
    """One annotated image.

    path: image file.
    keypoints: (K, 2) float array of (x, y) pixel coordinates, NaN where not visible.
    visible: (K,) bool array.
    size: (width, height) of the image in pixels.
    bbox: (4,) float array (x0, y0, x1, y1) of the object box, or None when the dataset has none
        (use :func:`keypoint_bbox` then).
    category: the object class.
    """

    path: Path
    keypoints: np.ndarray
    visible: np.ndarray
    size: tuple[int, int]
    category: str
    bbox: np.ndarray | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        kps, vis = np.asarray(self.keypoints), np.asarray(self.visible)
        if kps.ndim != 2 or kps.shape[1] != 2:
            raise ValueError(f"{self.path}: keypoints must have shape (K, 2), got {kps.shape}")
        if vis.shape != (kps.shape[0],):
            raise ValueError(f"{self.path}: visible must have shape ({kps.shape[0]},), got {vis.shape}")

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])


@dataclass(frozen=True)
class Pair:
    """A source/target pair of images of the same category (same keypoint ids)."""

    source: ImageAnnotation
    target: ImageAnnotation
    category: str
    meta: dict = field(default_factory=dict, compare=False)


@dataclass
class PairDataset(Sequence[Pair]):
    """An ordered list of pairs plus the per-category keypoint facts a method or metric needs.

    keypoint_names: category -> list of K names.
    symmetry: category -> {"twin": [...], "flip": [...], "geo_groups": [[...], ...]} where known
        (see :mod:`geocorr.datasets.symmetry`).
    """

    name: str
    split: str
    pairs: list[Pair]
    keypoint_names: dict[str, list[str]] = field(default_factory=dict)
    symmetry: dict[str, dict] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index):  # type: ignore[override]
        return self.pairs[index]

    @property
    def categories(self) -> list[str]:
        return sorted({p.category for p in self.pairs})

    def images(self) -> list[ImageAnnotation]:
        """Every distinct image of the pairs, in first-seen order (features are computed once each)."""
        seen: dict[Path, ImageAnnotation] = {}
        for pair in self.pairs:
            for ann in (pair.source, pair.target):
                seen.setdefault(Path(ann.path), ann)
        return list(seen.values())


def keypoint_bbox(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Tight box (x0, y0, x1, y1) around the visible keypoints ((K, 2), (K,)) -> (4,)."""
    pts = np.asarray(keypoints)[np.asarray(visible, dtype=bool)]
    if len(pts) == 0:
        raise ValueError("cannot build a keypoint bounding box: no visible keypoint")
    return np.concatenate([pts.min(0), pts.max(0)]).astype(np.float64)
