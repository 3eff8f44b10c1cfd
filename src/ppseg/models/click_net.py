"""ppseg's fast click model for CPUs: MobileNetV3-large + the PP-HumanSegV2-Lite decoder, clicks in.

RITM's recipe on our existing parts (Sofiiuk et al., "Reviving Iterative Training with Mask
Guidance for Interactive Segmentation", 2021): the click features ``[prev_mask, positive disks,
negative disks]`` go through a small ``maps_transform`` (1x1 conv -> LeakyReLU -> 3x3 stride-2
conv -> learned scale, init 0.05) and are **added to the stem's output** ("conv1s" fusion), so
the backbone sees image and clicks from its first block. The previous mask (RITM's "ITER-M")
lets the model refine its own last answer instead of starting over at every click.

The body is PaddleSeg's MobileNetV3-large (features at 1/4, 1/8, 1/16, 1/32) and PP-HumanSegV2-Lite's
MobileSeg decoder (UAFM fusion down to 1/4, one separable head per level) with one output channel:
3.02 M parameters, about 13 ms for the network at 400x400 on one CPU thread with ONNX Runtime.

``forward(image, coord_features)`` takes the ImageNet-normalised RGB image and the click features
(both ``[N, 3, H, W]``) and returns ``{"instances": logits [N, 1, H, W]}``; in training mode also
``"instances_aux"``: the deeper heads' logits (deep supervision).
"""

from __future__ import annotations

from torch import Tensor, nn

from ppseg.models.edgeflow import ScaleLayer
from ppseg.models.layers import resize
from ppseg.models.pp_humanseg import PPHumanSegV2Lite, _mobilenetv3_large

__all__ = ["ClickMobileSeg", "click_mobilenetv3_lite"]

#: the task these models are for (:func:`ppseg.registry.model_task`)
TASK = "interactive"


class ClickMobileSeg(nn.Module):
    """A click model: MobileNetV3 + MobileSeg decoder with click features added after the stem.

    Args:
        arm_out_channels: Fused width per level (PP-HumanSegV2-Lite: 32, 64, 96, 128).
        head_mid_channels: Width inside each level's head.
        coord_channels: Click-feature channels (previous mask + positive + negative).
        maps_channels: Width of the click-feature transform.

    Attributes (read by the interactive engine): ``prev_input`` ("mask": channel 0 of the click
    features is the previous probability map), ``input_normalized`` (the image arrives normalised
    with ``input_mean``/``input_std``), ``click_radius`` (disk radius, pixels).
    """

    prev_input: str = "mask"
    input_normalized: bool = True
    click_radius: int = 5
    input_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    input_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __init__(self, arm_out_channels: tuple[int, ...] = (32, 64, 96, 128),
                 head_mid_channels: tuple[int, ...] = (16, 32, 32, 32), coord_channels: int = 3,
                 maps_channels: int = 16) -> None:
        super().__init__()
        backbone = _mobilenetv3_large((2, 5, 11, 14), 3)
        self.net = PPHumanSegV2Lite(1, backbone, arm_out_channels, head_mid_channels)
        stem = getattr(backbone.conv, backbone.conv.conv_name).out_channels
        self.maps_transform = nn.Sequential(
            nn.Conv2d(coord_channels, maps_channels, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(maps_channels, stem, 3, stride=2, padding=1),
            ScaleLayer(0.05),
        )

    def forward(self, image: Tensor, coord_features: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Logits of the object (see the module docstring)."""
        backbone = self.net.backbone
        x = backbone.conv(image) + self.maps_transform(coord_features)
        feats = self.net.ppseg_head(backbone.forward_blocks(x))
        size = image.shape[-2:]
        out: dict[str, Tensor | list[Tensor]] = {"instances": resize(self.net.seg_heads[0](feats[0]), size)}
        if self.training:
            out["instances_aux"] = [resize(head(f), size) for head, f in zip(self.net.seg_heads[1:], feats[1:])]
        return out


def click_mobilenetv3_lite(*, maps_channels: int = 16) -> ClickMobileSeg:
    """ppseg's fast click model (3.02 M parameters): see :class:`ClickMobileSeg`.

    Args:
        maps_channels: Width of the click-feature transform.

    Returns:
        The model.
    """
    return ClickMobileSeg(maps_channels=maps_channels)
