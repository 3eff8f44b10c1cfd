"""Lovász losses (Berman et al., "The Lovász-Softmax loss", CVPR 2018; spec §7)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import check_ignore_index, lovasz_grad, no_autocast, prepare

_CLASS_MODES = ("present", "all")


class LovaszSoftmaxLoss(nn.Module):
    """Multi-class Lovász-Softmax loss (spec §7).

    Softmax probabilities of all non-ignored pixels of the batch are flattened
    together. For each class ``c`` (``classes="present"``: only classes that occur in
    the ground truth of the batch; ``"all"``: every class) the errors
    ``|fg_c - p_c|`` are sorted in decreasing order and dotted with the Lovász
    gradient of the correspondingly sorted ``fg_c`` (see
    :func:`ppseg.losses._common.lovasz_grad`); the loss is the mean over those classes.
    With no valid pixel (or no present class) the loss is ``0 * sum(probs)``.

    Args:
        ignore_index: label value excluded from the loss.
        classes: ``"present"`` (PaddleSeg default) or ``"all"``.
    """

    def __init__(self, ignore_index: int = 255, classes: Literal["present", "all"] = "present") -> None:
        super().__init__()
        self.ignore_index = check_ignore_index(ignore_index)
        if classes not in _CLASS_MODES:
            raise ConfigError(f"classes must be one of {list(_CLASS_MODES)}, got {classes!r}")
        self.classes = classes

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            num_classes = logits.shape[1]
            if num_classes < 2:
                raise ValueError(
                    "LovaszSoftmaxLoss needs at least 2 logit channels; "
                    "use LovaszHingeLoss for 1-channel logits"
                )
            probs = logits.softmax(dim=1)
            flat_probs = probs.permute(0, 2, 3, 1).reshape(-1, num_classes)
            flat_label = label.reshape(-1)
            valid = flat_label != self.ignore_index
            flat_probs = flat_probs[valid]
            flat_label = flat_label[valid]
            zero = probs.sum() * 0.0
            if flat_label.numel() == 0:
                return zero
            losses: list[Tensor] = []
            for c in range(num_classes):
                fg = (flat_label == c).float()
                if self.classes == "present" and not bool(fg.any()):
                    continue
                errors = (fg - flat_probs[:, c]).abs()
                errors_sorted, perm = torch.sort(errors, descending=True)
                losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
            if not losses:
                return zero
            return torch.stack(losses).mean()


class LovaszHingeLoss(nn.Module):
    """Binary Lovász hinge loss (Berman et al. 2018), batch flattened together.

    Accepts 1-channel logits (label 0/1) or 2-channel logits, which are turned into
    the single logit ``x1 - x0`` (equal to ``log(p1 / p0)`` of the 2-way softmax).
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
                raise ValueError(
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
