"""Online hard example mining cross-entropy (spec §7, PaddleSeg ``OhemCrossEntropyLoss``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import check_ignore_index, is_int, is_number, no_autocast, prepare

EPS_OHEM = 1e-5


class OhemCrossEntropyLoss(nn.Module):
    """Cross-entropy over the hard pixels of the batch (spec §7).

    Computed over the whole batch at once:

    1. ``p_gt`` = softmax probability of the ground-truth class (no gradient);
    2. if ``min_kept < #valid``: sort ``p_gt`` of the valid pixels ascending, take the
       value ``t`` at index ``min_kept - 1`` (when ``min_kept > 0``), the threshold is
       ``max(thresh, t)``; keep valid pixels with ``p_gt`` **strictly below** it;
    3. otherwise (``min_kept >= #valid`` or no valid pixel) keep every valid pixel;
    4. ``loss = mean(ce * kept) / (mean(kept) + 1e-5)``.

    With ``min_kept >= 1`` this equals PaddleSeg's ``OhemCrossEntropyLoss`` (values and
    gradients, ``tests/test_paddleseg_losses_metrics.py``). With ``min_kept: 0`` PaddleSeg mines
    nothing: its threshold test sits inside ``if min_kept > 0``, so it keeps every valid pixel
    (a plain cross-entropy). Here ``min_kept: 0`` means what it says, no minimum: the pixels
    with ``p_gt < thresh`` are kept (for PaddleSeg's behaviour, use ``CrossEntropyLoss``).

    Args:
        thresh: probability threshold in ``[0, 1]``.
        min_kept: minimum number of pixels kept per batch (>= 0).
        ignore_index: label value excluded from the loss.
    """

    def __init__(self, thresh: float = 0.7, min_kept: int = 10000, ignore_index: int = 255) -> None:
        super().__init__()
        if not is_number(thresh) or not 0.0 <= thresh <= 1.0:
            raise ConfigError(f"thresh must be a number in [0, 1], got {thresh!r}")
        if not is_int(min_kept) or min_kept < 0:
            raise ConfigError(f"min_kept must be a non-negative int, got {min_kept!r}")
        self.thresh = float(thresh)
        self.min_kept = min_kept
        self.ignore_index = check_ignore_index(ignore_index)

    @torch.no_grad()
    def kept_mask(self, logits: Tensor, label: Tensor) -> Tensor:
        """Boolean ``[N, H, W]`` mask of the pixels that enter the loss (float32 logits)."""
        valid = label != self.ignore_index
        num_valid = int(valid.sum())
        if num_valid == 0 or self.min_kept >= num_valid:
            return valid
        safe_label = torch.where(valid, label, torch.zeros_like(label))
        prob = logits.softmax(dim=1).gather(1, safe_label.unsqueeze(1)).squeeze(1)
        prob = prob[valid]
        threshold = self.thresh
        if self.min_kept > 0:
            kth = float(prob.kthvalue(self.min_kept).values)
            if kth > threshold:
                threshold = kth
        kept = torch.zeros_like(valid)
        kept[valid] = prob < threshold
        return kept

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            kept = self.kept_mask(logits, label)
            safe_label = torch.where(kept, label, torch.zeros_like(label))
            ce = F.cross_entropy(logits, safe_label, reduction="none")
            keptf = kept.float()
            return (ce * keptf).mean() / (keptf.mean() + EPS_OHEM)
