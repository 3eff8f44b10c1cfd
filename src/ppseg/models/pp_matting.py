"""PP-Matting (Chen et al., "PP-Matting: High-Accuracy Natural Image Matting", 2022), HRNet backbone.

Trimap-free matting in two branches on a PaddleSeg-Matting HRNet (:class:`MattingHRNet`):

* the semantic context branch (:class:`SCB`) on the 1/32 feature: a pyramid pooling module,
  five upsampling stages and a 3-class head (0 foreground, 1 transition, 2 background) at
  input size;
* the high-resolution detail branch (:class:`HRDB`) on the 1/2 and 1/4 features resized to
  the input: three residual blocks, each followed by a gated spatial convolution
  (:class:`GatedSpatialConv`) guided by an SCB stage, then a 1x1 conv to the detail logit;
* fusion: ``alpha = detail * [argmax(semantic) == 1] + [argmax(semantic) == 0]``.

Eval mode returns that alpha ``[N, 1, H, W]`` in [0, 1]. Training mode returns a dict with what
the losses use (spec section 5.2): ``semantic`` (softmax probabilities), ``detail`` (sigmoid),
``fusion`` (the alpha), plus the logits ``semantic_logits`` / ``detail_logits``.

Input: an RGB image normalised with mean = std = 0.5 whose height and width are multiples of
32 (the reference's SCB upsamples by fixed factors and concatenates with the backbone's
pyramid, so any other size fails inside it; the official pipelines resize to such sizes).
Other sizes raise :class:`~ppseg.errors.ConfigError`. :class:`MattingHRNet` on its own takes
any size.

State-dict keys: the model keeps PaddleSeg-Matting's module names, so the reference's
``state_dict()`` keys are ours, in the same order, except the BatchNorm running statistics
(``_mean`` / ``_variance`` -> ``running_mean`` / ``running_var``, plus torch's
``num_batches_tracked``): a checkpoint converts with
:func:`ppseg.convert.paddle_keys.paddle_to_torch_state` and nothing else. Examples:
``backbone.conv_layer1_1._conv.weight``, ``backbone.la1.bb_layer2_1.conv_down._batch_norm.bias``,
``backbone.st4.stage_st4_3.fuse_func.residual_st4_3_layer_4_1_3._conv.weight``,
``scb.psp_module.stages.2.1._conv.bias``, ``hrdb.gates.0._gate_conv.4._mean``.

TF-SAME padding: the Matting HRNet is built with ``padding_same=True``: every 3x3 conv pads
like Paddle's ``padding='same'``, which at stride 2 on an even size is 0 before and 1 after
(not 1 and 1; spec section 1). ``padding_same=False`` gives the symmetric variant (not the
reference; kept as a documented option and as the negative control of the parity tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.hrnet import PaddleConvBN
from ppseg.models.layers import BN_MOMENTUM, resize

__all__ = [
    "GatedSpatialConv",
    "HRDB",
    "MattingHRNet",
    "PPMatting",
    "SCB",
    "TASK",
    "pp_matting_hrnet_w18",
    "pp_matting_hrnet_w48",
]

#: What the models of this module predict (``ppseg.registry.model_task``).
TASK = "matting"

#: Height and width of a PP-Matting input must be multiples of this.
SIZE_DIVISOR = 32


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


# --------------------------------------------------------------------------------------
# The Matting HRNet (PaddleSeg-Matting's own copy, PaddleSeg module names)
# --------------------------------------------------------------------------------------


def _pad3(padding_same: bool) -> int | str:
    return "same" if padding_same else 1


class _HRBottleneck(nn.Module):
    """``layer1`` block: 1x1 CBR, 3x3 CBR, 1x1 CB to ``4 * filters``; ``conv_down`` (1x1 CB) on the
    first block; add, ReLU. All convs bias-free."""

    def __init__(self, in_channels: int, filters: int, *, downsample: bool, padding_same: bool) -> None:
        super().__init__()
        self.conv1 = PaddleConvBN(in_channels, filters, 1, bias=False)
        self.conv2 = PaddleConvBN(filters, filters, 3, padding=_pad3(padding_same), bias=False)
        self.conv3 = PaddleConvBN(filters, filters * 4, 1, bias=False, relu=False)
        self.conv_down = PaddleConvBN(in_channels, filters * 4, 1, bias=False, relu=False) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        residual = x if self.conv_down is None else self.conv_down(x)
        return F.relu(y + residual)


class _HRBasicBlock(nn.Module):
    """Branch block: 3x3 CBR, 3x3 CB, add the input, ReLU (bias-free, no SE)."""

    def __init__(self, channels: int, *, padding_same: bool) -> None:
        super().__init__()
        self.conv1 = PaddleConvBN(channels, channels, 3, padding=_pad3(padding_same), bias=False)
        self.conv2 = PaddleConvBN(channels, channels, 3, padding=_pad3(padding_same), bias=False, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + x)


class _Layer1(nn.Module):
    """``la1``: ``num_blocks`` bottlenecks ``bb_layer2_<k>`` (64 -> 256)."""

    def __init__(self, in_channels: int, filters: int, num_blocks: int, *, padding_same: bool) -> None:
        super().__init__()
        self.names = [f"bb_layer2_{k + 1}" for k in range(num_blocks)]
        for k, name in enumerate(self.names):
            self.add_module(name, _HRBottleneck(in_channels if k == 0 else filters * 4, filters, downsample=k == 0,
                                                padding_same=padding_same))

    def forward(self, x: Tensor) -> Tensor:
        for name in self.names:
            x = getattr(self, name)(x)
        return x


class _Transition(nn.Module):
    """``tr<s>``: a changed-width branch gets a 3x3 CBR, a new branch a stride-2 3x3 CBR from the
    last input branch (``transition_tr<s>_layer_<i>``); an unchanged branch passes through."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], name: str, *,
                 padding_same: bool) -> None:
        super().__init__()
        self.names: list[str | None] = []
        for i, c_out in enumerate(out_channels):
            key = f"transition_{name}_layer_{i + 1}"
            if i < len(in_channels):
                if in_channels[i] == c_out:
                    self.names.append(None)
                    continue
                layer = PaddleConvBN(in_channels[i], c_out, 3, padding=_pad3(padding_same), bias=False)
            else:
                layer = PaddleConvBN(in_channels[-1], c_out, 3, stride=2, padding=_pad3(padding_same), bias=False)
            self.add_module(key, layer)
            self.names.append(key)

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for i, name in enumerate(self.names):
            if name is None:
                out.append(xs[i])
            else:
                out.append(getattr(self, name)(xs[i] if i < len(xs) else xs[-1]))
        return out


