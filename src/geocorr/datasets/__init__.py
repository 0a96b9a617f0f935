"""Keypoint-pair benchmarks in their official folder layouts, behind one loader registry."""
from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path

from .base import ImageAnnotation, Pair, PairDataset, keypoint_bbox

# dataset name -> "module:loader"; each loader is ``loader(root, split=..., **options) -> PairDataset``.
DATASETS: dict[str, str] = {
    "pf-willow": "geocorr.datasets.pf_willow:load_pf_willow",
    "pf-pascal": "geocorr.datasets.pf_pascal:load_pf_pascal",
    "spair": "geocorr.datasets.spair:load_spair",
    "ap10k": "geocorr.datasets.ap10k:load_ap10k",
    "cub": "geocorr.datasets.cub:load_cub",
}


def load_dataset(name: str, root: str | Path, **options) -> PairDataset:
    """Load benchmark ``name`` (see :data:`DATASETS`) from its official layout under ``root``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    module, name_ = DATASETS[name].split(":")
    loader = getattr(import_module(module), name_)
    valid = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; valid: {', '.join(valid)}")
    return loader(root, **options)


__all__ = ["DATASETS", "ImageAnnotation", "Pair", "PairDataset", "keypoint_bbox", "load_dataset"]
