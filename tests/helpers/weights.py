"""Non-trivial weights for tests that compare two implementations (ONNX vs torch, ...)."""

from __future__ import annotations

import torch
from torch import nn


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights and BN statistics of the fixture rule's magnitudes (unit-scale activations), no ../shared needed.

    Freshly initialised models are a poor test: zero-initialised classifiers give
    all-equal logits, and every comparison then passes.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if name.endswith("num_batches_tracked") or not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.ndim >= 2:
                t.copy_(torch.randn(t.shape, generator=gen) * (t[0].numel() ** -0.5))
            elif name.endswith("weight"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("_scale"):
                continue  # fixed constants of the reference (PP-LiteSeg), not weights
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
    return model


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Default init kept, BN statistics and affine terms random, a click model's click-feature scale 1:
    outputs of order 0.1-1 without replacing the convolutions (click models: EdgeFlow, the fast one)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        if hasattr(model, "maps_transform"):
            model.maps_transform[3].scale.fill_(1.0)
    return model