class _Branches(nn.Module):
    """``branches_func``: per branch ``i`` a chain of basic blocks ``bb_<name>_branch_layer_<i>_<j>``."""

    def __init__(self, channels: Sequence[int], num_blocks: int, name: str, *, padding_same: bool) -> None:
        super().__init__()
        self.names = [[f"bb_{name}_branch_layer_{i + 1}_{j + 1}" for j in range(num_blocks)]
                      for i in range(len(channels))]
        for c, row in zip(channels, self.names):
            for key in row:
                self.add_module(key, _HRBasicBlock(c, padding_same=padding_same))

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for x, row in zip(xs, self.names):
            for key in row:
                x = getattr(self, key)(x)
            out.append(x)
        return out


class _FuseLayers(nn.Module):
    """``fuse_func``: ``out_i = ReLU(x_i + sum_{j != i} f_ij(x_j))``, terms added in ``j`` order after
    ``x_i`` (the reference's order). ``j > i``: ``residual_<name>_layer_<i>_<j>`` (1x1 CB) then a
    bilinear resize; ``j < i``: ``residual_<name>_layer_<i>_<j>_<k>``, ``i - j`` stride-2 3x3 convs
    (CBR keeping ``c_j``, the last CB to ``c_i``)."""

    def __init__(self, channels: Sequence[int], name: str, *, align_corners: bool, padding_same: bool) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.paths: list[list[tuple[int, list[str]]]] = []
        for i, ci in enumerate(channels):
            row = []
            for j, cj in enumerate(channels):
                if j > i:
                    key = f"residual_{name}_layer_{i + 1}_{j + 1}"
                    self.add_module(key, PaddleConvBN(cj, ci, 1, bias=False, relu=False))
                    row.append((j, [key]))
                elif j < i:
                    keys, c_in = [], cj
                    for k in range(i - j):
                        last = k == i - j - 1
                        key = f"residual_{name}_layer_{i + 1}_{j + 1}_{k + 1}"
                        c_out = ci if last else cj
                        self.add_module(key, PaddleConvBN(c_in, c_out, 3, stride=2, padding=_pad3(padding_same),
                                                          bias=False, relu=not last))
                        keys.append(key)
                        c_in = c_out
                    row.append((j, keys))
            self.paths.append(row)

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for i, row in enumerate(self.paths):
            y = xs[i]
            for j, keys in row:
                z = xs[j]
                for key in keys:
                    z = getattr(self, key)(z)
                if j > i:
                    z = resize(z, xs[i].shape[-2:], align_corners=self.align_corners)
                y = y + z
            out.append(F.relu(y))
        return out


