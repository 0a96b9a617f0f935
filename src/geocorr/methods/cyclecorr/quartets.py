"""Training quartets ⟨s1, s2, r1, r2⟩: two real images and two renders of one CAD model.

For every real image the CAD models are rendered from the image's viewpoint and the K = 20
nearest by HOG Euclidean distance are kept. A quartet takes two real images r1, r2 and a model
among the K nearest of both; s1 and s2 are that model rendered from r1's and r2's viewpoints,
and the renderer gives the exact flow ``F̃_{s1,s2}`` and matchability ``M̃_{s1,s2}``.

Real images without a viewpoint annotation (e.g. PF-Willow) get the candidate viewpoint whose
nearest render (over all models) is closest in HOG space (:func:`retrieve_renders` returns that
render's model too: the shape-to-image segmentation transfer renders it).

Framing: the network sees real images cut to their object box and resized to S×S, so training
compares and renders the CAD models framed the same way (:func:`framed_camera`: the render's
object box spans the frame; exact, the ground-truth flow included). Whole renders, where a toy
car covers ~21 % of the frame, retrieve the azimuth of a box crop within 15° in 8-18 % of 40
synthetic crops (chance 8 %), framed renders in 68-72 % (85-88 % when front/back flips of the
near-symmetric toy car count as right); ``benchmarks/cyclecorr_retrieval.py``. :func:`render_hogs`
and :func:`retrieve_renders` default to whole renders (for whole images); :class:`QuartetDataset`,
:func:`estimate_viewpoints` and :func:`nearest_models`, training's, frame by default.
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
from .crop import Crop
from .mesh import Mesh
from .render import Render, ground_truth_flow, render

__all__ = [
    "FramedCamera",
    "Quartet",
    "QuartetDataset",
    "build_quartets",
    "estimate_viewpoints",
    "framed_camera",
    "hog_descriptor",
    "nearest_models",
    "object_crop",
    "render_camera",
    "render_hogs",
    "retrieve_renders",
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


@dataclass(frozen=True)
class FramedCamera(Camera):
    """A camera whose image is an image-plane box stretched onto the whole frame, as a box crop
    resized to S×S is: the pinhole projection is followed by ``uv * scale + offset`` per axis."""

    scale: tuple[float, float]  # crop pixels per image pixel along (x, y)
    offset: tuple[float, float]  # crop position of image pixel (0, 0)

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        uv, depth = super().project(points)
        return uv * uv.new_tensor(self.scale) + uv.new_tensor(self.offset), depth


def framed_camera(mesh: Mesh, view: Viewpoint, size: int) -> FramedCamera:
    """The size×size camera at ``view`` framed to ``mesh``'s object box: the box of its projected
    vertices (= the silhouette's box) spans the image, ``[-0.5, size - 0.5]`` on both axes, as the
    real images' boxes span their crops (:class:`~.crop.Crop`). Renders through it are exact (no
    resampling), so :func:`~.render.ground_truth_flow` between them is too."""
    camera = Camera.from_viewpoint(view, (size, size))
    uv, depth = camera.project(mesh.vertices[mesh.faces.unique()])
    if bool((depth <= 0).any()):
        raise ValueError(f"the camera at {view} is inside the mesh: cannot frame it")
    low, high = uv.min(0).values, uv.max(0).values
    scale = size / (high - low).clamp(min=1e-6)
    offset = -0.5 - low * scale
    return FramedCamera(camera.rotation, camera.translation, camera.focal, camera.image_hw,
                        (float(scale[0]), float(scale[1])), (float(offset[0]), float(offset[1])))


def object_crop(shape: Render, size: int) -> tuple[Tensor, Tensor]:
    """A render cut to its object's box and resized to size×size, as real images are cropped
    (:class:`~.crop.Crop`) -> (rgb 3×size×size, labels size×size, -1 background). A render that
    shows nothing is kept whole."""
    rows, cols = torch.nonzero(shape.mask, as_tuple=True)
    box = None if len(rows) == 0 else (int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max()))
    crop = Crop.from_box(box, (shape.mask.shape[0], shape.mask.shape[1]), size)
    return crop.apply(shape.rgb), crop.apply_labels(shape.labels)


def render_camera(mesh: Mesh, view: Viewpoint, size: int, framed: bool) -> Camera:
    """The size×size camera training renders ``mesh`` with from ``view``: framed to the object's box
    (:func:`framed_camera`, like the real box crops) or, ``framed=False``, the whole view."""
    return framed_camera(mesh, view, size) if framed else Camera.from_viewpoint(view, (size, size))


def render_hogs(meshes: Sequence[Mesh], view: Viewpoint, size: int, framed: bool = False) -> np.ndarray:
    """HOG descriptors of every mesh rendered size×size from ``view`` (``framed``: through
    :func:`framed_camera`, the object's box filling the frame) -> M×D."""
    return np.stack([hog_descriptor(render(mesh, render_camera(mesh, view, size, framed)).rgb) for mesh in meshes])


def retrieve_renders(images: Tensor, meshes: Sequence[Mesh], candidates: Sequence[Viewpoint], framed: bool = False
                     ) -> list[tuple[Viewpoint, int]]:
    """For each image (N×3×S×S) the HOG-nearest render over ``candidates`` × ``meshes``: its
    (viewpoint, mesh index). Renders every (candidate, mesh) once, then compares descriptors only;
    ties go to the first candidate, then the first mesh. ``framed``: compare the renders framed to
    their object box (:func:`framed_camera`), as box-cropped images are framed."""
    if not candidates or not meshes:
        raise ValueError("retrieving renders needs at least one mesh and one candidate viewpoint")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape N×3×S×S, got {tuple(images.shape)}")
    bank = np.stack([render_hogs(meshes, view, images.shape[-1], framed) for view in candidates])  # V×M×D
    chosen = []
    for image in images:
        distances = np.linalg.norm(bank - hog_descriptor(image), axis=-1)  # V×M
        view, mesh = np.unravel_index(int(np.argmin(distances)), distances.shape)
        chosen.append((candidates[int(view)], int(mesh)))
    return chosen


def estimate_viewpoints(images: Tensor, meshes: Sequence[Mesh], candidates: Sequence[Viewpoint],
                        framed: bool = True) -> list[Viewpoint]:
    """For each image (N×3×S×S, cut to its object box) the candidate viewpoint whose best render over
    ``meshes`` is HOG-nearest, the renders framed to their object box too (``framed=False``: whole)."""
    return [view for view, _ in retrieve_renders(images, meshes, candidates, framed)]


def nearest_models(images: Tensor, viewpoints: Sequence[Viewpoint], meshes: Sequence[Mesh], k: int = 20,
                   framed: bool = True) -> Tensor:
    """The ``k`` models nearest (HOG) to each image when rendered from its viewpoint (``framed`` to
    their object box as the box-cropped images are, or whole).

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
            renders[view] = render_hogs(meshes, view, images.shape[-1], framed)
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
    """Renders each quartet on the fly, ``framed`` to the model's object box (:func:`framed_camera`)
    as the real images are cut to theirs, or whole (``framed=False``).

    item: {"s1", "s2", "r1", "r2": 3×S×S in [0, 1], "flow": 2×S×S ground truth F̃_{s1,s2},
    "matchable": 1×S×S float ground truth M̃_{s1,s2}}.
    """

    def __init__(self, images: Tensor, viewpoints: Sequence[Viewpoint], meshes: Sequence[Mesh],
                 quartets: Sequence[Quartet], framed: bool = True):
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must have shape N×3×S×S, got {tuple(images.shape)}")
        if len(viewpoints) != len(images):
            raise ValueError(f"need one viewpoint per image: {len(images)} images, {len(viewpoints)} viewpoints")
        if not quartets:
            raise ValueError("no quartets: no two real images share a nearest CAD model (raise k?)")
        self.images, self.viewpoints = images, list(viewpoints)
        self.meshes, self.quartets = list(meshes), list(quartets)
        self.framed = framed

    @classmethod
    def from_images(
        cls,
        images: Tensor,
        meshes: Sequence[Mesh],
        viewpoints: Sequence[Viewpoint] | None = None,
        k: int = 20,
        candidates: Sequence[Viewpoint] | None = None,
        groups: Sequence[str] | None = None,
        framed: bool = True,
    ) -> QuartetDataset:
        """Choose viewpoints (if not given) and the K nearest models, then build all quartets
        (pairing only images of the same ``groups`` entry when given). ``framed``: retrieve and
        render with the renders framed to their object box, like the image crops (``False``: whole
        renders, where a car covers ~21 % of the frame and HOG retrieves the view from a box crop
        about as often as chance, ``benchmarks/cyclecorr_retrieval.py``)."""
        if viewpoints is None:
            candidates = viewpoint_grid() if candidates is None else candidates
            viewpoints = estimate_viewpoints(images, meshes, candidates, framed)
        neighbours = nearest_models(images, viewpoints, meshes, k, framed)
        return cls(images, viewpoints, meshes, build_quartets(neighbours, groups), framed)

    def __len__(self) -> int:
        return len(self.quartets)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        quartet = self.quartets[index]
        size = self.images.shape[-1]
        mesh = self.meshes[quartet.model]
        s1 = render(mesh, render_camera(mesh, self.viewpoints[quartet.real_a], size, self.framed))
        s2 = render(mesh, render_camera(mesh, self.viewpoints[quartet.real_b], size, self.framed))
        flow, matchable = ground_truth_flow(s1, s2)
        return {
            "s1": s1.rgb,
            "s2": s2.rgb,
            "r1": self.images[quartet.real_a],
            "r2": self.images[quartet.real_b],
            "flow": flow,
            "matchable": matchable[None].float(),
        }
