"""PF-Pascal (Ham et al., "Proposal Flow", TPAMI 2018) with the standard pair lists.

Layout under ``root``::

    PF-dataset-PASCAL/JPEGImages/<image>.jpg
    {train,val,test}_pairs_pf_pascal.csv     # the standard lists (or pass ``csv=``)

Each csv row: ``source_image,target_image,class,XA,YA,XB,YB`` — image paths relative to ``root``,
the 1-based PASCAL VOC class index, and ``;``-separated keypoint coordinates (MATLAB 1-based
pixels, converted here to 0-based pixel centres) of the pair's matching keypoints. Keypoints have
no ids shared across pairs: each pair lists its own K points, all visible in both images. There
is no object box; the bbox normalisation uses the tight box of the keypoints.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .base import ImageAnnotation, Pair, PairDataset, keypoint_bbox
from .files import image_size, require_dir, require_file

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
SPLITS = ("train", "val", "test")
COLUMNS = ("source_image", "target_image", "class", "XA", "YA", "XB", "YB")
ANNOTATION_OFFSET = 1.0  # the csv values are MATLAB 1-based pixels: geocorr coordinate = value - 1


def _coords(text: str, where: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split(";")], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{where}: expected ';'-separated numbers, got {text[:40]!r}") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: keypoint coordinates hold NaN or inf ({text[:40]!r})")
    return values


def _annotation(root: Path, rel: str, xs: np.ndarray, ys: np.ndarray, category: str,
                sizes: dict[str, tuple[int, int]]) -> ImageAnnotation:
    path = root / rel
    if rel not in sizes:
        sizes[rel] = image_size(path)
    keypoints = np.stack([xs, ys], axis=1) - ANNOTATION_OFFSET
    visible = np.ones(len(keypoints), dtype=bool)
    return ImageAnnotation(path=path, keypoints=keypoints, visible=visible, size=sizes[rel],
                           category=category, bbox=keypoint_bbox(keypoints, visible))


def load_pf_pascal(root: str | Path, split: str = "test", csv_file: str | Path | None = None) -> PairDataset:
    """PF-Pascal pairs of ``split`` from ``<root>/<split>_pairs_pf_pascal.csv`` (or ``csv_file``)."""
    if split not in SPLITS:
        raise ValueError(f"PF-Pascal split must be one of {SPLITS}, got {split!r}")
    root = require_dir(root, "PF-Pascal root")
    listing = require_file(csv_file or root / f"{split}_pairs_pf_pascal.csv", "PF-Pascal pair list")
    with listing.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not set(COLUMNS) <= set(rows[0]):
        raise ValueError(f"{listing}: expected the columns {', '.join(COLUMNS)}, got {', '.join(rows[0])}")
    sizes: dict[str, tuple[int, int]] = {}
    pairs = []
    for line, row in enumerate(rows, start=2):
        where = f"{listing}, line {line}"
        index = int(row["class"])
        if not 1 <= index <= len(VOC_CLASSES):
            raise ValueError(f"{where}: class must be a VOC class index 1..{len(VOC_CLASSES)}, got {index}")
        category = VOC_CLASSES[index - 1]
        xa, ya, xb, yb = (_coords(row[c], f"{where}, column {c}") for c in ("XA", "YA", "XB", "YB"))
        if not len(xa) == len(ya) == len(xb) == len(yb):
            raise ValueError(f"{where}: XA, YA, XB, YB must list the same number of keypoints")
        source = _annotation(root, row["source_image"], xa, ya, category, sizes)
        target = _annotation(root, row["target_image"], xb, yb, category, sizes)
        pairs.append(Pair(source, target, category))
    return PairDataset(name="pf-pascal", split=split, pairs=pairs, annotation_offset=ANNOTATION_OFFSET,
                       pairwise_keypoints=True)
