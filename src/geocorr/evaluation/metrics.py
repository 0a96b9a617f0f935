"""Every metric of a run, computed from its :class:`Predictions` alone (no model).

All scores are percentages. Keys of the result (``A`` = the protocol's α levels):

- ``pck``: ``all`` (A,), ``per_category`` {category: (A,)}, ``num_points``, ``num_pairs`` — the
  protocol's PCK on keypoints visible in both images;
- ``pck_variants``: the same for all four normalisation/averaging combinations
  (``"image/point"``, ``"image/image"``, ``"bbox/point"``, ``"bbox/image"``);
- ``geometry_aware`` (where the dataset has ``geo_groups``): ``geo`` and ``std`` PCK, ``geo`` per
  category, ``share_points`` and ``share_images`` (pairs with ≥ 1 geometry-aware point);
- ``symmetry`` (where the dataset has ``twin``): bucket shares, PCK on n11/n10/n1x, swap and
  ambiguous rates on n11 (see :mod:`.symmetry_metrics`);
- ``kap``: ``all`` (A,) (mean over categories) and ``per_category`` (see :mod:`.kap`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry_aware import geometry_aware
from .kap import kap
from .pck import correct_keypoints, pck, pck_per_category, reference_size
from .predictions import Predictions
from .protocols import Protocol
from .symmetry_metrics import BUCKETS, swap_and_ambiguous, visibility_buckets


@dataclass
class _Rows:
    """One row per query keypoint (visible in the source) of every pair."""

    pair: np.ndarray  # (n,) pair index
    category: np.ndarray  # (n,) str
    predicted: np.ndarray  # (n, 2)
    target: np.ndarray  # (n, 2), NaN where hidden
    visible: np.ndarray  # (n,) visible in the target
    score: np.ndarray  # (n,)
    image_size: np.ndarray  # (n,) L for image normalisation
    bbox_size: np.ndarray  # (n,) L for bbox normalisation
    geo: np.ndarray  # (n,) geometry-aware
    bucket: np.ndarray  # (n,) str, "" without a twin table
    counterpart: np.ndarray  # (n, 2) target position of the twin, NaN where none/hidden


def _rows(predictions: Predictions) -> _Rows:
    cols: dict[str, list[np.ndarray]] = {k: [] for k in _Rows.__dataclass_fields__}
    for i, p in enumerate(predictions.pairs):
        ids = np.flatnonzero(p.source_visible)
        table = predictions.symmetry.get(p.category, {})
        n = len(ids)
        cols["pair"].append(np.full(n, i))
        cols["category"].append(np.full(n, p.category, dtype=object))
        cols["predicted"].append(p.predicted[ids])
        cols["target"].append(p.target_keypoints[ids])
        cols["visible"].append(p.target_visible[ids])
        cols["score"].append(p.scores[ids])
        cols["image_size"].append(np.full(n, reference_size("image", p.target_size[None])[0]))
        cols["bbox_size"].append(np.full(n, reference_size("bbox", p.target_size[None], p.target_bbox[None])[0]))
        geo = geometry_aware(p.source_visible, p.target_visible, table["geo_groups"]) if "geo_groups" in table \
            else np.zeros(len(p.source_visible), bool)
        cols["geo"].append(geo[ids])
        if "twin" in table:
            twin = np.asarray(table["twin"])
            cols["bucket"].append(visibility_buckets(ids, p.target_visible, twin).astype(object))
            cols["counterpart"].append(p.target_keypoints[twin[ids]])
        else:
            cols["bucket"].append(np.full(n, "", dtype=object))
            cols["counterpart"].append(np.full((n, 2), np.nan))
    return _Rows(**{k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()})


def _percent(values) -> list[float]:
    return [round(float(v) * 100, 4) for v in np.asarray(values)]


def _overall(correct, pair, category, protocol: Protocol) -> np.ndarray:
    if protocol.category_average == "pooled":
        return pck(correct, pair, protocol.averaging)
    per = pck_per_category(correct, pair, category, protocol.averaging)
    return np.mean(list(per.values()), axis=0) if per else np.full(correct.shape[1], np.nan)


def compute_metrics(predictions: Predictions, protocol: Protocol) -> dict:
    """All metrics of ``predictions`` under ``protocol`` (see the module docstring)."""
    if not predictions.pairs:
        raise ValueError("predictions hold no pair")
    rows = _rows(predictions)
    alphas = protocol.alphas
    size = rows.image_size if protocol.normalisation == "image" else rows.bbox_size
    predicted = np.nan_to_num(rows.predicted, nan=np.inf)
    scale = None if protocol.frame is None else protocol.frame / rows.image_size

    def within(sizes: np.ndarray, normalisation: str) -> np.ndarray:
        return correct_keypoints(predicted, np.nan_to_num(rows.target, nan=-np.inf), sizes, alphas,
                                 protocol.comparison, scale, float32_threshold=normalisation == "image")

    correct = within(size, protocol.normalisation)
    mutual = rows.visible
    out: dict[str, Any] = {"protocol": protocol.to_dict(), "alphas": list(alphas)}

    def summary(mask: np.ndarray, ok: np.ndarray, averaging: str = protocol.averaging) -> dict:
        p = Protocol(protocol.name, alphas, protocol.normalisation, averaging, protocol.category_average,
                     protocol.comparison, protocol.frame)
        return {
            "all": _percent(_overall(ok[mask], rows.pair[mask], rows.category[mask], p)),
            "per_category": {c: _percent(v) for c, v in
                             pck_per_category(ok[mask], rows.pair[mask], rows.category[mask], averaging).items()},
            "num_points": int(mask.sum()),
            "num_pairs": len(np.unique(rows.pair[mask])),
        }

    out["pck"] = summary(mutual, correct)
    out["pck_variants"] = {}
    for norm, sizes in (("image", rows.image_size), ("bbox", rows.bbox_size)):
        ok = within(sizes, norm)
        for averaging in ("point", "image"):
            out["pck_variants"][f"{norm}/{averaging}"] = summary(mutual, ok, averaging)["all"]

    if any("geo_groups" in t for t in predictions.symmetry.values()):
        geo = summary(rows.geo & mutual, correct)
        pairs_with_points = np.unique(rows.pair[mutual])
        out["geometry_aware"] = {
            "geo": geo["all"], "std": out["pck"]["all"], "per_category": geo["per_category"],
            "share_points": round(100 * float(rows.geo[mutual].mean()), 4) if mutual.any() else float("nan"),
            "share_images": round(100 * len(np.unique(rows.pair[rows.geo & mutual]))
                                  / max(1, len(pairs_with_points)), 4),
        }

    has_bucket = rows.bucket != ""
    if has_bucket.any():
        buckets = rows.bucket[has_bucket]
        n11 = rows.bucket == "n11"
        threshold = size[:, None] * np.asarray(alphas)[None, :]
        swapped, ambiguous = swap_and_ambiguous(rows.predicted[n11], rows.target[n11], rows.counterpart[n11],
                                                threshold[n11])
        nan = [float("nan")] * len(alphas)
        out["symmetry"] = {
            "buckets": {b: round(100 * float((buckets == b).mean()), 4) for b in BUCKETS},
            "pck": {b: _percent(correct[rows.bucket == b].mean(0)) if (rows.bucket == b).any() else nan
                    for b in ("n11", "n10", "n1x")},
            "swap_rate": _percent(swapped.mean(0)) if n11.any() else nan,
            "ambiguous_rate": _percent(ambiguous.mean(0)) if n11.any() else nan,
        }

    per_category = {str(c): kap(rows.score[rows.category == c], correct[rows.category == c],
                                rows.visible[rows.category == c]) for c in sorted(set(rows.category))}
    out["kap"] = {"all": _percent(np.nanmean(list(per_category.values()), axis=0)),
                  "per_category": {c: _percent(v) for c, v in per_category.items()}}
    return out
