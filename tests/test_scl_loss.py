"""SemanticConnectivityLoss (spec §4.6): the reference value (hand-computed cases and an
independent loop transcription of PaddleSeg's algorithm), the differentiable mode's
gradient, connectivity preferences, ignore_index and argument validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ppseg.errors import ConfigError
from ppseg.losses import LOSSES, CrossEntropyLoss, MixedLoss, SemanticConnectivityLoss, compute_losses

IGN = 255


def logits_from(pred: np.ndarray, num_classes: int, scale: float = 50.0) -> torch.Tensor:
    """Confident logits ``[N, C, H, W]`` whose argmax is ``pred`` (``[N, H, W]``)."""
    one_hot = np.eye(num_classes, dtype=np.float32)[pred]  # [N, H, W, C]
    return torch.from_numpy(one_hot).permute(0, 3, 1, 2).contiguous() * scale


def scl(logits: torch.Tensor, label: np.ndarray, **kwargs) -> torch.Tensor:
    return SemanticConnectivityLoss(**kwargs)(logits, torch.from_numpy(label).long())


def loop_reference(pred: np.ndarray, label: np.ndarray, ignore_index: int = IGN, max_conn: int = 10) -> float:
    """PaddleSeg's SCL value, transcribed as plain loops (no shared code with ppseg)."""
    image_losses = []
    for p_img, l_img in zip(pred, label):
        total, count = 0.0, 0
        for c in np.unique(l_img):
            if c == ignore_index:
                continue
            count += 1
            n_p_all, p_cc = cv2.connectedComponents((p_img == c).astype(np.uint8))
            n_g, g_cc = cv2.connectedComponents((l_img == c).astype(np.uint8))
            n_p = min(n_p_all, max_conn) if n_p_all > 2 * n_g else n_p_all
            if n_p - 1 > 0 and n_g - 1 > 0:
                ious = np.zeros((n_g - 1, n_p - 1))
                pair_sum = 0.0
                for i in range(1, n_g):
                    g = (g_cc == i).astype(np.float64)
                    vals = []
                    for j in range(1, n_p):
                        pj = (p_cc == j) * float(c)  # the reference multiplies by the argmax value
                        inter = (pj * g).sum()
                        iou = 0.0 if inter == 0 else inter / (pj.sum() + g.sum() - inter)
                        ious[i - 1, j - 1] = iou
                        if iou != 0:
                            vals.append(iou)
                    if vals:
                        pair_sum += sum(vals) / len(vals)
                lone = int((ious.sum(0) == 0).sum())
                total += 1 - pair_sum / (n_g - 1 + lone)
            elif n_p - 1 == 0 and n_g - 1 == 0:
                pass
            else:
                missed = ((l_img == c) & (p_img != c)).sum()
                total += missed / l_img.size + 1
        image_losses.append(total / count if count else 0.0)
    return float(np.mean(image_losses))


def two_blob_case() -> tuple[np.ndarray, np.ndarray]:
    """6x6: GT class-1 blobs A (top-left) and B (bottom-right); prediction hits A, misses B,
    and adds a stray blob S (top-right)."""
    label = np.zeros((1, 6, 6), np.int64)
    label[0, :2, :2] = 1  # A
    label[0, 4:, 4:] = 1  # B
    pred = np.zeros((1, 6, 6), np.int64)
    pred[0, :2, :2] = 1  # A, exact
    pred[0, :2, 4:] = 1  # S, lone
    return pred, label


# ------------------------------------------------------------------ reference value


def test_reference_value_by_hand() -> None:
    pred, label = two_blob_case()
    # class 1: IoU(A, A) = 1, B unmatched, one lone component: 1 - 1 / (2 + 1) = 2/3.
    # class 0: IoUs use the argmax value 0, so all vanish and the one predicted component is
    #          lone: 1 - 0 / (1 + 1) = 1.          image: (1 + 2/3) / 2 = 5/6.
    value = scl(logits_from(pred, 2), label, mode="reference")
    assert value.item() == pytest.approx(5 / 6, abs=1e-6)
    assert loop_reference(pred, label) == pytest.approx(5 / 6)


def test_reference_scales_the_iou_by_the_class_id() -> None:
    label = np.zeros((1, 8, 8), np.int64)
    label[0, 2:4, 2:4] = 2  # G: 4 pixels of class 2
    pred = np.zeros((1, 8, 8), np.int64)
    pred[0, 2:4, 2:5] = 2  # P: 6 pixels containing G
    # reference "IoU" = 2*4 / (2*6 + 4 - 2*4) = 1 -> loss_2 = 0; class 0 -> 1. Mean 0.5.
    assert scl(logits_from(pred, 3), label, mode="reference").item() == pytest.approx(0.5, abs=1e-6)
    # the differentiable mode uses the true IoU 4/6 (loss_2 = 1/3) and the true class-0 IoU:
    # predicted background (58 px) inside the labelled background (60 px) -> 58/60
    expected = ((1 - 58 / 60) + (1 - 4 / 6)) / 2
    assert scl(logits_from(pred, 3), label).item() == pytest.approx(expected, abs=1e-5)


