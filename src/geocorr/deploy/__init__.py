"""Deployment: batches with per-item errors, ONNX export and its runtime.

The ONNX parts import ``onnx`` / ``onnxruntime`` only when used (``pip install geocorr[export]``).
Which dtypes a device runs is a backbone question: :func:`geocorr.backbones.precision.check_dtype`.
"""
from .batch import BatchFeatures, features_per_item
from .onnx import OnnxMatcher, export_onnx

__all__ = ["BatchFeatures", "OnnxMatcher", "export_onnx", "features_per_item"]
