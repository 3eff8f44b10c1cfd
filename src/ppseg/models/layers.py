"""Small shared building blocks: conv+BN+activation, Paddle-style hardsigmoid, SE, resize.

Module names follow PaddleSeg's state-dict layout so that converting a Paddle
checkpoint is a pure rename (BN ``_mean``/``_variance`` -> ``running_mean``/
``running_var``):

* :class:`ConvBNAct` owns ``<conv_name>`` (a ``Conv2d``) and ``bn``; the conv name is
  ``"conv"`` for PaddleSeg's MobileNetV3 and ``"c"`` for PP-MobileSeg's StrideFormer.
* :class:`SqueezeExcite` owns ``conv1`` and ``conv2`` (both with bias).

Activations carry no parameters, so they never appear in a state dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "BN_MOMENTUM",
    "LEAKY_RELU_SLOPE",
    "ConvBNAct",
    "PaddleConvBNAct",
    "PaddleHardsigmoid",
    "RESIZE_MODES",
    "ResizeMode",
    "SqueezeExcite",
    "backbone_features",
    "check_num_classes",
    "first_output",
    "output_list",
    "get_activation",
    "init_conv_bn",
    "init_head",
    "make_divisible",
    "paddle_resize",
    "resize",
]


def output_list(out: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """A model's output as a list: training mode returns ``[main, aux...]``, eval mode one tensor."""
    return list(out) if isinstance(out, (list, tuple)) else [out]


def first_output(out: Tensor | Sequence[Tensor]) -> Tensor:
    """The main output of a model that may return ``[main, aux...]``."""
    return out[0] if isinstance(out, (list, tuple)) else out


#: PyTorch BatchNorm momentum equivalent to Paddle's default ``momentum=0.9``.
BN_MOMENTUM: float = 0.1

#: Activation names accepted by :func:`get_activation` (``None`` means identity).
ACTIVATIONS: tuple[str, ...] = ("relu", "relu6", "hardswish", "hardsigmoid", "sigmoid")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``.

    The result is never below ``min_value`` (default ``divisor``) and is bumped up by
    one ``divisor`` when rounding down would lose more than 10 % of ``value``.

    Args:
        value: Requested (possibly fractional) channel count.
        divisor: Granularity of the result.
        min_value: Lower bound of the result; defaults to ``divisor``.

    Returns:
        The rounded channel count.
    """
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class PaddleHardsigmoid(nn.Module):
    """Hard sigmoid ``clip(slope * x + offset, 0, 1)`` as used by MobileNetV3's SE.

    Paddle's MobileNetV3 SE uses slope 0.2 and offset 0.5; PyTorch's
    :class:`torch.nn.Hardsigmoid` uses slope 1/6 and is therefore *not* equivalent.

    Args:
        slope: Multiplier of the input.
        offset: Added after the multiplication.
    """

    def __init__(self, slope: float = 0.2, offset: float = 0.5) -> None:
        super().__init__()
        self.slope = slope
        self.offset = offset

    def forward(self, x: Tensor) -> Tensor:
        """Apply the hard sigmoid element-wise."""
        return torch.clamp(x * self.slope + self.offset, 0.0, 1.0)

    def extra_repr(self) -> str:
        """Show the slope and offset in ``repr``."""
        return f"slope={self.slope}, offset={self.offset}"


def get_activation(name: str | None) -> nn.Module:
    """Build an activation module from an explicit name.

    Args:
        name: One of ``"relu"``, ``"relu6"``, ``"hardswish"``, ``"hardsigmoid"``
            (Paddle-SE flavour: slope 0.2, offset 0.5), ``"sigmoid"`` or ``None``
            (identity).

    Returns:
        A parameter-free activation module.

    Raises:
        ConfigError: If ``name`` is not a known activation.
    """
    if name is None:
        return nn.Identity()
    key = name.lower()
    if key == "relu":
        return nn.ReLU(inplace=True)
    if key == "relu6":
        return nn.ReLU6(inplace=True)
    if key == "hardswish":
        return nn.Hardswish()
    if key == "hardsigmoid":
        return PaddleHardsigmoid()
    if key == "sigmoid":
        return nn.Sigmoid()
    raise ConfigError(f"unknown activation {name!r}; expected one of {ACTIVATIONS} or None")


class ConvBNAct(nn.Module):
    """``Conv2d`` (no bias by default) + ``BatchNorm2d`` + optional activation.

    The conv sub-module is registered under ``conv_name`` so that both PaddleSeg key
    layouts (``*.conv.weight`` and ``*.c.weight``) can be reproduced by one class.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Convolution stride.
        padding: Symmetric padding; ``None`` means ``dilation * (kernel_size - 1) // 2``.
        dilation: Convolution dilation.
        groups: Convolution groups (``in_channels`` for depthwise).
        bias: Whether the conv has a bias.
        act: Activation name for :func:`get_activation` (``None``: no activation).
        conv_name: Attribute / state-dict name of the conv sub-module.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        act: str | None = None,
        conv_name: str = "conv",
    ) -> None:
        super().__init__()
        if conv_name in ("bn", "act"):
            raise ConfigError(f"conv_name {conv_name!r} clashes with another sub-module")
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.conv_name = conv_name
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.add_module(conv_name, conv)
        self.bn = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.act = get_activation(act)

    @property
    def conv_layer(self) -> nn.Conv2d:
        """The convolution, whatever its registered name."""
        conv = self._modules[self.conv_name]
        assert isinstance(conv, nn.Conv2d)
        return conv

    def forward(self, x: Tensor) -> Tensor:
        """Convolve, normalise and activate."""
        return self.act(self.bn(self._modules[self.conv_name](x)))  # type: ignore[misc]


