"""Evaluation protocols: a preset is a whole evaluation pipeline, from coordinates to the threshold.

A preset (``--protocol``) fixes two things:

- a :class:`Pipeline` — what changes the predictions: how annotation values become coordinates,
  which feature a query point reads, where a match lands, up-sampling, SPair-71k's box source;
- a :class:`Protocol` — how predictions are scored: α levels, threshold base, comparison,
  averaging.

Coordinates. ``pixel-centre`` is geocorr's convention (:mod:`geocorr.datasets.base`): PF-Willow and
PF-Pascal file values − 1, other datasets' values as they are, with (0, 0) the centre of the
top-left pixel. ``as-annotated`` uses every file value as it is, read as both official codes read
it, with 0 on the image's left/top edge (= value − 0.5 in geocorr's frame; the 1-based PF values
thus sit +0.5 px from geocorr's reading). Query / prediction: see :mod:`geocorr.conventions`.

Threshold: distance d to the ground truth against α · L, L = max(h, w) of the target image
(``image``) or of the target box (``bbox``: the dataset's box, SPair's from the image or the pair
annotation as the preset says; PF-Willow/PF-Pascal: the tight box of the visible keypoints).
Comparison (see :mod:`.pck`): ``<=`` float64 (geocorr), ``<=f32`` d / L ≤ α in float32 (GECO),
``<f32`` strict, d in float32, in GeoAware's 840-px padded frame. Only keypoints visible in both
images count. ``point`` pools all keypoints; ``image`` averages each pair's PCK, then over pairs;
``pooled`` combines categories by their point or pair count, ``mean`` with equal weight.

========  ============  ============  =============  ========  ========  ===============  =====  ========  =============
preset    dataset       coordinates   query          predict.  upsample  α                thr.   compare   averaging
========  ============  ============  =============  ========  ========  ===============  =====  ========  =============
geocorr   all           pixel-centre  bilinear       centre    features  .05 .10 .15      image  <=        point, pooled
geocorr   spair,ap10k   pixel-centre  bilinear       centre    features  .01 .05 .10 .15  image  <=        point, pooled
geco      spair,cub,    as-annotated  token (pixel)  corner    features  .05 .10 .15      image  <=f32     point, pooled
          pf-*
geco      ap10k         as-annotated  token          corner    none      .05 .10 .15      image  <=f32     point, pooled
geoaware  spair,ap10k,  as-annotated  token          centre    none      .01 .05 .10      bbox   <f32 840  image, pooled
          cub
geoaware  pf-pascal     as-annotated  token          centre    none      .05 .10 .15      image  <f32 840  image, pooled
geoaware  pf-willow     as-annotated  token          centre    none      .05 .10 .15      bbox   <f32 840  image, pooled
========  ============  ============  =============  ========  ========  ===============  =====  ========  =============

Pairs and boxes: every preset evaluates the loader's pairs (PF-Willow: all 900 ordered pairs;
PF-Pascal: the official test csv; SPair-71k: every test pair file — GECO's cap of 10,000 pairs
per category never binds). SPair boxes: the image annotation's (geco, geocorr) or the pair file's
(geoaware). AP-10K: GeoAware's notebook rules (:mod:`geocorr.datasets.ap10k`); under geco v = 1
keypoints are hidden (``min_visibility=2``). CUB under geco: pass ``--dataset-option
cleaned_mat=<annotations>/data/test_cub_cleaned.mat`` for GECO's images and seeded pairs.
PF-Willow is in neither paper (its row follows each code's conventions).

Query, prediction and up-sampling apply to the methods matched by feature argmax (``dinov2``,
``geco``); GeoAware's and the other methods' own matching is kept (their options are theirs).
``--alpha``, ``--normalisation``, ``--averaging`` and ``--category-average`` override the scoring.
Pairs: ``--pairs FILE`` evaluates exactly the pairs of a list (official ``test_pairs.csv``/json, a
``PairAnnotation/<split>`` folder — AP-10K's as GeoAware's notebook wrote it reproduces the
authors' pairs — or the ``<out>_pairs.csv`` geocorr writes beside every result).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..datasets.base import COORDINATES
from .pck import AVERAGING, COMPARISONS, NORMALISATIONS

CATEGORY_AVERAGES = ("pooled", "mean")
PRESETS = ("geco", "geoaware", "geocorr")
GEOAWARE_FRAME = 840  # GeoAware-SC's padded square frame (ANNO_SIZE), pck_train.py
# Methods whose matching is DenseMatcher's feature argmax, so the pipeline's query/prediction/
# upsample options apply (GeoAware has its own soft-argmax; the others are not feature matchers).
ARGMAX_METHODS = ("dinov2", "geco")


@dataclass(frozen=True)
class Protocol:
    """How PCK is computed (see the module docstring)."""

    name: str
    alphas: tuple[float, ...] = (0.05, 0.10, 0.15)
    normalisation: str = "image"  # image | bbox — of the target
    averaging: str = "point"  # point | image
    category_average: str = "pooled"  # pooled | mean
    comparison: str = "<="  # <= | <=f32 | <f32 (see geocorr.evaluation.pck)
    frame: int | None = None  # distances and L rescaled to this padded square side first (GeoAware: 840)

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.averaging not in AVERAGING:
            raise ValueError(f"averaging must be one of {AVERAGING}, got {self.averaging!r}")
        if self.category_average not in CATEGORY_AVERAGES:
            raise ValueError(f"category_average must be one of {CATEGORY_AVERAGES}, got {self.category_average!r}")
        if not self.alphas or any(a <= 0 for a in self.alphas):
            raise ValueError(f"alphas must be positive numbers, got {self.alphas}")
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {COMPARISONS}, got {self.comparison!r}")
        if self.frame is not None and self.frame < 1:
            raise ValueError(f"frame must be a positive side in pixels or None, got {self.frame}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Pipeline:
    """What a preset changes before the metric (see the module docstring)."""

    coordinates: str = "pixel-centre"  # pixel-centre | as-annotated
    query: str = "bilinear"  # bilinear | token (DenseMatcher option)
    prediction: str = "centre"  # centre | corner (DenseMatcher option)
    upsample: str = "features"  # features | none (DenseMatcher option)
    spair_boxes: str = "image"  # image | pair: SPair-71k box from the image or the pair annotation
    ap10k_min_visibility: int = 1  # AP-10K keypoints visible from v = 1 (GeoAware) or v = 2 (GECO)

    def __post_init__(self) -> None:
        if self.coordinates not in COORDINATES:
            raise ValueError(f"coordinates must be one of {COORDINATES}, got {self.coordinates!r}")
        for name, valid in (("query", ("bilinear", "token")), ("prediction", ("centre", "corner")),
                            ("upsample", ("features", "none")), ("spair_boxes", ("image", "pair")),
                            ("ap10k_min_visibility", (1, 2))):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {getattr(self, name)!r}")

    def dataset_options(self, dataset: str) -> dict[str, object]:
        """Loader options of this pipeline (AP-10K's visibility rule: GECO hides v = 1)."""
        return {"min_visibility": self.ap10k_min_visibility} if dataset == "ap10k" else {}

    def matcher_options(self) -> dict[str, str]:
        """The DenseMatcher options of this pipeline."""
        return {"query": self.query, "prediction": self.prediction, "upsample": self.upsample}

    def to_dict(self) -> dict:
        return asdict(self)


_SMALL_ALPHA = (0.01, 0.05, 0.10)
_GEOCORR_FOUR_ALPHA = ("spair", "ap10k")


def get_pipeline(name: str, dataset: str) -> Pipeline:
    """The pipeline of preset ``name`` on ``dataset`` (a loader name such as "spair")."""
    if name == "geocorr":
        return Pipeline()
    if name == "geco":  # reginehartwig/geco src/evaluation/evaluation.py: AP-10K without up-sampling
        return Pipeline("as-annotated", "token", "corner", "none" if dataset == "ap10k" else "features", "image", 2)
    if name == "geoaware":  # GeoAware-SC pck_train.py: token level, token centres, pair-file boxes
        return Pipeline("as-annotated", "token", "centre", "none", "pair")
    raise ValueError(f"unknown protocol {name!r}; available: {', '.join(PRESETS)}")


def get_protocol(name: str, dataset: str, **overrides) -> Protocol:
    """The scoring of preset ``name`` for ``dataset`` (a loader name such as "spair"), with overrides."""
    if name == "geco":
        base = Protocol("geco", (0.05, 0.10, 0.15), "image", "point", "pooled", "<=f32")
    elif name == "geoaware":
        if dataset == "pf-pascal":
            base = Protocol("geoaware", (0.05, 0.10, 0.15), "image", "image", "pooled", "<f32", GEOAWARE_FRAME)
        elif dataset in ("spair", "ap10k", "cub"):
            base = Protocol("geoaware", _SMALL_ALPHA, "bbox", "image", "pooled", "<f32", GEOAWARE_FRAME)
        else:
            base = Protocol("geoaware", (0.05, 0.10, 0.15), "bbox", "image", "pooled", "<f32", GEOAWARE_FRAME)
    elif name == "geocorr":
        alphas = (0.01, 0.05, 0.10, 0.15) if dataset in _GEOCORR_FOUR_ALPHA else (0.05, 0.10, 0.15)
        base = Protocol("geocorr", alphas, "image", "point", "pooled", "<=")
    else:
        raise ValueError(f"unknown protocol {name!r}; available: {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return Protocol(**{**base.to_dict(), **overrides, "alphas": tuple(overrides.get("alphas", base.alphas))})
