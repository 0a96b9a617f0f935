"""GECO's loss on the raw KL-OT plan: keypoint matches, dustbin, symmetric and background negatives.

The published setting, as the official code computes it (reginehartwig/geco @ 03c8314,
src/losses/__init__.py ``pairwise_loss`` / ``PairwiseLoss.get_loss``, entry sets from
src/dataset/pairwise_utils.py, reduction and weights from scripts/train_pairs.py and
configs/train_setting_default.yaml). P is the transport plan (B, N+1, M+1) of
:class:`~geocorr.methods.geco.transport.OptimalTransport` for N source and M target tokens, dustbin
row and column last — read as it is, not row- or column-normalised. Per pair, four entry sets:

* pos (M+): (source token of k, target token of k) for each keypoint k visible in both images;
* bin (M0): (source token of k, target dustbin) or (source dustbin, target token of k) for each k
  visible in exactly one image;
* neg (M−): (source token of k, target token of twin[k]) for each k visible in the source whose
  symmetric counterpart twin[k] ≠ k is visible in the target (left eye must not go to right eye);
* fg×bg: every (source foreground, target background) and (source background, target foreground)
  token entry (the object must not go to the background).

Within one pair and one set an entry counts once (two keypoints on one token pair give one entry,
as the official sparse ground-truth matrix does); the sets are not made disjoint from each other.
Per entry: pos and bin cost −log P / (N + 1) (N + 1 = the plan's rows, 1370 at 518 px), neg and
fg×bg cost −log(1 − P). Each term's entries are concatenated over the batch and averaged (an
entry-mean, not a per-pair sum), then weighted pos 1, bin 1, neg 10, fg×bg 10 and summed. A term
with no entry in the batch adds 0 (e.g. bin on a dataset without invisible keypoints). A pair whose
source or target foreground is empty is skipped (``num_skipped``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch

__all__ = ["GecoLossConfig", "KeypointTokens", "geco_loss", "log1mexp", "loss_entries"]

_MAX_LOG_P = -1e-6  # P ≤ 1 − 1e-6 inside log(1 − P): a plan entry of 1 costs 13.8, not inf


@dataclass
class GecoLossConfig:
    """Weights of GECO's loss terms; defaults are the published setting (train_setting_default.yaml)."""

    pos_weight: float = 1.0  # M+ (matched keypoints)
    bin_weight: float = 1.0  # M0 (keypoint visible in one image -> dustbin)
    neg_weight: float = 10.0  # M− (keypoint -> its symmetric twin)
    fgbg_weight: float = 10.0  # foreground token -> background token, both ways


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0, accurate at both ends (Mächler 2012)."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


@dataclass(frozen=True)
class KeypointTokens:
    """The keypoints of a batch of B pairs on the two token grids; every field is (B, K)."""

    source_tokens: torch.Tensor  # long: each keypoint's source token (row-major); any value where not visible
    target_tokens: torch.Tensor  # long: each keypoint's target token, likewise
    source_visible: torch.Tensor  # bool
    target_visible: torch.Tensor  # bool
    twin: torch.Tensor  # long: each keypoint's symmetric counterpart (itself if none)
    keypoint_mask: torch.Tensor  # bool: False for padding

    @classmethod
    def from_batch(cls, batch: Mapping[str, torch.Tensor]) -> KeypointTokens:
        """The fields of a collated batch (:func:`geocorr.training.recipes.geco.data.collate` uses these keys)."""
        return cls(**{f.name: batch[f.name] for f in fields(cls)})


Entries = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (pair, row, column) index vectors


def _unique(rows: torch.Tensor, cols: torch.Tensor, keep: torch.Tensor, shape: tuple[int, int, int]) -> Entries:
    """The distinct (pair, row, col) of the kept (B, K) rows/cols, sorted by pair."""
    _, n1, m1 = shape
    pair = torch.arange(rows.shape[0], device=rows.device)[:, None].expand_as(rows)
    key = torch.unique(((pair * n1 + rows) * m1 + cols)[keep])
    return key // (n1 * m1), key // m1 % n1, key % m1