class _HRModule(nn.Module):
    def __init__(self, channels: Sequence[int], num_blocks: int, name: str, *, align_corners: bool,
                 padding_same: bool) -> None:
        super().__init__()
        self.branches_func = _Branches(channels, num_blocks, name, padding_same=padding_same)
        self.fuse_func = _FuseLayers(channels, name, align_corners=align_corners, padding_same=padding_same)

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        return self.fuse_func(self.branches_func(xs))


class _Stage(nn.Module):
    """``st<s>``: ``num_modules`` modules ``stage_st<s>_<m>``."""

    def __init__(self, channels: Sequence[int], num_modules: int, num_blocks: int, name: str, *,
                 align_corners: bool, padding_same: bool) -> None:
        super().__init__()
        self.names = [f"stage_{name}_{m + 1}" for m in range(num_modules)]
        for m, key in enumerate(self.names):
            self.add_module(key, _HRModule(channels, num_blocks, f"{name}_{m + 1}", align_corners=align_corners,
                                           padding_same=padding_same))

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        for key in self.names:
            xs = getattr(self, key)(xs)
        return xs


class MattingHRNet(nn.Module):
    """PaddleSeg-Matting's HRNet (``ppmatting/models/backbone/hrnet.py``; spec section 5.1).

    Stem: two stride-2 3x3 conv-BN-ReLU 3 -> 64 (``conv_layer1_1``, ``conv_layer1_2``); ``la1``:
    4 bottlenecks 64 -> 256; then transitions ``tr1..3`` and stages ``st2..4`` of basic blocks
    with ``(1, 4, 3)`` modules and widths ``width * (1, 2, 4, 8)``.

    Returns five features: the first stem conv's output (64 @ 1/2), then the four stage-4
    branches (@ 1/4, 1/8, 1/16, 1/32); ``feat_channels`` lists their widths. Takes any input
    size (the fuse layers resize the upsampled terms to each branch's size).

    Args:
        width: Channels of the highest-resolution branch (18: W18, 48: W48).
        in_channels: Input image channels.
        num_modules: Modules in stages 2, 3, 4.
        num_blocks: Blocks in ``la1`` and in each branch of every module.
        align_corners: Of the fuse layers' bilinear resizes (reference: ``False``).
        padding_same: TF-SAME padding of every 3x3 conv (reference: ``True``); ``False`` pads 1.
    """

    def __init__(self, width: int = 18, *, in_channels: int = 3, num_modules: Sequence[int] = (1, 4, 3),
                 num_blocks: int = 4, align_corners: bool = False, padding_same: bool = True) -> None:
        super().__init__()
        if width < 1 or in_channels < 1 or num_blocks < 1 or len(num_modules) != 3 or min(num_modules) < 1:
            raise ConfigError(f"MattingHRNet needs width, in_channels, num_blocks >= 1 and three module counts "
                              f">= 1, got width={width}, in_channels={in_channels}, num_blocks={num_blocks}, "
                              f"num_modules={tuple(num_modules)}")
        pad = _pad3(padding_same)
        self.conv_layer1_1 = PaddleConvBN(in_channels, 64, 3, stride=2, padding=pad, bias=False)
        self.conv_layer1_2 = PaddleConvBN(64, 64, 3, stride=2, padding=pad, bias=False)
        self.la1 = _Layer1(64, 64, num_blocks, padding_same=padding_same)
        prev = [256]
        for s, modules in zip((2, 3, 4), num_modules):
            cur = [width * 2**b for b in range(s)]
            self.add_module(f"tr{s - 1}", _Transition(prev, cur, f"tr{s - 1}", padding_same=padding_same))
            self.add_module(f"st{s}", _Stage(cur, modules, num_blocks, f"st{s}", align_corners=align_corners,
                                             padding_same=padding_same))
            prev = cur
        self.feat_channels: list[int] = [64, *prev]
        self.strides: list[int] = [2, 4, 8, 16, 32]
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's initialisation: conv weights ~ N(0, 0.001), BN weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[N, C, H, W]`` -> ``[64 @ 1/2, w @ 1/4, 2w @ 1/8, 4w @ 1/16, 8w @ 1/32]``."""
        conv1 = self.conv_layer1_1(x)
        xs = [self.la1(self.conv_layer1_2(conv1))]
        for s in (2, 3, 4):
            xs = getattr(self, f"st{s}")(getattr(self, f"tr{s - 1}")(xs))
        return [conv1, *xs]


