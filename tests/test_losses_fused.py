"""The fused CE + Lovász-Softmax path equals the plain losses (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ppseg.losses.fused as fused
from ppseg.losses import (
    CrossEntropyLoss,
    DiceLoss,
    LovaszSoftmaxLoss,
    MixedLoss,
    OhemCrossEntropyLoss,
    compute_losses,
)
from ppseg.losses.fused import fused_ce_lovasz, fusable_pair

IGN = 255


def make_case(n: int, c: int, low: tuple[int, int], out: tuple[int, int], confident: float = 0.0,
              noise: float = 1.0, ignore_frac: float = 0.15, seed: int = 0,
              ignore_index: int = IGN) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-resolution logits and full-resolution labels.

    ``confident > 0``: trained-like logits (the label's class boosted by ``confident``), with
    10% of the labels flipped, so that many background pixels become Lovász candidates.
    """
    g = torch.Generator().manual_seed(seed)
    h, w = low
    H, W = out
    lab_low = torch.randint(0, max(1, c - 1), (n, h, w), generator=g)  # class c-1 never present
    logits = torch.randn(n, c, h, w, generator=g) * noise
    if confident:
        logits = logits + F.one_hot(lab_low, c).permute(0, 3, 1, 2).float() * confident
    label = F.interpolate(lab_low[:, None].float(), size=(H, W), mode="nearest")[:, 0].long()
    flip = torch.rand(n, H, W, generator=g) < (0.1 if confident else 0.0)
    label[flip] = torch.randint(0, c - 1, (int(flip.sum()),), generator=g)
    label[torch.rand(n, H, W, generator=g) < ignore_frac] = ignore_index
    return logits, label


def plain(logits, label, ce: CrossEntropyLoss, lov: LovaszSoftmaxLoss):
    return ce(logits, label), lov(logits, label)


