"""The module that ``ppseg export`` traces: input adapter -> network -> output op.

``ExportGraph`` wraps a ppseg model (eval mode) so that the ONNX graph is exactly
what deployment needs and nothing else:

* input: ``image`` float32 NCHW, already normalised (``(pixel - mean) / std``), or
  with ``uint8_input`` raw RGB bytes NHWC (the cast, the layout change and the
  normalisation are folded into the graph);
* output, by ``output_op``: ``none`` -> logits at the input size; ``softmax`` ->
  probabilities resized to ``output_size``; ``argmax`` -> labels of the logits
  resized to ``output_size`` (what ``ppseg predict`` does); ``vim`` -> labels by
  PaddleSeg's VIM from the model's low-resolution logits (ONNX ops only:
  ``ArgMax``, ``Unique``, ``Gather``, ``Resize``; no Python loop), resized straight
  to ``output_size``.

``output_size`` (int64 ``[2]`` = ``(H, W)``) is a second graph input for the three
ops that return full-size maps, so labels come out at the original image size in
one bilinear step, as in ``ppseg predict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["ExportGraph"]


class ExportGraph(nn.Module):
    """Input adapter + model + output op, ready for ``torch.onnx.export``.

    Args:
        model: a ppseg model (eval-mode ``forward`` returns logits at input size;
            ``vim`` also needs ``forward_lowres``).
        mean: per-channel mean on the 0..255 scale (used only with ``uint8_input``).
        std: per-channel std on the 0..255 scale (used only with ``uint8_input``).
        output_op: ``none``, ``softmax``, ``argmax`` or ``vim``.
        uint8_input: take raw RGB bytes NHWC instead of normalised float NCHW.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], output_op: str,
                 uint8_input: bool = False) -> None:
        super().__init__()
        if output_op not in ("none", "softmax", "argmax", "vim"):
            raise ConfigError(f"output op must be none, softmax, argmax or vim, got {output_op!r}")
        if output_op == "vim" and not callable(getattr(model, "forward_lowres", None)):
            raise ConfigError(f"output op 'vim' needs a model with low-resolution logits (forward_lowres), "
                              f"e.g. pp_mobileseg_*; {type(model).__name__} has none: use --output-op argmax")
        self.model = model.eval()
        self.output_op = output_op
        self.uint8_input = uint8_input
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, 3, 1, 1), persistent=False)

    @property
    def takes_output_size(self) -> bool:
        return self.output_op != "none"

    def _logits(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (list, tuple)) else out

    def forward(self, image: Tensor, output_size: Tensor | None = None) -> Tensor:
        x = image
        if self.uint8_input:
            x = (x.permute(0, 3, 1, 2).float() - self.mean) / self.std
        if self.output_op == "none":
            return self._logits(x)
        assert output_size is not None
        size = (output_size[0], output_size[1])
        if self.output_op == "vim":
            low = self.model.forward_lowres(x)
            low = low[0] if isinstance(low, (list, tuple)) else low
            labelset = torch.unique(low.argmax(dim=1))  # sorted; shared by the batch, as the reference
            picked = low.index_select(1, labelset)
            up = F.interpolate(picked, size=size, mode="bilinear", align_corners=False)
            return labelset[up.argmax(dim=1)]
        logits = F.interpolate(self._logits(x), size=size, mode="bilinear", align_corners=False)
        return logits.softmax(dim=1) if self.output_op == "softmax" else logits.argmax(dim=1)
