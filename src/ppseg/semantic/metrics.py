"""Semantic-segmentation metrics accumulated over a dataset (spec §10.1).

:class:`SegMetrics` keeps an exact int64 confusion matrix ``cm[label, pred]`` on the
CPU. From it, per class ``i``: ``inter_i = cm[i, i]``, ``label_area_i = cm[i, :].sum()``,
``pred_area_i = cm[:, i].sum()`` (pixels whose label is ``ignore_index`` are never
counted), which are PaddleSeg's dataset-level sums.

Definitions (PaddleSeg ``utils/metrics.py``: ``mean_iou``, ``class_measurement``, ``kappa``,
``dice``; equal to them to 1e-9, ``tests/test_paddleseg_losses_metrics.py``):

* ``IoU_i = inter_i / (pred_area_i + label_area_i - inter_i)``; **a class whose union is 0
  (absent from both the prediction and the ground truth) has IoU_i = 0**, as in PaddleSeg
  (``mean_iou``: ``if union[i] == 0: iou = 0``). ``miou`` is the mean over all classes, so
  every such class lowers it by ``1/C``. mmseg instead skips such classes (NaN); that value
  is exposed as ``miou_present`` (mean over the classes with a non-zero union).
* ``acc = sum(inter) / sum(pred_area)`` (overall pixel accuracy; PaddleSeg's ``Acc``).
* ``class_precision_i = inter_i / pred_area_i``, ``class_recall_i = inter_i / label_area_i``
  (0 when the denominator is 0), PaddleSeg's ``class_measurement``. ``class_acc`` is the
  recall (mmseg's per-class accuracy) and ``macc`` is its mean over the classes present in
  the ground truth (mmseg's mAcc). PaddleSeg's deprecated ``accuracy()`` calls the
  *precision* "class acc" and the overall accuracy "macc": those are ``class_precision`` and
  ``acc`` here.
* ``kappa``: ``N = sum(label_area)``, ``p_o = sum(inter) / N``,
  ``p_e = sum(pred_area_i * label_area_i) / N^2``, ``(p_o - p_e) / (1 - p_e)`` (float64).
* ``Dice_i = 2 inter_i / (pred_area_i + label_area_i)`` (0 when the denominator is 0);
  ``mdice`` is the mean over all classes.

Degenerate cases, where PaddleSeg divides 0 by 0 and reports NaN: with no counted pixel
``acc``, ``macc`` and ``kappa`` are 0 and ``miou_present`` is NaN; when ``p_e == 1`` (one
class fills both maps) ``kappa`` is 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


class SegMetrics:
    """Exact confusion-matrix accumulator for semantic segmentation.

    Args:
        num_classes: number of classes ``C``; labels and predictions must lie in
            ``[0, C)`` except label pixels equal to ``ignore_index``.
        ignore_index: label value excluded from every count.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.confusion.zero_()

    @torch.no_grad()
    def update(self, pred: Tensor, label: Tensor) -> None:
        """Add a batch. ``pred`` and ``label`` are integer maps of the same shape.

        Counting happens on the tensors' device (one ``bincount``); only the ``C x C``
        result is moved to the CPU. Raises ``ValueError`` for values outside ``[0, C)``.
        """
        if label.dim() == pred.dim() + 1 and label.shape[1] == 1:
            label = label[:, 0]
        if pred.dim() == label.dim() + 1 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if pred.shape != label.shape:
            raise ValueError(
                f"pred shape {tuple(pred.shape)} differs from label shape {tuple(label.shape)}"
            )
        if pred.dtype.is_floating_point or label.dtype.is_floating_point:
            raise ValueError("pred and label must be integer tensors (class ids)")
        pred = pred.reshape(-1).long()
        label = label.reshape(-1).to(pred.device).long()
        valid = label != self.ignore_index
        pred = pred[valid]
        label = label[valid]
        c = self.num_classes
        if label.numel():
            lo = int(torch.minimum(label.min(), pred.min()))
            hi = int(torch.maximum(label.max(), pred.max()))
            if lo < 0 or hi >= c:
                raise ValueError(
                    f"class ids must lie in [0, {c}) (label {self.ignore_index} is ignored); "
                    f"got values in [{lo}, {hi}]"
                )
        counts = torch.bincount(label * c + pred, minlength=c * c)
        self.confusion += counts.reshape(c, c).cpu()

    def merge(self, other: SegMetrics) -> None:
        """Add the counts of another accumulator with the same classes."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                "cannot merge SegMetrics with different num_classes/ignore_index: "
                f"({self.num_classes}, {self.ignore_index}) vs "
                f"({other.num_classes}, {other.ignore_index})"
            )
        self.confusion += other.confusion

    def all_reduce(self) -> None:
        """Sum the matrix over all processes when ``torch.distributed`` is initialised."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        summed = self.confusion.to(device)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        self.confusion = summed.cpu()

    def compute(self) -> dict[str, Any]:
        """All metrics as a dict (scalars are Python floats, ``class_*`` numpy float64)."""
        cm = self.confusion.numpy().astype(np.float64)
        inter = np.diag(cm)
        label_area = cm.sum(axis=1)
        pred_area = cm.sum(axis=0)
        union = pred_area + label_area - inter
        class_iou = _safe_div(inter, union, empty=0.0)  # PaddleSeg mean_iou: union 0 -> IoU 0
        class_precision = _safe_div(inter, pred_area, empty=0.0)
        class_recall = _safe_div(inter, label_area, empty=0.0)
        class_dice = _safe_div(2.0 * inter, pred_area + label_area, empty=0.0)

        total = float(label_area.sum())
        present = union > 0
        in_gt = label_area > 0
        acc = float(inter.sum() / pred_area.sum()) if pred_area.sum() > 0 else 0.0
        if total > 0:
            p_o = float(inter.sum()) / total
            p_e = float((pred_area * label_area).sum()) / (total * total)
            kappa = 1.0 if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)
        else:
            kappa = 0.0
        return {
            "miou": float(class_iou.mean()),
            "miou_present": float(class_iou[present].mean()) if present.any() else float("nan"),
            "acc": acc,
            "macc": float(class_recall[in_gt].mean()) if in_gt.any() else 0.0,
            "kappa": float(kappa),
            "mdice": float(class_dice.mean()),
            "class_iou": class_iou,
            "class_acc": class_recall.copy(),
            "class_precision": class_precision,
            "class_recall": class_recall,
            "class_dice": class_dice,
        }

    def table(self, class_names: list[str] | None = None) -> str:
        """Aligned text table, one row per class, then a summary line."""
        m = self.compute()
        names = self._names(class_names)
        header = ("Class", "IoU", "Acc(recall)", "Precision", "Dice")
        rows = [
            (
                name,
                f"{m['class_iou'][i]:.4f}",
                f"{m['class_recall'][i]:.4f}",
                f"{m['class_precision'][i]:.4f}",
                f"{m['class_dice'][i]:.4f}",
            )
            for i, name in enumerate(names)
        ]
        widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]

        def fmt(row: tuple[str, ...]) -> str:
            first = row[0].ljust(widths[0])
            rest = [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
            return "  ".join([first, *rest])

        lines = [fmt(header), "  ".join("-" * w for w in widths)]
        lines += [fmt(r) for r in rows]
        lines.append(
            f"mIoU={m['miou']:.4f}, Acc={m['acc']:.4f}, Kappa={m['kappa']:.4f}, "
            f"mDice={m['mdice']:.4f}"
        )
        return "\n".join(lines)

    def confusion_matrix_figure(
        self, path: str | Path, class_names: list[str] | None = None
    ) -> None:
        """Save a PNG of the row-normalised confusion matrix (rows = ground truth)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        cm = self.confusion.numpy().astype(np.float64)
        rows = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        names = self._names(class_names)
        c = self.num_classes
        side = min(4.0 + 0.4 * c, 40.0)
        fig = Figure(figsize=(side, side))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Ground truth")
        ax.set_title("Confusion matrix (row-normalised)")
        if c <= 60:
            ax.set_xticks(range(c), labels=names, rotation=90)
            ax.set_yticks(range(c), labels=names)
        if c <= 20:
            for i in range(c):
                for j in range(c):
                    ax.text(
                        j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=100)

    def _names(self, class_names: list[str] | None) -> list[str]:
        if class_names is None:
            return [str(i) for i in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(
                f"got {len(class_names)} class names for {self.num_classes} classes"
            )
        return [str(n) for n in class_names]


def _safe_div(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    """``num / den`` elementwise, ``empty`` where ``den == 0``."""
    out = np.full_like(num, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out
