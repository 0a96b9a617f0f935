"""Camera and shape geometry of SemAlign3D: pure, shape-checked tensor functions.

Cameras are pinhole cameras at the origin looking along +z, principal point at the image centre.
Image points are **normalised**: ``(0, 0)`` is the image centre and one unit is the full longer
image side max(H, W), as in the authors' code (``semalign3d/utils/camera_intrinsics.py``: pixels
divided by max(H, W)), so the published focal starts (10, 5, 2.5, 1.25) and σ schedules apply
unchanged; a focal length ``f`` sees a half field of view of ``atan(0.5 / f)`` across the longer side.
"""
from __future__ import annotations

import torch


def _check_last(t: torch.Tensor, size: int, name: str, shape: str) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim < 2 or t.shape[-1] != size:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name}: expected a tensor of shape {shape}, got {got}")


def pixels_to_normalised(points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Pixel coordinates (..., 2) (pixel-centre convention) -> normalised image coordinates (..., 2)."""
    h, w = image_hw
    centre = points.new_tensor([(w - 1) / 2, (h - 1) / 2])
    return (points - centre) / max(h, w)


def normalised_to_pixels(points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Normalised image coordinates (..., 2) -> pixel coordinates (..., 2)."""
    h, w = image_hw
    centre = points.new_tensor([(w - 1) / 2, (h - 1) / 2])
    return points * max(h, w) + centre


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


def edge_pair_table(num_keypoints: int, must_include: int | None = None,
                    among: list[int] | None = None) -> torch.Tensor:
    """Index table of all edge pairs ``(i, j, k, l)`` (edges ``i→j`` and ``k→l``, i<j, k<l, ij before kl).

    among: restrict to these keypoints (default: all ``num_keypoints``).
    must_include: keep only pairs where this keypoint takes part.
    Returns a (P, 4) long tensor (P = E(E−1)/2 for E edges: all combinations, as the authors'
    ``generate_edge_pair_combinations``, ``semalign3d/core/geometry/geom_combinations.py``).
    """
    ids = _ids(num_keypoints, among)
    edges = torch.tensor([(a, b) for n, a in enumerate(ids) for b in ids[n + 1:]], dtype=torch.long)
    if len(edges) < 2:
        return torch.zeros(0, 4, dtype=torch.long)
    first, second = torch.triu_indices(len(edges), len(edges), offset=1)
    table = torch.cat([edges[first], edges[second]], dim=1)
    if must_include is not None:
        table = table[(table == must_include).any(dim=1)]
    return table


def tetrahedron_table(num_keypoints: int, must_include: int | None = None,
                      among: list[int] | None = None) -> torch.Tensor:
    """Index table of (triangle a, b, c; vertex v) rows: for every 4 keypoints, the 4 cyclic shifts
    (the authors' ``generate_trianlge_vertex_combinations``). Returns a (T, 4) long tensor."""
    ids = _ids(num_keypoints, among)
    if len(ids) < 4:
        return torch.zeros(0, 4, dtype=torch.long)
    quads = torch.combinations(torch.tensor(ids), 4)
    shifts = (torch.arange(4)[None] + torch.arange(4)[:, None]) % 4  # row s: (s, s+1, s+2, s+3) mod 4
    table = quads[:, shifts].reshape(-1, 4)
    if must_include is not None:
        table = table[(table == must_include).any(dim=1)]
    return table


def _ids(num_keypoints: int, among: list[int] | None) -> list[int]:
    ids = list(range(num_keypoints)) if among is None else sorted(set(among))
    if any(i < 0 or i >= num_keypoints for i in ids):
        raise ValueError(f"among: keypoint ids must lie in [0, {num_keypoints}), got {ids}")
    return ids


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.pow(2).sum(-1, keepdim=True).add(1e-12).sqrt()


def geometric_features(points: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale-invariant features of edge pairs (paper Eq. 1-2; the authors' ``edge_pair_cos_angles``
    and ``edge_pair_ratios``, ``semalign3d/core/geometry/geom_features.py``).

    points: (..., L, 3), table: (P, 4) rows (i, j, k, l) ->
    cos_angles (..., P): cos ∠(e_ij, e_kl) in [-1, 1]; ratios (..., P): |e_ij| / (|e_ij| + |e_kl|) in [0, 1].
    Both are blind to mirroring (see :func:`tetrahedron_features`).
    """
    _check_last(points, 3, "points", "(..., L, 3)")
    if table.ndim != 2 or table.shape[1] != 4:
        raise ValueError(f"table: expected shape (P, 4), got {tuple(table.shape)}")
    e0 = points[..., table[:, 1], :] - points[..., table[:, 0], :]
    e1 = points[..., table[:, 3], :] - points[..., table[:, 2], :]
    cos = (_unit(e0) * _unit(e1)).sum(-1)
    n0 = e0.pow(2).sum(-1).add(1e-12).sqrt()
    n1 = e1.pow(2).sum(-1).add(1e-12).sqrt()
    return cos, n0 / (n0 + n1)


def tetrahedron_features(points: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Chirality-aware features (the authors' ``cos_angle_x/y/z``, ``geom_features.py``).

    For a row (a, b, c, v): the frame x = (b − a)/|b − a|, z = unit((b − a) × (c − a)), y = z × x;
    returns the cosines of the angles between (v − a)/|v − a| and x, y, z. A mirror image flips the
    sign of the z cosine, so these features tell a shape from its mirror image.
    points: (..., L, 3), table: (T, 4) -> (..., T, 3) in [-1, 1].
    """
    _check_last(points, 3, "points", "(..., L, 3)")
    if table.ndim != 2 or table.shape[1] != 4:
        raise ValueError(f"table: expected shape (T, 4), got {tuple(table.shape)}")
    a, b, c, v = (points[..., table[:, n], :] for n in range(4))
    x = _unit(b - a)
    z = _unit(torch.linalg.cross(b - a, c - a))
    y = torch.linalg.cross(z, x)
    d = _unit(v - a)
    return torch.stack([(d * x).sum(-1), (d * y).sum(-1), (d * z).sum(-1)], dim=-1)


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
