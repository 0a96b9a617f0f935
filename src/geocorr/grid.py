"""Geometry of a token grid: how pixel coordinates of an image map to token coordinates.

Convention (used throughout geocorr): **pixel centres**. ``(x, y) = (0, 0)`` is the centre of the
top-left pixel of the original image and ``(W - 1, H - 1)`` the centre of the bottom-right one; the
image covers ``[-0.5, W - 0.5] × [-0.5, H - 0.5]``. Grid coordinates follow the same rule on the
token grid: token ``(j, i)`` (column j, row i) has its centre at grid coordinate ``(j, i)``.

The backbone input is the image resized to ``content_hw``, placed at ``offset`` (top, left) inside
the ``input_hw`` input (padding around it: right/bottom only for offset (0, 0), centred for GeoAware),
cut into ``patch × patch`` tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenGrid:
    """Token-grid geometry of one image.

    image_hw: (H, W) of the original image.
    content_hw: (H', W') of the resized image inside the backbone input.
    input_hw: (Hi, Wi) of the backbone input (content plus padding), multiples of patch.
    patch: token size in input pixels.
    offset: (top, left) input pixels of padding before the content ((0, 0): padding right/bottom only).
    """

    image_hw: tuple[int, int]
    content_hw: tuple[int, int]
    input_hw: tuple[int, int]
    patch: int
    offset: tuple[int, int] = (0, 0)

    @property
    def grid_hw(self) -> tuple[int, int]:
        """(h, w) of the token grid."""
        return self.input_hw[0] // self.patch, self.input_hw[1] // self.patch

    @property
    def content_grid_hw(self) -> tuple[int, int]:
        """(h, w) of the block of tokens that overlap image content (the rest is padding); the block
        starts at token (row, column) ``content_tokens[0], content_tokens[2]`` ((0, 0) without offset)."""
        r0, r1, c0, c1 = self.content_tokens
        return r1 - r0, c1 - c0

    @property
    def content_tokens(self) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1): tokens [row0:row1, col0:col1] overlap image content."""
        (top, left), (ch, cw), p = self.offset, self.content_hw, self.patch
        return top // p, -(-(top + ch) // p), left // p, -(-(left + cw) // p)

    def _scale(self, like: torch.Tensor) -> torch.Tensor:
        """Input pixels per image pixel, as (sx, sy)."""
        (h, w), (ch, cw) = self.image_hw, self.content_hw
        return torch.tensor([cw / w, ch / h], dtype=like.dtype, device=like.device)

    def _shift(self, like: torch.Tensor) -> torch.Tensor:
        """Input pixels of padding before the content, as (x, y)."""
        return torch.tensor([self.offset[1], self.offset[0]], dtype=like.dtype, device=like.device)

    def image_to_grid(self, points: torch.Tensor) -> torch.Tensor:
        """Image pixel coordinates (..., 2) as (x, y) -> continuous grid coordinates (..., 2)."""
        inp = (points + 0.5) * self._scale(points) - 0.5 + self._shift(points)
        return (inp + 0.5) / self.patch - 0.5

    def grid_to_image(self, points: torch.Tensor) -> torch.Tensor:
        """Continuous grid coordinates (..., 2) as (x, y) -> image pixel coordinates (..., 2)."""
        inp = (points + 0.5) * self.patch - 0.5 - self._shift(points)
        return (inp + 0.5) / self._scale(points) - 0.5
