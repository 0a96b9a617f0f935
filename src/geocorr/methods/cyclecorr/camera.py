"""Pinhole cameras on a viewing sphere around the object (PASCAL3D+-style viewpoints).

Camera axes follow OpenCV (x right, y down, z forward); pixels follow the pixel-centre convention,
so the principal point of a W×H image is ``((W - 1) / 2, (H - 1) / 2)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Camera", "Viewpoint"]


@dataclass(frozen=True)
class Viewpoint:
    """azimuth, elevation, in-plane rotation theta in degrees; distance in object units
    (meshes are normalised to a unit bounding-box diagonal); focal in pixels of a 128-px image."""

    azimuth: float
    elevation: float
    distance: float = 2.0
    theta: float = 0.0
    focal: float = 160.0


@dataclass(frozen=True)
class Camera:
    """rotation: 3×3 world→camera, translation: 3, focal in pixels, image_hw: (H, W)."""

    rotation: Tensor
    translation: Tensor
    focal: float
    image_hw: tuple[int, int]

    @classmethod
    def from_viewpoint(cls, view: Viewpoint, image_hw: tuple[int, int] = (128, 128)) -> Camera:
        """A camera on the sphere looking at the origin (world y up); focal scales with image width."""
        if view.distance <= 0 or view.focal <= 0:
            raise ValueError(f"viewpoint distance and focal must be positive, got {view}")
        az, el, th = (math.radians(a) for a in (view.azimuth, view.elevation, view.theta))
        center = view.distance * torch.tensor(
            [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)]
        )
        forward = -center / center.norm()
        up = torch.tensor([0.0, 1.0, 0.0])
        right = torch.linalg.cross(forward, up)
        if right.norm() < 1e-6:
            raise ValueError(f"elevation {view.elevation} looks straight along the up axis")
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        roll = torch.tensor(
            [[math.cos(th), -math.sin(th), 0.0], [math.sin(th), math.cos(th), 0.0], [0.0, 0.0, 1.0]]
        )
        rotation = roll @ torch.stack([right, down, forward])
        focal = view.focal * image_hw[1] / 128
        return cls(rotation, -rotation @ center, focal, (image_hw[0], image_hw[1]))

    @property
    def principal_point(self) -> tuple[float, float]:
        return ((self.image_hw[1] - 1) / 2, (self.image_hw[0] - 1) / 2)

    def to_camera(self, points: Tensor) -> Tensor:
        """World points N×3 -> camera coordinates N×3."""
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must have shape N×3, got {tuple(points.shape)}")
        return points @ self.rotation.to(points).T + self.translation.to(points)

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points N×3 -> (pixel coordinates N×2, depth N)."""
        cam = self.to_camera(points)
        cx, cy = self.principal_point
        depth = cam[:, 2]
        uv = torch.stack([self.focal * cam[:, 0] / depth + cx, self.focal * cam[:, 1] / depth + cy], -1)
        return uv, depth