#: Slope of PaddleSeg's ``Activation("leakyrelu")`` (Paddle's ``nn.LeakyReLU`` default).
LEAKY_RELU_SLOPE: float = 0.01


class PaddleConvBNAct(nn.Module):
    """Conv2d + BatchNorm2d + optional activation, laid out like PaddleSeg's ``layers.ConvBN``,
    ``ConvBNReLU`` and ``ConvBNAct``.

    The sub-module names ``_conv`` and ``_batch_norm`` are PaddleSeg's state-dict names
    (``..._conv.weight``, ``..._batch_norm._mean``); they are kept so that a checkpoint
    converts by renaming BN statistics only. Used by PP-LiteSeg and PP-HumanSeg.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Convolution stride.
        padding: Symmetric padding; ``None`` means ``kernel_size // 2`` (Paddle's ``'same'``
            at stride 1).
        groups: Convolution groups (``in_channels`` for depthwise).
        bias: Whether the conv has a bias.
        act: ``"relu"``, ``"leaky_relu"`` (slope :data:`LEAKY_RELU_SLOPE`) or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        bias: bool = False,
        act: str | None = None,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = kernel_size // 2
        self._conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups, bias=bias
        )
        self._batch_norm = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.act = nn.LeakyReLU(LEAKY_RELU_SLOPE) if act == "leaky_relu" else get_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, H, W]`` -> ``[N, out, H', W']``: convolve, normalise and activate."""
        return self.act(self._batch_norm(self._conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as in PaddleSeg's MobileNetV3 (``mid_se``).

    Global average pool -> 1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> gate ->
    multiply with the input. The squeeze width is ``channels // reduction`` (plain
    integer division, as the reference does), and the gate defaults to
    :class:`PaddleHardsigmoid` (slope 0.2, offset 0.5).

    Args:
        channels: Input / output channels.
        reduction: Channel reduction of the squeeze conv.
        gate: Gate activation name for :func:`get_activation`.
    """

    def __init__(self, channels: int, reduction: int = 4, gate: str = "hardsigmoid") -> None:
        super().__init__()
        squeeze = max(1, channels // reduction)
        self.conv1 = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(squeeze, channels, 1, bias=True)
        self.gate = get_activation(gate)

    def forward(self, x: Tensor) -> Tensor:
        """Re-weight the channels of ``x``."""
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.gate(self.conv2(self.relu(self.conv1(scale))))
        return x * scale


def backbone_features(backbone: nn.Module) -> tuple[list[int], list[int]]:
    """``(out_channels, strides)`` of a backbone, the seam every segmentation model builds on.

    Raises:
        ConfigError: the backbone does not expose two non-empty lists of the same length.
    """
    channels: list[int] = list(getattr(backbone, "out_channels", []))
    strides: list[int] = list(getattr(backbone, "strides", []))
    if not channels or len(channels) != len(strides):
        raise ConfigError(f"backbone {type(backbone).__name__} must expose matching 'out_channels' and 'strides' lists")
    return channels, strides


def init_conv_bn(modules: Iterable[nn.Module]) -> None:
    """Kaiming-normal (fan_out) convs with zero bias; BatchNorm weight 1, bias 0."""
    for m in modules:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_head(model: nn.Module, classifiers: Iterable[nn.Conv2d]) -> None:
    """Initialise everything of a segmentation model except its ``backbone`` (which keeps its own init).

    Convs Kaiming-normal (fan_out) with zero bias and BatchNorms (1, 0), as :func:`init_conv_bn`,
    in module order; then the ``classifiers``' weights N(0, 0.01), so that the initial logits are
    close to zero (loss about ``ln C``) and the first steps are calm.
    """
    init_conv_bn(m for name, m in model.named_modules() if not name.startswith("backbone"))
    for conv in classifiers:
        nn.init.normal_(conv.weight, std=0.01)


def check_num_classes(num_classes: int) -> int:
    """``num_classes`` if it is >= 1.

    Raises:
        ConfigError: ``num_classes < 1``.
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    return num_classes


#: Interpolation modes of :func:`resize`.
ResizeMode = Literal["bilinear", "nearest"]
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)


