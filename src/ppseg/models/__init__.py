"""Segmentation models and backbones (no registry side effects)."""

from __future__ import annotations

from ppseg.models.layers import (
    ConvBNAct,
    PaddleHardsigmoid,
    SqueezeExcite,
    get_activation,
    make_divisible,
)
from ppseg.models.lraspp import LRASPP, lraspp_mobilenetv3_large, lraspp_mobilenetv3_small
from ppseg.models.mobilenetv3 import MobileNetV3, ResidualUnit

__all__ = [
    "LRASPP",
    "ConvBNAct",
    "MobileNetV3",
    "PaddleHardsigmoid",
    "ResidualUnit",
    "SqueezeExcite",
    "get_activation",
    "lraspp_mobilenetv3_large",
    "lraspp_mobilenetv3_small",
    "make_divisible",
]
