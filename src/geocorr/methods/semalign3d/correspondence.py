"""Correspondence by traversing two alignments in reverse (paper Sec. 3.3, Eq. 14).

A query pixel of image 0 picks the class point of highest p_spatial · p_sem under image 0's
alignment; its answer in image 1 is the pixel of highest p_spatial · p_sem for that class point
under image 1's alignment. Class points are the dense cloud followed by the keypoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...grid import TokenGrid
from ...matching import upsample_features
from .alignment import Alignment, image_features, semantic_likelihood
from .geometry import pixels_to_normalised, project
from .representation import ClassRepresentation


@dataclass
class AlignedImage:
    """One image with its features (C, h, w) on ``grid`` and its alignment."""

    features: torch.Tensor
    grid: TokenGrid
    alignment: Alignment


def class_points(rep: ClassRepresentation, aligned: AlignedImage) -> tuple[torch.Tensor, ...]:
    """Projected class points (P, 2) normalised, their features (P, C), mu (P,), sigma (P,)."""
    pts = torch.cat([aligned.alignment.dense, aligned.alignment.sparse])
    proj = project(pts[None].float(), torch.tensor([aligned.alignment.focal]))[0]
    feats = torch.cat([rep.dense_features, rep.sparse_features])
    return proj, feats, torch.cat([rep.dense_mu, rep.sparse_mu]), torch.cat([rep.dense_sigma, rep.sparse_sigma])


def _spatial(points: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-(points - centres).pow(2).sum(-1) / (2 * sigma**2))


def transfer(rep: ClassRepresentation, source: AlignedImage, target: AlignedImage, points: torch.Tensor,
             sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where do pixel points (N, 2) of the source go in the target?

    sigma: σ of the spatial likelihood (normalised units; the paper's σ_sparse^inference).
    Returns points (N, 2) target pixels, scores (N,) the target likelihood, class point ids (N,)
    and the semantic similarity maps (N, h, w) of those class points on the target's grid.
    """
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points: expected shape (N, 2), got {tuple(points.shape)}")
    proj0, feats, mu, sig = class_points(rep, source)
    query = image_features(source.features.float(), source.grid, points)
    p0 = _spatial(pixels_to_normalised(points.float(), source.grid.image_hw)[:, None], proj0[None], sigma)
    ids = (p0 * semantic_likelihood(query @ feats.T, mu, sig)).argmax(dim=1)

    proj1 = class_points(rep, target)[0][ids]
    dense1 = F.normalize(target.features.float(), dim=0)
    sim = torch.einsum("nc,chw->nhw", feats[ids], dense1)
    sim_up = upsample_features(sim[None], target.grid)[0]  # (N, H, W)
    h, w = target.grid.image_hw
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    pix = pixels_to_normalised(torch.stack([xs, ys], -1), (h, w))  # (H, W, 2)
    like = _spatial(pix[None], proj1[:, None, None], sigma) * semantic_likelihood(
        sim_up, mu[ids, None, None], sig[ids, None, None])
    scores, flat = like.reshape(len(ids), -1).max(dim=1)
    best = torch.stack([flat % w, torch.div(flat, w, rounding_mode="floor")], dim=-1).float()
    return best, scores, ids, sim
