"""Feature backbones."""
from .dinov2 import (
    ARCHITECTURES,
    HUB_IDS,
    BackboneConfig,
    BackboneNotFoundError,
    BackboneSpec,
    DinoV2Backbone,
    architecture_config,
    build_backbone,
    tiny_config,
)

__all__ = [
    "ARCHITECTURES",
    "HUB_IDS",
    "BackboneConfig",
    "BackboneNotFoundError",
    "BackboneSpec",
    "DinoV2Backbone",
    "architecture_config",
    "build_backbone",
    "tiny_config",
]
