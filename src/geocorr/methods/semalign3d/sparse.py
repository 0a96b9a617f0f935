"""The sparse canonical keypoint cloud of a class (paper Sec. 3.1, "Sparse 3D Representation").

Keypoints are placed one after the other, each at the most likely position under the Beta
distributions of the edge-pair and tetrahedron features it forms with the keypoints already
placed; then all of them are refined together. The tetrahedron features are chirality-aware, so
the prior itself tells the class from its mirror image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import edge_pair_table, tetrahedron_table
from .priors import ShapePrior
from .progress import bar


@dataclass
class SparseConfig:
    samples_per_image: int = 10  # noisy copies of each training cloud (authors' n_samples_per_img)
    noise: float = 0.2  # xyz Gaussian noise, as a fraction of the cloud's shortest edge (authors' noise_rate)
    candidates: int = 4096  # random positions scored for each new keypoint
    place_steps: int = 100  # gradient steps refining each new keypoint
    steps: int = 20_000  # joint refinement steps
    lr: float = 1e-3


def noisy_clouds(clouds: torch.Tensor, visible: torch.Tensor, samples: int, noise: float,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` noisy copies of each keypoint cloud: xyz + N(0, (noise · shortest edge)²) per cloud,
    the shortest edge among its visible keypoints (the authors' ``generate_noisy_gt_kpts_data``,
    ``semalign3d/core/data/augmentations.py``).

    clouds: (S, L, 3), visible: (S, L) -> clouds (S·samples, L, 3), visible (S·samples, L).
    """
    shortest = []
    for cloud, vis in zip(clouds, visible, strict=False):
        pts = cloud[vis]
        dist = torch.pdist(pts) if len(pts) >= 2 else pts.new_zeros(1)
        shortest.append(dist.min() if len(dist) else pts.new_zeros(()))
    scale = torch.stack(shortest) * noise  # (S,)
    eps = torch.randn(len(clouds), samples, *clouds.shape[1:], generator=generator, dtype=clouds.dtype)
    out = clouds[:, None] + eps * scale[:, None, None, None]
    return out.reshape(-1, *clouds.shape[1:]), visible.repeat_interleave(samples, 0)


def _refine(cloud: torch.Tensor, free: torch.Tensor, prior: ShapePrior, steps: int, lr: float,
            progress: bool | None = False, desc: str = "") -> torch.Tensor:
    """Gradient ascent of the prior log-likelihood over the rows of ``cloud`` (L, 3) marked ``free`` (L,)."""
    delta = torch.zeros_like(cloud, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    for _ in bar(range(steps), progress, desc):
        opt.zero_grad()
        (-prior.log_likelihood(cloud + delta * free[:, None])).backward()
        opt.step()
    return (cloud + delta * free[:, None]).detach()


def _best_candidate(trial: torch.Tensor, prior: ShapePrior, chunk: int = 256) -> int:
    """Index of the cloud (of trial (K, L, 3)) the prior likes best, scored ``chunk`` clouds at a time."""
    with torch.no_grad():
        scores = torch.cat([prior.log_likelihood(trial[n:n + chunk]) for n in range(0, len(trial), chunk)])
    return int(scores.nan_to_num(float("-inf")).argmax())


def build_sparse_cloud(clouds: torch.Tensor, visible: torch.Tensor, conf: SparseConfig | None = None,
                       generator: torch.Generator | None = None, progress: bool | None = False
                       ) -> tuple[torch.Tensor, ShapePrior]:
    """Canonical keypoint cloud of a class from the back-projected training clouds.

    clouds: (S, L, 3) keypoints in camera coordinates (see :func:`.geometry.backproject`), visible: (S, L).
    Returns the cloud (L, 3) (centroid 0, RMS radius 1) and the class :class:`ShapePrior` (fitted on
    all combinations). The prior's tetrahedron features fix the handedness.
    progress: tqdm bars (None: only on a terminal).
    """
    conf = conf or SparseConfig()
    num = clouds.shape[1]
    counts = visible.sum(0)
    if (counts < 2).any():
        raise ValueError(f"visible: every keypoint must be visible in >= 2 training images, "
                         f"keypoints {torch.nonzero(counts < 2).flatten().tolist()} are not")
    noisy, vis = noisy_clouds(clouds.nan_to_num(0.0), visible, conf.samples_per_image, conf.noise, generator)
    order = torch.argsort(counts, descending=True, stable=True).tolist()
    cloud = torch.zeros(num, 3, dtype=clouds.dtype)
    cloud[order[1], 0] = 1.0
    placed = order[:2]
    for new in bar(order[2:], progress, "placing keypoints"):
        among = placed + [new]
        prior = ShapePrior.fit(noisy, vis, edge_pair_table(num, new, among), tetrahedron_table(num, new, among))
        centre = cloud[placed].mean(0)
        extent = 2 * (cloud[placed] - centre).norm(dim=1).max()
        cand = centre + (torch.rand(conf.candidates, 3, generator=generator, dtype=clouds.dtype) * 2 - 1) * extent
        trial = cloud.expand(conf.candidates, -1, -1).clone()
        trial[:, new] = cand
        cloud[new] = cand[_best_candidate(trial, prior)]
        free = torch.zeros(num, dtype=torch.bool)
        free[new] = True
        cloud = _refine(cloud, free, prior, conf.place_steps, 1e-2 * extent.item())
        placed.append(new)
    prior = ShapePrior.fit(noisy, vis, edge_pair_table(num), tetrahedron_table(num))
    cloud = _refine(cloud, torch.ones(num, dtype=torch.bool), prior, conf.steps, conf.lr, progress, "sparse cloud")
    cloud = cloud - cloud.mean(0)
    return cloud / cloud.pow(2).sum(-1).mean().sqrt(), prior
