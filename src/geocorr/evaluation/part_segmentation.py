"""Part segmentation from dense features (GECO's PascalParts evaluation).

Features are sampled at every ``stride``-th labelled pixel (bilinear on the token grid), projected
on the first 32 principal components fitted on the training pixels, and classified by the
nearest class centroid in Manhattan (L1) distance. Scores from the confusion matrix C (rows =
ground truth, columns = prediction): pixel accuracy, per-class precision and recall, IoU, their
means over classes present in the ground truth, C normalised by ground-truth pixels (rows sum to
1), the same scores restricted to the oriented (left/right) parts, and the left/right confusion:
the share of oriented pixels predicted as their mirrored part.
"""
from __future__ import annotations

import numpy as np
import torch

from ..datasets.pascal_parts import IGNORE, PartDataset, PartImage
from ..images import load_image
from ..matching import sample_features


def pca_fit(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, C) -> mean (C,), components (C, k') with k' = min(k, N, C), by variance (descending)."""
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"pca_fit needs x of shape (N, C) with N >= 2, got {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return mean, vh[:k].T


def nearest_centroid_fit(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """x: (N, D), labels: (N,) in [0, num_classes) -> centroids (num_classes, D); NaN rows for absent classes."""
    if x.ndim != 2 or labels.shape != (len(x),):
        raise ValueError(f"expected x (N, D) and labels (N,), got {tuple(x.shape)} and {tuple(labels.shape)}")
    sums = torch.zeros(num_classes, x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=num_classes).to(x.dtype)[:, None]
    return sums / counts  # 0/0 -> NaN for classes without training pixels


def nearest_centroid_predict(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """x: (N, D), centroids (K, D) -> (N,) index of the L1-nearest centroid (NaN centroids never win)."""
    dist = torch.cdist(x[None], torch.nan_to_num(centroids, nan=float("inf"))[None], p=1)[0]
    return dist.argmin(dim=1)


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """predicted, truth: (N,) class ids -> (K, K) counts, rows = truth."""
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(truth), np.asarray(predicted)), 1)
    return out


def segmentation_scores(confusion: np.ndarray, classes: list[int] | None = None) -> dict:
    """Scores (percent) of a (K, K) confusion matrix; ``classes`` restricts rows and means to some ids."""
    confusion = np.asarray(confusion, dtype=np.float64)
    classes = list(range(len(confusion))) if classes is None else list(classes)
    rows = confusion[classes]
    tp = confusion[classes, classes]
    truth, predicted = rows.sum(1), confusion[:, classes].sum(0)
    present = truth > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = tp / truth
        iou = tp / (truth + predicted - tp)
    return {
        "accuracy": 100 * float(tp.sum() / max(truth.sum(), 1)),
        "mean_precision": 100 * float(precision[present].mean()) if present.any() else float("nan"),
        "mean_recall": 100 * float(recall[present].mean()) if present.any() else float("nan"),
        "miou": 100 * float(iou[present].mean()) if present.any() else float("nan"),
        "iou": [100 * float(v) if p else float("nan") for v, p in zip(iou, present, strict=True)],
    }


def _pixel_features(model, image: PartImage, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, C) features and (n,) labels of every ``stride``-th labelled pixel of one image."""
    labels = image.labels[::stride, ::stride]
    ys, xs = np.nonzero(labels != IGNORE)
    points = torch.as_tensor(np.stack([xs * stride, ys * stride], 1), dtype=torch.float32)
    feats = model.features([load_image(image.path, str(image.path))])
    grid = feats.grids[0]
    h, w = grid.grid_hw
    sampled = sample_features(feats.dense[..., :h, :w].float(), grid.image_to_grid(points)[None])[0]
    return sampled.cpu(), torch.as_tensor(labels[ys, xs])


def evaluate_part_segmentation(model, dataset: PartDataset, num_components: int = 32, stride: int = 4,
                               max_train_pixels: int = 200_000, seed: int = 0) -> dict:
    """Fit PCA + nearest centroids on ``dataset.train``, score ``dataset.test`` (see module docstring)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    k = len(dataset.part_names)
    train = [_pixel_features(model, im, stride) for im in dataset.train]
    x, y = torch.cat([f for f, _ in train]), torch.cat([lab for _, lab in train])
    if len(x) > max_train_pixels:
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_train_pixels]
        x, y = x[keep], y[keep]
    mean, components = pca_fit(x, num_components)
    centroids = nearest_centroid_fit((x - mean) @ components, y, k)
    confusion = np.zeros((k, k), dtype=np.int64)
    for image in dataset.test:
        feats, labels = _pixel_features(model, image, stride)
        predicted = nearest_centroid_predict((feats - mean) @ components, centroids)
        confusion += confusion_matrix(predicted.numpy(), labels.numpy(), k)
    scores = segmentation_scores(confusion)
    truth = confusion.sum(1, keepdims=True)
    scores["confusion"] = np.divide(confusion, truth, out=np.zeros(confusion.shape), where=truth > 0).tolist()
    scores["part_names"] = dataset.part_names
    if dataset.oriented:
        scores["oriented"] = segmentation_scores(confusion, dataset.oriented)
        name_id = {n: i for i, n in enumerate(dataset.part_names)}
        mirror = [name_id[{"l": "r", "r": "l"}[dataset.part_names[i][0]] + dataset.part_names[i][1:]]
                  for i in dataset.oriented]
        swapped = sum(confusion[i, j] for i, j in zip(dataset.oriented, mirror, strict=True))
        scores["oriented"]["lr_confusion"] = 100 * swapped / max(int(confusion[dataset.oriented].sum()), 1)
    scores["num_train_images"], scores["num_test_images"] = len(dataset.train), len(dataset.test)
    return scores
