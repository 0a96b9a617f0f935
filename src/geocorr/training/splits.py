"""Honest train/validation splits of a pair dataset: no image on both sides."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import torch

from ..datasets.base import PairDataset


def split_by_images(dataset: PairDataset, val_fraction: float, seed: int = 0) -> tuple[PairDataset, PairDataset]:
    """Hold out ``val_fraction`` of each category's images (seeded); pairs of two held-out images
    are the validation set, pairs of two kept images the training set, mixed pairs are dropped.

    Returns (train, val), both ``PairDataset``s with the original keypoint names and symmetry.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    images: dict[str, list[str]] = defaultdict(list)
    for pair in dataset:
        for ann in (pair.source, pair.target):
            if str(ann.path) not in images[pair.category]:
                images[pair.category].append(str(ann.path))
    g = torch.Generator().manual_seed(seed)
    held_out: set[str] = set()
    for category in sorted(images):
        paths = sorted(images[category])
        count = max(1, round(val_fraction * len(paths)))
        if count >= len(paths):
            raise ValueError(f"category {category} has {len(paths)} images: too few to hold out {val_fraction:.0%}")
        held_out.update(paths[i] for i in torch.randperm(len(paths), generator=g)[:count].tolist())
    train = [p for p in dataset if str(p.source.path) not in held_out and str(p.target.path) not in held_out]
    val = [p for p in dataset if str(p.source.path) in held_out and str(p.target.path) in held_out]
    if not train or not val:
        raise ValueError(f"splitting {dataset.name} by images left {len(train)} training and {len(val)} "
                         f"validation pairs; change val_fraction")
    return replace(dataset, split="train", pairs=train), replace(dataset, split="val", pairs=val)
