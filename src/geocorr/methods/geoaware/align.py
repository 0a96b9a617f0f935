"""Test-time adaptive pose alignment (zero-shot and supervised).

The source image is posed several ways (published: as is and mirrored); the pose whose features
have the smallest instance matching distance (IMD) to the target is kept and the source keypoints
are queried in it. A mirror changes handedness, so keypoint ``i`` is then queried where the
mirrored image shows keypoint ``flip[i]`` (the "index used to flip source keypoints at test
time" of the paper); rotations keep ids. Keypoints whose mirrored counterpart is not annotated
fall back to the unposed source.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ...datasets.base import ImageAnnotation, PairDataset, keypoint_bbox
from ...images import ImageLike, load_image
from ..base import Features
from .augmentation import flip_permutation
from .pose import (
    POSES,
    apply_pose,
    imd_features,
    instance_matching_distance,
    pose_points,
    predict_pose,
)

PUBLISHED_POSES = ("identity", "hflip")


@dataclass
class AlignedMatches:
    """Matches of K keypoints after pose alignment.

    points: (K, 2) target pixels, NaN for keypoints not visible in the source; scores: (K,).
    pose: the chosen pose of the source; distances: IMD of every pose tried.
    """

    points: torch.Tensor
    scores: torch.Tensor
    pose: str
    distances: dict[str, float]


def _content(feats: Features) -> torch.Tensor:
    """(C, h, w) features of the tokens that overlap image content."""
    ch, cw = feats.grids[0].content_grid_hw
    return feats.dense[0, :, :ch, :cw]


def posed_features(model, image: torch.Tensor, poses: Sequence[str]) -> dict[str, Features]:
    """Features of ``apply_pose(image, pose)`` for every pose (one ``model.features`` call)."""
    for pose in poses:
        if pose not in POSES:
            raise ValueError(f"unknown pose {pose!r}; known: {', '.join(POSES)}")
    feats = model.features([apply_pose(image, p) for p in poses])
    return {p: feats[i] for i, p in enumerate(poses)}


def choose_pose(source: Mapping[str, Features], target: Features, imd_size: int | None = 64) -> tuple[str, dict]:
    """The pose of ``source`` (pose -> features) with the smallest IMD to ``target`` -> (pose, distances)."""
    tgt = imd_features(_content(target), imd_size)
    distances = {p: float(instance_matching_distance(imd_features(_content(f), imd_size), tgt))
                 for p, f in source.items()}
    return min(distances, key=distances.get), distances


def match_aligned(model, source: ImageLike, target: ImageLike, keypoints, flip: Sequence[int] | None = None,
                  poses: Sequence[str] = PUBLISHED_POSES, imd_size: int | None = 64) -> AlignedMatches:
    """Match all K source keypoints into the target after adaptive pose alignment.

    model: a geocorr model with ``features`` and ``match_features``.
    keypoints: (K, 2) source pixels, NaN for keypoints that are not visible (they get NaN).
    flip: the keypoint ``flip`` permutation (needed when "hflip" is among the poses).
    imd_size: side of the grid the features are resized to for IMD (published 64; None: as is).
    """
    if "identity" not in poses:
        raise ValueError(f"poses must include 'identity' (the fallback), got {list(poses)}")
    if "hflip" in poses and flip is None:
        raise ValueError("the 'hflip' pose needs the keypoint flip permutation (flip=...)")
    src = load_image(source, "source")
    kps = torch.as_tensor(keypoints, dtype=torch.float32)
    if kps.ndim != 2 or kps.shape[1] != 2:
        raise ValueError(f"keypoints: expected shape (K, 2), got {tuple(kps.shape)}")
    tgt_feats = model.features(load_image(target, "target"))
    feats = posed_features(model, src, poses)
    pose, distances = choose_pose(feats, tgt_feats, imd_size)
    hw = (int(src.shape[1]), int(src.shape[2]))
    visible = ~kps.isnan().any(dim=1)
    if pose == "hflip":
        perm = flip_permutation(flip, len(kps))
        query = pose_points(kps[perm], pose, hw)  # keypoint i is shown where the mirror shows flip[i]
    else:
        query = pose_points(kps, pose, hw)
    posed_ok = ~query.isnan().any(dim=1)
    points = torch.full((len(kps), 2), float("nan"))
    scores = torch.full((len(kps),), float("nan"))
    for name, ids in ((pose, posed_ok & visible), ("identity", visible & ~posed_ok)):
        if ids.any():
            pts = query[ids] if name == pose else kps[ids]
            matches = model.match_features(feats[name], tgt_feats, pts)
            points[ids], scores[ids] = matches.points.float().cpu(), matches.scores.float().cpu()
    return AlignedMatches(points, scores, pose, distances)


def predict_image_pose(model, image: ImageLike, template_sets: Sequence[Mapping[str, ImageLike]],
                       imd_size: int | None = 64) -> str:
    """Global pose label of ``image`` by IMD votes over template sets (see :func:`.pose.predict_pose`).

    template_sets: each maps pose labels ("left", "right", "front", ...) to a template image.
    """
    labels = [(i, label) for i, templates in enumerate(template_sets) for label in templates]
    images = [load_image(image, "image")] + [load_image(template_sets[i][label], f"template {label!r}")
                                             for i, label in labels]
    feats = model.features(images)
    prepared = [imd_features(_content(feats[k]), imd_size) for k in range(len(images))]
    sets: list[dict[str, torch.Tensor]] = [{} for _ in template_sets]
    for (i, label), feat in zip(labels, prepared[1:]):
        sets[i][label] = feat
    return predict_pose(prepared[0], sets)


def _box(ann: ImageAnnotation) -> np.ndarray:
    if ann.bbox is not None:
        return np.asarray(ann.bbox, dtype=np.float64)
    return keypoint_bbox(ann.keypoints, ann.visible)


def evaluate_aligned(model, dataset: PairDataset, flips: Mapping[str, Sequence[int]] | None = None,
                     poses: Sequence[str] = PUBLISHED_POSES, imd_size: int | None = 64,
                     progress: bool = True):
    """Predictions of ``dataset`` with adaptive pose alignment, for :func:`geocorr.evaluation.metrics.compute_metrics`.

    flips: category -> flip permutation (default: ``dataset.symmetry``).
    """
    from ...evaluation.predictions import PairPrediction, Predictions

    tables = flips if flips is not None else {c: t["flip"] for c, t in dataset.symmetry.items() if "flip" in t}
    records = []
    for pair in tqdm(dataset.pairs, desc=f"eval {dataset.name} (pose-aligned)", unit="pair", disable=not progress):
        if "hflip" in poses and pair.category not in tables:
            raise ValueError(f"pose alignment with 'hflip' needs the flip permutation of category "
                             f"{pair.category!r} of dataset {dataset.name!r}")
        src, trg = pair.source, pair.target
        kps = np.where(src.visible[:, None], src.keypoints, np.nan)
        kps = np.clip(kps, -0.5, [src.size[0] - 0.5, src.size[1] - 0.5])  # NaN stays NaN
        out = match_aligned(model, src.path, trg.path, kps, tables.get(pair.category), poses, imd_size)
        records.append(PairPrediction(
            category=pair.category, source=str(src.path), target=str(trg.path),
            source_keypoints=src.keypoints, target_keypoints=trg.keypoints,
            source_visible=src.visible, target_visible=trg.visible,
            predicted=out.points.numpy().astype(np.float64), scores=out.scores.numpy().astype(np.float64),
            source_bbox=_box(src), target_bbox=_box(trg),
            source_size=np.asarray(src.size), target_size=np.asarray(trg.size),
        ))
    symmetry = {c: dict(t) for c, t in dataset.symmetry.items()}
    return Predictions(dataset.name, dataset.split, {"pose_alignment": list(poses)}, records, symmetry,
                       {"pairs": len(records)})
