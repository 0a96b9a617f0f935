"""Per-image focal lengths that make the back-projected keypoint clouds agree (paper Eq. 3)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import backproject, geometric_features


@dataclass
class FocalConfig:
    grid: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)  # shared start values
    steps: int = 500  # Adam steps on the per-image log focal lengths
    lr: float = 0.02
    max_pairs: int = 10_000  # random edge pairs whose feature variance is minimised (bounds the memory)


def feature_variance(points: torch.Tensor, depth: torch.Tensor, visible: torch.Tensor, log_focal: torch.Tensor,
                     table: torch.Tensor) -> torch.Tensor:
    """Σ_ijkl Var_s(R_ijkl) + Var_s(A_ijkl) over the images where all four keypoints are visible.

    points: (S, L, 2) normalised keypoints, depth: (S, L), visible: (S, L) bool,
    log_focal: (K, S) candidate focal sets, table: (P, 4) -> (K,).
    """
    k, s = log_focal.shape
    world = backproject(points.repeat(k, 1, 1), depth.repeat(k, 1), log_focal.exp().reshape(-1))
    angles, ratios = geometric_features(world.reshape(k, s, -1, 3), table)
    w = visible[:, table].all(-1).to(points.dtype)  # (S, P)
    count = w.sum(0).clamp_min(1)
    variances = []
    for values in (angles, ratios):
        mean = (values * w).sum(1, keepdim=True) / count
        variances.append(((values - mean).pow(2) * w).sum(1) / count)
    return (variances[0] + variances[1]).sum(-1)


def estimate_focals(points: torch.Tensor, depth: torch.Tensor, visible: torch.Tensor, table: torch.Tensor,
                    conf: FocalConfig | None = None) -> torch.Tensor:
    """Focal lengths minimising the variance of the geometric features across images.

    A shared focal length is picked from ``conf.grid`` first, then each image's own focal length is
    refined by gradient descent on its logarithm.
    points: (S, L, 2) normalised keypoints, depth: (S, L) depth at the keypoints (any per-image scale),
    visible: (S, L) bool, table: (P, 4) edge pairs -> (S,) normalised focal lengths.
    """
    conf = conf or FocalConfig()
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"points: expected shape (S, L, 2), got {tuple(points.shape)}")
    if depth.shape != points.shape[:2] or visible.shape != points.shape[:2]:
        raise ValueError(f"depth {tuple(depth.shape)} and visible {tuple(visible.shape)} must be (S, L) "
                         f"= {tuple(points.shape[:2])}")
    if len(points) < 2:
        raise ValueError(f"points: focal estimation needs at least 2 images, got {len(points)}")
    if (depth[visible] <= 0).any():
        raise ValueError("depth: visible keypoints need a positive depth")
    points, depth = points.nan_to_num(0.0), depth.nan_to_num(1.0).clamp_min(1e-6)
    grid = torch.tensor(conf.grid, dtype=points.dtype).log()[:, None].expand(-1, len(points))
    with torch.no_grad():
        best = grid[feature_variance(points, depth, visible, grid, table).argmin()]
    log_focal = best.clone()[None].requires_grad_(True)
    opt = torch.optim.Adam([log_focal], lr=conf.lr)
    for _ in range(conf.steps):
        opt.zero_grad()
        feature_variance(points, depth, visible, log_focal, table).sum().backward()
        opt.step()
    return log_focal.detach()[0].exp()
