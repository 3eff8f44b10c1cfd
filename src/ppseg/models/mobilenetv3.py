"""MobileNetV3 backbone laid out like PaddleSeg's ``MobileNetV3_large_x1_0``.

Structure (PaddleSeg key names, BN statistics renamed to PyTorch's):

* ``conv``: stem, 3x3 stride-2 conv + BN + Hardswish (``conv.conv.weight``, ``conv.bn.*``);
* ``blocks.{i}``: :class:`ResidualUnit` s (``expand_conv``, ``bottleneck_conv``,
  optional ``mid_se``, ``linear_conv``).

There is no final 1x1 (960-channel) conv and no classifier. ``forward`` returns the
outputs of the blocks listed in ``out_indices``.

``output_stride`` (8, 16 or 32) replaces the strides that would exceed it by dilation
(DeepLab convention: the block that would have downsampled keeps the current dilation,
later blocks use the multiplied one). 32 is the reference network.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import ConvBNAct, SqueezeExcite, init_conv_bn, make_divisible

__all__ = ["BlockConfig", "MobileNetV3", "ResidualUnit", "MOBILENETV3_CONFIGS"]


class BlockConfig(NamedTuple):
    """One residual unit of a MobileNetV3 config table."""

    kernel_size: int
    expand_channels: int
    out_channels: int
    use_se: bool
    act: str
    stride: int


_HS = "hardswish"

#: Block tables and default output block indices per variant.
MOBILENETV3_CONFIGS: dict[str, tuple[tuple[BlockConfig, ...], tuple[int, ...]]] = {
    "large": (
        (
            BlockConfig(3, 16, 16, False, "relu", 1),
            BlockConfig(3, 64, 24, False, "relu", 2),
            BlockConfig(3, 72, 24, False, "relu", 1),  # out 0: 1/4
            BlockConfig(5, 72, 40, True, "relu", 2),
            BlockConfig(5, 120, 40, True, "relu", 1),
            BlockConfig(5, 120, 40, True, "relu", 1),  # out 1: 1/8
            BlockConfig(3, 240, 80, False, _HS, 2),
            BlockConfig(3, 200, 80, False, _HS, 1),
            BlockConfig(3, 184, 80, False, _HS, 1),
            BlockConfig(3, 184, 80, False, _HS, 1),
            BlockConfig(3, 480, 112, True, _HS, 1),
            BlockConfig(3, 672, 112, True, _HS, 1),  # out 2: 1/16
            BlockConfig(5, 672, 160, True, _HS, 2),
            BlockConfig(5, 960, 160, True, _HS, 1),
            BlockConfig(5, 960, 160, True, _HS, 1),  # out 3: 1/32
        ),
        (2, 5, 11, 14),
    ),
    "small": (
        (
            BlockConfig(3, 16, 16, True, "relu", 2),  # out 0: 1/4
            BlockConfig(3, 72, 24, False, "relu", 2),
            BlockConfig(3, 88, 24, False, "relu", 1),  # out 1: 1/8
            BlockConfig(5, 96, 40, True, _HS, 2),
            BlockConfig(5, 240, 40, True, _HS, 1),
            BlockConfig(5, 240, 40, True, _HS, 1),
            BlockConfig(5, 120, 48, True, _HS, 1),
            BlockConfig(5, 144, 48, True, _HS, 1),  # out 2: 1/16
            BlockConfig(5, 288, 96, True, _HS, 2),
            BlockConfig(5, 576, 96, True, _HS, 1),
            BlockConfig(5, 576, 96, True, _HS, 1),  # out 3: 1/32
        ),
        (0, 2, 7, 10),
    ),
}


class ResidualUnit(nn.Module):
    """MobileNetV3 inverted residual ("ResidualUnit" in PaddleSeg).

    expand 1x1 ConvBN+act -> depthwise kxk ConvBN+act -> [SE] -> project 1x1 ConvBN,
    plus the input when ``stride == 1`` and ``in_channels == out_channels``. The expand
    conv exists even when ``mid_channels == in_channels`` (as in the reference).

    Args:
        in_channels: Input channels.
        mid_channels: Expanded (depthwise) channels.
        out_channels: Output channels.
        kernel_size: Depthwise kernel size.
        stride: Depthwise stride.
        use_se: Whether to insert squeeze-and-excitation (``mid_se``).
        act: Activation name of the expand and depthwise convs.
        dilation: Depthwise dilation.
        conv_name: Name of the conv inside each :class:`ConvBNAct` (``"conv"`` for
            MobileNetV3, ``"c"`` for PP-MobileSeg's StrideFormer).
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        use_se: bool = False,
        act: str | None = "relu",
        dilation: int = 1,
        conv_name: str = "conv",
    ) -> None:
        super().__init__()
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = ConvBNAct(
            in_channels, mid_channels, 1, act=act, conv_name=conv_name
        )
        self.bottleneck_conv = ConvBNAct(
            mid_channels,
            mid_channels,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=mid_channels,
            act=act,
            conv_name=conv_name,
        )
        self.mid_se: nn.Module = SqueezeExcite(mid_channels) if use_se else nn.Identity()
        self.linear_conv = ConvBNAct(mid_channels, out_channels, 1, act=None, conv_name=conv_name)

    def forward(self, x: Tensor) -> Tensor:
        """Run the unit."""
        y = self.linear_conv(self.mid_se(self.bottleneck_conv(self.expand_conv(x))))
        return x + y if self.use_shortcut else y