# --------------------------------------------------------------------------------------
# Semantic context branch
# --------------------------------------------------------------------------------------


class _PPModule(nn.Module):
    """PaddleSeg ``layers.PPModule`` without channel reduction: per bin an adaptive average pool and
    a 1x1 CBR (``stages.<b>.1``), resized back (bilinear); ``conv_bn_relu2`` (3x3 CBR) on
    ``concat[x, bins in reverse order]``."""

    def __init__(self, in_channels: int, out_channels: int, bin_sizes: Sequence[int] = (1, 3, 5),
                 align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), PaddleConvBN(in_channels, in_channels, 1)) for b in bin_sizes
        )
        self.conv_bn_relu2 = PaddleConvBN(in_channels * (len(bin_sizes) + 1), out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = [resize(stage(x), x.shape[-2:], align_corners=self.align_corners) for stage in self.stages]
        return self.conv_bn_relu2(torch.cat([x, *pooled[::-1]], dim=1))


def _upsample(scale: int) -> nn.Upsample:
    return nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False)


class SCB(nn.Module):
    """Semantic context branch (spec section 5.2) on the 1/32 feature (``in_channels`` wide).

    Returns the six stage outputs (256 @ 1/16, 128 @ 1/8, 64 @ 1/4, 64 @ 1/2, 64 @ 1/1 and the
    3-class logits @ 1/1); ``out_channels`` lists their widths. Every conv has a bias.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        ins = [512 + in_channels, 512, 256, 128, 128, 64]
        mids = [512, 256, 128, 128, 64, 64]
        self.out_channels: list[int] = [256, 128, 64, 64, 64, 3]
        self.psp_module = _PPModule(in_channels, 512, (1, 3, 5))
        self.psps = nn.ModuleList(
            nn.Sequential(PaddleConvBN(512, self.out_channels[i], 3, padding=1), _upsample(2 ** (i + 1)))
            for i in range(4)
        )
        stages: list[nn.Module] = []
        for i in range(5):
            d = 2 if i == 0 else 1
            stages.append(nn.Sequential(
                PaddleConvBN(ins[i], mids[i], 3, padding=1),
                PaddleConvBN(mids[i], mids[i], 3, padding=d, dilation=d),
                PaddleConvBN(mids[i], self.out_channels[i], 3, padding=d, dilation=d),
                _upsample(2),
            ))
        stages.append(nn.Sequential(
            PaddleConvBN(ins[5], mids[5], 3, padding=1),
            PaddleConvBN(mids[5], mids[5], 3, padding=1),
            nn.Conv2d(mids[5], self.out_channels[5], 3, padding=1),
        ))
        self.scb_stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        """1/32 feature -> the six stage outputs, the last the semantic logits."""
        psp_x = self.psp_module(x)
        psps = [psp(psp_x) for psp in self.psps]
        logits = []
        for i, stage in enumerate(self.scb_stages):
            if i == 0:
                x = stage(torch.cat([psp_x, x], dim=1))
            elif i <= len(psps):
                x = stage(torch.cat([psps[i - 1], x], dim=1))
            else:
                x = stage(x)
            logits.append(x)
        return logits


# --------------------------------------------------------------------------------------
# High-resolution detail branch
# --------------------------------------------------------------------------------------


class _VdBasicBlock(nn.Module):
    """ResNet-vd ``BasicBlock`` at stride 1: ``conv0`` (3x3 CBR), ``conv1`` (3x3 CB), shortcut the
    input or ``short`` (1x1 CB) when ``project``; add, ReLU. Bias-free convs."""

    def __init__(self, in_channels: int, channels: int, *, project: bool) -> None:
        super().__init__()
        self.conv0 = PaddleConvBN(in_channels, channels, 3, padding=1, bias=False)
        self.conv1 = PaddleConvBN(channels, channels, 3, padding=1, bias=False, relu=False)
        self.short = PaddleConvBN(in_channels, channels, 1, padding=0, bias=False, relu=False) if project else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(self.conv0(x))
        return F.relu((x if self.short is None else self.short(x)) + y)


class GatedSpatialConv(nn.Module):
    """Gated spatial convolution (reference ``GatedSpatailConv2d``, 1x1).

    ``a = Sigmoid(BN(Conv(ReLU(Conv(BN(concat[x, g]))))))`` (``_gate_conv.{0,1,3,4}``, convs
    with bias, ``c + 1 -> c + 1 -> 1``); output ``conv(x * (1 + a))`` (``conv``, no bias).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self._gate_conv = nn.Sequential(
            _bn(channels + 1),
            nn.Conv2d(channels + 1, channels + 1, 1),
            nn.ReLU(),
            nn.Conv2d(channels + 1, 1, 1),
            _bn(1),
            nn.Sigmoid(),
        )
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        """``x [N, c, H, W]``, ``gate [N, 1, H, W]`` -> ``[N, c, H, W]``."""
        a = self._gate_conv(torch.cat([x, gate], dim=1))
        return self.conv(x * (a + 1))


