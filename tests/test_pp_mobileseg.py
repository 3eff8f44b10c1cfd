"""PP-MobileSeg: parameter counts, architecture, contract, a parity control, ONNX.

The Paddle key layout and parity with the reference fixtures are in ``test_parity.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import ppseg
from helpers.onnx import assert_onnx_matches_torch
from helpers.parity import load_fixture, load_reference, tolerance
from helpers.weights import randomize as _randomize
from ppseg.errors import ConfigError
from ppseg.models.pp_mobileseg import PPMobileSeg, pp_mobileseg_base, pp_mobileseg_tiny
from ppseg.models.strideformer import AAM, AAMStride8, DropPath, StrideFormer

FACTORIES = {"base": pp_mobileseg_base, "tiny": pp_mobileseg_tiny}


# ---------------------------------------------------------------------------------------
# Architecture (no fixtures needed)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "num_classes", "expected"),
    [("base", 150, 5_943_878), ("tiny", 150, 1_492_298), ("base", 19, 5_910_211), ("tiny", 19, 1_458_631)],
)
def test_param_count(variant: str, num_classes: int, expected: int) -> None:
    model = FACTORIES[variant](num_classes)
    assert sum(p.numel() for p in model.parameters()) == expected
    # Spec 2.8: Base = 5,905,328 + 257 C, Tiny = 1,453,748 + 257 C; BN statistics as buffers.
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert bn_stats == {"base": 52_544, "tiny": 23_600}[variant]


def test_backbone_attributes_and_strides() -> None:
    base, tiny = StrideFormer("base"), StrideFormer("tiny")
    assert isinstance(base.inj_module, AAMStride8) and isinstance(tiny.inj_module, AAM)
    assert (base.out_channels, base.strides) == ([256], [8])
    assert (tiny.out_channels, tiny.strides) == ([256], [16])
    assert (base.feature_channels, tiny.feature_channels) == ([64, 128, 192], [32, 64, 128])
    assert base.feature_strides == tiny.feature_strides == [8, 16, 32]
    assert pp_mobileseg_base().output_stride == 8 and pp_mobileseg_tiny().output_stride == 16
    swapped = pp_mobileseg_tiny(4, fusion="aam_stride8").eval()
    assert swapped.output_stride == 8
    with torch.no_grad():
        assert swapped.forward_lowres(torch.randn(1, 3, 64, 96)).shape == (1, 4, 8, 12)
    with pytest.raises(ValueError, match="unknown fusion"):
        StrideFormer("tiny", fusion="AAMSx8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aam_gate_act"):
        StrideFormer("tiny", aam_gate_act="hardsigmoid")  # type: ignore[arg-type]


def test_drop_path_rates_and_semantics() -> None:
    rates = [b.drop_path.p for b in StrideFormer("base", drop_path_rate=0.1).trans1.transformer_blocks]
    assert rates == pytest.approx([0.0, 0.05, 0.1])
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 2, 2)
    assert drop.eval()(x) is x
    y = drop.train()(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert bool((per_sample == per_sample[:, :1]).all())  # whole samples are dropped


@pytest.mark.parametrize("variant", ["tiny", "base"])
def test_output_contract(variant: str) -> None:
    torch.manual_seed(0)
    model = FACTORIES[variant](5)
    assert model.num_classes == 5
    x = torch.randn(2, 3, 67, 91)
    outs = model.train()(x)
    assert isinstance(outs, list) and len(outs) == 1 and outs[0].shape == (2, 5, 67, 91)
    model.eval()
    with torch.no_grad():
        out = model(x)
        low = model.forward_lowres(x)
    stride = model.output_stride
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 67, 91)
    assert low.shape[:2] == (2, 5) and abs(low.shape[-1] * stride - 91) < stride


@pytest.mark.parametrize("variant", ["tiny", "base"])
def test_backward_reaches_every_parameter(variant: str) -> None:
    torch.manual_seed(0)
    model = FACTORIES[variant](3).train()
    (logits,) = model(torch.randn(2, 3, 64, 64))
    nn.functional.cross_entropy(logits, torch.randint(0, 3, (2, 64, 64))).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_registry_builds_both_variants_with_typed_kwargs() -> None:
    assert {"pp_mobileseg_base", "pp_mobileseg_tiny"} <= set(ppseg.list_models("pp_mobileseg*"))
    model = ppseg.create_model("pp_mobileseg_tiny", num_classes=19, aam_gate_act="relu6")
    assert isinstance(model, PPMobileSeg) and isinstance(model.backbone.inj_module.gate, nn.ReLU6)
    with pytest.raises(ConfigError, match="aam_gate_act"):
        ppseg.create_model("pp_mobileseg_tiny", aam_gate_act="hardsigmoid")
    with pytest.raises(ConfigError, match="fusion"):
        ppseg.create_model("pp_mobileseg_base", fusion="AAMSx8")


# ---------------------------------------------------------------------------------------
# Parity control (fixtures in ../shared/spec/parity; skipped without them). The Paddle
# layout and parity tests of all four fixtures are the table in test_parity.py.
# ---------------------------------------------------------------------------------------


def test_gate_activation_is_observable() -> None:
    """Loading sigmoid-gate reference weights into a ReLU6-gate model must not pass parity."""
    meta, arrays = load_fixture("pp_mobileseg_tiny_sigmoid")
    model = pp_mobileseg_tiny(meta["constructor"]["num_classes"], aam_gate_act="relu6")
    load_reference(model, meta)
    with torch.no_grad():
        got = model.eval()(torch.from_numpy(arrays["in0_x"])).numpy()
    assert np.abs(got - arrays["out0_logits"]).max() > 100 * tolerance(meta, "out0_logits")


# ---------------------------------------------------------------------------------------
# ONNX export
# ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("variant", ["tiny", "base"])
def test_onnx_export_dynamic_hw_matches_torch(variant: str) -> None:
    model = _randomize(FACTORIES[variant](19))
    # The odd size exercises the AAM's scale_factor=0.5 resize and size-based resizes.
    assert_onnx_matches_torch(model, [(1, 3, 64, 96), (2, 3, 97, 131)])
