"""Lovász losses (Berman et al., "The Lovász-Softmax loss", CVPR 2018; spec §7)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import check_ignore_index, is_int, lovasz_grad, no_autocast, prepare

_INF = float("inf")

_CLASS_MODES = ("present", "all")


class LovaszSoftmaxLoss(nn.Module):
    """Multi-class Lovász-Softmax loss (spec §7; PaddleSeg ``LovaszSoftmaxLoss``, equal to its
    values and gradients, ``tests/test_paddleseg_losses_metrics.py``).

    Softmax probabilities of all non-ignored pixels of the batch are flattened
    together. For each evaluated class ``c`` the errors ``|fg_c - p_c|`` are sorted in
    decreasing order and dotted with the Lovász gradient of the correspondingly sorted
    ``fg_c`` (see :func:`ppseg.losses._common.lovasz_grad`); the loss is the mean over those
    classes. The evaluated classes are, by ``classes``:

    * ``"present"`` (PaddleSeg default): the classes that occur in the batch's ground truth;
    * ``"all"``: every class;
    * a list of class ids, e.g. ``[1, 3]``: those classes, in that order, whether they occur
      or not (a class absent from the ground truth costs its largest probability, as in
      ``"all"``).

    With no valid pixel (or no present class) the loss is ``0 * sum(probs)``.

    Args:
        ignore_index: label value excluded from the loss.
        classes: ``"present"``, ``"all"`` or a non-empty list of class ids.
    """

    def __init__(self, ignore_index: int = 255,
                 classes: Literal["present", "all"] | list[int] = "present") -> None:
        super().__init__()
        self.ignore_index = check_ignore_index(ignore_index)
        if isinstance(classes, (list, tuple)):
            if not classes or not all(is_int(c) and c >= 0 for c in classes):
                raise ConfigError(f"classes must be 'present', 'all' or a non-empty list of class ids "
                                  f"(ints >= 0), got {classes!r}")
            classes = [int(c) for c in classes]
        elif classes not in _CLASS_MODES:
            raise ConfigError(f"classes must be one of {list(_CLASS_MODES)} or a list of class ids, got {classes!r}")
        self.classes: str | list[int] = classes

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            num_classes = logits.shape[1]
            if num_classes < 2:
                raise ConfigError(
                    "LovaszSoftmaxLoss needs at least 2 logit channels; "
                    "use LovaszHingeLoss for 1-channel logits"
                )
            if isinstance(self.classes, list) and max(self.classes) >= num_classes:
                raise ConfigError(f"LovaszSoftmaxLoss classes {self.classes} name a class >= the "
                                  f"{num_classes} logit channels")
            probs = logits.softmax(dim=1)
            flat_label = label.reshape(-1)
            valid = flat_label != self.ignore_index
            zero = probs.sum() * 0.0
            if not bool(valid.any()):
                return zero
            labels = flat_label[valid]
            if self.classes == "present":
                classes = torch.unique(labels)  # sorted, like the reference's class loop
            elif self.classes == "all":
                classes = torch.arange(num_classes, device=labels.device)
            else:
                classes = torch.tensor(self.classes, device=labels.device)
            # [K, N_valid]: probabilities of the K evaluated classes at the valid pixels.
            p = probs.index_select(1, classes).transpose(0, 1).reshape(len(classes), -1)[:, valid]
            fg = (labels.unsqueeze(0) == classes.unsqueeze(1)).to(p.dtype)
            errors = (fg - p).abs()
            return (errors * lovasz_weights(errors.detach(), fg)).sum(dim=1).mean()


@torch.no_grad()
def lovasz_weights(errors: Tensor, fg: Tensor) -> Tensor:
    """Per-pixel weights ``w`` with ``sum(errors * w) == sum(sorted errors * Lovász gradient)``.

    ``errors`` and ``fg`` are ``[K, N]`` (one row per class). The Lovász-Softmax
    loss of a row is the dot product of its errors sorted in decreasing order with
    the Lovász gradient of the equally sorted labels; the sort only decides which
    weight each pixel gets, so the weights are computed here without autograd and
    put back in pixel order. ``sum(errors * w)`` then has the reference's value and
    the same gradient as differentiating through the sort.

    Only pixels that can carry a non-zero weight are sorted: once every foreground
    pixel of a row has been passed, the intersection is empty and the Jaccard
    index stays at 1, so background pixels whose error is below the smallest
    foreground error get weight exactly 0. Early in training that leaves a small
    fraction of the pixels to sort.
    """
    weights = torch.zeros_like(errors)
    smallest_fg = torch.where(fg > 0, errors, torch.full_like(errors, _INF)).amin(dim=1, keepdim=True)
    candidates = errors >= smallest_fg  # every foreground pixel, and the background pixels above them
    for k in range(errors.shape[0]):
        idx = candidates[k].nonzero().squeeze(1)
        if idx.numel() == 0:
            # No foreground ("all" classes mode): the Jaccard index jumps to 1 at the first
            # (largest) error and stays there, so the whole weight goes to the largest error.
            weights[k, errors[k].argmax()] = 1.0
            continue
        order = torch.sort(errors[k, idx], descending=True).indices
        idx = idx[order]
        weights[k, idx] = lovasz_grad(fg[k, idx])
    return weights


class LovaszHingeLoss(nn.Module):
    """Binary Lovász hinge loss (Berman et al. 2018), batch flattened together.

    Accepts 1-channel logits (label 0/1) or 2-channel logits, which are turned into
    the single logit ``x1 - x0`` (equal to ``log(p1 / p0)`` of the 2-way softmax). On 1-channel
    logits this equals PaddleSeg's ``LovaszHingeLoss`` (``tests/test_paddleseg_losses_metrics.py``).
    On 2 channels PaddleSeg means the same logit but writes ``log(p1 + eps / (1 - p1 + eps))``
    (an operator-precedence slip for ``log(p1 / (1 - p1))``: its "logit" is ``log(p1) <= 0``),
    so its values differ there (13 % on random logits); ppseg uses the intended logit.
    With signs ``s = 2*label - 1`` the hinge errors ``1 - x*s`` are sorted
    decreasingly and ``relu(errors)`` is dotted with the Lovász gradient of the sorted
    labels. Ignored pixels are dropped; with no valid pixel the loss is
    ``0 * sum(logits)``.

    Args:
        ignore_index: label value excluded from the loss.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = check_ignore_index(ignore_index)

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            if logits.shape[1] == 2:
                unary = logits[:, 1] - logits[:, 0]
            elif logits.shape[1] == 1:
                unary = logits[:, 0]
            else:
                raise ConfigError(
                    f"LovaszHingeLoss needs 1 or 2 logit channels, got {logits.shape[1]}"
                )
            flat = unary.reshape(-1)
            flat_label = label.reshape(-1)
            valid = flat_label != self.ignore_index
            flat = flat[valid]
            fg = flat_label[valid].float()
            if fg.numel() == 0:
                return logits.sum() * 0.0
            errors = 1.0 - flat * (2.0 * fg - 1.0)
            errors_sorted, perm = torch.sort(errors, descending=True)
            return torch.dot(torch.relu(errors_sorted), lovasz_grad(fg[perm]))
