"""Aligning a class representation to one image by gradient descent (paper Sec. 3.2, Eq. 4-13).

The unknowns are the keypoints of the class in camera coordinates (``B × L × 3``, the dense cloud
follows through its barycentric coordinates) and the focal length, for B initial guesses
optimised together. Image points are normalised (see :mod:`.geometry`), so σ is in units of half
the longer image side.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...grid import TokenGrid
from ...matching import sample_features
from .dense import apply_barycentric
from .geometry import normalised_to_pixels, pixels_to_normalised, project
from .representation import ClassRepresentation

Schedule = float | tuple[tuple[float, ...], tuple[float, ...]]


def scheduled(value: Schedule, progress: float) -> float:
    """A constant, or (times, values) linearly interpolated at ``progress`` in [0, 1]."""
    if isinstance(value, (int, float)):
        return float(value)
    times, values = value
    return float(np.interp(progress, times, values))


@dataclass
class AlignConfig:
    """Alignment hyper-parameters. Defaults: the paper's Tab. 5 for "other" categories, with its
    timesteps written as fractions of ``steps`` (300 of 1000 → 0.3)."""

    steps: int = 1000
    lr: float = 5e-3  # AdamW
    focals: tuple[float, ...] = (10.0, 5.0, 2.5, 1.25)  # initial focal lengths (multi-start)
    samples_per_focal: int = 4  # random initial rotations per focal length
    sigma_dense: Schedule = ((0.0, 0.3, 0.5), (1.0, 0.1, 0.03))
    sigma_sparse: Schedule = ((0.0, 0.3, 0.5, 0.7), (1.0, 0.1, 0.1, 0.05))
    w_dense: Schedule = 1.0
    w_sparse: Schedule = ((0.0, 0.5, 0.7, 1.0), (0.0, 0.0, 10.0, 1.0))
    w_geom: Schedule = 0.5
    w_background: Schedule = ((0.0, 0.3, 0.5, 0.7), (1.0, 10.0, 100.0, 10.0))
    w_depth: Schedule = 10.0
    pixels: int = 256  # object pixels sampled for L_reconstruct
    background_pixels: int = 256  # background pixels sampled for L_background
    flat: bool = False  # normal check: drop solutions whose front faces away (flat classes)
    w_zorder: float = 1.0  # weight of the depth z-order disagreement when picking the solution
    zorder_cells: int = 24  # cells per image side for the z-order check
    sigma_inference: float = 1.0  # σ of the spatial likelihood in the reverse traversal (Eq. 14)


@dataclass
class AlignTarget:
    """What the alignment needs from one image (normalised coordinates).

    pixels: (N, 2) sampled object pixels; sem_dense: (N, M), sem_sparse: (N, L) semantic likelihoods;
    background: (Nb, 2) sampled background pixels; centre: (2,), radius: RMS spread of the mask;
    depth, mask: (H, W) for the z-order check (depth may be None).
    """

    pixels: torch.Tensor
    sem_dense: torch.Tensor
    sem_sparse: torch.Tensor
    background: torch.Tensor
    centre: torch.Tensor
    radius: float
    mask: torch.Tensor
    depth: torch.Tensor | None = None


@dataclass
class Alignment:
    """The chosen solution: keypoints (L, 3) and dense points (M, 3) in camera coordinates, focal
    length, its loss and z-order disagreement; ``candidates`` holds every start's score (B,)."""

    sparse: torch.Tensor
    dense: torch.Tensor
    focal: float
    loss: float
    zorder: float
    candidates: torch.Tensor = field(repr=False)


