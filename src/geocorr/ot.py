"""KL-unbalanced entropic optimal transport with a dustbin, in the log domain (GECO's OT layer).

Given similarity scores ``S`` (B×N×M) between the N tokens of a source image and the M tokens of a
target image, the scores are padded with a dustbin row and column of score ``z`` into
``Z`` (B×(N+1)×(M+1)) and the transport plan

    P = argmax_P  <P, Z> + ε H(P) − ρ_a KL(P 1 | a) − ρ_b KL(Pᵀ 1 | b)

is found by generalised Sinkhorn iterations on the log scalings (Chizat et al. 2018):

    log u = φ_a (log a − LSE_j(Z_ij / ε + log v_j)),   φ_a = ρ_a / (ρ_a + ε)
    log v = φ_b (log b − LSE_i(Z_ij / ε + log u_i)),   φ_b = ρ_b / (ρ_b + ε)
    log P = Z / ε + log u + log v

ρ = ∞ gives φ = 1, the balanced Sinkhorn whose marginals are exactly a and b. Everything runs in
at least float32 (bf16/fp16 inputs are up-cast; float64 where scores / ε would overflow float32),
so no range of finite scores produces NaN or inf; non-finite scores are refused (ValueError).

Pure tensor functions; GECO's OT layer (a module holding the dustbin score, with the published
ε = 0.1, ρ_a = ρ_b = 10, 10 iterations, dustbin 0.3, mass 0.9) is
:class:`geocorr.methods.geco.transport.OptimalTransport`.
"""
from __future__ import annotations

import math

import torch

__all__ = ["log_optimal_transport", "mask_marginals"]

_MASKED = -1e9  # log-weight of masked rows/columns inside the iterations: exp() is exactly 0


def _check_mask(mask: torch.Tensor | None, shape: tuple[int, int], name: str) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.shape != shape or mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor of shape {shape}, got {mask.dtype} {tuple(mask.shape)}")
    return mask


