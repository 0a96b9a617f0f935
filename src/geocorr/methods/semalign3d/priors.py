"""Beta distributions over the scale-invariant geometric features of a keypoint class (paper Sec. 3.1)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import geometric_features, tetrahedron_features

EPS = 1e-4
BATCH = 10_000  # rows fitted at once (the authors' max_combinations)


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


def to_unit(cos: torch.Tensor) -> torch.Tensor:
    """Cosines in [-1, 1] -> [0, 1], the Beta support (the authors fit cos θ on (cos + 1) / 2)."""
    return (cos + 1) / 2


@dataclass
class ShapePrior:
    """Beta distributions of the geometric features of a keypoint class (paper Sec. 3.1; the
    authors' ``fit_beta_on_geom_features``, ``semalign3d/core/generators/geom_beta_dist_generator.py``).

    table: (P, 4) edge pairs (i, j, k, l); cos_angle, ratio: (P, 2) Beta (alpha, beta) of the
    edge pairs' (cos + 1)/2 and length ratio. tets: (T, 4) (triangle, vertex) rows; tet: (T, 3, 2)
    Betas of the (cos + 1)/2 of their x, y, z cosines (:func:`~.geometry.tetrahedron_features`).
    Fitted by the method of moments (the authors: maximum likelihood, ``scipy.stats.beta.fit``).
    """

    table: torch.Tensor
    cos_angle: torch.Tensor
    ratio: torch.Tensor
    tets: torch.Tensor
    tet: torch.Tensor

    @classmethod
    def fit(cls, points: torch.Tensor, visible: torch.Tensor, table: torch.Tensor, tets: torch.Tensor,
            batch: int = BATCH) -> ShapePrior:
        """Fit every row of ``table`` and ``tets``, ``batch`` rows at a time (memory only: all are fitted).

        points: (S, L, 3) keypoint world coordinates, visible: (S, L) bool, table: (P, 4), tets: (T, 4).
        """
        cos_angle, ratio, tet = [], [], []
        for start in range(0, len(table), batch):
            rows = table[start:start + batch]
            cos, rat = geometric_features(points, rows)
            valid = visible[:, rows].all(dim=-1)
            cos_angle.append(fit_beta(to_unit(cos), valid))
            ratio.append(fit_beta(rat, valid))
        for start in range(0, len(tets), batch):
            rows = tets[start:start + batch]
            feats = to_unit(tetrahedron_features(points, rows))  # (S, T, 3)
            valid = visible[:, rows].all(dim=-1)
            tet.append(torch.stack([fit_beta(feats[..., n], valid) for n in range(3)], dim=1))
        empty = points.new_ones(0, 2)
        return cls(table, torch.cat(cos_angle) if cos_angle else empty, torch.cat(ratio) if ratio else empty,
                   tets, torch.cat(tet) if tet else points.new_ones(0, 3, 2))

    def log_likelihood(self, points: torch.Tensor) -> torch.Tensor:
        """Mean Beta log-density over all features of a keypoint cloud. points: (..., L, 3) -> (...)."""
        cos, ratio = geometric_features(points, self.table)
        tet = to_unit(tetrahedron_features(points, self.tets))  # (..., T, 3)
        terms = [beta_log_prob(to_unit(cos), self.cos_angle), beta_log_prob(ratio, self.ratio)] + [
            beta_log_prob(tet[..., n], self.tet[:, n]) for n in range(3)]
        return torch.cat(terms, dim=-1).mean(-1)
