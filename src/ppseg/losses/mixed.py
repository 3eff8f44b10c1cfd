"""Weighted combination of several losses on the same output (spec §7 ``MixedLoss``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError

from .fused import DEVICE_TYPES, applies_to, fusable_pair, fused_ce_lovasz


class MixedLoss(nn.Module):
    """``sum_j coef_j * loss_j(logits, label)`` over the sub-losses of one output.

    ``forward`` returns the weighted sum as a scalar tensor. The individual weighted
    terms (``coef_j * loss_j``) are available two ways:

    * :meth:`terms` returns them as a list of graph-connected tensors (this is what
      PaddleSeg's MixedLoss returns; :func:`ppseg.losses.compute_losses` uses it);
    * after each ``forward`` call, :attr:`last_terms` maps :attr:`term_names` to the
      **detached** weighted terms of that call.

    A plain ``CrossEntropyLoss`` + ``LovaszSoftmaxLoss(classes="present")`` pair (the
    PP-MobileSeg recipe) is computed by :func:`ppseg.losses.fused.fused_ce_lovasz` on
    CPU: same values and gradients up to float rounding, several times faster, and
    low-resolution logits are resized band by band instead of as a whole.

    Args:
        losses: the sub-loss modules (non-empty).
        coef: one weight per sub-loss.
    """

    def __init__(self, losses: Sequence[nn.Module], coef: Sequence[float]) -> None:
        super().__init__()
        if not isinstance(losses, (list, tuple)) or len(losses) == 0:
            raise ConfigError("MixedLoss losses must be a non-empty list of loss modules")
        if not all(isinstance(m, nn.Module) for m in losses):
            raise ConfigError("MixedLoss losses must all be loss modules")
        if not isinstance(coef, (list, tuple)) or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in coef
        ):
            raise ConfigError(f"MixedLoss coef must be a list of numbers, got {coef!r}")
        if len(coef) != len(losses):
            raise ConfigError(
                f"MixedLoss needs one coef per loss: {len(losses)} losses but {len(coef)} coef"
            )
        self.losses = nn.ModuleList(losses)
        self.coef = [float(c) for c in coef]
        self.term_names = _unique_names([type(m).__name__ for m in losses])
        self.last_terms: dict[str, Tensor] = {}

    def terms(self, logits: Tensor, label: Tensor) -> list[Tensor]:
        """The weighted terms ``coef_j * loss_j(logits, label)``, in order."""
        pair = fusable_pair(list(self.losses))
        if pair is not None:
            ce = self.losses[pair[0]]
            if applies_to(logits, label, ce, ce.ignore_index):
                values = dict(zip(pair, fused_ce_lovasz(
                    logits, label, ce.ignore_index, ce.class_weight, ce.avg_non_ignore), strict=True))
                return [c * (values[j] if j in values else loss(logits, label))
                        for j, (loss, c) in enumerate(zip(self.losses, self.coef, strict=True))]
        return [c * loss(logits, label) for loss, c in zip(self.losses, self.coef, strict=True)]

    def accepts_lowres_logits(self, device: torch.device | str = "cpu") -> bool:
        """A capability: ``True`` when this loss computes on low-resolution logits without
        materialising the resized ones (the fused CE + Lovasz pair on ``device``).

        A trainer may then feed it a model's low-resolution logits instead of the full-size
        ones (every loss resizes logits to the label size with the same bilinear rule)."""
        return (torch.device(device).type in DEVICE_TYPES and len(self.losses) == 2
                and fusable_pair(list(self.losses)) is not None)

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        parts = self.terms(logits, label)
        self.last_terms = {n: t.detach() for n, t in zip(self.term_names, parts, strict=True)}
        return torch.stack(parts).sum()


def _unique_names(names: list[str]) -> list[str]:
    """Append ``_<index>`` to names that occur more than once."""
    return [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]
