"""SPair-71k (Min et al., 2019): 18 categories, keypoint ids and names, boxes, difficulty flags.

Official layout under ``root`` (the ``SPair-71k`` folder)::

    PairAnnotation/{trn,val,test}/<id>-<source>-<target>:<category>.json
    ImageAnnotation/<category>/<image>.json      # all keypoints of one image ("kps": id -> [x, y] | null)
    Layout/{large,small}/{trn,val,test}.txt      # pair-file stems of a layout
    JPEGImages/<category>/<image>.jpg

The published protocols evaluate every pair file of ``PairAnnotation/<split>`` (``layout=None``);
``layout="small"``/``"large"`` reads the pair list of ``Layout/<layout>/<split>.txt`` instead.
Keypoints are the image annotation's (all of them, so hidden ones are known too), used as given
(integer pixels); K per category is its number of names in the official keypoint-name table.
Pair flags (viewpoint/scale variation, truncation, occlusion, mirror) go to ``Pair.meta``; image
flags (pose, truncated, occluded, difficult, azimuth) to ``ImageAnnotation.meta``.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .base import ImageAnnotation, Pair, PairDataset
from .files import require_dir, require_file
from .symmetry import categories as symmetry_categories
from .symmetry import symmetry_table

SPLITS = ("trn", "val", "test")
LAYOUTS = ("large", "small")
PAIR_FLAGS = ("viewpoint_variation", "scale_variation", "truncation", "occlusion", "mirror")
IMAGE_FLAGS = ("pose", "truncated", "occluded", "difficult", "azimuth_id")


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(require_file(path, what).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def load_spair_image(root: Path, category: str, image_name: str) -> ImageAnnotation:
    """One image of SPair-71k with all K keypoints of its category."""
    stem = Path(image_name).stem
    record = _read_json(root / "ImageAnnotation" / category / f"{stem}.json", "SPair-71k image annotation")
    num = len(symmetry_table("spair", category)["names"])
    keypoints = np.full((num, 2), np.nan)
    for key, xy in record["kps"].items():
        if xy is None:
            continue
        if not 0 <= int(key) < num:
            raise ValueError(f"ImageAnnotation/{category}/{stem}.json: keypoint id {key} out of range "
                             f"({category} has {num} keypoints)")
        keypoints[int(key)] = xy
    return ImageAnnotation(
        path=root / "JPEGImages" / category / record.get("filename", image_name),
        keypoints=keypoints,
        visible=~np.isnan(keypoints[:, 0]),
        size=(int(record["image_width"]), int(record["image_height"])),
        category=category,
        bbox=np.asarray(record["bndbox"], dtype=np.float64),
        meta={k: record[k] for k in IMAGE_FLAGS if k in record},
    )


def _pair_files(root: Path, split: str, layout: str | None) -> list[Path]:
    folder = require_dir(root / "PairAnnotation" / split, f"SPair-71k {split} pair annotations")
    if layout is None:
        return sorted(folder.glob("*.json"))
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} or None, got {layout!r}")
    listing = require_file(root / "Layout" / layout / f"{split}.txt", f"SPair-71k {layout} layout")
    return [folder / f"{line.strip()}.json" for line in listing.read_text().splitlines() if line.strip()]


def load_spair(
    root: str | Path, split: str = "test", layout: str | None = None, categories: list[str] | None = None
) -> PairDataset:
    """SPair-71k pairs of ``split`` ("trn", "val", "test"), optionally of some categories only."""
    if split not in SPLITS:
        raise ValueError(f"SPair-71k split must be one of {SPLITS}, got {split!r}")
    root = require_dir(root, "SPair-71k root")
    known = symmetry_categories("spair")
    unknown = sorted(set(categories or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown SPair-71k categories {unknown}; known: {', '.join(known)}")
    images: dict[tuple[str, str], ImageAnnotation] = {}
    pairs = []
    for path in _pair_files(root, split, layout):
        record = _read_json(path, "SPair-71k pair annotation")
        category = record["category"]
        if category not in known:
            raise ValueError(f"{path}: unknown category {category!r}")
        if categories is not None and category not in categories:
            continue
        annotations = []
        for name in (record["src_imname"], record["trg_imname"]):
            if (category, name) not in images:
                images[(category, name)] = load_spair_image(root, category, name)
            annotations.append(images[(category, name)])
        meta = {k: record[k] for k in PAIR_FLAGS if k in record}
        meta["pair_id"] = record.get("pair_id")
        meta["kps_ids"] = [int(k) for k in record.get("kps_ids", [])]
        for key in ("src_bndbox", "trg_bndbox"):
            if key in record:
                meta[key] = np.asarray(record[key], dtype=np.float64)
        pairs.append(Pair(annotations[0], annotations[1], category, meta))
    used = sorted({p.category for p in pairs})
    return PairDataset(
        name="spair",
        split=split,
        pairs=pairs,
        keypoint_names={c: list(symmetry_table("spair", c)["names"]) for c in used},
        symmetry={c: symmetry_table("spair", c) for c in used},
    )


def with_pair_boxes(dataset: PairDataset) -> PairDataset:
    """``dataset`` with each pair's boxes taken from the pair annotation (``src_bndbox``/``trg_bndbox``)
    instead of the image annotation, as GeoAware-SC does (``utils/utils_dataset.py`` ``load_spair_data``).
    A pair file without them keeps the image's box."""
    pairs = []
    for pair in dataset.pairs:
        source, target = pair.source, pair.target
        if "src_bndbox" in pair.meta:
            source = replace(source, bbox=pair.meta["src_bndbox"])
        if "trg_bndbox" in pair.meta:
            target = replace(target, bbox=pair.meta["trg_bndbox"])
        pairs.append(replace(pair, source=source, target=target))
    return replace(dataset, pairs=pairs)
