"""AP-10K (Yu et al., NeurIPS 2021 datasets) as GeoAware-SC's correspondence benchmark.

Official layout under ``root``::

    annotations/ap10k-{train,val,test}-split1.json   # COCO keypoints: 17 keypoints, 54 species, 23 families
    data/<file_name>                                  # the images

The benchmark is built as GeoAware-SC (CVPR 2024) builds it (Junyi42/GeoAware-SC @ 99fd6b6,
``prepare_ap10k.ipynb``):

1. merge the three split-1 files (train, test, val); keep the **first** annotation of each image;
   drop crowded images (``crowd_list``: GeoAware's ``ap-10k_is_crowd.txt`` of zero-padded image ids;
   without it, the annotation's ``iscrowd`` flag) and those with < 3 labelled keypoints
   (``num_keypoints``);
2. per species, order its images by image id (GeoAware names each annotation file by the zero-padded
   image id — the merged record's ``id`` is the image's — and takes the ``os.walk`` order, which
   depends on the file system: we sort): the last 30 → test, the 20 before → val, the rest → train;
3. a pair needs Σ (v_s / 2)(v_t / 2) ≥ 3 over the keypoints (v ∈ {0, 1, 2}, GeoAware's rule);
4. ``setting="intra-species"``: test/val: every valid unordered pair of images of one species, its
   direction (which image is the source) drawn at random as GeoAware's shuffle does; train: 50·n
   valid pairs per species (n = its train images), sampled; ``"cross-species"``: per family, 900
   (test) / 400 (val) valid pairs of images of two different species of that family;
   ``"cross-family"``: per unordered pair of families, 30 (test) / 20 (val) valid pairs, one image
   from each. Sampling and directions: ``numpy.random.default_rng(seed)``, seed 42, without
   replacement (fewer when fewer valid pairs exist). The rules and counts are GeoAware's; the
   sampled pairs and directions are not the authors' files (their ``random`` sequence follows the
   file-system order): write the pair list of a run (``geocorr eval --out``) to rerun the same pairs.

Visibility: a keypoint counts as visible when ``v >= min_visibility``: 1 (GeoAware: v / 2 > 0) or
2 (GECO: v / 2 > 0.5, so v = 1 is hidden). Keypoints are COCO pixel coordinates, used as given;
boxes are ``[x, y, w, h]`` → (x0, y0, x1, y1). A pair's category is the species (intra-species) or
the source image's family (cross settings).
"""
from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from .base import ImageAnnotation, Pair, PairDataset
from .files import require_dir, require_file
from .symmetry import symmetry_table

NUM_KEYPOINTS = 17
SPLITS = ("train", "val", "test")
SETTINGS = ("intra-species", "cross-species", "cross-family")
TEST_PER_SPECIES, VAL_PER_SPECIES = 30, 20
TRAIN_PAIRS_PER_IMAGE = 50
CROSS_SPECIES_PAIRS = {"test": 900, "val": 400}
CROSS_FAMILY_PAIRS = {"test": 30, "val": 20}
MIN_VISIBLE = 3


def _crowded(path: Path | None) -> set[int] | None:
    """Image ids of GeoAware's crowd list (one zero-padded id per line), or None."""
    if path is None:
        return None
    ids = set()
    for line_no, line in enumerate(require_file(path, "AP-10K crowd list").read_text().splitlines(), start=1):
        if line.strip():
            try:
                ids.add(int(line.strip()))
            except ValueError:
                raise ValueError(f"{path}, line {line_no}: expected an image id, got {line.strip()!r}") from None
    return ids


def _load_coco(root: Path, crowd_list: Path | None = None, min_visibility: int = 1) -> list[ImageAnnotation]:
    """Every usable image of the merged split-1 files (step 1), with species and family in meta."""
    if min_visibility not in (1, 2):
        raise ValueError(f"min_visibility must be 1 (GeoAware) or 2 (GECO), got {min_visibility}")
    crowded = _crowded(crowd_list)
    images: dict[int, dict] = {}
    first: dict[int, dict] = {}
    categories: dict[int, dict] = {}
    for part in ("train", "test", "val"):  # the notebook's merge order
        path = require_file(root / "annotations" / f"ap10k-{part}-split1.json", "AP-10K annotation file")
        try:
            coco = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        for key in ("images", "annotations", "categories"):
            if key not in coco:
                raise ValueError(f"{path}: not a COCO keypoint file (no {key!r})")
        images.update({im["id"]: im for im in coco["images"]})
        for ann in coco["annotations"]:
            first.setdefault(ann["image_id"], ann)
        for c in coco["categories"]:
            categories.setdefault(c["id"], c)
    out = []
    for image_id, ann in first.items():
        if image_id not in images or ann.get("category_id") not in categories:
            continue
        is_crowd = image_id in crowded if crowded is not None else bool(ann.get("iscrowd", 0))
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        if kps.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"AP-10K annotation {ann.get('id')}: expected {NUM_KEYPOINTS} keypoints, got {len(kps)}")
        labelled = int(ann.get("num_keypoints", int((kps[:, 2] > 0).sum())))
        if is_crowd or labelled < MIN_VISIBLE:
            continue
        visible = kps[:, 2] >= min_visibility
        image = images[image_id]
        x, y, w, h = ann["bbox"]
        category = categories[ann["category_id"]]
        out.append(ImageAnnotation(
            path=root / "data" / image["file_name"],
            keypoints=np.where(visible[:, None], kps[:, :2], np.nan),
            visible=visible,
            size=(int(image["width"]), int(image["height"])),
            category=category["name"],
            bbox=np.array([x, y, x + w, y + h], dtype=np.float64),
            meta={"family": category["supercategory"], "file_name": image["file_name"],
                  "image_id": int(image_id), "v": kps[:, 2].copy()},
        ))
    return out


