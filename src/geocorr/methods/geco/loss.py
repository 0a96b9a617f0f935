"""GECO's loss on the OT assignment: sparse keypoint ground truth, dustbin and symmetric negatives.

With P̂ the assignment probabilities of the OT layer (:func:`geocorr.ot.assignment_log_probs`):

    L = − Σ_{(i,j) ∈ M+ ∪ M0} log P̂_ij − Σ_{(i,j) ∈ M−} log(1 − P̂_ij)

* M+: keypoints visible in both images — (source token, target token);
* M0: keypoints visible in exactly one image — (source token, target dustbin) or
  (source dustbin, target token);
* M−: keypoint k visible in the source and its symmetric twin t = twin[k] ≠ k visible in the
  target — (source token of k, target token of t): left eye must not go to the right eye. Entries
  that coincide with an M+ entry (k and t on one token) are left out.

The published setting (:class:`GecoLossConfig` defaults) weights the terms pos 1, bin 1, neg 10
and adds a fg×bg term with weight 10: −log(1 − P̂) averaged over all (foreground, background)
token entries of both directions (object must not go to background); the pos and bin sums are
divided by K + 1 (K = keypoints of the category). Each pair's loss is computed so, then averaged
over the batch. With weights (1, 1, 1, 0) and no scaling it is the paper's formula above.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["GecoLossConfig", "geco_loss", "log1mexp"]

_MAX_LOG_P = -1e-6  # P̂ ≤ 1 − 1e-6 inside log(1 − P̂): a certain wrong match costs 13.8, not inf


@dataclass
class GecoLossConfig:
    """Weights of GECO's loss terms; defaults are the published setting."""

    pos_weight: float = 1.0  # M+ (matched keypoints)
    bin_weight: float = 1.0  # M0 (keypoint visible in one image -> dustbin)
    neg_weight: float = 10.0  # M− (keypoint -> its symmetric twin)
    fgbg_weight: float = 10.0  # foreground token -> background token, both ways
    scale_by_keypoints: bool = True  # divide the pos and bin sums by K + 1


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0, accurate at both ends (Mächler 2012)."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _gather(log_phat: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """log_phat (B, R, C), rows/cols (B, K) -> (B, K) entries."""
    b = torch.arange(log_phat.shape[0], device=log_phat.device)[:, None]
    return log_phat[b, rows, cols]


def geco_loss(
    log_phat: torch.Tensor,
    source_tokens: torch.Tensor,
    target_tokens: torch.Tensor,
    source_visible: torch.Tensor,
    target_visible: torch.Tensor,
    twin: torch.Tensor,
    keypoint_mask: torch.Tensor,
    source_foreground: torch.Tensor | None = None,
    target_foreground: torch.Tensor | None = None,
    conf: GecoLossConfig | None = None,
) -> dict[str, torch.Tensor]:
    """GECO's loss for a batch of B pairs with (up to) K keypoints each.

    log_phat: (B, N+1, M+1) log P̂ (dustbin last) for N source and M target tokens.
    source_tokens, target_tokens: (B, K) long, each keypoint's token index (row-major); any value
        where the keypoint is not visible.
    source_visible, target_visible: (B, K) bool.
    twin: (B, K) long, each keypoint's symmetric counterpart (itself if none).
    keypoint_mask: (B, K) bool, False for padding (pairs of categories with fewer keypoints).
    source_foreground: (B, N) bool, target_foreground: (B, M) bool — needed if fgbg_weight > 0.
    conf: the term weights (default: the published :class:`GecoLossConfig`).
    Returns {"loss": scalar, "loss_pos", "loss_bin", "loss_neg", "loss_fgbg": weighted terms
    (batch means), "num_pos", "num_bin", "num_neg": counts per pair (means)}.
    """
    conf = conf or GecoLossConfig()
    if log_phat.ndim != 3:
        raise ValueError(f"log_phat must have shape (B, N+1, M+1), got {tuple(log_phat.shape)}")
    bsz, n1, m1 = log_phat.shape
    n, m = n1 - 1, m1 - 1
    shapes = {"source_tokens": source_tokens, "target_tokens": target_tokens, "source_visible": source_visible,
              "target_visible": target_visible, "twin": twin, "keypoint_mask": keypoint_mask}
    k = source_tokens.shape[-1] if source_tokens.ndim == 2 else -1
    for name, t in shapes.items():
        if t.shape != (bsz, k):
            raise ValueError(f"{name} must have shape (B, K) = ({bsz}, {source_tokens.shape[-1]}) like "
                             f"source_tokens for log_phat {tuple(log_phat.shape)}, got {tuple(t.shape)}")
    num_kps = keypoint_mask.sum(1)
    if (num_kps == 0).any():
        raise ValueError(f"pairs {torch.nonzero(num_kps == 0).flatten().tolist()} of the batch have no keypoint")
    src_vis, tgt_vis = source_visible & keypoint_mask, target_visible & keypoint_mask
    if not (src_vis | tgt_vis).any(1).all():
        bad = torch.nonzero(~(src_vis | tgt_vis).any(1)).flatten().tolist()
        raise ValueError(f"pairs {bad} of the batch have no keypoint visible in either image")
    src_tok = torch.where(src_vis, source_tokens, 0)
    tgt_tok = torch.where(tgt_vis, target_tokens, 0)
    if ((src_tok < 0) | (src_tok >= n)).any() or ((tgt_tok < 0) | (tgt_tok >= m)).any():
        raise ValueError(f"visible keypoints' token indices must lie in [0, {n}) and [0, {m})")
    if ((twin < 0) | (twin >= k)).any():
        raise ValueError(f"twin must hold keypoint indices in [0, {k})")

    def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, values, 0).sum(1)

    pos_mask = src_vis & tgt_vis
    pos = -masked_sum(_gather(log_phat, src_tok, tgt_tok), pos_mask)
    src_only, tgt_only = src_vis & ~tgt_vis, tgt_vis & ~src_vis
    dustbin_col = torch.full_like(src_tok, m)
    dustbin_row = torch.full_like(tgt_tok, n)
    bins = -masked_sum(_gather(log_phat, src_tok, dustbin_col), src_only) \
        - masked_sum(_gather(log_phat, dustbin_row, tgt_tok), tgt_only)

    twin_tok = torch.gather(tgt_tok, 1, twin)
    twin_vis = torch.gather(tgt_vis, 1, twin)
    twin_src_tok = torch.gather(src_tok, 1, twin)
    twin_src_vis = torch.gather(src_vis, 1, twin)
    arange = torch.arange(k, device=twin.device)
    neg_mask = src_vis & twin_vis & (twin != arange)
    neg_mask &= ~(tgt_vis & (tgt_tok == twin_tok)) & ~(twin_src_vis & (twin_src_tok == src_tok))
    neg_logp = _gather(log_phat, src_tok, twin_tok).clamp(max=_MAX_LOG_P)
    neg = -masked_sum(log1mexp(torch.where(neg_mask, neg_logp, -1.0)), neg_mask)

    scale = (num_kps + 1).to(log_phat.dtype) if conf.scale_by_keypoints else torch.ones_like(pos)
    terms = {
        "loss_pos": conf.pos_weight * pos / scale,
        "loss_bin": conf.bin_weight * bins / scale,
        "loss_neg": conf.neg_weight * neg,
    }
    if conf.fgbg_weight:
        if source_foreground is None or target_foreground is None:
            raise ValueError("fgbg_weight > 0 needs source_foreground and target_foreground token masks")
        if source_foreground.shape != (bsz, n) or target_foreground.shape != (bsz, m):
            raise ValueError(f"source_foreground/target_foreground must have shapes {(bsz, n)} and {(bsz, m)}, "
                             f"got {tuple(source_foreground.shape)} and {tuple(target_foreground.shape)}")
        fg_a, fg_b = source_foreground[:, :, None], target_foreground[:, None, :]
        cross = (fg_a & ~fg_b) | (~fg_a & fg_b)
        entries = log1mexp(torch.where(cross, log_phat[:, :n, :m].clamp(max=_MAX_LOG_P), -1.0))
        fgbg = -torch.where(cross, entries, 0).sum((1, 2)) / cross.sum((1, 2)).clamp_min(1)
        terms["loss_fgbg"] = conf.fgbg_weight * fgbg
    out = {name: value.mean() for name, value in terms.items()}
    out["loss"] = sum(out.values())
    out["num_pos"] = pos_mask.sum(1).float().mean()
    out["num_bin"] = (src_only.sum(1) + tgt_only.sum(1)).float().mean()
    out["num_neg"] = neg_mask.sum(1).float().mean()
    return out
