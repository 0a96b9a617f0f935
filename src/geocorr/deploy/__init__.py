"""Deployment: compute dtypes, batches with per-item errors, ONNX export and its runtime.

The ONNX parts import ``onnx`` / ``onnxruntime`` only when used (``pip install geocorr[export]``).
"""
from .precision import check_dtype

__all__ = ["check_dtype"]
