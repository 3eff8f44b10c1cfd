"""Numerical tests of ppseg.losses against torch / numpy / loop references (spec §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ppseg.errors import ConfigError
from ppseg.losses import (
    LOSSES,
    BCELoss,
    CrossEntropyLoss,
    DiceLoss,
    LovaszHingeLoss,
    LovaszSoftmaxLoss,
    MixedLoss,
    OhemCrossEntropyLoss,
    SegLoss,
    compute_losses,
)

IGN = 255


def make_batch(
    n: int = 2, c: int = 4, h: int = 6, w: int = 7, ignore_frac: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g) * 2.0
    label = torch.randint(0, c, (n, h, w), generator=g)
    drop = torch.rand(n, h, w, generator=g) < ignore_frac
    label[drop] = IGN
    return logits, label


def np_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_pixel_ce(logits: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per-pixel CE, [N, H, W]; ignored pixels get 0 (label replaced by 0)."""
    lab = np.where(label == IGN, 0, label)
    logp = np.log(np_softmax(logits.astype(np.float64)))
    return -np.take_along_axis(logp, lab[:, None], axis=1)[:, 0]


# ----------------------------------------------------------------------------- CE


def test_ce_matches_torch_ignore_index() -> None:
    logits, label = make_batch()
    ours = CrossEntropyLoss()(logits, label)
    ref = F.cross_entropy(logits, label, ignore_index=IGN)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_ce_class_weight_denominator() -> None:
    logits, label = make_batch(seed=1)
    weight = [0.5, 2.0, 1.0, 3.0]
    ours = CrossEntropyLoss(weight=weight)(logits, label)
    # numpy: sum(w[y] * ce) / sum(w[y]) over non-ignored pixels
    valid = label.numpy() != IGN
    ce = np_pixel_ce(logits.numpy(), label.numpy())
    w = np.asarray(weight)[np.where(valid, label.numpy(), 0)]
    ref = (w * ce)[valid].sum() / w[valid].sum()
    assert ours.item() == pytest.approx(ref, rel=1e-5)
    torch_ref = F.cross_entropy(logits, label, weight=torch.tensor(weight), ignore_index=IGN)
    torch.testing.assert_close(ours, torch_ref, rtol=1e-5, atol=1e-6)


def test_ce_avg_over_all_pixels_and_top_k() -> None:
    logits, label = make_batch(seed=2)
    ce = np_pixel_ce(logits.numpy(), label.numpy()) * (label.numpy() != IGN)
    ours = CrossEntropyLoss(avg_non_ignore=False)(logits, label)
    assert ours.item() == pytest.approx(ce.mean(), rel=1e-5)
    top = CrossEntropyLoss(top_k_percent_pixels=0.25)(logits, label)
    k = int(0.25 * ce.size)
    assert top.item() == pytest.approx(np.sort(ce.ravel())[::-1][:k].mean(), rel=1e-5)


def test_ce_top_k_with_class_weights_divides_by_the_kept_weights() -> None:
    # changed by issue 12 (PaddleSeg): mean(top-k of w*ce) / mean(weight of the kept pixels)
    logits, label = make_batch(seed=20, ignore_frac=0.3)
    weight = np.array([0.5, 2.0, 1.0, 3.0])
    lab = label.numpy()
    valid = lab != IGN
    w = weight[np.where(valid, lab, 0)]  # weight[0] at ignored pixels, as PaddleSeg reads them
    loss = np_pixel_ce(logits.numpy(), lab) * w * valid
    for p in (0.2, 0.9):  # 0.9: more than the valid pixels, ignored ones are kept too
        k = int(p * loss.size)
        idx = np.argsort(-loss.ravel(), kind="stable")[:k]
        ref = loss.ravel()[idx].mean() / (w.ravel()[idx].mean() + 1e-8)
        ours = CrossEntropyLoss(weight=weight.tolist(), top_k_percent_pixels=p)(logits, label)
        assert ours.item() == pytest.approx(ref, rel=1e-5)
    # avg_non_ignore=False: an ignored pixel among the kept ones counts with weight 1
    k = int(0.9 * loss.size)
    idx = np.argsort(-loss.ravel(), kind="stable")[:k]
    w_all = np.where(valid, w, 1.0)
    ref = loss.ravel()[idx].mean() / (w_all.ravel()[idx].mean() + 1e-8)
    ours = CrossEntropyLoss(weight=weight.tolist(), top_k_percent_pixels=0.9, avg_non_ignore=False)(logits, label)
    assert ours.item() == pytest.approx(ref, rel=1e-5)


