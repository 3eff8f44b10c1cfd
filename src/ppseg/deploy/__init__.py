"""Deployment without torch: run ``ppseg export``'s ONNX models with ONNX Runtime.

Needs only numpy, onnxruntime, OpenCV and Pillow (``pip install "ppseg[deploy]"``)::

    from ppseg.deploy import Predictor
    labels = Predictor("export/model.onnx").predict("photo.jpg")

    from ppseg.deploy import InteractivePredictor      # an exported click model
    mask = InteractivePredictor("export_click/model.onnx").session("photo.jpg").click(120, 200) > 0.5
"""

from __future__ import annotations

from .interactive import ClickSidecar, InteractivePredictor, OnnxClickBackend, read_click_sidecar
from .predictor import IMAGE_SUFFIXES, Predictor, list_images
from .sidecar import OUTPUT_OPS, Sidecar, read_sidecar

__all__ = ["Predictor", "Sidecar", "read_sidecar", "OUTPUT_OPS", "IMAGE_SUFFIXES", "list_images",
           "InteractivePredictor", "OnnxClickBackend", "ClickSidecar", "read_click_sidecar"]
