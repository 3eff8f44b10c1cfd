"""StrideFormer: the backbone of PP-MobileSeg (Tang et al., "PP-MobileSeg", 2023).

A MobileNetV3-style convolutional trunk with two stages of strided Sea-attention
transformer blocks (SeaFormer's squeeze-enhanced axial attention, run at half the
stage resolution), followed by a fusion module that merges the 1/8, 1/16 and 1/32
features into one 256-channel map:

* :class:`AAM` (Tiny): output at stride 16;
* :class:`AAMStride8` (Base; PaddleSeg calls it ``AAMSx8``): output at stride 8.

Layout (module names reproduce PaddleSeg's state-dict keys; only BN ``_mean`` /
``_variance`` become ``running_mean`` / ``running_var``)::

    smb1      conv (stem: 3x3 s2 conv + BN + Hardswish), blocks.{i}   -> 1/4
    smb2      blocks.{i}                                              -> 1/8   (x8)
    smb3      blocks.{i}                                              -> 1/16
    trans1    transformer_blocks.{i}.{attn, mlp}                      -> 1/16  (x16)
    smb4      blocks.{i}                                              -> 1/32
    trans2    transformer_blocks.{i}.{attn, mlp}                      -> 1/32  (x32)
    inj_module  embedding_list.{i}, act_embedding_list.{i}            -> 1/8 or 1/16

``smb*.blocks.{i}`` are :class:`~ppseg.models.mobilenetv3.ResidualUnit` s whose convs
are named ``c`` (``expand_conv.c.weight``). Inside the transformer, a "Conv2d + BN"
unit is a :class:`~ppseg.models.layers.ConvBNAct` without activation whose conv is
also named ``c``; the fusion module's convs are named ``conv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import ConvBNAct, get_activation, init_conv_bn, resize
from ppseg.models.mobilenetv3 import BlockConfig, ResidualUnit

__all__ = [
    "AAM",
    "AAMStride8",
    "DropPath",
    "SeaAttention",
    "SeaBlock",
    "SqueezeAxialPositionalEmbedding",
    "STRIDEFORMER_CONFIGS",
    "StrideFormer",
    "StrideFormerConfig",
]

FusionType = Literal["aam", "aam_stride8"]
GateActivation = Literal["sigmoid", "relu6"]

#: Conv attribute name inside PaddleSeg's StrideFormer conv+BN units (``*.c.weight``).
_CONV_NAME = "c"
#: Conv attribute name inside the fusion module's conv+BN units (``*.conv.weight``).
_FUSION_CONV_NAME = "conv"
#: Length at which the squeeze-axial positional embeddings are stored.
POS_EMBED_LENGTH = 16


# --------------------------------------------------------------------------------------
# Variant tables
# --------------------------------------------------------------------------------------

_HS = "hardswish"


@dataclass(frozen=True)
class StrideFormerConfig:
    """Architecture of one StrideFormer variant.

    Attributes:
        stem_channels: Output channels of the 3x3 stride-2 stem (inside ``smb1``).
        stages: Residual-unit tables of ``smb1`` .. ``smb4``.
        depths: Number of Sea-attention blocks in ``trans1`` and ``trans2``.
        num_heads: Attention heads (both transformer stages).
        key_dims: Per-head query/key width of ``trans1`` and ``trans2``.
        attn_ratio: Value width = ``attn_ratio * key_dim`` per head.
        mlp_ratios: MLP hidden width / embedding width of ``trans1`` and ``trans2``.
        fusion: Default fusion module.
        fusion_channels: Output channels of the fusion module.
    """

    stem_channels: int
    stages: tuple[tuple[BlockConfig, ...], ...]
    depths: tuple[int, int]
    num_heads: int
    key_dims: tuple[int, int] = (16, 24)
    attn_ratio: int = 2
    mlp_ratios: tuple[int, int] = (2, 4)
    fusion: FusionType = "aam"
    fusion_channels: int = 256

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of ``smb1`` .. ``smb4``."""
        return tuple(stage[-1].out_channels for stage in self.stages)


