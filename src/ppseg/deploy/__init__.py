"""Deployment without torch: run ``ppseg export``'s ONNX models with ONNX Runtime.

Needs only numpy, onnxruntime, OpenCV and Pillow (``pip install "ppseg[deploy]"``)::

    from ppseg.deploy import Predictor
    labels = Predictor("export/model.onnx").predict("photo.jpg")
"""

from __future__ import annotations

from .predictor import IMAGE_SUFFIXES, Predictor, list_images
from .sidecar import OUTPUT_OPS, Sidecar, read_sidecar

__all__ = ["Predictor", "Sidecar", "read_sidecar", "OUTPUT_OPS", "IMAGE_SUFFIXES", "list_images"]
