"""Dense flow fields: warping, transitive composition and the two cycle losses (Zhou et al. 2016).

A flow ``F_{a,b}`` is a ``B×2×H×W`` tensor of pixel offsets on image ``a``'s pixel grid: channel 0
is the x (column) offset, channel 1 the y (row) offset, so pixel ``p = (x, y)`` of ``a`` corresponds
to ``p + F_{a,b}(p)`` in ``b``. Pixel-centre convention: ``(0, 0)`` is the centre of the top-left
pixel. A matchability map ``M_{a,b}`` is ``B×1×H×W`` in ``[0, 1]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "compose_flow",
    "compose_matchability",
    "matchability_loss",
    "pixel_grid",
    "sample_at",
    "truncated_flow_loss",
    "warp",
]


def _check_flow(flow: Tensor, name: str) -> None:
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"{name} must have shape B×2×H×W, got {tuple(flow.shape)}")


def _check_map(field: Tensor, flow: Tensor, name: str) -> None:
    if field.ndim != 4 or field.shape[0] != flow.shape[0] or field.shape[2:] != flow.shape[2:]:
        raise ValueError(
            f"{name} must have shape {flow.shape[0]}×C×{flow.shape[2]}×{flow.shape[3]} "
            f"(like the flow), got {tuple(field.shape)}"
        )


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """The pixel-centre coordinates ``(x, y)`` of an image -> ``2×H×W``."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([xs, ys])


def sample_at(field: Tensor, points: Tensor, padding: str = "border") -> Tensor:
    """Bilinearly sample ``field`` (B×C×H×W) at pixel coordinates ``points`` (B×2×h×w) -> B×C×h×w.

    ``padding`` is ``grid_sample``'s padding mode for points outside the image ("border" repeats
    the edge, "zeros" reads 0).
    """
    if points.ndim != 4 or points.shape[1] != 2 or points.shape[0] != field.shape[0]:
        raise ValueError(f"points must have shape {field.shape[0]}×2×h×w, got {tuple(points.shape)}")
    height, width = field.shape[-2:]
    scale = points.new_tensor([max(width - 1, 1), max(height - 1, 1)]).view(1, 2, 1, 1)
    grid = (2 * points / scale - 1).permute(0, 2, 3, 1)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode=padding, align_corners=True)


def warp(field: Tensor, flow: Tensor, padding: str = "border") -> Tensor:
    """Read ``field`` (B×C×H×W, on image b's grid) at ``p + flow(p)`` for every pixel p -> B×C×H×W."""
    _check_flow(flow, "flow")
    _check_map(field, flow, "field")
    grid = pixel_grid(flow.shape[-2], flow.shape[-1], device=flow.device, dtype=flow.dtype)
    return sample_at(field, grid.unsqueeze(0) + flow, padding)


def compose_flow(flow_ab: Tensor, flow_bc: Tensor) -> Tensor:
    """Transitive composition ``F_{a,c}(p) = F_{a,b}(p) + F_{b,c}(p + F_{a,b}(p))``.

    flow_ab, flow_bc: B×2×H×W -> B×2×H×W. Points leaving image b read b's nearest border flow.
    """
    _check_flow(flow_ab, "flow_ab")
    _check_flow(flow_bc, "flow_bc")
    _check_map(flow_bc, flow_ab, "flow_bc")
    return flow_ab + warp(flow_bc, flow_ab, padding="border")


def compose_matchability(match_ab: Tensor, match_bc: Tensor, flow_ab: Tensor) -> Tensor:
    """Matchability composition ``M_{a,c}(p) = M_{a,b}(p) · M_{b,c}(p + F_{a,b}(p))``.

    match_ab, match_bc: B×1×H×W, flow_ab: B×2×H×W -> B×1×H×W. A point that leaves image b is
    not matchable (reads 0).
    """
    _check_flow(flow_ab, "flow_ab")
    _check_map(match_ab, flow_ab, "match_ab")
    _check_map(match_bc, flow_ab, "match_bc")
    return match_ab * warp(match_bc, flow_ab, padding="zeros")


def truncated_flow_loss(flow_gt: Tensor, flow_pred: Tensor, matchable: Tensor, threshold: float = 15.0) -> Tensor:
    """Truncated Euclidean loss ``min(‖F̃(p) − F̄(p)‖², T²)`` averaged over the matchable pixels.

    flow_gt, flow_pred: B×2×H×W, matchable: B×1×H×W or B×H×W (bool or {0, 1}) -> scalar.
    The paper sums over matchable pixels; the mean differs by a constant per batch. Returns 0
    when no pixel is matchable.
    """
    _check_flow(flow_gt, "flow_gt")
    _check_flow(flow_pred, "flow_pred")
    if flow_gt.shape != flow_pred.shape:
        raise ValueError(f"flow_pred must have shape {tuple(flow_gt.shape)}, got {tuple(flow_pred.shape)}")
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    mask = matchable.reshape(flow_gt.shape[0], 1, *flow_gt.shape[2:]).to(flow_gt.dtype)
    error = ((flow_gt - flow_pred) ** 2).sum(1, keepdim=True).clamp(max=threshold**2)
    return (error * mask).sum() / mask.sum().clamp(min=1)


def matchability_loss(match_gt: Tensor, match_pred: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-pixel binary cross-entropy between ``M̃`` (B×1×H×W, {0, 1}) and ``M̄`` (B×1×H×W) -> scalar mean."""
    if match_gt.shape != match_pred.shape:
        raise ValueError(f"match_pred must have shape {tuple(match_gt.shape)}, got {tuple(match_pred.shape)}")
    target = match_gt.to(match_pred.dtype)
    pred = match_pred.clamp(eps, 1 - eps)
    return -(target * pred.log() + (1 - target) * (1 - pred).log()).mean()
