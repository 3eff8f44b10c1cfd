"""Shared helpers for the segmentation losses (private to :mod:`ppseg.losses`).

Every loss follows the same contract:

* ``forward(logits: Tensor[N, C, H, W], label: Tensor[N, H, W] int64) -> scalar``;
* logits whose spatial size differs from the label's are bilinearly resized to the
  label size (``align_corners=False``) first;
* the loss is computed in float32 with autocast disabled, so it works under bf16/fp16
  autocast;
* pixels equal to ``ignore_index`` are excluded; a batch where every pixel is ignored
  gives a finite zero that is still connected to the graph (``logits.sum() * 0`` style).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError
from ppseg.models.layers import resize

EPS_CE = 1e-8
"""Denominator epsilon of PaddleSeg's CrossEntropyLoss (spec §7)."""


@contextlib.contextmanager
def no_autocast(device: torch.device) -> Iterator[None]:
    """Disable autocast for ``device`` (only for device types autocast knows)."""
    if device.type in ("cuda", "cpu", "xpu", "mps"):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:
        yield


def prepare(logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """Validate shapes, cast logits to float32 and resize them to the label size.

    ``label`` may be ``[N, H, W]`` or ``[N, 1, H, W]``; it is returned as int64
    ``[N, H, W]``.
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be [N, C, H, W], got shape {tuple(logits.shape)}")
    if label.dim() == 4 and label.shape[1] == 1:
        label = label[:, 0]
    if label.dim() != 3:
        raise ValueError(f"label must be [N, H, W], got shape {tuple(label.shape)}")
    if label.shape[0] != logits.shape[0]:
        raise ValueError(
            f"batch size mismatch: logits {logits.shape[0]} vs label {label.shape[0]}"
        )
    logits = logits.float()
    if logits.shape[-2:] != label.shape[-2:]:
        logits = resize(logits, tuple(label.shape[-2:]))
    return logits, label.long()


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` (``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """An ``int`` (``bool`` is not an int here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_ignore_index(ignore_index: Any) -> int:
    if not is_int(ignore_index):
        raise ConfigError(f"ignore_index must be an int, got {ignore_index!r}")
    return ignore_index


def check_weight(weight: Any, name: str = "weight") -> list[float] | None:
    """``None`` or a non-empty list of non-negative floats."""
    if weight is None:
        return None
    if not isinstance(weight, (list, tuple)) or len(weight) == 0:
        raise ConfigError(f"{name} must be None or a non-empty list of numbers, got {weight!r}")
    if not all(is_number(w) and w >= 0 for w in weight):
        raise ConfigError(f"{name} entries must be non-negative numbers, got {weight!r}")
    return [float(w) for w in weight]


def register_class_weight(module: nn.Module, weight: Any) -> None:
    """Check ``weight`` (:func:`check_weight`) and keep it as the non-persistent buffer ``class_weight``."""
    weights = check_weight(weight)
    module.register_buffer("class_weight", None if weights is None else torch.tensor(weights, dtype=torch.float32),
                           persistent=False)


def class_weight_for(module: nn.Module, num_classes: int) -> Tensor | None:
    """``module.class_weight`` (or ``None``), checked against the logits' class count."""
    weight = getattr(module, "class_weight", None)
    if weight is not None and weight.numel() != num_classes:
        raise ConfigError(f"{type(module).__name__} has {weight.numel()} class weights "
                          f"but the logits have {num_classes} channels")
    return weight


def lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors.

    ``gt_sorted`` is a float 0/1 vector sorted by decreasing error (or a batch of
    such rows: the last dimension is the pixel axis). With
    ``G = sum(gt)``, the Jaccard index after taking the first k pixels is
    ``J_k = 1 - (G - cumsum(gt)_k) / (G + cumsum(1 - gt)_k)``; the gradient is the
    sequence of increments ``J_1 - 0, J_2 - J_1, ...`` (spec §7).
    """
    total = gt_sorted.sum(dim=-1, keepdim=True)
    inter = total - gt_sorted.cumsum(-1)
    union = total + (1.0 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - inter / union
    if gt_sorted.shape[-1] > 1:
        jaccard = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)
    return jaccard