def test_ce_class_weights_over_all_pixels_is_the_weighted_mean() -> None:
    # changed by issue 12 (PaddleSeg): with class weights and avg_non_ignore=False the loss is
    # sum(w*ce) / sum(w) over all pixels; an ignored pixel (PaddleSeg raises) counts as weight 1
    weight = np.array([0.5, 2.0, 1.0, 3.0])
    for frac in (0.0, 0.25):
        logits, label = make_batch(seed=21, ignore_frac=frac)
        lab = label.numpy()
        valid = lab != IGN
        w = np.where(valid, weight[np.where(valid, lab, 0)], 1.0)
        loss = np_pixel_ce(logits.numpy(), lab) * w * valid
        ours = CrossEntropyLoss(weight=weight.tolist(), avg_non_ignore=False)(logits, label)
        assert ours.item() == pytest.approx(loss.sum() / w.sum(), rel=1e-5)
    unweighted = CrossEntropyLoss(weight=[1.0] * 4, avg_non_ignore=False)(logits, label)
    assert unweighted.item() == pytest.approx(CrossEntropyLoss(avg_non_ignore=False)(logits, label).item(), rel=1e-6)


def test_ce_resizes_logits_to_label() -> None:
    logits, label = make_batch(h=8, w=8, seed=3)
    small = torch.randn(2, 4, 4, 4)
    up = F.interpolate(small, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        CrossEntropyLoss()(small, label), F.cross_entropy(up, label, ignore_index=IGN)
    )


# ----------------------------------------------------------------------------- OHEM


def np_ohem(logits: np.ndarray, label: np.ndarray, thresh: float, min_kept: int) -> tuple[float, str]:
    """Straight re-computation of spec §7 steps 1-4; also returns which branch ran."""
    valid = label != IGN
    lab = np.where(valid, label, 0)
    prob = np.take_along_axis(np_softmax(logits.astype(np.float64)), lab[:, None], axis=1)[:, 0]
    prob = np.where(valid, prob, 2.0)  # ignored pixels get a value > 1
    n_valid = int(valid.sum())
    if n_valid > 0 and min_kept < n_valid:
        t = np.sort(prob.ravel())[min_kept - 1]
        threshold = t if t > thresh else thresh
        kept = valid & (prob < threshold)
        branch = "kth" if t > thresh else "thresh"
    else:
        kept = valid
        branch = "all"
    ce = np_pixel_ce(logits, label)
    return float((ce * kept).mean() / (kept.mean() + 1e-5)), branch


@pytest.mark.parametrize(
    ("min_kept", "expected_branch"), [(10, "thresh"), (95, "kth"), (103, "kth"), (104, "all"), (10_000, "all")]
)
def test_ohem_threshold_rule(min_kept: int, expected_branch: str) -> None:
    logits, label = make_batch(n=2, c=3, h=8, w=8, seed=4)
    ref, branch = np_ohem(logits.numpy(), label.numpy(), 0.7, min_kept)
    assert branch == expected_branch
    ours = OhemCrossEntropyLoss(thresh=0.7, min_kept=min_kept)(logits, label)
    assert ours.item() == pytest.approx(ref, rel=1e-5)


