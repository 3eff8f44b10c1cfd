"""Tests of ppseg.metrics.SegMetrics against hand computations (spec §10.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ppseg.semantic.metrics import SegMetrics

IGN = 255

# 4 classes; class 3 appears neither in the label nor in the prediction.
LABEL = torch.tensor([[[0, 0, 1, 1], [2, 2, IGN, 1]]])
PRED = torch.tensor([[[0, 1, 1, 1], [0, 2, 2, 1]]])
# valid pixels -> cm[label, pred]: (0,0)=1 (0,1)=1 (1,1)=3 (2,0)=1 (2,2)=1
# inter = [1, 3, 1, 0], label_area = [2, 3, 2, 0], pred_area = [2, 4, 1, 0]


def hand_metrics() -> SegMetrics:
    m = SegMetrics(num_classes=4)
    m.update(PRED, LABEL)
    return m


def test_confusion_matrix_counts() -> None:
    cm = hand_metrics().confusion
    assert cm.dtype == torch.int64
    expected = torch.zeros(4, 4, dtype=torch.int64)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[2, 0], expected[2, 2] = 1, 1, 3, 1, 1
    assert torch.equal(cm, expected)


def test_hand_example_values() -> None:
    r = hand_metrics().compute()
    # union 0 for class 3 -> IoU 0, as PaddleSeg's mean_iou (changed by issue 12: it was 1)
    iou = [1 / 3, 3 / 4, 1 / 2, 0.0]
    np.testing.assert_allclose(r["class_iou"], iou)
    assert r["miou"] == pytest.approx(np.mean(iou))
    assert r["miou_present"] == pytest.approx(np.mean(iou[:3]))
    assert r["acc"] == pytest.approx(5 / 7)
    np.testing.assert_allclose(r["class_precision"], [1 / 2, 3 / 4, 1.0, 0.0])
    np.testing.assert_allclose(r["class_recall"], [1 / 2, 1.0, 1 / 2, 0.0])
    np.testing.assert_allclose(r["class_acc"], r["class_recall"])
    assert r["macc"] == pytest.approx(2 / 3)
    # p_o = 5/7, p_e = (2*2 + 4*3 + 1*2) / 49 = 18/49 -> kappa = 17/31
    assert r["kappa"] == pytest.approx(17 / 31)
    dice = [1 / 2, 6 / 7, 2 / 3, 0.0]
    np.testing.assert_allclose(r["class_dice"], dice)
    assert r["mdice"] == pytest.approx(np.mean(dice))


def test_ignored_pixels_excluded_even_with_out_of_range_pred() -> None:
    pred = PRED.clone()
    pred[0, 1, 2] = 99  # the ignored position
    m = SegMetrics(4)
    m.update(pred, LABEL)
    assert torch.equal(m.confusion, hand_metrics().confusion)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        m.update(torch.full((1, 2, 2), 4), torch.zeros(1, 2, 2, dtype=torch.long))


def test_merge_equals_single_accumulation() -> None:
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 5, (6, 9, 11), generator=g)
    labels = torch.randint(0, 5, (6, 9, 11), generator=g)
    labels[torch.rand(6, 9, 11, generator=g) < 0.1] = IGN
    whole = SegMetrics(5)
    whole.update(preds, labels)
    a, b = SegMetrics(5), SegMetrics(5)
    a.update(preds[:2], labels[:2])
    b.update(preds[2:], labels[2:])
    a.merge(b)
    assert torch.equal(a.confusion, whole.confusion)
    # numpy reference for the matrix
    valid = labels.numpy() != IGN
    ref = np.zeros((5, 5), dtype=np.int64)
    np.add.at(ref, (labels.numpy()[valid], preds.numpy()[valid]), 1)
    np.testing.assert_array_equal(whole.confusion.numpy(), ref)
    a.all_reduce()  # no process group: no-op
    assert torch.equal(a.confusion, whole.confusion)
    with pytest.raises(ValueError, match="merge"):
        a.merge(SegMetrics(3))


def test_perfect_single_class_kappa_and_empty() -> None:
    m = SegMetrics(3)
    m.update(torch.ones(1, 3, 3, dtype=torch.long), torch.ones(1, 3, 3, dtype=torch.long))
    r = m.compute()
    # classes 0 and 2 are absent from both maps: IoU 0 each (PaddleSeg), so mIoU = 1/3
    assert r["kappa"] == 1.0 and r["miou"] == pytest.approx(1 / 3) and r["acc"] == 1.0
    assert r["miou_present"] == 1.0
    empty = SegMetrics(3).compute()
    assert empty["acc"] == 0.0 and empty["kappa"] == 0.0 and np.isnan(empty["miou_present"])


def test_table_and_figure(tmp_path: Path) -> None:
    m = hand_metrics()
    text = m.table(["road", "car", "person", "sky"])
    for name in ("road", "car", "person", "sky"):
        assert name in text
    last = text.splitlines()[-1]
    assert last.startswith("mIoU=0.3958, Acc=0.7143, Kappa=0.5484, mDice=0.5060")
    assert len({len(line) for line in text.splitlines()[:-1]}) == 1  # aligned rows
    out = tmp_path / "cm.png"
    m.confusion_matrix_figure(out, ["road", "car", "person", "sky"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
