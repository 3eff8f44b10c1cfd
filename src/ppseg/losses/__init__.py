"""Segmentation losses and PaddleSeg's multi-output loss rule.

Every loss maps ``(logits [N, C, H, W] float, label [N, H, W] int64)`` to a scalar,
resizes logits to the label size (bilinear, ``align_corners=False``) when needed,
computes in float32 with autocast disabled, excludes ``ignore_index`` pixels and
returns a graph-connected zero when every pixel is ignored.

:data:`LOSSES` is the explicit name → class table used by the config builder
(``loss.types[i].type``). ``MixedLoss`` takes already-built loss modules, so the
builder constructs its sub-losses first.

Multi-output rule (:func:`compute_losses`, :class:`SegLoss`): a model returns a list
of logits (main output first, then auxiliary heads); output ``i`` goes with
``losses[i]`` and ``coef[i]``; ``total = sum_i coef_i * loss_i(output_i)``. A single
loss with several coefs is replicated to every coef. The number of outputs must equal the
number of loss entries (after that replication): fewer or more outputs is a
:class:`~ppseg.errors.ConfigError`, as PaddleSeg's ``core/train.py`` (``check_logits_losses``)
raises a ``RuntimeError`` whenever ``len(logits_list) != len(losses['types'])``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import is_number
from .bce import BCELoss
from .cross_entropy import CrossEntropyLoss
from .dice import DiceLoss
from .lovasz import LovaszHingeLoss, LovaszSoftmaxLoss
from .mixed import MixedLoss
from .nfl import BoundaryBCELoss, NormalizedFocalLoss
from .ohem import OhemCrossEntropyLoss
from .scl import SemanticConnectivityLoss

LOSSES: dict[str, type[nn.Module]] = {
    "CrossEntropyLoss": CrossEntropyLoss,
    "OhemCrossEntropyLoss": OhemCrossEntropyLoss,
    "LovaszSoftmaxLoss": LovaszSoftmaxLoss,
    "LovaszHingeLoss": LovaszHingeLoss,
    "DiceLoss": DiceLoss,
    "BCELoss": BCELoss,
    "MixedLoss": MixedLoss,
    "SemanticConnectivityLoss": SemanticConnectivityLoss,
    "NormalizedFocalLoss": NormalizedFocalLoss,
    "BoundaryBCELoss": BoundaryBCELoss,
}

__all__ = [
    "LOSSES",
    "BCELoss",
    "BoundaryBCELoss",
    "NormalizedFocalLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "MixedLoss",
    "OhemCrossEntropyLoss",
    "SegLoss",
    "SemanticConnectivityLoss",
    "compute_losses",
    "expand_losses",
]


def expand_losses(
    losses: Sequence[nn.Module], coef: Sequence[float]
) -> tuple[list[nn.Module], list[float]]:
    """Validate ``losses``/``coef`` and replicate a single loss over several coefs."""
    if not isinstance(losses, (list, tuple, nn.ModuleList)) or len(losses) == 0:
        raise ConfigError("losses must be a non-empty list of loss modules")
    if not isinstance(coef, (list, tuple)) or not all(is_number(c) for c in coef):
        raise ConfigError(f"coef must be a list of numbers, got {coef!r}")
    loss_list = list(losses)
    if len(loss_list) == 1 and len(coef) > 1:
        loss_list = loss_list * len(coef)
    if len(loss_list) != len(coef):
        raise ConfigError(
            f"{len(loss_list)} losses but {len(coef)} coef values; "
            "give one coef per loss, or a single loss to apply to every coef"
        )
    return loss_list, [float(c) for c in coef]


def compute_losses(
    outputs: Tensor | Sequence[Tensor],
    label: Tensor,
    losses: Sequence[nn.Module],
    coef: Sequence[float],
) -> tuple[Tensor, dict[str, float]]:
    """PaddleSeg's multi-output loss: ``total = sum_i coef_i * losses[i](outputs[i], label)``.

    One output per loss entry (after replicating a single loss over ``coef``), else a
    :class:`~ppseg.errors.ConfigError`.

    Returns the total (graph-connected) and a dict of the weighted terms as floats,
    keyed ``"out{i}.{LossClass}"``; a :class:`MixedLoss` contributes one entry per
    sub-loss, ``"out{i}.{SubLossClass}"`` with value ``coef_i * coef_j * loss_j``.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    loss_list, coefs = expand_losses(losses, coef)
    if len(outs) == 0:
        raise ValueError("the model returned no output to compute a loss on")
    if len(outs) != len(loss_list):
        raise ConfigError(
            f"the model returned {len(outs)} outputs (main + auxiliary heads) but there are "
            f"{len(loss_list)} loss entries; give one coef per output (PaddleSeg raises on this too)"
        )
    names: list[str] = []
    terms: list[Tensor] = []
    for i, (out, loss, c) in enumerate(zip(outs, loss_list, coefs, strict=True)):
        if isinstance(loss, MixedLoss):
            for sub_name, part in zip(loss.term_names, loss.terms(out, label), strict=True):
                names.append(f"out{i}.{sub_name}")
                terms.append(c * part)
        else:
            names.append(f"out{i}.{type(loss).__name__}")
            terms.append(c * loss(out, label))
    stacked = torch.stack(terms)
    values = stacked.detach().float().cpu().tolist()
    per_term: dict[str, float] = {}
    for name, value in zip(names, values, strict=True):
        key = name
        k = 1
        while key in per_term:
            key = f"{name}_{k}"
            k += 1
        per_term[key] = value
    return stacked.sum(), per_term


class SegLoss(nn.Module):
    """Module form of :func:`compute_losses` (moves class-weight buffers with ``.to()``).

    Args:
        losses: one loss per model output, or a single loss replicated over ``coef``.
        coef: one weight per model output.
    """

    def __init__(self, losses: Sequence[nn.Module], coef: Sequence[float]) -> None:
        super().__init__()
        loss_list, coefs = expand_losses(losses, coef)
        self.losses = nn.ModuleList(loss_list)
        self.coef = coefs

    def forward(
        self, outputs: Tensor | Sequence[Tensor], label: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        return compute_losses(outputs, label, list(self.losses), self.coef)