#: The two published variants (PaddleSeg ``MobileSeg_Base`` / ``MobileSeg_Tiny``).
STRIDEFORMER_CONFIGS: dict[str, StrideFormerConfig] = {
    "base": StrideFormerConfig(
        stem_channels=16,
        stages=(
            (
                BlockConfig(3, 16, 16, True, "relu", 1),
                BlockConfig(3, 64, 32, False, "relu", 2),
                BlockConfig(3, 96, 32, False, "relu", 1),
            ),
            (BlockConfig(5, 128, 64, True, _HS, 2), BlockConfig(5, 240, 64, True, _HS, 1)),
            (BlockConfig(5, 384, 128, True, _HS, 2), BlockConfig(5, 384, 128, True, _HS, 1)),
            (BlockConfig(5, 768, 192, True, _HS, 2), BlockConfig(5, 768, 192, True, _HS, 1)),
        ),
        depths=(3, 3),
        num_heads=8,
        fusion="aam_stride8",
    ),
    "tiny": StrideFormerConfig(
        stem_channels=16,
        stages=(
            (
                BlockConfig(3, 16, 16, True, "relu", 1),
                BlockConfig(3, 64, 32, False, "relu", 2),
                BlockConfig(3, 48, 24, False, "relu", 1),
            ),
            (BlockConfig(5, 96, 32, True, _HS, 2), BlockConfig(5, 96, 32, True, _HS, 1)),
            (BlockConfig(5, 160, 64, True, _HS, 2), BlockConfig(5, 160, 64, True, _HS, 1)),
            (BlockConfig(3, 384, 128, True, _HS, 2), BlockConfig(3, 384, 128, True, _HS, 1)),
        ),
        depths=(2, 2),
        num_heads=4,
        fusion="aam",
    ),
}


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int = 1, *, groups: int = 1) -> ConvBNAct:
    """PaddleSeg's "Conv2d_BN": conv (no bias, padding ``(k - 1) // 2``) + BN, conv named ``c``."""
    return ConvBNAct(in_channels, out_channels, kernel_size, groups=groups, conv_name=_CONV_NAME)


# --------------------------------------------------------------------------------------
# Convolutional stages (smb1 .. smb4)
# --------------------------------------------------------------------------------------


class MobileStage(nn.Module):
    """A run of MobileNetV3 residual units, optionally preceded by the stem (``conv``).

    Args:
        in_channels: Input channels.
        blocks: Residual-unit table.
        stem_channels: Build the 3x3 stride-2 stem (``conv``) with this many output
            channels first; ``None`` for no stem.
    """

    def __init__(self, in_channels: int, blocks: Sequence[BlockConfig], stem_channels: int | None = None) -> None:
        super().__init__()
        self.conv: nn.Module | None = None
        if stem_channels is not None:
            self.conv = ConvBNAct(in_channels, stem_channels, 3, stride=2, act=_HS, conv_name=_CONV_NAME)
            in_channels = stem_channels
        units = []
        for cfg in blocks:
            units.append(
                ResidualUnit(
                    in_channels,
                    cfg.expand_channels,
                    cfg.out_channels,
                    cfg.kernel_size,
                    stride=cfg.stride,
                    use_se=cfg.use_se,
                    act=cfg.act,
                    conv_name=_CONV_NAME,
                )
            )
            in_channels = cfg.out_channels
        self.blocks = nn.Sequential(*units)

    def forward(self, x: Tensor) -> Tensor:
        """Run the stem (if any) and the residual units."""
        if self.conv is not None:
            x = self.conv(x)
        return self.blocks(x)


