"""HRNet building blocks (Sun et al., "Deep High-Resolution Representation Learning for Human
Pose Estimation", CVPR 2019; Wang et al., TPAMI 2020): residual blocks, the multi-resolution
modules with their fuse layers, the transitions, and :class:`HRNetStages`, the part of the
network after the stem and ``layer1`` (transitions 1-3 and stages 2-4 of basic blocks).

Key layout: the official HRNet code's, as used by RITM and by EISeg's EdgeFlow network
(``transition1.1.0.0.weight``, ``stage2.0.branches.1.3.conv1.weight``,
``stage4.0.fuse_layers.3.0.2.1.weight``, ...): a checkpoint of that family converts by
renaming BN statistics only. PaddleSeg's own HRNet (OCRNet) and PaddleSeg-Matting's copy
(PP-Matting) compute the same function with other names (``st2.stage_st2_1.branches_func...``,
``tr1.transition_tr1_layer_2``); a port of those reuses these modules with a key-rename table.

What differs between the flavours is an option here:

* ``align_corners``: the bilinear upsampling in the fuse layers (``True`` in RITM/EdgeFlow,
  ``False`` in PaddleSeg and PaddleSeg-Matting);
* ``padding``: the 3x3 convs of the transitions and of the fuse layers' stride-2 chains pad
  ``"symmetric"`` (1 on every side: RITM/EdgeFlow, PaddleSeg's HRNet) or ``"same"``
  (TF-style SAME, Paddle's ``padding='same'``: at stride 2 on an even size the padding is
  0 before and 1 after, not 1 and 1; PaddleSeg-Matting's ``padding_same=True``). Spec section 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import BN_MOMENTUM, resize

__all__ = [
    "PADDING_MODES",
    "BasicBlock",
    "Bottleneck",
    "Conv2dSame",
    "HRNetStages",
    "HighResolutionModule",
    "PaddingMode",
    "PaddleConvBN",
    "apply_transition",
    "conv3x3",
    "make_layer",
    "make_stage",
    "make_transition",
    "pad_same",
]

#: How a 3x3 conv pads: ``"symmetric"`` (``dilation`` on every side) or ``"same"`` (TF-style SAME).
PaddingMode = Literal["symmetric", "same"]
PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)


def _check_padding(padding: str) -> None:
    if padding not in PADDING_MODES:
        raise ConfigError(f"padding must be one of {PADDING_MODES}, got {padding!r}")


def _same_amounts(size, kernel: int, stride: int, dilation: int):
    """``(before, after)`` TF-SAME padding of one spatial side of length ``size``.

    total = max((ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0),
    ``before = total // 2``. Written with ``+ - * //`` only, so that a traced ``size``
    (ONNX export with dynamic height/width) keeps it a graph computation.
    """
    span = (kernel - 1) * dilation + 1
    total = ((size + stride - 1) // stride - 1) * stride + span - size
    if span < stride:  # only then can the total be negative (e.g. a 1x1 conv with stride 2)
        total = total.clamp(min=0) if isinstance(total, Tensor) else max(total, 0)
    before = total // 2
    return before, total - before


def pad_same(x: Tensor, kernel_size: int, stride: int = 1, dilation: int = 1) -> Tensor:
    """Zero-pad ``x [N, C, H, W]`` as Paddle's ``padding='same'`` (TF SAME) for this conv.

    At stride 1 this is the symmetric ``dilation * (kernel_size - 1) / 2``; at stride 2 on an
    even side with a 3x3 kernel it is 0 before and 1 after (spec section 1).
    """
    top, bottom = _same_amounts(x.shape[-2], kernel_size, stride, dilation)
    left, right = _same_amounts(x.shape[-1], kernel_size, stride, dilation)
    return F.pad(x, [left, right, top, bottom])


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with Paddle's ``padding='same'`` (TF SAME), computed from each input's size.

    Same parameters (``weight``, ``bias``) as ``nn.Conv2d``; ``padding`` is always 0 and the
    input is padded by :func:`pad_same` first.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, dilation=dilation,
                         groups=groups, bias=bias)
        self.same_kernel, self.same_stride, self.same_dilation = kernel_size, stride, dilation

    def forward(self, x: Tensor) -> Tensor:
        """Pad as TF SAME, then convolve."""
        return super().forward(pad_same(x, self.same_kernel, self.same_stride, self.same_dilation))


class PaddleConvBN(nn.Module):
    """PaddleSeg's ``layers.ConvBN`` / ``ConvBNReLU`` (and ResNet-vd's ``ConvBNLayer``): keys
    ``_conv`` and ``_batch_norm``; with TF-SAME padding (PaddleSeg's default ``padding='same'``,
    used by EdgeFlow's and PP-Matting's HRNets) or a symmetric amount.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Convolution stride.
        padding: ``"same"`` (TF SAME, :class:`~ppseg.models.hrnet.Conv2dSame`) or a symmetric
            amount.
        dilation: Convolution dilation.
        groups: Convolution groups (``in_channels`` for depthwise).
        bias: Whether the conv has a bias (PaddleSeg's ``ConvBN*`` default: yes).
        relu: ReLU after the BatchNorm.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int | str = "same", dilation: int = 1, groups: int = 1, bias: bool = True,
                 relu: bool = True) -> None:
        super().__init__()
        if padding == "same":
            self._conv: nn.Conv2d = Conv2dSame(in_channels, out_channels, kernel_size, stride=stride,
                                               dilation=dilation, groups=groups, bias=bias)
        elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
            self._conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                   dilation=dilation, groups=groups, bias=bias)
        else:
            raise ConfigError(f"padding must be 'same' or a non-negative int, got {padding!r}")
        self._batch_norm = _bn(out_channels)
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Convolve, normalise, (ReLU)."""
        return self.act(self._batch_norm(self._conv(x)))


def conv3x3(in_channels: int, out_channels: int, *, stride: int = 1, padding: PaddingMode = "symmetric",
            groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """A 3x3 conv padded ``"symmetric"`` (1 on every side) or ``"same"`` (:class:`Conv2dSame`)."""
    _check_padding(padding)
    if padding == "same":
        return Conv2dSame(in_channels, out_channels, 3, stride=stride, groups=groups, bias=bias)
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=bias)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


# --------------------------------------------------------------------------------------
# Residual blocks (RITM's "V1b" blocks: the stride sits on the 3x3 conv)
# --------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, add the (optionally projected) input, ReLU.

    Keys ``conv1``, ``bn1``, ``conv2``, ``bn2`` and, when given, ``downsample.0`` (1x1 conv) /
    ``downsample.1`` (BN). Every conv is bias-free.

    Args:
        in_channels: Input channels.
        channels: Output channels (``expansion`` is 1).
        stride: Stride of the first conv.
        downsample: Projection of the input for the residual (``None``: identity).
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = _bn(channels)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, H, W]`` -> ``[N, channels, H / stride, W / stride]``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 conv-BN-ReLU, 3x3 conv-BN-ReLU (with the stride), 1x1 conv-BN to ``4 * channels``,
    add the (optionally projected) input, ReLU.

    Keys ``conv1..3``, ``bn1..3`` and, when given, ``downsample.0`` / ``downsample.1``.

    Args:
        in_channels: Input channels.
        channels: Width of the bottleneck; the output has ``4 * channels``.
        stride: Stride of the 3x3 conv.
        downsample: Projection of the input for the residual (``None``: identity).
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = _bn(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _bn(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = _bn(channels * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, H, W]`` -> ``[N, 4 * channels, H / stride, W / stride]``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def make_layer(block: type[BasicBlock] | type[Bottleneck], in_channels: int, channels: int, num_blocks: int, *,
               stride: int = 1) -> nn.Sequential:
    """``num_blocks`` blocks; the first projects the input (1x1 conv + BN, ``downsample``) when its
    stride or width changes. HRNet's ``layer1`` is ``make_layer(Bottleneck, 64, 64, 4)`` (out 256)."""
    out_channels = channels * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   _bn(out_channels))
    layers: list[nn.Module] = [block(in_channels, channels, stride, downsample)]
    layers += [block(out_channels, channels) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------
# Multi-resolution modules, transitions, stages
# --------------------------------------------------------------------------------------


class HighResolutionModule(nn.Module):
    """One HRNet module: a chain of basic blocks per branch, then every branch fused into every branch.

    ``out_i = ReLU(sum_j f_ij(x_j))`` with ``f_ii`` the identity, ``f_ij`` for ``j > i`` a 1x1
    conv + BN to ``c_i`` followed by a bilinear resize to ``x_i``'s size, and for ``j < i`` a
    chain of ``i - j`` stride-2 3x3 convs (the first ``i - j - 1`` conv-BN-ReLU keeping
    ``c_j`` channels, the last conv-BN to ``c_i``). The terms are added in the reference's
    order (``j = 0, 1, ...``).

    Keys ``branches.<i>.<k>.*`` (:class:`BasicBlock`) and ``fuse_layers.<i>.<j>...`` (entry
    ``(i, i)`` is empty).

    Args:
        channels: Width of every branch (also its input width).
        num_blocks: Basic blocks per branch.
        align_corners: Of the upsampling resizes.
        padding: Of the stride-2 3x3 convs (:data:`PaddingMode`).
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, *, align_corners: bool = True,
                 padding: PaddingMode = "symmetric") -> None:
        super().__init__()
        _check_padding(padding)
        if len(channels) < 2:
            raise ConfigError(f"an HRNet module needs at least two branches, got {len(channels)}")
        self.channels = list(channels)
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(num_blocks))) for c in self.channels
        )
        self.fuse_layers = nn.ModuleList()
        for i, ci in enumerate(self.channels):
            row = nn.ModuleList()
            for j, cj in enumerate(self.channels):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(cj, ci, 1, bias=False), _bn(ci)))
                elif j == i:
                    row.append(None)
                else:
                    chain: list[nn.Module] = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = ci if last else cj
                        step: list[nn.Module] = [conv3x3(cj, out, stride=2, padding=padding), _bn(out)]
                        if not last:
                            step.append(nn.ReLU())
                        chain.append(nn.Sequential(*step))
                    row.append(nn.Sequential(*chain))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU()

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        """One tensor per branch in, one per branch out (same shapes)."""
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                if j == i:
                    y = y + xs[j]
                elif j > i:
                    y = y + resize(row[j](xs[j]), xs[i].shape[-2:], align_corners=self.align_corners)
                else:
                    y = y + row[j](xs[j])
            out.append(self.relu(y))
        return out


def make_transition(in_channels: Sequence[int], out_channels: Sequence[int], *,
                    padding: PaddingMode = "symmetric") -> nn.ModuleList:
    """The transition from ``len(in_channels)`` branches to ``len(out_channels)`` (one more).

    Entry ``i`` of an existing branch is a 3x3 conv-BN-ReLU when the width changes and empty
    otherwise; a new branch is a chain of stride-2 3x3 conv-BN-ReLUs from the last old branch
    (one per extra level; all but the last keep its width). Keys ``<i>.0`` / ``<i>.1`` (conv,
    BN) for a kept branch, ``<i>.<k>.0`` / ``<i>.<k>.1`` for a new one.
    """
    n_in = len(in_channels)
    layers = nn.ModuleList()
    for i, c_out in enumerate(out_channels):
        if i < n_in:
            if c_out == in_channels[i]:
                layers.append(None)
            else:
                layers.append(nn.Sequential(conv3x3(in_channels[i], c_out, padding=padding), _bn(c_out), nn.ReLU()))
            continue
        chain = []
        for k in range(i + 1 - n_in):
            c_in = in_channels[-1]
            c = c_out if k == i - n_in else c_in
            chain.append(nn.Sequential(conv3x3(c_in, c, stride=2, padding=padding), _bn(c), nn.ReLU()))
        layers.append(nn.Sequential(*chain))
    return layers


def apply_transition(transition: nn.ModuleList, xs: Sequence[Tensor]) -> list[Tensor]:
    """Run a :func:`make_transition`: kept branches from their own input, new ones from the last."""
    out = []
    for i, layer in enumerate(transition):
        x = xs[i] if i < len(xs) else xs[-1]
        out.append(x if layer is None else layer(x))
    return out


def make_stage(channels: Sequence[int], num_modules: int, num_blocks: int, *, align_corners: bool = True,
               padding: PaddingMode = "symmetric") -> nn.Sequential:
    """``num_modules`` :class:`HighResolutionModule` of the same widths (keys ``<m>.branches...``)."""
    return nn.Sequential(*(HighResolutionModule(channels, num_blocks, align_corners=align_corners, padding=padding)
                           for _ in range(num_modules)))


class HRNetStages(nn.Module):
    """HRNet after the stem and ``layer1``: transitions 1-3 and stages 2-4 (basic blocks).

    Input: ``layer1``'s output (``in_channels``, 256 for the usual bottleneck layer1) at 1/4.
    Output: four branches ``[width, 2 width, 4 width, 8 width]`` at 1/4, 1/8, 1/16, 1/32.
    HRNet-W18: ``width=18``, ``num_modules=(1, 4, 3)``, ``num_blocks=4`` (the "small" variant
    of RITM/EISeg: ``(1, 3, 2)``, 2 blocks).

    Keys ``transition1``, ``stage2``, ``transition2``, ``stage3``, ``transition3``, ``stage4``.
    A network that owns these beside its own layers, in the reference's key order (stem
    first), subclasses this class, registers its stem with ``nn.Module.__init__`` called
    directly, then calls :meth:`build_stages` (see ``ppseg.models.edgeflow``).

    Args:
        in_channels: Channels of the single input branch.
        width: Channels of the highest-resolution branch.
        num_modules: Modules in stages 2, 3, 4.
        num_blocks: Basic blocks per branch in every module.
        align_corners: Of the fuse layers' upsampling.
        padding: Of every 3x3 conv of the transitions and fuse layers (:data:`PaddingMode`).
    """

    def __init__(self, in_channels: int = 256, *, width: int = 18, num_modules: Sequence[int] = (1, 4, 3),
                 num_blocks: int = 4, align_corners: bool = True, padding: PaddingMode = "symmetric") -> None:
        super().__init__()
        self.build_stages(in_channels, width=width, num_modules=num_modules, num_blocks=num_blocks,
                          align_corners=align_corners, padding=padding)

    def build_stages(self, in_channels: int, *, width: int, num_modules: Sequence[int], num_blocks: int,
                     align_corners: bool, padding: PaddingMode) -> None:
        """Register ``transition1..3`` and ``stage2..4`` on ``self``; sets ``out_channels``."""
        _check_padding(padding)
        if len(num_modules) != 3 or min(num_modules) < 1 or num_blocks < 1 or width < 1:
            raise ConfigError(f"HRNet stages need three module counts >= 1, num_blocks >= 1 and width >= 1, "
                              f"got num_modules={tuple(num_modules)}, num_blocks={num_blocks}, width={width}")
        prev = [in_channels]
        for s, modules in zip((2, 3, 4), num_modules):
            cur = [width * 2**b for b in range(s)]
            self.add_module(f"transition{s - 1}", make_transition(prev, cur, padding=padding))
            self.add_module(f"stage{s}", make_stage(cur, modules, num_blocks, align_corners=align_corners,
                                                    padding=padding))
            prev = cur
        self.out_channels: list[int] = prev
        self.strides: list[int] = [4, 8, 16, 32]

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """``layer1``'s output -> the four branch outputs of stage 4."""
        xs = [x]
        for s in (2, 3, 4):
            xs = apply_transition(getattr(self, f"transition{s - 1}"), xs)
            xs = getattr(self, f"stage{s}")(xs)
        return xs

    def forward(self, x: Tensor) -> list[Tensor]:
        """Same as :meth:`forward_stages`."""
        return self.forward_stages(x)
