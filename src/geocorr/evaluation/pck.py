"""Percentage of Correct Keypoints (PCK@α), the metric every semantic-correspondence paper reports.

A predicted keypoint is correct when its distance d to the ground truth is within ``α · L``, with
``L`` the larger side, ``max(h, w)``, of a reference box: the target image (image normalisation) or
the target object's bounding box (bbox normalisation), in original target-image pixels. A box
``(x0, y0, x1, y1)`` has width ``x1 - x0`` and height ``y1 - y0``. The comparison (``COMPARISONS``)
is that of the code a protocol reproduces:

- ``"<="``: ``d ≤ α · L`` in float64 (geocorr);
- ``"<=f32"``: ``d / L ≤ α`` with d, L and α in float32 (GECO, ``src/evaluation/pck.py``);
- ``"<f32"``: ``d < α · L`` (strict) with d and α in float32 (GeoAware-SC, ``pck_train.py``
  ``compute_pck``): the product α · L in float64 for a box L, in float32 for the image L
  (``float32_threshold``), as there.

``frame``: when given (GeoAware's 840), d and L are first rescaled by ``frame / max(W, H)`` of the
target image, as GeoAware measures them in its padded square frame.

Averaging: ``"point"`` pools every evaluated keypoint (PCK = correct points / points);
``"image"`` first averages within each pair, then over pairs (pairs without points are left out).
All functions are pure numpy with shapes in their docstrings (N points, P pairs, A levels).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_ALPHAS = (0.05, 0.10, 0.15)
NORMALISATIONS = ("image", "bbox")
AVERAGING = ("point", "image")
COMPARISONS = ("<=", "<=f32", "<f32")


def _check(name: str, array: np.ndarray, shape: tuple) -> None:
    """Raise ValueError when ``array`` does not have ``shape`` (``-1`` = any length)."""
    ok = array.ndim == len(shape) and all(s in (-1, a) for s, a in zip(shape, array.shape, strict=False))
    if not ok:
        wanted = "(" + ", ".join("N" if s == -1 else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(array.shape)}")


def reference_size(normalisation: str, image_size: np.ndarray, bbox: np.ndarray | None = None) -> np.ndarray:
    """The length L that α multiplies: max side of the image or of the box.

    image_size: (N, 2) as (width, height). bbox: (N, 4) as (x0, y0, x1, y1), needed for "bbox".
    Returns (N,).
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    if normalisation == "image":
        image_size = np.asarray(image_size, dtype=np.float64)
        _check("image_size", image_size, (-1, 2))
        return image_size.max(axis=1)
    if bbox is None:
        raise ValueError("bbox normalisation needs bbox (N, 4)")
    bbox = np.asarray(bbox, dtype=np.float64)
    _check("bbox", bbox, (-1, 4))
    return np.maximum(bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1])


def correct_keypoints(
    predicted: np.ndarray, target: np.ndarray, size: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS,
    comparison: str = "<=", scale: np.ndarray | None = None, float32_threshold: bool = False,
) -> np.ndarray:
    """Which predictions are within α · L of the ground truth.

    predicted, target: (N, 2) pixels. size: (N,) the reference length L of each point's pair.
    comparison: one of :data:`COMPARISONS` (module docstring). scale: (N,) factor applied to the
    coordinates and to L first (GeoAware's padded frame), or None. float32_threshold: for ``"<f32"``,
    form α · L in float32 (GeoAware's image threshold) instead of float64.
    Returns (N, A) bool, A = len(alphas).
    """
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    size = np.asarray(size, np.float64)
    _check("predicted", predicted, (-1, 2))
    _check("target", target, (len(predicted), 2))
    _check("size", size, (len(predicted),))
    levels = np.asarray(alphas, np.float64)
    if levels.ndim != 1 or len(levels) == 0 or (levels <= 0).any():
        raise ValueError(f"alphas must be a non-empty list of positive numbers, got {levels.tolist()}")
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, got {comparison!r}")
    if scale is not None:
        scale = np.asarray(scale, np.float64)
        _check("scale", scale, (len(predicted),))
        predicted, target, size = predicted * scale[:, None], target * scale[:, None], size * scale
    if comparison == "<=":
        distance = np.linalg.norm(predicted - target, axis=1)
        return distance[:, None] <= levels[None, :] * size[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        diff = predicted.astype(np.float32) - target.astype(np.float32)
        distance32 = np.sqrt((diff * diff).sum(axis=1, dtype=np.float32))
        if comparison == "<=f32":
            ratio = distance32 / size.astype(np.float32)
            return ratio[:, None] <= levels.astype(np.float32)[None, :]
        levels32 = levels.astype(np.float32)
        if float32_threshold:
            threshold = levels32[None, :] * size.astype(np.float32)[:, None]
        else:
            threshold = levels32.astype(np.float64)[None, :] * size[:, None]
        return distance32[:, None] < threshold


def pck(correct: np.ndarray, pair_index: np.ndarray, averaging: str = "point") -> np.ndarray:
    """PCK (in [0, 1]) per α from per-point correctness.

    correct: (N, A) bool. pair_index: (N,) int, the pair each point belongs to.
    averaging: "point" (pooled) or "image" (mean over pairs of each pair's PCK).
    Returns (A,); NaN when there is no point.
    """
    correct = np.asarray(correct, dtype=np.float64)
    pair_index = np.asarray(pair_index)
    _check("correct", correct, (-1, -1))
    _check("pair_index", pair_index, (len(correct),))
    if averaging not in AVERAGING:
        raise ValueError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
    if len(correct) == 0:
        return np.full(correct.shape[1], np.nan)
    if averaging == "point":
        return correct.mean(axis=0)
    pairs, inverse = np.unique(pair_index, return_inverse=True)
    per_pair = np.zeros((len(pairs), correct.shape[1]))
    np.add.at(per_pair, inverse, correct)
    per_pair /= np.bincount(inverse)[:, None]
    return per_pair.mean(axis=0)


def pck_per_category(
    correct: np.ndarray, pair_index: np.ndarray, category: np.ndarray, averaging: str = "point"
) -> dict[str, np.ndarray]:
    """:func:`pck` of each category. category: (N,) str. Returns {category: (A,)}."""
    category = np.asarray(category)
    _check("category", category, (len(correct),))
    return {
        str(c): pck(np.asarray(correct)[category == c], np.asarray(pair_index)[category == c], averaging)
        for c in sorted(set(category.tolist()))
    }
