"""ppseg's losses and metrics against values made by PaddleSeg 2.8.0's own code (paddle 2.6.2).

The fixture ``tests/data/paddleseg/losses_metrics.npz`` (+ ``.json``) is committed; it was made
by ``tests/data/paddleseg/make_losses_metrics.py`` (its docstring has the command). This file
needs numpy and torch only, and nothing here is skipped.

* Every loss ppseg shares with PaddleSeg: values to 1e-6 and gradients w.r.t. the logits
  (where PaddleSeg has one) to 1e-6, built from the same config as PaddleSeg's
  (``SemanticConnectivityLoss`` with ``mode: reference``; ``MixedLoss`` on both the plain and
  the fused CE + Lovász path).
* Every metric to 1e-9, on cases with absent classes, ignored pixels and several images.
* The deliberate differences (README "Where ppseg differs from PaddleSeg"): ppseg's
  documented behaviour, next to PaddleSeg's measured one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ppseg.losses.fused as fused
from ppseg.config import load_config
from ppseg.engine import build
from ppseg.losses import CrossEntropyLoss, DiceLoss, MixedLoss, SemanticConnectivityLoss
from ppseg.semantic.metrics import SegMetrics

DATA = Path(__file__).resolve().parent / "data" / "paddleseg"
NPZ = np.load(DATA / "losses_metrics.npz")
META = json.loads((DATA / "losses_metrics.json").read_text())
LOSS_CASES = {c["name"]: c for c in META["losses"]}
METRIC_CASES = {c["name"]: c for c in META["metrics"]}
DIFFERS = META["differs"]

VALUE_TOL = 1e-6  # relative (absolute below 1): float32 values of 0.5-7
GRAD_TOL = 1e-6  # absolute, and at most 1e-5 of the largest gradient entry
METRIC_TOL = 1e-9


def ppseg_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The PaddleSeg loss config as a ppseg user writes it (SCL: ``mode: reference``)."""
    cfg = dict(cfg)
    if cfg["type"] == "MixedLoss":
        cfg["losses"] = [ppseg_config(sub) for sub in cfg["losses"]]
    if cfg["type"] == "SemanticConnectivityLoss":
        cfg["mode"] = "reference"
    return cfg


def build_loss(cfg: dict[str, Any], tmp_path: Path) -> torch.nn.Module:
    """The loss built by ppseg's config builder from a YAML file (JSON is YAML)."""
    path = tmp_path / "loss.yml"
    path.write_text(json.dumps({"loss": {"types": [ppseg_config(cfg)], "coef": [1.0]}}))
    losses, _ = build.build_losses(load_config(path))
    return losses[0]


