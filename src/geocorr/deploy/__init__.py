"""Deployment: compute dtypes, batches with per-item errors, ONNX export and its runtime.

The ONNX parts import ``onnx`` / ``onnxruntime`` only when used (``pip install geocorr[export]``).
"""
from .batch import BatchFeatures, features_per_item
from .onnx import OnnxMatcher, export_onnx
from .precision import check_dtype

__all__ = ["BatchFeatures", "OnnxMatcher", "check_dtype", "export_onnx", "features_per_item"]
