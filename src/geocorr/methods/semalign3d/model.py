"""SemAlign3D as a geocorr method: features from another geocorr model, depth, alignment, traversal."""
from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from ...grid import TokenGrid
from ...images import ImageLike, load_image
from ..base import Features, Matches, PairContext, check_points
from .alignment import align_many, attention, prepare_target
from .config import align_config
from .correspondence import AlignedImage, transfer
from .depth import DepthSource
from .progress import bar
from .representation import ClassRepresentation


class MaskFiles:
    """Object masks from a folder, ``<image stem>.png`` (non-zero / > 127 = object)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"mask_dir: folder not found: {self.folder}")

    def __call__(self, path: Path | None, image_hw: tuple[int, int]) -> torch.Tensor:
        if path is None:
            raise ValueError(f"mask_dir {self.folder}: masks are looked up by image file name; "
                             f"give the image as a file, not as an array")
        file = self.folder / f"{Path(path).stem}.png"
        if not file.is_file():
            raise FileNotFoundError(f"mask file not found: {file}")
        mask = torch.from_numpy(np.asarray(Image.open(file).convert("L")) > 127)
        if tuple(mask.shape) != tuple(image_hw):
            raise ValueError(f"{file}: mask of shape {tuple(mask.shape)} does not match the image {tuple(image_hw)}")
        return mask


class SemAlign3D(nn.Module):
    """Aligns a class representation to each image, then matches by reverse traversal.

    representation: the class (see :func:`.representation.build_representation`);
    feature_model: any geocorr model with ``features(images)`` (GeoAware in the paper, or GECO);
    depth: a :class:`~.depth.DepthSource` (Depth Anything, depth files) for the z-order check, or None;
    masks: object masks from files (:class:`MaskFiles`), else ``context.masks``, else the attention mask.
    """

    default_conf: ClassVar[dict] = {
        "category": None,  # hyper-parameter preset (None: the representation's category)
        "align": {},  # AlignConfig overrides, e.g. {"steps": 200}
        "mask_threshold": 0.5,  # attention mask: best class-point semantic likelihood above this
        "seed": 0,  # initial guesses and pixel samples
        "cache_size": 64,  # alignments kept per image content (an image recurs in many benchmark pairs)
        "batch_size": 4,  # images aligned together by align_images()
        "progress": None,  # tqdm bars: True, False, None (only on a terminal)
    }
    depth: DepthSource | None
    masks: MaskFiles | None

    def __init__(self, representation: ClassRepresentation, feature_model: nn.Module,
                 depth: DepthSource | None = None, masks: MaskFiles | None = None, **conf) -> None:
        super().__init__()
        unknown = set(conf) - set(self.default_conf)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(self.default_conf)}")
        self.conf = {**self.default_conf, **conf}
        self.representation = representation
        self.feature_model = feature_model
        self.depth = depth
        self.masks = masks
        self.align_conf = align_config(self.conf["category"] or representation.category, **self.conf["align"])
        self._cache: OrderedDict[str, AlignedImage] = OrderedDict()
        self.failures: list[str] = []  # images whose alignment diverged (named by file, or "array")

    def features(self, images: ImageLike | Sequence[ImageLike]) -> Features:
        """Dense semantic features of the feature model (see :meth:`DenseMatcher.features`)."""
        return self.feature_model.features(images)  # type: ignore[operator]  # any geocorr model with features()

    def attention_mask(self, features: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        """Object mask from feature attention: pixels whose best class-point semantic likelihood
        exceeds ``mask_threshold``. features: (C, h, w) -> (H, W) bool."""
        return attention(self.representation, features, grid) > self.conf["mask_threshold"]

    def _key(self, img: torch.Tensor, mask: torch.Tensor | None) -> str:
        data = img.numpy().tobytes() + str(tuple(img.shape)).encode()
        if mask is not None:
            data += np.packbits(np.asarray(mask, dtype=bool)).tobytes()
        return hashlib.sha1(data).hexdigest()

    def _prepare(self, image: ImageLike, mask: torch.Tensor | None, gen: torch.Generator):
        """Features, grid and the alignment target of one image."""
        path = Path(image) if isinstance(image, (str, Path)) else None
        img = load_image(image)
        if mask is None and self.masks is not None:
            mask = self.masks(path, (img.shape[1], img.shape[2]))
        feats = self.features(img)
        grid = feats.grids[0]
        h, w = grid.grid_hw
        dense = feats.dense[0, :, :h, :w].float().cpu()
        if mask is None:
            mask = self.attention_mask(dense, grid)
        depth = None if self.depth is None else self.depth(img, path)
        target = prepare_target(self.representation, dense, grid, torch.as_tensor(mask, dtype=torch.bool), depth,
                                self.align_conf, gen)
        return dense, grid, target, ("array" if path is None else str(path))

    def align_images(self, images: Sequence[ImageLike], masks: Sequence[torch.Tensor | None] | None = None
                     ) -> list[AlignedImage]:
        """Align the class to each image, ``batch_size`` images per optimisation; results are cached
        by image content (and mask), so an image that recurs in many pairs is aligned once.

        masks: one (H, W) bool mask or None per image (None: mask files, else the attention mask).
        A diverged alignment is kept with ``alignment.failed`` and its image named in ``failures``.
        """
        masks = list(masks) if masks is not None else [None] * len(images)
        if len(masks) != len(images):
            raise ValueError(f"masks: expected {len(images)} masks (one per image), got {len(masks)}")
        imgs = [load_image(i) if not isinstance(i, (str, Path)) else i for i in images]
        keys = [self._key(load_image(i), m) for i, m in zip(imgs, masks, strict=False)]
        todo = [n for n, k in enumerate(keys) if k not in self._cache and k not in keys[:n]]
        size = max(1, int(self.conf["batch_size"]))
        for start in bar(range(0, len(todo), size), self.conf["progress"] if len(todo) > size else False,
                         "aligning images", total=-(-len(todo) // size)):
            chunk = todo[start:start + size]
            # one generator per image, seeded by (seed, image): a result never depends on the batch
            # it was aligned in nor on what was aligned before
            gens = [torch.Generator().manual_seed(self.conf["seed"] * 1_000_003 + int(keys[n][:12], 16))
                    for n in chunk]
            prepared = [self._prepare(imgs[n], masks[n], g) for n, g in zip(chunk, gens, strict=True)]
            results = align_many(self.representation, [p[2] for p in prepared], self.align_conf, gens,
                                 self.conf["progress"])
            for n, (dense, grid, _, name), result in zip(chunk, prepared, results, strict=False):
                if result.failed:
                    self.failures.append(name)
                    warnings.warn(f"semalign3d: the alignment of {name} diverged (non-finite energy); "
                                  f"its matches are NaN (counted as wrong)", stacklevel=2)
                self._remember(keys[n], AlignedImage(dense, grid, result))
        return [self._cache[k] for k in keys]

    def _remember(self, key: str, aligned: AlignedImage) -> None:
        self._cache[key] = aligned
        self._cache.move_to_end(key)
        while len(self._cache) > max(self.conf["cache_size"], 1):
            self._cache.popitem(last=False)

    def align_image(self, image: ImageLike, mask: torch.Tensor | None = None) -> AlignedImage:
        """Align the class to one image (mask: (H, W) bool or None; see :meth:`align_images`)."""
        return self.align_images([image], [mask])[0]

    def match(self, img0: ImageLike, img1: ImageLike, points, context: PairContext | None = None) -> Matches:
        """Where do ``points`` (N, 2) of img0, in (x, y) pixels, go in img1? -> Matches.

        context: ``category`` is checked against the representation's; ``masks`` (source, target)
        replace the attention masks. A diverged alignment gives NaN points and zero scores.
        similarity: (N, h, w) cosine similarity of each query's class point to img1's tokens.
        """
        context = context or PairContext()
        if context.category is not None and context.category != self.representation.category:
            raise ValueError(f"category {context.category!r}: this SemAlign3D model holds the class "
                             f"{self.representation.category!r}")
        masks = [None, None] if context.masks is None else [torch.from_numpy(m) for m in context.masks]
        source, target = self.align_images([img0, img1], masks)
        pts = check_points(points, source.grid.image_hw)
        h, w = target.grid.grid_hw
        if len(pts) == 0:
            return Matches(pts.new_zeros(0, 2), pts.new_zeros(0), pts.new_zeros(0, h, w))
        if source.alignment.failed or target.alignment.failed:
            return Matches(torch.full_like(pts, float("nan")), pts.new_zeros(len(pts)), pts.new_zeros(len(pts), h, w))
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
        first: SemAlign3D = next(iter(self.models.values()))  # type: ignore[assignment]
        return first.features(images)

    def match(self, img0: ImageLike, img1: ImageLike, points, context: PairContext | None = None) -> Matches:
        """:meth:`SemAlign3D.match` with the class of ``context.category`` (required with several classes)."""
        category = context.category if context is not None else None
        if category is None and len(self.models) == 1:
            category = self.categories[0]
        if category is None or category not in self.models:
            raise ValueError(f"category {category!r}: no SemAlign3D class for it (have: {', '.join(self.categories)})")
        model: SemAlign3D = self.models[category]  # type: ignore[assignment]
        return model.match(img0, img1, points, replace(context or PairContext(), category=category))
