"""Training GeoAware's post-processor on the shared :class:`geocorr.training.Trainer`.

>>> trainer = build_trainer(load_dataset("spair", root, split="trn"), "runs/geoaware")
>>> trainer.fit()                                  # -> runs/geoaware/geoaware_postprocessor.safetensors

or ``geocorr train --method geoaware --dataset spair --root DIR --out DIR``.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ...backbones import BackboneSpec
from ...datasets.base import PairDataset
from ...training import TrainConfig, Trainer
from ...training.validation import pck_validator
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
    image_size: int = 840  # side of the padded square backbone input (60×60 tokens)
    per_category: int | None = None  # use at most this many pairs per category (None: all)
    single_flip: float = 1.0  # probability of adding each pose-variant pair
    double_flip: float = 1.0
    self_flip: float = 0.25

    @property
    def pose_variants(self) -> dict[str, float]:
        return {"single_flip": self.single_flip, "double_flip": self.double_flip, "self_flip": self.self_flip}


CONFIG = GeoAwareTrainConfig


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


def build_trainer(train_set: PairDataset, out_dir: str | Path, conf: GeoAwareTrainConfig = GeoAwareTrainConfig(),
                  backbone: BackboneSpec = "facebook/dinov2-base", adapter: str | Path | None = None,
                  val_set: PairDataset | None = None, val_pairs: int | None = None, progress: bool = True,
                  **model_conf) -> Trainer:
    """A :class:`Trainer` for GeoAware's post-processor on ``train_set`` (validated on ``val_set``).

    adapter: post-processor weights to start from (None: a fresh one). Datasets without left/right
    ``flip`` tables (PF-Willow) train without pose-variant pairs, with a warning.
    model_conf: options of :func:`geocorr.methods.geoaware.load` (``post_processor``, ``noise`` ...).
    """
    from . import load

    if conf.per_category is not None:
        pairs, kept = [], {}
        for pair in train_set.pairs:
            if kept.get(pair.category, 0) < conf.per_category:
                pairs.append(pair)
                kept[pair.category] = kept.get(pair.category, 0) + 1
        train_set = replace(train_set, pairs=pairs)
    probabilities = conf.pose_variants
    if any(probabilities.values()) and not any("flip" in t for t in train_set.symmetry.values()):
        warnings.warn(f"dataset {train_set.name!r} has no left/right flip tables: training without "
                      f"pose-variant augmentation", stacklevel=2)
        probabilities = {}
    model = load(backbone=backbone, weights=adapter, zero_shot=False, image_size=conf.image_size, **model_conf)
    data = PoseVariantPairs(train_set, probabilities, seed=conf.seed)
    validate = pck_validator(val_set, protocol="geoaware", max_pairs=val_pairs) if val_set is not None else None
    return Trainer(model, data, conf, out_dir, collate_fn=list, validate=validate, progress=progress)
