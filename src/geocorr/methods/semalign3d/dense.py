"""The dense class point cloud and the per-point semantics (paper Sec. 3.1, "Dense 3D Representation").

Every training depth map is back-projected, each of its points is written in barycentric
coordinates of nearby keypoints of the same image and re-placed at the same coordinates of the
canonical keypoints; the merged cloud is clipped to the canonical convex hull, clustered by
k-means, and each cluster gets the mean feature of its nearest merged points plus the mean and
spread of their cosine similarities to it (the presence certainty).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2
from scipy.spatial import Delaunay, cKDTree

from ...grid import TokenGrid
from ...matching import sample_features
from .geometry import backproject, pixels_to_normalised


@dataclass
class DenseConfig:
    """Defaults: the authors' ``semalign3d/core/generators/dense_pc_generator.py`` (10,000 points per
    image, 1,000 clusters, features averaged over 1,000 neighbours)."""

    points_per_image: int = 10_000  # mask pixels back-projected per training image
    neighbours: int = 4  # keypoints spanning the barycentric coordinates of a point
    clusters: int = 1000  # k-means clusters (points of the dense cloud)
    min_density: float = 0.25  # drop clusters with fewer members than this share of the mean
    feature_neighbours: int = 1000  # merged points averaged into a cluster's feature
    chunk: int = 64  # clusters whose neighbour features are gathered at once (memory only)


def barycentric(points: torch.Tensor, keypoints: torch.Tensor, valid: torch.Tensor,
                neighbours: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Affine (barycentric) coordinates of points w.r.t. their nearest valid keypoints.

    points: (M, 3), keypoints: (L, 3), valid: (L,) bool -> index (M, k) into the keypoints and
    weights (M, k) summing to 1 with ``Σ w · keypoints[index] = point`` (minimum-norm when the
    k keypoints are degenerate); k = min(neighbours, number of valid keypoints).
    """
    if points.ndim != 2 or points.shape[1] != 3 or keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise ValueError(f"points {tuple(points.shape)} and keypoints {tuple(keypoints.shape)} must be (M, 3), (L, 3)")
    ids = torch.nonzero(valid).flatten()
    if len(ids) < 2:
        raise ValueError(f"valid: barycentric coordinates need >= 2 valid keypoints, got {len(ids)}")
    k = min(neighbours, len(ids))
    near = torch.cdist(points, keypoints[ids]).topk(k, dim=1, largest=False).indices
    index = ids[near]
    system = torch.cat([keypoints[index].transpose(1, 2), torch.ones_like(index[:, None], dtype=points.dtype)], 1)
    rhs = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)
    weights = (torch.linalg.pinv(system) @ rhs[..., None])[..., 0]
    return index, weights


