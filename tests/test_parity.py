"""Parity with PaddleSeg on the reference fixtures of ``../shared/spec/parity``, one table for all models.

Each row of ``CASES`` names a fixture, how to build our model for it, which converter
options load its reference weights, and which outputs / intermediate arrays to compare.
Two tests run over the table:

* ``test_state_dict_matches_paddle_layout``: the fixture is the configuration the row says,
  has the README's parameter counts, and the model's state dict is the reference's key for
  key (BN renames, dead weights dropped by the converter options and counted);
* ``test_parity_with_paddle``: the rule weights through the checkpoint converter, every
  fixture input through the model (eval mode), each listed array within the fixture's
  tolerance (``suggested_atol``, else 1e-4·max(1, max|ref|); README "Tolerances").

Both skip when the fixtures are absent. Model-specific fixture tests (controls that must
fail, real ``.pdparams`` files, conversion end to end) stay in the model's test file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from helpers.parity import (
    PARITY_DIR,
    assert_matches_reference,
    assert_paddle_layout,
    is_bn_stat,
    load_fixture,
    load_reference,
    reference_shapes,
)
from ppseg.models import MobileNetV3
from ppseg.models.pp_humanseg import (
    pp_humanseg_lite_v1,
    pp_humansegv2_lite_general,
    pp_humansegv2_lite_portrait,
    pp_humansegv2_mobile,
)
from ppseg.models.pp_liteseg import pp_liteseg_b, pp_liteseg_t
from ppseg.models.pp_mobileseg import pp_mobileseg_base, pp_mobileseg_tiny

Outputs = Callable[[nn.Module, Tensor], dict[str, Tensor]]


# ---------------------------------------------------------------------------------------
# What to run: name -> tensor ("logits" is the fixture's out{k}_logits, any other name its dbg{k}_<name>)
# ---------------------------------------------------------------------------------------


def logits(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    return {"logits": model(x)}


def logits_and_backbone(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """PP-LiteSeg / PP-HumanSegV2: the backbone's features (``dbg*_backbone_j``) and the logits."""
    return {"logits": model(x), **features(model.backbone, x)}


