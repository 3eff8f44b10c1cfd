"""Binary cross-entropy with logits for segmentation labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import EPS_CE, check_ignore_index, is_number, no_autocast, prepare


class BCELoss(nn.Module):
    """Sigmoid binary cross-entropy on logits, averaged over non-ignored elements.

    * 1-channel logits ``[N, 1, H, W]``: the target is the label itself, which must be
      0 or 1 on non-ignored pixels (not checked, to avoid a device sync).
    * ``C >= 2`` channels: the label is one-hot encoded and every channel gets its own
      sigmoid BCE (PaddleSeg's ``BCELoss`` behaviour for multi-channel logits); for
      2-class logits this is the mean of the two per-channel BCEs.

    Per element ``l = -(pw * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x)))``
    (``pw`` = ``pos_weight``, 1 by default), and
    ``loss = mean(l * mask) / (mean(mask) + 1e-8)`` with ``mask`` = non-ignored
    elements, as in :class:`~ppseg.losses.cross_entropy.CrossEntropyLoss`.

    Args:
        ignore_index: label value excluded from the loss.
        pos_weight: optional positive-class weight: a number, or one number per channel.
    """

    pos_weight_t: Tensor | None

    def __init__(self, ignore_index: int = 255, pos_weight: float | list[float] | None = None) -> None:
        super().__init__()
        self.ignore_index = check_ignore_index(ignore_index)
        values: list[float] | None
        if pos_weight is None:
            values = None
        elif is_number(pos_weight):
            values = [float(pos_weight)]
        elif isinstance(pos_weight, (list, tuple)) and pos_weight and all(is_number(v) for v in pos_weight):
            values = [float(v) for v in pos_weight]
        else:
            raise ConfigError(
                f"pos_weight must be None, a positive number or a list of them, got {pos_weight!r}"
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
            if self.pos_weight_t is not None:
                pw = self.pos_weight_t.to(logits.device)
                if pw.numel() not in (1, num_channels):
                    raise ConfigError(
                        f"BCELoss has {pw.numel()} pos_weight values "
                        f"but the logits have {num_channels} channels"
                    )
                pos_weight = pw.expand(num_channels).reshape(num_channels, 1, 1)
            elem = F.binary_cross_entropy_with_logits(
                logits, target, reduction="none", pos_weight=pos_weight
            )
            mask = valid.unsqueeze(1).float().expand_as(elem)
            return (elem * mask).mean() / (mask.mean() + EPS_CE)