def run(loss: torch.nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.from_numpy(NPZ[f"{name}/logits"].copy()).requires_grad_(True)
    label = torch.from_numpy(NPZ[f"{name}/label"].astype(np.int64))
    value = loss(logits, label)
    (grad,) = torch.autograd.grad(value, logits, allow_unused=True)
    return value.detach(), torch.zeros_like(logits) if grad is None else grad


def check_case(name: str, loss: torch.nn.Module) -> None:
    case = LOSS_CASES[name]
    value, grad = run(loss, name)
    ref = float(NPZ[f"{name}/value"])
    assert abs(value.item() - ref) <= VALUE_TOL * max(1.0, abs(ref)), (name, value.item(), ref)
    if case["grad"]:
        ref_grad = NPZ[f"{name}/grad"]
        err = np.abs(grad.numpy().astype(np.float64) - ref_grad).max()
        assert err <= min(GRAD_TOL, 1e-5 * np.abs(ref_grad).max()), (name, err, np.abs(ref_grad).max())


def test_fixture_is_complete() -> None:
    """The committed fixture has every kind of case (so the parametrised tests below run on all of them)."""
    assert META["paddleseg"] == "2.8.0" and META["paddle"].startswith("2.6")
    kinds = {c["loss"]["type"] for c in META["losses"]}
    assert kinds == {"CrossEntropyLoss", "OhemCrossEntropyLoss", "LovaszSoftmaxLoss", "LovaszHingeLoss",
                     "BCELoss", "DiceLoss", "MixedLoss", "SemanticConnectivityLoss"}
    assert len(META["losses"]) >= 40 and len(META["metrics"]) >= 5
    assert (DATA / "losses_metrics.npz").stat().st_size < 1 << 20


@pytest.mark.parametrize("name", sorted(n for n in LOSS_CASES if LOSS_CASES[n]["loss"]["type"] != "MixedLoss"))
def test_loss_equals_paddleseg(name: str, tmp_path: Path) -> None:
    check_case(name, build_loss(LOSS_CASES[name]["loss"], tmp_path))


@pytest.mark.parametrize("fused_path", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("name", sorted(n for n in LOSS_CASES if LOSS_CASES[n]["loss"]["type"] == "MixedLoss"))
def test_mixed_loss_equals_paddleseg(name: str, fused_path: bool, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fused, "ENABLED", fused_path)
    loss = build_loss(LOSS_CASES[name]["loss"], tmp_path)
    assert isinstance(loss, MixedLoss)
    types = {type(m).__name__ for m in loss.losses}
    if fused_path and types == {"CrossEntropyLoss", "LovaszSoftmaxLoss"}:
        assert fused.fusable_pair(list(loss.losses)) is not None  # the case runs on the fused path
    calls = []
    real = fused.fused_ce_lovasz
    monkeypatch.setattr("ppseg.losses.mixed.fused_ce_lovasz", lambda *a, **k: calls.append(1) or real(*a, **k))
    check_case(name, loss)
    assert bool(calls) == (fused_path and types == {"CrossEntropyLoss", "LovaszSoftmaxLoss"})


@pytest.mark.parametrize("name", sorted(METRIC_CASES))
def test_metrics_equal_paddleseg(name: str) -> None:
    case = METRIC_CASES[name]
    pred = torch.from_numpy(NPZ[f"{name}/pred"].astype(np.int64))
    label = torch.from_numpy(NPZ[f"{name}/label"].astype(np.int64))
    m = SegMetrics(case["num_classes"], ignore_index=case["ignore_index"])
    for i in range(pred.shape[0]):  # one image at a time, like an evaluation loop
        m.update(pred[i : i + 1], label[i : i + 1])
    cm = m.confusion.numpy()
    np.testing.assert_array_equal(np.diag(cm), NPZ[f"{name}/intersect_area"])
    np.testing.assert_array_equal(cm.sum(0), NPZ[f"{name}/pred_area"])
    np.testing.assert_array_equal(cm.sum(1), NPZ[f"{name}/label_area"])
    r = m.compute()
    ref = {k: NPZ[f"{name}/{k}"] for k in ("class_iou", "miou", "acc", "class_precision", "class_recall", "kappa",
                                            "class_dice", "mdice")}
    for key, value in ref.items():
        np.testing.assert_allclose(r[key], value, rtol=0, atol=METRIC_TOL, err_msg=f"{name} {key}")
    # PaddleSeg's deprecated accuracy(): its "class acc" is the precision, its "macc" the overall accuracy
    np.testing.assert_allclose(r["class_precision"], NPZ[f"{name}/accuracy_class_acc"], rtol=0, atol=METRIC_TOL)
    np.testing.assert_allclose(r["acc"], NPZ[f"{name}/accuracy_macc"], rtol=0, atol=METRIC_TOL)


def test_metric_cases_cover_absent_classes() -> None:
    """A class absent from both maps has IoU 0 in PaddleSeg and here (mIoU includes it)."""
    absent = 0
    for name in METRIC_CASES:
        union = NPZ[f"{name}/pred_area"] + NPZ[f"{name}/label_area"] - NPZ[f"{name}/intersect_area"]
        absent += int((union == 0).sum())
        assert np.all(NPZ[f"{name}/class_iou"][union == 0] == 0.0)
    assert absent >= 3
    assert any((NPZ[f"{n}/label"] == 255).any() for n in METRIC_CASES)


# ----------------------------------------------------------------------------- deliberate differences


def _differs_input(item: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.from_numpy(NPZ[f"differs/{item}/logits"].copy())
    label = torch.from_numpy(NPZ[f"differs/{item}/label"].astype(np.int64))
    return logits, label


def test_differs_dice_leaves_the_label_alone() -> None:
    """PaddleSeg's DiceLoss sets ignored label pixels to 0, so a CE after it trains on them."""
    logits, label = _differs_input("dice_label")
    before = label.clone()
    terms = MixedLoss([DiceLoss(), CrossEntropyLoss()], [1.0, 1.0]).terms(logits, label)
    assert torch.equal(label, before)
    d = DIFFERS["dice_overwrites_label"]
    assert d["label_pixels_changed"] == d["ignored_pixels"] > 0  # PaddleSeg: every ignored pixel became 0
    assert terms[1].item() == pytest.approx(d["ce_alone"], rel=1e-6)  # ours: the CE of the untouched label
    assert abs(terms[1].item() - d["ce_after_dice_in_mixedloss"]) > 0.01


def test_differs_lovasz_hinge_two_channels() -> None:
    """Ours on 2 channels = PaddleSeg's own loss on the intended logit x1 - x0 (1 channel)."""
    from ppseg.losses import LovaszHingeLoss

    logits, label = _differs_input("hinge_2ch")
    d = DIFFERS["lovasz_hinge_2ch"]
    ours = LovaszHingeLoss()(logits, label).item()
    assert ours == pytest.approx(d["paddleseg_on_x1_minus_x0"], rel=1e-6)
    assert abs(ours - d["paddleseg_2ch"]) > 0.05 * ours


def test_differs_ohem_min_kept_zero() -> None:
    from ppseg.losses import OhemCrossEntropyLoss

    logits, label = _differs_input("ohem0")
    d = DIFFERS["ohem_min_kept_0"]
    ours = OhemCrossEntropyLoss(thresh=0.7, min_kept=0)(logits, label).item()
    assert ours == pytest.approx(d["thresholded"], rel=1e-6)  # pixels with p_gt < thresh
    assert d["paddleseg"] == pytest.approx(d["plain_ce_all_valid"], rel=1e-6)  # PaddleSeg: no mining
    assert abs(ours - d["paddleseg"]) > 0.01 * ours


def test_differs_bce_pos_weight() -> None:
    from ppseg.losses import BCELoss

    logits, label = _differs_input("bce_pos_weight")
    d = DIFFERS["bce_pos_weight"]
    ours = BCELoss(pos_weight=3.0)(logits, label).item()
    assert ours == pytest.approx(d["formula_pos_weight_3"], rel=1e-6)
    assert abs(ours - d["paddleseg_pos_weight_3"]) > 0.1 * ours
    assert BCELoss(pos_weight="dynamic")(logits, label).item() == pytest.approx(d["formula_dynamic"], rel=1e-6)
    # the kernel: label 1, logits -9, -2, 0, 2, pos_weight 3
    np.testing.assert_allclose(d["formula"], 3.0 * np.logaddexp(0, -np.asarray(d["label_1_logits"])), rtol=1e-12)
    assert d["paddle_kernel"][0] == pytest.approx(9.00037, abs=1e-4)


def test_differs_ce_class_weights_all_pixels_with_ignored_pixels() -> None:
    """PaddleSeg raises (one-hot of label 255); ppseg counts the ignored pixel with weight 1."""
    assert DIFFERS["ce_weight_all_pixels_with_ignore"]["raises"]
    logits = torch.randn(1, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    label = torch.randint(0, 3, (1, 5, 6), generator=torch.Generator().manual_seed(1))
    label[0, 0, :3] = 255
    ours = CrossEntropyLoss(weight=[1.0, 2.0, 0.5], avg_non_ignore=False)(logits, label)
    assert math.isfinite(ours.item())


def test_differs_metrics_degenerate() -> None:
    d = DIFFERS["metrics_degenerate"]
    assert all(math.isnan(d[k]) for k in ("no_pixel_acc", "no_pixel_kappa", "one_class_kappa"))
    empty = SegMetrics(3).compute()
    assert empty["acc"] == 0.0 and empty["kappa"] == 0.0
    one = SegMetrics(3)
    one.update(torch.ones(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.long))
    assert one.compute()["kappa"] == 1.0


def test_differs_scl_default_mode() -> None:
    """SCL's default is the differentiable mode; PaddleSeg's value is ``mode: reference``."""
    name = "scl"
    logits = torch.from_numpy(NPZ[f"{name}/logits"].copy()).requires_grad_(True)
    label = torch.from_numpy(NPZ[f"{name}/label"].astype(np.int64))
    default = SemanticConnectivityLoss()
    assert default.mode == "differentiable"
    value = default(logits, label)
    (grad,) = torch.autograd.grad(value, logits)
    assert grad.abs().sum() > 0  # trains the logits; PaddleSeg's SCL has no gradient
    reference = SemanticConnectivityLoss(mode="reference")(logits, label).item()
    assert reference == pytest.approx(float(NPZ[f"{name}/value"]), abs=VALUE_TOL)
    assert value.item() != pytest.approx(reference, abs=1e-3)
