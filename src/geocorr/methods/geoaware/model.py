"""GeoAware (CVPR 2024, "Telling Left from Right"): frozen features + a trainable post-processor.

Features: DINOv2 tokens (and optionally Stable Diffusion decoder features, :mod:`.sd`) on the
60×60 grid of an 840² input. Supervised: the sources go through the :class:`PostProcessor`; zero-shot:
each source is L2-normalised and the sources are concatenated. Matching: cosine similarity on the
token grid, then window soft-argmax (argmax centre, soft-argmax in a 15×15 window; 11×11
zero-shot), soft-argmax or argmax, mapped back to image pixels.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ...backbones import DinoV2Backbone
from ...matching import sample_features, soft_argmax, window_soft_argmax
from ..base import DenseMatcher, Features, Matches, check_points
from .data import PairSample
from .losses import dense_loss, sparse_loss
from .postprocessor import PostProcessor, PostProcessorConfig

INFERENCE = ("window_soft_argmax", "soft_argmax", "argmax")
WEIGHTS_FILE = "geoaware_postprocessor.safetensors"
PADDING_SIMILARITY = -2.0  # below any cosine similarity: padding tokens never match


class GeoAware(DenseMatcher):
    """GeoAware matcher: ``features()``/``match()`` like every geocorr method, plus training hooks.

    backbone: the frozen DINOv2 backbone (its preprocessing decides the grid).
    post_processor: the trainable head (supervised) or None (zero-shot feature concatenation).
    sd: optional frozen Stable Diffusion feature extractor (:class:`.sd.StableDiffusionFeatures`)
        whose levels come before the DINOv2 features, as in the published post-processor.
    """

    default_conf = {
        **DenseMatcher.default_conf,
        "inference": "window_soft_argmax",  # window_soft_argmax | soft_argmax | argmax
        "window": 15,  # window side in tokens (15 = radius 7: supervised; 11 zero-shot)
        "temperature": 0.02,  # softmax temperature over cosine similarities (inference and losses)
        "noise": 0.05,  # training: std of the ground-truth noise, a fraction of the target's PCK
        # length L (0.1 · L / 2, the published "0.1 · thr / 2")
        "dense_weight": 1.0,  # training: weight of L_dense (0 = the sparse-only baseline)
        "sparse_weight": 1.0,  # training: weight of L_sparse
    }

    def __init__(self, backbone: DinoV2Backbone, post_processor: PostProcessor | None = None,
                 sd: nn.Module | None = None, **conf):
        super().__init__(backbone, **conf)
        if self.conf["inference"] not in INFERENCE:
            raise ValueError(f"inference must be one of {', '.join(INFERENCE)}, got {self.conf['inference']!r}")
        if self.conf["window"] < 1 or self.conf["window"] % 2 == 0:
            raise ValueError(f"window must be a positive odd number of tokens, got {self.conf['window']}")
        if self.conf["temperature"] <= 0 or self.conf["noise"] < 0:
            raise ValueError("temperature must be > 0 and noise >= 0, got "
                             f"{self.conf['temperature']} and {self.conf['noise']}")
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
    @torch.no_grad()
    def sources(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Frozen feature maps of a backbone input (B, 3, Hi, Wi): [SD levels..., DINOv2], each (B, C_i, h, w)."""
        dino = self.backbone(x).float()
        if self.sd is None:
            return [dino]
        image = x * self.backbone.std + self.backbone.mean  # back to [0, 1] (padding becomes the mean)
        return [*self.sd(image, dino.shape[-2:]), dino]

    def refine(self, sources: list[torch.Tensor]) -> torch.Tensor:
        """Post-processed features (supervised) or the normalised sources concatenated (zero-shot)."""
        if self.post_processor is None:
            return torch.cat([F.normalize(s, dim=1) for s in sources], dim=1)
        return self.post_processor(sources)

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
        ch, cw = grid1.content_grid_hw
        sim[:, ch:, :] = PADDING_SIMILARITY
        sim[:, :, cw:] = PADDING_SIMILARITY
        return sim

    @torch.inference_mode()
    def match_features(self, feats0: Features, feats1: Features, points) -> Matches:
        """Match points (N, 2) of image 0 into image 1 with the configured inference -> Matches (pixels)."""
        if self.conf["inference"] == "argmax":
            return super().match_features(feats0, feats1, points)
        if len(feats0) != 1 or len(feats1) != 1:
            raise ValueError("match_features takes the features of one image each (index a batch first)")
        pts = check_points(points, feats0.grids[0].image_hw).to(feats0.dense.device)
        grid1 = feats1.grids[0]
        if len(pts) == 0:
            return Matches(pts.new_zeros(0, 2), pts.new_zeros(0), pts.new_zeros(0, *grid1.grid_hw))
        sim = self.similarity(feats0, feats1, pts)
        t = self.conf["temperature"]
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
        """L = dense_weight · L_dense + sparse_weight · L_sparse on a list of pairs.

        L_dense is measured in target tokens; the ground-truth noise (std ``noise`` · L pixels, from
        the torch RNG) is drawn in target pixels.
        """
        if self.post_processor is None:
            raise ValueError("a zero-shot GeoAware model cannot be trained; load it with zero_shot=False")
        device = self.device
        src_in, src_grids = zip(*(self.backbone.preprocess(s.source.to(device)) for s in batch))
        tgt_in, tgt_grids = zip(*(self.backbone.preprocess(s.target.to(device)) for s in batch))
        if len({x.shape for x in src_in + tgt_in}) != 1:
            raise ValueError("training needs backbone inputs of one size: use resize='pad' or 'stretch'")
        feats_src = self.refine(self.sources(torch.stack(src_in)))
        feats_tgt = self.refine(self.sources(torch.stack(tgt_in)))
        num = max(len(s.valid) for s in batch)
        valid = torch.zeros(len(batch), num, dtype=torch.bool, device=device)
        src_pts = torch.zeros(len(batch), num, 2, device=device)
        tgt_pts = torch.zeros(len(batch), num, 2, device=device)
        noisy_pts = torch.zeros(len(batch), num, 2, device=device)
        for b, (s, gs, gt) in enumerate(zip(batch, src_grids, tgt_grids)):
            k, ok = len(s.valid), s.valid.to(device)[:, None]
            noise = torch.randn(k, 2, device=device) * self.conf["noise"] * s.target_size
            tgt = _clip(s.target_keypoints.to(device), gt.image_hw)
            valid[b, :k] = ok[:, 0]
            src_pts[b, :k] = torch.where(ok, gs.image_to_grid(_clip(s.source_keypoints.to(device), gs.image_hw)), 0.0)
            tgt_pts[b, :k] = torch.where(ok, gt.image_to_grid(tgt), 0.0)
            noisy_pts[b, :k] = torch.where(ok, gt.image_to_grid(tgt + noise), 0.0)
        desc_src = sample_features(feats_src, src_pts)
        desc_tgt = sample_features(feats_tgt, tgt_pts)
        sim = torch.einsum("bnc,bchw->bnhw", F.normalize(desc_src, dim=-1), F.normalize(feats_tgt, dim=1))
        sim = sim.masked_fill(~_content_mask(tgt_grids, sim.shape[-2:], device)[:, None], PADDING_SIMILARITY)
        t = self.conf["temperature"]
        l_dense = dense_loss(sim, noisy_pts, valid, t)
        l_sparse = sparse_loss(desc_src, desc_tgt, valid, t)
        loss = self.conf["dense_weight"] * l_dense + self.conf["sparse_weight"] * l_sparse
        return {"loss": loss, "loss_dense": l_dense.detach(), "loss_sparse": l_sparse.detach()}

    # ------------------------------------------------------------------ weights
    def export(self, out_dir: str | Path) -> Path:
        """Write the post-processor to ``out_dir/geoaware_postprocessor.safetensors``."""
        if self.post_processor is None:
            raise ValueError("a zero-shot GeoAware model has no post-processor to export")
        path = Path(out_dir) / WEIGHTS_FILE
        save_post_processor(self.post_processor, path)
        return path


def _clip(points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Keep (N, 2) pixel points inside the image (annotations on the far edge occur)."""
    h, w = image_hw
    return torch.stack([points[:, 0].clamp(-0.5, w - 0.5), points[:, 1].clamp(-0.5, h - 0.5)], dim=-1)


def _content_mask(grids, grid_hw, device) -> torch.Tensor:
    """(B, h, w) True on tokens that overlap image content."""
    mask = torch.zeros(len(grids), *grid_hw, dtype=torch.bool, device=device)
    for b, g in enumerate(grids):
        ch, cw = g.content_grid_hw
        mask[b, :ch, :cw] = True
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
