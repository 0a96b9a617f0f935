"""Zero-shot DINOv2: the frozen backbone's features, cosine similarity + argmax."""
from __future__ import annotations

from ..backbones import BackboneSpec, build_backbone
from ..backbones.precision import check_dtype
from .base import DenseMatcher


def load(backbone: BackboneSpec = "facebook/dinov2-base", image_size: int = 518, resize: str = "stretch",
         dtype: str = "float32", device: str = "cpu", debias_components: int = 0, **conf) -> DenseMatcher:
    """DINOv2 zero-shot matcher (GECO's resolution and layer by default).

    backbone: hub id, local folder or transformers config (see :func:`geocorr.backbones.build_backbone`).
    debias_components: INSID3 positional de-biasing (see :mod:`geocorr.backbones.debias`; 0: off).
    conf: options of :attr:`DenseMatcher.default_conf`.
    """
    check_dtype(dtype, device)
    model = DenseMatcher(build_backbone(backbone, image_size=image_size, resize=resize, dtype=dtype,
                                         debias_components=debias_components), **conf)
    return model.to(device).eval()
