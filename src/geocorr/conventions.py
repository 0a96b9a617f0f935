"""Cell conventions of dense matching: which feature a query point reads, where a match lands.

geocorr's default reads the query feature bilinearly at the point and puts a match at the centre
of the best cell (token, or image pixel when features are up-sampled). The official evaluation
codes read the feature of the cell *containing* the point and GECO puts a match at the cell's
top-left corner, floored onto the integer pixel grid:

- GECO (reginehartwig/geco @ 03c8314, ``src/matcher/argmaxmatcher.py``): query token
  ``floor(v · g / W)``, with up-sampling the up-sampled feature at ``floor(v)``; match
  ``floor(j · W / g)`` (token j of g), with up-sampling the argmax pixel index itself;
- GeoAware-SC (Junyi42/GeoAware-SC @ 99fd6b6, ``utils/utils_correspondence.py``
  ``kpts_to_patch_idx`` / ``calculate_keypoint_transformation``): query token ``int(v · g / S)``
  in its padded S-px frame; match at the token centre ``14 j + 7`` (its patch 14; here ``p j + p / 2``
  for the backbone's patch p, e.g. ``16 j + 8`` on DINOv3).

Those codes read a coordinate ``v`` with 0 on the image's left (top) edge. In geocorr's
pixel-centre convention (:mod:`geocorr.grid`) that position is ``x = v - 0.5``; the functions here
take and return geocorr coordinates, so e.g. :func:`token_corner` returns ``floor(j · W / g) - 0.5``.
All functions are pure: points (N, 2) as (x, y); cells (N, 2) as (column, row), int64.
"""
from __future__ import annotations

import torch

from .grid import TokenGrid


def _check_points(points: torch.Tensor, name: str) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 2:
        got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"{name}: expected a tensor of shape (N, 2), got {got}")


def containing_token(points: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
    """The token whose area contains each point (image pixels, pixel-centre) -> (N, 2) int64.

    The point's distance from the image's left/top edge, ``x + 0.5``, is scaled into the backbone
    input, moved by the padding before the content (``grid.offset``), divided by the patch size and
    floored; points on the far edge belong to the last token of the image content. Float64.
    """
    _check_points(points, "points")
    (height, width), (ch, cw), (top, left) = grid.image_hw, grid.content_hw, grid.offset
    edge = points.double() + 0.5
    scale = torch.tensor([cw / width, ch / height], dtype=torch.float64, device=points.device)
    shift = torch.tensor([left, top], dtype=torch.float64, device=points.device)
    cells = torch.floor((edge * scale + shift) / grid.patch).long()
    r0, r1, c0, c1 = grid.content_tokens
    return torch.stack([cells[:, 0].clamp(c0, c1 - 1), cells[:, 1].clamp(r0, r1 - 1)], dim=1)


def containing_pixel(points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """The pixel containing each point (pixel-centre coordinates) -> (N, 2) int64 (column, row).

    ``floor(x + 0.5)``: the official codes' ``floor(v)``; the far edge belongs to the last pixel.
    """
    _check_points(points, "points")
    height, width = image_hw
    cells = torch.floor(points.double() + 0.5).long()
    return torch.stack([cells[:, 0].clamp(0, width - 1), cells[:, 1].clamp(0, height - 1)], dim=1)


def token_corner(cells: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
    """GECO's match position of token cells (N, 2) -> (N, 2) image pixels (pixel-centre), float32.

    The token's top-left corner in image pixels, ``(j · patch − left) · W / W'`` (W' the resized
    content width, ``left`` the padding before it; ``j · W / g`` at a square resize), floored onto
    the integer pixel-edge grid — computed exactly in integers — then moved to geocorr's convention
    (``- 0.5``).
    """
    _check_points(cells, "cells")
    (height, width), (ch, cw), (top, left) = grid.image_hw, grid.content_hw, grid.offset
    cells = cells.long()
    x = torch.div((cells[:, 0] * grid.patch - left) * width, cw, rounding_mode="floor")
    y = torch.div((cells[:, 1] * grid.patch - top) * height, ch, rounding_mode="floor")
    return torch.stack([x, y], dim=1).float() - 0.5


def pixel_corner(pixels: torch.Tensor) -> torch.Tensor:
    """GECO's match position of up-sampled pixels (N, 2): the pixel index read as an edge
    coordinate, i.e. the pixel's top-left corner ``i - 0.5`` in geocorr's convention, float32."""
    _check_points(pixels, "pixels")
    return pixels.float() - 0.5
