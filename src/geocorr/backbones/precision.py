"""Compute dtypes: which ones a device can run a ViT backbone in, refused with a clear message otherwise."""
from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

from .dinov2 import DTYPES


def check_dtype(dtype: str, device: str | torch.device = "cpu") -> torch.dtype:
    """The torch dtype named ``dtype`` if ``device`` runs a ViT in it; ValueError naming both otherwise.

    The check runs the operations of a DINOv2 block (patch convolution, layer norm, linear, fused
    scaled-dot-product attention, GELU) once on a tiny input, and on CUDA also asks whether the GPU
    has native bfloat16.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device}: CUDA is not available on this machine")
        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ValueError(f"dtype bfloat16 is not supported natively by {torch.cuda.get_device_name(device)}; "
                             f"use float16 or float32")
    failure = _probe(dtype, str(device))
    if failure:
        raise ValueError(f"dtype {dtype} is not supported on device {device}: {failure}; use float32")
    return DTYPES[dtype]


@cache
def _probe(dtype: str, device: str) -> str:
    """'' if the ViT operations run in ``dtype`` on ``device``, else what failed."""
    dt = DTYPES[dtype]
    x = torch.full((1, 3, 4, 4), 0.5, dtype=dt, device=device)  # constants: the probe must not draw from the seeded RNG
    try:
        weight = torch.full((8, 3, 2, 2), 0.1, dtype=dt, device=device)
        tokens = F.conv2d(x, weight, stride=2).flatten(2).transpose(1, 2)  # (1, 4, 8)
        tokens = F.layer_norm(tokens, (8,), torch.ones(8, dtype=dt, device=device),
                              torch.zeros(8, dtype=dt, device=device))
        q = F.linear(tokens, torch.full((8, 8), 0.1, dtype=dt, device=device)).view(1, 4, 2, 4).transpose(1, 2)
        tokens = F.gelu(F.scaled_dot_product_attention(q, q, q))
        torch.isfinite(tokens.float()).all().item()
    except (RuntimeError, NotImplementedError) as err:
        return str(err).splitlines()[0]
    return ""
