"""ONNX export: ``ppseg export``, :func:`export_onnx` (semantic models) and :func:`export_click_onnx`
(click models) (needs torch, onnx, onnxruntime).

Deployment of the result needs neither torch nor this package: see :mod:`ppseg.deploy`.
"""

from __future__ import annotations

from .graph import ExportGraph
from .interactive import ClickExportResult, export_click_onnx
from .onnx import ExportResult, export_onnx

__all__ = ["ClickExportResult", "ExportGraph", "ExportResult", "export_click_onnx", "export_onnx"]
