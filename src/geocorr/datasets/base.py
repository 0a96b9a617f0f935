"""The data model every keypoint dataset loader returns.

Coordinates are pixels in the original image, pixel-centre convention: ``(x, y) = (0, 0)`` is the
centre of the top-left pixel, so an image of width W spans ``[-0.5, W - 0.5]`` horizontally.
Keypoints are indexed by the dataset's own 0-based keypoint ids; a keypoint that is not annotated
in an image has ``visible = False`` and its coordinates are NaN.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

COORDINATES = ("pixel-centre", "as-annotated")


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
    annotation_offset: float = 0.0  # annotation file value - geocorr coordinate (1.0: the 1-based PF files)
    pairwise_keypoints: bool = False  # keypoints are listed per pair (PF-Pascal): no other pair of its images

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index):
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


def _shift(ann: ImageAnnotation, offset: float) -> ImageAnnotation:
    bbox = None if ann.bbox is None else np.asarray(ann.bbox, np.float64) + offset
    return replace(ann, keypoints=np.asarray(ann.keypoints, np.float64) + offset, bbox=bbox)


def with_coordinates(dataset: PairDataset, coordinates: str) -> PairDataset:
    """``dataset`` with its keypoints (and boxes) read in the convention ``coordinates``.

    ``"pixel-centre"``: geocorr's convention, what every loader returns (PF-Willow/PF-Pascal: file
    value − 1; the other datasets: the value). ``"as-annotated"``: the file's values as they are,
    read as the official evaluation codes read them, with 0 on the image's left/top edge: in
    geocorr's pixel-centre frame that is ``value − 0.5`` for every dataset. Distances between
    keypoints and boxes' sizes do not change; only the offset to the image grid does.
    """
    if coordinates not in COORDINATES:
        raise ValueError(f"coordinates must be one of {COORDINATES}, got {coordinates!r}")
    if coordinates == "pixel-centre":
        return dataset
    offset = dataset.annotation_offset - 0.5
    shifted: dict[int, ImageAnnotation] = {}

    def moved(ann: ImageAnnotation) -> ImageAnnotation:
        if id(ann) not in shifted:
            shifted[id(ann)] = _shift(ann, offset)
        return shifted[id(ann)]

    pairs = [replace(p, source=moved(p.source), target=moved(p.target)) for p in dataset.pairs]
    return replace(dataset, pairs=pairs, annotation_offset=0.5)


def outside_image(ann: ImageAnnotation, margin: float = 0.5) -> np.ndarray:
    """(K,) bool: visible keypoints more than ``margin`` px outside the image's extent
    ``[-0.5, W - 0.5] × [-0.5, H - 0.5]`` (the default tolerates annotations on the far edge)."""
    width, height = ann.size
    pts = np.asarray(ann.keypoints, np.float64)
    with np.errstate(invalid="ignore"):
        out = ((pts[:, 0] < -0.5 - margin) | (pts[:, 0] > width - 0.5 + margin)
               | (pts[:, 1] < -0.5 - margin) | (pts[:, 1] > height - 0.5 + margin))
    return out & np.asarray(ann.visible, bool)


def check_keypoints_in_image(dataset: PairDataset, clip: bool = False) -> tuple[PairDataset, int]:
    """Refuse (or, with ``clip``, clip into the image and count) keypoints outside their image.

    An annotation that does not fit its image (e.g. a resized image with the original annotation)
    would otherwise give wrong PCK silently. Returns the dataset (clipped where asked) and the
    number of clipped keypoint annotations (each image counted once). ValueError names the image.
    """
    fixed: dict[int, ImageAnnotation] = {}
    clipped = 0
    for ann in (a for pair in dataset.pairs for a in (pair.source, pair.target)):
        if id(ann) in fixed:
            continue
        out = outside_image(ann)
        fixed[id(ann)] = ann
        if not out.any():
            continue
        if not clip:
            k = int(np.flatnonzero(out)[0])
            x, y = ann.keypoints[k]
            raise ValueError(
                f"{ann.path}: keypoint {k} at ({x:.1f}, {y:.1f}) lies outside the {ann.size[0]}×{ann.size[1]} "
                f"image ({int(out.sum())} such keypoint(s)): the annotation does not fit this image file; "
                f"pass --clip-keypoints to clip and count them")
        width, height = ann.size
        pts = np.array(ann.keypoints, np.float64)
        pts[out] = np.clip(pts[out], -0.5, [width - 0.5, height - 0.5])
        clipped += int(out.sum())
        fixed[id(ann)] = replace(ann, keypoints=pts)
    pairs = [replace(p, source=fixed[id(p.source)], target=fixed[id(p.target)]) for p in dataset.pairs]
    return replace(dataset, pairs=pairs), clipped
