"""Lite R-ASPP segmentation model (Howard et al., "Searching for MobileNetV3", 2019).

Head, on a backbone returning a list of features with known ``out_channels`` and
``strides``:

* high-level branch on the **last** feature: 1x1 conv + BN + ReLU to
  ``inter_channels``, multiplied by a gate (global average pool -> 1x1 conv ->
  sigmoid), bilinearly resized to the 1/8 feature, optional dropout, 1x1 conv to
  classes;
* low-level branch on the **last 1/8 feature**: 1x1 conv to classes;
* the two are summed and bilinearly resized (``align_corners=False``) to the input.

Choice (documented deviation from a literal reading of the paper): the default
backbone is MobileNetV3-large with ``output_stride=16``, i.e. the last stage
(blocks 12-14, 160 ch) runs dilated at 1/16 as in the paper; there is no final 960-ch
conv (the PaddleSeg backbone has none). The paper's pooling (49x49 kernel, strides
(16, 20), tuned for 1024x2048 crops) is replaced by global average pooling so the
model works for any input size and exports to ONNX with dynamic H/W.

The optional auxiliary head (3x3 ConvBNReLU -> dropout 0.1 -> 1x1 conv) runs on the
second-to-last backbone feature (112 ch at 1/16 for MobileNetV3-large) and only in
training mode.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import ConvBNAct, backbone_features, check_num_classes, init_head, resize
from ppseg.models.mobilenetv3 import MobileNetV3

__all__ = ["LRASPP", "lraspp_mobilenetv3_large", "lraspp_mobilenetv3_small"]


class LRASPP(nn.Module):
    """Lite R-ASPP: MobileNetV3 features + a gated 1x1 head with a 1/8 skip.

    Args:
        num_classes: Number of output classes.
        backbone: Feature extractor returning ``list[Tensor]`` and exposing
            ``out_channels`` and ``strides``; it must return at least one stride-8
            feature and, with ``aux_head``, at least two features. ``None`` builds
            ``MobileNetV3("large", output_stride=16, in_channels=in_channels)``.
        in_channels: Input channels of the default backbone (ignored when
            ``backbone`` is given).
        inter_channels: Width of the high-level branch.
        aux_head: Build an auxiliary FCN head used only in training.
        dropout: Dropout probability before the high-level classifier.

    Attributes:
        num_classes: Number of output classes.
        low_index: Index of the backbone feature used by the low-level branch.
        high_index: Index of the backbone feature used by the high-level branch.
        aux_index: Index of the feature used by the auxiliary head (``None`` if off).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: nn.Module | None = None,
        in_channels: int = 3,
        inter_channels: int = 128,
        aux_head: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if backbone is None:
            backbone = MobileNetV3("large", in_channels=in_channels, output_stride=16)
        channels, strides = backbone_features(backbone)
        if 8 not in strides:
            raise ConfigError(f"backbone returns no stride-8 feature (strides {strides})")
        self.num_classes = num_classes
        self.backbone = backbone
        self.low_index = len(strides) - 1 - strides[::-1].index(8)
        self.high_index = len(channels) - 1
        high_ch, low_ch = channels[self.high_index], channels[self.low_index]

        self.cbr = ConvBNAct(high_ch, inter_channels, 1, act="relu")
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(high_ch, inter_channels, 1, bias=True),
            nn.Sigmoid(),
        )
        self.dropout: nn.Module = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1)

        self.aux_index: int | None = None
        self.aux: nn.Module | None = None
        if aux_head:
            if len(channels) < 2:
                raise ConfigError("aux_head needs a backbone returning at least two features")
            self.aux_index = len(channels) - 2
            aux_in = channels[self.aux_index]
            aux_mid = max(aux_in // 4, 32)
            self.aux = nn.Sequential(
                ConvBNAct(aux_in, aux_mid, 3, act="relu"),
                nn.Dropout2d(0.1),
                nn.Conv2d(aux_mid, num_classes, 1),
            )
        self._init_head()

    def _init_head(self) -> None:
        """Kaiming-normal head convs (zero bias), classifiers N(0, 0.01); BN (1, 0). The backbone keeps its own init."""
        classifiers = [self.high_classifier, self.low_classifier] + ([self.aux[-1]] if self.aux is not None else [])
        init_head(self, classifiers)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Segment a normalised NCHW batch.

        Args:
            x: Float input ``[N, C, H, W]``.

        Returns:
            Eval mode: logits ``[N, num_classes, H, W]``. Training mode: a list with
            the main logits first and, if ``aux_head``, the auxiliary logits, all at
            input resolution.
        """
        feats: list[Tensor] = self.backbone(x)
        high, low = feats[self.high_index], feats[self.low_index]
        y = self.cbr(high) * self.scale(high)
        y = self.high_classifier(self.dropout(resize(y, low.shape[-2:])))
        logits = resize(y + self.low_classifier(low), x.shape[-2:])
        if not self.training:
            return logits
        outputs = [logits]
        if self.aux is not None and self.aux_index is not None:
            outputs.append(resize(self.aux(feats[self.aux_index]), x.shape[-2:]))
        return outputs


def _lraspp(variant: Literal["large", "small"], num_classes: int, in_channels: int, inter_channels: int,
            aux_head: bool, dropout: float, output_stride: Literal[8, 16, 32], scale: float) -> LRASPP:
    backbone = MobileNetV3(variant, scale=scale, in_channels=in_channels, output_stride=output_stride)
    return LRASPP(num_classes, backbone=backbone, inter_channels=inter_channels, aux_head=aux_head, dropout=dropout)


#: factory kwargs that change only training (regularisation, the auxiliary head): a weights file may
#: differ from a config in these
TRAINING_ONLY_KWARGS: tuple[str, ...] = ("aux_head", "dropout")


def lraspp_mobilenetv3_large(
    num_classes: int = 19,
    *,
    in_channels: int = 3,
    inter_channels: int = 128,
    aux_head: bool = False,
    dropout: float = 0.0,
    output_stride: Literal[8, 16, 32] = 16,
    scale: float = 1.0,
) -> LRASPP:
    """LR-ASPP on MobileNetV3-large (dilated last stage at 1/16, skip from 1/8).

    Args:
        num_classes: Number of output classes.
        in_channels: Input image channels.
        inter_channels: Width of the high-level branch.
        aux_head: Build the training-only auxiliary head (on the 112-ch 1/16 feature).
        dropout: Dropout probability before the high-level classifier.
        output_stride: Backbone output stride; 16 (paper), or 32 for the undilated
            PaddleSeg backbone (cheaper, coarser).
        scale: Backbone width multiplier.

    Returns:
        The model.
    """
    return _lraspp("large", num_classes, in_channels, inter_channels, aux_head, dropout, output_stride, scale)


def lraspp_mobilenetv3_small(
    num_classes: int = 19,
    *,
    in_channels: int = 3,
    inter_channels: int = 128,
    aux_head: bool = False,
    dropout: float = 0.0,
    output_stride: Literal[8, 16, 32] = 16,
    scale: float = 1.0,
) -> LRASPP:
    """LR-ASPP on MobileNetV3-small; arguments as :func:`lraspp_mobilenetv3_large`.

    The high-level branch uses the 96-ch last stage, the skip the 24-ch 1/8 feature and
    the auxiliary head the 48-ch 1/16 feature.
    """
    return _lraspp("small", num_classes, in_channels, inter_channels, aux_head, dropout, output_stride, scale)
