"""GECO's training samples: (augmented) keypoint pairs mapped onto the token grid.

A sample holds both images at the training resolution plus, per keypoint of the category, its
token in each image, its visibility and its symmetric twin, each image's foreground tokens (for
the OT marginals and the fg×bg loss term) and the dataset's padded keypoint count (for the object
mass). Foreground comes from an object mask where the dataset has one
(``ImageAnnotation.meta["mask"]``: a file path or an (H, W) array, see :func:`attach_masks`; GECO
used SAM masks, :mod:`geocorr.training.sam_masks` makes them), sampled at the token grid by
nearest neighbour (official: reginehartwig/geco src/losses/__init__.py), else from the convex hull
of the visible keypoints (the fallback for datasets without masks, e.g. PF-Willow).

Pairs per category and epoch (official: src/dataset/spair.py ``SpairDataset2AugmentedPadded``,
likewise apk_pairs.py / pfpascal_pairs.py): each category of each dataset has one seeded stream of
permutations of its pairs; epoch e takes the next ``per_category`` of them, positions
[e·s, (e+1)·s) with s = min(per_category, pairs), a fresh permutation being appended whenever the
stream runs out. Eight epochs of 800 thus see up to 6,400 distinct pairs of a category.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.path import Path as Polygon
from PIL import Image
from scipy.spatial import ConvexHull, QhullError

from ....datasets.base import ImageAnnotation, Pair, PairDataset
from ....grid import TokenGrid
from ....images import open_image
from ...augment import AugmentConfig, augment, resize_only
from .sources import GecoSource


def keypoint_hull_tokens(points: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Tokens inside the convex hull of grid points (n, 2), plus the tokens holding them -> (h, w) bool."""
    h, w = grid_hw
    mask = np.zeros((h, w), dtype=bool)
    if len(points) == 0:
        return mask
    cells = np.clip(np.round(points).astype(int), 0, [w - 1, h - 1])
    mask[cells[:, 1], cells[:, 0]] = True
    if len(points) >= 3:
        try:
            hull = ConvexHull(points)
        except QhullError:  # collinear points: no area
            return mask
        ys, xs = np.mgrid[0:h, 0:w]
        centres = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
        mask |= Polygon(points[hull.vertices]).contains_points(centres, radius=1e-6).reshape(h, w)
    return mask


def _mask_image(ann: ImageAnnotation) -> Image.Image | None:
    mask = ann.meta.get("mask")
    if mask is None:
        return None
    if isinstance(mask, (str, Path)):
        path = Path(mask)
        if not path.is_file():
            raise FileNotFoundError(f"mask of {ann.path}: no such file: {path}")
        mask = np.asarray(Image.open(path).convert("L")) > 127
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (ann.size[1], ann.size[0]):
        raise ValueError(f"mask of {ann.path} has shape {mask.shape}, the image is {ann.size[1]}×{ann.size[0]}")
    return Image.fromarray(mask.astype(np.uint8) * 255)


def attach_masks(dataset: PairDataset, image_root: str | Path, mask_root: str | Path) -> PairDataset:
    """The dataset with ``meta["mask"]`` set on every image: ``mask_root/<path under image_root>.png``
    (precomputed object masks, e.g. SAM's as GECO used; white = object)."""
    image_root, mask_root = Path(image_root), Path(mask_root)
    if not mask_root.is_dir():
        raise FileNotFoundError(f"mask folder: no such directory: {mask_root}")

    def with_mask(ann: ImageAnnotation) -> ImageAnnotation:
        try:
            relative = Path(ann.path).resolve().relative_to(image_root.resolve())
        except ValueError:
            raise ValueError(f"image {ann.path} is not under the dataset root {image_root}") from None
        mask = (mask_root / relative).with_suffix(".png")
        if not mask.is_file():
            raise FileNotFoundError(f"mask of {ann.path}: no such file: {mask}")
        return replace(ann, meta={**ann.meta, "mask": mask})

    pairs = [replace(p, source=with_mask(p.source), target=with_mask(p.target)) for p in dataset]
    return replace(dataset, pairs=pairs)


