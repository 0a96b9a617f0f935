"""GeoAware's training recipe: its post-processor on the shared :class:`geocorr.training.Trainer`.

The published model is trained in two stages (Junyi42/GeoAware-SC @ 99fd6b6, ``configs/train_ap10k.yaml``
then ``configs/train_spair.yaml``, whose ``LOAD`` is the AP-10K result; optimiser and schedule in
``pck_train.py``): AP-10K for 1 epoch at a constant rate, then SPair-71k for 2 epochs with a one-cycle
schedule (30 % warm-up), both AdamW lr 1.25e-3, weight decay 1e-3, batch 1. As two commands::

    geocorr train --method geoaware --dataset ap10k --root AP10K --out runs/geoaware-ap10k \\
        --epochs 1 --scheduler none
    geocorr train --method geoaware --dataset spair --root SPair-71k --out runs/geoaware \\
        --weights runs/geoaware-ap10k/geoaware_postprocessor.safetensors

(:data:`AP10K_STAGE` and :data:`SPAIR_STAGE` are the two configs), or in Python
:func:`train_two_stages`. One optimiser step per original pair: the pose variants are loss terms of
that step (:meth:`geocorr.methods.geoaware.model.GeoAware.training_step`), not extra samples.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ...backbones import BackboneSpec
from ...datasets.base import PairDataset
from ...methods.geoaware import load
from ...methods.geoaware.augmentation import flip_permutation
from ...methods.geoaware.data import PairSample, load_pair_sample
from ...methods.geoaware.model import WEIGHTS_FILE
from ..config import TrainConfig
from ..trainer import Trainer
from ..validation import pck_validator


@dataclass
class GeoAwareTrainConfig(TrainConfig):
    """GeoAware's published optimisation (the SPair-71k stage; see the module docstring).

    The pose-variant fields are loss weights inside each step (``pck_train.py`` sets single/double/self
    from ``ADAPT_FLIP``/1.0/0.25; ``ADAPT_FLIP`` is unset in the released configs, so single = 0).
    """

    lr: float = 1.25e-3
    weight_decay: float = 1e-3
    epochs: int = 2
    batch_size: int = 1
    scheduler: str = "onecycle"
    warmup: float = 0.3
    image_size: int = 840  # side of the padded square backbone input (60×60 tokens)
    per_category: int | None = None  # use at most this many pairs per category (None: all)
    single_flip: float = 0.0  # loss weight of the single-flip variant (mirrored source → target)
    double_flip: float = 1.0  # loss weight of the double-flip variant (both mirrored)
    self_flip: float = 0.25  # loss weight of the self-flip variant (mirrored source → source)

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.single_flip, self.double_flip, self.self_flip) < 0:
            raise ValueError(f"pose-variant weights must be >= 0, got {self.pose_variants}")

    @property
    def pose_variants(self) -> dict[str, float]:
        return {"single_flip": self.single_flip, "double_flip": self.double_flip, "self_flip": self.self_flip}


CONFIG = GeoAwareTrainConfig
SPAIR_STAGE = GeoAwareTrainConfig()  # stage 2: SPair-71k, 2 epochs, one-cycle
AP10K_STAGE = GeoAwareTrainConfig(epochs=1, scheduler="none")  # stage 1: AP-10K, 1 epoch, constant rate


class GeoAwarePairs:
    """The pairs of a dataset as training samples, each with its category's left/right permutation.

    flips: category -> ``flip`` permutation (default: ``dataset.symmetry``); needed for every
    category when ``need_flips`` (the pose-variant losses are on). normalisation: "bbox" | "image",
    the PCK length the ground-truth noise scales with.
    """

    def __init__(self, dataset: PairDataset, flips: Mapping[str, Sequence[int]] | None = None,
                 normalisation: str = "bbox", need_flips: bool = True):
        if len(dataset) == 0:
            raise ValueError(f"dataset {dataset.name!r} has no pairs")
        if normalisation not in ("bbox", "image"):
            raise ValueError(f"normalisation must be 'bbox' or 'image', got {normalisation!r}")
        self.dataset, self.normalisation = dataset, normalisation
        tables = flips if flips is not None else {c: t["flip"] for c, t in dataset.symmetry.items() if "flip" in t}
        self.flips: dict[str, torch.Tensor] = {}
        if need_flips:
            num_keypoints = {p.category: p.source.num_keypoints for p in dataset.pairs}
            for category, num in sorted(num_keypoints.items()):
                if category not in tables:
                    raise ValueError(
                        f"the pose-variant losses need the left/right 'flip' permutation of category "
                        f"{category!r} of dataset {dataset.name!r}, which has none; pass flips=... or set "
                        f"the variant weights to 0"
                    )
                self.flips[category] = flip_permutation(tables[category], num)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> PairSample:
        pair = self.dataset[index]
        return load_pair_sample(pair, self.normalisation, self.flips.get(pair.category))


def _first_per_category(dataset: PairDataset, per_category: int) -> PairDataset:
    pairs, kept = [], dict[str, int]()
    for pair in dataset.pairs:
        if kept.get(pair.category, 0) < per_category:
            pairs.append(pair)
            kept[pair.category] = kept.get(pair.category, 0) + 1
    return replace(dataset, pairs=pairs)


def build_trainer(train_set: PairDataset, out_dir: str | Path, conf: GeoAwareTrainConfig = SPAIR_STAGE,
                  backbone: BackboneSpec = "facebook/dinov2-base", adapter: str | Path | None = None,
                  val_set: PairDataset | None = None, val_pairs: int | None = None, progress: bool = True,
                  **model_conf) -> Trainer:
    """A :class:`Trainer` for GeoAware's post-processor on ``train_set`` (validated on ``val_set``).

    adapter: post-processor weights to start from (None: a fresh one), e.g. the AP-10K stage's.
    Datasets without left/right ``flip`` tables (PF-Willow) train without the pose-variant losses,
    with a warning. model_conf: options of :func:`geocorr.methods.geoaware.load` (``post_processor``,
    ``noise`` ...).
    """
    if conf.per_category is not None:
        train_set = _first_per_category(train_set, conf.per_category)
    weights = conf.pose_variants
    if any(weights.values()) and not any("flip" in t for t in train_set.symmetry.values()):
        warnings.warn(f"dataset {train_set.name!r} has no left/right flip tables: training without "
                      f"the pose-variant losses", stacklevel=2)
        weights = dict.fromkeys(weights, 0.0)
    model = load(backbone=backbone, weights=adapter, zero_shot=False, image_size=conf.image_size,
                 single_flip=weights["single_flip"], double_flip=weights["double_flip"],
                 self_flip=weights["self_flip"], **model_conf)
    data = GeoAwarePairs(train_set, need_flips=any(weights.values()))
    validate = pck_validator(val_set, protocol="geoaware", max_pairs=val_pairs) if val_set is not None else None
    return Trainer(model, data, conf, out_dir, collate_fn=list, validate=validate, progress=progress)


def train_two_stages(ap10k: PairDataset, spair: PairDataset, out_dir: str | Path,
                     first: GeoAwareTrainConfig = AP10K_STAGE, second: GeoAwareTrainConfig = SPAIR_STAGE,
                     **kwargs) -> Path:
    """The published two-stage recipe in one call: ``first`` on AP-10K into ``out_dir/ap10k``, then
    ``second`` on SPair-71k from those weights into ``out_dir/spair``. Returns the final weights.

    kwargs: the other arguments of :func:`build_trainer` (``backbone``, ``val_set``, model options;
    ``post_processor`` widths shape the first stage's fresh head, the second reads them from its weights).
    """
    out_dir = Path(out_dir)
    build_trainer(ap10k, out_dir / "ap10k", first, **kwargs).fit()
    kwargs.pop("post_processor", None)
    build_trainer(spair, out_dir / "spair", second, adapter=out_dir / "ap10k" / WEIGHTS_FILE, **kwargs).fit()
    return out_dir / "spair" / WEIGHTS_FILE
