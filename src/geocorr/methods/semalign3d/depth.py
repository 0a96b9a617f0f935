"""Monocular depth from Depth Anything V2 (``transformers``), or from depth files the user supplies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Large-hf"  # the published setting
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DepthEstimator(nn.Module):
    """Relative depth of an image with Depth Anything V2.

    spec: hub id, local folder, or a ``DepthAnythingConfig`` (random weights, for tests).
    The network predicts relative inverse depth (disparity); it is turned into depth as
    1 / max(disparity, floor · max disparity), which keeps the depth *order* the z-order check uses.
    """

    def __init__(self, spec: str | Path | DepthAnythingConfig = DEFAULT_DEPTH_MODEL, input_size: int = 518,
                 floor: float = 0.01) -> None:
        super().__init__()
        if isinstance(spec, DepthAnythingConfig):
            self.model = DepthAnythingForDepthEstimation(spec)
        else:
            self.model = DepthAnythingForDepthEstimation.from_pretrained(str(spec))
        self.model.eval()
        self.patch = self.model.config.patch_size
        self.input_size, self.floor = input_size, floor

    @torch.inference_mode()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (3, H, W) in [0, 1] -> depth (H, W), positive, arbitrary scale."""
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image: expected shape (3, H, W), got {tuple(image.shape)}")
        h, w = image.shape[1:]
        scale = self.input_size / min(h, w)
        size = [max(self.patch, round(s * scale / self.patch) * self.patch) for s in (h, w)]
        x = F.interpolate(image[None].float(), size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        mean, std = (x.new_tensor(v)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
        device = next(self.model.parameters()).device
        disparity = self.model(pixel_values=((x - mean) / std).to(device)).predicted_depth.float().cpu()
        disparity = F.interpolate(disparity[:, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        return 1.0 / disparity.clamp_min(self.floor * disparity.max().clamp_min(1e-6))


def tiny_depth_config(hidden: int = 32) -> DepthAnythingConfig:
    """A tiny random Depth Anything config (4 blocks, one per neck stage; for tests)."""
    backbone = {"model_type": "dinov2", "hidden_size": hidden, "num_hidden_layers": 4, "num_attention_heads": 2,
                "intermediate_size": 2 * hidden, "patch_size": 14, "image_size": 56,
                "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False}
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=hidden,
                               neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16, head_hidden_size=8)


def load_depth_file(path: str | Path, image_hw: tuple[int, int]) -> torch.Tensor:
    """A user-supplied depth map (``.npy`` array or 16-bit/8-bit image) of an image of size (H, W) -> (H, W)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth file not found: {path}")
    if path.suffix == ".npy":
        depth = torch.from_numpy(np.load(path).astype(np.float32))
    else:
        from PIL import Image

        depth = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32))
    if tuple(depth.shape) != tuple(image_hw):
        raise ValueError(f"{path}: depth map of shape {tuple(depth.shape)} does not match the image {tuple(image_hw)}")
    if not torch.isfinite(depth).all() or (depth < 0).any():
        raise ValueError(f"{path}: depth must be finite and non-negative")
    return depth
