"""Test fixture: a synthetic 3D world with known answers, for the tests, benchmark and example of SemAlign3D.

An object class is a convex polytope whose vertices are the L keypoints of a template skeleton;
an instance stretches the template along its three axes and jitters the keypoints. Views are
rendered by exact ray casting with known cameras (position on a sphere, normalised focal length),
so depth, object mask and keypoint visibility are exact. Features are a known function of the
*canonical* (un-stretched) surface position that ignores the sign of the left/right axis, like
real features that tell a "wing tip" but not which one: only 3D geometry can tell left from right.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from scipy.spatial import ConvexHull

from geocorr.grid import TokenGrid
from geocorr.methods.semalign3d.dense import TrainingView

# Object axes: x forward, y left, z up. Left/right twins: 2↔3, 4↔5.
TEMPLATE = torch.tensor([
    [2.0, 0.0, 0.0],    # 0 nose
    [-1.5, 0.0, 0.9],   # 1 tail fin
    [0.0, 1.3, 0.0],    # 2 left wing tip
    [0.0, -1.3, 0.0],   # 3 right wing tip
    [-1.4, 0.6, -0.2],  # 4 left rear
    [-1.4, -0.6, -0.2],  # 5 right rear
    [0.7, 0.0, 0.6],    # 6 cockpit
    [0.3, 0.0, -0.5],   # 7 belly
], dtype=torch.float64)
LEFT_RIGHT = (0, 1, 3, 2, 5, 4, 6, 7)  # keypoint id of each keypoint's mirror twin


@dataclass
class View(TrainingView):
    """One rendered image of an instance: a :class:`TrainingView` with features at every pixel (an
    identity token grid), depth 0 off the object and the true normalised focal length, plus
    world: (L, 3) camera-frame keypoints.
    """

    world: torch.Tensor = field(kw_only=True)


class SyntheticWorld:
    """A class of keypoint skeletons, a feature field and a renderer. All randomness from ``seed``."""

    def __init__(self, seed: int = 0, channels: int = 24, stretch: float = 0.15, jitter: float = 0.03,
                 frequency: float = 1.2) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.template = TEMPLATE.clone()
        self.stretch, self.jitter = stretch, jitter
        self._freq = torch.randn(channels, 3, generator=gen, dtype=torch.float64) * frequency
        self._phase = torch.rand(channels, generator=gen, dtype=torch.float64) * 2 * math.pi
        self._background = torch.randn(channels, generator=gen, dtype=torch.float64)

    def instance(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A random instance: keypoints (L, 3) and its per-axis stretch (3,)."""
        scale = torch.exp((torch.rand(3, generator=generator, dtype=torch.float64) * 2 - 1) * self.stretch)
        noise = torch.randn(self.template.shape, generator=generator, dtype=torch.float64) * self.jitter
        return self.template * scale + noise, scale

    def feature_field(self, canonical: torch.Tensor) -> torch.Tensor:
        """Features of canonical object points (N, 3) -> (N, C), blind to the sign of y."""
        sym = canonical * canonical.new_tensor([1.0, 0.0, 1.0]) + canonical[:, 1:2].abs() * canonical.new_tensor(
            [0.0, 1.0, 0.0])
        return torch.cos(sym @ self._freq.T + self._phase)

    def render(self, points: torch.Tensor, scale: torch.Tensor, azimuth: float, elevation: float, focal: float,
               image_hw: tuple[int, int] = (48, 48), fill: float = 0.8) -> View:
        """Render an instance (keypoints (L, 3), stretch (3,)) seen from a camera on a sphere.

        azimuth/elevation in degrees (azimuth 0: camera in front of the nose, 180: behind the tail);
        the distance makes the object's bounding sphere span ``fill`` of the image.
        """
        az, el = math.radians(azimuth), math.radians(elevation)
        radius = points.norm(dim=1).max().item()
        distance = 2 * focal * radius / fill  # bounding sphere radius = fill × half the longer side
        eye = distance * torch.tensor([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)],
                                      dtype=torch.float64)
        fwd = -eye / distance
        right = torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        right = right / right.norm()
        rot = torch.stack([right, torch.linalg.cross(fwd, right), fwd])  # rows: camera x (right), y (down), z
        hull = ConvexHull(points.numpy())
        eq = torch.from_numpy(hull.equations)  # n·x + b <= 0 inside, object frame
        normals = eq[:, :3] @ rot.T
        offsets = eq[:, 3] + eq[:, :3] @ eye
        world = (points - eye) @ rot.T

        h, w = image_hw
        s = max(h, w)  # normalised units: the longer side (see geometry.py)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
        rays = torch.stack([(xs - (w - 1) / 2) / (focal * s), (ys - (h - 1) / 2) / (focal * s), torch.ones_like(xs)],
                           dim=-1).reshape(-1, 3)
        t_in = _ray_entry(rays, normals, offsets)
        mask = torch.isfinite(t_in)
        depth = torch.where(mask, t_in, torch.zeros_like(t_in))
        hit = rays * depth[:, None] @ rot + eye  # object frame
        feats = self.feature_field(hit / scale)
        feats[~mask] = self._background
        proj = world[:, :2] / world[:, 2:] * focal * s + world.new_tensor([(w - 1) / 2, (h - 1) / 2])
        inside = (proj[:, 0] > -0.5) & (proj[:, 0] < w - 0.5) & (proj[:, 1] > -0.5) & (proj[:, 1] < h - 0.5)
        entry = _ray_entry(world / world[:, 2:], normals, offsets)
        visible = inside & (entry >= world[:, 2] * (1 - 1e-6))
        grid = TokenGrid(image_hw=(h, w), content_hw=(h, w), input_hw=(h, w), patch=1)
        return View(features=feats.T.reshape(-1, h, w).float(), grid=grid, depth=depth.reshape(h, w).float(),
                    mask=mask.reshape(h, w), keypoints=proj.float(), visible=visible, world=world.float(),
                    focal=focal)


def _ray_entry(rays: torch.Tensor, normals: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Depth where rays (N, 3) from the origin (z component 1) enter the polytope {n·x + b <= 0};
    normals (F, 3), offsets (F,) -> (N,), inf where a ray misses."""
    nd = rays @ normals.T  # (N, F)
    bound = -offsets / nd
    inf = torch.full_like(bound, math.inf)
    t_in = torch.where(nd < 0, bound, -inf).amax(dim=1)
    t_out = torch.where(nd > 0, bound, inf).amin(dim=1)
    return torch.where((t_in <= t_out) & (t_in > 0), t_in, torch.full_like(t_in, math.inf))
