"""geocorr: geometry-aware semantic correspondence.

>>> import geocorr
>>> model = geocorr.load("geco")                      # DINOv2-B/14 + the released GECO LoRA
>>> matches = model.match(img0, img1, points=[[120, 80]])
>>> matches.points, matches.scores                     # (N, 2) target pixels, (N,) similarities

Importing geocorr is cheap (no torch); ``load_image`` is imported on first use.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .methods import METHODS, load

try:
    __version__ = version("geocorr")  # one source: pyproject.toml
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "unknown"
__all__ = ["METHODS", "__version__", "load", "load_image"]


def __getattr__(name: str) -> Any:
    if name == "load_image":
        from .images import load_image

        return load_image
    raise AttributeError(f"module 'geocorr' has no attribute {name!r}")
