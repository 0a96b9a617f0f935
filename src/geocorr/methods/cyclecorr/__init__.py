"""3D-guided cycle consistency (Zhou et al., CVPR 2016): dense flow + matchability from CAD renders.

``geocorr.load("cyclecorr", weights=...)`` gives a :class:`CycleCorr` matcher. Training pieces:
:mod:`.mesh` and :mod:`.render` (CAD models, z-buffer renders, exact ground-truth flow),
:mod:`.quartets` (HOG-nearest models, quartets ⟨s1, s2, r1, r2⟩), :mod:`.objectives`
(initialisation and cycle losses), :mod:`.parts` (matchable pixels, segmentation transfer).
The training recipe is :mod:`geocorr.training.recipes.cyclecorr`, the paper's evaluations
:mod:`geocorr.evaluation.cyclecorr`.
"""
from __future__ import annotations

from .camera import Camera, Viewpoint
from .mesh import Mesh, box, load_mesh, toy_car
from .model import CycleCorr
from .network import CycleCorrNet, NetworkConfig
from .render import Render, ground_truth_flow, render

__all__ = [
    "Camera",
    "CycleCorr",
    "CycleCorrNet",
    "Mesh",
    "NetworkConfig",
    "Render",
    "Viewpoint",
    "box",
    "ground_truth_flow",
    "load",
    "load_mesh",
    "render",
    "toy_car",
]


def load(device: str = "cpu", **conf) -> CycleCorr:
    """The cycle-consistency matcher; ``conf``: options of :attr:`CycleCorr.default_conf`."""
    return CycleCorr(**conf).to(device).eval()
