"""EdgeFlow (Hao et al., "EdgeFlow: Achieving Practical Interactive Segmentation with Edge-Guided
Flow", ICCV workshops 2021, arXiv 2109.09406): EISeg's "HRNet18_OCR64 edgeflow" click model.

:class:`EdgeFlow` takes an image and three click/edge maps and predicts the object mask:

1. ``maps_transform`` embeds the coordinate features (previous edge, positive and negative
   click disks) to 64 channels at 1/2;
2. ``feature_extractor`` (:class:`HRNetOCREdge`): an HRNet-W18 whose stem adds that embedding,
   with two early "flow" fusions of the click features (:class:`AlignedModule`), an OCR head
   (64 key / 128 mid channels, one class) and an edge branch (:class:`SqueezeBodyEdge`),
   giving coarse, auxiliary and edge logits at 1/4;
3. the three logits are resized to the image (bilinear, ``align_corners=True``) and
   :class:`FineNet` refines the coarse mask at full resolution from the image, the
   coordinate features and the sigmoids of the coarse and edge logits.

All outputs are logits (before the sigmoid). The network matches the only public source,
EISeg 0.4.0's ``HRNetEdgeModel`` (spec section 6), key for key: module names reproduce its
state dict (``feature_extractor.stage4.0.fuse_layers.3.0.2.1.weight``,
``finenet.atrous1.1._weight``, ...), BN ``_mean`` / ``_variance`` become ``running_mean`` /
``running_var``. The reference's FineNet bottleneck owns a 3x3 ``conv2`` / ``bn2`` that its
forward never calls (9,280 parameters + 64 BN statistics); this model does not hold them and
the converter drops them (``ppseg.convert.api.CONVERTER_OPTIONS``). Reference count
11,307,943 = 11,298,663 here + 9,280 dropped.

Input contract (EISeg's predictor, which the reference forward relies on): the image is RGB
in [0, 1] normalised with the ImageNet mean/std **before** the forward (the reference's
in-model normalisation is commented out; :attr:`EdgeFlow.input_normalized` is ``True``), and
FineNet sees that normalised image. ``coord_features`` channel 0 is the previous step's edge
probability (``sigmoid`` of ``instances_edge``, zeros at the first click), channels 1/2 the
positive/negative click disks of radius 5 px.

Parity traps kept on purpose (spec sections 1, 6.2, 11 item 12): resizes in the HRNet, OCR and
output path use ``align_corners=True`` but the one inside :class:`SqueezeBodyEdge` uses
``False``; its two depthwise stride-2 convs pad TF-SAME; ``grid_sample`` uses
``align_corners=True`` and the flow is divided by (W, H), not (W - 1) / 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.hrnet import Bottleneck, HRNetStages, PaddleConvBN, make_layer
from ppseg.models.layers import BN_MOMENTUM, PaddleConvBNAct, resize

__all__ = [
    "AlignedModule",
    "EdgeFlow",
    "FineNet",
    "FineNetBottleneck",
    "HRNetOCREdge",
    "ObjectAttentionBlock",
    "PaddlePReLU",
    "ScaleLayer",
    "SpatialOCR",
    "SqueezeBodyEdge",
    "edgeflow_hrnet18_ocr64",
    "flow_warp",
    "spatial_gather",
]


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


# --------------------------------------------------------------------------------------
# Small layers
# --------------------------------------------------------------------------------------


class ScaleLayer(nn.Module):
    """Multiply by ``|scale|``, a learned scalar (key ``scale``, shape ``[1]``; init 0.05 here)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        """``x * |scale|``."""
        return x * self.scale.abs()