def apply_barycentric(index: torch.Tensor, weights: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Points from barycentric coordinates. index, weights: (M, k), keypoints: (..., L, 3) -> (..., M, 3)."""
    return (keypoints[..., index, :] * weights[..., None]).sum(-2)


def nearest_depth(depth: torch.Tensor, mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Depth at the object pixel nearest to each point. depth, mask: (H, W), points: (N, 2) pixels -> (N,)."""
    if not mask.any():
        raise ValueError("mask: the object mask is empty")
    ys, xs = torch.nonzero(mask, as_tuple=True)
    tree = cKDTree(torch.stack([xs, ys], 1).numpy())
    _, idx = tree.query(points.detach().nan_to_num(0.0).numpy())
    return depth[ys[idx], xs[idx]]


@dataclass
class TrainingView:
    """What the dense cloud needs from one training image.

    features: (C, h, w) on ``grid``; depth, mask: (H, W); keypoints: (L, 2) pixels; visible: (L,);
    focal: normalised focal length (from :func:`.focal.estimate_focals`; None before it is known).
    keypoint_depth: (L,) depth of the keypoints when known (e.g. from 3D annotations); otherwise
    it is read from ``depth`` at the nearest object pixel.
    """

    features: torch.Tensor
    grid: TokenGrid
    depth: torch.Tensor
    mask: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    focal: float | None = None
    keypoint_depth: torch.Tensor | None = None

    def depth_at_keypoints(self) -> torch.Tensor:
        """(L,) keypoint depth: ``keypoint_depth`` or the depth map at the nearest object pixel."""
        if self.keypoint_depth is not None:
            return self.keypoint_depth
        return nearest_depth(self.depth, self.mask, self.keypoints)


def view_features(view: TrainingView, pixels: torch.Tensor) -> torch.Tensor:
    """L2-normalised features of a view at pixel points (N, 2) -> (N, C)."""
    grid_pts = view.grid.image_to_grid(pixels.to(view.features.dtype))
    return F.normalize(sample_features(view.features[None], grid_pts[None])[0], dim=-1)


def certainty(mean: torch.Tensor, members: torch.Tensor,
              member_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised mean features and the mean / std of the members' cosine similarities to them.

    mean: (N, C) unnormalised means, members: (N, K, C) normalised, member_mask: (N, K) ->
    features (N, C), mu (N,), sigma (N,).
    """
    feats = F.normalize(mean, dim=-1)
    sims = (members * feats[:, None]).sum(-1)
    w = member_mask.to(sims.dtype)
    count = w.sum(1).clamp_min(1)
    mu = (sims * w).sum(1) / count
    sigma = (((sims - mu[:, None]).pow(2) * w).sum(1) / count).sqrt().clamp_min(1e-2)
    return feats, mu, sigma


def keypoint_semantics(views: list[TrainingView]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class feature of each keypoint: the mean of its image features over the views showing it.

    Returns features (L, C), mu (L,), sigma (L,) (cosine similarity statistics).
    """
    members = torch.stack([view_features(v, v.keypoints.nan_to_num(0.0)) for v in views], dim=1)  # (L, S, C)
    seen = torch.stack([v.visible for v in views], dim=1)
    mean = (members * seen[..., None]).sum(1)
    return certainty(mean, members, seen)


def build_dense_cloud(views: list[TrainingView], sparse: torch.Tensor, conf: DenseConfig | None = None,
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Dense class cloud from the training views and the canonical keypoint cloud ``sparse`` (L, 3).

    Returns points (M, 3), features (M, C), mu (M,), sigma (M,), and index / weights (M, k): the
    barycentric coordinates of each point w.r.t. the canonical keypoints.
    """
    conf = conf or DenseConfig()
    merged, feats = [], []
    for n, view in enumerate(views):
        if view.focal is None:
            raise ValueError(f"views[{n}]: the focal length is not set (estimate it first)")
        if view.visible.sum() < 4:
            continue
        ys, xs = torch.nonzero(view.mask, as_tuple=True)
        pick = torch.randperm(len(xs), generator=generator)[:conf.points_per_image]
        pixels = torch.stack([xs[pick], ys[pick]], 1).to(sparse.dtype)
        hw = (view.depth.shape[0], view.depth.shape[1])
        focal = torch.tensor([view.focal], dtype=sparse.dtype)
        world = backproject(pixels_to_normalised(pixels, hw)[None], view.depth[ys[pick], xs[pick]][None].to(
            sparse.dtype), focal)[0]
        kps = view.keypoints.to(sparse.dtype).nan_to_num(0.0)
        kp_depth = view.depth_at_keypoints().to(sparse.dtype)
        kp_world = backproject(pixels_to_normalised(kps, hw)[None], kp_depth[None], focal)[0]
        index, weights = barycentric(world, kp_world, view.visible, conf.neighbours)
        merged.append(apply_barycentric(index, weights, sparse))
        feats.append(view_features(view, pixels).to(sparse.dtype))
    if not merged:
        raise ValueError("views: no training view shows >= 4 keypoints")
    merged_pts, merged_feats = torch.cat(merged), torch.cat(feats)
    inside = torch.from_numpy(Delaunay(sparse.numpy()).find_simplex(merged_pts.numpy()) >= 0)
    merged_pts, merged_feats = merged_pts[inside], merged_feats[inside]
    if len(merged_pts) < conf.clusters:
        raise ValueError(f"only {len(merged_pts)} back-projected points fall inside the class hull, fewer than "
                         f"clusters={conf.clusters}")
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    centres, labels = kmeans2(merged_pts.numpy(), conf.clusters, minit="++", seed=np.random.default_rng(seed))
    counts = np.bincount(labels, minlength=conf.clusters)
    centres = torch.from_numpy(centres[counts >= conf.min_density * counts.mean()]).to(sparse.dtype)
    _, near = cKDTree(merged_pts.numpy()).query(centres.numpy(), k=min(conf.feature_neighbours, len(merged_pts)))
    near_t = torch.from_numpy(near).reshape(len(centres), -1)
    parts = []
    for start in range(0, len(centres), conf.chunk):
        members = merged_feats[near_t[start:start + conf.chunk]]
        parts.append(certainty(members.sum(1), members, torch.ones(members.shape[:2], dtype=torch.bool)))
    features, mu, sigma = (torch.cat(p) for p in zip(*parts, strict=False))
    index, weights = barycentric(centres, sparse, torch.ones(len(sparse), dtype=torch.bool), conf.neighbours)
    return {"points": centres, "features": features, "mu": mu, "sigma": sigma, "index": index, "weights": weights}
