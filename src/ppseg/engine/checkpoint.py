"""Training checkpoints: the resumable state beside the weights (RNG states, snapshot pruning).

The file format itself (``format: ppseg``, atomic writes, weights loading) lives in
:mod:`ppseg.weights`; a training checkpoint is a weights file plus optimizer,
scheduler, scaler, EMA, RNG and history entries written by the trainer.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """All global RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep only the newest ``keep`` ``iter_*.pt`` files (``keep <= 0``: keep all)."""
    if keep <= 0:
        return
    numbered = [(int(m.group(1)), p) for p in folder.glob("iter_*.pt")
                if (m := re.fullmatch(r"iter_(\d+)\.pt", p.name))]  # leave other names alone
    files = [p for _, p in sorted(numbered)]
    for old in files[:-keep]:
        old.unlink(missing_ok=True)

