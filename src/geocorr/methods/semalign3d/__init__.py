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
from .model import SemAlign3D, SemAlign3DClasses
from .representation import BuildConfig, ClassRepresentation, build_representation


def load(representation: str | Path | ClassRepresentation, features: str | nn.Module = "geoaware",
         features_conf: dict | None = None, depth: str | Path | nn.Module | None = DEFAULT_DEPTH_MODEL,
         device: str = "cpu", **conf) -> SemAlign3D | SemAlign3DClasses:
    """SemAlign3D for one class, or for every class of a folder.

    representation: a file written by ``geocorr semalign3d build`` (or the object itself), or a folder
        of such files (one per category: matching then takes ``category=``, as ``geocorr eval`` does);
    features: the geocorr method (name or model) whose features built the representation;
    depth: Depth Anything V2 hub id / folder, a depth module, or None (no z-order check);
    device: where the feature model runs (unless ``features`` is a model);
    conf: :attr:`SemAlign3D.default_conf` options.
    """
    from .. import load as load_method

    folder = None if isinstance(representation, ClassRepresentation) else Path(representation)
    if folder is not None and folder.is_dir():
        reps = [ClassRepresentation.load(f) for f in sorted(folder.glob("*.safetensors"))]
        if not reps:
            raise FileNotFoundError(f"representation: {folder} holds no class file (*.safetensors)")
    elif folder is not None:
        reps = [ClassRepresentation.load(folder)]
    else:
        reps = [representation]
    model = features if isinstance(features, nn.Module) else load_method(
        features, **{"device": device, **(features_conf or {})})
    depth_model = depth if depth is None or isinstance(depth, nn.Module) else DepthEstimator(depth)
    if folder is None or not folder.is_dir():
        return SemAlign3D(reps[0], model, depth_model, **conf)
    return SemAlign3DClasses({rep.category: SemAlign3D(rep, model, depth_model, **conf) for rep in reps})


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
    "SemAlign3DClasses",
    "TrainingView",
    "align",
    "align_config",
    "build_representation",
    "load",
    "prepare_target",
    "transfer",
]
