"""Exponential moving average of a model's weights (spec §8.4)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """EMA of every floating-point tensor of a model's state (parameters and BN statistics).

    After iteration ``k`` (1-based): ``ema = d·ema + (1 − d)·model`` with
    ``d = min(1 − 1/(k + 1), max_decay)``. Integer buffers are copied.
    """

    def __init__(self, model: nn.Module, max_decay: float = 0.999) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.max_decay = max_decay

    @torch.no_grad()
    def update(self, model: nn.Module, k: int) -> None:
        d = min(1.0 - 1.0 / (k + 1), self.max_decay)
        src = model.state_dict()
        for name, t in self.module.state_dict().items():
            s = src[name]
            if t.is_floating_point():
                t.mul_(d).add_(s.detach().to(t.dtype), alpha=1.0 - d)
            else:
                t.copy_(s)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