def log_optimal_transport(
    scores: torch.Tensor,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    dustbin: torch.Tensor | float,
    eps: float = 0.1,
    rho_a: float = 10.0,
    rho_b: float = 10.0,
    iters: int = 10,
    tol: float | None = None,
    mask_a: torch.Tensor | None = None,
    mask_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log transport plan of the dustbin-padded, KL-unbalanced entropic OT problem.

    scores: (B, N, M) similarities (higher = more alike).
    log_a: (B, N+1) log source marginal, the last entry for the dustbin.
    log_b: (B, M+1) log target marginal, the last entry for the dustbin.
    dustbin: scalar score of every dustbin entry (a tensor to learn it).
    eps: entropy weight ε > 0. rho_a, rho_b: KL weights on the marginals (> 0, ``math.inf`` = exact).
    iters: maximum number of iterations; tol: stop earlier once log u changes by less than tol.
    mask_a: (B, N) bool, False for padded source rows; mask_b: (B, M) likewise for target columns.
    Returns log P: (B, N+1, M+1), float32 or float64; -inf on masked rows/columns.
    """
    if scores.ndim != 3:
        raise ValueError(f"scores must have shape (B, N, M), got {tuple(scores.shape)}")
    b, n, m = scores.shape
    if log_a.shape != (b, n + 1) or log_b.shape != (b, m + 1):
        raise ValueError(
            f"log_a and log_b must have shapes {(b, n + 1)} and {(b, m + 1)} for scores {(b, n, m)}, "
            f"got {tuple(log_a.shape)} and {tuple(log_b.shape)}"
        )
    if not eps > 0 or not rho_a > 0 or not rho_b > 0:
        raise ValueError(f"eps, rho_a and rho_b must be > 0, got {eps}, {rho_a}, {rho_b}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    mask_a = _check_mask(mask_a, (b, n), "mask_a")
    mask_b = _check_mask(mask_b, (b, m), "mask_b")

    if not torch.isfinite(scores).all():
        bad = int((~torch.isfinite(scores)).sum())
        raise ValueError(f"scores: {bad} of {scores.numel()} entries are NaN or infinite; optimal transport "
                         f"needs finite scores")
    if torch.isnan(log_a).any() or torch.isnan(log_b).any() or (log_a == math.inf).any() or (log_b == math.inf).any():
        raise ValueError("log_a and log_b must not hold NaN or +inf (log of marginals; -inf marks a zero weight)")
    if not torch.isfinite(torch.as_tensor(dustbin).detach()).all():
        raise ValueError(f"the dustbin score must be finite, got {torch.as_tensor(dustbin).detach().tolist()}")
    dtype = torch.promote_types(scores.dtype, torch.float32)
    if dtype == torch.float32 and scores.numel() and float(scores.detach().abs().amax()) / eps > 1e36:
        dtype = torch.float64  # scores / eps would overflow float32 (max 3.4e38) inside the iterations
    scores, log_a, log_b = scores.to(dtype), log_a.to(dtype), log_b.to(dtype)
    dustbin = torch.as_tensor(dustbin, dtype=dtype, device=scores.device)
    z = torch.cat([scores, dustbin.expand(b, n, 1)], 2)
    z = torch.cat([z, dustbin.expand(b, 1, m + 1)], 1) / eps

    valid_a = torch.ones(b, n + 1, dtype=torch.bool, device=scores.device)
    valid_b = torch.ones(b, m + 1, dtype=torch.bool, device=scores.device)
    if mask_a is not None:
        valid_a[:, :n] = mask_a
    if mask_b is not None:
        valid_b[:, :m] = mask_b
    valid = valid_a[:, :, None] & valid_b[:, None, :]
    z = z.masked_fill(~valid, _MASKED)
    log_a = log_a.clamp_min(_MASKED).masked_fill(~valid_a, _MASKED)
    log_b = log_b.clamp_min(_MASKED).masked_fill(~valid_b, _MASKED)

    phi_a = 1.0 if math.isinf(rho_a) else rho_a / (rho_a + eps)
    phi_b = 1.0 if math.isinf(rho_b) else rho_b / (rho_b + eps)
    log_u = torch.zeros_like(log_a)
    log_v = torch.zeros_like(log_b)
    for _ in range(iters):
        new_u = phi_a * (log_a - torch.logsumexp(z + log_v[:, None, :], 2))
        log_v = phi_b * (log_b - torch.logsumexp(z + new_u[:, :, None], 1))
        converged = tol is not None and (new_u - log_u).abs().max() < tol
        log_u = new_u
        if converged:
            break
    log_p = z + log_u[:, :, None] + log_v[:, None, :]
    return log_p.masked_fill(~valid, -math.inf)


def mask_marginals(foreground: torch.Tensor, num_visible: torch.Tensor, num_keypoints: torch.Tensor,
                   mass: float = 0.9) -> torch.Tensor:
    """GECO's token marginals of one image from its object mask, with the dustbin last.

    The object (its foreground tokens plus the dustbin) holds ``mass``, the background tokens
    ``1 - mass``. Of the object's share the foreground tokens get ``(n_visible + 1) / (n_keypoints + 1)``
    and the dustbin the rest (the keypoints with no match have to go somewhere). Shares are
    spread uniformly over the tokens of each kind. An image with no background token gives the
    background share to the dustbin (as the official ``get_partial_distributions_input_marginals``,
    reginehartwig/geco src/matcher/ot_matcher.py); one with no foreground token (the official code
    skips such pairs) gives the foreground share to the background. GECO's ``n_keypoints`` is the
    dataset's padded count (SPair-71k 30, PF-Pascal 20, AP-10K 17), not the category's.

    foreground: (B, N) bool token mask. num_visible, num_keypoints: (B,) integer counts.
    Returns (B, N+1) marginals summing to 1.
    """
    if foreground.ndim != 2 or foreground.dtype != torch.bool:
        raise ValueError(f"foreground must be a (B, N) bool tensor, got {foreground.dtype} {tuple(foreground.shape)}")
    b = foreground.shape[0]
    if num_visible.shape != (b,) or num_keypoints.shape != (b,):
        raise ValueError(
            f"num_visible and num_keypoints must have shape ({b},), got {tuple(num_visible.shape)} "
            f"and {tuple(num_keypoints.shape)}"
        )
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    if (num_keypoints < 1).any() or (num_visible < 0).any() or (num_visible > num_keypoints).any():
        raise ValueError("need 0 <= num_visible <= num_keypoints and num_keypoints >= 1")
    fg = foreground.float()
    n_fg, n_bg = fg.sum(1), (1 - fg).sum(1)
    fg_share = mass * (num_visible + 1).float() / (num_keypoints + 1).float()
    bin_share = mass - fg_share
    bg_share = torch.full_like(fg_share, 1 - mass)
    bin_share, bg_share = bin_share + torch.where(n_bg == 0, bg_share, 0), torch.where(n_bg == 0, 0, bg_share)
    bg_share, fg_share = bg_share + torch.where(n_fg == 0, fg_share, 0), torch.where(n_fg == 0, 0, fg_share)
    tokens = fg * (fg_share / n_fg.clamp_min(1))[:, None] + (1 - fg) * (bg_share / n_bg.clamp_min(1))[:, None]
    return torch.cat([tokens, bin_share[:, None]], 1)
