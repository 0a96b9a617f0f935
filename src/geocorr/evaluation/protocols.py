"""Evaluation protocols: exactly how a PCK threshold is computed and how scores are averaged.

Every protocol measures the distance between the predicted and the ground-truth **target**
keypoint in **original target-image pixels** (pixel-centre convention) and calls a prediction
correct when ``distance ≤ α · max(h, w)`` (inclusive), where (h, w) is

- ``normalisation="image"``: the target image's height and width;
- ``normalisation="bbox"``: the target object's box ``(x0, y0, x1, y1)`` with ``w = x1 - x0``,
  ``h = y1 - y0`` — the dataset's box where it has one (SPair-71k, AP-10K, CUB-200), else the tight
  box of the target's visible keypoints (PF-Willow, PF-Pascal).

Only keypoints visible in both images count for PCK. ``averaging="point"`` pools all such
keypoints; ``"image"`` averages each pair's PCK, then over pairs. ``category_average="pooled"``
computes the overall score over all points/pairs at once (= categories weighted by their point
or pair count); ``"mean"`` averages the per-category scores with equal weight.

Presets (``--protocol``):

- ``geco`` (GECO, ICCV 2025, every dataset): image threshold, per point, pooled,
  α ∈ {0.05, 0.10, 0.15}.
- ``geoaware`` (GeoAware-SC, CVPR 2024): per image, pooled (categories weighted by pair count);
  SPair-71k, AP-10K and CUB-200: target bbox, α ∈ {0.01, 0.05, 0.10}; PF-Pascal: image,
  α ∈ {0.05, 0.10, 0.15}; PF-Willow (not in the paper): keypoint bbox, α ∈ {0.05, 0.10, 0.15}.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .pck import AVERAGING, NORMALISATIONS

CATEGORY_AVERAGES = ("pooled", "mean")


@dataclass(frozen=True)
class Protocol:
    """How PCK is computed (see the module docstring)."""

    name: str
    alphas: tuple[float, ...] = (0.05, 0.10, 0.15)
    normalisation: str = "image"  # image | bbox — of the target
    averaging: str = "point"  # point | image
    category_average: str = "pooled"  # pooled | mean

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.averaging not in AVERAGING:
            raise ValueError(f"averaging must be one of {AVERAGING}, got {self.averaging!r}")
        if self.category_average not in CATEGORY_AVERAGES:
            raise ValueError(f"category_average must be one of {CATEGORY_AVERAGES}, got {self.category_average!r}")
        if not self.alphas or any(a <= 0 for a in self.alphas):
            raise ValueError(f"alphas must be positive numbers, got {self.alphas}")

    def to_dict(self) -> dict:
        return asdict(self)


_GEOAWARE_IMAGE = ("pf-pascal",)
_GEOAWARE_BBOX_SMALL_ALPHA = ("spair", "ap10k", "cub")
PRESETS = ("geco", "geoaware")


def get_protocol(name: str, dataset: str, **overrides) -> Protocol:
    """The preset ``name`` for ``dataset`` (a loader name such as "spair"), with overrides."""
    if name == "geco":
        base = Protocol("geco", (0.05, 0.10, 0.15), "image", "point", "pooled")
    elif name == "geoaware":
        if dataset in _GEOAWARE_IMAGE:
            base = Protocol("geoaware", (0.05, 0.10, 0.15), "image", "image", "pooled")
        elif dataset in _GEOAWARE_BBOX_SMALL_ALPHA:
            base = Protocol("geoaware", (0.01, 0.05, 0.10), "bbox", "image", "pooled")
        else:
            base = Protocol("geoaware", (0.05, 0.10, 0.15), "bbox", "image", "pooled")
    else:
        raise ValueError(f"unknown protocol {name!r}; available: {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return Protocol(**{**base.to_dict(), **overrides, "alphas": tuple(overrides.get("alphas", base.alphas))})
