"""GECO (ICCV 2025): geometrically consistent embeddings with lightspeed inference."""
from __future__ import annotations

from pathlib import Path

from ...backbones import BackboneSpec, build_backbone
from ...backbones.dinov2 import DTYPES
from ...backbones.precision import check_dtype
from .model import Geco, adapter_cache, resolve_adapter


def load(backbone: BackboneSpec = "facebook/dinov2-base", adapter: str | Path | None = "geco",
         image_size: int = 518, resize: str = "stretch", dtype: str = "float32", device: str = "cpu",
         merge: bool = True, rank: int = 10, debias_components: int = 0, **conf) -> Geco:
    """GECO matcher: DINOv2-B/14 + the released LoRA at 518×518 by default.

    backbone: hub id, local folder or transformers config (see :func:`geocorr.backbones.build_backbone`).
    adapter: ``"geco"`` (the released weights, looked up in :func:`adapter_cache`), a ``.pth`` /
        ``.safetensors`` file, or None for a fresh LoRA (identical to the backbone until trained).
    merge: fold the LoRA into the weights (inference); keep False to train.
    conf: options of :attr:`geocorr.methods.base.DenseMatcher.default_conf`.
    """
    check_dtype(dtype, device)
    built = build_backbone(backbone, image_size=image_size, resize=resize, debias_components=debias_components)
    model = Geco(built, rank=rank, **conf)
    if adapter is not None:
        model.load_adapter(adapter)
    if merge:
        model.merge()
    # Cast after loading so LoRA factors and merged weights keep full precision until the end.
    model.backbone.model.to(dtype=DTYPES[dtype])
    return model.to(device).eval() if merge else model.to(device)


__all__ = ["Geco", "adapter_cache", "load", "resolve_adapter"]
