"""PP-LiteSeg: parameter counts, STDC backbone, SPPM pooling, parity controls, the `_scale`
converter default, output contract and ONNX export at dynamic sizes.

The Paddle key layout and parity with the reference fixtures are in ``test_parity.py``."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ppseg
from helpers.onnx import assert_onnx_matches_torch
from helpers.parity import load_fixture, load_reference, max_diff, paddle_state, tolerance
from helpers.weights import randomize as _randomize
from ppseg.cli import main
from ppseg.convert import convert_checkpoint, load_pretrained, paddle_to_torch_state
from ppseg.convert.pdparams import BOOKKEEPING_KEY
from ppseg.engine.optim import SGD
from ppseg.errors import ConfigError, PPSegError
from ppseg.models.pp_liteseg import (
    SPPM,
    AdaptiveAvgPool2dMatmul,
    PPLiteSeg,
    UAFMChannelAttention,
    UAFMSpatialAttention,
    pp_liteseg_b,
    pp_liteseg_t,
)
from ppseg.models.stdcnet import CatBottleneck, stdc1, stdc2

FACTORIES = {"t": pp_liteseg_t, "b": pp_liteseg_b}
SCALE_KEYS = [f"ppseg_head.arm_list.{i}._scale" for i in range(3)]


def _paddle_layout(model: nn.Module) -> dict[str, np.ndarray]:
    """A model's state dict under Paddle's names (BN ``_mean``/``_variance``, no ``num_batches_tracked``)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        key = key.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        out[key] = value.detach().numpy().copy()
    return out


def _write_pdparams(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """What ``paddle.save(state_dict)`` writes: the arrays plus the bookkeeping entry."""
    obj: dict = dict(arrays)
    obj[BOOKKEEPING_KEY] = {k: f"param_{i}.w_0" for i, k in enumerate(arrays)}
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


# ---------------------------------------------------------------------------------------
# Architecture (no fixtures needed)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "num_classes", "expected"),
    [("t", 19, 8_141_603), ("b", 19, 12_366_467), ("t", 11, 8_140_323), ("b", 11, 12_364_931)],
)
def test_param_count(variant: str, num_classes: int, expected: int) -> None:
    model = FACTORIES[variant](num_classes)
    # Spec 3.3: the count includes the three fixed UAFM `_scale` values, as PaddleSeg stores them.
    assert sum(p.numel() for p in model.parameters()) == expected
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert bn_stats == {"t": 11_602, "b": 18_002}[variant]
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert list(frozen) == SCALE_KEYS
    assert all(p.shape == (1,) and float(p) == 1.0 for p in frozen.values())


@pytest.mark.parametrize(("factory", "params", "bn_stats"), [(stdc1, 5_318_304, 9_152), (stdc2, 9_348_768, 15_296)])
def test_stdc_backbone(factory, params: int, bn_stats: int) -> None:
    net = factory().eval()
    assert sum(p.numel() for p in net.parameters()) == params
    assert sum(b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked")) == bn_stats
    assert net.out_channels == [32, 64, 256, 512, 1024] and net.strides == [2, 4, 8, 16, 32]
    assert len(net.features) == {stdc1: 8, stdc2: 14}[factory]
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 97, 131))
    # every stride-2 step rounds up: 97 -> 49 -> 25 -> 13 -> 7 -> 4, 131 -> 66 -> 33 -> 17 -> 9 -> 5
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 49, 66), (64, 25, 33), (256, 13, 17), (512, 7, 9),
                                                   (1024, 4, 5)]
    first = net.features[2]
    assert isinstance(first, CatBottleneck) and first.stride == 2 and not first.skip.count_include_pad
    with pytest.raises(ValueError, match="stage_depths"):
        type(net)((2, 2))


@pytest.mark.parametrize("bins", [1, 2, 3, 4, 6])
def test_matmul_pooling_equals_adaptive_avg_pool(bins: int) -> None:
    pool = AdaptiveAvgPool2dMatmul(bins)
    gen = torch.Generator().manual_seed(bins)
    sizes = [(1, 1), (1, 7), (2, 3), (3, 5), (4, 4), (5, 9), (7, 6), (13, 17), (16, 32), (25, 33), (31, 64)]
    for h, w in sizes:
        x = torch.randn(2, 3, h, w, generator=gen) * 5
        torch.testing.assert_close(pool(x), F.adaptive_avg_pool2d(x, bins), rtol=1e-6, atol=1e-6,
                                   msg=lambda m: f"{h}x{w}, bins {bins}: {m}")


