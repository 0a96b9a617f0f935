"""Training quartets ⟨s1, s2, r1, r2⟩: two real images and two renders of one CAD model.

For every real image the CAD models are rendered from the image's viewpoint and the K = 20
nearest by HOG Euclidean distance are kept. A quartet takes two real images r1, r2 and a model
among the K nearest of both; s1 and s2 are that model rendered from r1's and r2's viewpoints,
and the renderer gives the exact flow ``F̃_{s1,s2}`` and matchability ``M̃_{s1,s2}``.

Real images without a viewpoint annotation (e.g. PF-Willow) get the candidate viewpoint whose
nearest render (over all models) is closest in HOG space.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .camera import Camera, Viewpoint
from .mesh import Mesh
from .render import ground_truth_flow, render

__all__ = [
    "Quartet",
    "QuartetDataset",
    "build_quartets",
    "estimate_viewpoints",
    "hog_descriptor",
    "nearest_models",
    "render_hogs",
    "viewpoint_grid",
]


@dataclass(frozen=True)
class Quartet:
    """Indices: ``model`` into the meshes, ``real_a`` / ``real_b`` into the real images (r1, r2)."""

    model: int
    real_a: int
    real_b: int


def hog_descriptor(image: Tensor, cell: int = 8) -> np.ndarray:
    """HOG (9 orientations, ``cell``-pixel cells, 2×2 blocks) of a 3×H×W image in [0, 1] -> (D,)."""
    from skimage.feature import hog

    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape 3×H×W, got {tuple(image.shape)}")
    gray = (image * image.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0)
    return hog(gray.cpu().numpy(), orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2))


def viewpoint_grid(azimuths: int = 12, elevations: Sequence[float] = (0.0, 15.0, 30.0),
                   distance: float = 1.5) -> list[Viewpoint]:
    """Candidate viewpoints: ``azimuths`` evenly spaced azimuths × the given elevations."""
    return [Viewpoint(360.0 * i / azimuths, e, distance) for e in elevations for i in range(azimuths)]


def render_hogs(meshes: Sequence[Mesh], view: Viewpoint, size: int) -> np.ndarray:
    """HOG descriptors of every mesh rendered size×size from ``view`` -> M×D."""
    camera = Camera.from_viewpoint(view, (size, size))
    return np.stack([hog_descriptor(render(mesh, camera).rgb) for mesh in meshes])


def estimate_viewpoints(images: Tensor, meshes: Sequence[Mesh], candidates: Sequence[Viewpoint]) -> list[Viewpoint]:
    """For each image (N×3×S×S) the candidate viewpoint whose best render over ``meshes`` is HOG-nearest.

    Renders every (candidate, mesh) once, then compares descriptors only.
    """
    if not candidates or not meshes:
        raise ValueError("estimate_viewpoints needs at least one mesh and one candidate viewpoint")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape N×3×S×S, got {tuple(images.shape)}")
    bank = np.stack([render_hogs(meshes, view, images.shape[-1]) for view in candidates])  # V×M×D
    chosen = []
    for image in images:
        distances = np.linalg.norm(bank - hog_descriptor(image), axis=-1).min(1)
        chosen.append(candidates[int(np.argmin(distances))])
    return chosen


def nearest_models(images: Tensor, viewpoints: Sequence[Viewpoint], meshes: Sequence[Mesh], k: int = 20) -> Tensor:
    """The ``k`` models nearest (HOG) to each image when rendered from its viewpoint.

    images: N×3×S×S -> N×k model indices, nearest first. Images sharing a viewpoint share renders.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape N×3×S×S, got {tuple(images.shape)}")
    if len(viewpoints) != len(images):
        raise ValueError(f"need one viewpoint per image: {len(images)} images, {len(viewpoints)} viewpoints")
    if not 1 <= k <= len(meshes):
        raise ValueError(f"k must be in [1, {len(meshes)}] (the number of meshes), got {k}")
    renders: dict[Viewpoint, np.ndarray] = {}
    rows = []
    for image, view in zip(images, viewpoints, strict=False):
        if view not in renders:
            renders[view] = render_hogs(meshes, view, images.shape[-1])
        distances = np.linalg.norm(renders[view] - hog_descriptor(image), axis=1)
        rows.append(np.argsort(distances, kind="stable")[:k])
    return torch.as_tensor(np.stack(rows), dtype=torch.long)


def build_quartets(neighbours: Tensor, groups: Sequence[str] | None = None) -> list[Quartet]:
    """Every ordered pair of distinct real images with every model among the K nearest of both.

    neighbours: N×K model indices (from :func:`nearest_models`). groups: N category names; when
    given, only images of the same category are paired (the paper builds quartets per category).
    """
    if neighbours.ndim != 2:
        raise ValueError(f"neighbours must have shape N×K, got {tuple(neighbours.shape)}")
    if groups is not None and len(groups) != len(neighbours):
        raise ValueError(f"need one group per image: {len(neighbours)} images, {len(groups)} groups")
    sets = [set(row.tolist()) for row in neighbours]
    return [
        Quartet(m, a, b)
        for a, b in itertools.permutations(range(len(sets)), 2)
        if groups is None or groups[a] == groups[b]
        for m in sorted(sets[a] & sets[b])
    ]


class QuartetDataset(Dataset):
    """Renders each quartet on the fly.

    item: {"s1", "s2", "r1", "r2": 3×S×S in [0, 1], "flow": 2×S×S ground truth F̃_{s1,s2},
    "matchable": 1×S×S float ground truth M̃_{s1,s2}}.
    """

    def __init__(self, images: Tensor, viewpoints: Sequence[Viewpoint], meshes: Sequence[Mesh],
                 quartets: Sequence[Quartet]):
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must have shape N×3×S×S, got {tuple(images.shape)}")
        if len(viewpoints) != len(images):
            raise ValueError(f"need one viewpoint per image: {len(images)} images, {len(viewpoints)} viewpoints")
        if not quartets:
            raise ValueError("no quartets: no two real images share a nearest CAD model (raise k?)")
        self.images, self.viewpoints = images, list(viewpoints)
        self.meshes, self.quartets = list(meshes), list(quartets)

    @classmethod
    def from_images(
        cls,
        images: Tensor,
        meshes: Sequence[Mesh],
        viewpoints: Sequence[Viewpoint] | None = None,
        k: int = 20,
        candidates: Sequence[Viewpoint] | None = None,
        groups: Sequence[str] | None = None,
    ) -> QuartetDataset:
        """Choose viewpoints (if not given) and the K nearest models, then build all quartets
        (pairing only images of the same ``groups`` entry when given)."""
        if viewpoints is None:
            candidates = viewpoint_grid() if candidates is None else candidates
            viewpoints = estimate_viewpoints(images, meshes, candidates)
        neighbours = nearest_models(images, viewpoints, meshes, k)
        return cls(images, viewpoints, meshes, build_quartets(neighbours, groups))

    def __len__(self) -> int:
        return len(self.quartets)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        quartet = self.quartets[index]
        size = self.images.shape[-1]
        mesh = self.meshes[quartet.model]
        s1 = render(mesh, Camera.from_viewpoint(self.viewpoints[quartet.real_a], (size, size)))
        s2 = render(mesh, Camera.from_viewpoint(self.viewpoints[quartet.real_b], (size, size)))
        flow, matchable = ground_truth_flow(s1, s2)
        return {
            "s1": s1.rgb,
            "s2": s2.rgb,
            "r1": self.images[quartet.real_a],
            "r2": self.images[quartet.real_b],
            "flow": flow,
            "matchable": matchable[None].float(),
        }
