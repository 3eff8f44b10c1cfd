"""PP-LiteSeg (Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model", 2022).

STDC backbone (:mod:`ppseg.models.stdcnet`) -> the flexible lightweight decoder
(:class:`PPLiteSegHead`): a simple pyramid pooling module (:class:`SPPM`) on the 1/32
feature, then one unified attention fusion module (UAFM) per level, 1/32 -> 1/16 -> 1/8
-> segmentation heads. Eval mode runs the 1/8 head only and resizes its logits to the
input (bilinear, ``align_corners=False``); training mode returns all three heads' logits
at input size, main (1/8) first.

State-dict keys equal PaddleSeg's (``backbone.*``, ``ppseg_head.cm.*``,
``ppseg_head.arm_list.{i}.*``, ``seg_heads.{i}.*``) except BN ``_mean``/``_variance`` ->
``running_mean``/``running_var``; convert a ``.pdparams`` with
:func:`ppseg.convert.paddle_keys.paddle_to_torch_state`. Checkpoints from before Aug 2022
(the released PP-LiteSeg weights among them) lack the fixed ``arm_list.{i}._scale``
constants; :data:`ppseg.convert.api.CONVERTER_OPTIONS` fills them with 1.0.

The SPPM's adaptive average pooling is written with two small averaging matrices
(:class:`AdaptiveAvgPool2dMatmul`) so that the model exports to ONNX with dynamic input
sizes, where ``adaptive_avg_pool2d`` only exports when the bins divide the feature size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import (
    RESIZE_MODES,
    PaddleConvBNAct,
    ResizeMode,
    backbone_features,
    check_num_classes,
    init_head,
    resize,
)
from ppseg.models.stdcnet import STDCNet, stdc1, stdc2

__all__ = [
    "AdaptiveAvgPool2dMatmul",
    "PPLiteSeg",
    "PPLiteSegHead",
    "SPPM",
    "SegHead",
    "UAFM",
    "UAFMChannelAttention",
    "UAFMSpatialAttention",
    "UAFMType",
    "pp_liteseg_b",
    "pp_liteseg_t",
]

#: Attention of the fusion modules: ``"spatial"`` (PaddleSeg ``UAFM_SpAtten``, the PP-LiteSeg
#: default) or ``"channel"`` (``UAFM_ChAtten``).
UAFMType = Literal["spatial", "channel"]


def _bin_sum_matrix(size: Tensor | int, bins: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """0/1 matrix ``[bins, size]`` selecting the rows of each adaptive-pooling bin, and the bin sizes.

    Bin ``i`` covers ``[floor(i * size / bins), ceil((i + 1) * size / bins))``, the rule of
    ``torch.nn.functional.adaptive_avg_pool2d`` and Paddle's ``AdaptiveAvgPool2D``. Only
    integer arithmetic on ``size``, so a traced (dynamic) size exports to ONNX.
    """
    index = torch.arange(bins, device=like.device)
    start = torch.div(index * size, bins, rounding_mode="floor")
    end = torch.div((index + 1) * size + (bins - 1), bins, rounding_mode="floor")
    position = torch.arange(size, device=like.device)
    inside = (position.unsqueeze(0) >= start.unsqueeze(1)) & (position.unsqueeze(0) < end.unsqueeze(1))
    return inside.to(like.dtype), (end - start).to(like.dtype)


class AdaptiveAvgPool2dMatmul(nn.Module):
    """Adaptive average pooling to ``bins x bins`` as two matrix products.

    ``out = (R @ x @ C^T) / (count_rows x count_cols)`` with 0/1 bin-membership matrices
    ``R`` (``[bins, H]``) and ``C`` (``[bins, W]``): the same bins and the same averages as
    :func:`torch.nn.functional.adaptive_avg_pool2d` (up to float rounding), for any input
    size, including sizes that the bins do not divide and sizes smaller than ``bins``.
    Unlike ``adaptive_avg_pool2d`` it exports to ONNX with dynamic height and width.

    Args:
        bins: Output height and width.

    Shapes:
        ``[N, C, H, W]`` -> ``[N, C, bins, bins]``.
    """

    def __init__(self, bins: int) -> None:
        super().__init__()
        if bins < 1:
            raise ConfigError(f"bins must be >= 1, got {bins}")
        self.bins = bins

    def forward(self, x: Tensor) -> Tensor:
        """Average ``x`` over each bin."""
        rows, row_counts = _bin_sum_matrix(x.shape[-2], self.bins, x)
        cols, col_counts = _bin_sum_matrix(x.shape[-1], self.bins, x)
        summed = torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))
        return summed / (row_counts.unsqueeze(1) * col_counts.unsqueeze(0))

    def extra_repr(self) -> str:
        """Show the bin count in ``repr``."""
        return f"bins={self.bins}"


class SPPM(nn.Module):
    """Simple pyramid pooling module (PaddleSeg ``PPContextModule``, attribute ``cm``).

    For each bin size ``b``: adaptive average pool to ``b x b`` -> 1x1 conv (with bias) +
    BN + ReLU -> bilinear resize back to the input size; the branches are **summed** and
    passed through ``conv_out`` (:meth:`fuse_conv`: 3x3 conv with bias + BN + ReLU).

    ``stages.{i}`` is ``Sequential(pool, conv)`` as in the reference, which is why the conv
    keys read ``stages.{i}.1._conv.*``.

    Args:
        in_channels: Channels of the input (the 1/32 backbone feature).
        inter_channels: Channels of each pooled branch.
        out_channels: Output channels.
        bin_sizes: Pooled output sizes, ``(1, 2, 4)`` in PP-LiteSeg.

    Shapes:
        ``[N, in_channels, H, W]`` -> ``[N, out_channels, H, W]``.
    """

    def __init__(self, in_channels: int, inter_channels: int, out_channels: int, bin_sizes: Sequence[int]) -> None:
        super().__init__()
        if not bin_sizes:
            raise ConfigError("bin_sizes must not be empty")
        self.stages = nn.ModuleList(
            nn.Sequential(
                AdaptiveAvgPool2dMatmul(int(b)),
                PaddleConvBNAct(in_channels, inter_channels, 1, bias=True, act="relu"),
            )
            for b in bin_sizes
        )
        self.conv_out = self.fuse_conv(inter_channels, out_channels)

    def fuse_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        """The module fusing the summed branches (``conv_out``): 3x3 conv (with bias) + BN + ReLU."""
        return PaddleConvBNAct(in_channels, out_channels, 3, bias=True, act="relu")

    def forward(self, x: Tensor) -> Tensor:
        """Pool at every bin size, resize back, sum, fuse."""
        size = x.shape[-2:]
        total: Tensor | None = None
        for stage in self.stages:
            branch = resize(stage(x), size)
            total = branch if total is None else total + branch
        assert total is not None
        return self.conv_out(total)


class UAFM(nn.Module):
    """Unified attention fusion module, base part shared by both attention variants.

    ``x`` (low-level, higher resolution) goes through ``conv_x`` (3x3, no bias, BN, ReLU)
    to ``y_channels``; ``y`` (high-level) is resized to the result's size; subclasses fuse
    the two with an attention weight ``a``; ``conv_out`` (3x3, no bias, BN, ReLU) maps the
    fused feature to ``out_channels``.

    Args:
        x_channels: Channels of the low-level feature.
        y_channels: Channels of the high-level feature.
        out_channels: Output channels.
        resize_mode: Interpolation used to upsample ``y``.

    Shapes:
        ``x [N, x_channels, H, W]``, ``y [N, y_channels, h, w]`` -> ``[N, out_channels, H, W]``.
    """

    def __init__(self, x_channels: int, y_channels: int, out_channels: int, resize_mode: ResizeMode = "bilinear"):
        super().__init__()
        self.conv_x = PaddleConvBNAct(x_channels, y_channels, 3, bias=False, act="relu")
        self.conv_out = PaddleConvBNAct(y_channels, out_channels, 3, bias=False, act="relu")
        self.resize_mode: ResizeMode = resize_mode

    def fuse(self, x: Tensor, y: Tensor) -> Tensor:
        """Combine the aligned features (both ``[N, y_channels, H, W]``)."""
        raise NotImplementedError

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Fuse a low-level feature ``x`` with an upsampled high-level feature ``y``."""
        x = self.conv_x(x)
        y = resize(y, x.shape[-2:], self.resize_mode)
        return self.conv_out(self.fuse(x, y))