class HRDB(nn.Module):
    """High-resolution detail branch (spec section 5.2): returns the detail logit ``[N, 1, H, W]``.

    Args:
        in_channels: Channels of the full-resolution input (64 + width).
        scb_channels: Widths of the SCB outputs.
        gf_index: Which SCB outputs guide the three gates.
    """

    def __init__(self, in_channels: int, scb_channels: Sequence[int], gf_index: Sequence[int] = (0, 2, 4)) -> None:
        super().__init__()
        self.gf_index = tuple(gf_index)
        channels = [64, 32, 16, 8]
        self.gf_list = nn.ModuleList(nn.Conv2d(scb_channels[i], 1, 1) for i in self.gf_index)
        self.res_list = nn.ModuleList(
            [_VdBasicBlock(in_channels, channels[0], project=True)]
            + [_VdBasicBlock(c, c, project=False) for c in channels[1:-1]]
        )
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 1) for i in range(len(channels) - 1))
        self.gates = nn.ModuleList(GatedSpatialConv(c) for c in channels[1:])
        self.detail_conv = nn.Conv2d(channels[-1], 1, 1, bias=False)

    def forward(self, x: Tensor, scb_logits: Sequence[Tensor]) -> Tensor:
        for i, (res, conv, gf, gate) in enumerate(zip(self.res_list, self.convs, self.gf_list, self.gates)):
            x = conv(res(x))
            g = resize(gf(scb_logits[self.gf_index[i]]), x.shape[-2:], align_corners=False)
            x = gate(x, g)
        return self.detail_conv(x)


