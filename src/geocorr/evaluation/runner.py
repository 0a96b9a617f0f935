"""Run a method over a pair dataset and collect its predictions.

Streaming: images are numbered in first-seen order (:meth:`PairDataset.images`) and cut into
fixed batches of ``batch_size``; when a pair needs an image whose features are not cached, that
image's whole batch goes through ``model.features`` once. A feature is therefore always computed
in the same batch, whatever the shard or cache state — sharded runs give results identical to a
single process. Every pair is matched through :func:`geocorr.methods.base.match_pair`: dense
methods with those cached features, the others with ``model.match`` on the two images. Each pair
comes with a :class:`PairContext` holding the fields named in ``context`` (the method's registry
``needs``; by default the category, the object boxes and the query keypoint ids — never the
target's annotations unless asked).

Queries: every keypoint visible in the source image, clipped into the image (annotations on the
last pixel's far edge occur in SPair-71k).
"""
from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..datasets.base import ImageAnnotation, Pair, PairDataset, keypoint_bbox
from ..images import load_image
from ..methods.base import Matcher, PairContext, match_pair
from .cache import FeatureCache
from .predictions import PairPrediction, Predictions


def shard(num_items: int, rank: int, world: int) -> range:
    """Contiguous block ``rank`` of ``world`` nearly equal blocks of ``range(num_items)``."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    start, stop = num_items * rank // world, num_items * (rank + 1) // world
    return range(start, stop)


def _box(ann: ImageAnnotation) -> np.ndarray:
    if ann.bbox is not None:
        return np.asarray(ann.bbox, dtype=np.float64)
    if ann.visible.any():
        return keypoint_bbox(ann.keypoints, ann.visible)
    return np.array([0.0, 0.0, ann.size[0], ann.size[1]])


DEFAULT_CONTEXT = ("category", "boxes", "keypoint_ids")  # what a pair tells a method unless asked for more
CONTEXT_FIELDS = ("category", "boxes", "keypoint_ids", "target_keypoints", "target_visible")


def _mask(ann: ImageAnnotation) -> np.ndarray | None:
    """The object mask of an image, (H, W) bool, from ``meta["mask"]`` (a bool array or an image file,
    white = object, as :func:`geocorr.training.recipes.geco.data.attach_masks` sets), or None."""
    mask = ann.meta.get("mask")
    if mask is None:
        return None
    if isinstance(mask, (str, Path)):
        with Image.open(mask) as img:
            mask = np.asarray(img.convert("L")) > 127
    mask = np.asarray(mask, dtype=bool)
    width, height = ann.size
    if mask.shape != (height, width):
        raise ValueError(f"mask of {ann.path}: {mask.shape[1]}×{mask.shape[0]} pixels, the image is {width}×{height}")
    return mask


def pair_context(pair: Pair, index: np.ndarray, fields: Collection[str] = DEFAULT_CONTEXT) -> PairContext:
    """The :class:`PairContext` of ``pair`` with the queries ``index``, holding ``fields`` where the
    annotations have them (masks: when both images carry ``meta["mask"]``; else the method uses its own)."""
    unknown = set(fields) - {f.name for f in dataclass_fields(PairContext)}
    if unknown:
        raise ValueError(f"context: {sorted(unknown)} are not PairContext fields")
    values: dict[str, Any] = {
        "category": pair.category, "boxes": (_box(pair.source), _box(pair.target)), "keypoint_ids": index,
        "target_keypoints": pair.target.keypoints, "target_visible": pair.target.visible,
    }
    if "masks" in fields:
        masks = _mask(pair.source), _mask(pair.target)
        values["masks"] = masks if masks[0] is not None and masks[1] is not None else None
    if "target_keypoints" in fields or "target_visible" in fields:
        fields = {*fields, "target_keypoints", "target_visible"}
    return PairContext(**{k: v for k, v in values.items() if k in fields and v is not None})


def _queries(ann: ImageAnnotation) -> tuple[np.ndarray, torch.Tensor]:
    """Indices of the source keypoints to match and their points (n, 2), clipped into the image."""
    index = np.flatnonzero(ann.visible)
    width, height = ann.size
    pts = np.clip(ann.keypoints[index], -0.5, [width - 0.5, height - 0.5])
    return index, torch.as_tensor(pts, dtype=torch.float32)


def _record(pair: Pair, index: np.ndarray, matches) -> PairPrediction:
    src, trg = pair.source, pair.target
    predicted = np.full((src.num_keypoints, 2), np.nan)
    scores = np.full(src.num_keypoints, np.nan)
    if len(index):
        predicted[index] = matches.points.detach().float().cpu().numpy()
        scores[index] = matches.scores.detach().float().cpu().numpy()
    return PairPrediction(
        category=pair.category, source=str(src.path), target=str(trg.path),
        source_keypoints=src.keypoints, target_keypoints=trg.keypoints,
        source_visible=src.visible, target_visible=trg.visible,
        predicted=predicted, scores=scores,
        source_bbox=_box(src), target_bbox=_box(trg),
        source_size=np.asarray(src.size), target_size=np.asarray(trg.size),
    )


class _FeatureSource:
    """Features of the dataset's images by path, computed in fixed batches and cached."""

    def __init__(self, model, images: list[ImageAnnotation], batch_size: int, cache: FeatureCache):
        self.model, self.cache = model, cache
        self.paths = [str(a.path) for a in images]
        self.position = {p: i for i, p in enumerate(self.paths)}
        self.batch_size = batch_size
        self.forwards = 0
        self.seconds = 0.0

    def __call__(self, path: str):
        feats = self.cache.get(path)
        if feats is not None:
            return feats
        start = self.position[path] // self.batch_size * self.batch_size
        batch = self.paths[start : start + self.batch_size]
        tic = time.perf_counter()
        computed = self.model.features([load_image(p, p) for p in batch])
        self.seconds += time.perf_counter() - tic
        self.forwards += len(batch)
        for i, p in enumerate(batch):
            self.cache.put(p, computed[i])
        return computed[batch.index(path)]


