"""GeoAware's lightweight post-processor: the only trainable part of the supervised model.

One bottleneck block per feature source (1×1 → 3×3 → 1×1 convolutions with GroupNorm; the shortcut
is a normalised 1×1 projection only where the widths differ, the identity otherwise, so the 768 → 768
DINOv2 block keeps an identity shortcut), their outputs mixed by softmax-normalised weights; dropout
on the input feature maps during training; the learnable logit scale of the sparse loss
(:func:`.losses.sparse_loss`) lives here too, as in the released network, so it is trained, decayed
and saved with it. Published setting, read from Junyi42/GeoAware-SC @ 99fd6b6
``model_utils/projection_network.py`` (AggregationNetwork) and ``model_utils/resnet.py``
(BottleneckBlock: projection only when in ≠ out, MSRA fan-out initialisation of every convolution).

Parameters at the published width (bottleneck 192, output 768): 628,994 with DINOv2 alone, 5,150,213
with the SD+DINOv2 sources (640, 1280, 1280, 768 channels) — the paper's "5 M". The released
network reports one more (628,995 / 5,150,214): it also holds a ``self_logit_scale`` that no loss of
the released recipe reads, which we leave out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # log of the initial logit scale of the sparse loss (CLIP's 1/0.07)


@dataclass(frozen=True)
class PostProcessorConfig:
    """Widths of the post-processor; the defaults are GeoAware's published ones."""

    in_channels: tuple[int, ...] = (768,)  # channels of each feature source, in order
    bottleneck_channels: int = 192  # width of the 1×1 → 3×3 → 1×1 bottleneck
    out_channels: int = 768  # channels of the refined features
    num_groups: int = 32  # GroupNorm groups (must divide the bottleneck and output widths)
    dropout: float = 0.2  # dropout on the input feature maps (training only)

    def __post_init__(self) -> None:
        if not self.in_channels or any(c < 1 for c in self.in_channels):
            raise ValueError(f"in_channels must list one positive width per source, got {self.in_channels}")
        for name in ("bottleneck_channels", "out_channels"):
            width = getattr(self, name)
            if width < 1 or width % self.num_groups:
                raise ValueError(f"{name}={width} must be a positive multiple of num_groups={self.num_groups}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


def _conv_norm(cin: int, cout: int, kernel: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.GroupNorm(groups, cout),
    )


class Bottleneck(nn.Module):
    """ReLU(conv1×1 → conv3×3 → conv1×1 (GroupNorm after each, ReLU between) + shortcut).

    (B, C_in, h, w) -> (B, C_out, h, w); the shortcut is a normalised 1×1 projection when
    C_in ≠ C_out and the identity when they are equal. Convolutions start from MSRA (Kaiming normal,
    fan-out) weights.
    """

    def __init__(self, cin: int, bottleneck: int, cout: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_norm(cin, bottleneck, 1, groups), nn.ReLU(inplace=True),
            _conv_norm(bottleneck, bottleneck, 3, groups), nn.ReLU(inplace=True),
            _conv_norm(bottleneck, cout, 1, groups),
        )
        self.shortcut = _conv_norm(cin, cout, 1, groups) if cin != cout else nn.Identity()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class PostProcessor(nn.Module):
    """Refines a list of frozen feature maps into one map.

    forward(features): list of (B, C_i, h, w), one per source (same h, w) -> (B, C_out, h, w).
    logit_scale: log of the sparse loss's logit scale (trained with the rest; not used by forward).
    """

    def __init__(self, config: PostProcessorConfig = PostProcessorConfig()):
        super().__init__()
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Bottleneck(c, config.bottleneck_channels, config.out_channels, config.num_groups)
            for c in config.in_channels
        )
        self.mixing_logits = nn.Parameter(torch.zeros(len(config.in_channels)))
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) != len(self.blocks):
            raise ValueError(f"post-processor: expected {len(self.blocks)} feature maps, got {len(features)}")
        for i, (feat, cin) in enumerate(zip(features, self.config.in_channels, strict=True)):
            if feat.ndim != 4 or feat.shape[1] != cin or feat.shape[-2:] != features[0].shape[-2:]:
                raise ValueError(f"post-processor: feature map {i} must have shape (B, {cin}, "
                                 f"{features[0].shape[-2]}, {features[0].shape[-1]}), got {tuple(feat.shape)}")
        weights = torch.softmax(self.mixing_logits, dim=0)
        return sum(w * block(self.dropout(f)) for w, block, f in zip(weights, self.blocks, features, strict=True))