def resize(x: Tensor, size: Sequence[int] | torch.Size, mode: ResizeMode = "bilinear",
           align_corners: bool = False) -> Tensor:
    """Resize ``x [N, C, H, W]`` to ``size`` (``(h, w)``, typically ``other.shape[-2:]``).

    ``size`` is passed to :func:`torch.nn.functional.interpolate` as given, so a size read
    from ``tensor.shape[-2:]`` stays dynamic in an ONNX export.

    Args:
        x: Input ``[N, C, H, W]``.
        size: Output height and width.
        mode: ``"bilinear"`` or ``"nearest"``.
        align_corners: Bilinear only: ``False`` (default) uses half-pixel centres, as
            Paddle's ``align_corners=False``.

    Raises:
        ConfigError: Unknown ``mode``.
    """
    if mode == "bilinear":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    raise ConfigError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")


def paddle_resize(x: Tensor, size: Sequence[int] | torch.Size) -> Tensor:
    """Bilinear resize (``align_corners=False``) exactly as Paddle computes it.

    Identical to :func:`resize` except for an output side of length 1:
    Paddle then uses a source ratio of 0 and samples the **first** row / column, where PyTorch
    samples the centre (the mean of the two middle rows). It matters where PP-MattingV2's DPP resizes
    its branches back to the 1/64 map: a side of that map is 1 for every input side below 128 px
    (the parity fixtures' 96 x 128 gives 1 x 2; without this rule alpha is off by 5.5e-4).

    Shapes:
        ``[N, C, H, W]`` -> ``[N, C, size[0], size[1]]``.
    """
    h, w = int(size[0]), int(size[1])
    if h == 1:
        x = x[..., :1, :]
    if w == 1:
        x = x[..., :1]
    return resize(x, (h, w))
