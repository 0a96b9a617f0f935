"""Part-level pieces of the paper's evaluations that are the method's own maths: which pixels are
truly matchable (part co-occurrence), and part labels carried through a predicted flow. Their
scores (average precision, mean IoU) live in :mod:`geocorr.evaluation.cyclecorr`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .camera import Camera, Viewpoint
from .flow import pixel_grid
from .mesh import Mesh
from .model import CycleCorr
from .render import render

__all__ = ["matchability_ground_truth", "segmentation_transfer", "transfer_labels"]


def matchability_ground_truth(parts_a: Tensor, parts_b: Tensor) -> Tensor:
    """A pixel of a is matchable when its part label (> 0) occurs in b. parts: H×W long -> H×W bool."""
    if parts_a.ndim != 2 or parts_b.ndim != 2:
        raise ValueError(f"part maps must be H×W, got {tuple(parts_a.shape)} and {tuple(parts_b.shape)}")
    present = torch.unique(parts_b[parts_b > 0])
    return (parts_a > 0) & torch.isin(parts_a, present)


def transfer_labels(flow: Tensor, labels: Tensor) -> Tensor:
    """Each pixel p takes ``labels`` (H'×W' long, -1 or 0 = background) at round(p + flow(p)).

    flow: 2×H×W -> H×W long; pixels sent outside the labelled image get 0.
    """
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must have shape 2×H×W, got {tuple(flow.shape)}")
    height, width = labels.shape
    target = (pixel_grid(flow.shape[-2], flow.shape[-1], dtype=flow.dtype) + flow.cpu()).round().long()
    col, row = target[0], target[1]
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    read = labels[row.clamp(0, height - 1), col.clamp(0, width - 1)].clamp(min=0)
    return torch.where(inside, read, torch.zeros_like(read))


def segmentation_transfer(model: CycleCorr, image: Tensor, mesh: Mesh, viewpoint: Viewpoint) -> Tensor:
    """Part labels of ``mesh`` (rendered from ``viewpoint``) carried onto a real S×S crop ``image``.

    image: 3×S×S in [0, 1] -> S×S long (0 = background), through the predicted flow F_{image,render}.
    """
    size = model.image_size
    if image.shape != (3, size, size):
        raise ValueError(f"image must be a 3×{size}×{size} crop, got {tuple(image.shape)}")
    shape = render(mesh, Camera.from_viewpoint(viewpoint, (size, size)))
    flow, _ = model.predict(image, shape.rgb)
    return transfer_labels(flow, shape.labels)
