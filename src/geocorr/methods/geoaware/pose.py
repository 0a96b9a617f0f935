"""Global pose from deep features: instance matching distance (IMD) and pose votes.

IMD(I^s, I^t, M^s) = mean over source positions p in the mask M^s of
‖F^s(p) − NN(F^s(p), F^t)‖₂, the distance of each source feature to its nearest target feature
(the paper writes a sum; the released code averages, which makes masks of different sizes
comparable). It is 0 for identical images and small when the two instances have the same pose.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F


def _flatten(feat: torch.Tensor, mask: torch.Tensor | None, name: str) -> torch.Tensor:
    if feat.ndim != 3:
        raise ValueError(f"{name}: expected features of shape (C, h, w), got {tuple(feat.shape)}")
    flat = feat.flatten(1).T  # (h*w, C)
    if mask is None:
        return flat
    if mask.dtype != torch.bool or mask.shape != feat.shape[1:]:
        raise ValueError(f"{name} mask: expected a bool tensor of shape {tuple(feat.shape[1:])}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")
    if not mask.any():
        raise ValueError(f"{name} mask selects no position")
    return flat[mask.flatten()]


def instance_matching_distance(feat_src: torch.Tensor, feat_tgt: torch.Tensor,
                               mask_src: torch.Tensor | None = None,
                               mask_tgt: torch.Tensor | None = None) -> torch.Tensor:
    """Mean nearest-neighbour L2 distance from the (masked) source features to the target features.

    feat_src: (C, h, w), feat_tgt: (C, h', w'); masks: (h, w) / (h', w') bool or None (everything).
    Returns a scalar tensor.
    """
    src = _flatten(feat_src, mask_src, "source")
    tgt = _flatten(feat_tgt, mask_tgt, "target")
    if src.shape[1] != tgt.shape[1]:
        raise ValueError(f"source and target features have {src.shape[1]} and {tgt.shape[1]} channels")
    return torch.cdist(src[None], tgt[None])[0].min(dim=1).values.mean()


def imd_features(feat: torch.Tensor, size: int | None = 64) -> torch.Tensor:
    """Features prepared for IMD: L2-normalised per position, then bilinearly resized to size × size
    (None: kept) and not re-normalised, as the released ``get_distance`` (Junyi42/GeoAware-SC @ 99fd6b6,
    ``utils/utils_correspondence.py``) does.

    feat: (C, h, w) -> (C, size, size).
    """
    if feat.ndim != 3:
        raise ValueError(f"features: expected shape (C, h, w), got {tuple(feat.shape)}")
    feat = F.normalize(feat.float(), dim=0)
    if size is not None:
        feat = F.interpolate(feat[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return feat


def predict_pose(feat: torch.Tensor, template_sets: Sequence[Mapping[str, torch.Tensor]]) -> str:
    """Pose label of an image by a vote over template sets.

    feat: (C, h, w) features of the image. template_sets: each maps pose labels ("left", "right",
    ...) to the (C, h', w') features of one template image in that pose. Each set votes for the
    label of its template with the smallest IMD; the most voted label wins, ties go to the label
    with the smallest summed IMD.
    """
    if not template_sets or any(len(s) == 0 for s in template_sets):
        raise ValueError("template_sets must hold at least one non-empty set of templates")
    votes: Counter[str] = Counter()
    total: dict[str, float] = {}
    for templates in template_sets:
        distances = {label: float(instance_matching_distance(feat, t)) for label, t in templates.items()}
        votes[min(distances, key=distances.__getitem__)] += 1
        for label, d in distances.items():
            total[label] = total.get(label, 0.0) + d
    return min(votes, key=lambda label: (-votes[label], total[label]))
