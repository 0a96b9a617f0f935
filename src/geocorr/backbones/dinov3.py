"""DINOv3 ViT/16 architectures (Siméoni et al., 2025) on ``transformers``' ``DINOv3ViTModel``.

DINOv3 differs from DINOv2 where geocorr looks: patch 16 (not 14), 4 register tokens after the
class token, RoPE positions (no learned position table, so any input size works without
interpolation), and the final LayerNorm is called ``norm``. The weights are gated on the hub under
Meta's DINOv3 licence (not Apache 2.0): accept it on the model page, then ``hf auth login`` — or
download the folder once and pass it as ``--backbone DIR``.

Sizes follow the official hub configs (facebookresearch/dinov3, ``dinov3/hub/backbones.py``;
``facebook/dinov3-*-pretrain-lvd1689m`` on the HuggingFace hub): the "plus" and 7B models use a
SwiGLU MLP (``use_gated_mlp``).
"""
from __future__ import annotations

from transformers import DINOv3ViTConfig

PATCH = 16
REGISTERS = 4

# Short name -> transformers config fields of the released ViT (LVD-1689M pre-training).
ARCHITECTURES: dict[str, dict] = {
    "vits16": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "vits16plus": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                       use_gated_mlp=True),
    "vitb16": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "vitl16": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "vith16plus": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=20, intermediate_size=5120,
                       use_gated_mlp=True),
    "vit7b16": dict(hidden_size=4096, num_hidden_layers=40, num_attention_heads=32, intermediate_size=8192,
                    use_gated_mlp=True),
}
HUB_IDS: dict[str, str] = {name: f"facebook/dinov3-{name}-pretrain-lvd1689m" for name in ARCHITECTURES}
LICENCE = "DINOv3 License (gated on the hub: accept it on the model page, then `hf auth login`)"


def architecture_config(name: str, **overrides) -> DINOv3ViTConfig:
    """The transformers config of a released DINOv3 ViT (``vits16`` … ``vit7b16``); random weights."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown DINOv3 architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    fields = {**ARCHITECTURES[name], "patch_size": PATCH, "num_register_tokens": REGISTERS, **overrides}
    return DINOv3ViTConfig(**fields)


def tiny_config(hidden_size: int = 32, num_hidden_layers: int = 2, num_attention_heads: int = 2,
                **overrides) -> DINOv3ViTConfig:
    """A small random DINOv3 config (patch 16, 4 registers, RoPE) for tests and examples."""
    fields = {"intermediate_size": 2 * hidden_size, "patch_size": PATCH, "num_register_tokens": REGISTERS, **overrides}
    return DINOv3ViTConfig(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                           num_attention_heads=num_attention_heads, **fields)