def features(backbone: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """A backbone on its own: its features as ``backbone_0, backbone_1, ...``."""
    return {f"backbone_{j}": f for j, f in enumerate(backbone(x))}


def mobileseg_taps(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """PP-MobileSeg: the StrideFormer + AAM output, the head's low-resolution logits, the logits."""
    return {"logits": model(x), "backbone": model.backbone(x)[0], "head_logits": model.forward_lowres(x)}


def backbone_names(n: int) -> tuple[str, ...]:
    return tuple(f"backbone_{j}" for j in range(n))


# ---------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParityCase:
    """One fixture and how our model reproduces it.

    Attributes:
        fixture: name of the fixture (``<name>.json`` / ``<name>.npz``).
        factory, kwargs: our model, ``factory(**kwargs)``; a ``num_classes`` in ``kwargs``
            must be the fixture constructor's.
        expect: fixture json fields (dotted paths) -> the value this row is written for.
        reference_counts: the fixture's (parameters, BN statistics) element counts, README table.
        converter: registry name whose converter options load the weights (``None``: strict).
        prefix: only the reference keys under it, stripped (a sub-module on its own).
        dropped: (tensors, parameter elements, BN-statistic elements) the converter drops.
        outputs: the model's outputs to compare, by name (see ``logits`` above).
        compare: the names ``outputs`` must give: every one is compared, for every input.
        allclose: ``(atol, rtol)`` elementwise instead of the fixture's tolerance (tighter).
    """

    fixture: str
    factory: Callable[..., nn.Module]
    kwargs: Mapping[str, Any]
    expect: Mapping[str, Any]
    reference_counts: tuple[int, int]
    outputs: Outputs
    compare: tuple[str, ...]
    converter: str | None = None
    prefix: str = ""
    dropped: tuple[int, int, int] = (0, 0, 0)
    allclose: tuple[float, float] | None = None


def _mobileseg(variant: str, gate: str, counts: tuple[int, int]) -> ParityCase:
    return ParityCase(
        fixture=f"pp_mobileseg_{variant}_{gate}",
        factory={"tiny": pp_mobileseg_tiny, "base": pp_mobileseg_base}[variant],
        kwargs=MappingProxyType({"num_classes": 19, "aam_gate_act": gate}),
        expect=MappingProxyType({"constructor.backbone.type": f"MobileSeg_{variant.capitalize()}",
                                 "aam_gate_activation": gate}),
        reference_counts=counts,
        converter=f"pp_mobileseg_{variant}",
        outputs=mobileseg_taps,
        compare=("logits", "backbone", "head_logits"),
    )


CASES: dict[str, ParityCase] = {
    # PP-MobileSeg: AAM gate Sigmoid (PaddleSeg develop) and ReLU6 (the 2.8.0 release)
    **{f"pp_mobileseg_{v}_{g}": _mobileseg(v, g, counts)
       for v, counts in (("tiny", (1_458_631, 23_600)), ("base", (5_910_211, 52_544)))
       for g in ("sigmoid", "relu6")},
    "pp_liteseg_t": ParityCase(
        fixture="pp_liteseg_t", factory=pp_liteseg_t, kwargs=MappingProxyType({"num_classes": 19}),
        expect=MappingProxyType({"constructor.backbone.type": "STDC1"}), reference_counts=(8_141_603, 11_602),
        converter="pp_liteseg_t", outputs=logits_and_backbone, compare=("logits", *backbone_names(5)),
    ),
    "pp_liteseg_b": ParityCase(
        fixture="pp_liteseg_b", factory=pp_liteseg_b, kwargs=MappingProxyType({"num_classes": 19}),
        expect=MappingProxyType({"constructor.backbone.type": "STDC2"}), reference_counts=(12_366_467, 18_002),
        converter="pp_liteseg_b", outputs=logits_and_backbone, compare=("logits", *backbone_names(5)),
    ),
    # PP-HumanSeg: the reference's dead weights (V1 stride-1 units' `_depthwise_separable_0`,
    # V2-Lite portrait's MobileNetV3 blocks 12-14) are dropped by the converter options.
    "pp_humanseg_lite_v1": ParityCase(
        fixture="pp_humanseg_lite_v1", factory=pp_humanseg_lite_v1, kwargs=MappingProxyType({"num_classes": 2}),
        expect=MappingProxyType({"constructor.type": "PPHumanSegLite"}), reference_counts=(226_806, 9_372),
        converter="pp_humanseg_lite_v1", dropped=(100, 95_040, 3_672), outputs=logits, compare=("logits",),
    ),
    "pp_humansegv2_lite_general": ParityCase(
        fixture="pp_humansegv2_lite_general", factory=pp_humansegv2_lite_general,
        kwargs=MappingProxyType({"num_classes": 2}),
        expect=MappingProxyType({"constructor.type": "MobileSeg", "constructor.backbone_indices": [0, 1, 2, 3]}),
        reference_counts=(3_015_270, 28_720), converter="pp_humansegv2_lite_general",
        outputs=logits_and_backbone, compare=("logits", *backbone_names(4)),
    ),
    "pp_humansegv2_lite_portrait": ParityCase(
        fixture="pp_humansegv2_lite_portrait", factory=pp_humansegv2_lite_portrait,
        kwargs=MappingProxyType({"num_classes": 2}),
        expect=MappingProxyType({"constructor.type": "MobileSeg", "constructor.backbone_indices": [0, 1, 2]}),
        reference_counts=(2_954_118, 27_248), converter="pp_humansegv2_lite_portrait",
        dropped=(57, 2_023_944, 11_328),
        outputs=logits_and_backbone, compare=("logits", *backbone_names(3)),  # the model stops at 1/16
    ),
    "pp_humansegv2_mobile": ParityCase(
        fixture="pp_humansegv2_mobile", factory=pp_humansegv2_mobile, kwargs=MappingProxyType({"num_classes": 2}),
        expect=MappingProxyType({"constructor.type": "PPLiteSeg", "constructor.backbone.type": "STDC1"}),
        reference_counts=(7_565_452, 11_144), converter="pp_humansegv2_mobile",
        outputs=logits_and_backbone, compare=("logits", *backbone_names(5)),
    ),
    # PaddleSeg's MobileNetV3-large on its own (all four stages, incl. the blocks the portrait
    # model drops), with the portrait fixture's `backbone.*` weights; tighter elementwise bound.
    "mobilenetv3_large@pp_humansegv2_lite_portrait": ParityCase(
        fixture="pp_humansegv2_lite_portrait", factory=MobileNetV3, kwargs=MappingProxyType({}),
        expect=MappingProxyType({"constructor.backbone.type": "MobileNetV3_large_x1_0"}),
        reference_counts=(2_954_118, 27_248), prefix="backbone.",
        outputs=features, compare=backbone_names(4), allclose=(2e-5, 1e-5),
    ),
}

IDS = list(CASES)


def _json_field(meta: dict, path: str) -> Any:
    node: Any = meta
    for part in path.split("."):
        node = node[part]
    return node


def _build(case: ParityCase, meta: dict) -> nn.Module:
    """The row's model, after checking that the fixture is the configuration the row is written for."""
    for path, value in case.expect.items():
        assert _json_field(meta, path) == value, (case.fixture, path)
    if "num_classes" in case.kwargs:
        assert case.kwargs["num_classes"] == meta["constructor"]["num_classes"]
    return case.factory(**case.kwargs)


def test_table_covers_every_logits_fixture() -> None:
    """Every fixture whose output is segmentation logits has a row (the VIM label, matting alpha and
    EdgeFlow fixtures have other outputs and are not part of this loop)."""
    metas = {p.stem: json.loads(p.read_text()) for p in sorted(PARITY_DIR.glob("*.json"))}
    if not metas:
        pytest.skip(f"parity fixtures not present in {PARITY_DIR}")
    logits_fixtures = {name for name, meta in metas.items() if set(meta["outputs"]) == {"logits"}}
    assert {c.fixture for c in CASES.values()} == logits_fixtures
    assert all(c.compare and len(set(c.compare)) == len(c.compare) for c in CASES.values())


@pytest.mark.parametrize("case_id", IDS)
def test_state_dict_matches_paddle_layout(case_id: str) -> None:
    case = CASES[case_id]
    meta, _ = load_fixture(case.fixture)
    assert (meta["numel_excluding_bn_stats"], meta["numel_bn_stats"]) == case.reference_counts
    shapes = reference_shapes(meta)
    assert sum(int(np.prod(s)) for k, s in shapes.items() if not is_bn_stat(k)) == meta["numel_excluding_bn_stats"]
    assert sum(int(np.prod(s)) for s in shapes.values()) == meta["numel_all"]
    model = _build(case, meta)
    assert_paddle_layout(model, meta, model_name=case.converter, prefix=case.prefix, dropped=case.dropped)
    if not case.prefix:  # the whole model: what it holds + what the converter drops == the reference
        _, dead_params, dead_bn = case.dropped
        assert sum(p.numel() for p in model.parameters()) + dead_params == meta["numel_excluding_bn_stats"]
        assert sum(t.numel() for k, t in model.state_dict().items() if not k.endswith("num_batches_tracked")) \
            + dead_params + dead_bn == meta["numel_all"]


@pytest.mark.parametrize("case_id", IDS)
def test_parity_with_paddle(case_id: str) -> None:
    case = CASES[case_id]
    meta, arrays = load_fixture(case.fixture)
    model = _build(case, meta)
    converted = load_reference(model, meta, model_name=case.converter, prefix=case.prefix)
    assert not converted.filled and len(converted.dropped) == case.dropped[0]
    model.eval()
    if not case.prefix:  # the whole model: every output the fixture has is compared
        assert set(meta["outputs"]) <= set(case.compare)
    compared = []
    for inp in meta["inputs"]:
        k = inp["index"]
        with torch.no_grad():
            got = case.outputs(model, torch.from_numpy(arrays[f"in{k}_x"]))
        assert sorted(got) == sorted(case.compare), case_id
        for name, value in got.items():
            key = f"out{k}_{name}" if name in meta["outputs"] else f"dbg{k}_{name}"
            assert_matches_reference(value, meta, arrays, key, allclose=case.allclose)
            compared.append(key)
    assert len(compared) == len(meta["inputs"]) * len(case.compare) and len(meta["inputs"]) >= 2
