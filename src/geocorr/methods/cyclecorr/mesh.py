"""Triangle meshes for rendering: loading CAD files through trimesh, and small procedural shapes.

World axes follow ShapeNet: y is up, the object faces +z. Loaded meshes are centred and scaled to
a unit bounding-box diagonal so one camera distance suits every model.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["MESH_SUFFIXES", "Mesh", "box", "load_mesh", "load_meshes", "toy_car"]

MESH_SUFFIXES = (".obj", ".off", ".ply", ".glb", ".gltf", ".stl")


@dataclass(frozen=True)
class Mesh:
    """vertices: V×3 float, faces: F×3 long (counter-clockwise), vertex_colors: V×3 in [0, 1],
    face_labels: F long part ids (0 = unlabelled) for segmentation transfer."""

    vertices: Tensor
    faces: Tensor
    vertex_colors: Tensor
    face_labels: Tensor

    def __post_init__(self) -> None:
        v, f = self.vertices, self.faces
        if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
            raise ValueError(f"vertices must have shape V×3 with V > 0, got {tuple(v.shape)}")
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise ValueError(f"faces must have shape F×3 with F > 0, got {tuple(f.shape)}")
        if int(f.min()) < 0 or int(f.max()) >= len(v):
            raise ValueError(f"faces index vertices outside [0, {len(v) - 1}]")
        if self.vertex_colors.shape != v.shape:
            raise ValueError(f"vertex_colors must have shape {tuple(v.shape)}, got {tuple(self.vertex_colors.shape)}")
        if self.face_labels.shape != (len(f),):
            raise ValueError(f"face_labels must have shape ({len(f)},), got {tuple(self.face_labels.shape)}")

    @classmethod
    def from_trimesh(cls, mesh, label: int = 0) -> Mesh:
        """Convert a ``trimesh.Trimesh``; colours come from its visuals (textures sampled at vertices)."""
        visual = mesh.visual.to_color() if mesh.visual.kind == "texture" else mesh.visual
        colors = np.asarray(visual.vertex_colors, dtype=np.float32)[:, :3] / 255.0
        return cls(
            vertices=torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32),
            faces=torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long),
            vertex_colors=torch.as_tensor(colors),
            face_labels=torch.full((len(mesh.faces),), label, dtype=torch.long),
        )

    def normalized(self) -> Mesh:
        """Centre the bounding box at the origin and scale its diagonal to 1."""
        low, high = self.vertices.min(0).values, self.vertices.max(0).values
        diagonal = float((high - low).norm())
        if diagonal == 0:
            raise ValueError("cannot normalise a mesh whose vertices all coincide")
        vertices = (self.vertices - (low + high) / 2) / diagonal
        return Mesh(vertices, self.faces, self.vertex_colors, self.face_labels)


def load_mesh(path: str | Path, normalize: bool = True) -> Mesh:
    """Load an OBJ / OFF / PLY / GLB / STL … file (all its parts concatenated) with trimesh."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise ValueError(f"{path}: not a readable mesh file ({error})") from error
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError(f"{path}: the file holds no triangles")
    if not np.isfinite(np.asarray(loaded.vertices)).all():
        raise ValueError(f"{path}: degenerate mesh (NaN or infinite vertices)")
    area = np.asarray(loaded.area_faces)
    if not (area > 0).any():
        raise ValueError(f"{path}: degenerate mesh (every face has zero area)")
    mesh = Mesh.from_trimesh(loaded)
    if not (area > 0).all():  # zero-area faces draw nothing and have no normal: drop them
        keep = torch.from_numpy(area > 0)
        mesh = Mesh(mesh.vertices, mesh.faces[keep], mesh.vertex_colors, mesh.face_labels[keep])
    return mesh.normalized() if normalize else mesh


def load_meshes(folder: str | Path) -> tuple[list[Mesh], list[Path]]:
    """Every mesh file (:data:`MESH_SUFFIXES`) under ``folder``, recursively, in sorted path order
    (e.g. ShapeNet's ``<synset>/<id>/models/model_normalized.obj``) -> (meshes, their paths)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"mesh folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
    if not paths:
        raise ValueError(f"{folder}: no mesh files ({', '.join(MESH_SUFFIXES)}) found")
    meshes, kept, skipped = [], [], []
    for path in paths:
        try:
            meshes.append(load_mesh(path))
            kept.append(path)
        except ValueError as error:  # unreadable or degenerate: skipped, counted
            skipped.append(str(error))
    if not meshes:
        raise ValueError(f"{folder}: none of its {len(paths)} mesh files is usable (first: {skipped[0]})")
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} of {len(paths)} mesh files (unreadable or degenerate; "
                      f"first: {skipped[0]})", stacklevel=2)
    return meshes, kept


def box(extents=(1.0, 1.0, 1.0), center=(0.0, 0.0, 0.0), subdivisions: int = 0, label: int = 0) -> Mesh:
    """An axis-aligned box; each face coloured by its normal direction, optionally subdivided."""
    import trimesh

    mesh = trimesh.creation.box(extents=extents)
    for _ in range(subdivisions):
        mesh = mesh.subdivide()
    mesh.apply_translation(center)
    colors = np.abs(mesh.vertex_normals) * 0.6 + 0.2
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=(colors * 255).astype(np.uint8))
    return Mesh.from_trimesh(mesh, label)


def _concatenate(parts: list[Mesh]) -> Mesh:
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    return Mesh(
        vertices=torch.cat([p.vertices for p in parts]),
        faces=torch.cat([p.faces + int(o) for p, o in zip(parts, offsets, strict=False)]),
        vertex_colors=torch.cat([p.vertex_colors for p in parts]),
        face_labels=torch.cat([p.face_labels for p in parts]),
    )


def toy_car(body_length: float = 1.0, cabin_length: float = 0.5, wheel_radius: float = 0.12) -> Mesh:
    """A car of primitives (body, cabin, four wheels), normalised; part labels 1 body, 2 cabin, 3 wheels.

    The car points along +x; vary the arguments to get a family of distinct "CAD models".
    """
    import trimesh

    width, body_height = 0.45, 0.22
    parts = [
        box((body_length, body_height, width), (0, wheel_radius + body_height / 2, 0), 2, label=1),
        box((cabin_length, 0.18, width * 0.9), (-0.05, wheel_radius + body_height + 0.09, 0), 2, label=2),
    ]
    for x in (-body_length * 0.32, body_length * 0.32):
        for z in (-width / 2, width / 2):
            wheel = trimesh.creation.cylinder(radius=wheel_radius, height=0.08, sections=16)
            wheel.apply_translation((x, wheel_radius, z))
            dark = np.full((len(wheel.vertices), 4), (40, 40, 40, 255), dtype=np.uint8)
            wheel.visual = trimesh.visual.ColorVisuals(wheel, vertex_colors=dark)
            parts.append(Mesh.from_trimesh(wheel, label=3))
    return _concatenate(parts).normalized()
