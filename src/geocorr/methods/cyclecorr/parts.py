"""Part-level pieces of the paper's evaluations that are the method's own maths: which pixels are
truly matchable (part co-occurrence), and part labels carried through a predicted flow. Their
scores (average precision, mean IoU) live in :mod:`geocorr.evaluation.cyclecorr`.

A CAD model's part names (:mod:`.mesh`) are tied to a dataset's part vocabulary by name
(:func:`label_parts`): both sides are compared by :func:`~.mesh.part_key`, after an optional
alias table (mesh part -> dataset part) for vocabularies that differ.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch
from torch import Tensor

from .flow import pixel_grid
from .mesh import Mesh, part_key
from .model import CycleCorr
from .render import Render

__all__ = ["label_parts", "matchability_ground_truth", "segmentation_transfer", "transfer_labels",
           "unknown_aliases"]


def unknown_aliases(part_names: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    """The targets of ``aliases`` (mesh part -> dataset part) that name none of ``part_names``
    (compared by :func:`~.mesh.part_key`), as given, sorted."""
    known = {part_key(name) for name in part_names}
    return sorted({target for target in aliases.values() if part_key(target) not in known})


def label_parts(mesh: Mesh, part_names: Sequence[str], aliases: Mapping[str, str] | None = None) -> Mesh:
    """``mesh`` relabelled in a dataset's vocabulary: face label i + 1 is ``part_names[i]``, 0 a part
    the vocabulary does not name (or an unnamed one). ``aliases``: mesh part -> dataset part names
    (e.g. {"tyre": "wheel"}), looked up before the names themselves; all names compare by
    :func:`~.mesh.part_key`. The result's ``part_names`` is the vocabulary.
    """
    vocabulary: dict[str, int] = {}
    for i, name in enumerate(part_names):
        vocabulary.setdefault(part_key(name), i + 1)
    unknown = unknown_aliases(part_names, aliases or {})
    if unknown:
        raise ValueError(f"part aliases name {', '.join(unknown)}, not among the parts {', '.join(part_names)}")
    renamed = {part_key(k): part_key(v) for k, v in (aliases or {}).items()}
    table = torch.zeros(len(mesh.part_names) + 1, dtype=torch.long)
    for k, name in enumerate(mesh.part_names, 1):
        table[k] = vocabulary.get(renamed.get(name, name), 0)
    named = mesh.face_labels <= len(mesh.part_names)  # labels of a mesh without names: unnamed
    labels = torch.where(named, table[mesh.face_labels.clamp(max=len(mesh.part_names))], 0)
    return replace(mesh, face_labels=labels, part_names=tuple(part_names))


def matchability_ground_truth(parts_a: Tensor, parts_b: Tensor) -> Tensor:
    """A pixel of a is matchable when its part label (> 0) occurs in b. parts: H×W long -> H×W bool."""
    if parts_a.ndim != 2 or parts_b.ndim != 2:
        raise ValueError(f"part maps must be H×W, got {tuple(parts_a.shape)} and {tuple(parts_b.shape)}")
    present = torch.unique(parts_b[parts_b > 0])
    return (parts_a > 0) & torch.isin(parts_a, present)


def transfer_labels(flow: Tensor, labels: Tensor) -> Tensor:
    """Each pixel p takes ``labels`` (H'×W' long, -1 or 0 = background) at round(p + flow(p)).

    flow: 2×H×W -> H×W long; pixels sent outside the labelled image get 0.
    """
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must have shape 2×H×W, got {tuple(flow.shape)}")
    height, width = labels.shape
    target = (pixel_grid(flow.shape[-2], flow.shape[-1], dtype=flow.dtype) + flow.cpu()).round().long()
    col, row = target[0], target[1]
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    read = labels[row.clamp(0, height - 1), col.clamp(0, width - 1)].clamp(min=0)
    return torch.where(inside, read, torch.zeros_like(read))


def segmentation_transfer(model: CycleCorr, image: Tensor, shape: Render) -> Tensor:
    """Part labels of a rendered CAD model ``shape`` (S×S, e.g. through
    :func:`~.quartets.framed_camera`, as training renders) carried onto a real S×S crop ``image``.

    image: 3×S×S in [0, 1] -> S×S long (0 = background), through the predicted flow F_{image,render}.
    """
    size = model.image_size
    if image.shape != (3, size, size):
        raise ValueError(f"image must be a 3×{size}×{size} crop, got {tuple(image.shape)}")
    if shape.rgb.shape != (3, size, size):
        raise ValueError(f"shape must be rendered {size}×{size}, got {tuple(shape.rgb.shape[1:])}")
    flow, _ = model.predict(image, shape.rgb)
    return transfer_labels(flow, shape.labels)