def test_ohem_min_kept_zero_thresholds() -> None:
    # deliberate difference: PaddleSeg's min_kept 0 skips the mining (plain CE); ours keeps p < thresh
    logits, label = make_batch(n=2, c=3, h=8, w=8, seed=4)
    lab = label.numpy()
    valid = lab != IGN
    prob = np.take_along_axis(np_softmax(logits.numpy().astype(np.float64)), np.where(valid, lab, 0)[:, None], 1)[:, 0]
    kept = valid & (prob < 0.7)
    assert 0 < kept.sum() < valid.sum()
    ce = np_pixel_ce(logits.numpy(), lab)
    ref = (ce * kept).mean() / (kept.mean() + 1e-5)
    assert OhemCrossEntropyLoss(thresh=0.7, min_kept=0)(logits, label).item() == pytest.approx(ref, rel=1e-5)


def test_ohem_all_kept_equals_ce() -> None:
    logits, label = make_batch(seed=5)
    ours = OhemCrossEntropyLoss(min_kept=10_000)(logits, label)
    # only the epsilon differs (1e-5 instead of 1e-8)
    assert ours.item() == pytest.approx(CrossEntropyLoss()(logits, label).item(), rel=1e-4)


# ----------------------------------------------------------------------------- Lovász


def slow_lovasz_softmax(logits: np.ndarray, label: np.ndarray, classes: str | list[int]) -> float:
    probs = np_softmax(logits.astype(np.float64)).transpose(0, 2, 3, 1).reshape(-1, logits.shape[1])
    lab = label.reshape(-1)
    probs, lab = probs[lab != IGN], lab[lab != IGN]
    per_class = []
    for c in (classes if isinstance(classes, list) else range(logits.shape[1])):
        fg = (lab == c).astype(np.float64)
        if classes == "present" and fg.sum() == 0:
            continue
        err = np.abs(fg - probs[:, c])
        order = np.argsort(-err, kind="stable")
        g = fg.sum()
        loss, prev_j, cum_fg, cum_bg = 0.0, 0.0, 0.0, 0.0
        for k in order:
            cum_fg += fg[k]
            cum_bg += 1.0 - fg[k]
            jac = 1.0 - (g - cum_fg) / (g + cum_bg)
            loss += err[k] * (jac - prev_j)
            prev_j = jac
        per_class.append(loss)
    return float(np.mean(per_class))


@pytest.mark.parametrize("classes", ["present", "all", [1, 4], [4], [3, 0, 3]])
def test_lovasz_softmax_matches_loop_reference(classes: str | list[int]) -> None:
    logits, label = make_batch(n=2, c=5, h=5, w=6, seed=6)
    label[label == 4] = 0  # class 4 absent from the ground truth
    ours = LovaszSoftmaxLoss(classes=classes)(logits, label)
    ref = slow_lovasz_softmax(logits.numpy(), label.numpy(), classes)
    assert ours.item() == pytest.approx(ref, rel=1e-5)


def test_lovasz_softmax_perfect_prediction_is_zero() -> None:
    _, label = make_batch(seed=7)
    logits = F.one_hot(label.clamp(max=3), 4).permute(0, 3, 1, 2).float() * 30.0
    assert LovaszSoftmaxLoss()(logits, label).item() == pytest.approx(0.0, abs=1e-6)


def slow_lovasz_hinge(x: np.ndarray, y: np.ndarray) -> float:
    valid = y != IGN
    x, y = x[valid].astype(np.float64), y[valid].astype(np.float64)
    err = 1.0 - x * (2.0 * y - 1.0)
    order = np.argsort(-err, kind="stable")
    g = y.sum()
    loss, prev_j, cum_fg, cum_bg = 0.0, 0.0, 0.0, 0.0
    for k in order:
        cum_fg += y[k]
        cum_bg += 1.0 - y[k]
        jac = 1.0 - (g - cum_fg) / (g + cum_bg)
        loss += max(err[k], 0.0) * (jac - prev_j)
        prev_j = jac
    return loss


