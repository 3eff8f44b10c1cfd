"""ppseg: fast segmentation in PyTorch (PaddleSeg's PP models, training, ONNX deployment).

The heavy parts (torch) are imported lazily, so ``ppseg.deploy`` and
``ppseg.errors`` work in an environment without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, PPSegError

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "load_segmentor", "load_pretrained", "Segmentor",
           "PPSegError", "ConfigError", "DataError"]

if TYPE_CHECKING:  # pragma: no cover
    from .convert.api import load_pretrained
    from .semantic.segmentor import load_segmentor
    from .registry import create_model, list_models
    from .semantic.segmentor import Segmentor


def __getattr__(name: str) -> Any:
    if name in ("create_model", "list_models"):
        from . import registry

        return getattr(registry, name)
    if name == "load_segmentor":
        from .semantic.segmentor import load_segmentor

        return load_segmentor
    if name == "load_pretrained":
        from .convert.api import load_pretrained

        return load_pretrained
    if name == "Segmentor":
        from .semantic.segmentor import Segmentor

        return Segmentor
    raise AttributeError(f"module 'ppseg' has no attribute {name!r}")
