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

Pairs without ``cleaned_mat``: ordered pairs of two distinct images of the split drawn uniformly
with ``numpy.random.default_rng(seed)`` (seed 0), without repeats. All birds share the 15 parts, so
a pair may mix species; the category of every pair is ``"bird"`` (the species is in
``ImageAnnotation.meta``). Coordinates are used as given (pixels); part ids become 0-based
keypoint ids.

GECO's evaluation (``cleaned_mat=<annotations>/data/test_cub_cleaned.mat``, the file its
``download_data/prepare_cub.sh`` fetches; reginehartwig/geco @ 03c8314 ``src/dataset/cub_200.py``):
the images, parts (x, y, v), boxes and sizes of that file, in its order; a part is visible when
v > 0.5 and it lies in ``[0, W] × [0, H]`` (outside: invisible); ``num_pairs`` (10,000) pairs from
:func:`half_split_pairs` (its ``random_pairs_2``), which is seeded and reproduces their pairs exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ImageAnnotation, Pair, PairDataset
from .files import image_size, read_mat, require_dir, require_file
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


def half_split_pairs(num_pairs: int, num_images: int) -> tuple[list[int], list[int]]:
    """GECO's CUB pair sampler (``src/dataset/pairwise_utils.py`` ``random_pairs_2``), by its rule:
    repeat until ``num_pairs`` pairs: permute the images with the legacy numpy generator seeded
    ``123 + pairs so far``, pair the first half with the last half (the middle image of an odd
    count is left out). Returns the source and target indices."""
    if num_images < 2:
        raise ValueError(f"need at least 2 images to pair, got {num_images}")
    first: list[int] = []
    second: list[int] = []
    half = num_images // 2
    while len(first) < num_pairs:
        order = np.random.RandomState(len(first) + 123).permutation(num_images)
        first += order[:half].tolist()
        second += order[-half:].tolist()
    return first[:num_pairs], second[:num_pairs]


def _field(record, name: str, where: str):
    if not hasattr(record, name):
        raise ValueError(f"{where}: record has no field {name!r} (expected GECO's *_cub_cleaned.mat)")
    return getattr(record, name)


def load_cub_cleaned(root: Path, mat_path: str | Path, num_pairs: int) -> PairDataset:
    """GECO's CUB test set from ``test_cub_cleaned.mat`` (see the module docstring)."""
    mat_path = require_file(mat_path, "CUB cleaned annotation (.mat)")
    try:
        records = np.atleast_1d(read_mat(mat_path, struct_as_record=False, squeeze_me=True)["images"])
    except KeyError as err:
        raise ValueError(f"{mat_path}: not a *_cub_cleaned.mat file with an 'images' array ({err})") from None
    images = []
    for i, record in enumerate(records):
        where = f"{mat_path}, image {i}"
        parts = np.asarray(_field(record, "parts", where), dtype=np.float64)
        if parts.shape != (3, NUM_PARTS):
            raise ValueError(f"{where}: parts must have shape (3, {NUM_PARTS}), got {parts.shape}")
        width, height = int(_field(record, "width", where)), int(_field(record, "height", where))
        box = _field(record, "bbox", where)
        x, y, v = parts
        inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
        visible = (v > 0.5) & inside & np.isfinite(x) & np.isfinite(y)
        images.append(ImageAnnotation(
            path=root / "images" / str(_field(record, "rel_path", where)),
            keypoints=np.where(visible[:, None], parts[:2].T, np.nan), visible=visible, size=(width, height),
            category=CATEGORY, bbox=np.array([box.x1, box.y1, box.x2, box.y2], dtype=np.float64),
            meta={"outside_image": int(((v > 0.5) & ~inside).sum())},
        ))
    first, second = half_split_pairs(num_pairs, len(images))
    table = symmetry_table("cub")
    return PairDataset(name="cub", split="test", pairs=[Pair(images[a], images[b], CATEGORY) for a, b in
                                                        zip(first, second, strict=True)],
                       keypoint_names={CATEGORY: list(table["names"])}, symmetry={CATEGORY: table})


def load_cub(root: str | Path, split: str = "test", num_pairs: int = 10_000, seed: int = 0,
             cleaned_mat: str | Path | None = None) -> PairDataset:
    """``num_pairs`` random ordered pairs of CUB-200-2011 ``split`` images (see the module docstring);
    with ``cleaned_mat``, GECO's test set and pairs instead (``seed`` does not apply)."""
    if split not in SPLITS:
        raise ValueError(f"CUB-200-2011 split must be one of {SPLITS}, got {split!r}")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}")
    root = require_dir(root, "CUB-200-2011 root")
    if cleaned_mat is not None:
        if split != "test":
            raise ValueError(f"cleaned_mat gives GECO's test split; got split={split!r}")
        return load_cub_cleaned(root, cleaned_mat, num_pairs)
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
