"""GeoAware (CVPR 2024, "Telling Left from Right"): frozen features + a trainable post-processor.

Features: DINOv2 tokens (and optionally Stable Diffusion decoder features, :mod:`.sd`) on the
60×60 grid of an 840² input. Supervised: the sources go through the :class:`PostProcessor`; zero-shot:
each source is L2-normalised and the sources are concatenated. Matching: cosine similarity on the
token grid, then window soft-argmax (argmax centre, soft-argmax in a 15×15 window; 11×11
zero-shot), soft-argmax or argmax, mapped back to image pixels.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ...backbones import DinoV2Backbone
from ...grid import TokenGrid
from ...images import ImageLike, load_image
from ...matching import argmax_match, sample_features, soft_argmax, window_soft_argmax
from ..base import (
    DenseMatcher,
    Features,
    Matches,
    PairContext,
    check_points,
    same_shape_batches,
)
from .align import IMD_SIZE, flip_distances, mirrored_queries
from .augmentation import flip_permutation, hflip_keypoints
from .data import PairSample
from .losses import dense_loss, sparse_loss
from .postprocessor import PostProcessor, PostProcessorConfig
from .sd import StableDiffusionFeatures

INFERENCE = ("window_soft_argmax", "soft_argmax", "argmax")
WEIGHTS_FILE = "geoaware_postprocessor.safetensors"
PADDING_SIMILARITY = -2.0  # below any cosine similarity: padding tokens never match
POSE_VARIANT_WEIGHTS = ("single_flip", "double_flip", "self_flip")  # conf keys of the variants' loss weights


class GeoAware(DenseMatcher):
    """GeoAware matcher: ``features()``/``match()`` like every geocorr method, plus training hooks.

    backbone: the frozen DINOv2 backbone (its preprocessing decides the grid).
    post_processor: the trainable head (supervised) or None (zero-shot feature concatenation).
    sd: optional frozen Stable Diffusion feature extractor (:class:`.sd.StableDiffusionFeatures`)
        whose levels come before the DINOv2 features, as in the published post-processor.
    """

    default_conf = {  # noqa: RUF012 - a DenseMatcher options table, never mutated
        **DenseMatcher.default_conf,
        "inference": "window_soft_argmax",  # window_soft_argmax | soft_argmax | argmax
        "window": 15,  # window side in tokens (15 = radius 7: supervised; 11 zero-shot)
        "temperature": 0.02,  # softmax temperature over cosine similarities (inference and losses)
        "noise": 0.05,  # training: std of the ground-truth noise, a fraction of the target's PCK
        # length L (0.1 · L / 2, the published "0.1 · thr / 2")
        "dense_weight": 1.0,  # training: weight of L_dense (0 = the sparse-only baseline)
        "sparse_weight": 1.0,  # training: weight of L_sparse
        "single_flip": 0.0,  # training: loss weight of the single-flip variant (released SPair/AP-10K: off)
        "double_flip": 1.0,  # training: loss weight of the double-flip variant
        "self_flip": 0.25,  # training: loss weight of the self-flip variant (0 for all three: no variants)
        "pose_align": False,  # adaptive pose alignment at test time (the paper's † rows; needs a PairContext)
        "flips": None,  # pose_align: category -> left/right keypoint permutation (the dataset's "flip" tables)
        "imd_size": IMD_SIZE,  # pose_align: side of the grid the IMD is computed on (published 64)
    }

    def __init__(self, backbone: DinoV2Backbone, post_processor: PostProcessor | None = None,
                 sd: StableDiffusionFeatures | None = None, **conf):
        super().__init__(backbone, **conf)
        if self.conf["inference"] not in INFERENCE:
            raise ValueError(f"inference must be one of {', '.join(INFERENCE)}, got {self.conf['inference']!r}")
        if self.conf["window"] < 1 or self.conf["window"] % 2 == 0:
            raise ValueError(f"window must be a positive odd number of tokens, got {self.conf['window']}")
        if any(self.conf[v] < 0 for v in POSE_VARIANT_WEIGHTS):
            raise ValueError(f"pose-variant weights must be >= 0, got "
                             f"{ {v: self.conf[v] for v in POSE_VARIANT_WEIGHTS} }")
        if self.conf["temperature"] <= 0 or self.conf["noise"] < 0:
            raise ValueError("temperature must be > 0 and noise >= 0, got "
                             f"{self.conf['temperature']} and {self.conf['noise']}")
        for category, table in (self.conf["flips"] or {}).items():
            try:
                flip_permutation(table, len(table))
            except ValueError as err:
                raise ValueError(f"flips[{category!r}]: {err}") from None
        if self.conf["imd_size"] < 1:
            raise ValueError(f"imd_size must be >= 1, got {self.conf['imd_size']}")
        self.sd = sd
        self.post_processor = post_processor
        if post_processor is not None and tuple(post_processor.config.in_channels) != self.source_channels:
            raise ValueError(f"post-processor expects sources of {post_processor.config.in_channels} channels, "
                             f"the feature sources give {self.source_channels}")
        for module in (self.backbone, self.sd):
            if module is not None:
                module.requires_grad_(False)

    @property
    def source_channels(self) -> tuple[int, ...]:
        """Channels of each frozen feature source, in post-processor order (SD levels, then DINOv2)."""
        return (*(self.sd.channels if self.sd is not None else ()), self.backbone.dim)

    def train(self, mode: bool = True) -> GeoAware:
        """Only the post-processor ever trains; the frozen feature extractors stay in eval mode."""
        super().train(mode)
        self.backbone.eval()
        if self.sd is not None:
            self.sd.eval()
        return self

    # ------------------------------------------------------------------ features
    def prepare(self, image: torch.Tensor) -> tuple[torch.Tensor, TokenGrid, torch.Tensor | None]:
        """Inputs of one (3, H, W) image: (backbone input, its TokenGrid, SD canvas or None).

        Each feature source resizes the original image itself (DINOv2 to 840, SD straight to 960).
        """
        x, grid = self.backbone.preprocess(image)
        return x, grid, (self.sd.preprocess(image) if self.sd is not None else None)

    @torch.no_grad()
    def sources(self, x: torch.Tensor, sd_x: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Frozen feature maps [SD levels..., DINOv2], each (B, C_i, h, w), of backbone inputs x
        (B, 3, Hi, Wi) and, with SD, the SD canvases sd_x (B, 3, S, S) of the same images."""
        dino = self.backbone(x).float()
        if self.sd is None:
            return [dino]
        if sd_x is None:
            raise ValueError("a GeoAware model with Stable Diffusion needs the SD canvases (see prepare())")
        return [*self.sd(sd_x, dino.shape[-2:]), dino]

    def refine(self, sources: list[torch.Tensor]) -> torch.Tensor:
        """Post-processed features (supervised) or, zero-shot, the SD levels normalised jointly and
        DINOv2 normalised, concatenated and normalised again (each half weighs 50 % in a cosine; as
        ``normalize_feats`` of Junyi42/GeoAware-SC @ 99fd6b6 ``pck_train.py``)."""
        if self.post_processor is not None:
            return self.post_processor(sources)
        parts = [F.normalize(torch.cat(sources[:-1], dim=1), dim=1)] if len(sources) > 1 else []
        return F.normalize(torch.cat([*parts, F.normalize(sources[-1], dim=1)], dim=1), dim=1)

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.sources(x))

    # ------------------------------------------------------------------ matching
    def similarity(self, feats0: Features, feats1: Features, points: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each query point of image 0 with every token of image 1.

        points: (N, 2) pixels of image 0 -> (N, h1, w1); padding tokens get -2.
        """
        grid0, grid1 = feats0.grids[0], feats1.grids[0]
        (h0, w0), (h1, w1) = grid0.grid_hw, grid1.grid_hw
        dense0, dense1 = feats0.dense[..., :h0, :w0], feats1.dense[0, :, :h1, :w1]
        query = F.normalize(sample_features(dense0, grid0.image_to_grid(points)[None])[0], dim=-1)
        sim = torch.einsum("nc,chw->nhw", query, F.normalize(dense1, dim=0))
        return sim.masked_fill(~_content_mask([grid1], sim.shape[-2:], sim.device), PADDING_SIMILARITY)

    @torch.inference_mode()
    def features(self, images: ImageLike | Sequence[ImageLike]) -> Features:
        """Dense features (B, C, h, w) of one image or a list; with ``pose_align`` (B, 2C, h, w): the
        image's features, then those of its mirror image (on the same grid), for :meth:`match_features`."""
        single = not isinstance(images, (list, tuple))
        items: list[ImageLike] = list(images) if isinstance(images, (list, tuple)) else [cast(ImageLike, images)]
        if not items:
            raise ValueError("images: got an empty list")
        loaded = [load_image(img, "image" if single else f"images[{i}]") for i, img in enumerate(items)]
        if self.conf["pose_align"]:
            loaded += [img.flip(-1) for img in loaded]
        feats = self._features(loaded) if self.sd is not None else super().features(loaded)
        if not self.conf["pose_align"]:
            return feats
        n = len(loaded) // 2
        return Features(torch.cat([feats.dense[:n], feats.dense[n:]], dim=1), feats.grids[:n])

    def _features(self, images: list[torch.Tensor]) -> Features:
        """Features of loaded images with the SD source (each source gets its own input of each image)."""
        prepared = [self.prepare(img) for img in images]
        dense: list[torch.Tensor] = [torch.empty(0)] * len(prepared)
        for batch in same_shape_batches([x.shape for x, _, _ in prepared], self.conf["batch_size"]):
            x = torch.stack([prepared[i][0] for i in batch])
            sd_x = torch.stack([c for i in batch if (c := prepared[i][2]) is not None])
            for i, d in zip(batch, self.refine(self.sources(x, sd_x)).float().split(1), strict=True):
                dense[i] = d
        h, w = max(d.shape[2] for d in dense), max(d.shape[3] for d in dense)  # keep_aspect: pad to one grid
        return Features(torch.cat([F.pad(d, (0, w - d.shape[3], 0, h - d.shape[2])) for d in dense]),
                        [g for _, g, _ in prepared])

    @torch.inference_mode()
    def match_features(self, feats0: Features, feats1: Features, points,
                       context: PairContext | None = None) -> Matches:
        """Match points (N, 2) of image 0 into image 1 with the configured inference -> Matches (pixels).

        With ``pose_align`` (features from :meth:`features`), adaptive pose alignment
        (:mod:`.align`): context must give ``category`` (its table in ``flips``), ``keypoint_ids`` of
        the points and ``target_visible``; ``masks`` (object masks of both images) are optional
        (without them IMD uses the whole image content).
        """
        if len(feats0) != 1 or len(feats1) != 1:
            raise ValueError("match_features takes the features of one image each (index a batch first)")
        if not self.conf["pose_align"]:
            return self._match(feats0, feats1, points)
        own0, mirror0 = _halves(feats0)
        own1, _ = _halves(feats1)
        matches = self._match(own0, own1, points)
        context, flip = self._flip_table(context)
        d, d_mirror = flip_distances(own0.dense[0], mirror0.dense[0], own1.dense[0],
                                     (own0.grids[0], own1.grids[0]), context.masks, self.conf["imd_size"])
        if not d_mirror < d:
            return matches
        pts = check_points(points, own0.grids[0].image_hw)
        use, query = mirrored_queries(pts, context.keypoint_ids, context.target_visible, flip,
                                      own0.grids[0].image_hw[1])
        if not use.any():
            return matches
        mirrored = self._match(mirror0, own1, query[use])
        out_points, out_scores, sim = matches.points.clone(), matches.scores.clone(), matches.similarity
        where = use.to(out_points.device)
        out_points[where], out_scores[where] = mirrored.points, mirrored.scores
        if sim is not None and mirrored.similarity is not None:
            sim = sim.clone()
            sim[where] = mirrored.similarity
        return Matches(out_points, out_scores, sim)

    def _flip_table(self, context: PairContext | None) -> tuple[PairContext, torch.Tensor]:
        """The context (checked to have what pose alignment reads) and the pair's flip permutation."""
        if context is None:
            context = PairContext()
        missing = [f for f in ("category", "keypoint_ids", "target_visible") if getattr(context, f) is None]
        if missing:
            raise ValueError(f"pose_align needs the pair's context fields {missing} (PairContext); "
                             f"geocorr eval passes them")
        flips = self.conf["flips"] or {}
        if context.category not in flips:
            raise ValueError(f"pose_align: no left/right flip table for category {context.category!r} "
                             f"(option flips has {sorted(flips)})")
        return context, flip_permutation(flips[context.category], len(np.asarray(context.target_visible)))

    def _match(self, feats0: Features, feats1: Features, points) -> Matches:
        """Matching of one image pair's own features (no pose alignment)."""
        if self.conf["inference"] == "argmax" and self.conf["upsample"] == "features":
            return super().match_features(feats0, feats1, points)
        pts = check_points(points, feats0.grids[0].image_hw).to(feats0.dense.device)
        grid1 = feats1.grids[0]
        if len(pts) == 0:
            return Matches(pts.new_zeros(0, 2), pts.new_zeros(0), pts.new_zeros(0, *grid1.grid_hw))
        sim = self.similarity(feats0, feats1, pts)
        t = self.conf["temperature"]
        if self.conf["inference"] == "argmax":  # on the token grid, the best token's centre (official hard eval)
            best, scores = argmax_match(sim[None])
            return Matches(grid1.grid_to_image(best[0]), scores[0], sim)
        if self.conf["inference"] == "soft_argmax":
            best = soft_argmax(sim[None], t)[0]
        else:
            best = window_soft_argmax(sim[None], self.conf["window"], t)[0]
        return Matches(grid1.grid_to_image(best), sim.flatten(1).max(dim=1).values, sim)

    # ------------------------------------------------------------------ training
    def trainable_parameters(self) -> list[nn.Parameter]:
        """The post-processor's parameters (everything else is frozen)."""
        if self.post_processor is None:
            raise ValueError("a zero-shot GeoAware model has nothing to train; load it with zero_shot=False")
        return list(self.post_processor.parameters())

    def training_step(self, batch: list[PairSample]) -> dict[str, torch.Tensor]:
        """The published objective on a list of pairs (one optimiser step), averaged over the pairs.

        Per pair: L = (L_orig + Σ_v w_v · L_v) / (1 + Σ_v w_v) with L_orig = dense_weight · L_dense +
        sparse_weight · L_sparse on the pair as is, and L_v = L_dense alone on each pose variant v
        (single flip: mirrored source → target; double flip: both mirrored; self flip: mirrored source
        → source) whose weight w_v (``single_flip``, ``double_flip``, ``self_flip``) is > 0 and that
        keeps at least one mutually visible keypoint; the variants need ``PairSample.flip``.
        Published (Junyi42/GeoAware-SC @ 99fd6b6, ``utils/utils_losses.py`` ``calculate_loss``;
        weights set in ``pck_train.py``, single flip read from ``ADAPT_FLIP``, unset in the released
        configs): w = 0 / 1 / 0.25, L_sparse with the learnable logit scale on the original pair only.
        L_dense is measured in target tokens; the ground-truth noise (std ``noise`` · L pixels, L the
        reference length of the variant's target, from the torch RNG) is drawn in target pixels.
        """
        if self.post_processor is None:
            raise ValueError("a zero-shot GeoAware model cannot be trained; load it with zero_shot=False")
        weights = {v: float(self.conf[v]) for v in POSE_VARIANT_WEIGHTS}
        losses, dense_terms, sparse_terms = [], [], []
        for sample in batch:
            loss, l_dense, l_sparse = self._pair_loss(sample, weights)
            losses.append(loss)
            dense_terms.append(l_dense)
            sparse_terms.append(l_sparse)
        return {"loss": torch.stack(losses).mean(), "loss_dense": torch.stack(dense_terms).mean().detach(),
                "loss_sparse": torch.stack(sparse_terms).mean().detach()}

    def _pair_loss(self, s: PairSample, weights: dict[str, float]):
        """(L, L_dense of the original pair, L_sparse) of one training pair, see :meth:`training_step`."""
        variants = [v for v, w in weights.items() if w > 0]
        flip = s.flip
        if variants and flip is None:
            raise ValueError(f"pose variants {variants} need the pair's left/right flip permutation (PairSample.flip)")
        images = {"src": s.source, "tgt": s.target}
        if variants:
            images["src_flip"] = s.source.flip(-1)
        if weights["double_flip"] > 0:
            images["tgt_flip"] = s.target.flip(-1)
        prepared = {k: self.prepare(im) for k, im in images.items()}
        if len({x.shape for x, _, _ in prepared.values()}) != 1:
            raise ValueError("training needs backbone inputs of one size: use resize='pad' or 'stretch'")
        canvases = [c for _, _, c in prepared.values() if c is not None]
        sd_x = torch.stack(canvases) if canvases else None
        feats = self.refine(self.sources(torch.stack([x for x, _, _ in prepared.values()]), sd_x))
        feat = {k: feats[i : i + 1] for i, k in enumerate(prepared)}
        grid = {k: g for k, (_, g, _) in prepared.items()}
        views = {"src": (s.source_keypoints, s.source_visible), "tgt": (s.target_keypoints, s.target_visible)}
        if flip is not None and variants:
            views["src_flip"] = hflip_keypoints(s.source_keypoints, s.source_visible, s.source.shape[-1], flip)
            views["tgt_flip"] = hflip_keypoints(s.target_keypoints, s.target_visible, s.target.shape[-1], flip)
        l_dense, l_sparse = self._dense_sparse(feat, grid, views, "src", "tgt", s.target_size, sparse=True)
        loss = self.conf["dense_weight"] * l_dense + self.conf["sparse_weight"] * l_sparse
        total, weight_sum = loss, 1.0
        for variant in variants:
            a, b, size = {"single_flip": ("src_flip", "tgt", s.target_size),
                          "double_flip": ("src_flip", "tgt_flip", s.target_size),
                          "self_flip": ("src_flip", "src", s.source_size)}[variant]
            if not (views[a][1] & views[b][1]).any():
                continue  # no mutually visible keypoint: the variant is left out of this step
            l_variant, _ = self._dense_sparse(feat, grid, views, a, b, size, sparse=False)
            total = total + weights[variant] * l_variant
            weight_sum += weights[variant]
        return total / weight_sum, l_dense.detach(), l_sparse.detach()

    def _dense_sparse(self, feat, grid, views, a: str, b: str, target_size: float, sparse: bool):
        """L_dense (and L_sparse if ``sparse``) of view ``a`` against view ``b`` (keys of feat/grid/views)."""
        device = self.device
        (kps_a, vis_a), (kps_b, vis_b) = views[a], views[b]
        valid = (vis_a & vis_b).to(device)
        ok = valid[:, None]
        ga, gb = grid[a], grid[b]
        tgt = _clip(kps_b.to(device), gb.image_hw)
        noise = torch.randn(len(valid), 2, device=device) * self.conf["noise"] * target_size
        src_pts = torch.where(ok, ga.image_to_grid(_clip(kps_a.to(device), ga.image_hw)), 0.0)[None]
        noisy_pts = torch.where(ok, gb.image_to_grid(tgt + noise), 0.0)[None]
        desc_a = sample_features(feat[a], src_pts)
        sim = torch.einsum("bnc,bchw->bnhw", F.normalize(desc_a, dim=-1), F.normalize(feat[b], dim=1))
        sim = sim.masked_fill(~_content_mask([gb], sim.shape[-2:], device)[:, None], PADDING_SIMILARITY)
        l_dense = dense_loss(sim, noisy_pts, valid[None], self.conf["temperature"])
        if not sparse:
            return l_dense, None
        tgt_pts = torch.where(ok, gb.image_to_grid(tgt), 0.0)[None]
        desc_b = sample_features(feat[b], tgt_pts)
        head = self.post_processor
        if head is None:
            raise ValueError("a zero-shot GeoAware model has no logit scale to train")
        return l_dense, sparse_loss(desc_a, desc_b, valid[None], head.logit_scale.exp())

    # ------------------------------------------------------------------ weights
    def save_weights(self, out_dir: str | Path) -> Path:
        """Write the post-processor to ``out_dir/geoaware_postprocessor.safetensors``."""
        if self.post_processor is None:
            raise ValueError("a zero-shot GeoAware model has no post-processor to save")
        path = Path(out_dir) / WEIGHTS_FILE
        save_post_processor(self.post_processor, path)
        return path


def _halves(feats: Features) -> tuple[Features, Features]:
    """Pose-aligned features (1, 2C, h, w) -> (the image's, its mirror image's), each (1, C, h, w)."""
    c = feats.dense.shape[1] // 2
    return Features(feats.dense[:, :c], feats.grids), Features(feats.dense[:, c:], feats.grids)


def _clip(points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Keep (N, 2) pixel points inside the image (annotations on the far edge occur)."""
    h, w = image_hw
    return torch.stack([points[:, 0].clamp(-0.5, w - 0.5), points[:, 1].clamp(-0.5, h - 0.5)], dim=-1)


def _content_mask(grids, grid_hw, device) -> torch.Tensor:
    """(B, h, w) True on tokens that overlap image content."""
    mask = torch.zeros(len(grids), *grid_hw, dtype=torch.bool, device=device)
    for b, g in enumerate(grids):
        r0, r1, c0, c1 = g.content_tokens
        mask[b, r0:r1, c0:c1] = True
    return mask


def save_post_processor(post_processor: PostProcessor, path: str | Path) -> None:
    """Save weights and widths (in the file's metadata) as safetensors."""
    c = post_processor.config
    meta = {"in_channels": ",".join(map(str, c.in_channels)), "bottleneck_channels": str(c.bottleneck_channels),
            "out_channels": str(c.out_channels), "num_groups": str(c.num_groups), "dropout": str(c.dropout)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in post_processor.state_dict().items()}, str(path), meta)


def load_post_processor(path: str | Path) -> PostProcessor:
    """A post-processor saved by :func:`save_post_processor` (strict: every weight must match)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights: no such file: {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"weights: {path} is not a safetensors file ({err})") from None
    if "in_channels" not in meta:
        raise ValueError(f"weights: {path} has no GeoAware post-processor metadata (in_channels, ...)")
    config = PostProcessorConfig(
        in_channels=tuple(int(c) for c in meta["in_channels"].split(",")),
        bottleneck_channels=int(meta["bottleneck_channels"]), out_channels=int(meta["out_channels"]),
        num_groups=int(meta["num_groups"]), dropout=float(meta["dropout"]),
    )
    model = PostProcessor(config)
    state = load_file(str(path))
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(f"weights: {path} does not match the post-processor "
                         f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.load_state_dict(state)
    return model