# --------------------------------------------------------------------------------------
# PP-Matting
# --------------------------------------------------------------------------------------


class PPMatting(nn.Module):
    """PP-Matting on a :class:`MattingHRNet` (reference ``PPMatting(backbone=HRNet_W*())``).

    Eval: ``forward(x)`` -> alpha ``[N, 1, H, W]``. Training: a dict ``semantic`` (softmax of the
    3-class logits, class 0 foreground / 1 transition / 2 background), ``detail`` (sigmoid of
    the detail logit), ``fusion`` (alpha), ``semantic_logits``, ``detail_logits``, all at input
    size.

    Args:
        backbone: The HRNet (its ``feat_channels`` are read).
    """

    def __init__(self, backbone: MattingHRNet) -> None:
        super().__init__()
        self.backbone = backbone
        channels = list(backbone.feat_channels)
        self.scb = SCB(channels[-1])
        self.hrdb = HRDB(channels[0] + channels[1], self.scb.out_channels, (0, 2, 4))

    @staticmethod
    def fusion(semantic: Tensor, detail: Tensor) -> Tensor:
        """``detail`` where the semantic argmax is transition (1), 1 where foreground (0), else 0."""
        index = semantic.argmax(dim=1, keepdim=True)
        return detail * (index == 1).to(detail.dtype) + (index == 0).to(detail.dtype)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ConfigError(f"PP-Matting expects an image batch [N, C, H, W], got shape {tuple(x.shape)}")
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if h % SIZE_DIVISOR or w % SIZE_DIVISOR or h == 0 or w == 0:
            raise ConfigError(f"PP-Matting needs height and width that are positive multiples of {SIZE_DIVISOR} "
                              f"(resize the image, e.g. to the nearest multiple), got {h}x{w}")

    def forward_all(self, x: Tensor) -> dict[str, Tensor]:
        """Every output: ``semantic_logits``, ``semantic``, ``detail_logits``, ``detail``, ``fusion``."""
        if not torch.jit.is_tracing():
            self._check(x)
        feats = self.backbone(x)
        scb_logits = self.scb(feats[-1])
        semantic_logits = scb_logits[-1]
        semantic = F.softmax(semantic_logits, dim=1)
        size = x.shape[-2:]
        hr = torch.cat([resize(feats[0], size, align_corners=False), resize(feats[1], size, align_corners=False)],
                       dim=1)
        detail_logits = self.hrdb(hr, scb_logits)
        detail = torch.sigmoid(detail_logits)
        return {"semantic_logits": semantic_logits, "semantic": semantic, "detail_logits": detail_logits,
                "detail": detail, "fusion": self.fusion(semantic, detail)}

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        """Eval: alpha ``[N, 1, H, W]``; training: the dict of :meth:`forward_all`."""
        out = self.forward_all(x)
        return out if self.training else out["fusion"]


def _pp_matting(width: int, in_channels: int, padding_same: bool) -> PPMatting:
    return PPMatting(MattingHRNet(width, in_channels=in_channels, padding_same=padding_same))


def pp_matting_hrnet_w18(*, in_channels: int = 3, padding_same: bool = True) -> PPMatting:
    """PP-Matting with HRNet-W18 (config ``ppmatting-hrnet_w18-human_512``): 24,503,954 parameters.

    Args:
        in_channels: Input image channels.
        padding_same: TF-SAME padding in the HRNet (the reference); ``False`` pads 3x3 convs by 1.

    Returns:
        The model.
    """
    return _pp_matting(18, in_channels, padding_same)


def pp_matting_hrnet_w48(*, in_channels: int = 3, padding_same: bool = True) -> PPMatting:
    """PP-Matting with HRNet-W48 (Composition-1k / Distinctions-646 configs): 86,197,934 parameters.

    Args:
        in_channels: Input image channels.
        padding_same: TF-SAME padding in the HRNet (the reference); ``False`` pads 3x3 convs by 1.

    Returns:
        The model.
    """
    return _pp_matting(48, in_channels, padding_same)
