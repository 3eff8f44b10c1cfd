"""Engine settings: the ``train:`` section of a config, 1:1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError


@dataclass
class TrainOptions:
    """How a run is executed (not what is trained).

    Args:
        device: ``auto`` picks CUDA when available, else CPU.
        amp: mixed precision: ``bf16`` (CPU or CUDA) or ``fp16`` (CUDA, with a
            gradient scaler); ``off`` trains in float32.
        ema: keep an exponential moving average of the weights, evaluated and
            saved separately (``best_ema_model.pt``).
        ema_decay: the EMA's maximum decay.
        log_iters: log a line every N iterations.
        eval_interval: evaluate every N iterations (0: only at the end).
        save_interval: write a resumable checkpoint every N iterations.
        keep_checkpoint_max: keep the newest N ``iter_*.pt`` (0: keep all).
        num_workers: data-loading processes per training process.
        clip_grad_norm: clip the global gradient norm (``null``: no clipping).
        sync_bn: synchronise BatchNorm statistics across processes.
        channels_last: use the channels-last memory format (faster on many CPUs).
        progress: show a progress bar (``auto``: when writing to a terminal).
        tensorboard: write TensorBoard scalars when ``tensorboard`` is installed.
        threads: torch intra-op threads per process (``null``: torch's default).
        save_dir: run directory (``null``: ``output/<config name>``).
        save_confusion_matrix: also draw the confusion matrix at each evaluation.
        init_weights: start from these weights (a ppseg weights file, ``zoo:NAME``, or a PaddleSeg
            ``.pdparams`` / MMSeg checkpoint of the same model) instead of the model's initialisation;
            ignored when resuming (the checkpoint has the weights).
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "off"
    ema: bool = False
    ema_decay: float = 0.999
    log_iters: int = 10
    eval_interval: int = 1000
    save_interval: int = 1000
    keep_checkpoint_max: int = 5
    num_workers: int = 2
    clip_grad_norm: float | None = None
    sync_bn: bool = False
    channels_last: bool = False
    progress: Literal["auto", "on", "off"] = "auto"
    tensorboard: bool = True
    threads: int | None = None
    save_dir: str | None = None
    save_confusion_matrix: bool = False
    init_weights: str | None = None

    def __post_init__(self) -> None:
        for name in ("log_iters", "save_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_interval", "keep_checkpoint_max", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ConfigError(f"clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {self.threads}")


def autocast_for(device: "torch.device", amp: str):
    """The autocast context for ``train.amp`` on ``device`` (``off``: a no-op context)."""
    from contextlib import nullcontext

    import torch

    if amp == "off":
        return nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"amp 'fp16' needs a CUDA device, got {device.type!r}; use amp 'bf16' instead")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
