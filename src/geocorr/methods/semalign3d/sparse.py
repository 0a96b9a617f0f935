"""The sparse canonical keypoint cloud of a class (paper Sec. 3.1, "Sparse 3D Representation").

Keypoints are placed one after the other, each at the most likely position under the Beta
distributions of the edge-pair features it forms with the keypoints already placed; then all of
them are refined together. Angles and ratios cannot tell a shape from its mirror image, so the
handedness is finally taken from the training clouds themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import backproject, edge_pair_table, similarity_residual
from .priors import ShapePrior


@dataclass
class SparseConfig:
    max_combinations: int = 10_000  # edge pairs kept for the class prior
    samples_per_image: int = 10  # focal-length samples per training image
    noise: float = 0.2  # log-normal spread of those focal-length samples
    candidates: int = 4096  # random positions scored for each new keypoint
    place_steps: int = 100  # gradient steps refining each new keypoint
    steps: int = 20_000  # joint refinement steps
    lr: float = 1e-3


def sample_clouds(points: torch.Tensor, depth: torch.Tensor, focal: torch.Tensor, visible: torch.Tensor,
                  samples: int, noise: float, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Back-project each image's keypoints with ``samples`` focal lengths ``f · exp(noise · ε)``.

    points: (S, L, 2) normalised, depth: (S, L), focal: (S,), visible: (S, L) ->
    clouds (S·samples, L, 3), visible (S·samples, L).
    """
    eps = torch.randn(len(points), samples, generator=generator, dtype=points.dtype)
    eps[:, 0] = 0
    focals = (focal[:, None] * torch.exp(noise * eps)).reshape(-1)
    clouds = backproject(points.nan_to_num(0.0).repeat_interleave(samples, 0),
                         depth.nan_to_num(1.0).repeat_interleave(samples, 0), focals)
    return clouds, visible.repeat_interleave(samples, 0)


def _refine(cloud: torch.Tensor, free: torch.Tensor, prior: ShapePrior, steps: int, lr: float) -> torch.Tensor:
    """Gradient ascent of the prior log-likelihood over the rows of ``cloud`` (L, 3) marked ``free`` (L,)."""
    delta = torch.zeros_like(cloud, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-prior.log_likelihood(cloud + delta * free[:, None])).backward()
        opt.step()
    return (cloud + delta * free[:, None]).detach()


def fix_handedness(cloud: torch.Tensor, clouds: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Mirror ``cloud`` (L, 3) if its mirror image fits most training clouds (S, L, 3) better."""
    votes = 0
    mirrored = cloud * cloud.new_tensor([-1.0, 1.0, 1.0])
    for world, vis in zip(clouds, visible):
        if vis.sum() >= 4:
            keep = similarity_residual(cloud[vis], world[vis])
            flip = similarity_residual(mirrored[vis], world[vis])
            votes += int(flip < keep) - int(keep < flip)
    return mirrored if votes > 0 else cloud


def build_sparse_cloud(points: torch.Tensor, depth: torch.Tensor, focal: torch.Tensor, visible: torch.Tensor,
                       conf: SparseConfig | None = None, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, ShapePrior]:
    """Canonical keypoint cloud of a class from annotated training images.

    points: (S, L, 2) normalised keypoints, depth: (S, L), focal: (S,) (see :mod:`.focal`), visible: (S, L).
    Returns the cloud (L, 3) (centroid 0, RMS radius 1) and the class :class:`ShapePrior`.
    """
    conf = conf or SparseConfig()
    num = points.shape[1]
    counts = visible.sum(0)
    if (counts < 2).any():
        raise ValueError(f"visible: every keypoint must be visible in >= 2 training images, "
                         f"keypoints {torch.nonzero(counts < 2).flatten().tolist()} are not")
    clouds, vis = sample_clouds(points, depth, focal, visible, conf.samples_per_image, conf.noise, generator)
    order = torch.argsort(counts, descending=True, stable=True).tolist()
    cloud = torch.zeros(num, 3, dtype=points.dtype)
    cloud[order[1], 0] = 1.0
    placed = order[:2]
    for new in order[2:]:
        table = edge_pair_table(num, conf.max_combinations, must_include=new, among=placed + [new],
                                generator=generator)
        prior = ShapePrior.fit(clouds, vis, table)
        centre = cloud[placed].mean(0)
        extent = 2 * (cloud[placed] - centre).norm(dim=1).max()
        cand = centre + (torch.rand(conf.candidates, 3, generator=generator, dtype=points.dtype) * 2 - 1) * extent
        trial = cloud.expand(conf.candidates, -1, -1).clone()
        trial[:, new] = cand
        cloud[new] = cand[prior.log_likelihood(trial).argmax()]
        free = torch.zeros(num, dtype=torch.bool)
        free[new] = True
        cloud = _refine(cloud, free, prior, conf.place_steps, 1e-2 * extent.item())
        placed.append(new)
    prior = ShapePrior.fit(clouds, vis, edge_pair_table(num, conf.max_combinations, generator=generator))
    cloud = _refine(cloud, torch.ones(num, dtype=torch.bool), prior, conf.steps, conf.lr)
    cloud = fix_handedness(cloud, clouds, vis)
    cloud = cloud - cloud.mean(0)
    return cloud / cloud.pow(2).sum(-1).mean().sqrt(), prior
