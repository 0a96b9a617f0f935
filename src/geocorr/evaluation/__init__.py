"""Benchmark evaluation: PCK and the geometric metrics, protocols, the streaming runner, reports."""
from .cache import FeatureCache, model_fingerprint
from .metrics import compute_metrics
from .pck import correct_keypoints, pck, pck_per_category, reference_size
from .predictions import PairPrediction, Predictions
from .protocols import PRESETS, Protocol, get_protocol
from .runner import evaluate, evaluate_sharded, shard

__all__ = [
    "PRESETS",
    "FeatureCache",
    "PairPrediction",
    "Predictions",
    "Protocol",
    "compute_metrics",
    "correct_keypoints",
    "evaluate",
    "evaluate_sharded",
    "get_protocol",
    "model_fingerprint",
    "pck",
    "pck_per_category",
    "reference_size",
    "shard",
]
