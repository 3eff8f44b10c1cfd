"""Make ``losses_metrics.npz`` / ``losses_metrics.json``: PaddleSeg 2.8.0's own loss values,
gradients and metrics on small random inputs, for ``tests/test_paddleseg_losses_metrics.py``.

Run from the repository root with the PaddleSeg reference environment (paddle 2.6.2, CPU;
``../shared/spec/reference.md`` says how to install it)::

    .paddle-venv/bin/python tests/data/paddleseg/make_losses_metrics.py

It rewrites ``tests/data/paddleseg/losses_metrics.npz`` and ``losses_metrics.json`` next to
this script. Every input comes from a fixed seed, so a rerun gives the same inputs (and, on
the same paddle build, the same values).

* ``losses_metrics.json``: ``{"losses": [case, ...], "metrics": [case, ...], "differs": {...}}``.
  A loss case is ``{"name", "loss": {PaddleSeg loss config: type + keyword arguments}, "grad"}``;
  its arrays in the npz are ``<name>/logits`` (float32 ``[N, C, H, W]``), ``<name>/label``
  (uint8 ``[N, H, W]``, 255 = ignored), ``<name>/value`` (float64 scalar: the reference loss;
  the sum of the list for ``MixedLoss``) and, when ``grad`` is true, ``<name>/grad`` (float32
  gradient of that value w.r.t. the logits). A metrics case has ``<name>/pred`` and
  ``<name>/label`` (uint8 ``[N, H, W]``, accumulated over the images as PaddleSeg's
  ``core/val.py`` does) and the outputs of ``utils.metrics.mean_iou``, ``class_measurement``,
  ``accuracy``, ``kappa`` and ``dice`` as ``<name>/<output>``.
* ``"differs"``: the deliberate differences of ppseg from PaddleSeg, measured here (reference
  value vs. the value ppseg documents), for the README table; the arrays they were measured on
  are stored too (``differs/<item>/...``).

``utils.metrics.calculate_area`` fails on paddle 2.6 (it concatenates 0-D sums), so the
per-class areas are counted here exactly as it defines them (prediction counted only where
the label is not ignored; label area over the whole label) and passed to the metric
functions as int64 tensors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2  # noqa: F401  (before paddle: paddle 2.6 segfaults in zlib otherwise)
import numpy as np
import paddle
import paddle.nn.functional as F
import paddleseg
from paddleseg.models import losses as L
from paddleseg.utils import metrics as M

HERE = Path(__file__).resolve().parent
IGN = 255


def rng_for(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def make_input(seed: int, n: int, c: int, h: int, w: int, *, scale: float = 2.5, ignore: float = 0.15,
               label_classes: list[int] | None = None, blobs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random logits ``[n, c, h, w]`` float32 and labels ``[n, h, w]`` uint8 with ignore pixels."""
    rng = rng_for(seed)
    if blobs:  # smooth logits and labels (connected regions), for SCL
        low = rng.normal(size=(n, c, (h + 3) // 4, (w + 3) // 4)).astype(np.float32)
        logits = np.stack([np.stack([cv2.resize(ch, (w, h), interpolation=cv2.INTER_LINEAR) for ch in img])
                           for img in low]) * scale
        logits += rng.normal(size=logits.shape).astype(np.float32) * 0.3 * scale
        low_l = rng.normal(size=(n, c, (h + 2) // 3, (w + 2) // 3)).astype(np.float32)
        up = np.stack([np.stack([cv2.resize(ch, (w, h), interpolation=cv2.INTER_LINEAR) for ch in img])
                       for img in low_l])
        label = up.argmax(1).astype(np.uint8)
    else:
        logits = (rng.normal(size=(n, c, h, w)) * scale).astype(np.float32)
        classes = np.asarray(label_classes if label_classes is not None else list(range(c)))
        label = classes[rng.integers(0, len(classes), size=(n, h, w))].astype(np.uint8)
    label[rng.random((n, h, w)) < ignore] = IGN
    return logits.astype(np.float32), label


# ----------------------------------------------------------------------------- losses


def build(cfg: dict):
    """A PaddleSeg loss from a config dict (as in a PaddleSeg yml ``loss.types`` entry)."""
    cfg = dict(cfg)
    kind = cfg.pop("type")
    if kind == "MixedLoss":
        cfg["losses"] = [build(sub) for sub in cfg["losses"]]
    return getattr(L, kind)(**cfg)


def run_loss(cfg: dict, logits: np.ndarray, label: np.ndarray, grad: bool) -> tuple[float, np.ndarray | None]:
    x = paddle.to_tensor(logits, stop_gradient=not grad)
    y = paddle.to_tensor(label.astype(np.int64))
    out = build(cfg)(x, y)
    if isinstance(out, list):  # MixedLoss returns the weighted terms
        out = paddle.add_n(out)
    value = float(out.numpy().reshape(-1)[0])
    if not grad:
        return value, None
    out.backward()
    return value, x.grad.numpy().astype(np.float32)


W5 = [0.5, 2.0, 1.0, 3.0, 0.25]
W4 = [1.5, 0.5, 2.0, 1.0]

CE = "CrossEntropyLoss"
LOV = "LovaszSoftmaxLoss"

# name: (loss config, input kwargs (seed, n, c, h, w, ...), gradient?)
LOSS_CASES: dict[str, tuple[dict, dict, bool]] = {
    # CrossEntropyLoss: weights, avg_non_ignore both ways, top_k_percent_pixels
    "ce_plain": ({"type": CE}, dict(seed=1, n=2, c=5, h=13, w=17), True),
    "ce_plain_b1": ({"type": CE}, dict(seed=2, n=1, c=3, h=7, w=9), True),
    "ce_weight": ({"type": CE, "weight": W5}, dict(seed=3, n=2, c=5, h=13, w=17), True),
    "ce_weight_b3": ({"type": CE, "weight": W4}, dict(seed=4, n=3, c=4, h=5, w=11), True),
    "ce_all_pixels": ({"type": CE, "avg_non_ignore": False}, dict(seed=5, n=2, c=5, h=13, w=17), True),
    # class weights with avg_non_ignore false: PaddleSeg one-hot encodes the raw label, so an
    # ignored pixel raises there; these inputs have none (see "differs")
    "ce_weight_all_pixels": ({"type": CE, "weight": W5, "avg_non_ignore": False},
                             dict(seed=6, n=2, c=5, h=13, w=17, ignore=0.0), True),
    "ce_weight_all_pixels_b1": ({"type": CE, "weight": W4, "avg_non_ignore": False},
                                dict(seed=7, n=1, c=4, h=9, w=6, ignore=0.0), True),
    "ce_topk": ({"type": CE, "top_k_percent_pixels": 0.3}, dict(seed=8, n=2, c=5, h=13, w=17), True),
    "ce_topk_weight": ({"type": CE, "weight": W5, "top_k_percent_pixels": 0.3},
                       dict(seed=9, n=2, c=5, h=13, w=17), True),
    "ce_topk_weight_b3": ({"type": CE, "weight": W4, "top_k_percent_pixels": 0.6},
                          dict(seed=10, n=3, c=4, h=7, w=5), True),
    # k larger than the valid pixels: ignored pixels (loss 0) are among the kept ones
    "ce_topk_weight_past_valid": ({"type": CE, "weight": W5, "top_k_percent_pixels": 0.95},
                                  dict(seed=11, n=2, c=5, h=9, w=13, ignore=0.3), True),
    "ce_topk_weight_all_pixels": ({"type": CE, "weight": W5, "top_k_percent_pixels": 0.4, "avg_non_ignore": False},
                                  dict(seed=12, n=2, c=5, h=13, w=17, ignore=0.0), True),
    "ce_topk_all_pixels": ({"type": CE, "top_k_percent_pixels": 0.5, "avg_non_ignore": False},
                           dict(seed=13, n=2, c=5, h=13, w=17), True),
    "ce_other_ignore": ({"type": CE, "ignore_index": 0, "weight": W5},
                        dict(seed=14, n=2, c=5, h=8, w=9, ignore=0.0), True),  # class 0 is the ignored one
    # OhemCrossEntropyLoss, min_kept >= 1
    "ohem_thresh": ({"type": "OhemCrossEntropyLoss", "thresh": 0.7, "min_kept": 5},
                    dict(seed=20, n=2, c=5, h=13, w=17), True),
    "ohem_kth": ({"type": "OhemCrossEntropyLoss", "thresh": 0.3, "min_kept": 150},
                 dict(seed=21, n=2, c=5, h=13, w=17, scale=1.0), True),
    "ohem_min_kept_1": ({"type": "OhemCrossEntropyLoss", "thresh": 0.05, "min_kept": 1},
                        dict(seed=22, n=3, c=3, h=7, w=9), True),
    "ohem_all_kept": ({"type": "OhemCrossEntropyLoss", "thresh": 0.7, "min_kept": 10000},
                      dict(seed=23, n=2, c=5, h=13, w=17), True),
    # LovaszSoftmaxLoss: present / all / a class list (with a class absent from the labels)
    "lovasz_present": ({"type": LOV}, dict(seed=30, n=2, c=5, h=13, w=17, label_classes=[0, 1, 3, 4]), True),
    "lovasz_present_b1": ({"type": LOV}, dict(seed=31, n=1, c=4, h=9, w=11), True),
    "lovasz_all": ({"type": LOV, "classes": "all"}, dict(seed=32, n=2, c=5, h=13, w=17, label_classes=[0, 1, 3, 4]),
                   True),
    "lovasz_list": ({"type": LOV, "classes": [1, 2, 3]},
                    dict(seed=33, n=2, c=5, h=13, w=17, label_classes=[0, 1, 3, 4]), True),
    "lovasz_list_one": ({"type": LOV, "classes": [3]}, dict(seed=34, n=3, c=4, h=6, w=7), True),
    # LovaszHingeLoss on 1-channel logits (2 channels: see "differs")
    "hinge_1ch": ({"type": "LovaszHingeLoss"}, dict(seed=40, n=2, c=1, h=13, w=17, label_classes=[0, 1]), True),
    "hinge_1ch_b1": ({"type": "LovaszHingeLoss"}, dict(seed=41, n=1, c=1, h=7, w=9, label_classes=[0, 1]), True),
    # BCELoss without pos_weight (paddle 2.6's pos_weight kernel is wrong, see "differs")
    "bce_1ch": ({"type": "BCELoss"}, dict(seed=50, n=2, c=1, h=13, w=17, label_classes=[0, 1]), True),
    "bce_3ch": ({"type": "BCELoss"}, dict(seed=51, n=2, c=3, h=13, w=17), True),
    "bce_dynamic_weight": ({"type": "BCELoss", "weight": "dynamic"},
                           dict(seed=52, n=2, c=1, h=13, w=17, label_classes=[0, 0, 0, 1]), True),
    "bce_dynamic_weight_3ch": ({"type": "BCELoss", "weight": "dynamic"}, dict(seed=53, n=3, c=3, h=5, w=7), True),
    "bce_edge_label_false": ({"type": "BCELoss", "edge_label": False}, dict(seed=54, n=1, c=2, h=9, w=8), True),
    # DiceLoss: per image, then the batch mean
    "dice_b1": ({"type": "DiceLoss"}, dict(seed=60, n=1, c=5, h=13, w=17), True),
    "dice_b2": ({"type": "DiceLoss"}, dict(seed=61, n=2, c=5, h=13, w=17, label_classes=[0, 1, 4]), True),
    "dice_b3_weight": ({"type": "DiceLoss", "weight": W4}, dict(seed=62, n=3, c=4, h=7, w=9), True),
    "dice_smooth0": ({"type": "DiceLoss", "smooth": 0.0}, dict(seed=63, n=3, c=4, h=7, w=9, label_classes=[0, 2]),
                     True),
    "dice_smooth_half": ({"type": "DiceLoss", "smooth": 0.5}, dict(seed=64, n=2, c=3, h=11, w=5, ignore=0.4), True),
    # MixedLoss: CE + Lovász (ppseg computes it on its fused path), CE + Dice (Dice last: it
    # overwrites the label, see "differs")
    "mixed_ce_lovasz": ({"type": "MixedLoss", "losses": [{"type": CE}, {"type": LOV}], "coef": [0.8, 0.2]},
                        dict(seed=70, n=2, c=5, h=13, w=17), True),
    "mixed_ce_lovasz_weight": ({"type": "MixedLoss", "losses": [{"type": CE, "weight": W5}, {"type": LOV}],
                                "coef": [1.0, 0.5]}, dict(seed=71, n=3, c=5, h=9, w=11), True),
    "mixed_ce_lovasz_weight_all_pixels": (
        {"type": "MixedLoss", "losses": [{"type": CE, "weight": W4, "avg_non_ignore": False}, {"type": LOV}],
         "coef": [0.8, 0.2]}, dict(seed=72, n=2, c=4, h=13, w=17, ignore=0.0), True),
    "mixed_ce_lovasz_all_pixels": (
        {"type": "MixedLoss", "losses": [{"type": LOV}, {"type": CE, "avg_non_ignore": False}], "coef": [0.3, 1.2]},
        dict(seed=73, n=2, c=5, h=13, w=17), True),
    "mixed_ce_dice": ({"type": "MixedLoss", "losses": [{"type": CE}, {"type": "DiceLoss"}], "coef": [1.0, 1.0]},
                      dict(seed=74, n=2, c=4, h=13, w=17), True),
    # SemanticConnectivityLoss (ppseg: mode reference); PaddleSeg's carries no gradient
    "scl": ({"type": "SemanticConnectivityLoss"}, dict(seed=80, n=2, c=3, h=24, w=31, blobs=True, ignore=0.05),
            False),
    "scl_4cls": ({"type": "SemanticConnectivityLoss", "max_pred_num_conn": 4},
                 dict(seed=81, n=3, c=4, h=19, w=23, blobs=True, ignore=0.02), False),
}


# ----------------------------------------------------------------------------- metrics


def areas(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = IGN):
    """``calculate_area`` of one image, counted in numpy (its 0-D concat fails on paddle 2.6)."""
    mask = label != ignore_index
    inter, pred_a, label_a = [], [], []
    for i in range(num_classes):
        p = (pred == i) & mask
        lab = label == i
        pred_a.append(int(p.sum()))
        label_a.append(int(lab.sum()))
        inter.append(int((p & lab).sum()))
    return np.array(inter, np.int64), np.array(pred_a, np.int64), np.array(label_a, np.int64)


METRIC_CASES: dict[str, dict] = {
    # (seed, images, classes, size, classes used by label / prediction, ignore fraction)
    "metrics_absent_class": dict(seed=100, n=3, c=5, h=13, w=17, label_classes=[0, 1, 2], pred_classes=[0, 1, 2],
                                 ignore=0.1),
    "metrics_pred_only_class": dict(seed=101, n=2, c=4, h=9, w=11, label_classes=[0, 1], pred_classes=[0, 1, 3],
                                    ignore=0.2),
    "metrics_label_only_class": dict(seed=102, n=4, c=6, h=7, w=5, label_classes=[0, 2, 3, 5],
                                     pred_classes=[0, 2, 3], ignore=0.05),
    "metrics_all_classes": dict(seed=103, n=2, c=3, h=13, w=17, label_classes=[0, 1, 2], pred_classes=[0, 1, 2],
                                ignore=0.0),
    "metrics_mostly_right": dict(seed=104, n=5, c=7, h=6, w=9, label_classes=[0, 1, 2, 4, 6],
                                 pred_classes=None, ignore=0.25),
}


def make_metric_input(seed: int, n: int, c: int, h: int, w: int, label_classes, pred_classes, ignore: float):
    rng = rng_for(seed)
    lc = np.asarray(label_classes)
    label = lc[rng.integers(0, len(lc), size=(n, h, w))].astype(np.uint8)
    if pred_classes is None:  # 80 % right, the rest random over all classes
        pred = np.where(rng.random((n, h, w)) < 0.8, label, rng.integers(0, c, size=(n, h, w))).astype(np.uint8)
    else:
        pc = np.asarray(pred_classes)
        pred = pc[rng.integers(0, len(pc), size=(n, h, w))].astype(np.uint8)
        agree = rng.random((n, h, w)) < 0.4
        pred = np.where(agree & np.isin(label, pc), label, pred).astype(np.uint8)
    ign = rng.random((n, h, w)) < ignore
    label[ign] = IGN
    pred[ign & (rng.random((n, h, w)) < 0.5)] = 0  # some predictions at ignored pixels are valid classes too
    return pred, label


def run_metrics(pred: np.ndarray, label: np.ndarray, c: int) -> dict[str, np.ndarray]:
    inter = np.zeros(c, np.int64)
    pred_a = np.zeros(c, np.int64)
    label_a = np.zeros(c, np.int64)
    for i in range(pred.shape[0]):  # summed over the images, as core/val.py does
        a, b, d = areas(pred[i], label[i], c)
        inter, pred_a, label_a = inter + a, pred_a + b, label_a + d
    t = lambda v: paddle.to_tensor(v, dtype="int64")  # noqa: E731
    class_iou, miou = M.mean_iou(t(inter), t(pred_a), t(label_a))
    acc, class_precision, class_recall = M.class_measurement(t(inter), t(pred_a), t(label_a))
    class_acc, macc = M.accuracy(t(inter), t(pred_a))
    kappa = M.kappa(t(inter), t(pred_a), t(label_a))
    class_dice, mdice = M.dice(t(inter), t(pred_a), t(label_a))
    out = dict(intersect_area=inter, pred_area=pred_a, label_area=label_a, class_iou=class_iou, miou=miou, acc=acc,
               class_precision=class_precision, class_recall=class_recall, accuracy_class_acc=class_acc,
               accuracy_macc=macc, kappa=kappa, class_dice=class_dice, mdice=mdice)
    return {k: np.asarray(v, dtype=np.float64 if k not in ("intersect_area", "pred_area", "label_area") else np.int64)
            for k, v in out.items()}


# ----------------------------------------------------------------------------- deliberate differences


def measure_differs(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """The reference's behaviour on the items where ppseg differs on purpose (numbers for the README)."""
    out: dict[str, dict] = {}

    # 1. DiceLoss overwrites the caller's label tensor
    logits, label = make_input(200, 2, 4, 13, 17, ignore=0.2)
    y = paddle.to_tensor(label.astype(np.int64))
    L.DiceLoss()(paddle.to_tensor(logits), y)
    changed = int((y.numpy() != label.astype(np.int64)).sum())
    mixed = build({"type": "MixedLoss", "losses": [{"type": "DiceLoss"}, {"type": CE}], "coef": [1.0, 1.0]})
    terms = mixed(paddle.to_tensor(logits), paddle.to_tensor(label.astype(np.int64)))
    ce_after = float(terms[1].numpy().reshape(-1)[0])
    ce_alone, _ = run_loss({"type": CE}, logits, label, False)
    arrays.update({"differs/dice_label/logits": logits, "differs/dice_label/label": label})
    out["dice_overwrites_label"] = dict(
        ignored_pixels=int((label == IGN).sum()), label_pixels_changed=changed,
        ce_after_dice_in_mixedloss=ce_after, ce_alone=ce_alone,
        relative=abs(ce_after - ce_alone) / ce_alone)

    # 2. LovaszHingeLoss on 2 channels: log(p + eps / (1 - p + eps)) instead of log(p / (1 - p))
    logits, label = make_input(201, 2, 2, 13, 17, label_classes=[0, 1])
    ref2, _ = run_loss({"type": "LovaszHingeLoss"}, logits, label, False)
    unary = (logits[:, 1:] - logits[:, :1]).astype(np.float32)
    ref1, _ = run_loss({"type": "LovaszHingeLoss"}, unary, label, False)
    arrays.update({"differs/hinge_2ch/logits": logits, "differs/hinge_2ch/label": label})
    out["lovasz_hinge_2ch"] = dict(paddleseg_2ch=ref2, paddleseg_on_x1_minus_x0=ref1,
                                   relative=abs(ref2 - ref1) / ref1)

    # 3. OHEM with min_kept 0: PaddleSeg keeps every valid pixel (plain CE)
    logits, label = make_input(202, 2, 5, 13, 17)
    ohem0, _ = run_loss({"type": "OhemCrossEntropyLoss", "thresh": 0.7, "min_kept": 0}, logits, label, False)
    x = logits.astype(np.float64)
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    valid = label != IGN
    lab = np.where(valid, label, 0).astype(np.int64)
    pg = np.take_along_axis(p, lab[:, None], 1)[:, 0]
    kept = valid & (pg < 0.7)
    ce = -np.log(pg)
    ours = float((ce * kept).mean() / (kept.mean() + 1e-5))
    plain = float((ce * valid).mean() / (valid.mean() + 1e-5))
    arrays.update({"differs/ohem0/logits": logits, "differs/ohem0/label": label})
    out["ohem_min_kept_0"] = dict(paddleseg=ohem0, plain_ce_all_valid=plain, thresholded=ours,
                                  kept_fraction=float(kept.sum() / valid.sum()), relative=abs(ours - ohem0) / ohem0)

    # 4. paddle 2.6's BCE pos_weight kernel
    logits, label = make_input(203, 2, 1, 13, 17, scale=4.0, label_classes=[0, 1])
    ref_pw, ref_pw_grad = run_loss({"type": "BCELoss", "pos_weight": 3.0}, logits, label, True)
    ref_dyn, _ = run_loss({"type": "BCELoss", "pos_weight": "dynamic"}, logits, label, False)
    xs = logits[:, 0].astype(np.float64)
    valid = label != IGN
    yv = np.where(valid, label, 0).astype(np.float64)

    def bce(pw):
        elem = pw * yv * np.logaddexp(0, -xs) + (1 - yv) * np.logaddexp(0, xs)
        return float((elem * valid).mean() / (valid.mean() + 1e-10))
    pos, neg = float((yv == 1).sum()), float((yv == 0).sum())
    arrays.update({"differs/bce_pos_weight/logits": logits, "differs/bce_pos_weight/label": label})
    out["bce_pos_weight"] = dict(paddleseg_pos_weight_3=ref_pw, formula_pos_weight_3=bce(3.0),
                                 relative=abs(ref_pw - bce(3.0)) / bce(3.0),
                                 paddleseg_dynamic=ref_dyn, formula_dynamic=bce(2 * neg / (pos + neg + 1e-10)))
    elem_x = np.array([-9.0, -2.0, 0.0, 2.0], np.float32)
    kern = F.binary_cross_entropy_with_logits(paddle.to_tensor(elem_x), paddle.ones([4]), reduction="none",
                                              pos_weight=paddle.to_tensor([3.0]))
    out["bce_pos_weight"]["label_1_logits"] = elem_x.tolist()
    out["bce_pos_weight"]["paddle_kernel"] = kern.numpy().tolist()
    out["bce_pos_weight"]["formula"] = (3.0 * np.logaddexp(0, -elem_x.astype(np.float64))).tolist()

    # 5. CE with class weights, avg_non_ignore false and an ignored pixel: PaddleSeg raises
    logits, label = make_input(204, 1, 3, 5, 6, ignore=0.2)
    try:
        run_loss({"type": CE, "weight": [1.0, 2.0, 0.5], "avg_non_ignore": False}, logits, label, False)
        out["ce_weight_all_pixels_with_ignore"] = dict(raises=False)
    except Exception as e:  # noqa: BLE001
        out["ce_weight_all_pixels_with_ignore"] = dict(raises=True, error=f"{type(e).__name__}: {str(e)[:160]}")

    # 6. metrics with no counted pixel / one class everywhere: PaddleSeg divides 0 by 0
    with np.errstate(all="ignore"):
        empty = run_metrics(np.zeros((1, 2, 2), np.uint8), np.full((1, 2, 2), IGN, np.uint8), 3)
        single = run_metrics(np.ones((1, 2, 2), np.uint8), np.ones((1, 2, 2), np.uint8), 3)
    out["metrics_degenerate"] = dict(no_pixel_acc=float(empty["acc"]), no_pixel_kappa=float(empty["kappa"]),
                                     one_class_kappa=float(single["kappa"]))
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {"paddle": paddle.__version__, "paddleseg": paddleseg.__version__, "losses": [], "metrics": []}
    for name, (cfg, inp, grad) in LOSS_CASES.items():
        logits, label = make_input(**inp)
        value, g = run_loss(cfg, logits, label, grad)
        arrays[f"{name}/logits"] = logits
        arrays[f"{name}/label"] = label
        arrays[f"{name}/value"] = np.float64(value)
        if g is not None:
            arrays[f"{name}/grad"] = g
        meta["losses"].append({"name": name, "loss": cfg, "grad": grad})
    for name, inp in METRIC_CASES.items():
        pred, label = make_metric_input(**inp)
        arrays[f"{name}/pred"] = pred
        arrays[f"{name}/label"] = label
        for k, v in run_metrics(pred, label, inp["c"]).items():
            arrays[f"{name}/{k}"] = v
        meta["metrics"].append({"name": name, "num_classes": inp["c"], "ignore_index": IGN})
    meta["differs"] = measure_differs(arrays)
    np.savez_compressed(HERE / "losses_metrics.npz", **arrays)
    (HERE / "losses_metrics.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = (HERE / "losses_metrics.npz").stat().st_size
    print(f"{len(meta['losses'])} loss cases, {len(meta['metrics'])} metric cases, npz {size} bytes", file=sys.stderr)
    print(json.dumps(meta["differs"], indent=1))


if __name__ == "__main__":
    main()
