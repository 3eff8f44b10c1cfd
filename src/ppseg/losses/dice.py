"""Soft Dice loss on softmax probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import check_ignore_index, class_weight_for, is_number, no_autocast, prepare, register_class_weight


class DiceLoss(nn.Module):
    """Multi-class soft Dice loss (Milletari et al., V-Net 2016; PaddleSeg ``DiceLoss``).

    With ``p`` the softmax probabilities and ``g`` the one-hot label, both zeroed on
    ignored pixels, for every class ``c`` (sums over batch and space together)::

        dice_c = (2 * sum(p_c * g_c) + smooth) / (sum(p_c) + sum(g_c) + smooth)
        loss   = mean_c(w_c * (1 - dice_c))

    ``w_c`` are the optional class weights (1 by default). A class whose denominator is
    0 (only possible with ``smooth=0``) counts as ``dice_c = 1``. With every pixel
    ignored the loss is a graph-connected zero.

    Args:
        ignore_index: label value excluded from the loss.
        smooth: additive smoothing (>= 0) of numerator and denominator.
        weight: optional per-class weights, one per logit channel.
    """

    class_weight: Tensor | None

    def __init__(
        self, ignore_index: int = 255, smooth: float = 1.0, weight: list[float] | None = None
    ) -> None:
        super().__init__()
        self.ignore_index = check_ignore_index(ignore_index)
        if not is_number(smooth) or smooth < 0:
            raise ConfigError(f"smooth must be a non-negative number, got {smooth!r}")
        self.smooth = float(smooth)
        register_class_weight(self, weight)

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            num_classes = logits.shape[1]
            mask = (label != self.ignore_index).unsqueeze(1).float()
            safe_label = torch.where(label != self.ignore_index, label, torch.zeros_like(label))
            onehot = F.one_hot(safe_label, num_classes).permute(0, 3, 1, 2).float() * mask
            probs = logits.softmax(dim=1) * mask
            dims = (0, 2, 3)
            inter = (probs * onehot).sum(dims)
            denom = probs.sum(dims) + onehot.sum(dims) + self.smooth
            dice = torch.where(
                denom > 0, (2.0 * inter + self.smooth) / denom.clamp_min(1e-12), torch.ones_like(denom)
            )
            loss = 1.0 - dice
            weight = class_weight_for(self, num_classes)
            if weight is not None:
                loss = loss * weight.to(loss.device)
            return loss.mean()
