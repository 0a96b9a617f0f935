"""The contract every geocorr method keeps, and the one way every face matches a pair.

A *method* is anything :func:`geocorr.load` returns. Every method is a :class:`Matcher`:
``match(img0, img1, points, context=None) -> Matches``, where a :class:`PairContext` carries what
some methods need about the pair beyond the two images (category, object boxes, masks, ...).
Some methods also have the *dense* capability (:class:`DenseMatcherProtocol`): reusable per-image
``features`` and ``match_features`` on them. The capability is declared, never guessed: a dense
method subclasses :class:`DenseMatcherProtocol` (as :class:`DenseMatcher` does), and its registry
entry says ``dense=True`` (a test checks that the two agree).

Faces (``geocorr match``, ``eval``, ``demo``, ``track``) match a pair through :func:`match_pair`
only; nothing inspects signatures or probes attributes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeGuard, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import DinoV2Backbone
from ..conventions import containing_pixel, containing_token, pixel_corner, token_corner
from ..devices import out_of_memory_as_error
from ..grid import TokenGrid
from ..images import ImageLike, load_image
from ..matching import argmax_match, sample_features, upsampled_argmax


@dataclass
class Features:
    """Dense features of a batch of images.

    dense: (B, C, h, w) features on each image's token grid (fp32).
    grids: B TokenGrids mapping image pixels to tokens.
    """

    dense: torch.Tensor
    grids: list[TokenGrid]

    def __len__(self) -> int:
        return len(self.grids)

    def __getitem__(self, i: int) -> Features:
        return Features(self.dense[i : i + 1], [self.grids[i]])


@dataclass
class Matches:
    """Matches of N query points.

    points: (N, 2) predicted (x, y) pixel coordinates in the target image.
    scores: (N,) similarity of each match (cosine similarity for feature methods).
    similarity: (N, h, w) similarity of each query to every target token (for heat maps), or None.
    """

    points: torch.Tensor
    scores: torch.Tensor
    similarity: torch.Tensor | None = None


@dataclass(frozen=True)
class PairContext:
    """What some methods need to know about a pair beyond its two images (all optional).

    category: the pair's object class (per-class methods: SemAlign3D).
    boxes: object box (x0, y0, x1, y1) of the source and of the target image, pixel-centre
        coordinates as in :mod:`geocorr.datasets.base` (cyclecorr crops to them).
    masks: (H, W) bool object masks of the source and of the target image.
    keypoint_ids: (N,) keypoint index of each query point.
    target_keypoints: (K, 2) annotated target keypoints, with ``target_visible`` (K,) bool
        (pose alignment uses them).
    A method reads only the fields its registry entry lists in ``needs``; the others are ignored.
    """

    category: str | None = None
    boxes: tuple[np.ndarray, np.ndarray] | None = None
    masks: tuple[np.ndarray, np.ndarray] | None = None
    keypoint_ids: np.ndarray | None = None
    target_keypoints: np.ndarray | None = None
    target_visible: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.boxes is not None:
            if len(self.boxes) != 2:
                raise ValueError(f"context.boxes: expected (source box, target box), got {len(self.boxes)} items")
            boxes = tuple(np.asarray(b, dtype=np.float64) for b in self.boxes)
            for name, box in zip(("source", "target"), boxes, strict=True):
                if box.shape != (4,) or not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
                    raise ValueError(f"context.boxes: the {name} box must be finite (x0, y0, x1, y1) with "
                                     f"x1 >= x0 and y1 >= y0, got {box.tolist()}")
            object.__setattr__(self, "boxes", boxes)
        if self.masks is not None:
            if len(self.masks) != 2:
                raise ValueError(f"context.masks: expected (source mask, target mask), got {len(self.masks)} items")
            masks = tuple(np.asarray(m, dtype=bool) for m in self.masks)
            if any(m.ndim != 2 for m in masks):
                raise ValueError(f"context.masks: expected two (H, W) masks, got shapes {[m.shape for m in masks]}")
            object.__setattr__(self, "masks", masks)
        if (self.target_keypoints is None) != (self.target_visible is None):
            raise ValueError("context: target_keypoints and target_visible go together (give both or neither)")

    def given(self) -> set[str]:
        """Names of the fields that are set (not None)."""
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}


class Matcher(Protocol):
    """Every method: where do ``points`` (N, 2) of img0, in (x, y) pixels, go in img1?"""

    def match(self, img0: ImageLike, img1: ImageLike, points, context: PairContext | None = None) -> Matches: ...


class DenseMatcherProtocol(ABC):
    """The optional dense capability: per-image features, matched without recomputing them.

    ``match_features(f[0], f[1], points, context)`` with ``f = features([img0, img1])`` equals
    ``match(img0, img1, points, context)``; faces use it to reuse the features of images that recur.
    The capability is *declared* by subclassing (a nominal ABC, not a structural check):
    :class:`DenseMatcher` does, and so may a wrapper around one.
    """

    @abstractmethod
    def features(self, images: ImageLike | Sequence[ImageLike]) -> Features: ...

    @abstractmethod
    def match_features(self, feats0: Features, feats1: Features, points,
                       context: PairContext | None = None) -> Matches: ...

    def match(self, img0: ImageLike, img1: ImageLike, points, context: PairContext | None = None) -> Matches:
        """Where do ``points`` (N, 2) of img0, in (x, y) pixels, go in img1? -> Matches."""
        feats = self.features([img0, img1])
        return self.match_features(feats[0], feats[1], points, context)


def is_dense(model: object) -> TypeGuard[DenseMatcherProtocol]:
    """Whether ``model`` declares the dense capability (subclasses :class:`DenseMatcherProtocol`)."""
    return isinstance(model, DenseMatcherProtocol)


def match_pair(model: Matcher, img0: ImageLike, img1: ImageLike, points, context: PairContext | None = None,
               features_of: Callable[[Any], Features] | None = None) -> Matches:
    """Match ``points`` (N, 2) of img0 into img1 with any method: the one helper every face uses.

    features_of: where a face keeps features (a cache keyed by image, a fixed-batch source):
        image -> Features of that one image. Used for dense methods only; other methods (and dense
        ones without it) are called as ``model.match(img0, img1, points, context)``.
    context: what the method may need about the pair (see :class:`PairContext`).
    """
    if context is not None and not isinstance(context, PairContext):
        raise TypeError(f"context must be a PairContext or None, got {type(context).__name__}")
    if features_of is not None and is_dense(model):
        return model.match_features(features_of(img0), features_of(img1), points, context)
    return model.match(img0, img1, points, context)


def match_pairs(model: Matcher, pairs: Sequence[tuple[ImageLike, ImageLike, Any]],
                contexts: Sequence[PairContext | None] | None = None, batch_size: int = 8) -> list[Matches]:
    """Match many pairs ``(img0, img1, points)``: the same as ``match_pair`` on each, faster.

    A dense method computes the features of every distinct image once (an image is the same when it
    is the same path, or the same object), ``batch_size`` images per ``features`` call; the others
    match pair by pair. contexts: one :class:`PairContext` (or None) per pair.
    """
    contexts = [None] * len(pairs) if contexts is None else list(contexts)
    if len(contexts) != len(pairs):
        raise ValueError(f"contexts: expected one per pair ({len(pairs)}), got {len(contexts)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not is_dense(model):
        return [match_pair(model, a, b, pts, c) for (a, b, pts), c in zip(pairs, contexts, strict=True)]

    def key(image: ImageLike) -> object:
        return str(image) if isinstance(image, (str, Path)) else id(image)

    distinct: dict[object, ImageLike] = {}
    for a, b, _ in pairs:
        distinct.setdefault(key(a), a)
        distinct.setdefault(key(b), b)
    keys, images = list(distinct), list(distinct.values())
    feats: dict[object, Features] = {}
    for start in range(0, len(images), batch_size):
        batch = model.features(images[start : start + batch_size])
        feats.update({k: batch[i] for i, k in enumerate(keys[start : start + batch_size])})
    return [match_pair(model, a, b, pts, c, features_of=lambda image: feats[key(image)])
            for (a, b, pts), c in zip(pairs, contexts, strict=True)]


def check_points(points, image_hw: tuple[int, int], name: str = "points") -> torch.Tensor:
    """Validate query points against an image of size (H, W): -> (N, 2) float32 tensor.

    Points must be finite and inside the image, i.e. in [-0.5, W - 0.5] × [-0.5, H - 0.5]
    (pixel-centre convention).
    """
    pts = torch.as_tensor(points, dtype=torch.float32)
    if pts.numel() == 0:
        return pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name}: expected N (x, y) points of shape (N, 2), got shape {tuple(pts.shape)}")
    if not torch.isfinite(pts).all():
        raise ValueError(f"{name}: contains NaN or inf: {pts[~torch.isfinite(pts).all(1)].tolist()}")
    h, w = image_hw
    outside = (pts[:, 0] < -0.5) | (pts[:, 0] > w - 0.5) | (pts[:, 1] < -0.5) | (pts[:, 1] > h - 0.5)
    if outside.any():
        raise ValueError(
            f"{name}: {pts[outside].tolist()} lie outside the {w}×{h} image "
            f"(valid x in [-0.5, {w - 0.5}], y in [-0.5, {h - 0.5}])"
        )
    return pts


# torch.compile modes accepted as ``compile`` (a backend name is accepted too).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class DenseMatcher(nn.Module, DenseMatcherProtocol):
    """A backbone (possibly adapted) whose dense features are matched by cosine similarity + argmax.

    Subclasses change how features are computed (``_dense``); matching is shared.
    """

    backbone: DinoV2Backbone

    default_conf: ClassVar[dict[str, Any]] = {
        "upsample": "features",  # features | none: argmax over image pixels (bilinearly up-sampled
        # features, the published evaluation) or over tokens (faster: video)
        "batch_size": 8,  # images per backbone forward in features() (same-size inputs are batched)
        "compile": None,  # torch.compile of the feature network: None (eager), a backend ("inductor", …) or
        # a mode of COMPILE_MODES ("reduce-overhead": inductor + CUDA graphs per input shape, the fast path on a GPU)
        "query": "bilinear",  # bilinear | token: the query feature is bilinearly sampled at the point, or
        # read from the cell containing it (token; with upsample="features" the up-sampled pixel) as
        # the official evaluation codes do
        "prediction": "centre",  # centre | corner: a match is the centre of the best cell, or its
        # top-left corner floored onto the integer pixel-edge grid (GECO's floor(j·W/g))
    }

    def __init__(self, backbone: DinoV2Backbone, **conf):
        super().__init__()
        unknown = set(conf) - set(self.default_conf)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(self.default_conf)}")
        self.conf = {**self.default_conf, **conf}
        if self.conf["upsample"] not in ("features", "none"):
            raise ValueError(f"upsample must be 'features' or 'none', got {self.conf['upsample']!r}")
        if self.conf["query"] not in ("bilinear", "token"):
            raise ValueError(f"query must be 'bilinear' or 'token', got {self.conf['query']!r}")
        if self.conf["prediction"] not in ("centre", "corner"):
            raise ValueError(f"prediction must be 'centre' or 'corner', got {self.conf['prediction']!r}")
        if self.conf["compile"] not in (None, *COMPILE_MODES, *torch.compiler.list_backends(())):
            raise ValueError(f"compile must be None, a torch.compile mode ({', '.join(COMPILE_MODES)}) or backend "
                             f"({', '.join(torch.compiler.list_backends(()))}), got {self.conf['compile']!r}")
        self.backbone = backbone
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, Hi, Wi) backbone input -> (B, C, h, w) features."""
        return self.backbone(x)

    @torch.inference_mode()
    def features(self, images: ImageLike | Sequence[ImageLike]) -> Features:
        """Dense features of one image or a list of images (any sizes).

        Returns Features with dense (B, C, h, w); images whose inputs differ in size (only with
        ``resize="keep_aspect"``) are returned padded to the largest grid — use ``grids`` for geometry.
        """
        single = not isinstance(images, (list, tuple))
        items: list[ImageLike] = list(images) if isinstance(images, (list, tuple)) else [cast(ImageLike, images)]
        if not items:
            raise ValueError("images: got an empty list")
        inputs, grids = [], []
        for i, img in enumerate(items):
            image = load_image(img, name := f"images[{i}]" if not single else "image", min_side=self.backbone.patch)
            with out_of_memory_as_error(f"the input of {name} ({image.shape[1]}×{image.shape[2]} px)", self.device):
                x, grid = self.backbone.preprocess(image)  # on the model's device from here on
            inputs.append(x)
            grids.append(grid)
        dense: dict[int, torch.Tensor] = {}
        for batch in same_shape_batches([x.shape for x in inputs], self.conf["batch_size"]):
            hw = "×".join(map(str, inputs[batch[0]].shape[1:]))
            with out_of_memory_as_error(f"features of {len(batch)} image(s) at {hw} px", self.device):
                out = self._feature_net()(torch.stack([inputs[i] for i in batch])).float()
            for i, d in zip(batch, out.split(1), strict=True):
                dense[i] = d
        return Features(_pad_cat([dense[i] for i in range(len(inputs))]), grids)

    def _feature_net(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``_dense``, compiled on first use when ``conf["compile"]`` names a mode or a backend."""
        mode = self.conf["compile"]
        if mode is None:
            return self._dense
        if self._compiled is None and mode in COMPILE_MODES:
            graphs = torch.compile(self._dense, mode=mode, dynamic=False)  # one graph per input shape

            def run(x: torch.Tensor) -> torch.Tensor:
                torch.compiler.cudagraph_mark_step_begin()
                return graphs(x).clone()  # CUDA graphs reuse their output memory at the next call

            self._compiled = run
        elif self._compiled is None:
            self._compiled = torch.compile(self._dense, backend=mode)
        return self._compiled

    @torch.inference_mode()
    def match_features(self, feats0: Features, feats1: Features, points,
                       context: PairContext | None = None) -> Matches:
        """Match points of image 0 into image 1, given both images' features (one image each).

        points: (N, 2) (x, y) pixel coordinates in image 0 -> Matches in image 1's pixels.
        context: not used by feature matching (accepted as every :class:`Matcher` does).
        """
        if len(feats0) != 1 or len(feats1) != 1:
            raise ValueError("match_features takes the features of one image each (index a batch first)")
        grid0, grid1 = feats0.grids[0], feats1.grids[0]
        pts = check_points(points, grid0.image_hw).to(feats0.dense.device)
        (h0, w0), (h1, w1) = grid0.grid_hw, grid1.grid_hw
        dense0, dense1 = feats0.dense[..., :h0, :w0], feats1.dense[..., :h1, :w1]
        if len(pts) == 0:
            empty = pts.new_zeros(0)
            return Matches(pts.new_zeros(0, 2), empty, pts.new_zeros(0, h1, w1))
        if self.conf["query"] == "token" and self.conf["upsample"] == "none":
            cell = containing_token(pts, grid0)
            query = dense0[0, :, cell[:, 1], cell[:, 0]].T  # (N, C) the containing token
        else:  # bilinear at the point, or (token) the up-sampled feature of the containing pixel
            at = containing_pixel(pts, grid0.image_hw).to(pts) if self.conf["query"] == "token" else pts
            query = sample_features(dense0, grid0.image_to_grid(at)[None])[0]
        query = F.normalize(query, dim=-1)
        target = F.normalize(dense1[0], dim=0)  # (C, h, w)
        sim = torch.einsum("nc,chw->nhw", query, target)
        sim.masked_fill_(~content_mask(grid1, sim.device), -2.0)  # padding tokens never match (no host sync)
        if self.conf["upsample"] == "none":
            best, scores = argmax_match(sim[None])
            corner = self.conf["prediction"] == "corner"
            return Matches(token_corner(best[0], grid1) if corner else grid1.grid_to_image(best[0]), scores[0], sim)
        best, scores = upsampled_argmax(query, dense1[0], grid1)  # chunked: memory bounded for any N
        return Matches(pixel_corner(best) if self.conf["prediction"] == "corner" else best, scores, sim)


def content_mask(grid: TokenGrid, device: torch.device | str = "cpu") -> torch.Tensor:
    """(h, w) bool on ``grid``'s token grid: True on the tokens that overlap image content."""
    r0, r1, c0, c1 = grid.content_tokens
    mask = torch.zeros(grid.grid_hw, dtype=torch.bool, device=device)
    mask[r0:r1, c0:c1] = True
    return mask


def same_shape_batches(shapes: Sequence[tuple], batch_size: int) -> list[list[int]]:
    """Indices of items grouped by shape (in order of first appearance), in chunks of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict[tuple, list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(i)
    return [idx[k : k + batch_size] for idx in groups.values() for k in range(0, len(idx), batch_size)]


def _pad_cat(dense: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate (1, C, h_i, w_i) maps, zero-padding right/bottom to the largest grid."""
    h = max(d.shape[2] for d in dense)
    w = max(d.shape[3] for d in dense)
    return torch.cat([F.pad(d, (0, w - d.shape[3], 0, h - d.shape[2])) for d in dense])