@pytest.mark.parametrize("variant", ["t", "b"])
@pytest.mark.parametrize("uafm", ["spatial", "channel"])
def test_output_contract(variant: str, uafm: str) -> None:
    torch.manual_seed(0)
    model = FACTORIES[variant](5, uafm=uafm)
    assert model.num_classes == 5 and model.output_stride == 8
    x = torch.randn(2, 3, 67, 91)
    outs = model.train()(x)
    assert isinstance(outs, list) and len(outs) == 3  # main head, then the 1/16 and 1/32 auxiliary heads
    assert all(o.shape == (2, 5, 67, 91) for o in outs)
    model.eval()
    with torch.no_grad():
        out = model(x)
        low = model.forward_lowres(x)
        decoded = model.decode(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 67, 91)
    assert low.shape == (2, 5, 9, 12)
    assert [tuple(f.shape[1:]) for f in decoded] == [
        (c, h, w) for c, (h, w) in zip({"t": (32, 64, 128), "b": (64, 96, 128)}[variant], [(9, 12), (5, 6), (3, 3)])
    ]


def test_main_head_comes_first_and_is_the_eval_output() -> None:
    model = _randomize(pp_liteseg_t(4)).eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        expected = model(x)
        model.train()
        for m in model.modules():  # running statistics, so train and eval compute the same function
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        outs = model(x)
    torch.testing.assert_close(outs[0], expected)
    assert all((o - expected).abs().max() > 1e-3 for o in outs[1:])


