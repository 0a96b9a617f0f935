"""Where SemAlign3D's depth comes from: Depth Anything V2 (``transformers``) or the user's depth files.

A depth source maps an image (3, H, W) in [0, 1] (and, when known, the file it came from) to a
positive depth map (H, W), larger = farther. Two sources:

- :class:`DepthEstimator`: Depth Anything V2. It predicts relative inverse depth (disparity) d;
  as in the authors' code (``semalign3d/core/data/sem3d_data_utils.py``, ``load_depth``) it is
  mapped to z = 1 − 0.3 · d / max d, i.e. z in [0.7, 1]: a shallow relief in front of a
  plane at 1, not a metric depth.
- :class:`DepthFiles`: ``<image stem>.npy`` (float array) or ``.png`` (8/16-bit) per image, used as
  z as they are (metric depth, or a renderer's z-buffer: the "oracle depth" of the examples).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...backbones.dinov2 import IMAGENET_MEAN, IMAGENET_STD
from ...weights import hub_local_only

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Large-hf"  # the published setting
RELIEF = 0.3  # z = 1 − RELIEF · d / max d (authors' load_depth)


class DepthSource(Protocol):
    """image (3, H, W) in [0, 1], its file (or None) -> depth (H, W), positive, larger = farther."""

    def __call__(self, image: torch.Tensor, path: Path | None = None) -> torch.Tensor: ...


def disparity_to_depth(disparity: torch.Tensor, relief: float = RELIEF) -> torch.Tensor:
    """Relative inverse depth d (H, W) -> z = 1 − relief · d / max d (authors' mapping; negative d
    count as 0, an all-zero map gives z = 1 everywhere)."""
    d = disparity.clamp_min(0)
    return 1.0 - relief * d / d.max().clamp_min(1e-12)


def load_depth_model(spec: str | Path) -> nn.Module:
    """Depth Anything V2 from a local folder, the local hub cache, or the hub (when reachable).

    OSError naming ``spec`` and the alternatives when it is nowhere to be found.
    """
    from transformers import DepthAnythingForDepthEstimation

    try:
        return DepthAnythingForDepthEstimation.from_pretrained(str(spec), local_files_only=True)
    except OSError as err:
        if Path(spec).exists():
            raise OSError(f"depth model folder {spec}: not a Depth Anything model ({err})") from err
    if hub_local_only():  # offline or the hub unreachable: fail at once, no HTTP retries
        raise OSError(f"depth model {str(spec)!r}: not a local folder nor in the Hugging Face cache, and the hub "
                      f"is unreachable (offline); give a downloaded folder (depth=DIR), depth maps "
                      f"(depth_dir=DIR, or --depth-dir), or depth=null (no depth)")
    return DepthAnythingForDepthEstimation.from_pretrained(str(spec))


class DepthEstimator(nn.Module):
    """Depth Anything V2 as a :class:`DepthSource`.

    spec: hub id or local folder (see :func:`load_depth_model`), or a built model (e.g. random, for tests).
    input_size: shorter input side (multiple of the patch size after rounding; published 518).
    """

    model: PreTrainedModel  # a transformers depth model (Depth Anything V2)

    def __init__(self, spec: str | Path | nn.Module = DEFAULT_DEPTH_MODEL, input_size: int = 518) -> None:
        super().__init__()
        self.model = spec if isinstance(spec, nn.Module) else load_depth_model(spec)
        self.model.eval()
        self.patch = self.model.config.patch_size
        self.input_size = input_size

    @torch.inference_mode()
    def forward(self, image: torch.Tensor, path: Path | None = None) -> torch.Tensor:
        """image: (3, H, W) in [0, 1] -> z (H, W) in [0.7, 1] (``path`` is not used)."""
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
        return disparity_to_depth(disparity)


def load_depth_file(path: str | Path, image_hw: tuple[int, int]) -> torch.Tensor:
    """A user-supplied depth map (``.npy`` array or 16-bit/8-bit image) of an image of size (H, W) -> (H, W)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth file not found: {path}")
    try:
        if path.suffix == ".npy":
            depth = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))
        else:
            from PIL import Image

            depth = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32))
    except (ValueError, OSError, TypeError) as err:  # object arrays, corrupt files, non-images
        raise ValueError(f"{path}: not a readable depth map (a numeric .npy array or an 8/16-bit image): "
                         f"{err}") from None
    if tuple(depth.shape) != tuple(image_hw):
        raise ValueError(f"{path}: depth map of shape {tuple(depth.shape)} does not match the image {tuple(image_hw)}")
    if not torch.isfinite(depth).all() or (depth < 0).any():
        raise ValueError(f"{path}: depth must be finite and non-negative")
    return depth


class DepthFiles:
    """Depth maps from a folder, ``<image stem>.npy`` or ``<image stem>.png``, as a :class:`DepthSource`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"depth_dir: folder not found: {self.folder}")

    def __call__(self, image: torch.Tensor, path: Path | None = None) -> torch.Tensor:
        if path is None:
            raise ValueError(f"depth_dir {self.folder}: depth files are looked up by image file name; "
                             f"give the image as a file, not as an array")
        stem = Path(path).stem
        for suffix in (".npy", ".png"):
            if (self.folder / f"{stem}{suffix}").is_file():
                return load_depth_file(self.folder / f"{stem}{suffix}", (image.shape[1], image.shape[2]))
        raise FileNotFoundError(f"depth file not found: {self.folder / stem}.npy (or .png)")
