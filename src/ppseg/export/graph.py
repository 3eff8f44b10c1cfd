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
  ``ArgMax``, ``Unique``, ``GatherElements``, ``Resize``; no loop), resized straight
  to ``output_size``.

Speed on ONNX Runtime's CPU provider decides the shapes of the tail: the class
maps are resized and reduced **channels last** (one ``Resize`` over axes 1-2 of an
NHWC tensor, then ``ArgMax`` over the contiguous last axis: 2-4x and ~10x faster
than over axis 1), look-ups are ``GatherElements`` (ORT's ``Gather`` copies element
by element, ~8x slower here), and raw bytes are normalised by one
``DequantizeLinear``. Models with ``forward_lowres`` export ``argmax`` the same way.

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
from ..models.layers import first_output

__all__ = ["ExportGraph", "resize_nhwc"]


class _ResizeNHWC(torch.autograd.Function):
    """Bilinear resize of a channels-last tensor, exported as one ONNX ``Resize`` on that tensor.

    ONNX Runtime's CPU ``Resize`` has a channels-last bilinear kernel (scales 1 on the
    first and last axes) that is ~2-4x faster than its NCHW one for tens of channels,
    and an ``ArgMax`` over the contiguous last axis is ~10x faster than over axis 1.
    torch's ``F.interpolate`` cannot say "resize axes 1 and 2", hence this function:
    eager it permutes around ``F.interpolate`` (same numbers), exported it is a single
    ``Resize(x, sizes=[B, H, W, C])`` with half-pixel coordinates.
    """

    @staticmethod
    def forward(ctx, x: Tensor, size: Tensor) -> Tensor:  # type: ignore[override]
        hw = (int(size[0]), int(size[1]))
        out = F.interpolate(x.permute(0, 3, 1, 2), size=hw, mode="bilinear", align_corners=False)
        return out.permute(0, 2, 3, 1)

    @staticmethod
    def symbolic(g, x, size):  # type: ignore[no-untyped-def]
        def const(values: list[int]):  # noqa: ANN202
            return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))

        shape = g.op("Shape", x)
        batch = g.op("Slice", shape, const([0]), const([1]), const([0]))
        channels = g.op("Slice", shape, const([3]), const([4]), const([0]))
        sizes = g.op("Concat", batch, g.op("Cast", size, to_i=7), channels, axis_i=0)  # 7 = INT64
        empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", x, empty, empty, sizes, coordinate_transformation_mode_s="half_pixel",
                    mode_s="linear", nearest_mode_s="floor", cubic_coeff_a_f=-0.75)


class _NormalizeBytes(torch.autograd.Function):
    """``(x - mean) / std`` of a uint8 NCHW tensor, exported as ``DequantizeLinear`` (+ one ``Add``).

    With ``zp = round(mean)`` (an integer, so ``x - zp`` is exact) the result is
    ``(x - zp) * (1 / std) + (zp - mean) / std``: ONNX Runtime's ``DequantizeLinear`` does the
    cast, the subtraction and the scaling in one vectorised pass (the ``Add`` disappears when
    every mean is an integer). It equals the plain formula to float32 rounding.
    """

    @staticmethod
    def forward(ctx, x: Tensor, zero_point: Tensor, scale: Tensor, offset: Tensor) -> Tensor:  # type: ignore[override]
        shape = (1, -1, 1, 1)
        y = (x.float() - zero_point.float().view(shape)) * scale.view(shape)
        return y + offset.view(shape) if bool(offset.any()) else y

    @staticmethod
    def symbolic(g, x, zero_point, scale, offset):  # type: ignore[no-untyped-def]
        y = g.op("DequantizeLinear", x, scale, zero_point, axis_i=1)
        const = offset.node()
        if const.kind() == "onnx::Constant" and not bool(const.t("value").any()):
            return y
        return g.op("Add", y, g.op("Unsqueeze", offset, g.op("Constant", value_t=torch.tensor([0, 2, 3]))))


def resize_nhwc(x: Tensor, size: Tensor) -> Tensor:
    """Bilinear (``align_corners=False``) resize of ``x`` [B, h, w, C] to [B, H, W, C], ``size`` = int64 (H, W)."""
    return _ResizeNHWC.apply(x, size)


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
        # uint8 input: (x - mean) / std == (x - zp) / std + (zp - mean) / std with an integer zero point
        zp = torch.tensor([min(255, max(0, round(float(m)))) for m in mean], dtype=torch.uint8)
        self.register_buffer("zero_point", zp, persistent=False)
        self.register_buffer("scale", 1.0 / self.std.view(3), persistent=False)
        self.register_buffer("offset", (zp.float() - self.mean.view(3)) / self.std.view(3), persistent=False)

    @property
    def takes_output_size(self) -> bool:
        return self.output_op != "none"

    def _logits(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return first_output(out)

    def _lowres(self, x: Tensor) -> Tensor:
        low = self.model.forward_lowres(x)
        return first_output(low)

    def forward(self, image: Tensor, output_size: Tensor | None = None) -> Tensor:
        x = image
        if self.uint8_input:  # transpose the bytes (4x less to move than floats), then cast and normalise
            x = _NormalizeBytes.apply(x.permute(0, 3, 1, 2), self.zero_point, self.scale, self.offset)
        if self.output_op == "none":
            return self._logits(x)
        assert output_size is not None
        if self.output_op == "vim":
            # Channels last straight after the network (ORT folds this transpose into its last layout
            # reorder), then pick the K classes: ORT's Resize and ArgMax are fastest over the last axis.
            # Both look-ups are torch.gather (ONNX GatherElements): ORT's Gather copies element by
            # element and is ~8x slower on these shapes.
            low = self._lowres(x)
            labelset = torch.unique(low.argmax(dim=1))  # sorted; shared by the batch, as the reference
            low = low.permute(0, 2, 3, 1)  # [B, h, w, C]
            k = labelset.numel()
            picked = torch.gather(low, 3, labelset.view(1, 1, 1, k).expand(low.shape[0], low.shape[1], low.shape[2], k))
            index = resize_nhwc(picked, output_size).argmax(dim=3)  # [B, H, W], into the label set
            return torch.gather(labelset.view(1, k), 1, index.reshape(1, -1)).view(index.shape)
        if self.output_op == "argmax" and callable(getattr(self.model, "forward_lowres", None)):
            # the model's forward is a bilinear resize of forward_lowres to the input size: the same two
            # resizes as below, channels last (ORT's fast Resize and ArgMax), no full-size transpose
            low = self._lowres(x).permute(0, 2, 3, 1)
            logits = resize_nhwc(resize_nhwc(low, torch._shape_as_tensor(x)[2:]), output_size)
            return logits.argmax(dim=3)
        size = (output_size[0], output_size[1])
        logits = F.interpolate(self._logits(x), size=size, mode="bilinear", align_corners=False)
        return logits.softmax(dim=1) if self.output_op == "softmax" else logits.argmax(dim=1)
