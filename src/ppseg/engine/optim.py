"""Optimizers with per-parameter rules matched by parameter name (spec §8.3).

Config::

    optimizer:
      type: AdamW
      weight_decay: 0.01
      param_groups:                 # first matching rule wins
        - {match: head, lr_mult: 10.0}
        - {match: [bn, norm], weight_decay: 0.0}

``match`` is a substring (or list of substrings) of the structured parameter
name (``backbone.blocks.3.mid_se.conv1.weight``). Parameters no rule matches
use the optimizer's own settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ParamRule:
    """One ``param_groups`` entry."""

    match: tuple[str, ...]
    lr_mult: float = 1.0
    weight_decay: float | None = None

    def matches(self, name: str) -> bool:
        return any(m in name for m in self.match)


def parse_rules(rules: Sequence[dict] | None, where: str = "param_groups") -> list[ParamRule]:
    """Validate ``param_groups`` rules; errors name the rule as ``{where}[i]``."""
    out = []
    for i, r in enumerate(rules or []):
        if not isinstance(r, dict) or "match" not in r:
            raise ConfigError(f"{where}[{i}]: each rule needs 'match' (a name substring or list), got {r!r}")
        unknown = set(r) - {"match", "lr_mult", "weight_decay"}
        if unknown:
            raise ConfigError(f"{where}[{i}]: unknown key '{sorted(unknown)[0]}' (allowed: match, lr_mult, weight_decay)")
        match = r["match"]
        match = (match,) if isinstance(match, str) else tuple(match) if isinstance(match, (list, tuple)) else ()
        if not match or not all(isinstance(m, str) and m for m in match):
            raise ConfigError(f"{where}[{i}].match: expected a non-empty string or list of strings, got {r['match']!r}")
        lr_mult = _number(r.get("lr_mult", 1.0), f"{where}[{i}].lr_mult")
        wd = r.get("weight_decay")
        out.append(ParamRule(match, lr_mult, None if wd is None else _number(wd, f"{where}[{i}].weight_decay")))
    return out


def _number(value: object, where: str) -> float:
    """A finite non-negative float (YAML 1.1 reads ``1e-4`` as a string: accept that too)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a non-negative number, got {value!r}") from None
    if not (math.isfinite(out) and out >= 0):
        raise ConfigError(f"{where}: expected a finite non-negative number, got {value!r}")
    return out


def make_param_groups(model: nn.Module, rules: Sequence[ParamRule], weight_decay: float) -> list[dict]:
    """Split trainable parameters into optimizer groups by the first matching rule."""
    buckets: dict[int, list] = {}
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        idx = next((i for i, r in enumerate(rules) if r.matches(name)), len(rules))
        buckets.setdefault(idx, []).append(p)
        names.setdefault(idx, []).append(name)
    groups = []
    for idx in sorted(buckets):
        rule = rules[idx] if idx < len(rules) else ParamRule(("<default>",))
        wd = weight_decay if rule.weight_decay is None else rule.weight_decay
        groups.append({"params": buckets[idx], "lr_mult": rule.lr_mult, "weight_decay": wd,
                       "rule": "|".join(rule.match), "names": names[idx]})
    return groups


def _optimizer_groups(model: nn.Module, param_groups: list[dict] | None, weight_decay: float) -> list[dict]:
    """:func:`make_param_groups` from raw ``param_groups`` rules, without the ``names`` bookkeeping."""
    groups = make_param_groups(model, parse_rules(param_groups), weight_decay)
    return [{k: v for k, v in g.items() if k != "names"} for g in groups]


def SGD(model: nn.Module, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False,
        param_groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """SGD with momentum; ``weight_decay`` is coupled L2 (Paddle Momentum semantics)."""
    if not 0 <= momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
    groups = _optimizer_groups(model, param_groups, weight_decay)
    return torch.optim.SGD(groups, lr=0.0, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


def AdamW(model: nn.Module, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.01, param_groups: list[dict] | None = None,
          fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay (a group's ``weight_decay`` replaces the coefficient)."""
    groups = _optimizer_groups(model, param_groups, weight_decay)
    return torch.optim.AdamW(groups, lr=0.0, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused)


def Adam(model: nn.Module, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0, param_groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """Adam with coupled L2 weight decay."""
    groups = _optimizer_groups(model, param_groups, weight_decay)
    return torch.optim.Adam(groups, lr=0.0, betas=betas, eps=eps, weight_decay=weight_decay)


OPTIMIZERS = {"SGD": SGD, "AdamW": AdamW, "Adam": Adam}
