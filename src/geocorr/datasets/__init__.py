"""Keypoint-pair benchmarks in their official folder layouts, behind one loader registry."""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from .base import ImageAnnotation, Pair, PairDataset, keypoint_bbox

# dataset name -> "module:loader"; each loader is ``loader(root, split=..., **options) -> PairDataset``.
DATASETS: dict[str, str] = {
    "pf-willow": "geocorr.datasets.pf_willow:load_pf_willow",
}


def load_dataset(name: str, root: str | Path, **options) -> PairDataset:
    """Load benchmark ``name`` (see :data:`DATASETS`) from its official layout under ``root``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    module, loader = DATASETS[name].split(":")
    return getattr(import_module(module), loader)(root, **options)


__all__ = ["DATASETS", "ImageAnnotation", "Pair", "PairDataset", "keypoint_bbox", "load_dataset"]
