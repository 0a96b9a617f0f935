"""CUB-200-2011 (Wah et al., 2011): 15 bird parts, as GECO evaluates it.

Official layout under ``root`` (the ``CUB_200_2011`` folder)::

    images.txt              <image_id> <relative path>
    image_class_labels.txt  <image_id> <class_id>
    classes.txt             <class_id> <name>
    train_test_split.txt    <image_id> <is_training_image>
    bounding_boxes.txt      <image_id> <x> <y> <width> <height>
    parts/parts.txt         <part_id> <part name>              (15 parts, ids 1..15)
    parts/part_locs.txt     <image_id> <part_id> <x> <y> <visible>
    images/<relative path>

Pairs (GECO's protocol: 10,000 seeded random test pairs): ordered pairs of two distinct images of
the split drawn uniformly with ``numpy.random.default_rng(seed)`` (seed 0), without repeats. All
birds share the 15 parts, so a pair may mix species; the category of every pair is ``"bird"``
(the species is in ``ImageAnnotation.meta``). Coordinates are used as given (pixels); part ids
become 0-based keypoint ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ImageAnnotation, Pair, PairDataset
from .files import image_size, require_dir, require_file
from .symmetry import symmetry_table

NUM_PARTS = 15
SPLITS = ("train", "test")
CATEGORY = "bird"


def _table(path: Path, what: str, columns: int) -> list[list[str]]:
    """Rows of a whitespace-separated CUB file; the last column keeps its spaces."""
    rows = []
    for line_no, line in enumerate(require_file(path, what).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = line.split(maxsplit=columns - 1)
        if len(row) != columns:
            raise ValueError(f"{path}, line {line_no}: expected {columns} columns, got {line!r}")
        rows.append(row)
    return rows


def load_cub(root: str | Path, split: str = "test", num_pairs: int = 10_000, seed: int = 0) -> PairDataset:
    """``num_pairs`` random ordered pairs of CUB-200-2011 ``split`` images (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"CUB-200-2011 split must be one of {SPLITS}, got {split!r}")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}")
    root = require_dir(root, "CUB-200-2011 root")
    paths = dict(_table(root / "images.txt", "CUB images.txt", 2))
    labels = dict(_table(root / "image_class_labels.txt", "CUB image_class_labels.txt", 2))
    classes = dict(_table(root / "classes.txt", "CUB classes.txt", 2))
    is_train = dict(_table(root / "train_test_split.txt", "CUB train_test_split.txt", 2))
    boxes = {r[0]: [float(v) for v in r[1:]] for r in _table(root / "bounding_boxes.txt", "CUB bounding_boxes.txt", 5)}
    parts = _table(root / "parts" / "parts.txt", "CUB parts/parts.txt", 2)
    if len(parts) != NUM_PARTS:
        raise ValueError(f"{root / 'parts' / 'parts.txt'}: expected {NUM_PARTS} parts, got {len(parts)}")
    keypoints = {i: np.full((NUM_PARTS, 2), np.nan) for i in paths}
    for image_id, part_id, x, y, visible in _table(root / "parts" / "part_locs.txt", "CUB parts/part_locs.txt", 5):
        if image_id in keypoints and int(float(visible)):
            keypoints[image_id][int(part_id) - 1] = (float(x), float(y))
    wanted = "1" if split == "train" else "0"
    ids = sorted((i for i in paths if is_train.get(i) == wanted), key=int)
    if len(ids) < 2:
        raise ValueError(f"CUB-200-2011 {split} split has {len(ids)} image(s); need at least 2")
    rng = np.random.default_rng(seed)
    total = len(ids) * (len(ids) - 1)
    codes = rng.choice(total, size=min(num_pairs, total), replace=False)
    chosen = [(c // (len(ids) - 1), c % (len(ids) - 1)) for c in codes.tolist()]
    chosen = [(a, b + (b >= a)) for a, b in chosen]  # ordered pair of distinct indices
    annotations: dict[str, ImageAnnotation] = {}

    def annotation(image_id: str) -> ImageAnnotation:
        if image_id not in annotations:
            path = root / "images" / paths[image_id]
            x, y, w, h = boxes[image_id]
            kps = keypoints[image_id]
            annotations[image_id] = ImageAnnotation(
                path=path, keypoints=kps, visible=~np.isnan(kps[:, 0]), size=image_size(path),
                category=CATEGORY, bbox=np.array([x, y, x + w, y + h]),
                meta={"species": classes.get(labels.get(image_id, ""), "")},
            )
        return annotations[image_id]

    pairs = [Pair(annotation(ids[a]), annotation(ids[b]), CATEGORY) for a, b in chosen]
    table = symmetry_table("cub")
    return PairDataset(name="cub", split=split, pairs=pairs, keypoint_names={CATEGORY: list(table["names"])},
                       symmetry={CATEGORY: table})