class MobileNetV3(nn.Module):
    """MobileNetV3 feature extractor (stem + residual units, no head).

    Args:
        variant: ``"large"`` (PaddleSeg ``MobileNetV3_large_x1_0`` at scale 1.0) or
            ``"small"`` (table of the MobileNetV3 paper, PaddleSeg unit layout).
        scale: Width multiplier (channels go through :func:`make_divisible`).
        out_indices: Indices of the blocks whose outputs are returned; default is the
            last block of each stride (large: ``(2, 5, 11, 14)``, small: ``(0, 2, 7, 10)``).
        in_channels: Input image channels.
        output_stride: 32 (reference), 16 or 8; strides beyond it become dilation.

    Attributes:
        out_channels: Channels of each returned feature.
        strides: Output stride of each returned feature.
    """

    def __init__(
        self,
        variant: Literal["large", "small"] = "large",
        scale: float = 1.0,
        out_indices: tuple[int, ...] | None = None,
        in_channels: int = 3,
        output_stride: Literal[8, 16, 32] = 32,
    ) -> None:
        super().__init__()
        if variant not in MOBILENETV3_CONFIGS:
            raise ConfigError(f"unknown MobileNetV3 variant {variant!r}; use 'large' or 'small'")
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 8:
            raise ConfigError(f"scale (the width multiplier) must be a number in (0, 8], got {scale!r}")
        table, default_out = MOBILENETV3_CONFIGS[variant]
        self.out_indices: tuple[int, ...] = tuple(
            default_out if out_indices is None else out_indices
        )
        if not self.out_indices or any(not 0 <= i < len(table) for i in self.out_indices):
            raise ConfigError(
                f"out_indices {self.out_indices} must be block indices in [0, {len(table) - 1}]"
            )
        self.variant = variant
        self.scale = scale

        stem_channels = make_divisible(16 * scale)
        self.conv = ConvBNAct(in_channels, stem_channels, 3, stride=2, act="hardswish")
        blocks: list[nn.Module] = []
        channels, stride, dilation = stem_channels, 2, 1
        block_channels: list[int] = []
        block_strides: list[int] = []
        for cfg in table:
            block_stride, block_dilation = cfg.stride, dilation
            if stride * cfg.stride > output_stride:
                dilation *= cfg.stride
                block_stride = 1
            else:
                stride *= cfg.stride
                block_dilation = dilation
            out_ch = make_divisible(scale * cfg.out_channels)
            blocks.append(
                ResidualUnit(
                    channels,
                    make_divisible(scale * cfg.expand_channels),
                    out_ch,
                    cfg.kernel_size,
                    stride=block_stride,
                    use_se=cfg.use_se,
                    act=cfg.act,
                    dilation=block_dilation,
                )
            )
            channels = out_ch
            block_channels.append(out_ch)
            block_strides.append(stride)
        self.blocks = nn.Sequential(*blocks)
        self.out_channels: list[int] = [block_channels[i] for i in self.out_indices]
        self.strides: list[int] = [block_strides[i] for i in self.out_indices]
        self._last_index = max(self.out_indices)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_out) convs with zero bias, BatchNorm weight 1 / bias 0."""
        init_conv_bn(self.modules())

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the features of the ``out_indices`` blocks, in index order."""
        return self.forward_blocks(self.conv(x))

    def forward_blocks(self, x: Tensor) -> list[Tensor]:
        """:meth:`forward` after the stem: ``x`` is the stem's output (a click model adds its
        click features to it first)."""
        feats: dict[int, Tensor] = {}
        for i, block in enumerate(self.blocks):
            if i > self._last_index:
                break
            x = block(x)
            if i in self.out_indices:
                feats[i] = x
        return [feats[i] for i in self.out_indices]
