"""STDC backbones (Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation", 2021),
laid out like PaddleSeg's ``STDC1`` / ``STDC2`` (``STDCNet`` with base 64, 4 blocks per module,
"cat" fusion).

Structure (spec section 3.1), every module in one ``features`` sequence:

* ``features.0``: 3x3 stride-2 conv + BN + ReLU, 3 -> 32 (1/2);
* ``features.1``: 3x3 stride-2 conv + BN + ReLU, 32 -> 64 (1/4);
* three stages of :class:`CatBottleneck` modules (1/8, 1/16, 1/32; 256, 512, 1024
  channels); the first module of each stage halves the resolution.
  STDC1 has (2, 2, 2) modules per stage, STDC2 (4, 5, 3).

``forward`` returns all five resolutions ``[x2, x4, x8, x16, x32]``.

State-dict keys equal PaddleSeg's (``features.{i}.conv.weight``, ``features.{i}.bn.*``,
``features.{i}.conv_list.{j}.*``, ``features.{i}.avd_layer.{0,1}.*``) except BN
``_mean``/``_variance`` -> ``running_mean``/``running_var``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import BN_MOMENTUM, ConvBNAct, init_conv_bn

__all__ = ["CatBottleneck", "STDCNet", "STDC_STAGE_DEPTHS", "stdc1", "stdc2"]

#: Number of :class:`CatBottleneck` modules in the 1/8, 1/16 and 1/32 stages.
STDC_STAGE_DEPTHS: dict[str, tuple[int, int, int]] = {"stdc1": (2, 2, 2), "stdc2": (4, 5, 3)}


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    """STDC's ``ConvBNRelu``: conv (no bias, padding ``k // 2``) + BN + ReLU; keys ``conv``/``bn``."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride=stride, act="relu")