def test_reference_missed_class_and_empty_image() -> None:
    label = np.zeros((2, 5, 5), np.int64)
    label[0, 1:3, 1:3] = 1  # 4 pixels of class 1, never predicted
    label[1] = IGN  # nothing to score: image loss 0
    pred = np.zeros((2, 5, 5), np.int64)
    # image 0: class 1 -> 1 + 4/25; class 0 -> 1 (argmax value 0). Batch: mean with image 1's 0.
    expected = ((1 + 4 / 25 + 1) / 2 + 0.0) / 2
    assert scl(logits_from(pred, 2), label, mode="reference").item() == pytest.approx(expected, abs=1e-6)
    assert loop_reference(pred, label) == pytest.approx(expected)


def test_no_overlapping_component_at_all() -> None:
    label = np.zeros((1, 6, 6), np.int64)
    label[0, :2, :2] = 1
    pred = np.zeros((1, 6, 6), np.int64)
    pred[0, 4:, 4:] = 1  # one lone predicted component, the GT blob unmatched
    # reference: class 1 -> 1 - 0 / (1 + 1) = 1; class 0 -> 1
    assert scl(logits_from(pred, 2), label, mode="reference").item() == pytest.approx(1.0, abs=1e-6)
    logits = logits_from(pred, 2, scale=3.0).requires_grad_(True)
    scl(logits, label).backward()
    grad_fg = logits.grad[0, 1] - logits.grad[0, 0]
    assert grad_fg[:2, :2].lt(0).all()  # the missed GT blob is pulled up (through class 0's union)
    # with no match at all, class 1's loss is 1 whatever the lone blob's weight: as in the
    # reference formula, the lone blob gets no gradient until something matches
    assert grad_fg[4:, 4:].eq(0).all()


@pytest.mark.parametrize("seed", range(6))
def test_reference_matches_loop_transcription_on_random_blobs(seed: int) -> None:
    """Random blobby maps (3-4 classes, ignore pixels, often > 10 fragments: the truncation rule)."""
    rng = np.random.default_rng(seed)
    num_classes = 3 + seed % 2
    noise = rng.random((2, num_classes, 6, 7)).astype(np.float32)
    pred = np.stack([cv2.resize(n.transpose(1, 2, 0), (21, 18), interpolation=cv2.INTER_LINEAR).argmax(-1)
                     for n in noise])  # blobs
    pred[:, ::4, ::5] = (pred[:, ::4, ::5] + 1) % num_classes  # scattered single-pixel fragments
    noise = rng.random((2, num_classes, 3, 4)).astype(np.float32)
    label = np.stack([cv2.resize(n.transpose(1, 2, 0), (21, 18), interpolation=cv2.INTER_LINEAR).argmax(-1)
                      for n in noise]).astype(np.int64)
    label[:, :3, :5] = IGN
    got = scl(logits_from(pred, num_classes), label, mode="reference", max_pred_num_conn=10).item()
    assert got == pytest.approx(loop_reference(pred, label), abs=1e-6)
    got3 = scl(logits_from(pred, num_classes), label, mode="reference", max_pred_num_conn=3).item()
    assert got3 == pytest.approx(loop_reference(pred, label, max_conn=3), abs=1e-6)


# ------------------------------------------------------------------ gradients


def test_reference_mode_has_zero_gradient_like_the_reference() -> None:
    pred, label = two_blob_case()
    logits = (logits_from(pred, 2, scale=2.0) + torch.randn(1, 2, 6, 6) * 0.1).requires_grad_(True)
    loss = scl(logits, label, mode="reference")
    assert loss.requires_grad and loss.item() > 0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_differentiable_mode_gradient_reaches_the_logits_and_trains() -> None:
    pred, label = two_blob_case()
    logits = (logits_from(pred, 2, scale=1.0) + torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0))
              * 0.1).requires_grad_(True)
    loss_fn = SemanticConnectivityLoss()
    target = torch.from_numpy(label)
    first = loss_fn(logits, target)
    first.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    grad_fg = (logits.grad[0, 1] - logits.grad[0, 0]).numpy()  # d loss / d (class-1 margin)
    assert (grad_fg[:2, 4:] > 0).all()  # the lone blob S is pushed towards background
    assert (grad_fg[:2, :2] < 0).all()  # the matched blob A is pulled up
    assert (grad_fg[4:, 4:] < 0).all()  # missed blob B: its pixels enlarge the background's union
    # plain gradient descent on the logits with SCL alone removes the lone blob S, then
    # recovers the missed blob B: the argmax becomes the label
    for _ in range(60):
        logits.grad = None
        loss_fn(logits, target).backward()
        with torch.no_grad():
            logits -= 5.0 * logits.grad
    assert torch.equal(logits.argmax(1), target)
    assert loss_fn(logits.detach(), target).item() < first.item() - 0.4


