"""Registry of the methods ``geocorr.load`` knows: name -> "module:factory".

Each factory is ``load(**conf) -> model`` where the model offers ``features(images)`` (if it has
reusable dense features) and ``match(img0, img1, points)``.
"""
from __future__ import annotations

from importlib import import_module

METHODS: dict[str, str] = {
    "dinov2": "geocorr.methods.dinov2:load",
    "geco": "geocorr.methods.geco:load",
    "geoaware": "geocorr.methods.geoaware:load",
    "semalign3d": "geocorr.methods.semalign3d:load",
    "cyclecorr": "geocorr.methods.cyclecorr:load",
}


def load(name: str, **conf):
    """Build the method ``name`` (see :data:`METHODS`) with options ``conf``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    module, factory = METHODS[name].split(":")
    return getattr(import_module(module), factory)(**conf)
