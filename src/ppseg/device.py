"""One rule for turning ``auto | cpu | cuda`` into a torch device (training, evaluation, prediction, apps)."""

from __future__ import annotations

import os

import torch

from .errors import ConfigError


def resolve_device(name: str, option: str = "device") -> torch.device:
    """``"auto"`` picks CUDA when present; ``"cuda"`` without a GPU is a :class:`ConfigError`
    naming ``option`` (e.g. ``train.device`` or ``--device``). Under ``torchrun`` each process
    takes its ``LOCAL_RANK``'s GPU."""
    if name not in ("auto", "cpu", "cuda") and not str(name).startswith("cuda:"):
        raise ConfigError(f"{option}: expected auto, cpu or cuda, got {name!r}")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{option}: '{name}' requested but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(name)
