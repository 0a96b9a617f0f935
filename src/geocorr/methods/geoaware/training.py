"""Training GeoAware's post-processor on the shared :class:`geocorr.training.Trainer`.

>>> model = geocorr.load("geoaware", zero_shot=False)            # fresh post-processor
>>> data = PoseVariantPairs(load_spair(root, "trn"))             # pairs + flipped variants
>>> Trainer(model, data, GeoAwareTrainConfig(), out, collate_fn=list).fit()
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ...datasets.base import PairDataset
from ...training import TrainConfig
from .augmentation import POSE_VARIANTS, draw_variants, flip_permutation, pose_variant
from .data import PairSample, load_pair_sample


@dataclass
class GeoAwareTrainConfig(TrainConfig):
    """GeoAware's published optimisation: AdamW (lr 1.25e-3, wd 1e-3), batch 1, one-cycle schedule
    with 30 % warm-up, 2 epochs (the SPair-71k stage after AP-10K pre-training)."""

    lr: float = 1.25e-3
    weight_decay: float = 1e-3
    epochs: int = 2
    batch_size: int = 1
    scheduler: str = "onecycle"
    warmup: float = 0.3


class PoseVariantPairs(Sequence[PairSample]):
    """A pair dataset expanded with pose-variant augmented pairs, as a training set.

    Each pair is followed by its single flip, double flip and self flip, each drawn once (seeded)
    with its probability (published: 1.0, 1.0, 0.25), so the list is fixed and resumable.
    dataset: the pairs; flips: category -> ``flip`` permutation (default: ``dataset.symmetry``);
    probabilities: variant -> probability ({} = no augmentation); normalisation: "bbox" | "image",
    the PCK length the ground-truth noise scales with.
    """

    def __init__(self, dataset: PairDataset, probabilities: Mapping[str, float] = POSE_VARIANTS,
                 flips: Mapping[str, Sequence[int]] | None = None, normalisation: str = "bbox", seed: int = 0):
        if len(dataset) == 0:
            raise ValueError(f"dataset {dataset.name!r} has no pairs")
        if normalisation not in ("bbox", "image"):
            raise ValueError(f"normalisation must be 'bbox' or 'image', got {normalisation!r}")
        self.dataset, self.normalisation = dataset, normalisation
        generator = torch.Generator().manual_seed(seed)
        self.items: list[tuple[int, str | None]] = []
        for i in range(len(dataset)):
            self.items += [(i, None)] + [(i, v) for v in draw_variants(probabilities, generator)]
        self.flips: dict[str, torch.Tensor] = {}
        if any(v is not None for _, v in self.items):
            tables = flips if flips is not None else {c: t["flip"] for c, t in dataset.symmetry.items() if "flip" in t}
            num_keypoints = {p.category: p.source.num_keypoints for p in dataset.pairs}
            for category, num in sorted(num_keypoints.items()):
                if category not in tables:
                    raise ValueError(
                        f"pose-variant augmentation needs the left/right 'flip' permutation of category "
                        f"{category!r} of dataset {dataset.name!r}, which has none; pass flips=... or turn the "
                        f"augmentation off (probabilities={{}})"
                    )
                self.flips[category] = flip_permutation(tables[category], num)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> PairSample:
        pair_index, variant = self.items[index]
        pair = self.dataset[pair_index]
        sample = load_pair_sample(pair, self.normalisation)
        return sample if variant is None else pose_variant(sample, variant, self.flips[pair.category])

    def variant_counts(self) -> dict[str, int]:
        """How many items of each kind ("original" and each variant) the set holds."""
        counts: dict[str, int] = {}
        for _, v in self.items:
            counts[v or "original"] = counts.get(v or "original", 0) + 1
        return counts
