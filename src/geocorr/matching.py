"""Matching on dense features: pure tensor functions.

Coordinates are (x, y) on the token grid, pixel-centre convention (see :mod:`geocorr.grid`):
token (column j, row i) has its centre at (j, i). :class:`geocorr.grid.TokenGrid` converts them to and
from image pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .grid import TokenGrid


def _check(t: torch.Tensor, ndim: int, name: str, shape: str) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim != ndim:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name}: expected a tensor of shape {shape}, got {got}")


def _check_points(points: torch.Tensor, name: str = "points") -> None:
    _check(points, 3, name, "(B, N, 2)")
    if points.shape[-1] != 2:
        raise ValueError(f"{name}: expected shape (B, N, 2), got {tuple(points.shape)}")


def cosine_similarity(desc0: torch.Tensor, desc1: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every descriptor pair.

    desc0: (B, N, C), desc1: (B, M, C) -> (B, N, M) in [-1, 1].
    """
    _check(desc0, 3, "desc0", "(B, N, C)")
    _check(desc1, 3, "desc1", "(B, M, C)")
    if desc0.shape[0] != desc1.shape[0] or desc0.shape[2] != desc1.shape[2]:
        raise ValueError(f"desc0 {tuple(desc0.shape)} and desc1 {tuple(desc1.shape)} differ in B or C")
    return F.normalize(desc0, dim=-1) @ F.normalize(desc1, dim=-1).transpose(1, 2)


