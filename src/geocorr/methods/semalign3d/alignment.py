"""Aligning a class representation to one image by gradient descent (paper Sec. 3.2, Eq. 4-13).

The unknowns are the keypoints of the class in camera coordinates (``B × L × 3``, the dense cloud
follows through its barycentric coordinates) and the focal length, for B initial guesses
optimised together. Image points are normalised (see :mod:`.geometry`), so σ is in units of the
longer image side, as the paper's.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...grid import TokenGrid
from ...matching import sample_features, upsample_features
from .dense import apply_barycentric
from .geometry import normalised_to_pixels, pixels_to_normalised, project
from .progress import bar
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
    # The paper's 16 starts align 195/200 random views of the synthetic world (97.5 %, Wilson 95 %
    # 94.3-98.9 %; 200 steps, 10 classes; benchmarks/semalign3d_align.py). Successive halving of 64
    # starts, symmetry-spread rotations and mirror hypotheses together gave 197/200 at 1.26× the CPU
    # time, no significant gain (the first two were removed after commit 76f3336); 7 of the 8
    # failures had a successful start that the pick (loss + z-order) did not choose.
    # σ: half of Tab. 5's numbers in our full-side units (= Tab. 5 read in half-side units). Measured
    # on the synthetic world (6 random views, 200 steps, published focal starts): Tab. 5's numbers
    # in full-side units align 0 of 4 views (the background term shrinks the cloud), halved 6 of 6.
    # Part 2 (alignment) is unreleased, so the paper's σ unit cannot be read from the authors' code.
    sigma_dense: Schedule = ((0.0, 0.3, 0.5), (0.5, 0.05, 0.015))
    sigma_sparse: Schedule = ((0.0, 0.3, 0.5, 0.7), (0.5, 0.05, 0.05, 0.025))
    w_dense: Schedule = 1.0
    w_sparse: Schedule = ((0.0, 0.5, 0.7, 1.0), (0.0, 0.0, 10.0, 1.0))
    w_geom: Schedule = 0.5
    w_background: Schedule = ((0.0, 0.3, 0.5, 0.7), (1.0, 10.0, 100.0, 10.0))
    w_depth: Schedule = 10.0
    pixels: int = 256  # object pixels sampled for L_reconstruct
    pixel_sampling: str = "attention"  # attention: ∝ the attention map (paper) | uniform in the mask
    background_pixels: int = 256  # background pixels sampled for L_background
    background_beyond_frame: bool = True  # L_background also counts what falls outside the image (not
    # in the paper, whose Eq. 11 rewards blowing the cloud up past the frame: PF-Willow cars, real
    # ViT-S features, 1000 steps, 4 images: median keypoint error 255.6 px and 75 % of the keypoints
    # off the image without, 14.8 px and none off with; benchmarks/semalign3d_real_diagnosis.py)
    flat: bool = False  # normal check: drop solutions whose front faces away (flat classes)
    w_zorder: float = 1.0  # weight of the depth z-order disagreement when picking the solution
    zorder_cells: int = 24  # cells per image side for the z-order check
    mirror_at: float | None = None  # progress at which each image's worst start is replaced by the
    # mirror hypothesis of its best one (needs the class's left/right permutation, i.e. a class built
    # with flip); None: off (not in the paper). See the figures above samples_per_focal.
    sigma_inference: float = 0.5  # σ of the spatial likelihood in the reverse traversal (Eq. 14; Tab. 5's 1.0 halved)


@dataclass
class AlignTarget:
    """What the alignment needs from one image (normalised coordinates).

    pixels: (N, 2) sampled object pixels (N = ``AlignConfig.pixels``); sem_dense: (N, M),
    sem_sparse: (N, L) semantic likelihoods; background: (Nb, 2) sampled background pixels (Nb =
    ``background_pixels``, or 0 when the mask covers the image); centre: (2,), radius: RMS spread of
    the mask; depth, mask: (H, W) for the z-order check (depth may be None).
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
    length, its loss and z-order disagreement; ``candidates`` holds every start's score (B,).
    failed: every start diverged (non-finite loss); the points are then NaN."""

    sparse: torch.Tensor
    dense: torch.Tensor
    focal: float
    loss: float
    zorder: float
    candidates: torch.Tensor = field(repr=False)
    failed: bool = False


def semantic_likelihood(sim: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Max-normalised normal likelihood of a cosine similarity (paper Eq. 4, two-sided):
    exp(−(sim − mu)² / (2 sigma²)). sim: (..., P), mu, sigma: (P,) -> (..., P) in [0, 1]."""
    return torch.exp(-(sim - mu).pow(2) / (2 * sigma.pow(2)))


