"""Normalized focal loss (RITM / EdgeFlow's click-model loss) and a boundary loss for edge maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import is_number, no_autocast

__all__ = ["NormalizedFocalLoss", "BoundaryBCELoss", "mask_boundary"]


class NormalizedFocalLoss(nn.Module):
    """Sigmoid focal loss whose focal weights are renormalised to sum to the pixel count
    (Sofiiuk et al., "AdaptIS", 2019; RITM's ``NormalizedFocalLossSigmoid``).

    For 1-channel logits ``x`` and a 0/1 target ``y`` (``ignore_index`` pixels excluded):
    ``p_t = sigmoid(x)`` where ``y = 1`` else ``1 - sigmoid(x)``; ``beta = (1 - p_t)^gamma``,
    rescaled per image (without gradient) by ``N / sum(beta)`` with ``N`` the valid pixels;
    ``loss = -alpha * beta * log(min(p_t + eps, 1))``, summed per image, divided by ``N``,
    averaged over the batch. Easy pixels stop dominating as the model improves, yet the loss
    keeps the scale of a plain BCE.

    Args:
        alpha: weight of the loss (RITM 0.5).
        gamma: focusing exponent (RITM 2).
        ignore_index: target value excluded from the loss.
        eps: stability epsilon (RITM 1e-12).
    """

    def __init__(self, alpha: float = 0.5, gamma: float = 2.0, ignore_index: int = 255, eps: float = 1e-12) -> None:
        super().__init__()
        for name, v in (("alpha", alpha), ("gamma", gamma)):
            if not is_number(v) or v < 0:
                raise ConfigError(f"NormalizedFocalLoss: {name} must be a number >= 0, got {v!r}")
        self.alpha, self.gamma, self.ignore_index, self.eps = float(alpha), float(gamma), int(ignore_index), float(eps)

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            x = logits.float()
            if x.dim() == 4:
                if x.shape[1] != 1:
                    raise ConfigError(f"NormalizedFocalLoss expects 1-channel logits, got {tuple(x.shape)}")
                x = x[:, 0]
            if x.shape[-2:] != label.shape[-2:]:
                x = F.interpolate(x[:, None], size=label.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            valid = (label != self.ignore_index).float()
            pos = label == 1
            p = torch.sigmoid(x)
            pt = torch.where(pos, p, 1 - p)
            pt = torch.where(valid > 0, pt, torch.ones_like(pt))
            beta = (1 - pt) ** self.gamma
            n = valid.sum(dim=(-2, -1))
            scale = (n / (beta.sum(dim=(-2, -1)) + self.eps)).detach()
            beta = beta * scale[:, None, None]
            loss = -self.alpha * beta * torch.log(torch.clamp(pt + self.eps, max=1.0))
            loss = (loss * valid).sum(dim=(-2, -1)) / (n + self.eps)
            return loss.mean()


def mask_boundary(mask: Tensor, width: int = 2) -> Tensor:
    """``[N, H, W]`` 0/1 boundary band of a 0/1 mask: pixels within ``width`` of a label change."""
    m = mask.float()[:, None]
    k = 2 * width + 1
    dil = F.max_pool2d(m, k, stride=1, padding=width)
    ero = -F.max_pool2d(-m, k, stride=1, padding=width)
    return (dil - ero)[:, 0].clamp(0, 1)


class BoundaryBCELoss(nn.Module):
    """Class-balanced BCE between edge logits and the object's boundary band (EdgeFlow's edge
    branch, arXiv 2109.09406 §3: the edge map is supervised by the mask's boundary).

    Args:
        width: half-width in pixels of the boundary band.
        ignore_index: target value excluded.
    """

    def __init__(self, width: int = 2, ignore_index: int = 255) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 32:
            raise ConfigError(f"BoundaryBCELoss: width must be an integer in [1, 32], got {width!r}")
        self.width, self.ignore_index = width, int(ignore_index)

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        with no_autocast(logits.device):
            x = logits.float()[:, 0]
            valid = (label != self.ignore_index).float()
            edge = mask_boundary((label == 1).float() * valid, self.width)
            pos = (edge * valid).sum()
            total = valid.sum().clamp(min=1)
            w_pos = (total - pos) / total
            weight = torch.where(edge > 0, w_pos, 1 - w_pos) * valid
            loss = F.binary_cross_entropy_with_logits(x, edge, weight=weight, reduction="sum")
            return loss / (weight.sum() + 1e-12)
