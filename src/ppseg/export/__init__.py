"""ONNX export: ``ppseg export`` and :func:`export_onnx` (needs torch, onnx, onnxruntime).

Deployment of the result needs neither torch nor this package: see :mod:`ppseg.deploy`.
"""

from __future__ import annotations

from .graph import ExportGraph
from .onnx import ExportResult, export_onnx

__all__ = ["ExportGraph", "ExportResult", "export_onnx"]