class PaddlePReLU(nn.Module):
    """PReLU with one shared slope (init 0.25) stored as ``_weight``, Paddle's name.

    Keeping Paddle's name makes the whole EdgeFlow state dict equal to the reference's up to
    the BN renames (the converter would also map ``_weight`` to an ``nn.PReLU``'s ``weight``).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25) -> None:
        super().__init__()
        self._weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x: Tensor) -> Tensor:
        """``max(0, x) + slope * min(0, x)``."""
        return F.prelu(x, self._weight)


def flow_warp(x: Tensor, flow: Tensor) -> Tensor:
    """Sample ``x`` at the identity grid of ``flow``'s size moved by ``flow`` (EISeg's flow warp).

    ``grid = linspace(-1, 1) (x, y) + flow / (W, H)`` with ``W, H`` the flow's width and height
    (the reference divides by the size, not by ``(size - 1) / 2``), then ``grid_sample``
    bilinear, zero padding, ``align_corners=True`` (Paddle's default).

    Args:
        x: ``[N, C, h, w]`` features to warp.
        flow: ``[N, 2, H, W]`` offsets (x then y); the output has this size.
    """
    h, w = flow.shape[-2], flow.shape[-1]
    ys = torch.linspace(-1.0, 1.0, h, dtype=flow.dtype, device=flow.device)
    xs = torch.linspace(-1.0, 1.0, w, dtype=flow.dtype, device=flow.device)
    gx = xs.view(1, 1, -1) + flow[:, 0] / w
    gy = ys.view(1, -1, 1) + flow[:, 1] / h
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class AlignedModule(nn.Module):
    """Flow alignment (FAM, SFNet) as EdgeFlow's early fusion: warp ``high`` by a flow predicted
    from it and ``low``.

    ``flow = flow_make(concat[resize(down_h(high)), down_l(low)])`` (3x3, pad 1, no bias;
    resize bilinear ``align_corners=True`` to ``low``'s size), output
    ``flow_warp(high, flow)`` at ``low``'s size. Keys ``down_h``, ``down_l``, ``flow_make``
    (all bias-free).

    Args:
        in_channels: Channels of both inputs.
        channels: Channels of the two 1x1 projections.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.down_h = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.down_l = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.flow_make = nn.Conv2d(2 * channels, 2, 3, padding=1, bias=False)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        """``high`` warped onto ``low``'s grid (``[N, C_high, h_low, w_low]``)."""
        l = self.down_l(low)
        h = resize(self.down_h(high), low.shape[-2:], align_corners=True)
        flow = self.flow_make(torch.cat([h, l], dim=1))
        return flow_warp(high, flow)


def spatial_gather(feats: Tensor, probs: Tensor) -> Tensor:
    """OCR soft object regions: ``softmax`` of each class map over the pixels, then the weighted
    sum of ``feats``. ``[N, C, H, W]``, ``[N, K, H, W]`` -> ``[N, C, K, 1]``."""
    n, k = probs.shape[0], probs.shape[1]
    weights = F.softmax(probs.reshape(n, k, -1), dim=2)
    context = torch.matmul(weights, feats.reshape(n, feats.shape[1], -1).transpose(1, 2))  # [N, K, C]
    return context.transpose(1, 2).unsqueeze(3)


def _conv_bn_relu_1x1(in_channels: int, out_channels: int) -> list[nn.Module]:
    """``[conv 1x1 (no bias), Sequential(BN, ReLU)]``: the reference's layout (keys ``0``, ``1.0``)."""
    return [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.Sequential(_bn(out_channels), nn.ReLU())]


class ObjectAttentionBlock(nn.Module):
    """OCR object-context attention: pixels (queries) attend over the object regions.

    ``query = f_pixel(x)``, ``key = f_object(proxy)``, ``value = f_down(proxy)`` (64 channels),
    ``softmax(key_channels^-0.5 * query . key)`` over the regions, weighted values, ``f_up`` back
    to ``in_channels``. Keys ``f_pixel``, ``f_object`` (two 1x1 conv-BN-ReLU each), ``f_down``,
    ``f_up``. With one class there is one region: the softmax is exactly 1 and every pixel gets
    ``f_up(f_down(proxy))`` (``f_pixel``/``f_object`` are computed as in the reference).
    """

    def __init__(self, in_channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(*_conv_bn_relu_1x1(in_channels, key_channels),
                                     *_conv_bn_relu_1x1(key_channels, key_channels))
        self.f_object = nn.Sequential(*_conv_bn_relu_1x1(in_channels, key_channels),
                                      *_conv_bn_relu_1x1(key_channels, key_channels))
        self.f_down = nn.Sequential(*_conv_bn_relu_1x1(in_channels, key_channels))
        self.f_up = nn.Sequential(*_conv_bn_relu_1x1(key_channels, in_channels))

    def forward(self, x: Tensor, proxy: Tensor) -> Tensor:
        """``x [N, C, H, W]`` pixels, ``proxy [N, C, K, 1]`` regions -> ``[N, C, H, W]`` context."""
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        query = self.f_pixel(x).reshape(n, self.key_channels, -1).transpose(1, 2)  # [N, HW, D]
        key = self.f_object(proxy).reshape(n, self.key_channels, -1)  # [N, D, K]
        value = self.f_down(proxy).reshape(n, self.key_channels, -1).transpose(1, 2)  # [N, K, D]
        sim = F.softmax((self.key_channels**-0.5) * torch.matmul(query, key), dim=-1)
        context = torch.matmul(sim, value).transpose(1, 2).reshape(n, self.key_channels, h, w)
        return self.f_up(context)


class SpatialOCR(nn.Module):
    """OCR distribution head: ``conv_bn_dropout(concat[object context, feats])``.

    Keys ``object_context_block`` (:class:`ObjectAttentionBlock`) and ``conv_bn_dropout``
    (1x1 conv no bias, ``Sequential(BN, ReLU)``, ``Dropout2d``).
    """

    def __init__(self, in_channels: int, key_channels: int, out_channels: int, dropout: float = 0.05) -> None:
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(*_conv_bn_relu_1x1(2 * in_channels, out_channels), nn.Dropout2d(dropout))

    def forward(self, feats: Tensor, proxy: Tensor) -> Tensor:
        """``[N, C, H, W]``, ``[N, C, K, 1]`` -> ``[N, out_channels, H, W]``."""
        context = self.object_context_block(feats, proxy)
        return self.conv_bn_dropout(torch.cat([context, feats], dim=1))


class SqueezeBodyEdge(nn.Module):
    """Decoupled body/edge (Li et al., ECCV 2020) as in EISeg: ``edge = x - body``.

    ``down`` = two depthwise 3x3 stride-2 conv(bias)-BN-ReLU with TF-SAME padding (1/16 of
    ``x``'s area), resized back to ``x``'s size (bilinear, ``align_corners`` - ``False`` in the
    reference, unlike the rest of the network); ``flow = flow_make(concat[x, down])`` (3x3,
    pad 1, no bias); ``body = flow_warp(x, flow)``. Keys ``down.0/1._conv|_batch_norm``,
    ``flow_make``.

    Args:
        channels: Channels of ``x``.
        align_corners: Of the resize of ``down`` (the reference: ``False``).
    """

    def __init__(self, channels: int, *, align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.down = nn.Sequential(PaddleConvBN(channels, channels, 3, stride=2, groups=channels),
                                  PaddleConvBN(channels, channels, 3, stride=2, groups=channels))
        self.flow_make = nn.Conv2d(2 * channels, 2, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` -> ``(body, edge)``, both like ``x``."""
        down = resize(self.down(x), x.shape[-2:], align_corners=self.align_corners)
        flow = self.flow_make(torch.cat([x, down], dim=1))
        body = flow_warp(x, flow)
        return body, x - body


# --------------------------------------------------------------------------------------
# The feature extractor: HRNet + early fusion + OCR + edge branch
# --------------------------------------------------------------------------------------


class HRNetOCREdge(HRNetStages):
    """EdgeFlow's ``feature_extractor``: image + click embedding -> (coarse, aux, edge) logits at 1/4.

    * stem: ``conv1`` (3x3 s2) + ``bn1`` + ReLU, **plus** the click embedding (64 at 1/2),
      ``conv2`` (3x3 s2) + ``bn2`` + ReLU; ``layer1`` (4 bottlenecks, 256 at 1/4);
    * early fusion 1: ``warp1_conv`` (3x3 s2 pad 1 conv-BN-ReLU 64 -> 256 on the embedding),
      ``warp1_align`` warps ``layer1``'s output, ``x = warped + x``;
    * the HRNet stages (:class:`~ppseg.models.hrnet.HRNetStages`, ``align_corners=True``,
      symmetric padding), the four branches resized to 1/4 and concatenated (``15 * width``);
    * early fusion 2: ``warp2_conv`` (3x3 conv-BN-ReLU on the warped ``layer1`` features of
      fusion 1) and ``warp2_align`` warp the concatenation, added to it;
    * OCR: ``aux_head`` (1x1 conv-BN-ReLU, 1x1 conv to 1) -> aux logits; ``conv3x3_ocr``
      (3x3 conv(bias)-BN-ReLU to ``2 * ocr_width``) -> ``feats1``; spatial gather with the aux
      logits, ``ocr_distri_head`` -> ``feats2``; ``cls_head`` (1x1, bias) -> coarse logits;
    * edge: ``edge`` (:class:`SqueezeBodyEdge` on ``feats2``), ``edge_fusion`` (1x1 on
      concat[edge, feats1] -> 256), ``edge_out`` (3x3 conv-BN-ReLU to 48, 1x1 to 1) -> edge logits.

    Registered in the reference's key order (stem, ``layer1``, ``warp1_*``, stages, OCR heads,
    ``warp2_*``, edge layers).

    Args:
        width: HRNet width (18 for W18).
        ocr_width: OCR key channels (mid channels ``2 * ocr_width``).
        small: RITM's "small" HRNet (2 blocks per branch, stages of 1/3/2 modules).
        dropout: ``Dropout2d`` probability in the OCR head (training only).
    """

    def __init__(self, width: int = 18, ocr_width: int = 64, *, small: bool = False, dropout: float = 0.05) -> None:
        nn.Module.__init__(self)  # stem first: the reference's key order (see HRNetStages)
        if width < 1 or ocr_width < 1:
            raise ConfigError(f"width and ocr_width must be >= 1, got {width}, {ocr_width}")
        num_blocks = 2 if small else 4
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU()
        self.layer1 = make_layer(Bottleneck, 64, 64, num_blocks)
        stage1_channels = 64 * Bottleneck.expansion
        self.warp1_conv = PaddleConvBNAct(64, stage1_channels, 3, stride=2, padding=1, act="relu")
        self.warp1_align = AlignedModule(stage1_channels, stage1_channels)
        self.build_stages(stage1_channels, width=width, num_modules=(1, 3, 2) if small else (1, 4, 3),
                          num_blocks=num_blocks, align_corners=True, padding="symmetric")
        channels = sum(self.out_channels)
        mid = 2 * ocr_width
        self.conv3x3_ocr = nn.Sequential(nn.Conv2d(channels, mid, 3, padding=1), _bn(mid), nn.ReLU())
        self.ocr_distri_head = SpatialOCR(mid, ocr_width, mid, dropout=dropout)
        self.cls_head = nn.Conv2d(mid, 1, 1)
        self.aux_head = nn.Sequential(nn.Conv2d(channels, channels, 1), _bn(channels), nn.ReLU(),
                                      nn.Conv2d(channels, 1, 1))
        self.warp2_conv = PaddleConvBNAct(stage1_channels, channels, 3, padding=1, act="relu")
        self.warp2_align = AlignedModule(channels, channels)
        self.edge = SqueezeBodyEdge(mid)
        self.edge_fusion = nn.Conv2d(2 * mid, 256, 1, bias=False)
        self.edge_out = nn.Sequential(PaddleConvBNAct(256, 48, 3, padding=1, act="relu"),
                                      nn.Conv2d(48, 1, 1, bias=False))

    def forward(self, image: Tensor, maps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``image [N, 3, H, W]`` (normalised), ``maps [N, 64, H/2, W/2]`` (click embedding) ->
        ``(coarse, aux, edge)`` logits ``[N, 1, H/4, W/4]`` (sizes rounded up)."""
        x = self.relu(self.bn1(self.conv1(image))) + maps
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        warped = self.warp1_align(self.warp1_conv(maps), x)
        x = warped + x
        xs = self.forward_stages(x)
        size = xs[0].shape[-2:]
        feats = torch.cat([xs[0], *(resize(t, size, align_corners=True) for t in xs[1:])], dim=1)
        feats = self.warp2_align(self.warp2_conv(warped), feats) + feats

        aux = self.aux_head(feats)
        feats1 = self.conv3x3_ocr(feats)
        feats2 = self.ocr_distri_head(feats1, spatial_gather(feats1, aux))
        _, edge = self.edge(feats2)
        edge = resize(edge, feats1.shape[-2:], align_corners=True)  # same size: kept as in the reference
        edge = self.edge_out(self.edge_fusion(torch.cat([edge, feats1], dim=1)))
        return self.cls_head(feats2), aux, edge


# --------------------------------------------------------------------------------------
# FineNet
# --------------------------------------------------------------------------------------


class FineNetBottleneck(nn.Module):
    """FineNet's residual unit: 1x1 conv-BN-ReLU, 1x1 conv-BN (``2 * channels``), plus a 1x1
    conv-BN projection of the input, ReLU.

    Keys ``conv1``, ``bn1``, ``conv3``, ``bn3``, ``downsample.0/1``. The reference also builds
    a 3x3 ``conv2`` / ``bn2`` that its forward skips; they are not here (the converter drops them).
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = _bn(channels)
        self.conv3 = nn.Conv2d(channels, 2 * channels, 1, bias=False)
        self.bn3 = _bn(2 * channels)
        self.relu = nn.ReLU()
        self.downsample = nn.Sequential(nn.Conv2d(in_channels, 2 * channels, 1, bias=False), _bn(2 * channels))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, H, W]`` -> ``[N, 2 * channels, H, W]``."""
        out = self.bn3(self.conv3(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + self.downsample(x))


def _atrous(in_channels: int, dilation: int) -> nn.Sequential:
    # conv -> PReLU -> BN (PReLU before BN, as the reference), twice
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=dilation, dilation=dilation, bias=False), PaddlePReLU(), _bn(32),
        nn.Conv2d(32, 16, 1, bias=False), PaddlePReLU(), _bn(16),
    )


class FineNet(nn.Module):
    """Full-resolution refinement: three dilated branches (1, 2, 3) on
    ``concat[image, coord_features, sigmoid(coarse), sigmoid(edge)]`` (8 channels), a bottleneck,
    a 3x3 conv and a BN to one logit map.

    Keys ``atrous1..3.{0,1,2,3,4,5}`` (conv, PReLU ``_weight``, BN, conv, PReLU, BN) and
    ``final_predict.{0,1,2}`` (:class:`FineNetBottleneck`, 3x3 conv no bias, BN).
    """

    def __init__(self, in_channels: int = 8, num_classes: int = 1) -> None:
        super().__init__()
        self.atrous1 = _atrous(in_channels, 1)
        self.atrous2 = _atrous(in_channels, 2)
        self.atrous3 = _atrous(in_channels, 3)
        self.final_predict = nn.Sequential(FineNetBottleneck(3 * 16, 32),
                                           nn.Conv2d(64, num_classes, 3, padding=1, bias=False), _bn(num_classes))

    def forward(self, image: Tensor, coord_features: Tensor, coarse: Tensor, edge: Tensor) -> Tensor:
        """All at the same ``H x W``; ``coarse`` / ``edge`` are logits. Returns fine logits."""
        x = torch.cat([image, coord_features, torch.sigmoid(coarse), torch.sigmoid(edge)], dim=1)
        return self.final_predict(torch.cat([self.atrous1(x), self.atrous2(x), self.atrous3(x)], dim=1))


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


class EdgeFlow(nn.Module):
    """EdgeFlow click model (EISeg ``HRNetEdgeModel`` with edge and FineNet; see the module docstring).

    ``forward(image, coord_features)`` -> ``{"instances", "instances_aux", "instances_edge"}``,
    each ``[N, 1, H, W]`` logits at the image size. ``instances`` is FineNet's refined mask.

    Class attributes read by the interactive engine:

    Attributes:
        prev_input: What ``coord_features`` channel 0 is: ``"edge"`` (the previous step's
            ``sigmoid(instances_edge)``; zeros at the first click), not the previous mask.
        input_normalized: ``True``: ``image`` must already be RGB / 255 normalised with
            ``input_mean`` / ``input_std`` (the forward does not normalise; the reference
            forward does not either, EISeg's predictor does it before).
        click_radius: Radius in pixels of the click disks (distance^2 <= radius^2).
        input_mean, input_std: The ImageNet statistics of that normalisation.

    Args:
        width: HRNet width.
        ocr_width: OCR key channels.
        small: RITM's small HRNet variant.
        use_leaky_relu: LeakyReLU(0.2) (the reference) instead of ReLU in ``maps_transform``.
        dropout: OCR ``Dropout2d`` probability (training only).
    """

    prev_input: str = "edge"
    input_normalized: bool = True
    click_radius: int = 5
    input_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    input_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __init__(self, width: int = 18, ocr_width: int = 64, *, small: bool = False, use_leaky_relu: bool = True,
                 dropout: float = 0.05) -> None:
        super().__init__()
        coord_channels = 3  # previous edge + positive and negative click maps
        self.coord_channels = coord_channels
        self.finenet = FineNet(3 + coord_channels + 2, 1)
        self.maps_transform = nn.Sequential(
            nn.Conv2d(coord_channels, 16, 1),
            nn.LeakyReLU(0.2) if use_leaky_relu else nn.ReLU(),
            nn.Conv2d(16, 64, 3, stride=2, padding=1),
            ScaleLayer(0.05),
        )
        self.feature_extractor = HRNetOCREdge(width, ocr_width, small=small, dropout=dropout)

    def _check(self, image: Tensor, coord_features: Tensor) -> None:
        if torch.jit.is_tracing():  # an ONNX export: the shapes are symbolic, the guard would be a constant
            return
        if image.dim() != 4 or image.shape[1] != 3:
            raise ConfigError(f"EdgeFlow expects an image [N, 3, H, W], got {list(image.shape)}")
        if coord_features.dim() != 4 or coord_features.shape[1] != self.coord_channels or \
                coord_features.shape[0] != image.shape[0] or coord_features.shape[2:] != image.shape[2:]:
            raise ConfigError(f"EdgeFlow expects coord_features [N, {self.coord_channels}, H, W] like the image "
                              f"{list(image.shape)}, got {list(coord_features.shape)}")

    def forward_quarter(self, image: Tensor, coord_features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(coarse, aux, edge)`` logits at 1/4 (``ceil(H / 4) x ceil(W / 4)``), before the resize and FineNet."""
        self._check(image, coord_features)
        return self.feature_extractor(image, self.maps_transform(coord_features))

    def forward(self, image: Tensor, coord_features: Tensor) -> dict[str, Tensor]:
        """``image [N, 3, H, W]`` (normalised), ``coord_features [N, 3, H, W]`` -> dict of logits.

        Keys ``instances`` (FineNet), ``instances_aux`` (OCR auxiliary head), ``instances_edge``
        (edge branch), each ``[N, 1, H, W]``, before the sigmoid.
        """
        coarse, aux, edge = self.forward_quarter(image, coord_features)
        size = image.shape[-2:]
        coarse = resize(coarse, size, align_corners=True)
        aux = resize(aux, size, align_corners=True)
        edge = resize(edge, size, align_corners=True)
        fine = self.finenet(image, coord_features, coarse, edge)
        return {"instances": fine, "instances_aux": aux, "instances_edge": edge}


#: factory kwargs that change only training (regularisation)
TRAINING_ONLY_KWARGS: tuple[str, ...] = ("dropout",)

#: the task these models are for (:func:`ppseg.registry.model_task`)
TASK = "interactive"


def edgeflow_hrnet18_ocr64(
    *,
    width: int = 18,
    ocr_width: int = 64,
    small: bool = False,
    use_leaky_relu: bool = True,
    dropout: float = 0.05,
) -> EdgeFlow:
    """EdgeFlow with HRNet-W18 and a 64-channel OCR head (EISeg's ``edgeflow`` / ``static_edgeflow_cocolvis``).

    11,298,663 parameters (the reference stores 11,307,943: 9,280 more in FineNet's unused
    ``conv2`` / ``bn2``, dropped by the converter). One output channel (binary object mask).
    Defaults are the reference's export settings.

    Args:
        width: HRNet width.
        ocr_width: OCR key channels (mid channels twice that).
        small: RITM's small HRNet (fewer blocks and modules).
        use_leaky_relu: LeakyReLU(0.2) in the click-map embedding (else ReLU).
        dropout: ``Dropout2d`` probability in the OCR head (training only).

    Returns:
        The model.
    """
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    return EdgeFlow(width, ocr_width, small=small, use_leaky_relu=use_leaky_relu, dropout=dropout)