def semantic_likelihood(sim: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Max-normalised normal likelihood of a cosine similarity (Eq. 4), one-sided: a similarity
    above the class point's mean ``mu`` counts as fully likely. sim: (..., P), mu, sigma: (P,)."""
    return torch.exp(-F.relu(mu - sim).pow(2) / (2 * sigma.pow(2)))


def image_features(features: torch.Tensor, grid: TokenGrid, pixels: torch.Tensor) -> torch.Tensor:
    """L2-normalised features (C, h, w) at pixel points (N, 2) -> (N, C)."""
    pts = grid.image_to_grid(pixels.to(features.dtype))
    return F.normalize(sample_features(features[None], pts[None])[0], dim=-1)


def _sample(mask: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    pick = torch.randperm(len(xs), generator=generator)[:count]
    return torch.stack([xs[pick], ys[pick]], dim=1).float()


def prepare_target(rep: ClassRepresentation, features: torch.Tensor, grid: TokenGrid, mask: torch.Tensor,
                   depth: torch.Tensor | None = None, conf: AlignConfig | None = None,
                   generator: torch.Generator | None = None) -> AlignTarget:
    """Sample pixels and precompute their semantic likelihoods w.r.t. the class points.

    features: (C, h, w) on ``grid``; mask: (H, W) bool object mask; depth: (H, W) or None.
    """
    conf = conf or AlignConfig()
    hw = grid.image_hw
    if mask.shape != hw:
        raise ValueError(f"mask: expected shape {hw} (the image), got {tuple(mask.shape)}")
    if depth is not None and depth.shape != hw:
        raise ValueError(f"depth: expected shape {hw} (the image), got {tuple(depth.shape)}")
    if features.shape[0] != rep.dense_features.shape[1]:
        raise ValueError(f"features: {features.shape[0]} channels, but the class representation has "
                         f"{rep.dense_features.shape[1]} (built with another feature model?)")
    if mask.sum() < 3:
        raise ValueError("mask: the object mask needs at least 3 pixels")
    obj = _sample(mask, conf.pixels, generator)
    feats = image_features(features.float(), grid, obj)
    obj_n = pixels_to_normalised(obj, hw)
    all_obj = pixels_to_normalised(torch.nonzero(mask).flip(1).float(), hw)
    centre = all_obj.mean(0)
    return AlignTarget(
        pixels=obj_n,
        sem_dense=semantic_likelihood(feats @ rep.dense_features.T, rep.dense_mu, rep.dense_sigma),
        sem_sparse=semantic_likelihood(feats @ rep.sparse_features.T, rep.sparse_mu, rep.sparse_sigma),
        background=pixels_to_normalised(_sample(~mask, conf.background_pixels, generator), hw),
        centre=centre, radius=float((all_obj - centre).pow(2).sum(-1).mean().sqrt()), mask=mask, depth=depth)


def _reconstruct(pixels: torch.Tensor, proj: torch.Tensor, sem: torch.Tensor, sigma: float) -> torch.Tensor:
    """−E_xy[max_i p_spatial · p_sem] (Eq. 6-8). pixels (N, 2), proj (B, P, 2), sem (N, P) -> (B,)."""
    spatial = torch.exp(-torch.cdist(pixels.expand(len(proj), -1, -1), proj).pow(2) / (2 * sigma**2))
    return -(spatial * sem).amax(dim=2).mean(dim=1)


def _background(target: AlignTarget, proj: torch.Tensor, sigma: float) -> torch.Tensor:
    """L_background (Eq. 11): spatial likelihood of the class points at background pixels,
    averaged over points and pixels (0 when the mask covers the image). proj (B, M, 2) -> (B,)."""
    if len(target.background) == 0:
        return proj.new_zeros(len(proj))
    dist = torch.cdist(target.background.expand(len(proj), -1, -1), proj)
    return torch.exp(-dist.pow(2) / (2 * sigma**2)).mean(dim=(1, 2))


def alignment_loss(sparse: torch.Tensor, log_focal: torch.Tensor, depth_target: torch.Tensor,
                   rep: ClassRepresentation, target: AlignTarget, conf: AlignConfig,
                   progress: float) -> dict[str, torch.Tensor]:
    """L_align (Eq. 13) of B candidate alignments and its terms.

    sparse: (B, L, 3) keypoints in camera coordinates, log_focal: (B,), depth_target: (B,) the
    d_target of L_depth, progress: step / steps in [0, 1] -> dict of (B,) tensors
    ("total", "dense", "sparse", "geom", "background", "depth").
    """
    focal = log_focal.exp()
    dense = apply_barycentric(rep.dense_index, rep.dense_weights, sparse)
    proj_dense, proj_sparse = project(dense, focal), project(sparse, focal)
    sigma_d, sigma_s = scheduled(conf.sigma_dense, progress), scheduled(conf.sigma_sparse, progress)
    terms = {
        "dense": _reconstruct(target.pixels, proj_dense, target.sem_dense, sigma_d),
        "sparse": _reconstruct(target.pixels, proj_sparse, target.sem_sparse, sigma_s),
        "geom": -rep.prior.likelihood(sparse),
        "background": _background(target, proj_dense, sigma_d),
        "depth": (depth_target - sparse[..., 2].mean(-1)).pow(2),
    }
    terms["total"] = (scheduled(conf.w_dense, progress) * terms["dense"]
                      + scheduled(conf.w_sparse, progress) * terms["sparse"]
                      + scheduled(conf.w_geom, progress) * terms["geom"]
                      + scheduled(conf.w_background, progress) * terms["background"]
                      + scheduled(conf.w_depth, progress) * terms["depth"])
    return terms


def random_rotations(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniformly random rotation matrices (count, 3, 3)."""
    q, r = torch.linalg.qr(torch.randn(count, 3, 3, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    return q * torch.det(q)[:, None, None]


def initial_guesses(rep: ClassRepresentation, target: AlignTarget, conf: AlignConfig,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Randomly rotated canonical clouds (RMS radius 1) centred on the mask, at the depth where
    they cover it at each initial focal length -> sparse (B, L, 3), log_focal (B,) and that depth
    (B,), the d_target of L_depth; B = focals × samples_per_focal. With the cloud's size fixed,
    the learning rate is relative to the object's size whatever the focal length."""
    focal = torch.tensor(conf.focals, dtype=torch.float32).repeat_interleave(conf.samples_per_focal)
    rot = random_rotations(len(focal), generator)
    depth = focal / max(target.radius, 1e-3)
    shift = torch.cat([target.centre[None] * depth[:, None] / focal[:, None], depth[:, None]], dim=1)
    sparse = rep.sparse.float() @ rot.transpose(1, 2) + shift[:, None]
    return sparse, focal.log(), depth


def zorder_disagreement(points: torch.Tensor, focal: float, depth: torch.Tensor, mask: torch.Tensor,
                        cells: int = 24) -> float:
    """How much the depth order of aligned points disagrees with the image's depth map.

    Per coarse image cell inside the mask, the nearest projected point's z is compared with the
    mean depth there; returns (1 − Spearman ρ) / 2 in [0, 1] (0.5 with fewer than 3 cells).
    points: (M, 3) camera coordinates, depth, mask: (H, W).
    """
    hw = tuple(mask.shape)
    size = max(hw) / cells
    pix = normalised_to_pixels(project(points[None], points.new_tensor([focal]))[0], hw).round().long()
    ok = (pix[:, 0] >= 0) & (pix[:, 0] < hw[1]) & (pix[:, 1] >= 0) & (pix[:, 1] < hw[0])
    pix, z = pix[ok], points[ok, 2]
    ok = mask[pix[:, 1], pix[:, 0]]
    pix, z = pix[ok], z[ok]
    ncx = int(np.ceil(hw[1] / size))

    def cell_of(xy: torch.Tensor) -> torch.Tensor:
        return (xy[:, 1] / size).long() * ncx + (xy[:, 0] / size).long()

    n_cells = int(np.ceil(hw[0] / size)) * ncx
    near = torch.full((n_cells,), float("inf")).scatter_reduce(0, cell_of(pix), z.float(), "amin")
    obj = torch.nonzero(mask).flip(1)
    total = torch.zeros(n_cells).index_add_(0, cell_of(obj), depth[obj[:, 1], obj[:, 0]].float())
    mean_depth = total / torch.zeros(n_cells).index_add_(0, cell_of(obj), torch.ones(len(obj))).clamp_min(1)
    used = torch.isfinite(near)
    if used.sum() < 3:
        return 0.5
    ranks = [torch.argsort(torch.argsort(v[used])).float() for v in (near, mean_depth)]
    rho = torch.corrcoef(torch.stack(ranks))[0, 1].nan_to_num(0.0)
    return float((1 - rho) / 2)


def faces_camera(sparse: torch.Tensor, front: torch.Tensor) -> bool:
    """Whether the front triangle ``front`` = (i, j, k, sign) of keypoints (L, 3) faces the camera."""
    i, j, k, sign = front.tolist()
    normal = sign * torch.linalg.cross(sparse[j] - sparse[i], sparse[k] - sparse[i])
    return bool((normal * sparse[[i, j, k]].mean(0)).sum() < 0)


def align(rep: ClassRepresentation, target: AlignTarget, conf: AlignConfig | None = None,
          generator: torch.Generator | None = None) -> Alignment:
    """Minimise L_align from all initial guesses at once; pick the best by loss plus the z-order
    check (and, for flat classes, the normal check)."""
    conf = conf or AlignConfig()
    init, log_focal, depth_target = initial_guesses(rep, target, conf, generator)
    sparse = init.clone().requires_grad_(True)
    log_focal = log_focal.clone().requires_grad_(True)
    opt = torch.optim.AdamW([sparse, log_focal], lr=conf.lr, weight_decay=0.0)
    for step in range(conf.steps):
        opt.zero_grad()
        progress = step / max(conf.steps - 1, 1)
        alignment_loss(sparse, log_focal, depth_target, rep, target, conf, progress)["total"].sum().backward()
        opt.step()
    with torch.no_grad():
        loss = alignment_loss(sparse, log_focal, depth_target, rep, target, conf, 1.0)["total"]
        dense = apply_barycentric(rep.dense_index, rep.dense_weights, sparse)
        focal = log_focal.exp()
        zorder = torch.tensor([zorder_disagreement(d, float(f), target.depth, target.mask, conf.zorder_cells)
                               if target.depth is not None else 0.0 for d, f in zip(dense, focal)])
        score = loss + conf.w_zorder * zorder
        if conf.flat:
            facing = torch.tensor([faces_camera(s, rep.front) for s in sparse])
            score = torch.where(facing | ~facing.any(), score, torch.full_like(score, float("inf")))
    best = int(score.argmin())
    return Alignment(sparse=sparse[best].detach(), dense=dense[best], focal=float(focal[best]),
                     loss=float(loss[best]), zorder=float(zorder[best]), candidates=score)