def test_lovasz_hinge_one_and_two_channels() -> None:
    # 2 channels: the intended logit x1 - x0 (PaddleSeg's slip log(p + eps/(1-p+eps)) deliberately not copied)
    logits, label = make_batch(c=2, seed=8)
    unary = logits[:, 1:2] - logits[:, 0:1]
    ref = slow_lovasz_hinge(unary[:, 0].numpy(), label.numpy())
    assert LovaszHingeLoss()(unary, label).item() == pytest.approx(ref, rel=1e-5)
    assert LovaszHingeLoss()(logits, label).item() == pytest.approx(ref, rel=1e-5)


# ----------------------------------------------------------------------------- Dice, BCE


def np_dice(logits: np.ndarray, label: np.ndarray, smooth: float, weight=None) -> float:
    """PaddleSeg's DiceLoss in numpy: Dice per image and class, batch mean, class mean."""
    c = logits.shape[1]
    valid = (label != IGN)[:, None]
    p = np_softmax(logits.astype(np.float64)) * valid
    g = np.eye(c)[np.where(valid[:, 0], label, 0)].transpose(0, 3, 1, 2) * valid
    inter = (p * g).sum(axis=(2, 3))  # [N, C]
    den = (p + g).sum(axis=(2, 3))
    per_class = (1.0 - (2 * inter + smooth) / (den + smooth + 1e-8)).mean(0)
    if weight is not None:
        per_class = per_class * np.asarray(weight)
    return float(per_class.mean())


def test_dice_matches_numpy() -> None:
    # changed by issue 12: Dice per image, then the batch mean (PaddleSeg), not pooled over the batch
    logits, label = make_batch(n=3, seed=9)
    for smooth in (1.0, 0.0, 0.5):
        ours = DiceLoss(smooth=smooth)(logits, label)
        assert ours.item() == pytest.approx(np_dice(logits.numpy(), label.numpy(), smooth), rel=1e-5)
    w = [0.5, 2.0, 1.0, 3.0]
    ours = DiceLoss(weight=w)(logits, label)
    assert ours.item() == pytest.approx(np_dice(logits.numpy(), label.numpy(), 1.0, w), rel=1e-5)
    # one image: per-image and pooled agree; a batch: they differ
    one = DiceLoss()(logits[:1], label[:1])
    assert one.item() == pytest.approx(np_dice(logits[:1].numpy(), label[:1].numpy(), 1.0), rel=1e-5)


def test_dice_does_not_modify_the_label() -> None:
    # PaddleSeg's DiceLoss sets the ignored pixels of the caller's label to 0 (deliberately not copied)
    logits, label = make_batch(seed=19, ignore_frac=0.3)
    before = label.clone()
    mixed = MixedLoss([DiceLoss(), CrossEntropyLoss()], [1.0, 1.0])
    terms = mixed.terms(logits, label)
    assert torch.equal(label, before) and bool((label == IGN).any())
    torch.testing.assert_close(terms[1], CrossEntropyLoss()(logits, before))


def test_bce_one_channel_and_two_channels() -> None:
    logits, label = make_batch(c=2, seed=10)
    valid = label != IGN
    x1 = logits[:, :1]
    ref1 = F.binary_cross_entropy_with_logits(x1[:, 0][valid], label[valid].float())
    torch.testing.assert_close(BCELoss()(x1, label), ref1)

    ref_pw = F.binary_cross_entropy_with_logits(
        x1[:, 0][valid], label[valid].float(), pos_weight=torch.tensor(3.0)
    )
    torch.testing.assert_close(BCELoss(pos_weight=3.0)(x1, label), ref_pw)

    onehot = F.one_hot(label.clamp(max=1), 2).permute(0, 3, 1, 2).float()
    elem = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    ref2 = elem.permute(0, 2, 3, 1)[valid].mean()
    torch.testing.assert_close(BCELoss()(logits, label), ref2)


