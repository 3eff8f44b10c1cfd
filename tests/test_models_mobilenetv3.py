"""Tests for the MobileNetV3 backbone and the shared layers.

The backbone's Paddle key layout and parity with the reference (the ``backbone.*`` weights and
features of the ``pp_humansegv2_lite_portrait`` fixture) are a row of the table in ``test_parity.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ppseg.models import ConvBNAct, MobileNetV3, PaddleHardsigmoid, ResidualUnit, SqueezeExcite
from ppseg.models.layers import get_activation, make_divisible


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_make_divisible() -> None:
    assert make_divisible(16) == 16
    assert make_divisible(3) == 8
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(72 * 0.75) == 56
    assert make_divisible(10) == 16  # 8 < 0.9 * 10 -> bumped up
    assert make_divisible(960 * 1.25) == 1200


def test_paddle_hardsigmoid_slope() -> None:
    x = torch.tensor([-10.0, -2.5, -1.0, 0.0, 1.0, 2.5, 10.0])
    y = PaddleHardsigmoid()(x)
    torch.testing.assert_close(y, torch.tensor([0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0]))
    assert isinstance(get_activation("hardsigmoid"), PaddleHardsigmoid)
    se = SqueezeExcite(8)
    assert isinstance(se.gate, PaddleHardsigmoid)
    assert se.conv1.out_channels == 2 and se.conv1.bias is not None and se.conv2.bias is not None


def test_get_activation() -> None:
    assert isinstance(get_activation(None), nn.Identity)
    assert isinstance(get_activation("relu"), nn.ReLU)
    assert isinstance(get_activation("relu6"), nn.ReLU6)
    assert isinstance(get_activation("hardswish"), nn.Hardswish)
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation("gelu-ish")


def test_conv_name_option_gives_both_key_layouts() -> None:
    assert "conv.weight" in ConvBNAct(3, 8, 3).state_dict()
    assert "c.weight" in ConvBNAct(3, 8, 3, conv_name="c").state_dict()
    unit = ResidualUnit(16, 16, 16, 3, use_se=True, conv_name="c")
    keys = set(unit.state_dict())
    assert {"expand_conv.c.weight", "bottleneck_conv.c.weight", "linear_conv.c.weight"} <= keys
    assert {"mid_se.conv1.weight", "mid_se.conv2.bias"} <= keys
    assert unit.use_shortcut


def test_large_param_count_channels_strides() -> None:
    m = MobileNetV3()
    assert _n_params(m) == 2_814_886
    assert m.out_channels == [24, 40, 112, 160]
    assert m.strides == [4, 8, 16, 32]
    assert len(m.blocks) == 15
    feats = m(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (2, 24, 16, 24),
        (2, 40, 8, 12),
        (2, 112, 4, 6),
        (2, 160, 2, 3),
    ]
    for m_ in m.modules():
        if isinstance(m_, nn.BatchNorm2d):
            assert m_.momentum == pytest.approx(0.1) and m_.eps == pytest.approx(1e-5)
            assert torch.all(m_.weight == 1) and torch.all(m_.bias == 0)


def test_small_variant_and_options() -> None:
    m = MobileNetV3("small", in_channels=4)
    assert m.out_channels == [16, 24, 48, 96]
    assert m.strides == [4, 8, 16, 32]
    feats = m(torch.randn(1, 4, 33, 47))
    assert [f.shape[1] for f in feats] == m.out_channels
    sub = MobileNetV3(out_indices=(5, 11))
    assert sub.out_channels == [40, 112] and sub.strides == [8, 16]
    assert len(sub(torch.randn(1, 3, 32, 32))) == 2
    half = MobileNetV3(scale=0.5)
    assert half.out_channels == [16, 24, 56, 80]
    with pytest.raises(ValueError):
        MobileNetV3(out_indices=(15,))


def test_output_stride_dilation() -> None:
    m = MobileNetV3(output_stride=16)
    assert m.strides == [4, 8, 16, 16]
    assert _n_params(m) == 2_814_886
    feats = m(torch.randn(1, 3, 65, 97))
    assert feats[2].shape[-2:] == feats[3].shape[-2:] == (5, 7)
    assert m.blocks[12].bottleneck_conv.conv_layer.stride == (1, 1)
    assert m.blocks[13].bottleneck_conv.conv_layer.dilation == (2, 2)
    os8 = MobileNetV3(output_stride=8)
    assert os8.strides == [4, 8, 8, 8]

