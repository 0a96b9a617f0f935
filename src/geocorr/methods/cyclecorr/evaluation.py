"""The paper's three evaluations: keypoint transfer, matchability against parts, segmentation transfer.

Keypoint transfer: both images cut to their object box and resized to S×S (S = 128); a transfer
is correct within ``α · max(H, W) = α · S`` crop pixels of the annotation (PCK, pooled over points).
Matchability: a source pixel is truly matchable when its part label occurs in the target
(PASCAL-Part); the predicted matchability is scored by average precision.
Segmentation transfer: each pixel of a real image reads the part label of a rendered CAD shape
where the predicted flow ``F_{r,s}`` sends it; scored by mean IoU over the labels.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ...datasets.base import ImageAnnotation, Pair, keypoint_bbox
from ...datasets.pascal_parts import PartImage
from ...evaluation.kap import average_precision
from ...evaluation.part_segmentation import confusion_matrix, segmentation_scores
from ...evaluation.pck import correct_keypoints
from ...images import load_image
from .camera import Camera, Viewpoint
from .crop import Crop
from .flow import pixel_grid
from .mesh import Mesh
from .model import CycleCorr
from .render import render

__all__ = [
    "keypoint_transfer_pck",
    "matchability_average_precision",
    "matchability_ground_truth",
    "mean_iou",
    "segmentation_transfer",
    "transfer_labels",
]


def _crop(model: CycleCorr, ann: ImageAnnotation) -> tuple[Tensor, Crop]:
    box = ann.bbox if ann.bbox is not None else keypoint_bbox(ann.keypoints, ann.visible)
    return model.crop(load_image(ann.path, str(ann.path)), box)


def keypoint_transfer_pck(model: CycleCorr, pairs: Iterable[Pair],
                          alphas: Sequence[float] = (0.05, 0.1)) -> dict[str, float]:
    """PCK at ``α · S`` on S×S box crops over the keypoints visible in both images of every pair.

    Returns {"pck@α": fraction for each α, "points": number of transferred keypoints}.
    """
    correct, count = [], 0
    for pair in pairs:
        both = np.asarray(pair.source.visible) & np.asarray(pair.target.visible)
        if not both.any():
            continue
        pixels0, crop0 = _crop(model, pair.source)
        pixels1, crop1 = _crop(model, pair.target)
        query = crop0.to_crop(torch.as_tensor(pair.source.keypoints[both], dtype=torch.float32))
        truth = crop1.to_crop(torch.as_tensor(pair.target.keypoints[both], dtype=torch.float32))
        moved, _ = model.transfer(pixels0, pixels1, query)
        size = np.full(len(query), float(model.image_size))
        correct.append(correct_keypoints(moved.numpy(), truth.numpy(), size, alphas))
        count += len(query)
    if not count:
        raise ValueError("no pair has a keypoint visible in both images")
    rate = np.concatenate(correct).mean(0)
    return {**{f"pck@{a:g}": float(r) for a, r in zip(alphas, rate)}, "points": count}


def matchability_ground_truth(parts_a: Tensor, parts_b: Tensor) -> Tensor:
    """A pixel of a is matchable when its part label (> 0) occurs in b. parts: H×W long -> H×W bool."""
    if parts_a.ndim != 2 or parts_b.ndim != 2:
        raise ValueError(f"part maps must be H×W, got {tuple(parts_a.shape)} and {tuple(parts_b.shape)}")
    present = torch.unique(parts_b[parts_b > 0])
    return (parts_a > 0) & torch.isin(parts_a, present)


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


def transfer_labels(flow: Tensor, labels: Tensor) -> Tensor:
    """Each pixel p takes ``labels`` (H'×W' long, -1 or 0 = background) at round(p + flow(p)).

    flow: 2×H×W -> H×W long; pixels sent outside the labelled image get 0.
    """
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must have shape 2×H×W, got {tuple(flow.shape)}")
    height, width = labels.shape
    target = (pixel_grid(*flow.shape[-2:], dtype=flow.dtype) + flow.cpu()).round().long()
    col, row = target[0], target[1]
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    read = labels[row.clamp(0, height - 1), col.clamp(0, width - 1)].clamp(min=0)
    return torch.where(inside, read, torch.zeros_like(read))


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


def segmentation_transfer(model: CycleCorr, image: Tensor, mesh: Mesh, viewpoint: Viewpoint) -> Tensor:
    """Part labels of ``mesh`` (rendered from ``viewpoint``) carried onto a real S×S crop ``image``.

    image: 3×S×S in [0, 1] -> S×S long (0 = background), through the predicted flow F_{image,render}.
    """
    size = model.image_size
    if image.shape != (3, size, size):
        raise ValueError(f"image must be a 3×{size}×{size} crop, got {tuple(image.shape)}")
    shape = render(mesh, Camera.from_viewpoint(viewpoint, (size, size)))
    flow, _ = model.predict(image, shape.rgb)
    return transfer_labels(flow, shape.labels)
