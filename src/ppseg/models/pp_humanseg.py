"""PP-HumanSeg (Chu et al., "PP-HumanSeg: Connectivity-Aware Portrait Segmentation with a
Large-Scale Teleconferencing Video Dataset", WACV workshops 2022) and its V2 models.

* :class:`PPHumanSegV1Lite` (PaddleSeg ``PPHumanSegLite``, the paper's "ConnectNet"): a
  ShuffleNetV2-style encoder to 1/16, a 1/2 skip, separable convs; ~0.13 M parameters.
  Factory :func:`pp_humanseg_lite_v1`.
* :class:`PPHumanSegV2Lite` (PaddleSeg ``MobileSeg``): MobileNetV3-large features, a
  pyramid context module and lightweight fusion modules (``UAFMMobile``), one segmentation
  head per fused level. Factories :func:`pp_humansegv2_lite_general` (general human
  segmentation, 4 levels, 192x192 inputs) and :func:`pp_humansegv2_lite_portrait` (portrait
  segmentation, 3 levels, 256x144 inputs).
* :func:`pp_humansegv2_mobile`: PP-LiteSeg on STDC1 with narrow heads (see
  :mod:`ppseg.models.pp_liteseg`).

Module names reproduce PaddleSeg's state-dict keys (``conv_bn0._conv.weight``,
``block1.0._depthwise_separable_1.piontwise_conv._batch_norm.weight`` (sic),
``ppseg_head.arm_list.0.conv_x.depthwise_conv._conv.weight``, ...); only BN ``_mean`` /
``_variance`` become ``running_mean`` / ``running_var``.

Dead reference weights (a deliberate choice): the ppseg models hold only tensors that their
forward pass uses, so that every parameter gets a gradient (DDP without
``find_unused_parameters``, ONNX graphs without orphans). The converter drops the
reference's unused tensors explicitly (``ppseg.convert.api.CONVERTER_OPTIONS``) and reports
them:

* V1-Lite: every stride-1 shuffle unit of PaddleSeg owns a ``_depthwise_separable_0``
  (C -> C/2 separable conv) that its forward never calls: 95,040 parameters + 3,672 BN
  statistics. Reference count 226,806 = 131,766 here + 95,040 dropped.
* V2-Lite portrait: the config selects backbone outputs 0..2 (down to 1/16), yet the
  reference MobileNetV3 still builds (and the checkpoint stores) blocks 12..14, whose
  output is discarded: 2,023,944 parameters + 11,328 BN statistics. Reference count
  2,954,118 = 930,174 here + 2,023,944 dropped. The general model uses every block
  (3,015,270 parameters, nothing dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import PaddleConvBNAct, backbone_features, check_num_classes, init_head, resize
from ppseg.models.mobilenetv3 import MobileNetV3
from ppseg.models.pp_liteseg import SPPM, PPLiteSeg
from ppseg.models.stdcnet import stdc1

__all__ = [
    "MobileContextModule",
    "MobileSegHead",
    "PPHumanSegV1Lite",
    "PPHumanSegV2Lite",
    "SeparableConvBNReLU",
    "SeparableSegHead",
    "ShuffleUnit",
    "UAFMMobile",
    "pp_humanseg_lite_v1",
    "pp_humansegv2_lite_general",
    "pp_humansegv2_lite_portrait",
    "pp_humansegv2_mobile",
]


# --------------------------------------------------------------------------------------
# PaddleSeg-style conv blocks (``_conv`` / ``_batch_norm`` key layout)
# --------------------------------------------------------------------------------------


class SeparableConvBNReLU(nn.Module):
    """Depthwise kxk conv + BN, then pointwise 1x1 conv + BN + ReLU.

    Keys ``depthwise_conv.*`` and ``piontwise_conv.*`` (PaddleSeg's spelling). The ReLU
    after the pointwise BN is always there, also where the block produces logits
    (PP-HumanSegV1-Lite's last layer).

    Args:
        in_channels: Input channels (also the depthwise width).
        out_channels: Output channels of the pointwise conv.
        kernel_size: Depthwise kernel size (padding ``kernel_size // 2``).
        stride: Depthwise stride.
        pointwise_bias: Whether the pointwise conv has a bias (``True`` in PaddleSeg's
            ``layers.SeparableConvBNReLU``, ``False`` in PP-HumanSegV1-Lite).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        pointwise_bias: bool = True,
    ) -> None:
        super().__init__()
        self.depthwise_conv = PaddleConvBNAct(in_channels, in_channels, kernel_size, stride=stride, groups=in_channels)
        self.piontwise_conv = PaddleConvBNAct(in_channels, out_channels, 1, bias=pointwise_bias, act="relu")

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, H, W]`` -> ``[N, out, H / stride, W / stride]``."""
        return self.piontwise_conv(self.depthwise_conv(x))


# --------------------------------------------------------------------------------------
# PP-HumanSegV1-Lite
# --------------------------------------------------------------------------------------


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit of PP-HumanSegV1-Lite (PaddleSeg ``InvertedResidual``).

    * stride 1 (``out_channels == in_channels``): split the channels in halves
      ``[shortcut, branch]``; ``branch -> _conv (1x1 CBR) -> _depthwise_separable_1``;
    * stride 2: ``shortcut = _depthwise_separable_0(x)`` (stride 2) and
      ``branch = _depthwise_separable_1(_conv(x))`` (stride 2 on the depthwise conv);

    then ``concat([shortcut, branch])`` and a 2-group channel shuffle (output channel
    ``2 i + g`` = concatenated channel ``g * half + i``). The stride-1 unit has no
    ``_depthwise_separable_0`` (the reference's is dead; see the module docstring).

    Args:
        in_channels: Input channels (even for stride 1).
        stride: 1 or 2.
        out_channels: Output channels (even); ``None`` means ``in_channels`` for stride 1
            and ``2 * in_channels`` for stride 2.
    """

    def __init__(self, in_channels: int, stride: Literal[1, 2], out_channels: int | None = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"stride must be 1 or 2, got {stride}")
        if out_channels is None:
            out_channels = in_channels if stride == 1 else 2 * in_channels
        if out_channels % 2:
            raise ConfigError(f"out_channels must be even, got {out_channels}")
        if stride == 1 and (in_channels != out_channels or in_channels % 2):
            raise ConfigError(f"a stride-1 unit keeps an even channel count, got {in_channels} -> {out_channels}")
        self.stride = stride
        self.half_channels = out_channels // 2
        branch_in = in_channels // 2 if stride == 1 else in_channels
        if stride == 2:
            self._depthwise_separable_0 = SeparableConvBNReLU(
                in_channels, self.half_channels, 3, stride=2, pointwise_bias=False
            )
        self._conv = PaddleConvBNAct(branch_in, self.half_channels, 1, act="relu")
        self._depthwise_separable_1 = SeparableConvBNReLU(
            self.half_channels, self.half_channels, 3, stride=stride, pointwise_bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C_in, H, W]`` -> ``[N, C_out, H / stride, W / stride]``."""
        if self.stride == 1:
            shortcut, branch = x.chunk(2, dim=1)
        else:
            shortcut, branch = self._depthwise_separable_0(x), x
        out = torch.cat([shortcut, self._depthwise_separable_1(self._conv(branch))], dim=1)
        # channel shuffle: [N, 2, half, H, W] -> [N, half, 2, H, W] -> [N, 2 * half, H, W]
        return out.unflatten(1, (2, self.half_channels)).transpose(1, 2).flatten(1, 2)


class PPHumanSegV1Lite(nn.Module):
    """PP-HumanSegV1-Lite, PaddleSeg ``PPHumanSegLite`` ("ConnectNet").

    ========================  =============================================  ===============
    module                    op                                             output
    ========================  =============================================  ===============
    ``conv_bn0``              3x3 s2 conv + BN + ReLU, in -> 36              36 @ 1/2
    ``conv_bn1``              1x1 CBR 36 -> 18 (skip)                        18 @ 1/2
    max pool                  3x3 s2 p1                                      36 @ 1/4
    ``block1``                ShuffleUnit(36 -> 72, s2) + 3 x s1             72 @ 1/8
    ``block2``                ShuffleUnit(72 -> 144, s2) + 7 x s1            144 @ 1/16
    ``depthwise_separable0``  SepConv 144 -> 64, bilinear to the skip        64 @ 1/2
    ``depthwise_separable1``  SepConv on concat[skip, x] 82 -> 64            64 @ 1/2
    ``depthwise_separable2``  SepConv 64 -> classes (BN + ReLU on logits)     C @ 1/2
    ========================  =============================================  ===============

    then bilinear to the input size. As in the reference, the logits pass through BN and
    ReLU, so they are non-negative.

    Args:
        num_classes: Number of output classes.
        in_channels: Input image channels.
        align_corners: ``align_corners`` of the two bilinear resizes (``False`` in every
            PaddleSeg config).

    Attributes:
        num_classes: Number of output classes.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, align_corners: bool = False) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.align_corners = align_corners
        self.conv_bn0 = PaddleConvBNAct(in_channels, 36, 3, stride=2, padding=1, act="relu")
        self.conv_bn1 = PaddleConvBNAct(36, 18, 1, act="relu")
        self.block1 = nn.Sequential(ShuffleUnit(36, 2, 72), *(ShuffleUnit(72, 1) for _ in range(3)))
        self.block2 = nn.Sequential(ShuffleUnit(72, 2), *(ShuffleUnit(144, 1) for _ in range(7)))
        self.depthwise_separable0 = SeparableConvBNReLU(144, 64, 3, pointwise_bias=False)
        self.depthwise_separable1 = SeparableConvBNReLU(82, 64, 3, pointwise_bias=False)
        self.depthwise_separable2 = SeparableConvBNReLU(64, num_classes, 3, pointwise_bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference init: convs N(0, 0.001) (no conv has a bias), BN weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_lowres(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, ~H/2, ~W/2]`` before the final resize."""
        x = self.conv_bn0(x)
        skip = self.conv_bn1(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        x = self.block2(self.block1(x))
        x = resize(self.depthwise_separable0(x), skip.shape[-2:], align_corners=self.align_corners)
        x = self.depthwise_separable1(torch.cat([skip, x], dim=1))
        return self.depthwise_separable2(x)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment a normalised NCHW batch.

        Args:
            x: Float input ``[N, C, H, W]``.

        Returns:
            Eval mode: logits ``[N, num_classes, H, W]``. Training mode: a one-element
            list with those logits.
        """
        logits = resize(self.forward_lowres(x), x.shape[-2:], align_corners=self.align_corners)
        return [logits] if self.training else logits


# --------------------------------------------------------------------------------------
# PP-HumanSegV2-Lite (PaddleSeg MobileSeg)
# --------------------------------------------------------------------------------------


class MobileContextModule(SPPM):
    """Pyramid context on the deepest feature (PaddleSeg ``MobileContextModule``).

    PP-LiteSeg's :class:`~ppseg.models.pp_liteseg.SPPM` (pooled branches summed at the input
    size, with its ONNX-friendly matrix pooling) whose ``conv_out`` is a 3x3
    :class:`SeparableConvBNReLU`. Keys ``stages.{i}.1.*``, ``conv_out.*``.

    Args:
        in_channels: Channels of the deepest backbone feature.
        inter_channels: Width of each pooled branch.
        out_channels: Output channels.
        bin_sizes: Pooled sizes.
    """

    def fuse_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        """``conv_out``: a 3x3 :class:`SeparableConvBNReLU`."""
        return SeparableConvBNReLU(in_channels, out_channels, 3)


class UAFMMobile(nn.Module):
    """Unified attention fusion, mobile flavour without attention (PaddleSeg ``UAFMMobile``).

    ``conv_out(conv_x(x) + resize(y, size of x))`` with 3x3 :class:`SeparableConvBNReLU`
    ``conv_x`` (x_ch -> y_ch) and ``conv_out`` (y_ch -> out_ch).

    Args:
        low_channels: Channels of the low-level (higher resolution) feature ``x``.
        high_channels: Channels of the high-level feature ``y``.
        out_channels: Output channels.
    """

    def __init__(self, low_channels: int, high_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_x = SeparableConvBNReLU(low_channels, high_channels, 3)
        self.conv_out = SeparableConvBNReLU(high_channels, out_channels, 3)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """``x [N, low, h, w]``, ``y [N, high, h', w']`` (h' <= h) -> ``[N, out, h, w]``."""
        x = self.conv_x(x)
        return self.conv_out(x + resize(y, x.shape[-2:]))


class MobileSegHead(nn.Module):
    """Decoder of PP-HumanSegV2-Lite (PaddleSeg ``MobileSegHead``).

    ``cm`` turns the deepest feature into context; ``arm_list[i]`` fuses feature ``i`` with
    the output of level ``i + 1`` (the context for the deepest level), from deep to shallow.
    With ``use_last_fuse`` the outputs of levels ``1..`` are projected to ``out_channels[0]``
    (``fuse_convs``), resized to level 0 and concatenated with it, and ``last_conv`` replaces
    level 0 by their fusion.

    Args:
        in_channels: Channels of the selected backbone features, shallow to deep.
        out_channels: Output channels per level (``arm_out_chs``).
        context_bins: Bin sizes of the context module.
        context_channels: Width of the context module.
        use_last_fuse: Fuse every level into level 0.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        context_bins: Sequence[int],
        context_channels: int,
        use_last_fuse: bool,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels) or not in_channels:
            raise ConfigError(
                f"one output width per backbone feature needed, got {list(out_channels)} for {list(in_channels)}"
            )
        self.cm = MobileContextModule(in_channels[-1], context_channels, context_channels, context_bins)
        high = [*out_channels[1:], context_channels]
        self.arm_list = nn.ModuleList(
            UAFMMobile(c_in, c_high, c_out) for c_in, c_high, c_out in zip(in_channels, high, out_channels, strict=True)
        )
        self.use_last_fuse = use_last_fuse
        if use_last_fuse:
            self.fuse_convs = nn.ModuleList(SeparableConvBNReLU(c, out_channels[0], 3) for c in out_channels[1:])
            self.last_conv = SeparableConvBNReLU(len(out_channels) * out_channels[0], out_channels[0], 3)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Backbone features (shallow to deep) -> fused features, same order and sizes."""
        high = self.cm(feats[-1])
        outs: list[Tensor] = [high] * len(feats)
        for i in reversed(range(len(feats))):
            high = self.arm_list[i](feats[i], high)
            outs[i] = high
        if self.use_last_fuse:
            size = outs[0].shape[-2:]
            fused = [outs[0]] + [resize(conv(y), size) for conv, y in zip(self.fuse_convs, outs[1:], strict=True)]
            outs[0] = self.last_conv(torch.cat(fused, dim=1))
        return outs


class SeparableSegHead(nn.Module):
    """Segmentation head of PP-HumanSegV2-Lite (PaddleSeg ``mobileseg.SegHead``): ``conv`` (3x3
    :class:`SeparableConvBNReLU` in -> mid) then ``conv_out`` (1x1, no bias).

    PP-LiteSeg's :class:`~ppseg.models.pp_liteseg.SegHead` has the same shape but a full 3x3
    conv, hence other keys (``conv._conv.*`` instead of ``conv.depthwise_conv.*`` /
    ``conv.piontwise_conv.*``).

    Args:
        in_channels: Input channels.
        mid_channels: Intermediate channels.
        num_classes: Number of output classes.
    """

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = SeparableConvBNReLU(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, h, w]`` -> logits ``[N, num_classes, h, w]``."""
        return self.conv_out(self.conv(x))


class PPHumanSegV2Lite(nn.Module):
    """PP-HumanSegV2-Lite, PaddleSeg ``MobileSeg`` on MobileNetV3-large.

    backbone features (1/4 .. 1/16 or 1/32) -> :class:`MobileSegHead` -> one
    :class:`SeparableSegHead` per level. Training mode returns every head's logits resized to the
    input (level 0 at 1/4 first); eval mode runs only head 0 and resizes it.

    Args:
        num_classes: Number of output classes.
        backbone: Module returning the selected features, shallow to deep, and exposing
            ``out_channels`` and ``strides``.
        arm_out_channels: Fused width per level (PaddleSeg ``arm_out_chs``).
        head_mid_channels: Intermediate width of each segmentation head
            (``seg_head_inter_chs``).
        context_channels: Width of the context module (``cm_out_ch``).
        context_bins: Pool sizes of the context module (``cm_bin_sizes``).
        use_last_fuse: Fuse all levels into level 0 before its head.

    Attributes:
        num_classes: Number of output classes.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: nn.Module,
        arm_out_channels: Sequence[int],
        head_mid_channels: Sequence[int],
        context_channels: int = 128,
        context_bins: Sequence[int] = (1, 2, 4),
        use_last_fuse: bool = True,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        channels, _ = backbone_features(backbone)
        if len(head_mid_channels) != len(channels):
            raise ConfigError(f"one head width per level needed, got {list(head_mid_channels)} for {channels}")
        self.num_classes = num_classes
        self.backbone = backbone
        self.ppseg_head = MobileSegHead(channels, arm_out_channels, context_bins, context_channels, use_last_fuse)
        self.seg_heads = nn.ModuleList(
            SeparableSegHead(c, mid, num_classes) for c, mid in zip(arm_out_channels, head_mid_channels, strict=True)
        )
        self._init_head()

    def _init_head(self) -> None:
        """Head convs Kaiming-normal (zero bias), BN (1, 0), classifiers N(0, 0.01); the backbone keeps its init."""
        init_head(self, (head.conv_out for head in self.seg_heads))

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment a normalised NCHW batch.

        Args:
            x: Float input ``[N, C, H, W]``.

        Returns:
            Eval mode: logits ``[N, num_classes, H, W]`` of head 0. Training mode: the logits
            of every head (level 0 first), each ``[N, num_classes, H, W]``.
        """
        feats = self.ppseg_head(self.backbone(x))
        if not self.training:
            return resize(self.seg_heads[0](feats[0]), x.shape[-2:])
        return [resize(head(f), x.shape[-2:]) for head, f in zip(self.seg_heads, feats, strict=True)]


def _mobilenetv3_large(out_indices: tuple[int, ...], in_channels: int) -> MobileNetV3:
    """MobileNetV3-large returning ``out_indices``, without the blocks after the last of them."""
    backbone = MobileNetV3("large", out_indices=out_indices, in_channels=in_channels)
    last = max(out_indices)
    if last + 1 < len(backbone.blocks):
        backbone.blocks = backbone.blocks[: last + 1]  # unused by forward; see the module docstring
    return backbone


def pp_humanseg_lite_v1(num_classes: int = 2, *, in_channels: int = 3, align_corners: bool = False) -> PPHumanSegV1Lite:
    """PP-HumanSegV1-Lite (131,766 parameters at 2 classes; the reference stores 226,806).

    Args:
        num_classes: Number of output classes (2: background, human).
        in_channels: Input image channels.
        align_corners: ``align_corners`` of the bilinear resizes.

    Returns:
        The model.
    """
    return PPHumanSegV1Lite(num_classes, in_channels=in_channels, align_corners=align_corners)


def pp_humansegv2_lite_general(num_classes: int = 2, *, in_channels: int = 3) -> PPHumanSegV2Lite:
    """PP-HumanSegV2-Lite, general-human config (3,015,270 parameters at 2 classes).

    Config ``human_pp_humansegv2_lite``: backbone outputs 1/4, 1/8, 1/16, 1/32
    (24, 40, 112, 160 ch), ``arm_out_chs`` [32, 64, 96, 128], ``seg_head_inter_chs``
    [16, 32, 32, 32], context bins [1, 2, 4] at 128 ch, last fuse on; 4 heads in training.
    Trained at 192x192.

    Args:
        num_classes: Number of output classes.
        in_channels: Input image channels.

    Returns:
        The model.
    """
    backbone = _mobilenetv3_large((2, 5, 11, 14), in_channels)
    return PPHumanSegV2Lite(num_classes, backbone, (32, 64, 96, 128), (16, 32, 32, 32))


def pp_humansegv2_lite_portrait(num_classes: int = 2, *, in_channels: int = 3) -> PPHumanSegV2Lite:
    """PP-HumanSegV2-Lite, portrait config (930,174 parameters at 2 classes; the reference stores 2,954,118).

    Config ``portrait_pp_humansegv2_lite``: backbone outputs 1/4, 1/8, 1/16 only (24, 40,
    112 ch; MobileNetV3 blocks 12-14 are not built), ``arm_out_chs`` [32, 64, 128],
    ``seg_head_inter_chs`` [16, 32, 32], context bins [1, 2, 4] at 128 ch, last fuse on;
    3 heads in training. Trained at 256x144 (W x H).

    Args:
        num_classes: Number of output classes.
        in_channels: Input image channels.

    Returns:
        The model.
    """
    backbone = _mobilenetv3_large((2, 5, 11), in_channels)
    return PPHumanSegV2Lite(num_classes, backbone, (32, 64, 128), (16, 32, 32))


def pp_humansegv2_mobile(num_classes: int = 2, *, in_channels: int = 3) -> PPLiteSeg:
    """PP-HumanSegV2-Mobile: PP-LiteSeg on STDC1 (7,565,452 parameters at 2 classes).

    Config ``human_pp_humansegv2_mobile``: STDC1 outputs 1/4 .. 1/32 (64, 256, 512, 1024
    ch), SPPM bins [1, 2, 4] at 128 ch, spatial-attention UAFMs with ``arm_out_chs``
    [4, 16, 32, 64], ``seg_head_inter_chs`` [4, 16, 32, 64]; 4 heads in training, the 1/4
    head in eval. The count includes the four fixed UAFM ``_scale`` constants (stored as
    non-trainable parameters, as in the reference). Trained at 192x192.

    Args:
        num_classes: Number of output classes.
        in_channels: Input image channels.

    Returns:
        The model (a :class:`~ppseg.models.pp_liteseg.PPLiteSeg`).
    """
    return PPLiteSeg(
        num_classes,
        stdc1(in_channels),
        backbone_indices=(1, 2, 3, 4),
        sppm_out_channels=128,
        arm_out_channels=(4, 16, 32, 64),
        seg_head_inter_channels=(4, 16, 32, 64),
    )