def _grid_coords(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(h*w, 2) (x, y) coordinates of every cell, row-major."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=like.device, dtype=like.dtype),
        torch.arange(w, device=like.device, dtype=like.dtype),
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def argmax_match(sim: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest neighbour: the cell of highest similarity.

    sim: (B, N, H, W) -> points (B, N, 2) as (x, y), scores (B, N) = the maximum.
    """
    _check(sim, 4, "sim", "(B, N, H, W)")
    b, n, h, w = sim.shape
    if h * w == 0:
        raise ValueError(f"sim: empty similarity map of shape {tuple(sim.shape)}")
    scores, idx = sim.reshape(b, n, h * w).max(dim=-1)
    points = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1)
    return points.to(sim.dtype), scores


def soft_argmax(sim: torch.Tensor, temperature: float = 0.02) -> torch.Tensor:
    """Expected location under softmax(sim / temperature) over the whole map.

    sim: (B, N, H, W) -> (B, N, 2) as (x, y). Differentiable.
    """
    _check(sim, 4, "sim", "(B, N, H, W)")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b, n, h, w = sim.shape
    prob = torch.softmax(sim.reshape(b, n, h * w) / temperature, dim=-1)
    return prob @ _grid_coords(h, w, sim)


def window_soft_argmax(sim: torch.Tensor, window: int = 15, temperature: float = 0.02) -> torch.Tensor:
    """Soft-argmax restricted to a ``window × window`` neighbourhood of the argmax.

    sim: (B, N, H, W) -> (B, N, 2) as (x, y). ``window`` is the odd side length in cells
    (15 = a radius of 7, GeoAware's supervised setting). Differentiable w.r.t. sim (the window's
    position is not).
    """
    _check(sim, 4, "sim", "(B, N, H, W)")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of cells, got {window}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b, n, h, w = sim.shape
    centre, _ = argmax_match(sim.detach())
    coords = _grid_coords(h, w, sim)  # (HW, 2)
    inside = ((coords[None, None] - centre[:, :, None]).abs() <= window // 2).all(dim=-1)  # (B,N,HW)
    logits = (sim.reshape(b, n, h * w) / temperature).masked_fill(~inside, float("-inf"))
    return torch.softmax(logits, dim=-1) @ coords


def mutual_nearest_neighbours(sim: torch.Tensor) -> torch.Tensor:
    """Index of each row's nearest neighbour if it is mutual, else -1.

    sim: (B, N, M) -> (B, N) long.
    """
    _check(sim, 3, "sim", "(B, N, M)")
    if sim.shape[1] == 0 or sim.shape[2] == 0:
        return torch.full(sim.shape[:2], -1, dtype=torch.long, device=sim.device)
    nn01 = sim.argmax(dim=2)  # (B, N)
    nn10 = sim.argmax(dim=1)  # (B, M)
    back = torch.gather(nn10, 1, nn01)
    rows = torch.arange(sim.shape[1], device=sim.device).expand_as(nn01)
    return torch.where(back == rows, nn01, torch.full_like(nn01, -1))


def sample_features(feats: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of a feature map at grid coordinates (border values outside).

    feats: (B, C, h, w), points: (B, N, 2) as (x, y) grid coordinates -> (B, N, C).
    """
    _check(feats, 4, "feats", "(B, C, h, w)")
    _check_points(points)
    if points.shape[0] != feats.shape[0]:
        raise ValueError(f"feats has batch {feats.shape[0]} but points has {points.shape[0]}")
    h, w = feats.shape[-2:]
    scale = torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=points.dtype, device=points.device)
    norm = 2 * points / scale - 1
    out = F.grid_sample(feats, norm[:, :, None].to(feats.dtype), mode="bilinear",
                        padding_mode="border", align_corners=True)  # (B, C, N, 1)
    return out[..., 0].transpose(1, 2)


def upsample_features(feats: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
    """Features at every pixel of the original image (bilinear, following the grid geometry).

    feats: (B, C, h, w) on ``grid`` -> (B, C, H, W) with (H, W) = ``grid.image_hw``.
    """
    _check(feats, 4, "feats", "(B, C, h, w)")
    if tuple(feats.shape[-2:]) != grid.grid_hw:
        raise ValueError(f"feats grid {tuple(feats.shape[-2:])} does not match the TokenGrid {grid.grid_hw}")
    height, width = grid.image_hw
    pix = _grid_coords(height, width, torch.empty(0, dtype=torch.float32, device=feats.device))
    pts = grid.image_to_grid(pix)[None].expand(feats.shape[0], -1, -1)
    return sample_features(feats, pts).transpose(1, 2).reshape(feats.shape[0], -1, height, width)


def upsampled_cosine_similarity(query: torch.Tensor, feats: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
    """Cosine similarity of queries to the bilinearly up-sampled features at every image pixel.

    Equal to ``cosine_similarity(query, upsample_features(feats, grid))`` but never builds the
    (C, H, W) up-sampled map: an up-sampled feature is ``Σ_k w_k f_k`` over the 4 surrounding tokens, so
    its dot product with q interpolates the token map ``q·f`` and its squared norm is ``Σ_kl w_k w_l
    f_k·f_l``, from 6 token-level maps of neighbour dot products.

    query: (N, C); feats: (C, h, w) on ``grid`` -> (N, H, W) with (H, W) = ``grid.image_hw``. The result
    holds N·H·W values (and its computation 4·N·H·W): for the best pixel of many queries use
    :func:`upsampled_argmax`, whose memory is bounded.
    """
    _check(query, 2, "query", "(N, C)")
    tokens, relations = _token_terms(feats, grid)
    corners, weights, norm = _pixel_terms(grid, relations, 0, grid.image_hw[0] * grid.image_hw[1])
    dots = F.normalize(query, dim=-1) @ tokens  # (N, h*w)
    return _pixel_similarity(dots, corners, weights, norm).reshape(-1, *grid.image_hw)


# Values in the largest intermediate of one step of upsampled_argmax (64 MB in float32): bounds its memory
# whatever the number of query points and the image size.
CHUNK_ELEMENTS = 1 << 24


def upsampled_argmax(query: torch.Tensor, feats: torch.Tensor, grid: TokenGrid,
                     chunk_elements: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The best image pixel of each query under :func:`upsampled_cosine_similarity`, in bounded memory.

    Equal to ``argmax_match(upsampled_cosine_similarity(query, feats, grid)[None])`` (same values, first
    maximum on ties) but computed over chunks of pixels (their interpolation terms too) and of queries
    so that no intermediate holds more than about ``chunk_elements`` values (default
    :data:`CHUNK_ELEMENTS`), whatever the number of points and the image size; no host synchronisation.

    query: (N, C); feats: (C, h, w) on ``grid`` -> points (N, 2) as (x, y) pixels, scores (N,).
    """
    _check(query, 2, "query", "(N, C)")
    chunk_elements = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
    tokens, relations = _token_terms(feats, grid)
    width, num_pixels = grid.image_hw[1], grid.image_hw[0] * grid.image_hw[1]
    q = F.normalize(query, dim=-1)
    pixels = max(1, min(num_pixels, chunk_elements // 4))  # (rows, 4, pixels) gathered per step
    rows = max(1, chunk_elements // max(4 * pixels, tokens.shape[1]))
    dots_all = q @ tokens if len(q) * tokens.shape[1] <= chunk_elements else None  # else per chunk of rows
    scores = q.new_empty(len(q))  # written chunk by chunk: no chunk outlives its step
    index = torch.empty(len(q), dtype=torch.long, device=q.device)
    for p0 in range(0, num_pixels, pixels):
        corners, weights, norm = _pixel_terms(grid, relations, p0, min(num_pixels, p0 + pixels))
        for r0 in range(0, len(q), rows):
            dots = dots_all[r0 : r0 + rows] if dots_all is not None else q[r0 : r0 + rows] @ tokens
            best, where = scores[r0 : r0 + rows], index[r0 : r0 + rows]
            if p0 == 0:
                torch.max(_pixel_similarity(dots, corners, weights, norm), dim=1, out=(best, where))
                continue
            value, at = _pixel_similarity(dots, corners, weights, norm).max(dim=1)
            better = value > best  # strictly: the first maximum wins, as in one argmax over all pixels
            best.copy_(torch.where(better, value, best))
            where.copy_(torch.where(better, at + p0, where))
    points = torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], dim=-1)
    return points.to(q.dtype), scores


def _pixel_similarity(dots: torch.Tensor, corners: torch.Tensor, weights: torch.Tensor,
                      norm: torch.Tensor) -> torch.Tensor:
    """Token-level dot products (N, h*w) -> cosine similarities (N, P) of the P pixels described by
    corners (4, P), weights (4, P) and up-sampled feature norms (P,)."""
    return (dots[:, corners] * weights[None]).sum(1) / norm


def _token_terms(feats: torch.Tensor, grid: TokenGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level part of the up-sampling of ``feats`` (C, h, w): tokens (C, h*w) and the dot products
    of each token with itself and its right, lower, diagonal and anti-diagonal neighbours (5, h*w),
    on the grid padded to at least 2×2 (replicated)."""
    _check(feats, 3, "feats", "(C, h, w)")
    if tuple(feats.shape[-2:]) != grid.grid_hw:
        raise ValueError(f"feats grid {tuple(feats.shape[-2:])} does not match the TokenGrid {grid.grid_hw}")
    f = F.pad(feats[None], (0, feats.shape[2] < 2, 0, feats.shape[1] < 2), mode="replicate")[0]
    norm2 = (f * f).sum(0).reshape(-1)
    right = F.pad((f[:, :, :-1] * f[:, :, 1:]).sum(0), (0, 1)).reshape(-1)
    down = F.pad((f[:, :-1] * f[:, 1:]).sum(0), (0, 0, 0, 1)).reshape(-1)
    diag = F.pad((f[:, :-1, :-1] * f[:, 1:, 1:]).sum(0), (0, 1, 0, 1)).reshape(-1)
    anti = F.pad((f[:, :-1, 1:] * f[:, 1:, :-1]).sum(0), (0, 1, 0, 1)).reshape(-1)
    relations = torch.stack([norm2, right, down, diag, anti]).reshape(5, *f.shape[1:])
    return f.reshape(f.shape[0], -1), relations


def _pixel_terms(grid: TokenGrid, relations: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, ...]:
    """Bilinear up-sampling terms of the image pixels ``start .. stop - 1`` (row-major), P = stop - start:
    corners (4, P) token indices, weights (4, P), norm (P,) of the up-sampled feature."""
    h, w = relations.shape[1:]
    width = grid.image_hw[1]
    p = torch.arange(start, stop, device=relations.device)
    pix = torch.stack([(p % width).float(), torch.div(p, width, rounding_mode="floor").float()], dim=-1)
    g = grid.image_to_grid(pix)
    gx = g[:, 0].clamp(0, grid.grid_hw[1] - 1)  # grid_sample's border padding clamps coordinates
    gy = g[:, 1].clamp(0, grid.grid_hw[0] - 1)
    x0 = gx.floor().clamp(max=w - 2).long()
    y0 = gy.floor().clamp(max=h - 2).long()
    fx, fy = gx - x0, gy - y0
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])  # a b c d: (4, P)
    corners = torch.stack([y0 * w + x0, y0 * w + x0 + 1, (y0 + 1) * w + x0, (y0 + 1) * w + x0 + 1])
    norm2, right, down, diag, anti = relations.reshape(5, -1)
    a = corners[0]
    wa, wb, wc, wd = weights
    sq = (wa**2 * norm2[corners[0]] + wb**2 * norm2[corners[1]] + wc**2 * norm2[corners[2]]
          + wd**2 * norm2[corners[3]]
          + 2 * (wa * wb * right[a] + wc * wd * right[corners[2]] + wa * wc * down[a]
                 + wb * wd * down[corners[1]] + wa * wd * diag[a] + wb * wc * anti[a]))
    return corners, weights, sq.clamp_min(1e-24).sqrt()