def split_images(images: list[ImageAnnotation]) -> dict[str, list[ImageAnnotation]]:
    """Step 2: per species sorted by image id, last 30 → test, 20 before → val, rest → train."""
    by_species = defaultdict(list)
    for image in images:
        by_species[image.category].append(image)
    out: dict[str, list[ImageAnnotation]] = {s: [] for s in SPLITS}
    for species in sorted(by_species):
        ordered = sorted(by_species[species], key=lambda a: a.meta["image_id"])
        cut_test, cut_val = len(ordered) - TEST_PER_SPECIES, len(ordered) - TEST_PER_SPECIES - VAL_PER_SPECIES
        out["test"] += ordered[max(cut_test, 0):]
        out["val"] += ordered[max(cut_val, 0):max(cut_test, 0)]
        out["train"] += ordered[:max(cut_val, 0)]
    return out


def _valid_pairs(first: list[ImageAnnotation], second: list[ImageAnnotation], *, within: bool = False,
                 cross_species: bool = False) -> np.ndarray:
    """(n, 2) index pairs (i into ``first``, j into ``second``) with Σ (v_s / 2)(v_t / 2) ≥ 3.

    within: ``first is second``, keep i < j. cross_species: keep pairs of different species.
    Row-major order (the order of ``itertools.combinations``/``product``).
    """
    if not first or not second:
        return np.zeros((0, 2), dtype=int)
    vis_a = np.stack([a.meta["v"] for a in first]) / 2
    vis_b = np.stack([b.meta["v"] for b in second]) / 2
    ok = vis_a @ vis_b.T >= MIN_VISIBLE
    if within:
        ok = np.triu(ok, k=1)
    if cross_species:
        ok &= np.array([a.category for a in first])[:, None] != np.array([b.category for b in second])[None, :]
    return np.argwhere(ok)


def _sample(valid: np.ndarray, count: int | None, rng) -> np.ndarray:
    """``count`` rows of ``valid`` without replacement, in their order (all when fewer or None)."""
    if count is None or len(valid) <= count:
        return valid
    return valid[np.sort(rng.choice(len(valid), size=count, replace=False))]


def load_ap10k(root: str | Path, split: str = "test", setting: str = "intra-species", seed: int = 42,
               crowd_list: str | Path | None = None, min_visibility: int = 1) -> PairDataset:
    """AP-10K pairs of ``split`` in ``setting`` (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"AP-10K split must be one of {SPLITS}, got {split!r}")
    if setting not in SETTINGS:
        raise ValueError(f"AP-10K setting must be one of {SETTINGS}, got {setting!r}")
    if split == "train" and setting != "intra-species":
        raise ValueError("AP-10K's train split is intra-species only")
    root = require_dir(root, "AP-10K root")
    images = split_images(_load_coco(root, None if crowd_list is None else Path(crowd_list), min_visibility))[split]
    rng = np.random.default_rng(seed)
    groups = defaultdict(list)
    for image in images:
        groups[image.category if setting == "intra-species" else image.meta["family"]].append(image)
    pairs: list[Pair] = []
    if setting == "intra-species":
        for species in sorted(groups):
            members = groups[species]
            count = TRAIN_PAIRS_PER_IMAGE * len(members) if split == "train" else None
            chosen = _sample(_valid_pairs(members, members, within=True), count, rng)
            flip = rng.random(len(chosen)) < 0.5  # GeoAware's shuffle gives each pair a random direction
            pairs += [Pair(members[j], members[i], species) if f else Pair(members[i], members[j], species)
                      for (i, j), f in zip(chosen, flip, strict=True)]
    elif setting == "cross-species":
        for family in sorted(groups):
            members = groups[family]
            valid = _valid_pairs(members, members, within=True, cross_species=True)
            pairs += [Pair(members[i], members[j], family) for i, j in _sample(valid, CROSS_SPECIES_PAIRS[split], rng)]
    else:
        for fam_a, fam_b in itertools.combinations(sorted(groups), 2):
            valid = _valid_pairs(groups[fam_a], groups[fam_b])
            pairs += [Pair(groups[fam_a][i], groups[fam_b][j], fam_a)
                      for i, j in _sample(valid, CROSS_FAMILY_PAIRS[split], rng)]
    table = symmetry_table("ap10k")
    used = sorted({p.category for p in pairs})
    return PairDataset(
        name="ap10k",
        split=f"{split}" if setting == "intra-species" else f"{split}-{setting}",
        pairs=pairs,
        keypoint_names={c: list(table["names"]) for c in used},
        symmetry=dict.fromkeys(used, table),
    )
