"""PP-HumanSeg V1-Lite, V2-Lite (general, portrait) and V2-Mobile: parameter counts (with the
dead reference weights the converter drops), the real V1 ``.pdparams``, the train/eval
contract and ONNX export.

The Paddle key layout and parity with the reference fixtures are in ``test_parity.py``."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import ppseg
from helpers.onnx import assert_onnx_matches_torch
from helpers.parity import assert_logits_match, fixture_file, load_fixture, paddle_state
from helpers.weights import randomize as _randomize
from ppseg.convert import convert_checkpoint, load_pretrained
from ppseg.convert.api import converter_options
from ppseg.convert.pdparams import BOOKKEEPING_KEY
from ppseg.errors import ConfigError, PPSegError
from ppseg.models.pp_humanseg import (
    PPHumanSegV1Lite,
    PPHumanSegV2Lite,
    ShuffleUnit,
    pp_humanseg_lite_v1,
    pp_humansegv2_lite_general,
    pp_humansegv2_lite_portrait,
    pp_humansegv2_mobile,
)
from ppseg.models.pp_liteseg import PPLiteSeg

#: registry name == fixture name -> factory
FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "pp_humanseg_lite_v1": pp_humanseg_lite_v1,
    "pp_humansegv2_lite_general": pp_humansegv2_lite_general,
    "pp_humansegv2_lite_portrait": pp_humansegv2_lite_portrait,
    "pp_humansegv2_mobile": pp_humansegv2_mobile,
}

#: Reference (Paddle) totals at 2 classes, spec section 4 / fixture README:
#: (parameters, BN statistics), dead tensors included.
REFERENCE_COUNTS = {
    "pp_humanseg_lite_v1": (226_806, 9_372),
    "pp_humansegv2_lite_general": (3_015_270, 28_720),
    "pp_humansegv2_lite_portrait": (2_954_118, 27_248),
    "pp_humansegv2_mobile": (7_565_452, 11_144),
}

#: What the ppseg models hold: (parameters, BN statistics, dropped reference tensors,
#: dropped parameters, dropped BN statistics).
OUR_COUNTS = {
    "pp_humanseg_lite_v1": (131_766, 5_700, 100, 95_040, 3_672),
    "pp_humansegv2_lite_general": (3_015_270, 28_720, 0, 0, 0),
    "pp_humansegv2_lite_portrait": (930_174, 15_920, 57, 2_023_944, 11_328),
    "pp_humansegv2_mobile": (7_565_452, 11_144, 0, 0, 0),
}

#: Outputs in training mode (main head first).
NUM_TRAIN_OUTPUTS = {
    "pp_humanseg_lite_v1": 1,
    "pp_humansegv2_lite_general": 4,
    "pp_humansegv2_lite_portrait": 3,
    "pp_humansegv2_mobile": 4,
}

NAMES = sorted(FACTORIES)


# ---------------------------------------------------------------------------------------
# Architecture (no fixtures needed)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_param_counts_and_dead_weight_bookkeeping(name: str) -> None:
    model = FACTORIES[name](2)
    params, bn_stats, _, dead_params, dead_bn = OUR_COUNTS[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")) == bn_stats
    # what the model holds + what the converter drops == the reference's totals
    assert (params + dead_params, bn_stats + dead_bn) == REFERENCE_COUNTS[name]


def test_shuffle_unit_layout_and_channel_shuffle() -> None:
    down, keep = ShuffleUnit(36, 2, 72), ShuffleUnit(72, 1)
    assert hasattr(down, "_depthwise_separable_0") and not hasattr(keep, "_depthwise_separable_0")
    # With every branch conv zeroed the branch half is exactly 0 (BN bias 0, ReLU), so the
    # shuffle must interleave [shortcut_0, 0, shortcut_1, 0, ...].
    with torch.no_grad():
        for p in keep._conv.parameters():
            p.zero_()
    x = torch.rand(1, 72, 5, 7) + 1.0
    y = keep.eval()(x)
    assert torch.equal(y[:, 0::2], x[:, :36]) and torch.all(y[:, 1::2] == 0)
    assert down(torch.randn(2, 36, 9, 11)).shape == (2, 72, 5, 6)
    with pytest.raises(ValueError, match="stride-1 unit"):
        ShuffleUnit(72, 1, 144)


def test_v1_logits_are_non_negative_like_the_reference() -> None:
    model = _randomize(pp_humanseg_lite_v1(2)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 50, 70))
    assert out.shape == (1, 2, 50, 70) and out.min() >= 0  # BN + ReLU on the logits (spec 4.1)


def test_v2_lite_variants_differ_as_the_configs_do() -> None:
    general, portrait = pp_humansegv2_lite_general(), pp_humansegv2_lite_portrait()
    assert general.backbone.out_channels == [24, 40, 112, 160] and general.backbone.strides == [4, 8, 16, 32]
    assert portrait.backbone.out_channels == [24, 40, 112] and portrait.backbone.strides == [4, 8, 16]
    assert len(general.backbone.blocks) == 15 and len(portrait.backbone.blocks) == 12
    assert [arm.conv_out.piontwise_conv._conv.out_channels for arm in general.ppseg_head.arm_list] == [32, 64, 96, 128]
    assert [arm.conv_out.piontwise_conv._conv.out_channels for arm in portrait.ppseg_head.arm_list] == [32, 64, 128]
    assert [h.conv.piontwise_conv._conv.out_channels for h in portrait.seg_heads] == [16, 32, 32]
    assert isinstance(pp_humansegv2_mobile(), PPLiteSeg)


@pytest.mark.parametrize("name", NAMES)
def test_output_contract_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = FACTORIES[name](3)
    assert model.num_classes == 3
    x = torch.randn(2, 3, 67, 91)
    outs = model.train()(x)
    assert isinstance(outs, list) and len(outs) == NUM_TRAIN_OUTPUTS[name]
    assert all(o.shape == (2, 3, 67, 91) for o in outs)
    nn.functional.cross_entropy(sum(outs), torch.randint(0, 3, (2, 67, 91))).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing  # no dead weights in the ppseg models
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 67, 91)


def test_registry_and_typed_kwargs() -> None:
    assert set(ppseg.list_models("pp_humanseg*")) == set(FACTORIES)
    assert isinstance(ppseg.create_model("pp_humanseg_lite_v1", num_classes=2, align_corners=True), PPHumanSegV1Lite)
    assert isinstance(ppseg.create_model("pp_humansegv2_lite_portrait", in_channels=4), PPHumanSegV2Lite)
    with pytest.raises(ConfigError, match="align_corners"):
        ppseg.create_model("pp_humanseg_lite_v1", align_corners="maybe")
    with pytest.raises(ConfigError, match="variant"):
        ppseg.create_model("pp_humansegv2_lite_general", variant="portrait")


# ---------------------------------------------------------------------------------------
# Converter options and real checkpoints (fixtures in ../shared/spec/parity; skipped without
# them). The Paddle layout and parity tests of all four fixtures are the table in test_parity.py.
# ---------------------------------------------------------------------------------------


def test_dead_weight_patterns_match_only_dead_weights() -> None:
    v1 = converter_options("pp_humanseg_lite_v1").drop
    assert any(re.search(p, "block2.7._depthwise_separable_0.piontwise_conv._conv.weight") for p in v1)
    assert not any(re.search(p, "block2.0._depthwise_separable_0.piontwise_conv._conv.weight") for p in v1)
    assert not any(re.search(p, "block1.1._depthwise_separable_1.depthwise_conv._conv.weight") for p in v1)
    portrait = converter_options("pp_humansegv2_lite_portrait").drop
    assert any(re.search(p, "backbone.blocks.14.mid_se.conv1.weight") for p in portrait)
    assert not any(re.search(p, "backbone.blocks.1.expand_conv.conv.weight") for p in portrait)
    assert not converter_options("pp_humansegv2_lite_general").drop


def test_real_v1_pdparams_through_convert_checkpoint_and_load_pretrained(tmp_path: Path) -> None:
    path = fixture_file("pp_humanseg_lite_v1.pdparams")
    meta, arrays = load_fixture("pp_humanseg_lite_v1")
    report = convert_checkpoint(path, source="paddle", model="pp_humanseg_lite_v1", out=tmp_path / "v1.pt")
    assert report.num_classes == 2 and report.num_classes_from == "depthwise_separable2.piontwise_conv._conv.weight"
    assert report.tensors == meta["num_tensors"] == 340
    assert len(report.dropped) == 100 and all("._depthwise_separable_0." in k for k in report.dropped)
    assert not report.filled
    assert "dropped 100" in report.summary()
    converted = ppseg.load_segmentor(tmp_path / "v1.pt").model
    assert_logits_match(converted, meta, arrays)

    model = ppseg.create_model("pp_humanseg_lite_v1", num_classes=2)
    report = load_pretrained(model, path, model_name="pp_humanseg_lite_v1")
    assert len(report.dropped) == 100
    assert_logits_match(model, meta, arrays)
    # without the model name the converter is strict: the dead weights are named in the error
    with pytest.raises(PPSegError, match=r"_depthwise_separable_0.*has no counterpart"):
        load_pretrained(pp_humanseg_lite_v1(2), path)


def test_portrait_pdparams_drops_unused_backbone_blocks(tmp_path: Path) -> None:
    meta, arrays = load_fixture("pp_humansegv2_lite_portrait")
    state = paddle_state(meta)
    path = tmp_path / "portrait.pdparams"  # what paddle.save writes: arrays + bookkeeping entry
    path.write_bytes(pickle.dumps({**state, BOOKKEEPING_KEY: {k: f"p_{i}" for i, k in enumerate(state)}}))
    model = pp_humansegv2_lite_portrait(2)
    report = load_pretrained(model, path, model_name="pp_humansegv2_lite_portrait")
    assert len(report.dropped) == 57 and all(re.match(r"backbone\.blocks\.1[2-4]\.", k) for k in report.dropped)
    assert_logits_match(model, meta, arrays)


# ---------------------------------------------------------------------------------------
# ONNX export
# ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_dynamic_hw_matches_torch(name: str) -> None:
    model = _randomize(FACTORIES[name](2))
    # Odd sizes exercise the stride-2 convs, the pooled context bins and the size-based resizes.
    assert_onnx_matches_torch(model, [(1, 3, 64, 96), (2, 3, 97, 131), (1, 3, 144, 256)])
