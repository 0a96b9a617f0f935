"""ViT backbones on HuggingFace ``transformers``: DINOv2 ViT/14 (with and without registers) and
DINOv3 ViT/16 (:mod:`geocorr.backbones.dinov3`).

A backbone is resolved from a hub id (``"facebook/dinov2-base"``), a local folder in transformers
format, or a ``transformers`` config (random weights, e.g. :func:`tiny_config` in tests). It turns an
image into dense patch features ``(B, C, h, w)`` plus the :class:`~geocorr.grid.TokenGrid` that maps
pixels to tokens. Nothing here assumes a patch size: the grid follows ``config.patch_size`` (14 for
DINOv2, 16 for DINOv3); the class token and the register tokens are dropped before the grid.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, Dinov2Config, PretrainedConfig, PreTrainedModel
from transformers.models.dinov3_vit.modeling_dinov3_vit import DINOv3ViTRopePositionEmbedding

from ..grid import TokenGrid
from ..weights import hub_local_only, quiet_loading
from . import dinov3
from .debias import positional_basis, project_out

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
# transformers model type -> attribute of the final LayerNorm; the ViTs geocorr can take tokens from.
FINAL_NORMS = {"dinov2": "layernorm", "dinov2_with_registers": "layernorm", "dinov3_vit": "norm"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

BackboneSpec: TypeAlias = str | Path | PretrainedConfig


class BackboneNotFoundError(FileNotFoundError):
    """The backbone's weights are neither local nor downloadable."""


