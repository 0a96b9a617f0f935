"""PF-Willow (Ham et al., "Proposal Flow", CVPR 2016): the standard 900 test pairs.

Layout: ``<root>/<sub-folder>/<name>.png`` with ``<name>.mat`` beside each image holding
``pts_coord`` (2 × 10, MATLAB 1-based pixel coordinates, all 10 keypoints visible). The 10
sub-folders (``car(G)``, ``duck(S)``, …) each give all 10 · 9 = 90 ordered pairs of their images.
The category of a pair is its sub-folder. There is no object box: PCK uses the keypoint box.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from .base import ImageAnnotation, Pair, PairDataset, keypoint_bbox
from .files import image_size, read_mat, require_dir, require_file

NUM_KEYPOINTS = 10
ANNOTATION_OFFSET = 1.0  # the .mat values are MATLAB 1-based pixels: geocorr coordinate = value - 1


def load_willow_image(image_path: Path, category: str) -> ImageAnnotation:
    """One PF-Willow image and its 10 keypoints (converted to 0-based pixel centres)."""
    mat_path = require_file(image_path.with_suffix(".mat"), f"PF-Willow annotation of {image_path.name}")
    coords = read_mat(mat_path).get("pts_coord")
    if coords is None or coords.shape != (2, NUM_KEYPOINTS):
        shape = None if coords is None else coords.shape
        raise ValueError(f"{mat_path}: expected 'pts_coord' of shape (2, {NUM_KEYPOINTS}), got {shape}")
    keypoints = coords.T.astype(np.float64) - ANNOTATION_OFFSET
    if not np.isfinite(keypoints).all():
        raise ValueError(f"{mat_path}: 'pts_coord' holds NaN or inf ({int((~np.isfinite(keypoints)).sum())} of "
                         f"{keypoints.size} values); PF-Willow keypoints are all annotated")
    visible = np.ones(NUM_KEYPOINTS, dtype=bool)
    return ImageAnnotation(
        path=image_path,
        keypoints=keypoints,
        visible=visible,
        size=image_size(image_path),
        category=category,
        bbox=keypoint_bbox(keypoints, visible),
    )


def load_pf_willow(root: str | Path, split: str = "test") -> PairDataset:
    """The PF-Willow test pairs: all ordered pairs of distinct images within each sub-folder."""
    if split != "test":
        raise ValueError(f"PF-Willow has only a 'test' split, got split={split!r}")
    root = require_dir(root, "PF-Willow root")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"PF-Willow root {root} has no sub-folders (expected car(G), duck(S), …)")
    pairs = []
    for folder in folders:
        images = [load_willow_image(p, folder.name) for p in sorted(folder.glob("*.png"))]
        if len(images) < 2:
            raise ValueError(f"PF-Willow folder {folder} holds {len(images)} .png image(s); need at least 2")
        pairs += [Pair(src, trg, folder.name) for src, trg in itertools.permutations(images, 2)]
    names = [f"kp{i}" for i in range(NUM_KEYPOINTS)]
    return PairDataset(
        name="pf-willow",
        split="test",
        pairs=pairs,
        keypoint_names={folder.name: names for folder in folders},
        annotation_offset=ANNOTATION_OFFSET,
    )