def image_features(features: torch.Tensor, grid: TokenGrid, pixels: torch.Tensor) -> torch.Tensor:
    """L2-normalised features (C, h, w) at pixel points (N, 2) -> (N, C)."""
    pts = grid.image_to_grid(pixels.to(features.dtype))
    return F.normalize(sample_features(features[None], pts[None])[0], dim=-1)


def attention(rep: ClassRepresentation, features: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
    """Per-pixel attention: the best semantic likelihood of any dense class point (paper Sec. 3.2).
    features: (C, h, w) on ``grid`` -> (H, W) in [0, 1]."""
    sim = torch.einsum("mc,chw->mhw", rep.dense_features, F.normalize(features.float(), dim=0))
    like = semantic_likelihood(sim.permute(1, 2, 0), rep.dense_mu, rep.dense_sigma).amax(-1)
    return upsample_features(like[None, None], grid)[0, 0]


def _sample(mask: torch.Tensor, count: int, generator: torch.Generator | None,
            weights: torch.Tensor | None = None) -> torch.Tensor:
    """``count`` pixels (x, y) of ``mask`` (H, W): with probability ∝ ``weights`` (H, W) when given,
    else uniformly; with replacement only when the mask has fewer than ``count`` pixels."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    w = torch.ones(len(xs)) if weights is None else weights[ys, xs].float().clamp_min(0) + 1e-8
    pick = torch.multinomial(w, count, replacement=count > len(xs), generator=generator)
    return torch.stack([xs[pick], ys[pick]], dim=1).float()


def prepare_target(rep: ClassRepresentation, features: torch.Tensor, grid: TokenGrid, mask: torch.Tensor,
                   depth: torch.Tensor | None = None, conf: AlignConfig | None = None,
                   generator: torch.Generator | None = None) -> AlignTarget:
    """Sample pixels and precompute their semantic likelihoods w.r.t. the class points.

    features: (C, h, w) on ``grid``; mask: (H, W) bool object mask; depth: (H, W) or None.
    Object pixels are drawn with probability ∝ :func:`attention` (``conf.pixel_sampling``).
    """
    conf = conf or AlignConfig()
    hw = grid.image_hw
    if tuple(mask.shape) != hw:
        raise ValueError(f"mask: expected shape {hw} (the image), got {tuple(mask.shape)}")
    if depth is not None and tuple(depth.shape) != hw:
        raise ValueError(f"depth: expected shape {hw} (the image), got {tuple(depth.shape)}")
    if features.shape[0] != rep.dense_features.shape[1]:
        raise ValueError(f"features: {features.shape[0]} channels, but the class representation has "
                         f"{rep.dense_features.shape[1]} (built with another feature model?)")
    if mask.sum() < 3:
        raise ValueError("mask: the object mask needs at least 3 pixels")
    if conf.pixel_sampling not in ("attention", "uniform"):
        raise ValueError(f"pixel_sampling: expected 'attention' or 'uniform', got {conf.pixel_sampling!r}")
    weights = attention(rep, features, grid) if conf.pixel_sampling == "attention" else None
    obj = _sample(mask, conf.pixels, generator, weights)
    feats = image_features(features.float(), grid, obj)
    all_obj = pixels_to_normalised(torch.nonzero(mask).flip(1).float(), hw)
    centre = all_obj.mean(0)
    background = (pixels_to_normalised(_sample(~mask, conf.background_pixels, generator), hw) if (~mask).any()
                  else torch.zeros(0, 2))
    return AlignTarget(
        pixels=pixels_to_normalised(obj, hw),
        sem_dense=semantic_likelihood(feats @ rep.dense_features.T, rep.dense_mu, rep.dense_sigma),
        sem_sparse=semantic_likelihood(feats @ rep.sparse_features.T, rep.sparse_mu, rep.sparse_sigma),
        background=background, centre=centre, radius=float((all_obj - centre).pow(2).sum(-1).mean().sqrt()),
        mask=mask, depth=depth)


@dataclass
class TargetBatch:
    """T targets stacked for one optimisation: pixels (T, N, 2), sem_dense (T, N, M), sem_sparse
    (T, N, L), background (T, Nb, 2) with background_valid (T, Nb) (False: padding); frame (T, 2):
    the image's half width and height, background_area (T,): the area the background samples stand
    for (both normalised, see :func:`_background`)."""

    pixels: torch.Tensor
    sem_dense: torch.Tensor
    sem_sparse: torch.Tensor
    background: torch.Tensor
    background_valid: torch.Tensor
    frame: torch.Tensor
    background_area: torch.Tensor

    @classmethod
    def stack(cls, targets: list[AlignTarget]) -> TargetBatch:
        sizes = {len(t.pixels) for t in targets}
        if len(sizes) != 1:
            raise ValueError(f"targets: every target needs the same number of pixels, got {sorted(sizes)}")
        nb = max(len(t.background) for t in targets)
        background = torch.zeros(len(targets), nb, 2)
        valid = torch.zeros(len(targets), nb, dtype=torch.bool)
        for n, t in enumerate(targets):
            background[n, :len(t.background)] = t.background
            valid[n, :len(t.background)] = True
        frame, area = [], []
        for t in targets:
            h, w = t.mask.shape
            frame.append([w / (2 * max(h, w)), h / (2 * max(h, w))])
            # the background pixels' area; a mask covering the image: the frame's (see _background)
            area.append(float((~t.mask).sum() if (~t.mask).any() else t.mask.numel()) / max(h, w) ** 2)
        return cls(torch.stack([t.pixels for t in targets]), torch.stack([t.sem_dense for t in targets]),
                   torch.stack([t.sem_sparse for t in targets]), background, valid, torch.tensor(frame),
                   torch.tensor(area))


def _reconstruct(pixels: torch.Tensor, proj: torch.Tensor, sem: torch.Tensor, sigma: float) -> torch.Tensor:
    """−E_xy[max_i p_spatial · p_sem] (Eq. 6-8). pixels (T, N, 2), proj (T, S, P, 2), sem (T, N, P) -> (T, S)."""
    t, s = proj.shape[:2]
    dist = torch.cdist(pixels[:, None].expand(-1, s, -1, -1).reshape(t * s, -1, 2), proj.reshape(t * s, -1, 2))
    spatial = torch.exp(-dist.pow(2) / (2 * sigma**2)).reshape(t, s, *dist.shape[1:])
    return -(spatial * sem[:, None]).amax(dim=3).mean(dim=2)


def _background(batch: TargetBatch, proj: torch.Tensor, sigma: float, beyond_frame: bool = True) -> torch.Tensor:
    """L_background (Eq. 11): spatial likelihood of the class points at background pixels,
    averaged over points and pixels. proj (T, S, M, 2) -> (T, S).

    beyond_frame: everything outside the image counts as background too. Eq. 11 averages over the
    image's own background pixels only, so a point projected outside the image costs nothing and
    the alignment can lower the term by blowing the cloud up past the frame (what diverged on real
    features, benchmarks/semalign3d_real_diagnosis.py). Over uniform samples of a region of area A,
    the mean of exp(−d²/2σ²) is 2πσ²/A times the share of the point's Gaussian falling on that
    region; the share falling outside the frame is added in the same units (in closed form), so
    the term equals Eq. 11 while every point's Gaussian stays inside the image.
    """
    t, s = proj.shape[:2]
    points = proj.reshape(t * s, -1, 2)
    total = proj.new_zeros(t * s)
    if batch.background.shape[1] > 0:
        bg = batch.background[:, None].expand(-1, s, -1, -1).reshape(t * s, -1, 2)
        like = torch.exp(-torch.cdist(bg, points).pow(2) / (2 * sigma**2)).mean(-1)
        w = batch.background_valid[:, None].expand(-1, s, -1).reshape(t * s, -1).to(like.dtype)
        total = (like * w).sum(-1) / w.sum(-1).clamp_min(1)
    if beyond_frame:
        half = batch.frame[:, None, None].expand(-1, s, -1, -1).reshape(t * s, 1, 2).to(proj.dtype)
        cdf = torch.special.ndtr  # the standard normal's
        inside = (cdf((half - points) / sigma) - cdf((-half - points) / sigma)).prod(-1)  # (T·S, M)
        area = batch.background_area[:, None].expand(-1, s).reshape(t * s).to(proj.dtype)
        total = total + 2 * torch.pi * sigma**2 / area * (1 - inside).mean(-1)
    return total.reshape(t, s)


def alignment_loss(sparse: torch.Tensor, log_focal: torch.Tensor, depth_target: torch.Tensor,
                   rep: ClassRepresentation, batch: TargetBatch, conf: AlignConfig,
                   progress: float) -> dict[str, torch.Tensor]:
    """L_align (Eq. 13) of S candidate alignments for each of T targets, and its terms.

    sparse: (T, S, L, 3) keypoints in camera coordinates, log_focal: (T, S), depth_target: (T, S)
    the d_target of L_depth, progress: step / steps in [0, 1] -> dict of (T, S) tensors
    ("total", "dense", "sparse", "geom", "background", "depth"). L_geom is the negative mean
    Beta log-density of the shape prior (the paper's log-probabilities).
    """
    t, s = sparse.shape[:2]
    focal = log_focal.exp().reshape(-1)
    flat = sparse.reshape(t * s, *sparse.shape[2:])
    dense = apply_barycentric(rep.dense_index, rep.dense_weights, flat)
    proj_dense = project(dense, focal).reshape(t, s, -1, 2)
    proj_sparse = project(flat, focal).reshape(t, s, -1, 2)
    sigma_d, sigma_s = scheduled(conf.sigma_dense, progress), scheduled(conf.sigma_sparse, progress)
    terms = {
        "dense": _reconstruct(batch.pixels, proj_dense, batch.sem_dense, sigma_d),
        "sparse": _reconstruct(batch.pixels, proj_sparse, batch.sem_sparse, sigma_s),
        "geom": -rep.prior.log_likelihood(sparse),
        "background": _background(batch, proj_dense, sigma_d, conf.background_beyond_frame),
        "depth": (depth_target - sparse[..., 2].mean(-1)).pow(2),
    }
    terms["total"] = (scheduled(conf.w_dense, progress) * terms["dense"]
                      + scheduled(conf.w_sparse, progress) * terms["sparse"]
                      + scheduled(conf.w_geom, progress) * terms["geom"]
                      + scheduled(conf.w_background, progress) * terms["background"]
                      + scheduled(conf.w_depth, progress) * terms["depth"])
    return terms


def mirror_hypothesis(sparse: torch.Tensor, flip: list[int]) -> torch.Tensor:
    """The proper pose whose image swaps the left/right twins of ``sparse`` (..., L, 3).

    Permuting the keypoints by ``flip`` swaps the twins but mirrors the shape (wrong chirality);
    reflecting the depths about the cloud's mean depth (z' = 2 z̄ − z, x and y scaled by z'/z so
    every keypoint keeps its image position) mirrors it back. The result projects like
    ``sparse[..., flip, :]`` and has the class's handedness: the other local optimum of a
    left/right-symmetric class seen through features that cannot tell left from right.
    """
    swapped = sparse[..., flip, :]
    z = swapped[..., 2:]
    mirrored_z = (2 * z.mean(-2, keepdim=True) - z).clamp_min(1e-3 * z.abs().mean(-2, keepdim=True))
    return torch.cat([swapped[..., :2] * mirrored_z / z, mirrored_z], dim=-1)


def random_rotations(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniformly random rotation matrices (count, 3, 3)."""
    q, r = torch.linalg.qr(torch.randn(count, 3, 3, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    return q * torch.det(q)[:, None, None]


def initial_guesses(rep: ClassRepresentation, target: AlignTarget, conf: AlignConfig,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Randomly rotated canonical clouds (RMS radius 1) centred on the mask, at the depth where
    they cover it at each initial focal length -> sparse (S, L, 3), log_focal (S,) and that depth
    (S,), the d_target of L_depth; S = focals × samples_per_focal. With the cloud's size fixed,
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
    hw = (mask.shape[0], mask.shape[1])
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


def align_many(rep: ClassRepresentation, targets: list[AlignTarget], conf: AlignConfig | None = None,
               generator: torch.Generator | Sequence[torch.Generator] | None = None,
               progress: bool | None = False) -> list[Alignment]:
    """Align the class to several images in one optimisation (all their starts together).

    Each image's S starts minimise L_align; its best start by loss plus the z-order check (and,
    for flat classes, the normal check) is its alignment. Starts whose loss turns non-finite are
    dropped; an image all of whose starts diverge gets ``failed=True``. generator: one for all, or
    one per target (then an image's starts do not depend on the other images of the batch).
    progress: a tqdm bar over the steps (None: only on a terminal).
    """
    conf = conf or AlignConfig()
    if not targets:
        return []
    gens = list(generator) if isinstance(generator, Sequence) else [generator] * len(targets)
    if len(gens) != len(targets):
        raise ValueError(f"generator: expected one per target ({len(targets)}), got {len(gens)}")
    guesses = [initial_guesses(rep, t, conf, g) for t, g in zip(targets, gens, strict=True)]
    sparse = torch.stack([g[0] for g in guesses]).requires_grad_(True)  # (T, S, L, 3)
    log_focal = torch.stack([g[1] for g in guesses]).requires_grad_(True)  # (T, S)
    depth_target = torch.stack([g[2] for g in guesses])
    batch = TargetBatch.stack(targets)
    opt = torch.optim.AdamW([sparse, log_focal], lr=conf.lr, weight_decay=0.0)
    flip = rep.meta.get("flip")
    mirror_step = None if conf.mirror_at is None or flip is None else int(conf.mirror_at * conf.steps)
    for step in bar(range(conf.steps), progress, f"aligning {len(targets)} image(s)"):
        progress_t = step / max(conf.steps - 1, 1)
        if step == mirror_step and flip is not None:  # mirror_step is None without a flip table
            _add_mirror_hypotheses(opt, sparse, log_focal, depth_target, rep, batch, conf, progress_t, flip)
        opt.zero_grad()
        total = alignment_loss(sparse, log_focal, depth_target, rep, batch, conf, progress_t)["total"]
        total.nan_to_num(0.0, 0.0, 0.0).sum().backward()  # a diverged start must not stop the others
        for grad in (sparse.grad, log_focal.grad):
            if grad is not None:
                grad.nan_to_num_(0.0, 0.0, 0.0)
        opt.step()
    with torch.no_grad():
        loss = alignment_loss(sparse, log_focal, depth_target, rep, batch, conf, 1.0)["total"]
        return [_pick(rep, target, sparse[n], log_focal[n].exp(), loss[n], conf) for n, target in enumerate(targets)]


@torch.no_grad()
def _add_mirror_hypotheses(opt: torch.optim.Optimizer, sparse: torch.Tensor, log_focal: torch.Tensor,
                           depth_target: torch.Tensor, rep: ClassRepresentation, batch: TargetBatch,
                           conf: AlignConfig, progress: float, flip: list[int]) -> None:
    """Replace each image's worst start by the :func:`mirror_hypothesis` of its best one (in place,
    with fresh AdamW moments for that start)."""
    loss = alignment_loss(sparse, log_focal, depth_target, rep, batch, conf, progress)["total"]
    loss = loss.nan_to_num(float("inf"), float("inf"), float("inf"))
    rows = torch.arange(len(loss))
    best, worst = loss.argmin(1), loss.argmax(1)
    sparse[rows, worst] = mirror_hypothesis(sparse[rows, best], flip)
    log_focal[rows, worst] = log_focal[rows, best]
    depth_target[rows, worst] = depth_target[rows, best]
    for param in (sparse, log_focal):
        for moment in opt.state.get(param, {}).values():
            if isinstance(moment, torch.Tensor) and moment.shape == param.shape:
                moment[rows, worst] = 0


def _pick(rep: ClassRepresentation, target: AlignTarget, sparse: torch.Tensor, focal: torch.Tensor,
          loss: torch.Tensor, conf: AlignConfig) -> Alignment:
    """The best of one image's starts: sparse (S, L, 3), focal (S,), loss (S,)."""
    dense = apply_barycentric(rep.dense_index, rep.dense_weights, sparse)
    finite = torch.isfinite(loss) & torch.isfinite(sparse).flatten(1).all(1) & torch.isfinite(focal)
    if not finite.any():
        return Alignment(sparse=torch.full_like(sparse[0], float("nan")), dense=torch.full_like(dense[0], float("nan")),
                         focal=float("nan"), loss=float("nan"), zorder=float("nan"),
                         candidates=torch.full_like(loss, float("inf")), failed=True)
    zorder = torch.tensor([zorder_disagreement(d, float(f), target.depth, target.mask, conf.zorder_cells)
                           if target.depth is not None and ok else 0.0
                           for d, f, ok in zip(dense, focal, finite, strict=True)])
    score = torch.where(finite, loss + conf.w_zorder * zorder, torch.full_like(loss, float("inf")))
    if conf.flat:
        facing = torch.tensor([bool(ok) and faces_camera(s, rep.front) for s, ok in zip(sparse, finite, strict=False)])
        score = torch.where(facing | ~facing.any(), score, torch.full_like(score, float("inf")))
    best = int(score.argmin())
    return Alignment(sparse=sparse[best].detach().clone(), dense=dense[best].clone(), focal=float(focal[best]),
                     loss=float(loss[best]), zorder=float(zorder[best]), candidates=score)


def align(rep: ClassRepresentation, target: AlignTarget, conf: AlignConfig | None = None,
          generator: torch.Generator | None = None, progress: bool | None = False) -> Alignment:
    """Align the class to one image (see :func:`align_many`)."""
    return align_many(rep, [target], conf, generator, progress)[0]
