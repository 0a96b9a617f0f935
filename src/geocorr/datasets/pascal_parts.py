"""PASCAL-Part (Chen et al., CVPR 2014) for part segmentation from features, as GECO evaluates it.

Official layout under ``root``::

    Annotations_Part/<image id>.mat   # struct ``anno``: ``objects`` (struct array: ``class``,
                                      #   ``class_ind``, ``mask``, ``parts`` (struct array:
                                      #   ``part_name``, ``mask``))
    JPEGImages/<image id>.jpg         # the PASCAL VOC 2010 images

For one category (GECO evaluates its multi-part ones, :data:`CATEGORIES`; any PASCAL VOC class
of :data:`CLASSES` loads, e.g. ``car`` for cyclecorr's segmentation transfer), the images
holding exactly one object of that category are used (several instances would make a pixel's
part ambiguous between objects), sorted by image id: the first ``num_train`` (100) fit the
classifier, the rest are the test set. Classes are the category's part names as annotated
(``leye``, ``rfleg`` …), sorted, with numbered instances merged (``wheel_1``, ``wheel_2`` -> ``wheel``,
as the vehicle classes are annotated); each pixel is labelled with its part, ``-1`` where the object
has no part there and outside the object (ignored). ``oriented`` parts are those with a left/right
mirror (``l…`` ↔ ``r…``). ``bbox`` is the object mask's box (parts and unlabelled object pixels).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import read_mat, require_dir

CATEGORIES = ("bird", "cat", "cow", "dog", "horse", "sheep", "person")  # GECO's multi-part categories
CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
IGNORE = -1


@dataclass
class PartImage:
    """One image: ``labels`` (H, W) int, index into the dataset's ``part_names``, −1 = ignored;
    ``bbox``: the object's box (x0, y0, x1, y1) in pixels, None when unknown."""

    path: Path
    labels: np.ndarray
    category: str
    bbox: tuple[int, int, int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.labels.shape[1]), int(self.labels.shape[0])


@dataclass
class PartDataset:
    """Train and test images of one category plus the part vocabulary."""

    category: str
    part_names: list[str]
    train: list[PartImage]
    test: list[PartImage]
    oriented: list[int] = field(default_factory=list)  # class ids of left/right parts


def _objects(mat_path: Path) -> list:
    contents = read_mat(mat_path, squeeze_me=True, struct_as_record=False)
    try:
        return list(np.atleast_1d(contents["anno"].objects))
    except (KeyError, AttributeError) as err:
        raise ValueError(f"{mat_path}: not a PASCAL-Part annotation (struct anno.objects): {err}") from None


def _parts(obj) -> list:
    parts = getattr(obj, "parts", [])
    return [p for p in np.atleast_1d(parts) if hasattr(p, "part_name")]


def part_class(name: str) -> str:
    """A part's class name: the annotated name without its instance number (``door_2`` -> ``door``)."""
    return re.sub(r"_\d+$", "", str(name))


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def oriented_parts(part_names: list[str]) -> list[int]:
    """Ids of the parts named ``l…``/``r…`` whose mirrored name is also a part."""
    names = set(part_names)
    mirror = {"l": "r", "r": "l"}
    return [i for i, n in enumerate(part_names) if n[:1] in mirror and mirror[n[0]] + n[1:] in names]


def load_pascal_parts(root: str | Path, category: str = "cat", num_train: int = 100,
                      max_test: int | None = None) -> PartDataset:
    """The part-segmentation set of ``category`` (see the module docstring)."""
    if category not in CLASSES:
        raise ValueError(f"PASCAL-Part category must be one of {CLASSES}, got {category!r}")
    if num_train < 1:
        raise ValueError(f"num_train must be >= 1, got {num_train}")
    root = require_dir(root, "PASCAL-Part root")
    annotations = require_dir(root / "Annotations_Part", "PASCAL-Part annotations")
    selected = []
    for mat_path in sorted(annotations.glob("*.mat")):
        objects = [o for o in _objects(mat_path) if getattr(o, "class", None) == category]
        if len(objects) == 1 and _parts(objects[0]):
            selected.append((mat_path, objects[0]))
    names = sorted({part_class(p.part_name) for _, obj in selected for p in _parts(obj)})
    index = {n: i for i, n in enumerate(names)}
    images = []
    for mat_path, obj in selected:
        labels = np.full(np.asarray(obj.mask).shape, IGNORE, dtype=np.int64)
        for part in _parts(obj):
            labels[np.asarray(part.mask) > 0] = index[part_class(part.part_name)]
        box = _mask_box(np.asarray(obj.mask) > 0) or _mask_box(labels != IGNORE)
        images.append(PartImage(root / "JPEGImages" / f"{mat_path.stem}.jpg", labels, category, box))
    if len(images) <= num_train:
        raise ValueError(f"PASCAL-Part {category}: {len(images)} single-object image(s) with parts under "
                         f"{annotations}; need more than num_train={num_train}")
    test = images[num_train:] if max_test is None else images[num_train : num_train + max_test]
    return PartDataset(category, names, images[:num_train], test, oriented_parts(names))
