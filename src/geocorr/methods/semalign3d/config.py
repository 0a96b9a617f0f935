"""Per-category alignment hyper-parameters (paper supplementary Tab. 5).

:class:`~.alignment.AlignConfig` defaults are the "other" column; this table lists what differs
per SPair-71k category. Timesteps are fractions of the 1000 published steps; every σ is half of
Tab. 5's number (see the σ note of :class:`~.alignment.AlignConfig`).
"""
from __future__ import annotations

import dataclasses

from .alignment import AlignConfig

CATEGORY_PRESETS: dict[str, dict] = {
    "bottle": {
        "sigma_sparse": ((0.0, 0.3, 0.5, 0.7), (0.5, 0.15, 0.15, 0.025)),
        "w_sparse": ((0.0, 0.5, 0.7, 1.0), (0.0, 0.0, 1.0, 10.0)),
        "w_background": ((0.0, 0.7, 0.9, 1.0), (0.0, 0.0, 1.0, 20.0)),
        "flat": True,
        "sigma_inference": 0.015,
    },
    "tvmonitor": {"flat": True, "sigma_inference": 0.005},
    "chair": {"sigma_inference": 0.005},
    "aeroplane": {"sigma_inference": 0.015},
    "bicycle": {"sigma_inference": 0.015},
}


def align_config(category: str | None = None, **overrides) -> AlignConfig:
    """The alignment settings of ``category`` (defaults for unknown ones), with ``overrides`` on top."""
    valid = {f.name for f in dataclasses.fields(AlignConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown alignment option(s) {unknown}; valid: {', '.join(sorted(valid))}")
    return AlignConfig(**{**CATEGORY_PRESETS.get(category or "", {}), **overrides})
