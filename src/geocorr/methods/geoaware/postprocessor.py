"""GeoAware's lightweight post-processor: the only trainable part of the supervised model.

One bottleneck block per feature source (1×1 → 3×3 → 1×1 convolutions with GroupNorm, plus a
projection shortcut), their outputs mixed by softmax-normalised weights; dropout on the input
feature maps during training. At the published width (bottleneck 192, output 768) with the SD+DINOv2
sources (640, 1280, 1280, 768 channels) it has ≈ 5.7 M parameters, as the released setting states
(the paper rounds to "5 M"); that count needs the projection shortcut on every block, the 768 → 768
DINOv2 one included, so every block has one. With DINOv2 alone it has ≈ 1.2 M.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


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
    """ReLU(conv1×1 → conv3×3 → conv1×1 (GroupNorm after each, ReLU between) + projection).

    (B, C_in, h, w) -> (B, C_out, h, w); the projection shortcut is a normalised 1×1 convolution.
    """

    def __init__(self, cin: int, bottleneck: int, cout: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_norm(cin, bottleneck, 1, groups), nn.ReLU(inplace=True),
            _conv_norm(bottleneck, bottleneck, 3, groups), nn.ReLU(inplace=True),
            _conv_norm(bottleneck, cout, 1, groups),
        )
        self.shortcut = _conv_norm(cin, cout, 1, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class PostProcessor(nn.Module):
    """Refines a list of frozen feature maps into one map.

    forward(features): list of (B, C_i, h, w), one per source (same h, w) -> (B, C_out, h, w).
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

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) != len(self.blocks):
            raise ValueError(f"post-processor: expected {len(self.blocks)} feature maps, got {len(features)}")
        for i, (feat, cin) in enumerate(zip(features, self.config.in_channels)):
            if feat.ndim != 4 or feat.shape[1] != cin or feat.shape[-2:] != features[0].shape[-2:]:
                raise ValueError(f"post-processor: feature map {i} must have shape (B, {cin}, "
                                 f"{features[0].shape[-2]}, {features[0].shape[-1]}), got {tuple(feat.shape)}")
        weights = torch.softmax(self.mixing_logits, dim=0)
        return sum(w * block(self.dropout(f)) for w, block, f in zip(weights, self.blocks, features))