class CatBottleneck(nn.Module):
    """STDC module: a chain of convs whose outputs are concatenated (no residual add).

    With ``block_num = 4`` and ``out`` output channels::

        o1 = conv_list[0](x)               1x1, in -> out/2
        o2 = conv_list[1](avd_layer(o1))   3x3, out/2 -> out/4   (avd_layer only if stride 2)
        o3 = conv_list[2](o2)              3x3, out/4 -> out/8
        o4 = conv_list[3](o3)              3x3, out/8 -> out/8
        y  = concat[skip(o1) if stride 2 else o1, o2, o3, o4]     out channels

    For stride 2 the downsampling lives in ``avd_layer`` (depthwise 3x3 stride-2 conv + BN,
    no activation) and in ``skip`` (3x3 stride-2 average pool that does not count the
    zero padding, Paddle's ``exclusive=True``).

    Args:
        in_channels: Input channels.
        out_channels: Output channels (the sum of the concatenated branches).
        block_num: Number of convs in the chain (>= 2).
        stride: 1, or 2 to halve the resolution.

    Shapes:
        ``[N, in_channels, H, W]`` -> ``[N, out_channels, ceil(H / stride), ceil(W / stride)]``.
    """

    def __init__(self, in_channels: int, out_channels: int, block_num: int = 4, stride: int = 1) -> None:
        super().__init__()
        if block_num < 2:
            raise ConfigError(f"block_num must be >= 2, got {block_num}")
        if stride not in (1, 2):
            raise ConfigError(f"stride must be 1 or 2, got {stride}")
        if out_channels % 2 ** (block_num - 1):
            raise ConfigError(f"out_channels ({out_channels}) must be divisible by 2**(block_num - 1)")
        self.stride = stride
        # Channel plan: out/2, then out/4, out/8, ... and the last conv repeats its input width,
        # so that the widths sum to out_channels (for block_num 2: out/2 + out/2).
        widths = [out_channels // 2 ** min(i + 1, block_num - 1) for i in range(block_num)]
        self.conv_list = nn.ModuleList()  # registered first: PaddleSeg lists it before avd_layer
        half = out_channels // 2
        if stride == 2:
            self.avd_layer = nn.Sequential(
                nn.Conv2d(half, half, 3, stride=2, padding=1, groups=half, bias=False),
                nn.BatchNorm2d(half, momentum=BN_MOMENTUM),
            )
            self.skip = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.conv_list.append(_conv_bn_relu(in_channels, widths[0], 1))
        for i in range(1, block_num):
            self.conv_list.append(_conv_bn_relu(widths[i - 1], widths[i], 3))

    def forward(self, x: Tensor) -> Tensor:
        """Run the conv chain and concatenate its outputs along the channels."""
        first = self.conv_list[0](x)
        out = self.avd_layer(first) if self.stride == 2 else first
        branches = []
        for conv in self.conv_list[1:]:
            out = conv(out)
            branches.append(out)
        if self.stride == 2:
            first = self.skip(first)
        return torch.cat([first, *branches], dim=1)


class STDCNet(nn.Module):
    """STDC backbone ("cat" variant), returning the features at strides 2, 4, 8, 16, 32.

    Args:
        stage_depths: Number of :class:`CatBottleneck` modules in the 1/8, 1/16 and 1/32
            stages, e.g. ``(2, 2, 2)`` for STDC1 and ``(4, 5, 3)`` for STDC2.
        base_channels: Width of the 1/4 feature; the stem has half of it and the
            stages 4x, 8x and 16x.
        block_num: Convs per :class:`CatBottleneck`.
        in_channels: Input image channels.

    Attributes:
        out_channels: Channels of the five outputs, ``[32, 64, 256, 512, 1024]`` by default.
        strides: Strides of the five outputs, ``[2, 4, 8, 16, 32]``.

    Shapes:
        ``[N, in_channels, H, W]`` -> five tensors ``[N, out_channels[i], ~H / strides[i], ~W / strides[i]]``
        (each stride-2 step rounds up).
    """

    def __init__(
        self,
        stage_depths: Sequence[int],
        *,
        base_channels: int = 64,
        block_num: int = 4,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        depths = [int(d) for d in stage_depths]
        if len(depths) != 3 or min(depths) < 1:
            raise ConfigError(f"stage_depths must be three positive integers, got {list(stage_depths)}")
        self.stage_depths = depths
        stage_channels = [base_channels * 4, base_channels * 8, base_channels * 16]
        self.out_channels: list[int] = [base_channels // 2, base_channels, *stage_channels]
        self.strides: list[int] = [2, 4, 8, 16, 32]

        modules: list[nn.Module] = [
            _conv_bn_relu(in_channels, base_channels // 2, 3, stride=2),
            _conv_bn_relu(base_channels // 2, base_channels, 3, stride=2),
        ]
        prev = base_channels
        for depth, channels in zip(depths, stage_channels):
            for j in range(depth):
                modules.append(CatBottleneck(prev, channels, block_num, stride=2 if j == 0 else 1))
                prev = channels
        self.features = nn.Sequential(*modules)
        # PaddleSeg initialises convs N(0, 0.001) and then loads ImageNet weights; without them a
        # scale-preserving init is what lets the network train from scratch.
        init_conv_bn(self.modules())

    def forward(self, x: Tensor) -> list[Tensor]:
        """Features ``[x2, x4, x8, x16, x32]`` (see the class docstring for shapes)."""
        outs: list[Tensor] = []
        x = self.features[0](x)
        outs.append(x)
        x = self.features[1](x)
        outs.append(x)
        start = 2
        for depth in self.stage_depths:
            for i in range(start, start + depth):
                x = self.features[i](x)
            outs.append(x)
            start += depth
        return outs


def stdc1(in_channels: int = 3) -> STDCNet:
    """STDC1 (STDCNet813): stage depths (2, 2, 2), 5.32 M parameters."""
    return STDCNet(STDC_STAGE_DEPTHS["stdc1"], in_channels=in_channels)


def stdc2(in_channels: int = 3) -> STDCNet:
    """STDC2 (STDCNet1446): stage depths (4, 5, 3), 9.35 M parameters."""
    return STDCNet(STDC_STAGE_DEPTHS["stdc2"], in_channels=in_channels)
