"""SemAlign3D (Wandel & Wang, CVPR 2025): semantic correspondence by aligning 3D object-class
representations built from monocular depth, keypoints and features of another geocorr model."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .alignment import AlignConfig, Alignment, align, prepare_target
from .config import CATEGORY_PRESETS, align_config
from .correspondence import AlignedImage, transfer
from .dense import TrainingView
from .depth import DEFAULT_DEPTH_MODEL, DepthEstimator
from .model import SemAlign3D
from .representation import BuildConfig, ClassRepresentation, build_representation


def load(representation: str | Path | ClassRepresentation, features: str | nn.Module = "geoaware",
         features_conf: dict | None = None, depth: str | Path | nn.Module | None = DEFAULT_DEPTH_MODEL,
         **conf) -> SemAlign3D:
    """SemAlign3D for one class.

    representation: a file written by ``geocorr semalign3d build`` (or the object itself);
    features: the geocorr method (name or model) whose features built the representation;
    depth: Depth Anything V2 hub id / folder, a depth module, or None (no z-order check);
    conf: :attr:`SemAlign3D.default_conf` options.
    """
    from .. import load as load_method

    rep = representation if isinstance(representation, ClassRepresentation) else ClassRepresentation.load(
        representation)
    model = features if isinstance(features, nn.Module) else load_method(features, **(features_conf or {}))
    depth_model = depth if depth is None or isinstance(depth, nn.Module) else DepthEstimator(depth)
    return SemAlign3D(rep, model, depth_model, **conf)


__all__ = [
    "CATEGORY_PRESETS",
    "DEFAULT_DEPTH_MODEL",
    "AlignConfig",
    "AlignedImage",
    "Alignment",
    "BuildConfig",
    "ClassRepresentation",
    "DepthEstimator",
    "SemAlign3D",
    "TrainingView",
    "align",
    "align_config",
    "build_representation",
    "load",
    "prepare_target",
    "transfer",
]