def evaluate(
    model: Matcher,
    dataset: PairDataset,
    *,
    pair_indices: Sequence[int] | None = None,
    batch_size: int = 8,
    cache: FeatureCache | None = None,
    config: dict | None = None,
    progress: bool = True,
    context: Collection[str] = DEFAULT_CONTEXT,
) -> Predictions:
    """Predict every source-visible keypoint of the selected pairs of ``dataset``.

    pair_indices: which pairs (default all), in this order. batch_size: images per feature batch.
    cache: feature cache (default: in memory, 2 GiB). config: the run's config, stored with the
    predictions. context: the :class:`PairContext` fields each pair carries (the method's registry
    ``needs``). Returns :class:`Predictions`; ``stats`` holds images forwarded, pairs and seconds.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    indices = range(len(dataset)) if pair_indices is None else list(pair_indices)
    source = _FeatureSource(model, dataset.images(), batch_size, cache if cache is not None else FeatureCache())
    records = []
    tic = time.perf_counter()
    for i in tqdm(indices, desc=f"eval {dataset.name}", unit="pair", disable=not progress):
        pair = dataset[i]
        index, points = _queries(pair.source)
        matches = match_pair(model, str(pair.source.path), str(pair.target.path), points,
                             pair_context(pair, index, context), features_of=source)
        records.append(_record(pair, index, matches))
    seconds = time.perf_counter() - tic
    stats = {"pairs": len(records), "images_forwarded": source.forwards,
             "feature_seconds": round(source.seconds, 3), "seconds": round(seconds, 3)}
    symmetry = {c: dict(t) for c, t in dataset.symmetry.items()}
    return Predictions(dataset.name, dataset.split, dict(config or {}), records, symmetry, stats)


def evaluate_sharded(model, dataset: PairDataset, *, rank: int = 0, world: int = 1, **kwargs) -> Predictions:
    """:func:`evaluate` on shard ``rank`` of ``world`` contiguous shards, gathered on every process.

    With ``world > 1`` (``accelerate launch``/``torchrun``; ``torch.distributed`` initialised) the
    per-pair records of all shards are gathered in shard order, i.e. the single-process order, and
    the counts summed (times: the slowest shard). Features never depend on the shard (fixed
    batches), so neither do the results — given the same number of threads per process
    (``torchrun`` sets ``OMP_NUM_THREADS=1``; floating-point sums depend on the thread count).
    """
    predictions = evaluate(model, dataset, pair_indices=shard(len(dataset), rank, world), **kwargs)
    if world == 1:
        return predictions
    from accelerate.utils import gather_object

    predictions.pairs = gather_object(predictions.pairs)
    stats = gather_object([predictions.stats])
    predictions.stats = {k: (max if k.endswith("seconds") else sum)(s[k] for s in stats) for k in stats[0]}
    return predictions
