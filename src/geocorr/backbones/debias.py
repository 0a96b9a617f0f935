"""Positional de-biasing of dense ViT features (INSID3, Cuttano et al., CVPR 2026).

DINOv3's patch features carry a component that depends on the token's *position*, not on what it
shows; two images then look alike at equal positions, which misleads cross-image matching. INSID3
estimates that component from the features of an image without content — a black image (zeros
after ImageNet normalisation of black pixels) at the input size used for matching — and projects
it out (facts from visinf/INSID3, ``models/insid3.py``: ``_build_positional_basis``,
``_debias_features``):

1. features of the black image, L2-normalised per token, centred over tokens: ``E`` (C, h·w);
2. the positional subspace is spanned by the first ``k`` left singular vectors ``U_k`` of ``E``
   (INSID3: k = 500 of C = 1024 for ViT-L/16 at 1024 px);
3. every L2-normalised feature ``f`` becomes ``normalise((I − U_k U_kᵀ) f)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def positional_basis(blank: torch.Tensor, components: int) -> torch.Tensor:
    """Orthonormal basis (C, k) of the positional subspace, from the features of a blank image.

    blank: (C, h, w) features of an image without content. components: k, 1 <= k < C.
    """
    if blank.ndim != 3:
        raise ValueError(f"blank: expected (C, h, w) features, got shape {tuple(blank.shape)}")
    channels = blank.shape[0]
    if not 1 <= components < channels:
        raise ValueError(f"debias_components must lie in [1, {channels - 1}] for {channels}-channel features "
                         f"(k = C would remove every direction), got {components}")
    tokens = F.normalize(blank.float().flatten(1), dim=0)  # (C, h·w), unit tokens
    centred = tokens - tokens.mean(dim=1, keepdim=True)
    u, _, _ = torch.linalg.svd(centred, full_matrices=False)
    return u[:, :components].contiguous()


def project_out(features: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove the span of ``basis`` from L2-normalised features and re-normalise them.

    features: (B, C, h, w); basis: (C, k) orthonormal -> (B, C, h, w) unit-norm features (fp32).
    """
    if features.ndim != 4 or basis.ndim != 2 or features.shape[1] != basis.shape[0]:
        raise ValueError(f"features (B, C, h, w) and basis (C, k) must share C, got {tuple(features.shape)} "
                         f"and {tuple(basis.shape)}")
    unit = F.normalize(features.float(), dim=1)
    basis = basis.to(unit.device)
    along = torch.einsum("ck,bchw->bkhw", basis, unit)
    return F.normalize(unit - torch.einsum("ck,bkhw->bchw", basis, along), dim=1)
