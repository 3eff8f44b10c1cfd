"""PP-MobileSeg (Tang et al., "PP-MobileSeg: Explore the Fast and Accurate Semantic
Segmentation Model on Mobile Devices", 2023).

StrideFormer backbone (with its AAM fusion, see :mod:`ppseg.models.strideformer`) ->
a light head (depthwise 1x1 conv + BN + ReLU, Dropout2d, 1x1 classifier) -> logits at
1/8 (Base) or 1/16 (Tiny) -> bilinear resize (``align_corners=False``) to the input.

State-dict keys equal PaddleSeg's (``backbone.*``, ``decode_head.linear_fuse.*``,
``decode_head.conv_seg.*``) except BN ``_mean``/``_variance`` -> ``running_mean``/
``running_var``; convert a ``.pdparams`` with
:func:`ppseg.convert.paddle_keys.paddle_to_torch_state`.

PaddleSeg's VIM ("valid interpolate module": argmax over only the classes present at
low resolution) is inference post-processing and lives outside the model; it consumes
:meth:`PPMobileSeg.forward_lowres`.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ppseg.models.layers import ConvBNAct, backbone_features, check_num_classes, init_head, resize
from ppseg.models.strideformer import FusionType, GateActivation, StrideFormer

__all__ = ["PPMobileSeg", "PPMobileSegHead", "pp_mobileseg_base", "pp_mobileseg_tiny"]


class PPMobileSegHead(nn.Module):
    """Segmentation head: depthwise 1x1 conv + BN + ReLU (``linear_fuse``), Dropout2d,
    1x1 conv with bias to the classes (``conv_seg``).

    Args:
        in_channels: Channels of the fused backbone feature.
        num_classes: Number of output classes.
        dropout: Dropout2d probability before ``conv_seg``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.linear_fuse = ConvBNAct(in_channels, in_channels, 1, groups=in_channels, act="relu")
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(in_channels, num_classes, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        """Logits at the feature's resolution."""
        return self.conv_seg(self.dropout(self.linear_fuse(x)))


class PPMobileSeg(nn.Module):
    """PP-MobileSeg: StrideFormer + AAM backbone and a light head.

    Args:
        num_classes: Number of output classes.
        backbone: A :class:`~ppseg.models.strideformer.StrideFormer` (or any module
            returning ``[feature]`` and exposing ``out_channels`` and ``strides``).
        dropout: Dropout2d probability in the head.

    Attributes:
        num_classes: Number of output classes.
        output_stride: Stride of :meth:`forward_lowres` (8 for Base, 16 for Tiny).

    Example:
        >>> model = pp_mobileseg_tiny(num_classes=150).eval()
        >>> logits = model(images)               # [N, 150, H, W]
        >>> low = model.forward_lowres(images)   # [N, 150, ~H/16, ~W/16]
    """

    #: a capability: in training mode ``forward(x)`` is exactly
    #: ``[bilinear_resize(forward_lowres(x), x.shape[-2:])]``, so a loss that resizes logits itself
    #: (:meth:`~ppseg.losses.mixed.MixedLoss.accepts_lowres_logits`) may take the low-resolution ones
    trains_from_lowres: bool = True

    def __init__(self, num_classes: int, backbone: nn.Module, dropout: float = 0.1) -> None:
        super().__init__()
        check_num_classes(num_classes)
        channels, strides = backbone_features(backbone)
        self.num_classes = num_classes
        self.output_stride: int = strides[-1]
        self.backbone = backbone
        self.decode_head = PPMobileSegHead(channels[-1], num_classes, dropout)
        self._init_head()

    def _init_head(self) -> None:
        """Head convs Kaiming-normal, BN (1, 0), classifier N(0, 0.01) with zero bias."""
        init_head(self, [self.decode_head.conv_seg])

    def forward_lowres(self, x: Tensor) -> Tensor:
        """Logits before the final resize: ``[N, num_classes, h, w]`` at ``output_stride``."""
        return self.decode_head(self.backbone(x)[-1])

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment a normalised NCHW batch.

        Args:
            x: Float input ``[N, C, H, W]``.

        Returns:
            Eval mode: logits ``[N, num_classes, H, W]``. Training mode: a one-element
            list with those logits.
        """
        # Contiguous before the upsample: with a channels-last model the full-resolution logits
        # would otherwise come out channels-last, and every per-pixel softmax/loss over the
        # class axis would first copy all C x H x W of them.
        low = self.forward_lowres(x).contiguous()
        logits = resize(low, x.shape[-2:])
        return [logits] if self.training else logits


def _pp_mobileseg(
    variant: Literal["base", "tiny"],
    num_classes: int,
    in_channels: int,
    fusion: FusionType,
    aam_gate_act: GateActivation,
    drop_path_rate: float,
    dropout: float,
) -> PPMobileSeg:
    backbone = StrideFormer(
        variant, in_channels=in_channels, fusion=fusion, aam_gate_act=aam_gate_act, drop_path_rate=drop_path_rate
    )
    return PPMobileSeg(num_classes, backbone, dropout=dropout)


#: factory kwargs that change only training (regularisation): a weights file may differ from a config in these
TRAINING_ONLY_KWARGS: tuple[str, ...] = ("drop_path_rate", "dropout")


def pp_mobileseg_base(
    num_classes: int = 150,
    *,
    aam_gate_act: GateActivation = "sigmoid",
    drop_path_rate: float = 0.1,
    in_channels: int = 3,
    fusion: FusionType = "aam_stride8",
    dropout: float = 0.1,
) -> PPMobileSeg:
    """PP-MobileSeg-Base: StrideFormer-Base + stride-8 AAM (5.94 M parameters at 150 classes).

    Args:
        num_classes: Number of output classes (150 ADE20K, 19 Cityscapes).
        aam_gate_act: Gate activation of the fusion module: ``"sigmoid"`` (PaddleSeg
            develop, mmseg) or ``"relu6"`` (PaddleSeg 2.8.0, the release that published
            the checkpoints).
        drop_path_rate: Largest stochastic-depth rate of the transformer blocks.
        in_channels: Input image channels.
        fusion: ``"aam_stride8"`` (the reference, logits at 1/8) or ``"aam"``
            (logits at 1/16, cheaper).
        dropout: Dropout2d probability in the head.

    Returns:
        The model.
    """
    return _pp_mobileseg("base", num_classes, in_channels, fusion, aam_gate_act, drop_path_rate, dropout)


def pp_mobileseg_tiny(
    num_classes: int = 150,
    *,
    aam_gate_act: GateActivation = "sigmoid",
    drop_path_rate: float = 0.1,
    in_channels: int = 3,
    fusion: FusionType = "aam",
    dropout: float = 0.1,
) -> PPMobileSeg:
    """PP-MobileSeg-Tiny: StrideFormer-Tiny + AAM (1.49 M parameters at 150 classes).

    Args:
        num_classes: Number of output classes (150 ADE20K, 19 Cityscapes).
        aam_gate_act: Gate activation of the fusion module, as in :func:`pp_mobileseg_base`.
        drop_path_rate: Largest stochastic-depth rate of the transformer blocks.
        in_channels: Input image channels.
        fusion: ``"aam"`` (the reference, logits at 1/16) or ``"aam_stride8"``
            (logits at 1/8).
        dropout: Dropout2d probability in the head.

    Returns:
        The model.
    """
    return _pp_mobileseg("tiny", num_classes, in_channels, fusion, aam_gate_act, drop_path_rate, dropout)
