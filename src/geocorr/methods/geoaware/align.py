"""Test-time adaptive pose alignment (the paper's † rows) and global pose votes, as pure functions.

GeoAware with ``pose_align=True`` (:meth:`.model.GeoAware.match_features`) matches a pair twice:
from the source and from its mirror image. The mirror is used when its instance matching distance
(IMD, :mod:`.pose`) to the target is smaller, and then only for the keypoints whose left/right
partner is mutually visible; keypoint ``i`` is then queried where the mirror shows its partner
``flip[i]``. Published setting, read from Junyi42/GeoAware-SC @ 99fd6b6: ``pck_train.py``
(``compute_pck``, ``ADAPT_FLIP``), ``utils/utils_correspondence.py`` ``get_distance`` (features
normalised per token on the 60×60 grid, bilinearly resized to 64×64 and *not* re-normalised, SAM
object masks of both images resized to 64×64 by nearest neighbour) and ``utils/utils_geoware.py``
``optimized_kps_1_to_2`` (the mutual-visibility rule).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ...grid import TokenGrid
from ...images import ImageLike, load_image
from .augmentation import flip_permutation
from .pose import imd_features, instance_matching_distance, predict_pose

IMD_SIZE = 64  # side of the grid IMD is computed on (published)


def imd_mask(mask: np.ndarray | torch.Tensor | None, grid: TokenGrid, size: int = IMD_SIZE) -> torch.Tensor:
    """The object mask on the size × size IMD grid laid over the whole backbone input (padding included).

    mask: (H, W) bool object mask in image pixels, or None (then: the image content, i.e. every
    position that is not padding). Each IMD position takes the input pixel torch's nearest resize
    picks (index floor(i · input side / size)), and that pixel the image pixel it was resized from.
    """
    (ih, iw), (ch, cw), (top, left) = grid.input_hw, grid.content_hw, grid.offset
    (h, w) = grid.image_hw
    v = torch.div(torch.arange(size) * ih, size, rounding_mode="floor") - top  # content rows of the samples
    u = torch.div(torch.arange(size) * iw, size, rounding_mode="floor") - left
    inside = ((v >= 0) & (v < ch))[:, None] & ((u >= 0) & (u < cw))[None, :]
    if mask is None:
        return inside
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    if m.shape != (h, w):
        raise ValueError(f"object mask: expected shape {(h, w)} (the image's), got {tuple(m.shape)}")
    rows = ((v.clamp(0, ch - 1) + 0.5) * h / ch).long().clamp(0, h - 1)
    cols = ((u.clamp(0, cw - 1) + 0.5) * w / cw).long().clamp(0, w - 1)
    return inside & m[rows[:, None], cols[None, :]]


def flip_distances(source: torch.Tensor, mirrored: torch.Tensor, target: torch.Tensor,
                   grids: tuple[TokenGrid, TokenGrid], masks=None, size: int = IMD_SIZE) -> tuple[float, float]:
    """IMD of the source and of its mirror image to the target -> (as is, mirrored).

    source, mirrored, target: (C, h, w) features on the grids of the source and the target (the
    mirror shares the source's grid); masks: (source mask, target mask) in image pixels, or None.
    A mask that covers no IMD position gives (nan, nan): no alignment, as in the released code (whose
    mean over no position is NaN, and NaN < NaN is false).
    """
    mask0, mask1 = masks if masks is not None else (None, None)
    m0 = imd_mask(mask0, grids[0], size)
    m0_mirror = imd_mask(None if mask0 is None else np.ascontiguousarray(np.asarray(mask0)[:, ::-1]), grids[0], size)
    m1 = imd_mask(mask1, grids[1], size).to(target.device)
    if not (m0.any() and m0_mirror.any() and m1.any()):
        return float("nan"), float("nan")
    tgt = imd_features(target, size)
    d = instance_matching_distance(imd_features(source, size), tgt, m0.to(source.device), m1)
    d_mirror = instance_matching_distance(imd_features(mirrored, size), tgt, m0_mirror.to(source.device), m1)
    return float(d), float(d_mirror)


def mirrored_queries(points: torch.Tensor, keypoint_ids, target_visible, flip: Sequence[int] | torch.Tensor,
                     width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which queries use the mirror image, and where they are queried in it.

    points: (N, 2) source pixels of the queries; keypoint_ids: (N,) their keypoint index (the
    queries are the source-visible keypoints); target_visible: (K,) bool; flip: (K,) permutation;
    width: of the source image. Query n (keypoint i) uses the mirror iff i and its partner
    j = flip[i] are both visible in the source and in the target; it is then queried at the mirrored
    position of keypoint j, (W − 1 − x_j, y_j). Returns (use (N,) bool, query (N, 2); rows not used
    hold the query's own point).
    """
    ids = torch.as_tensor(np.asarray(keypoint_ids), dtype=torch.long)
    tvis = torch.as_tensor(np.asarray(target_visible, dtype=bool))
    if ids.shape != (len(points),):
        raise ValueError(f"context.keypoint_ids: expected one id per query point ({len(points)}), got shape "
                         f"{tuple(ids.shape)}")
    perm = flip_permutation(flip, len(tvis))
    if len(ids) and (ids.min() < 0 or ids.max() >= len(tvis)):
        raise ValueError(f"context.keypoint_ids: ids must lie in 0..{len(tvis) - 1}, got {ids.tolist()}")
    position = torch.full((len(tvis),), -1, dtype=torch.long)
    position[ids] = torch.arange(len(ids))
    partner = perm[ids]
    use = tvis[ids] & tvis[partner] & (position[partner] >= 0)
    query = points.clone()
    source = points[position[partner[use]]]
    query[use] = torch.stack([width - 1 - source[:, 0], source[:, 1]], dim=-1)
    return use, query


def predict_image_pose(model, image: ImageLike, template_sets: Sequence[Mapping[str, ImageLike]],
                       imd_size: int | None = IMD_SIZE) -> str:
    """Global pose label of ``image`` by IMD votes over template sets (see :func:`.pose.predict_pose`).

    template_sets: each maps pose labels ("left", "right", "front", ...) to a template image.
    """
    labels = [(i, label) for i, templates in enumerate(template_sets) for label in templates]
    images = [load_image(image, "image")] + [load_image(template_sets[i][label], f"template {label!r}")
                                             for i, label in labels]
    feats = model.features(images)

    def content(k: int) -> torch.Tensor:
        r0, r1, c0, c1 = feats.grids[k].content_tokens
        return feats.dense[k, :, r0:r1, c0:c1]

    prepared = [imd_features(content(k), imd_size) for k in range(len(images))]
    sets: list[dict[str, torch.Tensor]] = [{} for _ in template_sets]
    for (i, label), feat in zip(labels, prepared[1:], strict=True):
        sets[i][label] = feat
    return predict_pose(prepared[0], sets)
