"""DINOv2 ViT/14 backbones (with and without registers) on HuggingFace ``transformers``.

A backbone is resolved from a hub id (``"facebook/dinov2-base"``), a local folder in transformers
format, or a ``transformers`` config (random weights, e.g. :func:`tiny_config` in tests). It turns an
image into dense patch features ``(B, C, h, w)`` plus the :class:`~geocorr.grid.TokenGrid` that maps
pixels to tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, Dinov2Config, PretrainedConfig

from ..grid import TokenGrid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Architectures of the released DINOv2 models: hub ids and the config of each size.
ARCHITECTURES: dict[str, dict] = {
    "vits14": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "vitb14": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "vitl14": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
    "vitg14": dict(hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, use_swiglu_ffn=True),
}
HUB_IDS: dict[str, str] = {
    "vits14": "facebook/dinov2-small",
    "vitb14": "facebook/dinov2-base",
    "vitl14": "facebook/dinov2-large",
    "vitg14": "facebook/dinov2-giant",
    "vits14_reg": "facebook/dinov2-with-registers-small",
    "vitb14_reg": "facebook/dinov2-with-registers-base",
    "vitl14_reg": "facebook/dinov2-with-registers-large",
    "vitg14_reg": "facebook/dinov2-with-registers-giant",
}
DINOV2_TYPES = ("dinov2", "dinov2_with_registers")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

BackboneSpec = Union[str, Path, PretrainedConfig]


class BackboneNotFoundError(FileNotFoundError):
    """The backbone's weights are neither local nor downloadable."""


