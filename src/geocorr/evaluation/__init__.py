"""Benchmark evaluation: PCK and the geometric metrics, protocols, the streaming runner, reports.

The names below are imported on first use (PEP 562), so importing one light module of this package
(e.g. :mod:`.protocols` for a command's ``--help``) does not import torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "FeatureCache": "cache", "model_fingerprint": "cache",
    "compute_metrics": "metrics",
    "correct_keypoints": "pck", "pck": "pck", "pck_per_category": "pck", "reference_size": "pck",
    "PairPrediction": "predictions", "Predictions": "predictions",
    "PRESETS": "protocols", "Protocol": "protocols", "get_protocol": "protocols",
    "evaluate": "runner", "evaluate_sharded": "runner", "shard": "runner",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'geocorr.evaluation' has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
