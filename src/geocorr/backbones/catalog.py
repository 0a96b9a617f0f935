"""Every backbone geocorr knows by name: hub id, family, size, patch, registers, licence.

``geocorr weights`` and the README's backbone table are made from :data:`BACKBONES`. Parameter
counts are those of the transformers model of each architecture (``tests/backbones/test_catalog.py``
rebuilds the smaller ones on the meta device and compares).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import dinov2, dinov3

DINOV2_LICENCE = "Apache-2.0"


@dataclass(frozen=True)
class BackboneInfo:
    name: str  # short name accepted by --backbone (and random:<name> for random weights)
    hub_id: str  # HuggingFace hub id of the released weights
    family: str  # DINOv2 | DINOv3
    params_m: float  # parameters, millions
    patch: int  # pixels per token side
    registers: int  # register tokens (dropped with the class token before the grid)
    licence: str


_PARAMS_M = {
    "vits14": 22.1, "vitb14": 86.6, "vitl14": 304.4, "vitg14": 1136.5,
    "vits14_reg": 22.1, "vitb14_reg": 86.6, "vitl14_reg": 304.4, "vitg14_reg": 1136.5,
    "vits16": 21.6, "vits16plus": 28.7, "vitb16": 85.7, "vitl16": 303.1, "vith16plus": 840.6, "vit7b16": 6716.4,
}

BACKBONES: dict[str, BackboneInfo] = {
    **{name: BackboneInfo(name, hub, "DINOv2", _PARAMS_M[name], 14, 4 if name.endswith("_reg") else 0, DINOV2_LICENCE)
       for name, hub in dinov2.HUB_IDS.items()},
    **{name: BackboneInfo(name, hub, "DINOv3", _PARAMS_M[name], dinov3.PATCH, dinov3.REGISTERS, dinov3.LICENCE)
       for name, hub in dinov3.HUB_IDS.items()},
}
