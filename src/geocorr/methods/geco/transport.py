"""GECO's OT layer as a module: KL-unbalanced Sinkhorn with a dustbin (training only).

The math is :func:`geocorr.ot.log_optimal_transport`; this module holds the published setting and
the dustbin score (official: ``SoftmaxMatcher`` built by ``PairwiseLoss`` in
reginehartwig/geco src/losses/__init__.py with reg 0.1, reg_kl 10, 10 Sinkhorn iterations,
mass 0.9, bin score 0.3; src/matcher/ot_matcher.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...ot import log_optimal_transport

__all__ = ["OTConfig", "OptimalTransport"]


@dataclass
class OTConfig:
    """GECO's OT layer; the defaults are the published setting."""

    eps: float = 0.1  # entropy weight ε (``reg``)
    rho_a: float = 10.0  # KL weight on the source marginal (``reg_kl``; damping φ = ρ / (ρ + ε))
    rho_b: float = 10.0  # KL weight on the target marginal
    iters: int = 10  # Sinkhorn iterations
    dustbin_score: float = 0.3  # score of every dustbin entry (initial value if learned)
    learn_dustbin: bool = False  # published: fixed (the matcher is not in the optimiser)
    mass: float = 0.9  # object (foreground + dustbin) share of the marginals


class OptimalTransport(nn.Module):
    """The OT layer: holds the dustbin score (a parameter, learnable if configured)."""

    def __init__(self, conf: OTConfig | None = None) -> None:
        super().__init__()
        self.conf = conf or OTConfig()
        self.dustbin = nn.Parameter(torch.tensor(self.conf.dustbin_score), requires_grad=self.conf.learn_dustbin)

    def forward(self, scores: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor,
                mask_a: torch.Tensor | None = None, mask_b: torch.Tensor | None = None) -> torch.Tensor:
        """scores (B, N, M), log_a (B, N+1), log_b (B, M+1) -> log P (B, N+1, M+1), the raw plan."""
        c = self.conf
        return log_optimal_transport(scores, log_a, log_b, self.dustbin, c.eps, c.rho_a, c.rho_b, c.iters,
                                     mask_a=mask_a, mask_b=mask_b)
