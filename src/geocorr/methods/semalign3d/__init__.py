"""SemAlign3D (Wandel & Wang, CVPR 2025): semantic correspondence by aligning 3D object-class
representations built from monocular depth, keypoints and features of another geocorr model."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .alignment import AlignConfig, Alignment, align, prepare_target
from .config import CATEGORY_PRESETS, align_config
from .correspondence import AlignedImage, transfer
from .dense import TrainingView
from .depth import DEFAULT_DEPTH_MODEL, DepthEstimator, DepthFiles, DepthSource
from .model import MaskFiles, SemAlign3D, SemAlign3DClasses
from .representation import BuildConfig, ClassRepresentation, build_representation


def check_features(rep: ClassRepresentation, source: str, features: str, backbone: str | None) -> None:
    """Refuse a class file built with another feature method or backbone, naming both.

    The build records ``meta["features"]`` (method name) and ``meta["backbone"]`` (None: the
    method's default); files without them (older builds) are not checked.
    """
    built = rep.meta.get("features")
    if built is not None and built != features:
        raise ValueError(f"{source}: class file built with the features of {built!r}, not of features={features!r} "
                         f"(give features={built})")
    if "backbone" in rep.meta and _same_backbone(rep.meta["backbone"], backbone) is False:
        raise ValueError(f"{source}: class file built with backbone {rep.meta['backbone'] or 'default'!r}, "
                         f"not with backbone {backbone or 'default'!r}")


def _same_backbone(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b


def load(representation: str | Path | ClassRepresentation, features: str | nn.Module = "geoaware",
         features_conf: dict | None = None, depth: str | Path | nn.Module | DepthSource | None = DEFAULT_DEPTH_MODEL,
         depth_dir: str | Path | None = None, mask_dir: str | Path | None = None, device: str = "cpu",
         **conf) -> SemAlign3D | SemAlign3DClasses:
    """SemAlign3D for one class, or for every class of a folder.

    representation: a file written by ``geocorr semalign3d build`` (or the object itself), or a folder
        of such files (one per category: matching then reads ``context.category``, as ``geocorr eval`` does);
    features: the geocorr method (name or model) whose features built the representation; a name
        is checked against the class file's (and ``features_conf["backbone"]`` against its backbone);
    features_conf: options of the feature method (backbone, image_size, dtype, ...);
    depth: Depth Anything V2 hub id / folder, a depth source, or None (no z-order check);
    depth_dir: depth maps ``<image stem>.npy/.png`` instead of the depth model;
    mask_dir: object masks ``<image stem>.png`` instead of the attention mask;
    device: where the feature model runs (unless ``features`` is a model);
    conf: :attr:`SemAlign3D.default_conf` options.
    """
    from .. import load as load_method

    folder = None if isinstance(representation, ClassRepresentation) else Path(representation)
    reps: list[tuple[str, ClassRepresentation]]
    if folder is not None and folder.is_dir():
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"representation: {folder} holds no class file (*.safetensors)")
        reps = [(str(f), ClassRepresentation.load(f)) for f in files]
    elif folder is not None:
        reps = [(str(folder), ClassRepresentation.load(folder))]
    else:
        reps = [("representation", representation)]  # type: ignore[list-item]  # a ClassRepresentation here
    if isinstance(features, str):
        for name, rep in reps:
            check_features(rep, name, features, (features_conf or {}).get("backbone"))
    model = features if isinstance(features, nn.Module) else load_method(
        features, **{"device": device, **(features_conf or {})})
    depth_source: DepthSource | None
    if depth_dir is not None:
        depth_source = DepthFiles(depth_dir)
    elif depth is None or isinstance(depth, nn.Module) or callable(depth):
        depth_source = depth  # a depth module or source
    else:
        depth_source = DepthEstimator(depth)
    masks = None if mask_dir is None else MaskFiles(mask_dir)
    models = {rep.category: SemAlign3D(rep, model, depth_source, masks, **conf) for _, rep in reps}
    if folder is None or not folder.is_dir():
        return next(iter(models.values()))
    return SemAlign3DClasses(models)


__all__ = [
    "CATEGORY_PRESETS",
    "DEFAULT_DEPTH_MODEL",
    "AlignConfig",
    "AlignedImage",
    "Alignment",
    "BuildConfig",
    "ClassRepresentation",
    "DepthEstimator",
    "DepthFiles",
    "DepthSource",
    "MaskFiles",
    "SemAlign3D",
    "SemAlign3DClasses",
    "TrainingView",
    "align",
    "align_config",
    "build_representation",
    "check_features",
    "load",
    "prepare_target",
    "transfer",
]
