"""GeoAware's training objective L = L_dense + L_sparse, as pure tensor functions.

L_dense = mean_i ‖SoftArgmax(S_i) − (p_i^t + ε_i)‖₂ with S_i = F̃^s(p_i^s)ᵀ F̃^t (cosine
similarities of the refined features) and ε_i Gaussian noise on the ground truth; L_sparse is a
CLIP-style contrastive loss with a learnable logit scale between the refined features at the
annotated keypoints of the two images (on the original pair only; the pose variants get L_dense
only, see :meth:`.model.GeoAware.training_step`).
The paper sums over keypoints; we average over the valid ones, so that pairs with many and few
keypoints weigh the same (AdamW is insensitive to the overall scale of the loss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...matching import soft_argmax


def _check_valid(valid: torch.Tensor, shape: tuple[int, int]) -> None:
    if valid.dtype != torch.bool or tuple(valid.shape) != shape:
        raise ValueError(f"valid: expected a bool tensor of shape {shape}, got {valid.dtype} {tuple(valid.shape)}")


def dense_loss(sim: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, temperature: float = 0.02,
               noise: torch.Tensor | None = None) -> torch.Tensor:
    """Mean end-point error of the soft-argmax of each similarity map against the (perturbed) target.

    sim: (B, N, h, w) similarity of each source keypoint's feature with the target map.
    target: (B, N, 2) ground-truth (x, y) on the target grid; valid: (B, N) bool (only these count).
    noise: (B, N, 2) added to the target (the paper's ε), or None.
    Returns a scalar (0 when nothing is valid).
    """
    if sim.ndim != 4 or target.shape != (*sim.shape[:2], 2):
        raise ValueError(f"dense_loss: sim (B, N, h, w) and target (B, N, 2) disagree: "
                         f"{tuple(sim.shape)} vs {tuple(target.shape)}")
    _check_valid(valid, (sim.shape[0], sim.shape[1]))
    if noise is not None:
        if noise.shape != target.shape:
            raise ValueError(f"noise: expected shape {tuple(target.shape)}, got {tuple(noise.shape)}")
        target = target + noise
    error = (soft_argmax(sim, temperature) - target).norm(dim=-1)
    return error[valid].sum() / valid.sum().clamp(min=1)


def sparse_loss(desc_src: torch.Tensor, desc_tgt: torch.Tensor, valid: torch.Tensor,
                logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP-style symmetric cross-entropy: source keypoint i must be most similar to target keypoint i.

    desc_src, desc_tgt: (B, N, C) features at corresponding keypoints; valid: (B, N) bool (keypoints
    visible in both images; the others are neither anchors nor negatives).
    logit_scale: the multiplier of the cosine similarities, > 0 — in training ``exp`` of the
    post-processor's learnable ``logit_scale`` (published: starts at 1/0.07, Junyi42/GeoAware-SC @
    99fd6b6 ``model_utils/projection_network.py``; loss ``utils/utils_losses.py`` ``cal_clip_loss``).
    Per pair: (mean row CE + mean column CE) / 2 over its valid keypoints; pairs weigh by their
    number of valid keypoints. Returns a scalar (0 when nothing is valid).
    """
    if desc_src.ndim != 3 or desc_src.shape != desc_tgt.shape:
        raise ValueError(f"sparse_loss: desc_src and desc_tgt must both be (B, N, C), got "
                         f"{tuple(desc_src.shape)} and {tuple(desc_tgt.shape)}")
    _check_valid(valid, (desc_src.shape[0], desc_src.shape[1]))
    scale = torch.as_tensor(logit_scale, dtype=desc_src.dtype, device=desc_src.device)
    if scale.ndim != 0 or not scale > 0:
        raise ValueError(f"logit_scale must be a positive scalar, got {logit_scale}")
    logits = scale * (F.normalize(desc_src, dim=-1) @ F.normalize(desc_tgt, dim=-1).transpose(1, 2))
    pair_valid = valid[:, :, None] & valid[:, None, :]
    # a finite fill keeps the gradient of rows without any valid entry at 0 instead of NaN
    logits = logits.masked_fill(~pair_valid, torch.finfo(logits.dtype).min)
    diag = torch.diagonal(logits, dim1=1, dim2=2)  # (B, N)
    rows = torch.logsumexp(logits, dim=2) - diag  # source i against all target keypoints
    cols = torch.logsumexp(logits, dim=1) - diag  # target i against all source keypoints
    total = (rows + cols).masked_fill(~valid, 0.0)
    return total.sum() / (2 * valid.sum().clamp(min=1))
