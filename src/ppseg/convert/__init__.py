"""Checkpoint conversion: Paddle (and mmseg) weights -> ppseg state dicts."""

from __future__ import annotations

from .api import CONVERTER_OPTIONS, ConverterOptions, ConvertReport, convert_checkpoint, load_pretrained
from .mmseg import mmseg_to_paddle, read_mmseg
from .paddle_keys import ConvertedState, paddle_to_torch_state
from .pdparams import read_pdparams

__all__ = ["ConvertedState", "paddle_to_torch_state", "convert_checkpoint", "load_pretrained", "ConvertReport",
           "ConverterOptions", "CONVERTER_OPTIONS", "read_pdparams", "read_mmseg", "mmseg_to_paddle"]