def test_backward_trains_everything_but_scale() -> None:
    torch.manual_seed(0)
    model = pp_liteseg_t(3).train()
    opt = SGD(model, momentum=0.9, weight_decay=5e-4)
    for group in opt.param_groups:
        group["lr"] = 0.1
    outs = model(torch.randn(2, 3, 64, 64))
    label = torch.randint(0, 3, (2, 64, 64))
    sum(F.cross_entropy(o, label) for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert all(p.grad is None for n, p in model.named_parameters() if n.endswith("_scale"))
    opt.step()
    assert all(float(model.get_parameter(k)) == 1.0 for k in SCALE_KEYS)  # no gradient, no weight decay


def test_channel_attention_variant_layout() -> None:
    model = pp_liteseg_t(19, uafm="channel")
    arms = model.ppseg_head.arm_list
    assert all(isinstance(a, UAFMChannelAttention) for a in arms)
    keys = set(model.state_dict())
    assert not any(k.endswith("_scale") for k in keys)
    # arm i: y = 64, 128, 128 channels (next arm's output, then the SPPM's)
    for i, y in enumerate((64, 128, 128)):
        assert model.state_dict()[f"ppseg_head.arm_list.{i}.conv_xy_atten.0._conv.weight"].shape == (y // 2, 4 * y, 1, 1)
        assert model.state_dict()[f"ppseg_head.arm_list.{i}.conv_xy_atten.1._conv.weight"].shape == (y, y // 2, 1, 1)
        assert isinstance(arms[i].conv_xy_atten[0].act, nn.LeakyReLU)
    assert all(isinstance(a, UAFMSpatialAttention) for a in pp_liteseg_t(19).ppseg_head.arm_list)


def test_registry_builds_both_variants_with_typed_kwargs() -> None:
    assert {"pp_liteseg_t", "pp_liteseg_b"} <= set(ppseg.list_models("pp_liteseg*"))
    model = ppseg.create_model("pp_liteseg_t", num_classes=11, uafm="channel", sppm_bin_sizes=[1, 3])
    assert isinstance(model, PPLiteSeg) and model.num_classes == 11
    assert [s[0].bins for s in model.ppseg_head.cm.stages] == [1, 3]
    with pytest.raises(ConfigError, match="uafm"):
        ppseg.create_model("pp_liteseg_b", uafm="temporal")
    with pytest.raises(ConfigError, match="resize_mode"):
        ppseg.create_model("pp_liteseg_b", resize_mode="bicubic")


# ---------------------------------------------------------------------------------------
# Parity controls (fixtures in ../shared/spec/parity; skipped without them). The Paddle
# layout and parity tests of both fixtures are the table in test_parity.py.
# ---------------------------------------------------------------------------------------


def test_parity_notices_padding_counted_in_the_skip_pool_and_a_wrong_scale() -> None:
    """Controls: the parity check is sensitive to the two fixed details it is meant to guard."""
    meta, arrays = load_fixture("pp_liteseg_t")
    model = pp_liteseg_t(meta["constructor"]["num_classes"])
    load_reference(model, meta)
    model.eval()
    x = torch.from_numpy(arrays["in1_x"])  # odd size: the pool's padded border matters
    for m in model.modules():
        if isinstance(m, CatBottleneck) and m.stride == 2:
            m.skip.count_include_pad = True
    with torch.no_grad():
        assert max_diff(model.backbone(x)[2], arrays["dbg1_backbone_2"]) > 100 * tolerance(meta, "dbg1_backbone_2")
    for m in model.modules():
        if isinstance(m, CatBottleneck) and m.stride == 2:
            m.skip.count_include_pad = False
    with torch.no_grad():
        model.get_parameter(SCALE_KEYS[0]).fill_(0.5)
        assert max_diff(model(x), arrays["out1_logits"]) > 100 * tolerance(meta, "out1_logits")


# ---------------------------------------------------------------------------------------
# Checkpoint conversion: the `_scale` default and the fixture weights end to end
# ---------------------------------------------------------------------------------------


def test_missing_scale_is_filled_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Release-era checkpoints have no `_scale`: conversion fills 1.0 and says so."""
    source = _randomize(pp_liteseg_t(5), seed=3).eval()
    arrays = {k: v for k, v in _paddle_layout(source).items() if not k.endswith("_scale")}
    assert len(arrays) == len(_paddle_layout(source)) - 3
    src = _write_pdparams(tmp_path / "old.pdparams", arrays)

    with pytest.raises(PPSegError, match=r"ppseg_head\.arm_list\.0\._scale"):
        paddle_to_torch_state(arrays, pp_liteseg_t(5))  # no defaults: strict

    out = tmp_path / "old.pt"
    report = convert_checkpoint(src, source="paddle", model="pp_liteseg_t", out=out)
    assert report.filled == SCALE_KEYS
    assert report.num_classes == 5 and report.num_classes_from == "seg_heads.0.conv_out.weight"
    assert "filled:      " + ", ".join(SCALE_KEYS) in report.summary()
    converted = ppseg.load_segmentor(out).model.eval()
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), source(x))

    code = main(["convert", "--from", "paddle", str(src), "--model", "pp_liteseg_t", "--out", str(tmp_path / "c.pt")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "filled 3" in text and "filled:      " + ", ".join(SCALE_KEYS) in text

    target = pp_liteseg_t(5)
    with torch.no_grad():
        for key in SCALE_KEYS:
            target.get_parameter(key).zero_()  # so that the fill is observable
    loaded = load_pretrained(target, src, model_name="pp_liteseg_t")
    assert loaded.filled == SCALE_KEYS
    assert all(float(target.get_parameter(k)) == 1.0 for k in SCALE_KEYS)


@pytest.mark.parametrize("with_scale", [True, False], ids=["develop_layout", "release_layout"])
def test_fixture_weights_through_convert_and_load_pretrained(tmp_path: Path, with_scale: bool) -> None:
    meta, arrays = load_fixture("pp_liteseg_t")
    state = paddle_state(meta)
    if not with_scale:
        state = {k: v for k, v in state.items() if not k.endswith("_scale")}
    src = _write_pdparams(tmp_path / "pp_liteseg_t.pdparams", state)
    report = convert_checkpoint(src, source="paddle", model="pp_liteseg_t", out=tmp_path / "t.pt")
    assert report.tensors == len(state) and report.filled == ([] if with_scale else SCALE_KEYS)
    assert report.num_classes == meta["constructor"]["num_classes"]
    models = [ppseg.load_segmentor(tmp_path / "t.pt").model, pp_liteseg_t(report.num_classes)]
    load_pretrained(models[1], src, model_name="pp_liteseg_t")
    for model in models:
        model.eval()
        for inp in meta["inputs"]:
            k = inp["index"]
            with torch.no_grad():
                got = model(torch.from_numpy(arrays[f"in{k}_x"]))
            assert max_diff(got, arrays[f"out{k}_logits"]) <= tolerance(meta, f"out{k}_logits")


# ---------------------------------------------------------------------------------------
# ONNX export at dynamic sizes (the SPPM's adaptive pooling is the part that usually breaks)
# ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_sppm_onnx_export_matches_torch_at_sizes_the_bins_do_not_divide() -> None:
    sppm = _randomize(SPPM(8, 16, 12, (1, 2, 4)), seed=1)
    # exported at 5x7; evaluated down to 1x1 (bins larger than the map) and at awkward sizes
    assert_onnx_matches_torch(sppm, [(1, 8, 5, 7), (2, 8, 1, 1), (1, 8, 2, 3), (1, 8, 13, 17), (1, 8, 12, 16)],
                              atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_onnx_export_dynamic_hw_matches_torch() -> None:
    model = _randomize(pp_liteseg_t(19))
    # 1/32 maps of 4x5, 8x10 and 12x16: bins 2 and 4 divide none of the first and only some of the others
    assert_onnx_matches_torch(model, [(1, 3, 97, 131), (2, 3, 256, 320), (1, 3, 383, 509)])