# ------------------------------------------------------------------ connectivity preference, ignore


@pytest.mark.parametrize("mode", ["reference", "differentiable"])
def test_fragmented_prediction_scores_worse_than_connected(mode: str) -> None:
    label = np.zeros((1, 12, 12), np.int64)
    label[0, 4:8, 2:10] = 1  # one 4x8 object
    connected = label.copy()
    connected[0, 4:8, 9] = 0  # 4 pixels wrong at the object's end: still one component
    fragmented = label.copy()
    fragmented[0, 4:8, 5] = 0  # 4 pixels wrong across the middle: two components
    assert (connected != label).sum() == (fragmented != label).sum() == 4
    loss_connected = scl(logits_from(connected, 2), label, mode=mode).item()
    loss_fragmented = scl(logits_from(fragmented, 2), label, mode=mode).item()
    assert loss_fragmented > loss_connected + 0.1


def test_ignore_index() -> None:
    pred, label = two_blob_case()
    clean = pred.copy()
    clean[0, :2, 4:] = 0  # no stray blob
    ignored = label.copy()
    ignored[0, :2, 4:] = IGN  # the stray blob lies in an ignored region
    # differentiable: ignored pixels join no predicted component, so the blob costs nothing
    assert scl(logits_from(pred, 2), ignored).item() == pytest.approx(
        scl(logits_from(clean, 2), ignored).item(), abs=1e-6)
    # reference: predicted components span the whole image, so the blob still counts
    assert scl(logits_from(pred, 2), ignored, mode="reference").item() == pytest.approx(
        loop_reference(pred, ignored), abs=1e-6)
    assert loop_reference(pred, ignored) > loop_reference(clean, ignored)
    # a non-default ignore value, and an all-ignored batch -> graph-connected zero
    relabelled = np.where(ignored == IGN, 7, ignored)
    assert scl(logits_from(pred, 2), relabelled, ignore_index=7).item() == pytest.approx(
        scl(logits_from(pred, 2), ignored).item(), abs=1e-6)
    for mode in ("reference", "differentiable"):
        logits = torch.randn(2, 2, 4, 4, requires_grad=True)
        loss = scl(logits, np.full((2, 4, 4), IGN), mode=mode)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.all(logits.grad == 0)


# ------------------------------------------------------------------ contract, config


def test_contract_resize_autocast_and_mixed_loss() -> None:
    pred, label = two_blob_case()
    small = logits_from(pred, 2, scale=3.0)[:, :, ::2, ::2].clone().requires_grad_(True)  # resized inside
    loss = scl(small, label)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert small.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert scl(small.detach().bfloat16(), label).dtype == torch.float32
    mixed = MixedLoss([CrossEntropyLoss(), SemanticConnectivityLoss(mode="reference")], [1.0, 0.05])
    total, terms = compute_losses([logits_from(pred, 2, scale=3.0)], torch.from_numpy(label), [mixed], [1.0])
    assert set(terms) == {"out0.CrossEntropyLoss", "out0.SemanticConnectivityLoss"}
    assert terms["out0.SemanticConnectivityLoss"] == pytest.approx(0.05 * 5 / 6, abs=1e-6)
    assert LOSSES["SemanticConnectivityLoss"] is SemanticConnectivityLoss


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "fast"}, "mode must be one of"),
        ({"max_pred_num_conn": 0}, "max_pred_num_conn must be an int >= 1"),
        ({"max_pred_num_conn": 2.5}, "max_pred_num_conn"),
        ({"connectivity": 6}, "connectivity must be 4 or 8"),
        ({"ignore_index": "none"}, "ignore_index"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SemanticConnectivityLoss(**kwargs)


def test_four_connectivity_splits_diagonal_blobs() -> None:
    label = np.zeros((1, 4, 4), np.int64)
    label[0, 0, 0] = label[0, 1, 1] = 1  # diagonal neighbours: one 8-connected component, two 4-connected
    pred = label.copy()
    pred[0, 0, 1] = 1  # bridges them for 4-connectivity too
    # 8: IoU(G, P) = 2/3 -> class-1 loss 1/3; 4: two GT components, each IoU 1/3 with the one
    # predicted component -> connectivity (1/3 + 1/3) / 2 -> loss 2/3. Class 0 costs 1 (argmax value 0).
    assert scl(logits_from(pred, 2), label, mode="reference").item() == pytest.approx((1 + 1 / 3) / 2, abs=1e-6)
    assert scl(logits_from(pred, 2), label, mode="reference", connectivity=4).item() == pytest.approx(
        (1 + 2 / 3) / 2, abs=1e-6)
