"""Pixel-wise cross-entropy with PaddleSeg's averaging rules (spec §7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import (
    EPS_CE,
    check_ignore_index,
    class_weight_for,
    is_number,
    no_autocast,
    prepare,
    register_class_weight,
)


class CrossEntropyLoss(nn.Module):
    """PaddleSeg ``CrossEntropyLoss``.

    Implements spec §7: ``ce`` is the per-pixel softmax cross-entropy (multiplied by
    ``weight[label]`` when class weights are given), ``mask`` is 1 on non-ignored
    pixels and 0 elsewhere.

    * ``avg_non_ignore=True``: ``mean(ce * mask) / (mean(mask * w) + 1e-8)`` where
      ``w = weight[label]`` (1 without class weights), i.e. the mean over non-ignored
      pixels, weighted like ``torch.nn.functional.cross_entropy(weight=...)``.
    * ``avg_non_ignore=False``: ``mean(ce * mask)`` over *all* pixels (ignored pixels
      count as zeros in the denominator).
    * ``top_k_percent_pixels < 1``: mean of the largest ``k = max(1, int(p * N*H*W))``
      per-pixel losses (ignored pixels have loss 0); this bootstrapping mode ignores
      ``avg_non_ignore``.

    Args:
        weight: optional per-class weights, one per logit channel.
        ignore_index: label value excluded from the loss.
        avg_non_ignore: average over non-ignored pixels only (see above).
        top_k_percent_pixels: fraction in ``(0, 1]`` of hardest pixels to average.
    """

    class_weight: Tensor | None

    def __init__(
        self,
        weight: list[float] | None = None,
        ignore_index: int = 255,
        avg_non_ignore: bool = True,
        top_k_percent_pixels: float = 1.0,
    ) -> None:
        super().__init__()
        register_class_weight(self, weight)
        self.ignore_index = check_ignore_index(ignore_index)
        if not isinstance(avg_non_ignore, bool):
            raise ConfigError(f"avg_non_ignore must be a bool, got {avg_non_ignore!r}")
        self.avg_non_ignore = avg_non_ignore
        if not is_number(top_k_percent_pixels) or not 0.0 < top_k_percent_pixels <= 1.0:
            raise ConfigError(
                f"top_k_percent_pixels must be a number in (0, 1], got {top_k_percent_pixels!r}"
            )
        self.top_k_percent_pixels = float(top_k_percent_pixels)

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            weight = class_weight_for(self, logits.shape[1])
            mask = label != self.ignore_index
            safe_label = torch.where(mask, label, torch.zeros_like(label))
            ce = F.cross_entropy(logits, safe_label, reduction="none")
            maskf = mask.float()
            if weight is not None:
                pixel_weight = weight.to(logits.device)[safe_label] * maskf
                ce = ce * pixel_weight
                denom_map = pixel_weight
            else:
                ce = ce * maskf
                denom_map = maskf

            if self.top_k_percent_pixels < 1.0:
                flat = ce.reshape(-1)
                k = max(1, int(self.top_k_percent_pixels * flat.numel()))
                return flat.topk(k).values.mean()
            if self.avg_non_ignore:
                return ce.mean() / (denom_map.mean() + EPS_CE)
            return ce.mean()
