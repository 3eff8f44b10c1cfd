"""Tests for the LR-ASPP segmentation model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.onnx import assert_onnx_matches_torch
from ppseg.models import LRASPP, MobileNetV3, lraspp_mobilenetv3_large, lraspp_mobilenetv3_small


def test_train_and_eval_output_contract() -> None:
    model = lraspp_mobilenetv3_large(num_classes=5, aux_head=True, dropout=0.1)
    assert model.num_classes == 5
    x = torch.randn(2, 3, 64, 96)
    model.train()
    outs = model(x)
    assert isinstance(outs, list) and len(outs) == 2
    assert all(o.shape == (2, 5, 64, 96) for o in outs)
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 5, 64, 96)


def test_train_without_aux_returns_single_item_list() -> None:
    model = LRASPP(3).train()
    outs = model(torch.randn(2, 3, 32, 32))
    assert isinstance(outs, list) and len(outs) == 1 and outs[0].shape == (2, 3, 32, 32)
    assert model.aux is None


@pytest.mark.parametrize("hw", [(32, 32), (33, 47), (97, 131), (65, 40)])
def test_odd_sizes(hw: tuple[int, int]) -> None:
    model = lraspp_mobilenetv3_large(num_classes=4).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, *hw))
    assert y.shape == (1, 4, *hw)


def test_feature_selection_and_variants() -> None:
    large = LRASPP(2, aux_head=True)
    assert (large.low_index, large.high_index, large.aux_index) == (1, 3, 2)
    assert large.backbone.strides == [4, 8, 16, 16]
    small = lraspp_mobilenetv3_small(num_classes=2, in_channels=1).eval()
    with torch.no_grad():
        assert small(torch.randn(1, 1, 45, 61)).shape == (1, 2, 45, 61)
    os32 = LRASPP(2, backbone=MobileNetV3(output_stride=32)).eval()
    with torch.no_grad():
        assert os32(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    with pytest.raises(ValueError, match="stride-8"):
        LRASPP(2, backbone=MobileNetV3(out_indices=(2, 11)))


def test_param_count() -> None:
    model = lraspp_mobilenetv3_large(num_classes=11)
    head = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    # cbr 160*128 + BN 2*128, gate 160*128 + 128, high 128*11 + 11, low 40*11 + 11
    assert head == 160 * 128 + 256 + 160 * 128 + 128 + 128 * 11 + 11 + 40 * 11 + 11
    assert sum(p.numel() for p in model.parameters()) == 2_814_886 + head


def test_backward_reaches_all_params() -> None:
    torch.manual_seed(0)
    model = lraspp_mobilenetv3_large(num_classes=3, aux_head=True).train()
    outs = model(torch.randn(2, 3, 64, 64))
    target = torch.randint(0, 3, (2, 64, 64))
    loss = sum(nn.functional.cross_entropy(o, target) for o in outs)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_dynamic_hw_matches_torch() -> None:
    torch.manual_seed(0)
    model = lraspp_mobilenetv3_large(num_classes=6, aux_head=True)
    # Non-trivial BN statistics so eval-mode normalisation is exercised.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    # Classifiers start near zero (N(0, 0.01)); make the logits large enough to compare.
    for conv in (model.high_classifier, model.low_classifier):
        nn.init.normal_(conv.weight, std=0.5)
    assert_onnx_matches_torch(model, [(1, 3, 64, 96), (2, 3, 97, 131), (1, 3, 40, 33)], rtol=1e-4)
