"""The cycle-consistency paper's evaluations (Zhou et al., CVPR 2016) on the shared evaluation code.

Keypoint transfer: both images cut to their object box and resized to S×S (S = 128); a transfer
is correct within ``α · S`` crop pixels of the annotation (PCK, pooled over the keypoints visible
in both images). The pairs run through the shared runner (:func:`~geocorr.evaluation.runner.evaluate`,
which hands the boxes to :meth:`CycleCorr.match`); only the threshold is this protocol's.
Matchability: a source pixel is truly matchable when its part label occurs in the target
(PASCAL-Part); the predicted matchability is scored by the shared average precision
(:mod:`.kap`). Segmentation transfer is scored by the shared mean IoU (:mod:`.part_segmentation`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..datasets.base import Pair, PairDataset, keypoint_bbox
from ..datasets.pascal_parts import PartImage
from ..images import load_image
from ..methods.cyclecorr.crop import Crop
from ..methods.cyclecorr.model import CycleCorr
from ..methods.cyclecorr.network import NetworkConfig
from ..methods.cyclecorr.parts import matchability_ground_truth
from .kap import average_precision
from .part_segmentation import confusion_matrix, segmentation_scores
from .pck import correct_keypoints
from .runner import evaluate

__all__ = ["baselines", "identity_transfer_pck", "keypoint_transfer_pck", "matchability_average_precision",
           "mean_iou"]


def keypoint_transfer_pck(model: CycleCorr, pairs: Iterable[Pair], alphas: Sequence[float] = (0.05, 0.1)
                          ) -> dict[str, float]:
    """PCK at ``α · S`` on S×S box crops over the keypoints visible in both images of every pair.

    Returns {"pck@α": fraction for each α, "points": number of transferred keypoints}.
    """
    pairs = list(pairs)
    name = pairs[0].category if pairs else "pairs"
    predictions = evaluate(model, PairDataset(name, "eval", pairs), context=("boxes",), progress=False)
    correct = []
    for record in predictions.pairs:
        both = record.source_visible & record.target_visible
        if not both.any():
            continue
        width, height = (int(v) for v in record.target_size)
        crop = Crop.from_box(record.target_bbox, (height, width), model.image_size)
        moved = crop.to_crop(torch.as_tensor(record.predicted[both], dtype=torch.float32))
        truth = crop.to_crop(torch.as_tensor(record.target_keypoints[both], dtype=torch.float32))
        size = np.full(len(truth), float(model.image_size))
        correct.append(correct_keypoints(moved.numpy(), truth.numpy(), size, alphas))
    if not correct:
        raise ValueError("no pair has a keypoint visible in both images")
    hits = np.concatenate(correct)
    return {**{f"pck@{a:g}": float(r) for a, r in zip(alphas, hits.mean(0), strict=True)}, "points": len(hits)}


def _crop_of(ann, size: int) -> Crop:
    box = ann.bbox if ann.bbox is not None else keypoint_bbox(ann.keypoints, ann.visible)
    return Crop.from_box(box, (int(ann.size[1]), int(ann.size[0])), size)


def identity_transfer_pck(pairs: Iterable[Pair], image_size: int = 128, alphas: Sequence[float] = (0.05, 0.1)
                          ) -> dict[str, float]:
    """The identity map's PCK on the crop protocol: each keypoint stays at its crop position.

    The baseline every keypoint-transfer figure needs beside it (box crops align objects already).
    """
    correct = []
    for pair in pairs:
        both = np.asarray(pair.source.visible) & np.asarray(pair.target.visible)
        if not both.any():
            continue
        moved = _crop_of(pair.source, image_size).to_crop(torch.as_tensor(pair.source.keypoints[both]).float())
        truth = _crop_of(pair.target, image_size).to_crop(torch.as_tensor(pair.target.keypoints[both]).float())
        correct.append(correct_keypoints(moved.numpy(), truth.numpy(), np.full(len(truth), float(image_size)), alphas))
    if not correct:
        raise ValueError("no pair has a keypoint visible in both images")
    hits = np.concatenate(correct)
    return {**{f"pck@{a:g}": float(r) for a, r in zip(alphas, hits.mean(0), strict=True)}, "points": len(hits)}


def baselines(pairs: Sequence[Pair], image_size: int = 128, alphas: Sequence[float] = (0.05, 0.1), seed: int = 0
              ) -> dict[str, float]:
    """PCK of the identity map and of a randomly initialised network (``seed``) on the crop protocol:
    {"identity_pck@α": ..., "random_pck@α": ...}."""
    identity = identity_transfer_pck(pairs, image_size, alphas)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random_net = CycleCorr(network=NetworkConfig(image_size=image_size)).eval()
    random = keypoint_transfer_pck(random_net, pairs, alphas)
    return {**{f"identity_{k}": v for k, v in identity.items() if k != "points"},
            **{f"random_{k}": v for k, v in random.items() if k != "points"}}


def matchability_average_precision(model: CycleCorr, pairs: Iterable[tuple[PartImage, PartImage]]) -> float:
    """AP of the predicted ``M_{a,b}`` against part co-occurrence, pooled over the pixels of every pair.

    Each image is cut to its annotated object (labels ≥ 0) and resized to S×S; a pixel of a is
    truly matchable when its part occurs in b (:func:`matchability_ground_truth`).
    """
    scores, truths = [], []
    for part_a, part_b in pairs:
        crops = []
        for part in (part_a, part_b):
            labels = torch.as_tensor(np.asarray(part.labels), dtype=torch.long)
            rows, cols = torch.nonzero(labels >= 0, as_tuple=True)
            if len(rows) == 0:
                raise ValueError(f"{part.path}: no annotated part pixel")
            box = (cols.min().item(), rows.min().item(), cols.max().item(), rows.max().item())
            pixels, crop = model.crop(load_image(part.path, str(part.path)), box)
            crops.append((pixels, crop.apply_labels(labels) + 1))  # 0 = not a part
        (pixels_a, parts_a), (pixels_b, parts_b) = crops
        _, matchability = model.predict(pixels_a, pixels_b)
        scores.append(matchability[0].cpu().flatten())
        truths.append(matchability_ground_truth(parts_a, parts_b).flatten())
    if not scores:
        raise ValueError("matchability_average_precision needs at least one pair")
    truth = torch.cat(truths).numpy()
    if not truth.any():
        raise ValueError("matchability_average_precision: no pixel of any pair is matchable (no shared part)")
    return average_precision(torch.cat(scores).numpy(), truth, int(truth.sum()))


def mean_iou(predicted: Tensor, truth: Tensor, labels: Sequence[int]) -> float:
    """Mean intersection-over-union (fraction) of ``predicted`` vs ``truth`` (same-shape label maps)
    over ``labels``, with the shared segmentation scores (:mod:`geocorr.evaluation.part_segmentation`);
    a label absent from the truth is left out of the mean."""
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted must have shape {tuple(truth.shape)}, got {tuple(predicted.shape)}")
    labels = list(labels)
    ids = {label: n + 1 for n, label in enumerate(labels)}  # 0: every other value
    remap = np.vectorize(lambda v: ids.get(int(v), 0), otypes=[np.int64])
    confusion = confusion_matrix(remap(predicted.numpy().ravel()), remap(truth.numpy().ravel()), len(labels) + 1)
    scores = segmentation_scores(confusion, list(range(1, len(labels) + 1)))
    if np.isnan(scores["miou"]):
        raise ValueError(f"none of the labels {labels} occurs in the truth")
    return scores["miou"] / 100
