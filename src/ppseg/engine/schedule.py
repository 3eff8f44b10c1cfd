"""Learning-rate schedules with linear warm-up (PaddleSeg semantics, spec §8.2).

A schedule is a pure function of the iteration index; :class:`LRScheduler`
applies it to every optimizer group, scaled by the group's ``lr_mult``. It is
stepped once per iteration after the optimizer step; iteration 1 uses t = 0.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer

from ..errors import ConfigError


def _rate(name: str, value: float, positive: bool = False) -> float:
    """A finite learning rate (> 0 when ``positive``, else >= 0): a NaN or infinite rate makes every
    weight NaN at the first step, so it is refused here, when the schedule is built."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


class _Schedule:
    def __init__(self, learning_rate: float, warmup_iters: int = 0, warmup_start_lr: float = 0.0) -> None:
        learning_rate = _rate("learning_rate", learning_rate, positive=True)
        warmup_start_lr = _rate("warmup_start_lr", warmup_start_lr)
        if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ConfigError(f"warmup_iters must be an integer >= 0, got {warmup_iters!r}")
        self.learning_rate = learning_rate
        self.warmup_iters = warmup_iters
        self.warmup_start_lr = warmup_start_lr

    def decay(self, t: int, total: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def lr_at(self, t: int, iters: int) -> float:
        """The learning rate of (0-based) iteration ``t`` of a run of ``iters``."""
        w = self.warmup_iters
        if t < w:
            return self.warmup_start_lr + (self.learning_rate - self.warmup_start_lr) * t / w
        return self.decay(t - w, max(iters - w, 1))


class PolynomialDecay(_Schedule):
    """lr = (base − end)·(1 − min(t, T)/T)^power + end after the warm-up, T = decay_steps.

    PaddleSeg's config path (``paddle.optimizer.lr.PolynomialDecay``, wrapped in
    ``LinearWarmup`` when ``warmup_iters`` is set), value for value.

    Args:
        learning_rate: base learning rate.
        end_lr: final learning rate (paddle's default 1e-4; every shipped config sets 0).
        power: polynomial power (paddle's default 1.0; PP configs set 0.9 or 1.0).
        decay_steps: iterations the decay takes to reach ``end_lr``, counted after the
            warm-up; default ``iters − warmup_iters`` (at least 1), as PaddleSeg fills it in.
        cycle: restart the decay every ``decay_steps`` instead of holding ``end_lr``: at
            (post-warm-up) t > 0 the period is ``decay_steps·ceil(t / decay_steps)``.
        warmup_iters: linear warm-up length (0 = none).
        warmup_start_lr: learning rate at iteration 0 of the warm-up.
    """

    def __init__(self, learning_rate: float, end_lr: float = 1e-4, power: float = 1.0,
                 decay_steps: int | None = None, cycle: bool = False,
                 warmup_iters: int = 0, warmup_start_lr: float = 0.0) -> None:
        super().__init__(learning_rate, warmup_iters, warmup_start_lr)
        end_lr = _rate("end_lr", end_lr)
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not math.isfinite(power) or power <= 0:
            raise ConfigError(f"power must be a finite number > 0, got {power!r}")
        if decay_steps is not None and (isinstance(decay_steps, bool) or not isinstance(decay_steps, int)
                                        or decay_steps <= 0):
            raise ConfigError(f"decay_steps must be a positive integer, got {decay_steps!r}")
        self.end_lr = end_lr
        self.power = power
        self.decay_steps = decay_steps
        self.cycle = bool(cycle)

    def decay(self, t: int, total: int) -> float:
        steps = self.decay_steps if self.decay_steps is not None else total
        if self.cycle:
            steps = steps * (math.ceil(t / steps) if t > 0 else 1)
        else:
            t = min(t, steps)
        frac = 1.0 - float(t) / float(steps)
        return (self.learning_rate - self.end_lr) * frac ** self.power + self.end_lr


class CosineAnnealingDecay(_Schedule):
    """lr = end + (base − end)·(1 + cos(π·t/T))/2 after the warm-up.

    Without ``T_max``, T = ``iters − warmup_iters`` and the rate holds ``end_lr`` past it.
    With ``T_max`` (PaddleSeg's key, which paddle requires), T = ``T_max`` and the curve is
    paddle's: periodic, rising again after ``T_max`` (period ``2·T_max``).

    Args:
        learning_rate: base learning rate.
        end_lr: final learning rate (default 0).
        warmup_iters: linear warm-up length (0 = none).
        warmup_start_lr: learning rate at iteration 0 of the warm-up.
        T_max: paddle's half period, in iterations after the warm-up.
        eta_min: paddle's name for ``end_lr`` (give one of the two).
    """

    def __init__(self, learning_rate: float, end_lr: float | None = None,
                 warmup_iters: int = 0, warmup_start_lr: float = 0.0,
                 T_max: int | None = None, eta_min: float | None = None) -> None:
        super().__init__(learning_rate, warmup_iters, warmup_start_lr)
        if end_lr is not None and eta_min is not None:
            raise ConfigError("give end_lr or eta_min (PaddleSeg's name for it), not both")
        if T_max is not None and (isinstance(T_max, bool) or not isinstance(T_max, int) or T_max <= 0):
            raise ConfigError(f"T_max must be a positive integer, got {T_max!r}")
        self.end_lr = _rate("eta_min" if eta_min is not None else "end_lr",
                            end_lr if end_lr is not None else eta_min if eta_min is not None else 0.0)
        self.T_max = T_max

    def decay(self, t: int, total: int) -> float:
        if self.T_max is None:
            t, period = min(t, total), total
        else:
            period = self.T_max
        return self.end_lr + (self.learning_rate - self.end_lr) * (1 + math.cos(math.pi * t / period)) / 2


class ConstantLR(_Schedule):
    """A constant learning rate after the warm-up.

    Args:
        learning_rate: the learning rate.
        warmup_iters: linear warm-up length (0 = none).
        warmup_start_lr: learning rate at iteration 0 of the warm-up.
    """

    def decay(self, t: int, total: int) -> float:
        return self.learning_rate


SCHEDULES: dict[str, type[_Schedule]] = {
    "PolynomialDecay": PolynomialDecay,
    "CosineAnnealingDecay": CosineAnnealingDecay,
    "ConstantLR": ConstantLR,
}


class LRScheduler:
    """Drives an optimizer's group learning rates from a schedule.

    ``last_iter`` counts completed steps; the lr set on the optimizer is always
    the one for the *next* iteration.
    """

    def __init__(self, optimizer: Optimizer, schedule: _Schedule, iters: int) -> None:
        self.optimizer = optimizer
        self.schedule = schedule
        self.iters = iters
        self.last_iter = 0
        self._apply()

    def _apply(self) -> None:
        lr = self.schedule.lr_at(self.last_iter, self.iters)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)

    def get_lr(self) -> float:
        """The base learning rate in use (before per-group multipliers)."""
        return self.schedule.lr_at(self.last_iter, self.iters)

    def step(self) -> None:
        self.last_iter += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last_iter": self.last_iter}

    def load_state_dict(self, state: dict) -> None:
        self.last_iter = int(state["last_iter"])
        self._apply()
