"""PP-MattingV2 (PaddleSeg ``Matting/``, config ``ppmattingv2-stdc1-human_512``): trimap-free matting.

STDC1 backbone (:mod:`ppseg.models.stdcnet`, features x2..x32 = 32, 64, 256, 512, 1024 ch) ->

* :class:`DoublePyramidPool` (``dpp``): x4, x8, x16 and x32 average-pooled to 1/64 and
  concatenated (1856 ch) -> ``conv_mid`` (1x1 conv with bias + BN) = M; for every bin size
  (2, 4, 6) an adaptive average pool -> one :class:`DPPBlock` (full multi-head attention + conv
  MLP) -> bilinear resize to M's size; the branches are merged (``add``: M + T6 + T4 + T2, or
  ``concat``) -> ``conv_out`` (1x1 conv with bias + BN + ReLU) = D;
* five :class:`MLFF` decoders (1/32 -> 1/2), each fusing its inputs with a spatial attention;
  the 1/4 and 1/2 ones also take the input image area-resized to their size;
* ``matting_head_mlff2x`` on ``concat[resize(mlff2x, input size), image]`` -> sigmoid = alpha.
  In training mode ``matting_head_mlff8x`` also predicts a 1/8 alpha from the mlff8x output.

The input is the RGB image normalised with mean = std = 0.5 (values in [-1, 1]); the sides must
be multiples of 32 and at least 64 (the reference itself fails otherwise: the pyramid pool
concatenates 1/64 maps pooled from different levels).

The DPP attention applies **no** ``1/sqrt(key_dim)`` scaling: the reference computes the scale and
never uses it (:attr:`DPPAttention.scaled` switches it on, for a control only). Every bilinear
resize follows Paddle's rule for an output side of length 1 (:func:`~ppseg.models.layers.paddle_resize`).

State-dict keys equal PaddleSeg's (``backbone.*``, ``dpp.conv_mid._conv.*``,
``dpp.pp2.{i}.1.transformer_blocks.{j}.{attn,mlp}.*``, ``mlff{32,16,8,4,2}x.*``,
``matting_head_mlff{8,2}x.*``) except BN ``_mean``/``_variance`` -> ``running_mean``/``running_var``;
convert a ``.pdparams`` with :func:`ppseg.convert.paddle_keys.paddle_to_torch_state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import ConvBNAct, PaddleConvBNAct, init_conv_bn, paddle_resize
from ppseg.models.pp_liteseg import AdaptiveAvgPool2dMatmul
from ppseg.models.stdcnet import STDCNet, stdc1
from ppseg.models.strideformer import SeaBlock

__all__ = [
    "DPPAttention",
    "DPPBlock",
    "DPPStage",
    "DoublePyramidPool",
    "MLFF",
    "MattingHead",
    "MergeType",
    "PPMattingV2",
    "TASK",
    "pp_mattingv2_stdc1",
]

#: the task these models are for (:func:`ppseg.registry.model_task`)
TASK = "matting"

#: How branches are merged: summed (``"add"``) or concatenated along the channels (``"concat"``).
MergeType = Literal["add", "concat"]


def _conv_bn_c(in_channels: int, out_channels: int) -> ConvBNAct:
    """The reference's transformer "Conv2DBN": 1x1 conv (no bias) + BN, conv named ``c``."""
    return ConvBNAct(in_channels, out_channels, 1, conv_name="c")


def _merge(parts: Sequence[Tensor], merge_type: str) -> Tensor:
    """Concatenate ``parts`` on the channel axis, or sum them left to right (the reference's order)."""
    if merge_type == "concat":
        return torch.cat(list(parts), dim=1)
    merged = parts[0]
    for part in parts[1:]:
        merged = merged + part
    return merged


def _check_merge(merge_type: str) -> None:
    if merge_type not in ("add", "concat"):
        raise ConfigError(f"merge type must be 'add' or 'concat', got {merge_type!r}")


