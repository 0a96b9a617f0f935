"""The flow + matchability network of Zhou et al. (2016).

A shared encoder of 8 3×3 convolutions (stride 2 to down-sample, no pooling, ReLU) embeds each
image; the two embeddings are concatenated and decoded by two 9-layer up-convolution decoders,
one to a dense flow ``F_{a,b}`` (pixels) and one to a matchability ``M_{a,b}`` (sigmoid).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["CycleCorrNet", "NetworkConfig"]


@dataclass(frozen=True)
class NetworkConfig:
    """Defaults: the paper's 128×128 input, 8 encoder layers, 9 layers per decoder."""

    image_size: int = 128  # square input side; must be divisible by 2 ** number of stride-2 layers
    encoder: tuple[tuple[int, int], ...] = (  # (channels, stride) of the 8 encoder convolutions
        (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
    )
    decoder: tuple[tuple[int, int], ...] = (  # (channels, up-sampling) of the first 8 decoder layers
        (512, 1), (256, 2), (256, 1), (128, 2), (128, 1), (64, 2), (64, 1), (32, 2),
    )

    def __post_init__(self) -> None:
        down = 2 ** sum(s == 2 for _, s in self.encoder)
        up = 2 ** sum(s == 2 for _, s in self.decoder)
        if down != up:
            raise ValueError(f"encoder down-samples by {down} but decoder up-samples by {up}")
        if self.image_size <= 0 or self.image_size % down:
            raise ValueError(f"image_size must be a positive multiple of {down}, got {self.image_size}")


def _encoder(layers: tuple[tuple[int, int], ...]) -> nn.Sequential:
    modules, channels = [], 3
    for out, stride in layers:
        modules += [nn.Conv2d(channels, out, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]
        channels = out
    return nn.Sequential(*modules)


def _decoder(in_channels: int, layers: tuple[tuple[int, int], ...], out_channels: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    channels = in_channels
    for out, up in layers:
        if up == 2:
            modules.append(nn.ConvTranspose2d(channels, out, 3, stride=2, padding=1, output_padding=1))
        else:
            modules.append(nn.ConvTranspose2d(channels, out, 3, stride=1, padding=1))
        modules.append(nn.ReLU(inplace=True))
        channels = out
    modules.append(nn.ConvTranspose2d(channels, out_channels, 3, stride=1, padding=1))
    return nn.Sequential(*modules)


class CycleCorrNet(nn.Module):
    """Predicts flow and matchability from image a to image b.

    forward(image_a B×3×S×S, image_b B×3×S×S, RGB in [0, 1]) ->
    (flow B×2×S×S in pixels, matchability B×1×S×S in [0, 1]).
    """

    mean: Tensor  # buffer 1×3×1×1: ImageNet normalisation
    std: Tensor  # buffer 1×3×1×1

    def __init__(self, config: NetworkConfig = NetworkConfig()):
        super().__init__()
        self.config = config
        self.encoder = _encoder(config.encoder)
        embedding = 2 * config.encoder[-1][0]
        self.flow_decoder = _decoder(embedding, config.decoder, 2)
        self.matchability_decoder = _decoder(embedding, config.decoder, 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def embed(self, images: Tensor) -> Tensor:
        """RGB in [0, 1], B×3×S×S -> B×C×S/16×S/16 (for the default strides), ImageNet-normalised first."""
        size = self.config.image_size
        if images.ndim != 4 or images.shape[1:] != (3, size, size):
            raise ValueError(f"images must have shape B×3×{size}×{size}, got {tuple(images.shape)}")
        return self.encoder((images - self.mean) / self.std)

    def decode_flow(self, embedding_a: Tensor, embedding_b: Tensor) -> Tensor:
        """Two embeddings B×C×s×s -> flow F_{a,b} B×2×S×S in pixels."""
        return self.flow_decoder(torch.cat([embedding_a, embedding_b], 1))

    def decode_matchability(self, embedding_a: Tensor, embedding_b: Tensor) -> Tensor:
        """Two embeddings B×C×s×s -> matchability M_{a,b} B×1×S×S in [0, 1]."""
        return torch.sigmoid(self.matchability_decoder(torch.cat([embedding_a, embedding_b], 1)))

    def forward(self, image_a: Tensor, image_b: Tensor) -> tuple[Tensor, Tensor]:
        if image_a.shape != image_b.shape:
            raise ValueError(f"image_b must have shape {tuple(image_a.shape)}, got {tuple(image_b.shape)}")
        embedding_a, embedding_b = self.embed(image_a), self.embed(image_b)
        return self.decode_flow(embedding_a, embedding_b), self.decode_matchability(embedding_a, embedding_b)
