"""Binary cross-entropy with logits for segmentation labels."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import check_ignore_index, is_number, no_autocast, prepare


EPS_BCE = 1e-10
"""Denominator epsilon of PaddleSeg's BCELoss."""


class BCELoss(nn.Module):
    """Sigmoid binary cross-entropy on logits, averaged over non-ignored elements (PaddleSeg
    ``BCELoss``, equal to its values and gradients without ``pos_weight``,
    ``tests/test_paddleseg_losses_metrics.py``).

    * 1-channel logits ``[N, 1, H, W]``: the target is the label itself, which must be
      0 or 1 on non-ignored pixels (not checked, to avoid a device sync).
    * ``C >= 2`` channels: the label is one-hot encoded and every channel gets its own
      sigmoid BCE (PaddleSeg's ``BCELoss`` behaviour for multi-channel logits); for
      2-class logits this is the mean of the two per-channel BCEs.

    Per element ``l = -wt * (pw * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x)))`` and
    ``loss = mean(l * mask) / (mean(mask) + 1e-10)`` with ``mask`` = non-ignored elements.
    ``pw`` is ``pos_weight`` (1 by default) and ``wt`` is 1, or with ``weight: dynamic``
    PaddleSeg's balancing weights computed on every batch: with ``P``/``Q`` the numbers of
    target elements equal to 1/0 (ignored pixels count as 0s, as in PaddleSeg),
    ``wt = 2Q/(P+Q)`` on positives and ``2P/(P+Q)`` on negatives. ``pos_weight: dynamic`` is
    ``pw = 2Q/(P+Q)``.

    ``pos_weight`` follows the formula above (as ``torch.nn.BCEWithLogitsLoss``). paddle 2.6's
    kernel, which PaddleSeg calls, does not scale the ``max(-x, 0)`` part of ``-log(sigmoid(x))``
    by ``pos_weight`` (label 1, logit -9, pos_weight 3: 9.0004 instead of 27.0004), so PaddleSeg's
    values with ``pos_weight`` differ wherever a positive has a negative logit.

    Args:
        ignore_index: label value excluded from the loss.
        pos_weight: optional positive-class weight: a positive number, one number per channel,
            or ``"dynamic"``.
        weight: ``None`` or ``"dynamic"`` (PaddleSeg's per-batch class balancing, see above).
            PaddleSeg also takes a tensor of per-sample weights, which a config cannot give.
        edge_label: PaddleSeg's switch to train this loss on the dataset's edge map instead of
            the label (its ``edge: true`` datasets). ppseg produces no edge maps: only ``false``
            is accepted.
    """

    pos_weight_t: Tensor | None

    def __init__(
        self,
        ignore_index: int = 255,
        pos_weight: float | list[float] | Literal["dynamic"] | None = None,
        weight: Literal["dynamic"] | None = None,
        edge_label: bool = False,
    ) -> None:
        super().__init__()
        self.ignore_index = check_ignore_index(ignore_index)
        if edge_label is not False:
            raise ConfigError(
                f"edge_label: {edge_label!r}: PaddleSeg's edge_label trains the loss on the dataset's "
                "edge map (datasets with `edge: true`), which ppseg does not produce; remove edge_label "
                "(or write edge_label: false) to train on the segmentation label"
            )
        self.edge_label = False
        if weight is not None and weight != "dynamic":
            raise ConfigError(
                f"weight must be null or 'dynamic' (PaddleSeg's per-batch class balancing), got {weight!r}; "
                "for per-class weights on the positive class use pos_weight"
            )
        self.dynamic_weight = weight == "dynamic"
        self.dynamic_pos_weight = pos_weight == "dynamic"
        values: list[float] | None
        if pos_weight is None or self.dynamic_pos_weight:
            values = None
        elif is_number(pos_weight):
            values = [float(pos_weight)]
        elif isinstance(pos_weight, (list, tuple)) and pos_weight and all(is_number(v) for v in pos_weight):
            values = [float(v) for v in pos_weight]
        else:
            raise ConfigError(
                f"pos_weight must be None, 'dynamic', a positive number or a list of them, got {pos_weight!r}"
            )
        if values is not None and any(v <= 0 for v in values):
            raise ConfigError(f"pos_weight must be positive, got {pos_weight!r}")
        self.register_buffer(
            "pos_weight_t",
            None if values is None else torch.tensor(values, dtype=torch.float32),
            persistent=False,
        )

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            num_channels = logits.shape[1]
            valid = label != self.ignore_index
            safe_label = torch.where(valid, label, torch.zeros_like(label))
            if num_channels == 1:
                target = safe_label.unsqueeze(1).float()
            else:
                target = F.one_hot(safe_label, num_channels).permute(0, 3, 1, 2).float()
            pos_weight = None
            weight = None
            if self.dynamic_weight or self.dynamic_pos_weight:
                pos = (target == 1).sum().float()
                neg = (target == 0).sum().float()
                total = pos + neg + EPS_BCE
                if self.dynamic_weight:
                    weight = (2.0 * neg / total) * target + (2.0 * pos / total) * (1.0 - target)
                if self.dynamic_pos_weight:
                    pos_weight = (2.0 * neg / total).reshape(1, 1, 1).expand(num_channels, 1, 1)
            if self.pos_weight_t is not None:
                pw = self.pos_weight_t.to(logits.device)
                if pw.numel() not in (1, num_channels):
                    raise ConfigError(
                        f"BCELoss has {pw.numel()} pos_weight values "
                        f"but the logits have {num_channels} channels"
                    )
                pos_weight = pw.expand(num_channels).reshape(num_channels, 1, 1)
            elem = F.binary_cross_entropy_with_logits(
                logits, target, weight=weight, reduction="none", pos_weight=pos_weight
            )
            mask = valid.unsqueeze(1).float()
            return (elem * mask).mean() / (mask.mean() + EPS_BCE)
