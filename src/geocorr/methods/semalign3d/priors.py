"""Beta distributions over the scale-invariant geometric features of a keypoint class (paper Sec. 3.1)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import geometric_features

EPS = 1e-4


def fit_beta(samples: torch.Tensor, valid: torch.Tensor, min_variance: float = 1e-5) -> torch.Tensor:
    """Method-of-moments Beta fit per column.

    samples: (S, P) values in [0, 1]; valid: (S, P) bool -> (P, 2) (alpha, beta).
    Columns with fewer than two valid samples get the uniform Beta(1, 1).
    """
    if samples.ndim != 2 or valid.shape != samples.shape:
        raise ValueError(f"samples {tuple(samples.shape)} and valid {tuple(valid.shape)} must both be (S, P)")
    w = valid.to(samples.dtype)
    count = w.sum(0)
    mean = (samples * w).sum(0) / count.clamp_min(1)
    mean = mean.clamp(EPS, 1 - EPS)
    var = ((samples - mean).pow(2) * w).sum(0) / (count - 1).clamp_min(1)
    var = torch.minimum(var.clamp_min(min_variance), 0.99 * mean * (1 - mean))
    common = mean * (1 - mean) / var - 1
    params = torch.stack([mean * common, (1 - mean) * common], dim=-1)
    return torch.where((count >= 2)[:, None], params, torch.ones_like(params))


def beta_log_prob(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """log Beta(x; alpha, beta). x: (..., P) in [0, 1], params: (P, 2) -> (..., P)."""
    x = x.clamp(EPS, 1 - EPS)
    a, b = params[:, 0], params[:, 1]
    norm = torch.lgamma(a + b) - torch.lgamma(a) - torch.lgamma(b)
    return norm + (a - 1) * torch.log(x) + (b - 1) * torch.log1p(-x)


def beta_mode(params: torch.Tensor) -> torch.Tensor:
    """Where each Beta density (P, 2) peaks -> (P,) (the nearer end when it peaks at 0 or 1)."""
    a, b = params[:, 0], params[:, 1]
    inner = (a - 1) / (a + b - 2).clamp_min(EPS)
    return torch.where((a > 1) & (b > 1), inner, torch.where(a >= b, torch.ones_like(a), torch.zeros_like(a)))


def beta_likelihood(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Max-normalised Beta density: pdf(x) / pdf(mode), in [0, 1]. x: (..., P), params: (P, 2) -> (..., P)."""
    return torch.exp(beta_log_prob(x, params) - beta_log_prob(beta_mode(params), params))


@dataclass
class ShapePrior:
    """Beta distributions of angle and ratio features for a table of edge pairs.

    table: (P, 4) edge pairs (i, j, k, l); angle, ratio: (P, 2) Beta (alpha, beta) parameters.
    """

    table: torch.Tensor
    angle: torch.Tensor
    ratio: torch.Tensor

    @classmethod
    def fit(cls, points: torch.Tensor, visible: torch.Tensor, table: torch.Tensor) -> ShapePrior:
        """points: (S, L, 3) keypoint world coordinates, visible: (S, L) bool, table: (P, 4)."""
        angles, ratios = geometric_features(points, table)
        valid = visible[:, table].all(dim=-1)
        return cls(table, fit_beta(angles, valid), fit_beta(ratios, valid))

    def log_likelihood(self, points: torch.Tensor) -> torch.Tensor:
        """Mean log-likelihood of a keypoint cloud. points: (..., L, 3) -> (...)."""
        angles, ratios = geometric_features(points, self.table)
        return (beta_log_prob(angles, self.angle) + beta_log_prob(ratios, self.ratio)).mean(-1)

    def likelihood(self, points: torch.Tensor) -> torch.Tensor:
        """Mean max-normalised likelihood of angles and ratios, in [0, 1]. points: (..., L, 3) -> (...)."""
        angles, ratios = geometric_features(points, self.table)
        return (beta_likelihood(angles, self.angle) + beta_likelihood(ratios, self.ratio)).mean(-1) / 2
