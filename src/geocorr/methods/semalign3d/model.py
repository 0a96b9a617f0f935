"""SemAlign3D as a geocorr method: features from another geocorr model, depth, alignment, traversal."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...grid import TokenGrid
from ...images import ImageLike, load_image
from ...matching import upsample_features
from ..base import Features, Matches, check_points
from .alignment import align, prepare_target, semantic_likelihood
from .config import align_config
from .correspondence import AlignedImage, transfer
from .representation import ClassRepresentation


class SemAlign3D(nn.Module):
    """Aligns a class representation to each image, then matches by reverse traversal.

    representation: the class (see :func:`.representation.build_representation`);
    feature_model: any geocorr model with ``features(images)`` (GeoAware in the paper, or GECO);
    depth: a module mapping an image (3, H, W) to depth (H, W) (the z-order check), or None.
    """

    default_conf: ClassVar[dict] = {
        "category": None,  # hyper-parameter preset (None: the representation's category)
        "align": {},  # AlignConfig overrides, e.g. {"steps": 200}
        "mask_threshold": 0.5,  # attention mask: best class-point semantic likelihood above this
        "seed": 0,  # initial guesses and pixel samples
        "cache_size": 64,  # alignments kept per image content (an image recurs in many benchmark pairs)
    }

    def __init__(self, representation: ClassRepresentation, feature_model: nn.Module,
                 depth: nn.Module | None = None, **conf) -> None:
        super().__init__()
        unknown = set(conf) - set(self.default_conf)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(self.default_conf)}")
        self.conf = {**self.default_conf, **conf}
        self.representation = representation
        self.feature_model = feature_model
        self.depth = depth
        self.align_conf = align_config(self.conf["category"] or representation.category, **self.conf["align"])
        self._cache: OrderedDict[str, AlignedImage] = OrderedDict()

    def features(self, images: ImageLike | Sequence[ImageLike]) -> Features:
        """Dense semantic features of the feature model (see :meth:`DenseMatcher.features`)."""
        return self.feature_model.features(images)

    def attention_mask(self, features: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        """Object mask from feature attention: pixels whose best class-point semantic likelihood
        exceeds ``mask_threshold``. features: (C, h, w) -> (H, W) bool."""
        rep = self.representation
        sim = torch.einsum("mc,chw->mhw", rep.dense_features, F.normalize(features.float(), dim=0))
        like = semantic_likelihood(sim.permute(1, 2, 0), rep.dense_mu, rep.dense_sigma).amax(-1)
        return upsample_features(like[None, None], grid)[0, 0] > self.conf["mask_threshold"]

    def align_image(self, image: ImageLike, mask: torch.Tensor | None = None,
                    depth: torch.Tensor | None = None) -> AlignedImage:
        """Align the class to one image. mask, depth: (H, W) or None (attention mask / depth model).

        Without a given mask and depth, the result is cached by image content (``cache_size``).
        """
        img = load_image(image)
        key = None
        if mask is None and depth is None and self.conf["cache_size"] > 0:
            key = hashlib.sha1(img.numpy().tobytes() + str(tuple(img.shape)).encode()).hexdigest()
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        feats = self.features(img)
        grid = feats.grids[0]
        h, w = grid.grid_hw
        dense = feats.dense[0, :, :h, :w].cpu()
        if mask is None:
            mask = self.attention_mask(dense, grid)
        if depth is None and self.depth is not None:
            depth = self.depth(img)
        gen = torch.Generator().manual_seed(self.conf["seed"])
        target = prepare_target(self.representation, dense, grid, torch.as_tensor(mask, dtype=torch.bool), depth,
                                self.align_conf, gen)
        result = AlignedImage(dense, grid, align(self.representation, target, self.align_conf, gen))
        if key is not None:
            self._cache[key] = result
            if len(self._cache) > self.conf["cache_size"]:
                self._cache.popitem(last=False)
        return result

    def match(self, img0: ImageLike, img1: ImageLike, points, mask0: torch.Tensor | None = None,
              mask1: torch.Tensor | None = None, depth0: torch.Tensor | None = None,
              depth1: torch.Tensor | None = None, category: str | None = None) -> Matches:
        """Where do ``points`` (N, 2) of img0, in (x, y) pixels, go in img1? -> Matches.

        category: the images' class, checked against the representation's when given.
        similarity: (N, h, w) cosine similarity of each query's class point to img1's tokens.
        """
        if category is not None and category != self.representation.category:
            raise ValueError(f"category {category!r}: this SemAlign3D model holds the class "
                             f"{self.representation.category!r}")
        source = self.align_image(img0, mask0, depth0)
        pts = check_points(points, source.grid.image_hw)
        target = self.align_image(img1, mask1, depth1)
        if len(pts) == 0:
            h, w = target.grid.grid_hw
            return Matches(pts.new_zeros(0, 2), pts.new_zeros(0), pts.new_zeros(0, h, w))
        best, scores, _, sim = transfer(self.representation, source, target, pts, self.align_conf.sigma_inference)
        return Matches(best, scores, sim)


class SemAlign3DClasses(nn.Module):
    """One :class:`SemAlign3D` per category (e.g. a folder of class files), sharing the feature and
    depth models; :meth:`match` picks the class by ``category``."""

    def __init__(self, models: dict[str, SemAlign3D]) -> None:
        super().__init__()
        if not models:
            raise ValueError("SemAlign3DClasses needs at least one class")
        self.models = nn.ModuleDict(models)

    @property
    def categories(self) -> list[str]:
        return sorted(self.models)

    def features(self, images: ImageLike | Sequence[ImageLike]) -> Features:
        return next(iter(self.models.values())).features(images)

    def match(self, img0: ImageLike, img1: ImageLike, points, category: str | None = None, **kwargs) -> Matches:
        """:meth:`SemAlign3D.match` with the class of ``category`` (required with several classes)."""
        if category is None and len(self.models) == 1:
            category = self.categories[0]
        if category not in self.models:
            raise ValueError(f"category {category!r}: no SemAlign3D class for it (have: {', '.join(self.categories)})")
        return self.models[category].match(img0, img1, points, category=category, **kwargs)
