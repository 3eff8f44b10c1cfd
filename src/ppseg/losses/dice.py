"""Soft Dice loss on softmax probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import check_ignore_index, class_weight_for, is_number, no_autocast, prepare, register_class_weight


EPS_DICE = 1e-8
"""Denominator epsilon of PaddleSeg's DiceLoss."""


class DiceLoss(nn.Module):
    """Multi-class soft Dice loss (Milletari et al., V-Net 2016; PaddleSeg ``DiceLoss``, equal to
    its values and gradients, ``tests/test_paddleseg_losses_metrics.py``).

    With ``p`` the softmax probabilities and ``g`` the one-hot label, both zeroed on
    ignored pixels, for every image ``n`` and class ``c`` (sums over the pixels of the image)::

        dice_nc = (2 * sum(p_nc * g_nc) + smooth) / (sum(p_nc) + sum(g_nc) + smooth + 1e-8)
        loss    = mean_c(w_c * mean_n(1 - dice_nc))

    i.e. Dice per image, then the batch mean, as PaddleSeg (not pooled over the batch).
    ``w_c`` are the optional class weights (1 by default). With ``smooth=0`` a class absent from
    both the image's prediction mass and its label has ``dice = 0`` (loss 1), as in PaddleSeg.
    With every pixel ignored the loss is a graph-connected zero.

    Unlike PaddleSeg's, this loss does not write into the caller's label (PaddleSeg sets the
    ignored pixels of the label tensor to class 0, which every later loss of a ``MixedLoss`` then
    trains on).

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
            valid = label != self.ignore_index
            mask = valid.unsqueeze(1).float()
            safe_label = torch.where(valid, label, torch.zeros_like(label))
            onehot = F.one_hot(safe_label, num_classes).permute(0, 3, 1, 2).float() * mask
            probs = logits.softmax(dim=1) * mask
            dims = (2, 3)
            inter = (probs * onehot).sum(dims)  # [N, C]
            denom = (probs + onehot).sum(dims) + self.smooth + EPS_DICE
            loss = (1.0 - (2.0 * inter + self.smooth) / denom).mean(0)  # [C]: batch mean per class
            weight = class_weight_for(self, num_classes)
            if weight is not None:
                loss = loss * weight.to(loss.device)
            # every pixel ignored: a graph-connected zero (no device sync)
            return torch.where(valid.any(), loss.mean(), logits.sum() * 0.0)