def loss_entries(
    shape: tuple[int, int, int], keypoints: KeypointTokens, pairs: torch.Tensor | None = None
) -> dict[str, Entries]:
    """The pos, bin and neg entry sets (see the module docstring) of a plan of ``shape`` (B, N+1, M+1).

    keypoints: the batch's keypoints, fields (B, K). pairs: (B,) bool, the pairs to use (default all).
    Returns {"pos", "bin", "neg"} -> (pair, row, column) long vectors.
    """
    bsz, n1, m1 = shape
    n, m = n1 - 1, m1 - 1
    source_tokens = keypoints.source_tokens
    k = source_tokens.shape[-1] if source_tokens.ndim == 2 else -1
    for field in fields(keypoints):
        t = getattr(keypoints, field.name)
        if t.shape != (bsz, k):
            raise ValueError(f"{field.name} must have shape (B, K) = ({bsz}, {k}) like source_tokens for a plan "
                             f"of shape {shape}, got {tuple(t.shape)}")
    twin = keypoints.twin
    use = keypoints.keypoint_mask if pairs is None else keypoints.keypoint_mask & pairs[:, None]
    src_vis, tgt_vis = keypoints.source_visible & use, keypoints.target_visible & use
    src_tok = torch.where(src_vis, source_tokens, 0)
    tgt_tok = torch.where(tgt_vis, keypoints.target_tokens, 0)
    if ((src_tok < 0) | (src_tok >= n)).any() or ((tgt_tok < 0) | (tgt_tok >= m)).any():
        raise ValueError(f"visible keypoints' token indices must lie in [0, {n}) and [0, {m})")
    if ((twin < 0) | (twin >= k)).any():
        raise ValueError(f"twin must hold keypoint indices in [0, {k})")
    src_only, tgt_only = src_vis & ~tgt_vis, tgt_vis & ~src_vis
    bin_rows = torch.cat([src_tok, torch.full_like(tgt_tok, n)], 1)
    bin_cols = torch.cat([torch.full_like(src_tok, m), tgt_tok], 1)
    twin_tok, twin_vis = torch.gather(tgt_tok, 1, twin), torch.gather(tgt_vis, 1, twin)
    oriented = twin != torch.arange(k, device=twin.device)
    return {
        "pos": _unique(src_tok, tgt_tok, src_vis & tgt_vis, shape),
        "bin": _unique(bin_rows, bin_cols, torch.cat([src_only, tgt_only], 1), shape),
        "neg": _unique(src_tok, twin_tok, src_vis & twin_vis & oriented, shape),
    }


def geco_loss(
    log_p: torch.Tensor,
    keypoints: KeypointTokens,
    source_foreground: torch.Tensor,
    target_foreground: torch.Tensor,
    conf: GecoLossConfig | None = None,
) -> dict[str, torch.Tensor]:
    """GECO's loss for a batch of B pairs with (up to) K keypoints each.

    log_p: (B, N+1, M+1) log of the raw OT plan (dustbin last) for N source and M target tokens.
    keypoints: the batch's keypoints on the token grids, fields (B, K).
    source_foreground: (B, N) bool, target_foreground: (B, M) bool object tokens.
    conf: the term weights (default: the published :class:`GecoLossConfig`).
    Returns {"loss": scalar, "loss_pos", "loss_bin", "loss_neg", "loss_fgbg": the weighted entry
    means, "num_pos", "num_bin", "num_neg", "num_fgbg": entries in the batch, "num_skipped": pairs
    skipped for an empty foreground}.
    """
    conf = conf or GecoLossConfig()
    if log_p.ndim != 3:
        raise ValueError(f"log_p must have shape (B, N+1, M+1), got {tuple(log_p.shape)}")
    bsz, n1, m1 = log_p.shape
    n, m = n1 - 1, m1 - 1
    if source_foreground.shape != (bsz, n) or target_foreground.shape != (bsz, m):
        raise ValueError(f"source_foreground/target_foreground must have shapes {(bsz, n)} and {(bsz, m)}, "
                         f"got {tuple(source_foreground.shape)} and {tuple(target_foreground.shape)}")
    used = source_foreground.any(1) & target_foreground.any(1)
    entries = loss_entries((bsz, n1, m1), keypoints, used)
    fg_a, fg_b = source_foreground[:, :, None], target_foreground[:, None, :]
    cross = ((fg_a & ~fg_b) | (~fg_a & fg_b)) & used[:, None, None]
    capped = log_p[:, :n, :m].clamp(max=_MAX_LOG_P)
    costs = {
        "pos": -log_p[entries["pos"]] / n1,
        "bin": -log_p[entries["bin"]] / n1,
        "neg": -log1mexp(log_p[entries["neg"]].clamp(max=_MAX_LOG_P)),
        "fgbg": -log1mexp(capped[cross]),
    }
    weights = {"pos": conf.pos_weight, "bin": conf.bin_weight, "neg": conf.neg_weight, "fgbg": conf.fgbg_weight}
    zero = log_p[:, :0].sum()  # 0 that keeps the graph (a batch of skipped pairs still back-propagates)
    out = {f"loss_{name}": weights[name] * c.mean() if c.numel() else zero for name, c in costs.items()}
    out["loss"] = sum(out.values(), zero)
    out.update({f"num_{name}": log_p.new_tensor(float(c.numel())) for name, c in costs.items()})
    out["num_skipped"] = (~used).sum().float()
    return out