class UAFMSpatialAttention(UAFM):
    """UAFM with spatial attention (PaddleSeg ``UAFM_SpAtten``), PP-LiteSeg's default.

    ``a = sigmoid(conv_xy_atten([mean_c(x), max_c(x), mean_c(y), max_c(y)]))`` (``[N, 1, H, W]``;
    ``conv_xy_atten`` = 3x3 conv 4 -> 2 + BN + ReLU, 3x3 conv 2 -> 1 + BN, no biases) and
    ``out = x * a + y * (scale - a)``.

    ``_scale`` is a fixed 1.0 that PaddleSeg stores as a non-trainable parameter (name
    kept for the state-dict key ``arm_list.{i}._scale``); it counts in ``parameters()`` as
    in the reference's parameter totals but never receives a gradient.
    """

    def __init__(self, x_channels: int, y_channels: int, out_channels: int, resize_mode: ResizeMode = "bilinear"):
        super().__init__(x_channels, y_channels, out_channels, resize_mode)
        self.conv_xy_atten = nn.Sequential(
            PaddleConvBNAct(4, 2, 3, bias=False, act="relu"),
            PaddleConvBNAct(2, 1, 3, bias=False, act=None),
        )
        self._scale = nn.Parameter(torch.ones(1), requires_grad=False)

    def fuse(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-pixel weighted sum of ``x`` and ``y``."""
        stats = torch.cat(
            [x.mean(1, keepdim=True), x.amax(1, keepdim=True), y.mean(1, keepdim=True), y.amax(1, keepdim=True)],
            dim=1,
        )
        atten = torch.sigmoid(self.conv_xy_atten(stats))
        return x * atten + y * (self._scale - atten)


class UAFMChannelAttention(UAFM):
    """UAFM with channel attention (PaddleSeg ``UAFM_ChAtten``).

    ``a = sigmoid(conv_xy_atten([mean_hw(x), mean_hw(y), max_hw(x), max_hw(y)]))``
    (``[N, y_channels, 1, 1]``; ``conv_xy_atten`` = 1x1 conv ``4 y`` -> ``y / 2`` + BN +
    LeakyReLU(0.01), 1x1 conv ``y / 2`` -> ``y`` + BN, no biases) and
    ``out = x * a + y * (1 - a)``. The reference has no ``_scale`` here.

    Its BatchNorms see one value per channel and sample: training needs batches of 2 or more.
    """

    def __init__(self, x_channels: int, y_channels: int, out_channels: int, resize_mode: ResizeMode = "bilinear"):
        super().__init__(x_channels, y_channels, out_channels, resize_mode)
        self.conv_xy_atten = nn.Sequential(
            PaddleConvBNAct(4 * y_channels, y_channels // 2, 1, bias=False, act="leaky_relu"),
            PaddleConvBNAct(y_channels // 2, y_channels, 1, bias=False, act=None),
        )

    def fuse(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-channel weighted sum of ``x`` and ``y``."""
        stats = torch.cat(
            [
                x.mean((2, 3), keepdim=True),
                y.mean((2, 3), keepdim=True),
                x.amax((2, 3), keepdim=True),
                y.amax((2, 3), keepdim=True),
            ],
            dim=1,
        )
        atten = torch.sigmoid(self.conv_xy_atten(stats))
        return x * atten + y * (1.0 - atten)


_UAFM_CLASSES: dict[str, type[UAFM]] = {"spatial": UAFMSpatialAttention, "channel": UAFMChannelAttention}


class PPLiteSegHead(nn.Module):
    """Flexible lightweight decoder: SPPM on the deepest feature, then UAFMs from deep to shallow.

    ``arm_list[i]`` fuses backbone feature ``i`` (``x``) with the decoder output one level
    deeper (``y``: the SPPM output for the last level, else ``arm_list[i + 1]``'s output).
    (PaddleSeg calls the fusion modules ``arm_list`` and the SPPM ``cm``; the names are the
    state-dict keys.)

    Args:
        in_channels: Channels of the selected backbone features, shallow to deep.
        arm_out_channels: Output channels of each fusion module, shallow to deep.
        sppm_bin_sizes: SPPM bin sizes.
        sppm_out_channels: SPPM inner and output channels.
        uafm: Attention type of the fusion modules.
        resize_mode: Interpolation used inside the fusion modules.

    Shapes:
        features ``[N, in_channels[i], H_i, W_i]`` -> ``[N, arm_out_channels[i], H_i, W_i]`` per level.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        arm_out_channels: Sequence[int],
        sppm_bin_sizes: Sequence[int],
        sppm_out_channels: int,
        uafm: UAFMType = "spatial",
        resize_mode: ResizeMode = "bilinear",
    ) -> None:
        super().__init__()
        if len(in_channels) != len(arm_out_channels):
            raise ConfigError(
                f"{len(in_channels)} backbone features but {len(arm_out_channels)} fusion output widths"
            )
        if uafm not in _UAFM_CLASSES:
            raise ConfigError(f"unknown uafm {uafm!r}; expected one of {tuple(_UAFM_CLASSES)}")
        if resize_mode not in RESIZE_MODES:
            raise ConfigError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
        self.cm = SPPM(in_channels[-1], sppm_out_channels, sppm_out_channels, sppm_bin_sizes)
        uafm_class = _UAFM_CLASSES[uafm]
        deeper_channels = [*arm_out_channels[1:], sppm_out_channels]
        self.arm_list = nn.ModuleList(
            uafm_class(x_ch, y_ch, out_ch, resize_mode)
            for x_ch, y_ch, out_ch in zip(in_channels, deeper_channels, arm_out_channels)
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Decoder outputs, shallow to deep (``[y8, y16, y32]`` for PP-LiteSeg)."""
        if len(features) != len(self.arm_list):
            raise ValueError(f"expected {len(self.arm_list)} features, got {len(features)}")
        deeper = self.cm(features[-1])
        outs: list[Tensor] = []
        for i in reversed(range(len(features))):
            deeper = self.arm_list[i](features[i], deeper)
            outs.append(deeper)
        return outs[::-1]


class SegHead(nn.Module):
    """Segmentation head: 3x3 conv (no bias) + BN + ReLU (``conv``), 1x1 conv to the classes
    without bias (``conv_out``). PP-HumanSegV2-Lite's variant with a separable 3x3 conv (other
    state-dict keys) is :class:`~ppseg.models.pp_humanseg.SeparableSegHead`.

    Args:
        in_channels: Input channels.
        inter_channels: Channels after the 3x3 conv.
        num_classes: Number of output classes.

    Shapes:
        ``[N, in_channels, H, W]`` -> ``[N, num_classes, H, W]``.
    """

    def __init__(self, in_channels: int, inter_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = PaddleConvBNAct(in_channels, inter_channels, 3, bias=False, act="relu")
        self.conv_out = nn.Conv2d(inter_channels, num_classes, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Logits at the feature's resolution."""
        return self.conv_out(self.conv(x))


class PPLiteSeg(nn.Module):
    """PP-LiteSeg: a backbone, the flexible lightweight decoder and one head per decoder level.

    Args:
        num_classes: Number of output classes.
        backbone: A module returning a list of features and exposing ``out_channels``
            and ``strides`` (e.g. :class:`~ppseg.models.stdcnet.STDCNet`).
        backbone_indices: Backbone outputs fed to the decoder, shallow to deep.
        uafm: Attention of the fusion modules: ``"spatial"`` (reference) or ``"channel"``.
        sppm_bin_sizes: SPPM pooled sizes.
        sppm_out_channels: SPPM output channels.
        arm_out_channels: Fusion-module output channels, shallow to deep.
        seg_head_inter_channels: Inner channels of each segmentation head.
        resize_mode: Interpolation used inside the decoder.

    Attributes:
        num_classes: Number of output classes.
        output_stride: Stride of :meth:`forward_lowres` (8 with the default indices).

    Example:
        >>> model = pp_liteseg_t(num_classes=19).eval()
        >>> logits = model(images)                  # [N, 19, H, W]
        >>> main, aux16, aux32 = model.train()(images)
    """

    def __init__(
        self,
        num_classes: int,
        backbone: nn.Module,
        *,
        backbone_indices: Sequence[int] = (2, 3, 4),
        uafm: UAFMType = "spatial",
        sppm_bin_sizes: Sequence[int] = (1, 2, 4),
        sppm_out_channels: int = 128,
        arm_out_channels: Sequence[int] = (64, 96, 128),
        seg_head_inter_channels: Sequence[int] = (64, 64, 64),
        resize_mode: ResizeMode = "bilinear",
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        channels, strides = backbone_features(backbone)
        indices = [int(i) for i in backbone_indices]
        if len(indices) < 2 or not all(0 <= i < len(channels) for i in indices):
            raise ConfigError(f"backbone_indices must name >= 2 of the backbone's {len(channels)} outputs, got {indices}")
        if not len(indices) == len(arm_out_channels) == len(seg_head_inter_channels):
            raise ConfigError("backbone_indices, arm_out_channels and seg_head_inter_channels need the same length")
        self.num_classes = num_classes
        self.backbone_indices = indices
        self.output_stride: int = strides[indices[0]]
        self.backbone = backbone
        self.ppseg_head = PPLiteSegHead(
            [channels[i] for i in indices], arm_out_channels, sppm_bin_sizes, sppm_out_channels, uafm, resize_mode
        )
        self.seg_heads = nn.ModuleList(
            SegHead(in_ch, inter_ch, num_classes) for in_ch, inter_ch in zip(arm_out_channels, seg_head_inter_channels)
        )
        self._init_decoder()

    def _init_decoder(self) -> None:
        """Decoder and head convs Kaiming-normal, BN (1, 0), classifiers N(0, 0.01); the backbone keeps its own."""
        init_head(self, (head.conv_out for head in self.seg_heads))

    def decode(self, x: Tensor) -> list[Tensor]:
        """Decoder features, shallow to deep: ``[N, arm_out_channels[i], ~H / s_i, ~W / s_i]``."""
        features = self.backbone(x)
        return self.ppseg_head([features[i] for i in self.backbone_indices])

    def forward_lowres(self, x: Tensor) -> Tensor:
        """Main-head logits before the final resize: ``[N, num_classes, ~H / 8, ~W / 8]``."""
        return self.seg_heads[0](self.decode(x)[0])

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment a normalised NCHW batch.

        Args:
            x: Float input ``[N, C, H, W]``.

        Returns:
            Eval mode: logits ``[N, num_classes, H, W]`` of the main (1/8) head. Training
            mode: a list of ``[N, num_classes, H, W]`` logits, the main head first, then the
            auxiliary heads on the deeper decoder levels (1/16, 1/32).
        """
        size = x.shape[-2:]
        # Contiguous before the upsample: a channels-last model would otherwise produce
        # channels-last full-resolution logits (slow per-pixel softmax / loss).
        if not self.training:
            return resize(self.forward_lowres(x).contiguous(), size)
        return [
            resize(head(feature).contiguous(), size) for head, feature in zip(self.seg_heads, self.decode(x))
        ]


def _pp_liteseg(
    backbone: STDCNet,
    num_classes: int,
    uafm: UAFMType,
    arm_out_channels: Sequence[int],
    seg_head_inter_channels: Sequence[int],
    sppm_bin_sizes: Sequence[int],
    resize_mode: ResizeMode,
) -> PPLiteSeg:
    return PPLiteSeg(
        num_classes,
        backbone,
        uafm=uafm,
        sppm_bin_sizes=sppm_bin_sizes,
        arm_out_channels=arm_out_channels,
        seg_head_inter_channels=seg_head_inter_channels,
        resize_mode=resize_mode,
    )


def pp_liteseg_t(
    num_classes: int = 19,
    *,
    uafm: UAFMType = "spatial",
    sppm_bin_sizes: tuple[int, ...] = (1, 2, 4),
    resize_mode: ResizeMode = "bilinear",
    in_channels: int = 3,
) -> PPLiteSeg:
    """PP-LiteSeg-T: STDC1 backbone, fusion widths (32, 64, 128), head widths (32, 64, 64).

    8,141,603 parameters at 19 classes (8,138,563 + 160 per class), counting the three
    fixed UAFM ``_scale`` constants.

    Args:
        num_classes: Number of output classes (19 Cityscapes, 11 CamVid).
        uafm: Fusion-module attention: ``"spatial"`` (the reference) or ``"channel"``.
        sppm_bin_sizes: SPPM pooled sizes.
        resize_mode: Interpolation used inside the decoder.
        in_channels: Input image channels.

    Returns:
        The model.
    """
    return _pp_liteseg(stdc1(in_channels), num_classes, uafm, (32, 64, 128), (32, 64, 64), sppm_bin_sizes, resize_mode)


def pp_liteseg_b(
    num_classes: int = 19,
    *,
    uafm: UAFMType = "spatial",
    sppm_bin_sizes: tuple[int, ...] = (1, 2, 4),
    resize_mode: ResizeMode = "bilinear",
    in_channels: int = 3,
) -> PPLiteSeg:
    """PP-LiteSeg-B: STDC2 backbone, fusion widths (64, 96, 128), head widths (64, 64, 64).

    12,366,467 parameters at 19 classes (12,362,819 + 192 per class), counting the three
    fixed UAFM ``_scale`` constants.

    Args:
        num_classes: Number of output classes (19 Cityscapes, 11 CamVid).
        uafm: Fusion-module attention: ``"spatial"`` (the reference) or ``"channel"``.
        sppm_bin_sizes: SPPM pooled sizes.
        resize_mode: Interpolation used inside the decoder.
        in_channels: Input image channels.

    Returns:
        The model.
    """
    return _pp_liteseg(stdc2(in_channels), num_classes, uafm, (64, 96, 128), (64, 64, 64), sppm_bin_sizes, resize_mode)