def has_background_candidates(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = IGN) -> bool:
    """Whether some background pixel has a non-zero Lovász weight (the slow candidate path)."""
    up = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    p = up.softmax(1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    lab = label.reshape(-1)
    p, lab = p[lab != ignore_index], lab[lab != ignore_index]
    for c in torch.unique(lab).tolist():
        fg = lab == c
        if (p[~fg, c] >= (1 - p[fg, c]).min()).any():
            return True
    return False


def check_equal(logits, label, ce=None, lov=None, coefs=(0.8, 0.2)):
    ce = ce or CrossEntropyLoss()
    lov = lov or LovaszSoftmaxLoss()
    x_ref = logits.clone().requires_grad_(True)
    ce_ref, lov_ref = plain(x_ref, label, ce, lov)
    (g_ref,) = torch.autograd.grad(coefs[0] * ce_ref + coefs[1] * lov_ref, x_ref)

    x = logits.clone().requires_grad_(True)
    ce_f, lov_f = fused_ce_lovasz(x, label, ce.ignore_index, ce.class_weight, ce.avg_non_ignore)
    (g,) = torch.autograd.grad(coefs[0] * ce_f + coefs[1] * lov_f, x)

    assert ce_f.dtype == lov_f.dtype == torch.float32
    torch.testing.assert_close(ce_f, ce_ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(lov_f, lov_ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5 * float(g_ref.abs().max()))
    return g


CASES = {
    # name: (n, c, low, out, confident, noise)
    "tiny-like x16 few candidates": (2, 150, (5, 6), (80, 96), 0.0, 0.01),
    "odd sizes": (3, 7, (5, 7), (37, 45), 0.0, 2.0),
    "trained-like many candidates": (2, 9, (6, 5), (33, 29), 8.0, 2.0),
    "trained-like many classes": (2, 40, (8, 8), (64, 64), 10.0, 3.0),
    "no resize": (2, 6, (11, 13), (11, 13), 4.0, 1.5),
    "height only": (2, 5, (4, 17), (19, 17), 0.0, 1.0),
    "width only": (2, 5, (13, 4), (13, 21), 0.0, 1.0),
    "downsample": (2, 5, (20, 22), (9, 10), 3.0, 1.0),
    "batch 1": (1, 4, (3, 3), (24, 24), 0.0, 1.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_equals_plain(name: str) -> None:
    n, c, low, out, confident, noise = CASES[name]
    logits, label = make_case(n, c, low, out, confident, noise, seed=len(name))
    if "many" in name:
        assert has_background_candidates(logits, label), "the case must exercise the background-candidate path"
    if "few" in name:
        assert not has_background_candidates(logits, label)
    check_equal(logits, label)


@pytest.mark.parametrize("avg_non_ignore", [True, False])
@pytest.mark.parametrize("confident", [0.0, 6.0])
def test_class_weights_and_averaging(avg_non_ignore: bool, confident: float) -> None:
    logits, label = make_case(2, 6, (5, 6), (23, 31), confident, 1.5, seed=11)
    ce = CrossEntropyLoss(weight=[0.5, 2.0, 1.0, 3.0, 0.0, 1.5], avg_non_ignore=avg_non_ignore)
    check_equal(logits, label, ce=ce)


@pytest.mark.parametrize("ignore_frac", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("avg_non_ignore", [True, False])
def test_ce_denominators_like_paddleseg(avg_non_ignore: bool, weighted: bool, ignore_frac: float) -> None:
    """Issue 12: the plain CE divides by the mean coefficient (weights of the counted pixels; with
    avg_non_ignore=False ignored pixels count with weight 1) and the fused path does the same."""
    logits, label = make_case(2, 5, (4, 6), (13, 17), 2.0, 1.5, ignore_frac=ignore_frac, seed=13)
    weight = [0.5, 2.0, 1.0, 3.0, 0.25] if weighted else None
    ce = CrossEntropyLoss(weight=weight, avg_non_ignore=avg_non_ignore)
    check_equal(logits, label, ce=ce)
    # and the plain CE is the PaddleSeg formula (float64 numpy-free recomputation)
    up = F.interpolate(logits.double(), size=label.shape[-2:], mode="bilinear", align_corners=False)
    valid = label != IGN
    safe = torch.where(valid, label, 0)
    w = (torch.tensor(weight, dtype=torch.float64) if weighted else torch.ones(5, dtype=torch.float64))[safe]
    nll = F.cross_entropy(up, safe, reduction="none") * w * valid
    coef = w * valid if avg_non_ignore else torch.where(valid, w, 1.0)
    ref = nll.mean() / (coef.mean() + 1e-8)
    assert ce(logits, label).item() == pytest.approx(ref.item(), rel=1e-5)


@pytest.mark.parametrize("ignore_index", [-1, 0, 3])
def test_other_ignore_index(ignore_index: int) -> None:
    logits, label = make_case(2, 6, (4, 5), (17, 19), 3.0, 1.0, seed=12, ignore_index=ignore_index)
    check_equal(logits, label, CrossEntropyLoss(ignore_index=ignore_index),
                LovaszSoftmaxLoss(ignore_index=ignore_index))


def test_single_present_class_and_channel_label() -> None:
    logits, label = make_case(2, 5, (4, 4), (16, 16), 0.0, 1.0, seed=13)
    label[label != IGN] = 2
    check_equal(logits, label)
    # [N, 1, H, W] labels are accepted like the plain losses accept them
    check_equal(logits, label[:, None])


def test_saturated_probabilities() -> None:
    """Probabilities of exactly 0 and 1 (errors of exactly 0 and 1, tied).

    (Ties between errors with a non-zero gradient are a kink of the Lovász extension: the
    unfused loss's own sort picks an arbitrary subgradient there, so the logits are noisy
    enough that none occurs.)
    """
    logits, label = make_case(2, 4, (4, 4), (12, 12), 200.0, 1.0, seed=14)
    p = F.interpolate(logits, size=(12, 12), mode="bilinear", align_corners=False).softmax(1)
    assert (p == 1.0).any() and (p == 0.0).any()
    check_equal(logits, label)


@pytest.mark.parametrize("force", [False, True])
def test_far_apart_neighbours(monkeypatch, force: bool) -> None:
    """Huge logit jumps between low-resolution neighbours: the bands whose shifted values
    would lose precision are redone with the exact per-pixel maximum (``force``: all of them)."""
    if force:
        monkeypatch.setattr(fused, "_MIN_SUM", float("inf"))
    logits, label = make_case(2, 5, (4, 4), (24, 24), 150.0, 1.0, seed=20)
    up = F.interpolate(logits, size=(24, 24), mode="bilinear", align_corners=False)
    shifted = F.interpolate(logits - logits.amax(1, keepdim=True), size=(24, 24), mode="bilinear",
                            align_corners=False)
    assert (shifted.amax(1) < -40).any() and up.isfinite().all()
    check_equal(logits, label)


def test_deterministic_and_retain_graph() -> None:
    logits, label = make_case(2, 8, (5, 5), (30, 30), 6.0, 2.0, seed=15)
    x = logits.clone().requires_grad_(True)
    ce, lov = fused_ce_lovasz(x, label)
    total = 0.8 * ce + 0.2 * lov
    (g1,) = torch.autograd.grad(total, x, retain_graph=True)
    (g2,) = torch.autograd.grad(total, x)
    ce2, lov2 = fused_ce_lovasz(x, label)
    (g3,) = torch.autograd.grad(0.8 * ce2 + 0.2 * lov2, x)
    assert torch.equal(g1, g2) and torch.equal(g1, g3)
    assert torch.equal(ce, ce2) and torch.equal(lov, lov2)


def test_separate_term_gradients() -> None:
    """Each term's own gradient is right (they come out of one backward)."""
    logits, label = make_case(2, 6, (4, 5), (15, 18), 5.0, 1.0, seed=16)
    for coefs in ((1.0, 0.0), (0.0, 1.0), (0.3, -2.0)):
        check_equal(logits, label, coefs=coefs)


def test_bf16_and_channels_last_input() -> None:
    logits, label = make_case(2, 6, (6, 6), (24, 24), 2.0, 1.0, seed=17)
    ref_ce, ref_lov = fused_ce_lovasz(logits.bfloat16().float(), label)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ce, lov = fused_ce_lovasz(logits.bfloat16(), label)
    assert ce.dtype == torch.float32
    torch.testing.assert_close((ce, lov), (ref_ce, ref_lov))
    check_equal(logits.contiguous(memory_format=torch.channels_last), label)


# ----------------------------------------------------------------------------- MixedLoss


def test_mixed_loss_uses_the_fused_path(monkeypatch) -> None:
    logits, label = make_case(2, 6, (5, 5), (20, 20), 4.0, 1.0, seed=18)
    calls = []
    real = fused.fused_ce_lovasz

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    import ppseg.losses.mixed as mixed_mod

    monkeypatch.setattr(mixed_mod, "fused_ce_lovasz", spy)
    for order in ((0, 1), (1, 0)):
        losses = [CrossEntropyLoss(), LovaszSoftmaxLoss()]
        coef = [0.8, 0.2]
        mixed = MixedLoss([losses[i] for i in order], [coef[i] for i in order])
        x = logits.clone().requires_grad_(True)
        total, terms = compute_losses([x], label, [mixed], [1.5])
        (g,) = torch.autograd.grad(total, x)

        monkeypatch.setattr(fused, "ENABLED", False)
        x2 = logits.clone().requires_grad_(True)
        total2, terms2 = compute_losses([x2], label, [mixed], [1.5])
        (g2,) = torch.autograd.grad(total2, x2)
        monkeypatch.setattr(fused, "ENABLED", True)

        assert list(terms) == list(terms2) == ["out0." + type(m).__name__ for m in mixed.losses]
        for k in terms:
            assert terms[k] == pytest.approx(terms2[k], rel=1e-5)
        torch.testing.assert_close(total, total2, rtol=1e-5, atol=0)
        torch.testing.assert_close(g, g2, rtol=1e-5, atol=1e-5 * float(g2.abs().max()))
        out = mixed(logits, label)
        assert set(mixed.last_terms) == set(mixed.term_names)
        torch.testing.assert_close(out, total2 / 1.5, rtol=1e-5, atol=0)
    assert len(calls) == 4


def test_mixed_loss_with_a_third_loss() -> None:
    logits, label = make_case(2, 5, (4, 4), (16, 16), 2.0, 1.0, seed=19)
    subs = [CrossEntropyLoss(), DiceLoss(), LovaszSoftmaxLoss()]
    mixed = MixedLoss(subs, [0.5, 0.3, 0.2])
    assert fusable_pair(subs) == (0, 2) and not mixed.accepts_lowres_logits()
    x = logits.clone().requires_grad_(True)
    parts = mixed.terms(x, label)
    (g,) = torch.autograd.grad(sum(parts), x)
    x2 = logits.clone().requires_grad_(True)
    ref = [c * m(x2, label) for m, c in zip(subs, [0.5, 0.3, 0.2])]
    (g2,) = torch.autograd.grad(sum(ref), x2)
    torch.testing.assert_close(torch.stack(parts), torch.stack(ref), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g, g2, rtol=1e-5, atol=1e-5 * float(g2.abs().max()))


@pytest.mark.parametrize("subs", [
    lambda: [CrossEntropyLoss(top_k_percent_pixels=0.5), LovaszSoftmaxLoss()],
    lambda: [CrossEntropyLoss(), LovaszSoftmaxLoss(classes="all")],
    lambda: [CrossEntropyLoss(ignore_index=0), LovaszSoftmaxLoss()],
    lambda: [OhemCrossEntropyLoss(), LovaszSoftmaxLoss()],
    lambda: [CrossEntropyLoss(), CrossEntropyLoss(), LovaszSoftmaxLoss()],
])
def test_not_fused(subs) -> None:
    losses = subs()
    assert fusable_pair(losses) is None
    assert not MixedLoss(losses, [1.0] * len(losses)).accepts_lowres_logits()


def test_fallbacks_keep_the_plain_behaviour() -> None:
    mixed = MixedLoss([CrossEntropyLoss(), LovaszSoftmaxLoss()], [0.8, 0.2])
    assert mixed.accepts_lowres_logits()
    # every pixel ignored: the plain losses' connected zero
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = mixed(x, torch.full((2, 8, 8), IGN))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(x.grad == 0)
    ce, lov = fused_ce_lovasz(x, torch.full((2, 8, 8), IGN))
    assert ce.item() == lov.item() == 0.0 and ce.requires_grad
    # class-weight count mismatch: the plain loss's error
    bad = MixedLoss([CrossEntropyLoss(weight=[1.0, 2.0]), LovaszSoftmaxLoss()], [0.8, 0.2])
    with pytest.raises(ValueError, match="class weights"):
        bad(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))


# ----------------------------------------------------------------------------- trainer


def test_trainer_lowres_step_equals_plain_step(monkeypatch) -> None:
    """One training step of pp_mobileseg_tiny: low-res logits + fused loss == plain path."""
    from ppseg import create_model
    from ppseg.semantic.task import lowres_loss_applies, train_forward
    from ppseg.semantic.segmentor import Segmentor

    torch.manual_seed(0)
    model = create_model("pp_mobileseg_tiny", num_classes=6)
    seg = Segmentor(model).train()
    mixed = MixedLoss([CrossEntropyLoss(), LovaszSoftmaxLoss()], [0.8, 0.2])
    assert lowres_loss_applies(model, [mixed], "off", 1)
    assert not lowres_loss_applies(model, [mixed], "bf16", 1)
    assert not lowres_loss_applies(model, [mixed], "off", 2)
    assert not lowres_loss_applies(model, [mixed], "off", 1, torch.device("cuda"))
    assert not lowres_loss_applies(model, [CrossEntropyLoss()], "off", 1)
    assert not lowres_loss_applies(create_model("lraspp_mobilenetv3_large", num_classes=6), [mixed], "off", 1)

    images = torch.rand(2, 3, 64, 96) * 255
    labels = torch.randint(0, 6, (2, 64, 96))
    labels[:, :3] = IGN

    def step(lowres: bool) -> tuple[float, list[torch.Tensor]]:
        torch.manual_seed(1)  # dropout / drop path
        seg.zero_grad(set_to_none=True)
        outputs = train_forward(seg, seg, images, labels, lowres)
        assert outputs[0].shape[-2:] == ((4, 6) if lowres else (64, 96))
        loss, _ = compute_losses([o.float() for o in outputs], labels, [mixed], [1.0])
        loss.backward()
        return loss.item(), [p.grad.clone() for p in seg.parameters() if p.grad is not None]

    loss_fast, grads_fast = step(True)
    monkeypatch.setattr(fused, "ENABLED", False)
    loss_ref, grads_ref = step(False)
    assert loss_fast == pytest.approx(loss_ref, rel=1e-5)
    assert len(grads_fast) == len(grads_ref)
    flat_fast, flat_ref = torch.cat([g.flatten() for g in grads_fast]), torch.cat([g.flatten() for g in grads_ref])
    # float32 noise of the (exactly equivalent) computations, amplified by cancellation in the network
    assert float((flat_fast - flat_ref).norm() / flat_ref.norm()) < 1e-5
    scale = float(flat_ref.abs().max())
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale)
    # labels of another size than the image: the model's own (full-resolution) output
    small = labels[:, ::2, ::2]
    assert train_forward(seg, seg, images, small, True)[0].shape[-2:] == (64, 96)
