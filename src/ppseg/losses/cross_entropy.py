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
    """PaddleSeg ``CrossEntropyLoss`` (spec §7; equal to PaddleSeg 2.8's values and gradients,
    ``tests/test_paddleseg_losses_metrics.py``).

    ``ce`` is the per-pixel softmax cross-entropy times ``w = weight[label]`` (0 on ignored
    pixels), and every pixel has a *coefficient* ``coef``:

    * ``avg_non_ignore=True``: ``coef = w`` on non-ignored pixels and 0 on ignored ones;
    * ``avg_non_ignore=False``: ``coef = w`` on non-ignored pixels and 1 on ignored ones
      (without class weights ``coef = 1`` everywhere).

    ``w`` and ``coef`` are 1 without class weights. Then:

    * ``top_k_percent_pixels == 1``: ``loss = mean(ce) / (mean(coef) + 1e-8)``: the mean over
      non-ignored pixels weighted like ``torch.nn.functional.cross_entropy(weight=...)``
      (``avg_non_ignore=True``), or the weighted mean over all pixels where an ignored pixel
      counts as a zero loss of weight 1 (``False``);
    * ``top_k_percent_pixels < 1``: the ``k = max(1, int(p * N*H*W))`` largest ``ce`` values,
      divided by the mean *weight* of those pixels: ``mean(top_k(ce)) / (mean(w_k) + 1e-8)``,
      where ``w_k`` is ``weight[label]`` of a kept pixel, PaddleSeg's rule: an ignored pixel
      among them (loss 0) counts as ``weight[0]`` with ``avg_non_ignore=True`` (PaddleSeg reads
      the weight of label ``label * mask = 0``) and as 1 with ``False``; 1 without class weights.

    PaddleSeg raises on class weights with ``avg_non_ignore: false`` as soon as a pixel is
    ignored (it one-hot encodes the raw label 255); here that pixel counts with weight 1, which
    is also what PaddleSeg does without class weights.

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
            if weight is None:
                ce = ce * maskf
                # coef: 1 on counted pixels (all of them with avg_non_ignore=False)
                coef = maskf if self.avg_non_ignore else torch.ones_like(maskf)
                kept_weight = torch.ones_like(maskf)
            else:
                w = weight.to(logits.device)[safe_label]  # weight[0] at ignored pixels
                ce = ce * (w * maskf)
                if self.avg_non_ignore:
                    coef = w * maskf
                    kept_weight = w
                else:
                    coef = torch.where(mask, w, torch.ones_like(w))
                    kept_weight = coef

            if self.top_k_percent_pixels < 1.0:
                flat = ce.reshape(-1)
                k = max(1, int(self.top_k_percent_pixels * flat.numel()))
                values, index = flat.topk(k)
                return values.mean() / (kept_weight.reshape(-1)[index].mean() + EPS_CE)
            return ce.mean() / (coef.mean() + EPS_CE)