# --------------------------------------------------------------------------------------
# Sea attention (trans1, trans2)
# --------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """Stochastic depth: zero whole samples with probability ``p`` during training.

    Kept samples are divided by ``1 - p`` (Paddle and timm semantics). Identity in eval
    mode or when ``p == 0``.

    Args:
        p: Drop probability.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Drop samples of ``x`` (training mode only)."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        """Show the drop probability in ``repr``."""
        return f"p={self.p}"


class SqueezeAxialPositionalEmbedding(nn.Module):
    """Learned 1-D positional embedding, linearly resized to the sequence length.

    The parameter ``pos_embed`` has shape ``[1, channels, 16]``; it is resized with
    1-D linear interpolation (half-pixel centres) to the length ``L`` of the input
    ``[B, channels, L]`` and added to it.

    Args:
        channels: Embedding channels.
        length: Stored length.
    """

    def __init__(self, channels: int, length: int = POS_EMBED_LENGTH) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, channels, length))

    def forward(self, x: Tensor) -> Tensor:
        """Add the embedding resized to ``x.shape[-1]``."""
        pos = F.interpolate(self.pos_embed, size=x.shape[-1], mode="linear", align_corners=False)
        return x + pos


class SeaAttention(nn.Module):
    """Squeeze-enhanced axial attention with a stride-2 pre-conv (PaddleSeg ``Sea_Attention``).

    ``x`` is first downsampled by ``stride_conv`` (depthwise 3x3 stride 2 with bias, BN);
    q/k/v are 1x1 conv+BN. Two axial attentions run on the row means (over width) and
    column means (over height) of q/k/v, with positional embeddings on q and k; their
    outputs are broadcast, added to ``v``, projected and passed through a hard sigmoid
    that gates the "detail" branch (depthwise 3x3 + pointwise conv on concat(q, k, v)).
    The result is resized back to the input size (bilinear, half-pixel).

    Heads are laid out head-major on the channel axis (channel = head * width + j).

    Args:
        dim: Input / output channels.
        key_dim: Query/key width per head.
        num_heads: Number of heads.
        attn_ratio: Value width per head = ``attn_ratio * key_dim``.
        stride: Run the attention at half resolution (``stride_conv``), as all
            PP-MobileSeg configs do.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: int = 2, stride: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = attn_ratio * key_dim
        self.scale = key_dim**-0.5
        qk_channels = key_dim * num_heads
        v_channels = self.value_dim * num_heads

        self.to_q = _conv_bn(dim, qk_channels)
        self.to_k = _conv_bn(dim, qk_channels)
        self.to_v = _conv_bn(dim, v_channels)
        self.stride_conv: nn.Module | None = None
        if stride:
            self.stride_conv = nn.Sequential(
                nn.Conv2d(dim, dim, 3, stride=2, padding=1, groups=dim, bias=True),
                nn.BatchNorm2d(dim),
            )
        self.proj = nn.Sequential(nn.ReLU6(), _conv_bn(v_channels, dim))
        self.proj_encode_row = nn.Sequential(nn.ReLU6(), _conv_bn(v_channels, v_channels))
        self.pos_emb_rowq = SqueezeAxialPositionalEmbedding(qk_channels)
        self.pos_emb_rowk = SqueezeAxialPositionalEmbedding(qk_channels)
        self.proj_encode_column = nn.Sequential(nn.ReLU6(), _conv_bn(v_channels, v_channels))
        self.pos_emb_columnq = SqueezeAxialPositionalEmbedding(qk_channels)
        self.pos_emb_columnk = SqueezeAxialPositionalEmbedding(qk_channels)
        detail_channels = 2 * qk_channels + v_channels
        self.dwconv = _conv_bn(detail_channels, detail_channels, 3, groups=detail_channels)
        self.act = nn.ReLU6()
        self.pwconv = _conv_bn(detail_channels, dim)
        self.gate = nn.Hardsigmoid()  # relu6(x + 3) / 6, PaddleSeg's "HSigmoid"

    def _axial_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Multi-head attention along one axis: ``q, k`` ``[B, h*dk, L]``, ``v`` ``[B, h*dv, L]``.

        Returns ``[B, h*dv, L]``.
        """
        b = q.shape[0]
        q = q.reshape(b, self.num_heads, self.key_dim, -1).transpose(2, 3)  # [B, h, L, dk]
        k = k.reshape(b, self.num_heads, self.key_dim, -1)  # [B, h, dk, L]
        v = v.reshape(b, self.num_heads, self.value_dim, -1).transpose(2, 3)  # [B, h, L, dv]
        attn = torch.softmax(torch.matmul(q, k) * self.scale, dim=-1)
        out = torch.matmul(attn, v)  # [B, h, L, dv]
        return out.transpose(2, 3).reshape(b, self.num_heads * self.value_dim, -1)

    def forward(self, x: Tensor) -> Tensor:
        """Attend; the output has the shape of ``x``."""
        in_size = x.shape[-2:]
        if self.stride_conv is not None:
            x = self.stride_conv(x)
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)

        detail = self.pwconv(self.act(self.dwconv(torch.cat([q, k, v], dim=1))))

        rows = self._axial_attention(
            self.pos_emb_rowq(q.mean(dim=-1)), self.pos_emb_rowk(k.mean(dim=-1)), v.mean(dim=-1)
        )
        rows = self.proj_encode_row(rows.unsqueeze(-1))  # [B, dh, H, 1]
        columns = self._axial_attention(
            self.pos_emb_columnq(q.mean(dim=-2)), self.pos_emb_columnk(k.mean(dim=-2)), v.mean(dim=-2)
        )
        columns = self.proj_encode_column(columns.unsqueeze(-2))  # [B, dh, 1, W]

        out = self.gate(self.proj(rows + columns + v)) * detail
        if self.stride_conv is not None:
            out = resize(out, in_size)
        return out


class SeaMlp(nn.Module):
    """Transformer MLP: 1x1 conv+BN -> depthwise 3x3 conv (bias) -> ReLU6 -> 1x1 conv+BN.

    Args:
        dim: Input / output channels.
        hidden: Hidden channels.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = _conv_bn(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=True)
        self.act = nn.ReLU6()
        self.fc2 = _conv_bn(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the MLP."""
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class SeaBlock(nn.Module):
    """Transformer block: ``x + DropPath(attn(x))``, then ``x + DropPath(mlp(x))``.

    The attention is built by :attr:`attention` (``SeaAttention``; PP-MattingV2's DPP blocks
    subclass this with full attention).

    Args:
        dim: Channels.
        key_dim: Query/key width per head.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``dim``.
        attn_ratio: Value width / key width.
        drop_path: Stochastic-depth probability of both residual branches.
    """

    attention: type[nn.Module] = SeaAttention

    def __init__(
        self, dim: int, key_dim: int, num_heads: int, mlp_ratio: int, attn_ratio: int = 2, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.attn = self.attention(dim, key_dim, num_heads, attn_ratio)
        self.mlp = SeaMlp(dim, dim * mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        """Run attention and MLP with residual connections."""
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class SeaStage(nn.Module):
    """A stack of :class:`SeaBlock` s (``transformer_blocks.{i}``).

    Args:
        dim: Channels.
        depth: Number of blocks.
        key_dim: Query/key width per head.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``dim``.
        attn_ratio: Value width / key width.
        drop_path_rate: The blocks' drop-path probabilities go linearly from 0 to this.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        key_dim: int,
        num_heads: int,
        mlp_ratio: int,
        attn_ratio: int = 2,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        rates = torch.linspace(0.0, drop_path_rate, depth).tolist()
        self.transformer_blocks = nn.ModuleList(
            SeaBlock(dim, key_dim, num_heads, mlp_ratio, attn_ratio, drop_path=rate) for rate in rates
        )

    def forward(self, x: Tensor) -> Tensor:
        """Run the blocks in order."""
        for block in self.transformer_blocks:
            x = block(x)
        return x


# --------------------------------------------------------------------------------------
# Fusion modules (inj_module)
# --------------------------------------------------------------------------------------


def _embedding(in_channels: int, out_channels: int) -> ConvBNAct:
    """1x1 conv (no bias) + BN, conv named ``conv``."""
    return ConvBNAct(in_channels, out_channels, 1, conv_name=_FUSION_CONV_NAME)


class AAM(nn.Module):
    """Aggregated Attention Module of PP-MobileSeg-Tiny; output at stride 16.

    With inputs ``[x8, x16, x32]``: ``x8`` is halved (bilinear, ``scale_factor=0.5``)
    and ``x16`` resized to that size; ``x32`` is embedded at its own size and resized
    afterwards. With ``G_i = gate(act_embedding_list.i(.))`` and
    ``L_i = embedding_list.i(.)``::

        out = G1 * G2 * G3 * (L1 + L2) + L3

    Args:
        in_channels: Channels of ``x8``, ``x16``, ``x32``.
        out_channels: Output channels.
        gate_act: Gate activation (``"sigmoid"``: PaddleSeg develop / mmseg;
            ``"relu6"``: PaddleSeg 2.8.0, the release that published the checkpoints).
    """

    output_stride: int = 16

    def __init__(
        self, in_channels: Sequence[int], out_channels: int = 256, gate_act: GateActivation = "sigmoid"
    ) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ConfigError(f"AAM fuses three features, got in_channels={list(in_channels)}")
        self.embedding_list = nn.ModuleList(_embedding(c, out_channels) for c in in_channels)
        self.act_embedding_list = nn.ModuleList(_embedding(c, out_channels) for c in in_channels)
        self.gate = get_activation(gate_act)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Fuse ``[x8, x16, x32]`` into one map at 1/16."""
        x8, x16, x32 = feats
        x8 = F.interpolate(x8, scale_factor=0.5, mode="bilinear", align_corners=False)
        size = x8.shape[-2:]
        x16 = resize(x16, size)
        gate = self.gate(self.act_embedding_list[0](x8))
        gate = gate * self.gate(self.act_embedding_list[1](x16))
        gate = gate * resize(self.gate(self.act_embedding_list[2](x32)), size)
        local = self.embedding_list[0](x8) + self.embedding_list[1](x16)
        return gate * local + resize(self.embedding_list[2](x32), size)


class AAMStride8(nn.Module):
    """Aggregated Attention Module of PP-MobileSeg-Base; output at stride 8 (``AAMSx8``).

    With inputs ``[x8, x16, x32]``: ``x16`` is resized to the size of ``x8`` before its
    gate embedding; ``x32`` is embedded at its own size and resized afterwards::

        out = gate(act_embedding_list.0(x16)) * gate(act_embedding_list.1(x32))
              * embedding_list.0(x8) + embedding_list.1(x32)

    Args:
        in_channels: Channels of ``x8``, ``x16``, ``x32``.
        out_channels: Output channels.
        gate_act: Gate activation, as in :class:`AAM`.
    """

    output_stride: int = 8

    def __init__(
        self, in_channels: Sequence[int], out_channels: int = 256, gate_act: GateActivation = "sigmoid"
    ) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ConfigError(f"AAMStride8 fuses three features, got in_channels={list(in_channels)}")
        c8, c16, c32 = in_channels
        self.embedding_list = nn.ModuleList([_embedding(c8, out_channels), _embedding(c32, out_channels)])
        self.act_embedding_list = nn.ModuleList([_embedding(c16, out_channels), _embedding(c32, out_channels)])
        self.gate = get_activation(gate_act)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Fuse ``[x8, x16, x32]`` into one map at 1/8."""
        x8, x16, x32 = feats
        size = x8.shape[-2:]
        gate = self.gate(self.act_embedding_list[0](resize(x16, size)))
        gate = gate * resize(self.gate(self.act_embedding_list[1](x32)), size)
        return gate * self.embedding_list[0](x8) + resize(self.embedding_list[1](x32), size)


_FUSIONS: dict[str, type[AAM] | type[AAMStride8]] = {"aam": AAM, "aam_stride8": AAMStride8}


# --------------------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------------------


class StrideFormer(nn.Module):
    """StrideFormer backbone with its fusion module (PaddleSeg ``MobileSeg_Base/Tiny``).

    Args:
        variant: ``"base"`` or ``"tiny"`` (see :data:`STRIDEFORMER_CONFIGS`).
        in_channels: Input image channels.
        fusion: ``"aam"`` (stride 16, Tiny's default) or ``"aam_stride8"`` (stride 8,
            Base's default); ``None`` uses the variant's default.
        aam_gate_act: Gate activation of the fusion module: ``"sigmoid"`` (PaddleSeg
            develop and mmseg) or ``"relu6"`` (PaddleSeg 2.8.0, the release the official
            checkpoints were published with; which one they were trained with is
            undocumented).
        drop_path_rate: Largest stochastic-depth rate; each transformer stage spreads
            ``linspace(0, drop_path_rate, depth)`` over its blocks.

    Attributes:
        out_channels: Channels of the returned feature (``[256]``).
        strides: Stride of the returned feature (``[8]`` or ``[16]``).
        feature_channels: Channels of the pre-fusion features ``[x8, x16, x32]``.
        feature_strides: Their strides, ``[8, 16, 32]``.

    Example:
        >>> backbone = StrideFormer("tiny").eval()
        >>> [feat] = backbone(torch.randn(1, 3, 512, 512))   # 1 x 256 x 32 x 32
    """

    def __init__(
        self,
        variant: Literal["base", "tiny"] = "base",
        *,
        in_channels: int = 3,
        fusion: FusionType | None = None,
        aam_gate_act: GateActivation = "sigmoid",
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        if variant not in STRIDEFORMER_CONFIGS:
            raise ConfigError(f"unknown StrideFormer variant {variant!r}; use one of {sorted(STRIDEFORMER_CONFIGS)}")
        cfg = STRIDEFORMER_CONFIGS[variant]
        fusion = cfg.fusion if fusion is None else fusion
        if fusion not in _FUSIONS:
            raise ConfigError(f"unknown fusion {fusion!r}; use one of {sorted(_FUSIONS)}")
        if aam_gate_act not in ("sigmoid", "relu6"):
            raise ConfigError(f"aam_gate_act must be 'sigmoid' or 'relu6', got {aam_gate_act!r}")
        self.variant = variant
        self.fusion = fusion

        c1, c2, c3, c4 = cfg.stage_channels
        self.smb1 = MobileStage(in_channels, cfg.stages[0], stem_channels=cfg.stem_channels)
        self.smb2 = MobileStage(c1, cfg.stages[1])
        self.smb3 = MobileStage(c2, cfg.stages[2])
        self.smb4 = MobileStage(c3, cfg.stages[3])
        self.trans1 = SeaStage(
            c3, cfg.depths[0], cfg.key_dims[0], cfg.num_heads, cfg.mlp_ratios[0], cfg.attn_ratio, drop_path_rate
        )
        self.trans2 = SeaStage(
            c4, cfg.depths[1], cfg.key_dims[1], cfg.num_heads, cfg.mlp_ratios[1], cfg.attn_ratio, drop_path_rate
        )
        self.feature_channels: list[int] = [c2, c3, c4]
        self.feature_strides: list[int] = [8, 16, 32]
        fusion_cls = _FUSIONS[fusion]
        self.inj_module = fusion_cls(self.feature_channels, cfg.fusion_channels, gate_act=aam_gate_act)
        self.out_channels: list[int] = [cfg.fusion_channels]
        self.strides: list[int] = [fusion_cls.output_stride]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise for training from scratch.

        Convs Kaiming-normal (fan_out) with zero bias; BN (1, 0), except the BNs closing
        the attention projections (``proj``, ``proj_encode_row/column``), which start at
        gamma 0 as in SeaFormer; positional embeddings N(0, 1).
        """
        init_conv_bn(self.modules())
        for m in self.modules():
            if isinstance(m, SeaAttention):
                for branch in (m.proj, m.proj_encode_row, m.proj_encode_column):
                    nn.init.zeros_(branch[-1].bn.weight)
            elif isinstance(m, SqueezeAxialPositionalEmbedding):
                nn.init.normal_(m.pos_embed)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The pre-fusion features ``[x8, x16, x32]`` (strides 8, 16, 32)."""
        x8 = self.smb2(self.smb1(x))
        x16 = self.trans1(self.smb3(x8))
        x32 = self.trans2(self.smb4(x16))
        return [x8, x16, x32]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return ``[fused]``: the fusion module's output (one feature, see ``strides``)."""
        return [self.inj_module(self.forward_features(x))]