class _Category:
    """One category of one source: its usable pairs and their seeded stream of permutations."""

    def __init__(self, source: int, pairs: list[Pair], twin: np.ndarray | None, slots: int, seed: int) -> None:
        self.source, self.pairs, self.twin, self.slots, self.seed = source, pairs, twin, slots, seed
        self._rounds: dict[int, list[int]] = {}

    def pair(self, epoch: int, slot: int) -> Pair:
        """The pair at position epoch·slots + slot of the permutation stream."""
        rnd, at = divmod(epoch * self.slots + slot, len(self.pairs))
        if rnd not in self._rounds:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + rnd)
            self._rounds[rnd] = torch.randperm(len(self.pairs), generator=g).tolist()
        return self.pairs[self._rounds[rnd][at]]


class GecoPairs:
    """Training pairs for GECO; :meth:`sample` draws the augmentations from the given generator.

    sources: the datasets trained jointly (GECO: AP-10K + SPair-71k + PF-Pascal), each with its
        padded keypoint count and augmentation switch (:func:`~.sources.geco_source`); each
        dataset's ``symmetry[category]["twin"]`` gives the M− pairs and (as published) the flip
        permutation. Categories without a table get no negatives and no flips (a flip without a
        permutation would mislabel left and right).
    image_size: side of the square training images; patch: the backbone's token size.
    per_category: pairs per category and epoch (GECO: 800; None: all); seed: the permutations.
    Its length is the number of pairs of one epoch.
    """

    def __init__(self, sources: Sequence[GecoSource], image_size: int, patch: int, augment_conf: AugmentConfig,
                 per_category: int | None = 800, seed: int = 0) -> None:
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be a multiple of the patch size {patch}")
        if per_category is not None and per_category < 1:
            raise ValueError(f"per_category must be >= 1 or None, got {per_category}")
        self.sources = list(sources)
        self.image_size, self.patch, self.augment_conf = image_size, patch, augment_conf
        self.categories: list[_Category] = []
        for i, source in enumerate(self.sources):
            for _, (pairs, twin) in sorted(self._usable_pairs(source.dataset).items()):
                slots = len(pairs) if per_category is None else min(per_category, len(pairs))
                self.categories.append(_Category(i, pairs, twin, slots, seed * 1_000_003 + len(self.categories)))
        self.offsets = np.cumsum([0] + [c.slots for c in self.categories])
        side = image_size
        self.grid = TokenGrid(image_hw=(side, side), content_hw=(side, side), input_hw=(side, side), patch=patch)

    @staticmethod
    def _usable_pairs(dataset: PairDataset) -> dict[str, tuple[list[Pair], np.ndarray | None]]:
        twins = {c: np.asarray(t["twin"]) for c, t in dataset.symmetry.items() if "twin" in t}
        out: dict[str, tuple[list[Pair], np.ndarray | None]] = {}
        for pair in dataset:
            src, trg = pair.source, pair.target
            if src.num_keypoints != trg.num_keypoints:
                raise ValueError(f"pair {src.path} -> {trg.path}: {src.num_keypoints} vs {trg.num_keypoints} keypoints")
            twin = twins.get(pair.category)
            if twin is not None and len(twin) != src.num_keypoints:
                raise ValueError(f"{dataset.name} category {pair.category}: twin table has {len(twin)} entries "
                                 f"for {src.num_keypoints} keypoints")
            if (src.visible | trg.visible).any():
                out.setdefault(pair.category, ([], twin))[0].append(pair)
        if not out:
            raise ValueError(f"dataset {dataset.name} ({dataset.split}) has no pair with a visible keypoint")
        return out

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def pair(self, index: int, epoch: int = 0) -> tuple[Pair, _Category]:
        """The pair at ``index`` of ``epoch`` (0-based) and its category."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs per epoch")
        c = int(np.searchsorted(self.offsets, index, side="right")) - 1
        category = self.categories[c]
        return category.pair(epoch, index - int(self.offsets[c])), category

    def sample(self, index: int, generator: torch.Generator, epoch: int = 0) -> dict[str, torch.Tensor]:
        """One (augmented) pair of ``epoch`` (0-based, passed by the trainer; see :func:`collate` for the keys)."""
        pair, category = self.pair(index, epoch)
        source = self.sources[category.source]
        src = self._view(pair.source, generator, category.twin, source.augment)
        trg = self._view(pair.target, generator, category.twin, source.augment)
        k = pair.source.num_keypoints
        return {
            "source_image": src["image"], "target_image": trg["image"],
            "source_tokens": src["tokens"], "target_tokens": trg["tokens"],
            "source_visible": src["visible"], "target_visible": trg["visible"],
            "source_foreground": src["foreground"], "target_foreground": trg["foreground"],
            "twin": torch.as_tensor(category.twin if category.twin is not None else np.arange(k), dtype=torch.long),
            "num_keypoints": torch.tensor(source.num_keypoints),
        }

    def _view(self, ann: ImageAnnotation, g: torch.Generator, twin: np.ndarray | None,
              augmented: bool) -> dict[str, torch.Tensor]:
        size = (self.image_size, self.image_size)
        kps = np.asarray(ann.keypoints, dtype=np.float64)
        img = open_image(ann.path, str(ann.path))
        if augmented:
            image, kps, vis, mask = augment(img, kps, ann.visible, size, self.augment_conf, g,
                                            permutation=twin, mask=_mask_image(ann))
        else:
            image, kps, vis, mask = resize_only(img, kps, ann.visible, size, mask=_mask_image(ann))
        grid_pts = self.grid.image_to_grid(torch.as_tensor(np.nan_to_num(kps), dtype=torch.float64))
        h, w = self.grid.grid_hw
        cells = grid_pts.round().long().clamp(min=0)
        cells[:, 0].clamp_(max=w - 1)
        cells[:, 1].clamp_(max=h - 1)
        if mask is not None:
            m = torch.as_tensor(np.array(mask), dtype=torch.float32)[None, None]
            foreground = F.interpolate(m, size=(h, w), mode="nearest")[0, 0] > 127
        else:
            foreground = torch.as_tensor(keypoint_hull_tokens(grid_pts[torch.as_tensor(vis)].numpy(), (h, w)))
        tensor = torch.as_tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1) / 255
        return {"image": tensor, "tokens": cells[:, 1] * w + cells[:, 0], "visible": torch.as_tensor(vis),
                "foreground": foreground.reshape(-1)}


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples, padding the keypoint axis to the largest K of the batch.

    Keys: source_image, target_image (B, 3, S, S) in [0, 1]; source_tokens, target_tokens (B, K)
    long; source_visible, target_visible (B, K) bool; twin (B, K) long; keypoint_mask (B, K) bool
    (False = padding); source_foreground, target_foreground (B, N) bool; num_keypoints (B,) long,
    the padded keypoint count of each pair's dataset.
    """
    k = max(len(s["twin"]) for s in samples)
    out: dict[str, list] = defaultdict(list)
    for s in samples:
        pad = k - len(s["twin"])
        for key in ("source_tokens", "target_tokens", "source_visible", "target_visible"):
            out[key].append(torch.cat([s[key], s[key].new_zeros(pad)]))
        out["twin"].append(torch.cat([s["twin"], torch.arange(len(s["twin"]), k)]))
        out["keypoint_mask"].append(torch.arange(k) < len(s["twin"]))
        for key in ("source_image", "target_image", "source_foreground", "target_foreground", "num_keypoints"):
            out[key].append(s[key])
    return {key: torch.stack(values) for key, values in out.items()}