@dataclass(frozen=True)
class BackboneConfig:
    """How images become backbone inputs and which tokens come out.

    Defaults are GECO's published setting: stretch to 518×518 (37×37 tokens), last block after the
    final norm, ImageNet normalisation.
    """

    image_size: int | tuple[int, int] = 518  # side (or (H, W) for "stretch"), in pixels
    resize: Literal["stretch", "keep_aspect", "pad"] = "stretch"
    # stretch: to image_size exactly (aspect not kept); keep_aspect: long side = image_size, short side
    # rounded to a multiple of the patch; pad: long side = image_size, aspect kept, zero-padded
    # (after normalisation) on the right/bottom to a square.
    layer: int = -1  # output of block k (1-based; 0 = patch embeddings, -1 = last block)
    final_norm: bool = True  # apply the model's final LayerNorm to that output
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    dtype: str = "float32"  # float32 | bfloat16 | float16

    def __post_init__(self) -> None:
        if self.resize not in ("stretch", "keep_aspect", "pad"):
            raise ValueError(f"resize must be 'stretch', 'keep_aspect' or 'pad', got {self.resize!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        sizes = self.image_size if isinstance(self.image_size, tuple) else (self.image_size,)
        if any(int(s) < 1 for s in sizes):
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if isinstance(self.image_size, tuple) and self.resize != "stretch":
            raise ValueError("an (H, W) image_size only makes sense with resize='stretch'")


def tiny_config(hidden_size: int = 32, num_hidden_layers: int = 2, num_attention_heads: int = 2,
                num_register_tokens: int = 0, **kwargs) -> PretrainedConfig:
    """A small random DINOv2 config (patch 14) for tests and examples."""
    arch = dict(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                num_attention_heads=num_attention_heads, mlp_ratio=2, image_size=518, **kwargs)
    return architecture_config("custom", registers=num_register_tokens > 0, _arch=arch,
                               num_register_tokens=num_register_tokens)


def architecture_config(name: str, registers: bool = False, _arch: dict | None = None,
                        num_register_tokens: int = 4) -> PretrainedConfig:
    """The transformers config of a released architecture (``vits14`` … ``vitg14``), random weights."""
    if _arch is None and name not in ARCHITECTURES:
        raise ValueError(f"unknown DINOv2 architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    arch = dict(_arch if _arch is not None else ARCHITECTURES[name])
    arch.setdefault("image_size", 518)
    arch.setdefault("patch_size", 14)
    if registers:
        return AutoConfig.for_model("dinov2_with_registers", num_register_tokens=num_register_tokens, **arch)
    return Dinov2Config(**arch)


def _load_transformers_model(spec: BackboneSpec) -> nn.Module:
    if isinstance(spec, PretrainedConfig):
        if spec.model_type not in DINOV2_TYPES:
            raise ValueError(f"backbone config is a {spec.model_type!r} config, expected one of {DINOV2_TYPES}")
        return AutoModel.from_config(spec, attn_implementation="sdpa")
    spec = str(spec)
    if spec.startswith("random:"):
        arch = spec.removeprefix("random:")
        return AutoModel.from_config(architecture_config(arch.removesuffix("_reg"), registers=arch.endswith("_reg")),
                                     attn_implementation="sdpa")
    spec = HUB_IDS.get(spec, spec)
    local = Path(spec).expanduser()
    looks_local = local.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if looks_local and not local.is_dir():
        raise BackboneNotFoundError(f"backbone: no such folder: {local}")
    if looks_local and not (local / "config.json").is_file():
        raise BackboneNotFoundError(f"backbone: {local} has no config.json (expected a transformers model folder)")
    try:
        config = AutoConfig.from_pretrained(str(local) if looks_local else spec)
    except OSError as err:
        raise BackboneNotFoundError(
            f"backbone {spec!r} is not in the local HuggingFace cache and could not be downloaded "
            f"({type(err).__name__}). Download it on a machine with network access "
            f"(`hf download {spec} --local-dir DIR`) and pass that folder as --backbone DIR "
            f"(Python: backbone='DIR')."
        ) from None
    if config.model_type not in DINOV2_TYPES:
        raise ValueError(f"backbone {spec!r} is a {config.model_type!r} model, expected DINOv2")
    return AutoModel.from_pretrained(str(local) if looks_local else spec, attn_implementation="sdpa")


class DinoV2Backbone(nn.Module):
    """Frozen-or-not DINOv2 turning images into dense patch features.

    Call :meth:`preprocess` on each image, stack the inputs, then ``forward``.
    """

    def __init__(self, model: nn.Module, config: BackboneConfig = BackboneConfig()):
        super().__init__()
        self.model = model
        self.config = config
        self.patch = int(model.config.patch_size)
        self.num_prefix_tokens = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
        self.register_buffer("mean", torch.tensor(config.mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(3, 1, 1), persistent=False)
        self.model.to(DTYPES[config.dtype])

    @property
    def dim(self) -> int:
        """Channels C of the features."""
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def input_size(self, image_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """(content_hw, input_hw) of the backbone input for an image of size ``image_hw``."""
        h, w = image_hw
        p, size, mode = self.patch, self.config.image_size, self.config.resize
        if mode == "stretch":
            sh, sw = size if isinstance(size, tuple) else (size, size)
            hw = (max(p, sh // p * p), max(p, sw // p * p))
            return hw, hw
        side = max(p, int(size) // p * p)
        scale = side / max(h, w)
        if mode == "keep_aspect":
            hw = tuple(max(p, round(s * scale / p) * p) for s in (h, w))
            return hw, hw
        content = tuple(max(1, round(s * scale)) for s in (h, w))
        return content, (side, side)

    def preprocess(self, image: torch.Tensor) -> tuple[torch.Tensor, TokenGrid]:
        """Resize and normalise one image.

        image: (3, H, W) float in [0, 1] -> (input (3, Hi, Wi), its TokenGrid).
        """
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image: expected shape (3, H, W), got {tuple(image.shape)}")
        image_hw = (int(image.shape[1]), int(image.shape[2]))
        content_hw, input_hw = self.input_size(image_hw)
        x = F.interpolate(image[None].float(), size=content_hw, mode="bilinear", align_corners=False,
                          antialias=True)[0]
        x = (x - self.mean) / self.std
        if content_hw != input_hw:
            x = F.pad(x, (0, input_hw[1] - content_hw[1], 0, input_hw[0] - content_hw[0]))
        return x, TokenGrid(image_hw=image_hw, content_hw=content_hw, input_hw=input_hw, patch=self.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, Hi, Wi) normalised input, Hi and Wi multiples of the patch -> (B, C, Hi/p, Wi/p)."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % self.patch or x.shape[3] % self.patch:
            raise ValueError(f"backbone input: expected (B, 3, H, W) with H, W multiples of {self.patch}, "
                             f"got {tuple(x.shape)}")
        x = x.to(next(self.model.parameters()).dtype)
        normed_last = self.config.layer in (-1, self.num_layers) and self.config.final_norm
        out = self.model(pixel_values=x, output_hidden_states=not normed_last)
        if normed_last:
            tokens = out.last_hidden_state
        else:
            tokens = out.hidden_states[self.config.layer]
            if self.config.final_norm:
                tokens = self.model.layernorm(tokens)
        tokens = tokens[:, self.num_prefix_tokens:]
        h, w = x.shape[2] // self.patch, x.shape[3] // self.patch
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)


def build_backbone(spec: BackboneSpec = "facebook/dinov2-base", config: BackboneConfig | None = None,
                   **overrides) -> DinoV2Backbone:
    """Build a DINOv2 backbone from a hub id, a local folder, an architecture name or a config.

    spec: ``"facebook/dinov2-base"``-style hub id, a short name (``"vitb14"``, ``"vits14_reg"`` …), a
        local folder in transformers format, a transformers ``Dinov2Config`` (random weights), or
        ``"random:<short name>"`` (that architecture with random weights: baselines, timing).
    overrides: fields of :class:`BackboneConfig` (``image_size=224``, ``resize="pad"`` …).
    """
    config = replace(config or BackboneConfig(), **overrides)
    return DinoV2Backbone(_load_transformers_model(spec), config)
