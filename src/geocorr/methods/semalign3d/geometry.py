"""Camera and shape geometry of SemAlign3D: pure, shape-checked tensor functions.

Cameras are pinhole cameras at the origin looking along +z, principal point at the image centre.
Image points are **normalised**: ``(0, 0)`` is the image centre and one unit is half the longer
image side, so a focal length ``f`` (also normalised) sees a half field of view of ``atan(1 / f)``.
"""
from __future__ import annotations

import math

import torch


def _check_last(t: torch.Tensor, size: int, name: str, shape: str) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim < 2 or t.shape[-1] != size:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name}: expected a tensor of shape {shape}, got {got}")


def pixels_to_normalised(points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Pixel coordinates (..., 2) (pixel-centre convention) -> normalised image coordinates (..., 2)."""
    h, w = image_hw
    centre = points.new_tensor([(w - 1) / 2, (h - 1) / 2])
    return (points - centre) / (max(h, w) / 2)


def normalised_to_pixels(points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Normalised image coordinates (..., 2) -> pixel coordinates (..., 2)."""
    h, w = image_hw
    centre = points.new_tensor([(w - 1) / 2, (h - 1) / 2])
    return points * (max(h, w) / 2) + centre


def backproject(points: torch.Tensor, depth: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """Lift normalised image points to camera coordinates.

    points: (B, N, 2) normalised, depth: (B, N) z-depth, focal: (B,) -> (B, N, 3).
    """
    _check_last(points, 2, "points", "(B, N, 2)")
    if depth.shape != points.shape[:-1] or focal.shape != points.shape[:1]:
        raise ValueError(f"depth {tuple(depth.shape)} / focal {tuple(focal.shape)} do not fit points "
                         f"{tuple(points.shape)}: expected (B, N) and (B,)")
    xy = points * depth[..., None] / focal[:, None, None]
    return torch.cat([xy, depth[..., None]], dim=-1)


def project(points: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """Pinhole projection to normalised image coordinates.

    points: (B, N, 3) camera coordinates (z > 0), focal: (B,) -> (B, N, 2).
    """
    _check_last(points, 3, "points", "(B, N, 3)")
    if focal.shape != points.shape[:1]:
        raise ValueError(f"focal: expected shape ({points.shape[0]},), got {tuple(focal.shape)}")
    z = points[..., 2:].clamp_min(1e-6)
    return focal[:, None, None] * points[..., :2] / z


def edge_pair_table(num_keypoints: int, max_count: int | None = None, must_include: int | None = None,
                    among: list[int] | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Index table of edge pairs ``(i, j, k, l)`` (edges ``i→j`` and ``k→l``, i<j, k<l, ij ≠ kl).

    among: restrict to these keypoints (default: all ``num_keypoints``).
    must_include: keep only pairs where this keypoint takes part.
    max_count: random subset of at most this many rows (``generator`` seeds it).
    Returns a (P, 4) long tensor.
    """
    ids = list(range(num_keypoints)) if among is None else sorted(set(among))
    if any(i < 0 or i >= num_keypoints for i in ids):
        raise ValueError(f"among: keypoint ids must lie in [0, {num_keypoints}), got {ids}")
    edges = torch.tensor([(a, b) for n, a in enumerate(ids) for b in ids[n + 1:]], dtype=torch.long)
    if len(edges) < 2:
        return torch.zeros(0, 4, dtype=torch.long)
    first, second = torch.triu_indices(len(edges), len(edges), offset=1)
    table = torch.cat([edges[first], edges[second]], dim=1)
    if must_include is not None:
        table = table[(table == must_include).any(dim=1)]
    if max_count is not None and len(table) > max_count:
        table = table[torch.randperm(len(table), generator=generator)[:max_count]]
    return table


def geometric_features(points: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale-invariant features of edge pairs (paper Eq. 1-2).

    points: (..., L, 3), table: (P, 4) rows (i, j, k, l) ->
    angles (..., P): ∠(e_ij, e_kl) / π in [0, 1]; ratios (..., P): |e_ij| / (|e_ij| + |e_kl|) in [0, 1].
    """
    _check_last(points, 3, "points", "(..., L, 3)")
    if table.ndim != 2 or table.shape[1] != 4:
        raise ValueError(f"table: expected shape (P, 4), got {tuple(table.shape)}")
    e0 = points[..., table[:, 1], :] - points[..., table[:, 0], :]
    e1 = points[..., table[:, 3], :] - points[..., table[:, 2], :]
    cross = torch.linalg.cross(e0, e1).pow(2).sum(-1).add(1e-12).sqrt()
    angles = torch.atan2(cross, (e0 * e1).sum(-1)) / math.pi
    n0 = e0.pow(2).sum(-1).add(1e-12).sqrt()
    n1 = e1.pow(2).sum(-1).add(1e-12).sqrt()
    return angles, n0 / (n0 + n1)


def similarity_transform(src: torch.Tensor, dst: torch.Tensor,
                         allow_reflection: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity ``dst ≈ s · R @ src + t`` (Umeyama).

    src, dst: (N, 3) -> scale (), rotation (3, 3) (det +1 unless ``allow_reflection``), translation (3,).
    """
    _check_last(src, 3, "src", "(N, 3)")
    if dst.shape != src.shape or src.ndim != 2 or len(src) < 3:
        raise ValueError(f"src {tuple(src.shape)} and dst {tuple(dst.shape)} must both be (N, 3), N >= 3")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    u, sig, vh = torch.linalg.svd(xd.T @ xs / len(src))
    d = torch.ones(3, dtype=src.dtype, device=src.device)
    if not allow_reflection and torch.det(u @ vh) < 0:
        d[2] = -1
    rot = u @ torch.diag(d) @ vh
    scale = (sig * d).sum() / xs.pow(2).sum(-1).mean()
    return scale, rot, mu_d - scale * rot @ mu_s


def similarity_residual(src: torch.Tensor, dst: torch.Tensor, allow_reflection: bool = False) -> torch.Tensor:
    """RMS distance after the best similarity, relative to the RMS radius of ``dst``.

    src, dst: (N, 3) -> () (0 when ``src`` is ``dst`` up to a similarity).
    """
    scale, rot, trans = similarity_transform(src, dst, allow_reflection)
    fitted = scale * src @ rot.T + trans
    radius = (dst - dst.mean(0)).pow(2).sum(-1).mean().sqrt()
    return (fitted - dst).pow(2).sum(-1).mean().sqrt() / radius