@dataclass(frozen=True)
class BackboneConfig:
    """How images become backbone inputs and which tokens come out.

    Defaults are GECO's published setting: stretch to 518×518 (37×37 tokens), last block after the
    final norm, ImageNet normalisation.
    """

    image_size: int | tuple[int, int] = 518  # side (or (H, W) for "stretch"), in pixels, rounded down to a
    # multiple of the patch (518 -> 518 = 37 tokens at patch 14; 518 -> 512 = 32 tokens at DINOv3's patch 16)
    resize: Literal["stretch", "keep_aspect", "pad"] = "stretch"
    # stretch: to image_size exactly (aspect not kept); keep_aspect: long side = image_size, short side
    # rounded to a multiple of the patch; pad: long side = image_size, aspect kept, padded to a square
    # (where and with what: pad_position, pad_colour).
    resample: Literal["bilinear", "lanczos"] = "bilinear"  # bilinear: torch, antialiased (on the device);
    # lanczos: PIL's LANCZOS on the 8-bit image (on the CPU; GeoAware's official resize)
    pad_position: Literal["corner", "centre"] = "corner"  # pad: content at the top-left (padding
    # right/bottom) or centred (GeoAware's official canvas; the TokenGrid carries the offset)
    pad_colour: Literal["mean", "black"] = "mean"  # pad: padding = 0 after normalisation (the mean
    # colour) or black pixels before normalisation (GeoAware's official canvas)
    layer: int = -1  # output of block k (1-based; 0 = patch embeddings, -1 = last block)
    final_norm: bool = True  # apply the model's final LayerNorm to that output
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    dtype: str = "float32"  # float32 | bfloat16 | float16
    debias_components: int = 0  # INSID3 positional de-biasing (geocorr.backbones.debias): project out the
    # top-k positional directions of a black image's features; 0 = off. Off by default for every backbone:
    # no real DINOv3 weights were available to show a gain, and on the real ViT-S/14 of ../shared/data it
    # lowered PF-Willow PCK@0.10 from 36.6 to 30.2 / 29.2 / 26.8 for k = 48 / 96 / 187
    # (benchmarks/debias_pf_willow.py).

    def __post_init__(self) -> None:
        if self.resize not in ("stretch", "keep_aspect", "pad"):
            raise ValueError(f"resize must be 'stretch', 'keep_aspect' or 'pad', got {self.resize!r}")
        for name, valid in (("resample", ("bilinear", "lanczos")), ("pad_position", ("corner", "centre")),
                            ("pad_colour", ("mean", "black"))):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}, got {getattr(self, name)!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.debias_components < 0:
            raise ValueError(f"debias_components must be >= 0, got {self.debias_components}")
        sizes = self.image_size if isinstance(self.image_size, tuple) else (self.image_size,)
        if any(int(s) < 1 for s in sizes):
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if isinstance(self.image_size, tuple) and self.resize != "stretch":
            raise ValueError("an (H, W) image_size only makes sense with resize='stretch'")


def lanczos_resize(image: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """PIL LANCZOS resize of a (3, H, W) float image in [0, 1] through 8 bits (exact for images read
    from 8-bit files) -> (3, h, w) float in [0, 1] on the CPU."""
    from PIL import Image

    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    resized = Image.fromarray(pixels, "RGB").resize((size_hw[1], size_hw[0]), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1).float() / 255


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
        _check_model_type(spec.model_type, "backbone config")
        return AutoModel.from_config(spec, attn_implementation="sdpa")
    spec = str(spec)
    if spec.startswith("random:"):  # drawn with seed 0: the random baseline is the same model in every run
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return AutoModel.from_config(_random_config(spec.removeprefix("random:")), attn_implementation="sdpa")
    spec = HUB_IDS.get(spec, dinov3.HUB_IDS.get(spec, spec))
    local = Path(spec).expanduser()
    looks_local = local.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if looks_local and not local.is_dir():
        raise BackboneNotFoundError(f"backbone: no such folder: {local}")
    if looks_local and not (local / "config.json").is_file():
        raise BackboneNotFoundError(f"backbone: {local} has no config.json (expected a transformers model folder)")
    source = str(local) if looks_local else spec
    local_only = not looks_local and hub_local_only()  # offline or hub unreachable: fail at once, no HTTP retries
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    except OSError as err:
        if looks_local:  # a folder we were given: its config.json is broken (nothing to do with the hub)
            raise ValueError(f"backbone: {local / 'config.json'} cannot be read: {str(err).splitlines()[0]}") from None
        if _is_gated(err):
            raise BackboneNotFoundError(
                f"backbone {spec!r} is gated on the HuggingFace hub "
                f"({dinov3.LICENCE if 'dinov3' in spec else 'its licence'}):"
                f" request access on https://huggingface.co/{spec}, then `hf auth login` — or download it "
                f"elsewhere and pass the folder as --backbone DIR"
            ) from None
        raise BackboneNotFoundError(
            f"backbone {spec!r} is not in the local HuggingFace cache and could not be downloaded "
            f"({type(err).__name__}). Download it on a machine with network access "
            f"(`hf download {spec} --local-dir DIR`) and pass that folder as --backbone DIR "
            f"(Python: backbone='DIR')."
            + (" (offline: HF_HUB_OFFLINE is set or huggingface.co cannot be reached)" if local_only else "")
        ) from None
    _check_model_type(config.model_type, f"backbone {spec!r}")
    try:
        with quiet_loading():  # no "Loading weights" bar, no is_gradient_checkpointing FutureWarning
            return AutoModel.from_pretrained(source, attn_implementation="sdpa", local_files_only=local_only)
    except Exception as err:  # safetensors / torch raise their own kinds for a damaged or truncated file
        raise ValueError(f"backbone {source!r}: the weights cannot be loaded ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); the file is damaged or incomplete: "
                         f"download it again") from None


def _random_config(arch: str) -> PretrainedConfig:
    """``vitb14``, ``vitb14_reg`` (DINOv2) or ``dinov3-vitb16`` / ``vitb16`` (DINOv3) -> its config."""
    name = arch.removeprefix("dinov3-")
    if name in dinov3.ARCHITECTURES:
        return dinov3.architecture_config(name)
    if arch.startswith("dinov3-"):
        raise ValueError(f"unknown DINOv3 architecture {name!r}; known: {', '.join(dinov3.ARCHITECTURES)}")
    return architecture_config(arch.removesuffix("_reg"), registers=arch.endswith("_reg"))


def _check_model_type(model_type: str, what: str) -> None:
    if model_type == "dinov3_convnext":
        raise ValueError(f"{what} is a DINOv3 ConvNeXt; geocorr matches ViT patch tokens: use a DINOv3 ViT "
                         f"({', '.join(dinov3.HUB_IDS.values())})")
    if model_type not in FINAL_NORMS:
        raise ValueError(f"{what} is a {model_type!r} model, expected DINOv2 or DINOv3 ViT ({', '.join(FINAL_NORMS)})")


def _is_gated(err: BaseException) -> bool:
    """Whether a hub error (or its cause) says the repository is gated."""
    seen: BaseException | None = err
    while seen is not None:
        if type(seen).__name__ == "GatedRepoError" or "gated" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transformer_blocks(model: PreTrainedModel) -> nn.ModuleList:
    """The transformer blocks of a transformers DINOv2 / DINOv3 ViT (``encoder.layer`` / ``model.layer``)."""
    model_type = model.config.model_type
    _check_model_type(model_type, "model")
    return model.model.layer if model_type == "dinov3_vit" else model.encoder.layer


class DinoV2Backbone(nn.Module):
    """Frozen-or-not DINOv2 turning images into dense patch features.

    Call :meth:`preprocess` on each image, stack the inputs, then ``forward``.
    """

    model: PreTrainedModel  # a transformers DINOv2 / DINOv3 ViT
    mean: torch.Tensor  # buffer (3, 1, 1): the normalisation of the input
    std: torch.Tensor  # buffer (3, 1, 1)

    def __init__(self, model: PreTrainedModel, config: BackboneConfig = BackboneConfig()):
        super().__init__()
        self.model = model
        self.config = config
        self.patch = int(model.config.patch_size)
        self.num_prefix_tokens = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
        self.register_buffer("mean", torch.tensor(config.mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(3, 1, 1), persistent=False)
        self.model.to(DTYPES[config.dtype])
        self._positional_bases: dict[tuple, torch.Tensor] = {}  # (Hi, Wi, device) -> (C, k), see _debias

    def train(self, mode: bool = True) -> DinoV2Backbone:
        """Train/eval mode; DINOv3's RoPE stays deterministic (no random coordinate rescaling while
        training: geocorr fine-tunes adapters on fixed token positions, and resume stays bit-exact)."""
        super().train(mode)
        for module in self.model.modules():
            if isinstance(module, DINOv3ViTRopePositionEmbedding):
                module.train(False)
        self._positional_bases.clear()
        return self

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
        if mode == "stretch" or isinstance(size, tuple):  # an (H, W) size comes only with stretch (BackboneConfig)
            sh, sw = size if isinstance(size, tuple) else (size, size)
            hw = (max(p, sh // p * p), max(p, sw // p * p))
            return hw, hw
        side = max(p, int(size) // p * p)
        scale = side / max(h, w)
        if mode == "keep_aspect":
            hw = (max(p, round(h * scale / p) * p), max(p, round(w * scale / p) * p))
            return hw, hw
        return (max(1, round(h * scale)), max(1, round(w * scale))), (side, side)

    def preprocess(self, image: torch.Tensor) -> tuple[torch.Tensor, TokenGrid]:
        """Resize and normalise one image.

        image: (3, H, W) float in [0, 1], on the CPU or already on the backbone's device ->
        (input (3, Hi, Wi) on the backbone's device, its TokenGrid). This is the one place where images
        move to the device (once, before resizing, so resize and normalisation run there).
        """
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image: expected shape (3, H, W), got {tuple(image.shape)}")
        image_hw = (int(image.shape[1]), int(image.shape[2]))
        content_hw, input_hw = self.input_size(image_hw)
        lanczos = self.config.resample == "lanczos"
        if lanczos:  # PIL, on the CPU, before the one move to the device
            image = lanczos_resize(image, content_hw)
        x = image.to(self.mean.device, non_blocking=True)[None].float()
        if not lanczos:
            x = F.interpolate(x, size=content_hw, mode="bilinear", align_corners=False, antialias=True)
        x = x[0]
        black = self.config.pad_colour == "black"
        if not black:
            x = (x - self.mean) / self.std
        (ih, iw), (ch, cw) = input_hw, content_hw
        top, left = ((ih - ch) // 2, (iw - cw) // 2) if self.config.pad_position == "centre" else (0, 0)
        if content_hw != input_hw:
            x = F.pad(x, (left, iw - cw - left, top, ih - ch - top))
        if black:
            x = (x - self.mean) / self.std
        return x, TokenGrid(image_hw=image_hw, content_hw=content_hw, input_hw=input_hw, patch=self.patch,
                            offset=(top, left))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, Hi, Wi) normalised input, Hi and Wi multiples of the patch -> (B, C, Hi/p, Wi/p)."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % self.patch or x.shape[3] % self.patch:
            raise ValueError(f"backbone input: expected (B, 3, H, W) with H, W multiples of {self.patch}, "
                             f"got {tuple(x.shape)}")
        dense = self._patch_features(x)
        return self._debias(dense) if self.config.debias_components else dense

    def _patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, Hi, Wi) -> (B, C, Hi/p, Wi/p): the chosen layer's patch tokens (class and registers dropped)."""
        x = x.to(next(self.model.parameters()).dtype)
        normed_last = self.config.layer in (-1, self.num_layers) and self.config.final_norm
        out = self.model(pixel_values=x, output_hidden_states=not normed_last)
        if normed_last:
            tokens = out.last_hidden_state
        else:
            tokens = out.hidden_states[self.config.layer]
            if self.config.final_norm:
                tokens = getattr(self.model, FINAL_NORMS[self.model.config.model_type])(tokens)
        tokens = tokens[:, self.num_prefix_tokens:]
        h, w = x.shape[2] // self.patch, x.shape[3] // self.patch
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)

    def _debias(self, dense: torch.Tensor) -> torch.Tensor:
        """INSID3 de-biasing of (B, C, h, w) features with the positional basis of this input size.

        The basis comes from the current weights; it is cached for inference and recomputed at
        every call while training (the weights change).
        """
        h, w = dense.shape[2:]
        key = (h, w, dense.device)
        basis = self._positional_bases.get(key)
        if basis is None:
            blank = ((torch.zeros(3, 1, 1, device=self.mean.device) - self.mean) / self.std).expand(
                3, h * self.patch, w * self.patch)
            with torch.no_grad():
                basis = positional_basis(self._patch_features(blank[None])[0], self.config.debias_components)
            if not self.training:
                self._positional_bases[key] = basis
        return project_out(dense, basis)


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