class DPPAttention(nn.Module):
    """Full (non-axial) multi-head attention on a feature map, as in the DPP's transformer blocks.

    q, k = 1x1 conv + BN (``dim -> key_dim * num_heads``), v = 1x1 conv + BN
    (``dim -> attn_ratio * key_dim * num_heads``); heads are head-major on the channel axis.
    ``softmax(q^T k)`` over the ``H * W`` positions (unscaled, see the module docstring) weights v;
    the result goes through ``proj`` = ReLU6 -> 1x1 conv + BN back to ``dim``.

    Args:
        dim: Input / output channels.
        key_dim: Query/key width per head.
        num_heads: Number of heads.
        attn_ratio: Value width per head = ``attn_ratio * key_dim``.

    Attributes:
        scaled: Multiply the logits by ``key_dim ** -0.5`` (``False``, the reference; a control only).

    Shapes:
        ``[N, dim, H, W]`` -> ``[N, dim, H, W]``.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: int = 2) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = attn_ratio * key_dim
        self.scaled = False
        self.to_q = _conv_bn_c(dim, key_dim * num_heads)
        self.to_k = _conv_bn_c(dim, key_dim * num_heads)
        self.to_v = _conv_bn_c(dim, self.value_dim * num_heads)
        self.proj = nn.Sequential(nn.ReLU6(), _conv_bn_c(self.value_dim * num_heads, dim))

    def forward(self, x: Tensor) -> Tensor:
        """Attend over all positions; the output has the shape of ``x``."""
        b, _, h, w = x.shape
        q = self.to_q(x).reshape(b, self.num_heads, self.key_dim, -1).transpose(2, 3)  # [B, h, L, dk]
        k = self.to_k(x).reshape(b, self.num_heads, self.key_dim, -1)  # [B, h, dk, L]
        v = self.to_v(x).reshape(b, self.num_heads, self.value_dim, -1).transpose(2, 3)  # [B, h, L, dv]
        logits = torch.matmul(q, k)
        if self.scaled:
            logits = logits * self.key_dim**-0.5
        out = torch.matmul(torch.softmax(logits, dim=-1), v)  # [B, h, L, dv]
        out = out.transpose(2, 3).reshape(b, self.num_heads * self.value_dim, h, w)
        return self.proj(out)


class DPPBlock(SeaBlock):
    """PP-MobileSeg's transformer block (:class:`~ppseg.models.strideformer.SeaBlock`: ``x +
    DropPath(attn(x))``, then ``x + DropPath(mlp(x))`` with its ``SeaMlp``) with full attention
    (:class:`DPPAttention`) in place of the axial one.

    Args:
        dim: Channels.
        key_dim: Query/key width per head.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``dim``.
        attn_ratio: Value width / key width.
        drop_path: Stochastic-depth probability of both residual branches.
    """

    attention = DPPAttention

    def __init__(self, dim: int, key_dim: int, num_heads: int, mlp_ratio: int = 2, attn_ratio: int = 2,
                 drop_path: float = 0.0) -> None:
        super().__init__(dim, key_dim, num_heads, mlp_ratio, attn_ratio, drop_path)


class DPPStage(nn.Module):
    """A stack of :class:`DPPBlock` s (``transformer_blocks.{i}``); the reference's ``BasicLayer``."""

    def __init__(self, depth: int, dim: int, key_dim: int, num_heads: int, mlp_ratio: int = 2,
                 attn_ratio: int = 2) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"transformer depth must be >= 1, got {depth}")
        self.transformer_blocks = nn.ModuleList(
            DPPBlock(dim, key_dim, num_heads, mlp_ratio, attn_ratio) for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Run the blocks in order."""
        for block in self.transformer_blocks:
            x = block(x)
        return x


class DoublePyramidPool(nn.Module):
    """PP-MattingV2's double pyramid pool module (``dpp``).

    First pyramid: input ``i`` of ``n`` (strides doubling, the last at 1/32) is average-pooled
    with kernel = stride = ``2 ** (n - i)``, so all land at 1/64; concat -> ``conv_mid``.
    Second pyramid: ``pp2.{i}`` = ``Sequential(adaptive avg pool to b x b, DPPStage)`` per bin
    size ``b``, resized back (bilinear, half-pixel) and merged with the ``conv_mid`` output in the
    order ``[mid, last bin, ..., first bin]`` -> ``conv_out``.

    Args:
        in_channels: Total channels of the concatenated inputs.
        mid_channels: Width of ``conv_mid`` and of the transformer blocks.
        out_channels: Output channels.
        num_inputs: Number of input features.
        bin_sizes: Second-pyramid pooled sizes (all > 1).
        depth: Transformer blocks per bin.
        mlp_ratio: MLP hidden width / ``mid_channels``.
        attn_ratio: Value width / key width.
        merge_type: ``"add"`` or ``"concat"`` the second-pyramid branches.
        key_dim: Query/key width per head.
        num_heads: Attention heads.

    Shapes:
        inputs ``[N, C_i, H / s_i, W / s_i]`` (last stride 32) -> ``[N, out_channels, H / 64, W / 64]``.
    """

    def __init__(self, in_channels: int, mid_channels: int = 256, out_channels: int = 256, *, num_inputs: int = 4,
                 bin_sizes: Sequence[int] = (2, 4, 6), depth: int = 1, mlp_ratio: int = 2, attn_ratio: int = 2,
                 merge_type: MergeType = "add", key_dim: int = 16, num_heads: int = 8) -> None:
        super().__init__()
        _check_merge(merge_type)
        if not bin_sizes or min(bin_sizes) < 2:
            raise ConfigError(f"bin_sizes must be non-empty and > 1, got {list(bin_sizes)}")
        self.num_inputs = num_inputs
        self.merge_type = merge_type
        self.conv_mid = PaddleConvBNAct(in_channels, mid_channels, 1, bias=True)
        self.pp2 = nn.ModuleList(
            nn.Sequential(AdaptiveAvgPool2dMatmul(int(b)),
                          DPPStage(depth, mid_channels, key_dim, num_heads, mlp_ratio, attn_ratio))
            for b in bin_sizes
        )
        merged = mid_channels * (1 + len(bin_sizes)) if merge_type == "concat" else mid_channels
        self.conv_out = PaddleConvBNAct(merged, out_channels, 1, bias=True, act="relu")

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """See the class docstring."""
        if len(inputs) != self.num_inputs:
            raise ConfigError(f"expected {self.num_inputs} features, got {len(inputs)}")
        n = len(inputs)
        pooled = [F.avg_pool2d(x, 2 ** (n - i)) for i, x in enumerate(inputs)]
        mid = self.conv_mid(torch.cat(pooled, dim=1))
        size = mid.shape[-2:]
        branches = [paddle_resize(stage(mid), size) for stage in self.pp2]
        return self.conv_out(_merge([mid, *branches[::-1]], self.merge_type))


class MLFF(nn.Module):
    """Multi-level feature fusion (the reference's ``MLFF``).

    Input ``i``: ``pwconvs[i]`` (1x1 conv + BN, no bias) -> bilinear resize to the target size ->
    ``dwconvs[i]`` (depthwise 3x3 conv + BN + ReLU). Spatial attention: the per-input channel mean
    and max, interleaved ``[mean_0, max_0, mean_1, max_1, ...]`` -> ``conv_atten`` (3x3 conv+BN+ReLU
    ``2n -> n``, 3x3 conv+BN ``n -> n``) -> sigmoid; feature ``i`` is scaled by attention channel
    ``i``. The scaled features are concatenated (or summed) -> ``conv_out`` (3x3 conv+BN+ReLU).

    Args:
        in_channels: Channels of each input.
        mid_channels: Width of each input after ``pwconvs``.
        out_channels: Output channels.
        merge_type: ``"concat"`` or ``"add"`` (then all ``mid_channels`` must be equal).

    Shapes:
        inputs ``[N, in_channels[i], h_i, w_i]``, ``size = (H, W)`` -> ``[N, out_channels, H, W]``.
    """

    def __init__(self, in_channels: Sequence[int], mid_channels: Sequence[int], out_channels: int,
                 merge_type: MergeType = "concat") -> None:
        super().__init__()
        _check_merge(merge_type)
        if len(in_channels) != len(mid_channels) or not in_channels:
            raise ConfigError(f"in_channels {list(in_channels)} and mid_channels {list(mid_channels)} "
                              "must be non-empty and of the same length")
        if merge_type == "add" and len(set(mid_channels)) != 1:
            raise ConfigError(f"merge_type 'add' needs equal mid_channels, got {list(mid_channels)}")
        self.merge_type = merge_type
        self.pwconvs = nn.ModuleList(PaddleConvBNAct(c, m, 1) for c, m in zip(in_channels, mid_channels))
        self.dwconvs = nn.ModuleList(PaddleConvBNAct(m, m, 3, groups=m, act="relu") for m in mid_channels)
        n = len(in_channels)
        self.conv_atten = nn.Sequential(PaddleConvBNAct(2 * n, n, 3, act="relu"), PaddleConvBNAct(n, n, 3))
        merged = mid_channels[0] if merge_type == "add" else sum(mid_channels)
        self.conv_out = PaddleConvBNAct(merged, out_channels, 3, act="relu")

    def forward(self, inputs: Sequence[Tensor], size: Sequence[int] | torch.Size) -> Tensor:
        """Fuse ``inputs`` at ``size``."""
        feats = [dw(paddle_resize(pw(x), size)) for pw, dw, x in zip(self.pwconvs, self.dwconvs, inputs)]
        stats: list[Tensor] = []
        for f in feats:
            stats += [f.mean(dim=1, keepdim=True), f.amax(dim=1, keepdim=True)]
        atten = torch.sigmoid(self.conv_atten(torch.cat(stats, dim=1)))
        weighted = [f * atten[:, i : i + 1] for i, f in enumerate(feats)]
        return self.conv_out(_merge(weighted, self.merge_type))


class MattingHead(nn.Module):
    """``conv`` (3x3 conv+BN+ReLU, no bias), ``mid_conv.{i}`` (``mid_num - 1`` more of them),
    ``conv_out`` (1x1 conv, no bias) -> sigmoid.

    Shapes:
        ``[N, in_channels, H, W]`` -> ``[N, out_channels, H, W]`` in [0, 1].
    """

    def __init__(self, in_channels: int, mid_channels: int, mid_num: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        self.conv = PaddleConvBNAct(in_channels, mid_channels, 3, act="relu")
        self.mid_conv = nn.ModuleList(
            PaddleConvBNAct(mid_channels, mid_channels, 3, act="relu") for _ in range(mid_num - 1)
        )
        self.conv_out = nn.Conv2d(mid_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Predict alpha."""
        x = self.conv(x)
        for conv in self.mid_conv:
            x = conv(x)
        return torch.sigmoid(self.conv_out(x))


class PPMattingV2(nn.Module):
    """PP-MattingV2 (see the module docstring).

    Args:
        backbone: A backbone returning five features at strides 2, 4, 8, 16, 32 (STDC1).
        dpp_index: Backbone features fed to the double pyramid pool (the last must be 1/32).
        dpp_mid_channels: DPP ``conv_mid`` / transformer width.
        dpp_out_channels: DPP output channels.
        dpp_bin_sizes: DPP second-pyramid sizes.
        dpp_depth: Transformer blocks per DPP bin.
        dpp_mlp_ratio: DPP MLP expansion.
        dpp_attn_ratio: DPP value width / key width.
        dpp_merge_type: How the DPP merges its branches.
        mlff_merge_type: How the 1/32, 1/16 and 1/8 MLFFs merge their inputs.
        decoder_channels: Output widths of mlff32x, 16x, 8x, 4x, 2x.
        head_channels: Width of the full-resolution matting head.
        in_channels: Image channels (also concatenated into the 1/4, 1/2 and head inputs).

    ``forward(x)``: eval mode -> alpha ``[N, 1, H, W]``; training mode -> ``{"alpha": [N, 1, H, W],
    "alpha_8x": [N, 1, H / 8, W / 8]}`` (the reference's ``logit_dict``; H, W multiples of 32).
    """

    def __init__(
        self,
        backbone: STDCNet,
        *,
        dpp_index: Sequence[int] = (1, 2, 3, 4),
        dpp_mid_channels: int = 256,
        dpp_out_channels: int = 256,
        dpp_bin_sizes: Sequence[int] = (2, 4, 6),
        dpp_depth: int = 1,
        dpp_mlp_ratio: int = 2,
        dpp_attn_ratio: int = 2,
        dpp_merge_type: MergeType = "add",
        mlff_merge_type: MergeType = "concat",
        decoder_channels: Sequence[int] = (128, 96, 64, 32, 16),
        head_channels: int = 8,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        feats = list(backbone.out_channels)
        dec = [int(c) for c in decoder_channels]
        if len(feats) != 5 or len(dec) != 5:
            raise ConfigError(f"need five backbone features and five decoder_channels, got {feats} and {dec}")
        self.backbone = backbone
        self.dpp_index = [int(i) for i in dpp_index]
        if not self.dpp_index or self.dpp_index[-1] != 4:
            raise ConfigError(f"dpp_index must end with the 1/32 feature (4), got {self.dpp_index}")
        d = dpp_out_channels
        self.dpp = DoublePyramidPool(
            sum(feats[i] for i in self.dpp_index), dpp_mid_channels, d, num_inputs=len(self.dpp_index),
            bin_sizes=dpp_bin_sizes, depth=dpp_depth, mlp_ratio=dpp_mlp_ratio, attn_ratio=dpp_attn_ratio,
            merge_type=dpp_merge_type,
        )
        self.mlff32x = MLFF([feats[4], d], [d, d], dec[0], mlff_merge_type)
        self.mlff16x = MLFF([feats[3], dec[0], d], [dec[0]] * 3, dec[1], mlff_merge_type)
        self.mlff8x = MLFF([feats[2], dec[1], d], [dec[1]] * 3, dec[2], mlff_merge_type)
        self.mlff4x = MLFF([feats[1], dec[2], in_channels], [dec[2], dec[2], in_channels], dec[3])
        self.mlff2x = MLFF([feats[0], dec[3], in_channels], [dec[3], dec[3], in_channels], dec[4])
        self.matting_head_mlff8x = MattingHead(dec[2], 32)
        self.matting_head_mlff2x = MattingHead(dec[4] + in_channels, head_channels, mid_num=2)
        init_conv_bn(m for name, m in self.named_modules() if not name.startswith("backbone"))

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        """Alpha (eval) or ``{"alpha", "alpha_8x"}`` (training); see the class docstring.

        Raises:
            ConfigError: a side of ``x`` is not a multiple of 32, or below 64 (the reference fails there too).
        """
        h, w = x.shape[-2:]
        if not torch.jit.is_tracing() and (int(h) % 32 or int(w) % 32 or min(int(h), int(w)) < 64):
            raise ConfigError(f"PP-MattingV2 needs input sides that are multiples of 32 and at least 64, got "
                              f"{int(h)} x {int(w)} (resize or pad the image first)")
        f = self.backbone(x)
        d = self.dpp([f[i] for i in self.dpp_index])
        y = self.mlff32x([f[4], d], f[4].shape[-2:])
        y = self.mlff16x([f[3], y, d], f[3].shape[-2:])
        y = self.mlff8x([f[2], y, d], f[2].shape[-2:])
        alpha_8x = self.matting_head_mlff8x(y) if self.training else None
        y = self.mlff4x([f[1], y, F.interpolate(x, size=f[1].shape[-2:], mode="area")], f[1].shape[-2:])
        y = self.mlff2x([f[0], y, F.interpolate(x, size=f[0].shape[-2:], mode="area")], f[0].shape[-2:])
        alpha = self.matting_head_mlff2x(torch.cat([paddle_resize(y, x.shape[-2:]), x], dim=1))
        if alpha_8x is not None:
            return {"alpha": alpha, "alpha_8x": alpha_8x}
        return alpha


def pp_mattingv2_stdc1(
    *,
    decoder_channels: tuple[int, ...] = (128, 96, 64, 32, 16),
    head_channels: int = 8,
    dpp_out_channels: int = 256,
    dpp_merge_type: MergeType = "add",
    in_channels: int = 3,
) -> PPMattingV2:
    """PP-MattingV2 on STDC1 as in ``ppmattingv2-stdc1-human_512``: 8,947,488 parameters.

    Args:
        decoder_channels: Output widths of the five MLFF decoders (1/32 ... 1/2).
        head_channels: Width of the full-resolution matting head.
        dpp_out_channels: Double-pyramid-pool output channels.
        dpp_merge_type: How the double pyramid pool merges its branches.
        in_channels: Image channels.

    Returns:
        The model (input: RGB normalised with mean = std = 0.5, sides multiples of 32).
    """
    return PPMattingV2(stdc1(in_channels), decoder_channels=decoder_channels, head_channels=head_channels,
                       dpp_out_channels=dpp_out_channels, dpp_merge_type=dpp_merge_type, in_channels=in_channels)