def test_bce_dynamic_weights() -> None:
    # PaddleSeg's weight: dynamic / pos_weight: dynamic (per-batch balancing; ignored pixels count as 0s)
    for c in (1, 3):
        logits, label = make_batch(c=c, seed=22)
        if c == 1:
            label[(label != IGN) & (label > 1)] = 0
        lab = label.numpy()
        valid = (lab != IGN)[:, None]
        safe = np.where(lab != IGN, lab, 0)
        y = safe[:, None].astype(np.float64) if c == 1 else np.eye(c)[safe].transpose(0, 3, 1, 2)
        pos, neg = (y == 1).sum(), (y == 0).sum()
        x = logits.numpy().astype(np.float64)
        nll_pos, nll_neg = np.logaddexp(0, -x), np.logaddexp(0, x)
        wt = 2 * neg / (pos + neg) * y + 2 * pos / (pos + neg) * (1 - y)
        ref = (wt * (y * nll_pos + (1 - y) * nll_neg) * valid).mean() / valid.mean()
        assert BCELoss(weight="dynamic")(logits, label).item() == pytest.approx(ref, rel=1e-5)
        pw = 2 * neg / (pos + neg)
        ref = ((pw * y * nll_pos + (1 - y) * nll_neg) * valid).mean() / valid.mean()
        assert BCELoss(pos_weight="dynamic")(logits, label).item() == pytest.approx(ref, rel=1e-5)


def test_bce_pos_weight_follows_the_formula_not_paddles_kernel() -> None:
    # deliberate difference: paddle 2.6's kernel gives 9.0004 here (pos_weight misses max(-x, 0))
    x = torch.tensor([[[[-9.0, -2.0, 0.0, 2.0]]]])
    label = torch.ones(1, 1, 4, dtype=torch.long)
    ours = BCELoss(pos_weight=3.0)(x, label)
    assert ours.item() == pytest.approx(float(3.0 * np.logaddexp(0, 9.0) + 3.0 * np.logaddexp(0, 2.0)
                                              + 3.0 * np.log(2.0) + 3.0 * np.logaddexp(0, -2.0)) / 4, rel=1e-6)


def test_paddleseg_config_keys() -> None:
    # accepted: BCE edge_label false, weight/pos_weight dynamic; Lovász class list; SCL use_argmax true
    assert BCELoss(edge_label=False).edge_label is False
    assert LovaszSoftmaxLoss(classes=[1, 3]).classes == [1, 3]
    from ppseg.losses import SemanticConnectivityLoss
    SemanticConnectivityLoss(use_argmax=True)
    # rejected, each saying what to write instead
    with pytest.raises(ConfigError, match="edge map.*remove edge_label"):
        BCELoss(edge_label=True)
    with pytest.raises(ConfigError, match="'dynamic'.*pos_weight"):
        BCELoss(weight=[1.0, 2.0])
    with pytest.raises(ConfigError, match="class map.*use_argmax: true"):
        SemanticConnectivityLoss(use_argmax=False)
    with pytest.raises(ConfigError, match="list of class ids"):
        LovaszSoftmaxLoss(classes=[])
    with pytest.raises(ConfigError, match=r"classes \[1, 7\]"):
        LovaszSoftmaxLoss(classes=[1, 7])(*make_batch(c=4))


def test_paddleseg_config_keys_through_the_config_builder(tmp_path) -> None:
    from ppseg.config import load_config
    from ppseg.engine import build

    def losses_of(text: str):
        path = tmp_path / "c.yml"
        path.write_text(text)
        return build.build_losses(load_config(path))

    losses, _ = losses_of(
        "loss:\n  types:\n"
        "    - {type: MixedLoss, losses: [{type: CrossEntropyLoss}, {type: LovaszSoftmaxLoss, classes: [1, 3]}],"
        " coef: [0.8, 0.2]}\n"
        "    - {type: BCELoss, weight: dynamic, pos_weight: dynamic, edge_label: false}\n"
        "    - {type: SemanticConnectivityLoss, use_argmax: true}\n"
        "  coef: [1.0, 0.4, 0.1]\n")
    assert losses[0].losses[1].classes == [1, 3]
    assert losses[1].dynamic_weight and losses[1].dynamic_pos_weight
    with pytest.raises(ConfigError, match="loss.types.0.*remove edge_label"):
        losses_of("loss: {types: [{type: BCELoss, edge_label: true}], coef: [1.0]}\n")
    with pytest.raises(ConfigError, match="use_argmax"):
        losses_of("loss: {types: [{type: SemanticConnectivityLoss, use_argmax: false}], coef: [1.0]}\n")


