"""Triangle meshes for rendering: loading CAD files through trimesh, and small procedural shapes.

World axes follow ShapeNet: y is up, the object faces +z. Loaded meshes are centred and scaled to
a unit bounding-box diagonal so one camera distance suits every model.

Labelled parts (for segmentation transfer) come from the names a modelling tool writes:

* glTF / GLB: every node is a part named by the node's name (Blender exports one node per object);
* OBJ: every ``o NAME`` object is a part; a file without ``o`` lines uses its ``g NAME`` groups;
* other formats (PLY, OFF, STL) and OBJ files without either hold no part names: unlabelled.

A part's name is reduced to a key (:func:`part_key`: lower case, letters and digits only, a
trailing instance number dropped), so ``Wheel.001``, ``wheel_2`` and ``wheel`` are one part
``wheel``, and ``left_mirror`` is ``leftmirror``. ``Mesh.part_names`` holds the keys, sorted; face
label k > 0 is ``part_names[k - 1]``, 0 unlabelled. Nothing in a file is executed: only names and
geometry are read.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["MESH_SUFFIXES", "Mesh", "box", "load_mesh", "load_meshes", "part_key", "toy_car"]

MESH_SUFFIXES = (".obj", ".off", ".ply", ".glb", ".gltf", ".stl")


@dataclass(frozen=True)
class Mesh:
    """vertices: V×3 float, faces: F×3 long (counter-clockwise), vertex_colors: V×3 in [0, 1],
    face_labels: F long part ids (0 = unlabelled) for segmentation transfer, part_names: the name
    (:func:`part_key`) of each id 1, 2, … when known."""

    vertices: Tensor
    faces: Tensor
    vertex_colors: Tensor
    face_labels: Tensor
    part_names: tuple[str, ...] = ()

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
        if self.part_names and not 0 <= int(self.face_labels.min()) <= int(self.face_labels.max()) <= len(
                self.part_names):
            raise ValueError(f"face_labels must lie in [0, {len(self.part_names)}] (the named parts)")

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
        return replace(self, vertices=vertices)


def part_key(name: str) -> str:
    """The key a part name is matched by: lower case, letters and digits only, without a trailing
    instance number (``Wheel.001`` -> ``wheel``, ``left_mirror`` -> ``leftmirror``)."""
    return re.sub(r"\d+$", "", re.sub(r"[^a-z0-9]", "", str(name).lower()))


def _obj_names(path: Path) -> tuple[dict, list[str]]:
    """trimesh's OBJ options that split the file into its named parts, and those names
    (``o`` objects, else ``g`` groups; none: no split)."""
    objects: list[str] = []
    groups: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as text:
        for line in text:
            if line.startswith(("o ", "g ")):
                (objects if line[0] == "o" else groups).append(line[2:].strip())
    if objects:
        return {"split_objects": True}, objects
    if groups:
        return {"split_groups": True}, groups
    return {}, []


def _named_parts(loaded, names: list[str] | None) -> list[tuple[str, object]]:
    """(part key or "", trimesh.Trimesh in world coordinates) for each triangle geometry loaded.

    names: the OBJ's object/group names (a geometry is named by the longest one its trimesh name
    starts with: trimesh appends material names), None for glTF (node names), [] for unnamed.
    """
    import trimesh

    if isinstance(loaded, trimesh.Trimesh):
        return [("", loaded)]
    if not isinstance(loaded, trimesh.Scene):
        return []
    parts = []
    for node in loaded.graph.nodes_geometry:
        transform, geometry_name = loaded.graph[node]
        geometry = loaded.geometry[geometry_name]
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            continue
        geometry = geometry.copy()
        geometry.apply_transform(transform)
        if names is None:
            name = str(node)
        else:
            name = max((n for n in names if str(geometry_name).startswith(n)), key=len, default="")
        parts.append((part_key(name), geometry))
    return parts


def load_mesh(path: str | Path, normalize: bool = True) -> Mesh:
    """Load an OBJ / OFF / PLY / GLB / STL … file with trimesh, its parts concatenated and labelled
    by name (see the module docstring; ``part_names`` is empty when the file names no part)."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    suffix = path.suffix.lower()
    try:
        options, names = _obj_names(path) if suffix == ".obj" else ({}, [])
        loaded = trimesh.load(path, process=False, **options)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise ValueError(f"{path}: not a readable mesh file ({error})") from error
    parts = _named_parts(loaded, None if suffix in (".glb", ".gltf") else names)
    if not parts:
        raise ValueError(f"{path}: the file holds no triangles")
    keys = sorted({key for key, _ in parts if key})
    ids = {key: n + 1 for n, key in enumerate(keys)}
    mesh = _concatenate([Mesh.from_trimesh(part, ids.get(key, 0)) for key, part in parts])
    mesh = replace(mesh, part_names=tuple(keys))
    vertices = mesh.vertices
    if not torch.isfinite(vertices).all():
        raise ValueError(f"{path}: degenerate mesh (NaN or infinite vertices)")
    tri = vertices[mesh.faces]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    if not (area > 0).any():
        raise ValueError(f"{path}: degenerate mesh (every face has zero area)")
    if not (area > 0).all():  # zero-area faces draw nothing and have no normal: drop them
        keep = area > 0
        mesh = replace(mesh, faces=mesh.faces[keep], face_labels=mesh.face_labels[keep])
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
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    return Mesh(
        vertices=torch.cat([p.vertices for p in parts]),
        faces=torch.cat([p.faces + int(o) for p, o in zip(parts, offsets, strict=False)]),
        vertex_colors=torch.cat([p.vertex_colors for p in parts]),
        face_labels=torch.cat([p.face_labels for p in parts]),
    )


def toy_car(body_length: float = 1.0, cabin_length: float = 0.5, wheel_radius: float = 0.12) -> Mesh:
    """A car of primitives (body, cabin, four wheels), normalised; part labels 1 body, 2 cabin, 3 wheels
    (``part_names`` ("body", "cabin", "wheel")).

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
    return replace(_concatenate(parts), part_names=("body", "cabin", "wheel")).normalized()
