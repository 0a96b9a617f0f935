"""Training GECO's LoRA: features of both images -> cosine scores -> OT plan -> GECO loss.

``GecoTrainConfig`` defaults are the published setting (reginehartwig/geco @ 03c8314:
configs/train_pairs.yaml, configs/train_setting_default.yaml, scripts/train_pairs.py): AdamW lr
1e-4, no weight decay, 8 epochs, batch 6, no scheduler, 518 px, 800 pairs per category and
epoch (a fresh slice each epoch), LoRA rank 10, OT ε 0.1 / KL 10 / 10 iterations / dustbin 0.3 /
mass 0.9 with the dataset's padded keypoint count, loss on the raw plan with weights
1 / 1 / 10 / 10, validation every 1000 steps, augmentation of src/dataset/augmentations.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ....backbones import BackboneSpec
from ....datasets.base import PairDataset
from ....methods.geco import Geco, load
from ....methods.geco.loss import GecoLossConfig, KeypointTokens, geco_loss
from ....methods.geco.transport import OptimalTransport, OTConfig
from ....ot import mask_marginals
from ... import TrainConfig, Trainer
from ...augment import AugmentConfig
from ...validation import pck_validator
from .data import GecoPairs, collate
from .sources import GecoSource, geco_source

ADAPTER_FILE = "adapter.safetensors"


@dataclass
class GecoTrainConfig(TrainConfig):
    """GECO's published training setting."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    epochs: int = 8
    batch_size: int = 6
    scheduler: str = "none"
    val_every: int = 1000
    checkpoint_every: int = 1000
    image_size: int = 518  # square images, rounded down to the patch: 37×37 tokens at 14, 512 = 32×32 at DINOv3's 16
    per_category: int | None = 800  # pairs per category and epoch (a fresh slice each epoch)
    rank: int = 10  # LoRA rank (scale 1)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    ot: OTConfig = field(default_factory=OTConfig)
    loss: GecoLossConfig = field(default_factory=GecoLossConfig)


class GecoTraining(nn.Module):
    """The trainable wrapper the :class:`~geocorr.training.Trainer` drives.

    matcher: a :class:`Geco` built with ``merge=False`` (its LoRA is trained, the rest frozen).
    """

    def __init__(self, matcher: Geco, conf: GecoTrainConfig | None = None) -> None:
        super().__init__()
        conf = conf or GecoTrainConfig()
        self.matcher, self.conf = matcher, conf
        self.ot = OptimalTransport(conf.ot)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The LoRA factors, plus the dustbin score if it is learned."""
        return self.matcher.trainable_parameters() + ([self.ot.dustbin] if self.conf.ot.learn_dustbin else [])

    def similarity(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) in [0, 1] -> cosine similarities (B, N, M) of their tokens."""
        backbone = self.matcher.backbone
        x = (torch.cat([source, target]) - backbone.mean) / backbone.std
        feats = F.normalize(backbone(x).flatten(2).float(), dim=1)  # (2B, C, N)
        fa, fb = feats.chunk(2)
        return torch.einsum("bcn,bcm->bnm", fa, fb)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A collated batch (see :func:`geocorr.training.recipes.geco.data.collate`) -> loss terms."""
        scores = self.similarity(batch["source_image"], batch["target_image"])
        mask, count = batch["keypoint_mask"], batch["num_keypoints"]
        log_a = mask_marginals(batch["source_foreground"], (batch["source_visible"] & mask).sum(1), count,
                               self.conf.ot.mass).log()
        log_b = mask_marginals(batch["target_foreground"], (batch["target_visible"] & mask).sum(1), count,
                               self.conf.ot.mass).log()
        return geco_loss(self.ot(scores, log_a, log_b), KeypointTokens.from_batch(batch),
                         batch["source_foreground"], batch["target_foreground"], self.conf.loss)

    def save_weights(self, out_dir: str | Path) -> Path:
        """Write the trained LoRA as ``out_dir/adapter.safetensors`` (load it with weights=that path)."""
        path = Path(out_dir) / ADAPTER_FILE
        self.matcher.save_adapter(path)
        return path


TrainSet = PairDataset | GecoSource


def build_trainer(train_set: TrainSet | Sequence[TrainSet], out_dir: str | Path,
                  conf: GecoTrainConfig | None = None,
                  backbone: BackboneSpec = "facebook/dinov2-base", adapter: str | Path | None = None,
                  val_set: PairDataset | None = None, val_pairs: int | None = None, progress: bool = True) -> Trainer:
    """A :class:`Trainer` for GECO on ``train_set`` — one dataset or several trained jointly —
    validated on ``val_set`` if given.

    A plain :class:`PairDataset` gets GECO's settings for its kind (:func:`~.sources.geco_source`:
    padded keypoint count read from its folder, PF-Pascal's ``.mat`` keypoints without augmentation).
    conf: default the published :class:`GecoTrainConfig`.
    backbone: hub id, local folder or transformers config; adapter: LoRA to start from (None: fresh).
    """
    conf = conf or GecoTrainConfig()
    sets = [train_set] if isinstance(train_set, (PairDataset, GecoSource)) else list(train_set)
    sources = [s if isinstance(s, GecoSource) else geco_source(s) for s in sets]
    matcher = load(backbone=backbone, adapter=adapter, image_size=conf.image_size, merge=False, rank=conf.rank)
    model = GecoTraining(matcher, conf)
    patch = matcher.backbone.patch
    side = max(patch, conf.image_size // patch * patch)  # the backbone's own rounding (BackboneConfig)
    data = GecoPairs(sources, side, patch, conf.augment, conf.per_category, conf.seed)
    validate = pck_validator(val_set, max_pairs=val_pairs) if val_set is not None else None
    return Trainer(model, data, conf, out_dir, collate_fn=collate, validate=validate, progress=progress)