# ----------------------------------------------------------------------------- Mixed, multi-output


def test_mixed_loss_sum_and_terms() -> None:
    logits, label = make_batch(seed=11)
    ce, lov = CrossEntropyLoss(), LovaszSoftmaxLoss()
    mixed = MixedLoss([ce, lov], [0.8, 0.2])
    total = mixed(logits, label)
    expected = 0.8 * ce(logits, label) + 0.2 * lov(logits, label)
    torch.testing.assert_close(total, expected)
    assert list(mixed.last_terms) == ["CrossEntropyLoss", "LovaszSoftmaxLoss"]
    torch.testing.assert_close(sum(mixed.last_terms.values()), expected)
    assert len(mixed.terms(logits, label)) == 2
    assert MixedLoss([ce, ce], [1.0, 1.0]).term_names == ["CrossEntropyLoss_0", "CrossEntropyLoss_1"]
    with pytest.raises(ConfigError, match="coef"):
        MixedLoss([ce, lov], [1.0])


def test_compute_losses_replicates_single_type() -> None:
    outs = [make_batch(seed=s)[0] for s in (12, 13, 14)]
    _, label = make_batch(seed=12)
    ce = CrossEntropyLoss()
    total, terms = compute_losses(outs, label, [ce], [1.0, 0.4, 0.2])
    expected = sum(c * ce(o, label) for c, o in zip([1.0, 0.4, 0.2], outs))
    torch.testing.assert_close(total, expected)
    assert list(terms) == ["out0.CrossEntropyLoss", "out1.CrossEntropyLoss", "out2.CrossEntropyLoss"]
    assert terms["out1.CrossEntropyLoss"] == pytest.approx(0.4 * ce(outs[1], label).item(), rel=1e-6)
    # module form gives the same
    total2, _ = SegLoss([ce], [1.0, 0.4, 0.2])(outs, label)
    torch.testing.assert_close(total2, expected)


def test_compute_losses_mixed_terms_and_errors() -> None:
    logits, label = make_batch(seed=15)
    mixed = MixedLoss([CrossEntropyLoss(), DiceLoss()], [1.0, 0.5])
    total, terms = compute_losses([logits], label, [mixed], [2.0])
    assert set(terms) == {"out0.CrossEntropyLoss", "out0.DiceLoss"}
    assert total.item() == pytest.approx(sum(terms.values()), rel=1e-6)
    assert terms["out0.DiceLoss"] == pytest.approx(2.0 * 0.5 * DiceLoss()(logits, label).item(), rel=1e-6)

    with pytest.raises(ConfigError, match="3 outputs.*2 loss entries"):
        compute_losses([logits] * 3, label, [CrossEntropyLoss(), DiceLoss()], [1.0, 1.0])
    # changed by issue 12: fewer outputs than loss entries raises too (PaddleSeg's check_logits_losses)
    with pytest.raises(ConfigError, match="1 outputs.*2 loss entries"):
        compute_losses([logits], label, [CrossEntropyLoss(), DiceLoss()], [1.0, 1.0])
    with pytest.raises(ConfigError, match="1 outputs.*3 loss entries"):
        compute_losses(logits, label, [CrossEntropyLoss()], [1.0, 0.4, 0.4])
    with pytest.raises(ConfigError, match="2 losses but 3 coef values"):
        compute_losses([logits], label, [CrossEntropyLoss(), DiceLoss()], [1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------- common contract

ALL_LOSSES = {
    "ce": lambda: CrossEntropyLoss(weight=[1.0, 2.0]),
    "ce_topk": lambda: CrossEntropyLoss(top_k_percent_pixels=0.5),
    "ohem": lambda: OhemCrossEntropyLoss(min_kept=5),
    "lovasz": lambda: LovaszSoftmaxLoss(),
    "hinge": lambda: LovaszHingeLoss(),
    "dice": lambda: DiceLoss(),
    "bce": lambda: BCELoss(pos_weight=[1.0, 2.0]),
    "mixed": lambda: MixedLoss([CrossEntropyLoss(), LovaszSoftmaxLoss()], [1.0, 0.5]),
}


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_gradient_reaches_logits(name: str) -> None:
    logits, label = make_batch(c=2, h=6, w=6, seed=16)
    logits = logits[:, :, :3, :3].clone().requires_grad_(True)  # resized to 6x6 inside
    loss = ALL_LOSSES[name]()(logits, label)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_all_ignored_gives_connected_zero(name: str) -> None:
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    label = torch.full((2, 4, 4), IGN, dtype=torch.long)
    loss = ALL_LOSSES[name]()(logits, label)
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_bf16_autocast_computes_in_float32(name: str) -> None:
    logits, label = make_batch(c=2, seed=17)
    logits = logits.bfloat16()
    loss_fn = ALL_LOSSES[name]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(logits, label)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(loss_fn(logits.float(), label).item(), rel=1e-5)


def test_losses_table_and_validation() -> None:
    assert set(LOSSES) == {
        "CrossEntropyLoss", "OhemCrossEntropyLoss", "LovaszSoftmaxLoss", "LovaszHingeLoss",
        "DiceLoss", "BCELoss", "MixedLoss", "SemanticConnectivityLoss", "NormalizedFocalLoss", "BoundaryBCELoss",
    }
    assert all(cls.__name__ == name for name, cls in LOSSES.items())
    with pytest.raises(ConfigError, match="top_k_percent_pixels"):
        CrossEntropyLoss(top_k_percent_pixels=0.0)
    with pytest.raises(ConfigError, match="weight"):
        CrossEntropyLoss(weight=[1.0, -1.0])
    with pytest.raises(ConfigError, match="classes.*present"):
        LovaszSoftmaxLoss(classes="some")
    with pytest.raises(ConfigError, match="min_kept"):
        OhemCrossEntropyLoss(min_kept=-1)
    with pytest.raises(ConfigError, match="thresh"):
        OhemCrossEntropyLoss(thresh=1.5)
    with pytest.raises(ConfigError, match="smooth"):
        DiceLoss(smooth=-1.0)
    with pytest.raises(ConfigError, match="pos_weight"):
        BCELoss(pos_weight=0.0)
    with pytest.raises(ValueError, match="class weights"):
        CrossEntropyLoss(weight=[1.0, 2.0])(*make_batch(c=3))


@pytest.mark.parametrize("sharpness", [0.1, 1.0, 8.0])
def test_lovasz_softmax_gradient_equals_differentiating_through_the_sort(sharpness):
    """The pruned, sort-free-backward implementation has the reference's value AND gradient."""
    from ppseg.losses import LovaszSoftmaxLoss
    from ppseg.losses._common import lovasz_grad

    gen = torch.Generator().manual_seed(3)
    label = torch.randint(0, 5, (2, 9, 11), generator=gen)
    label[0, 0, :4] = 255
    logits = (torch.randn(2, 6, 9, 11, generator=gen) * sharpness).requires_grad_(True)
    ours = LovaszSoftmaxLoss()(logits, label)
    (g_ours,) = torch.autograd.grad(ours, logits)

    logits2 = logits.detach().clone().requires_grad_(True)
    probs = logits2.softmax(1).permute(0, 2, 3, 1).reshape(-1, 6)
    flat = label.reshape(-1)
    probs, flat = probs[flat != 255], flat[flat != 255]
    terms = []
    for c in torch.unique(flat).tolist():
        fg = (flat == c).float()
        errors, perm = torch.sort((fg - probs[:, c]).abs(), descending=True)
        terms.append(torch.dot(errors, lovasz_grad(fg[perm])))
    ref = torch.stack(terms).mean()
    (g_ref,) = torch.autograd.grad(ref, logits2)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-7)
